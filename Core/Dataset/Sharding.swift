import Foundation
import NebulaEngine

// Note [Shard assignment]
// ~~~~~~~~~~~~~~~~~~~~~~~
// Every rank of a job must agree on which rows are its own, and a resumed job may come back with
// another world size, so the assignment is a pure function of (rows, count, seed, strata), computed
// again for any count from the same dataset; nothing about a previous cut is kept.
//
//   1. Rows are grouped by stratum label (no strata: one group of all rows), groups in ascending
//      label order. A missing label is its own stratum: callers give it a label of its own.
//   2. Each group is shuffled with Fisher-Yates driven by xoshiro256** seeded through SplitMix64
//      from `seed`; one generator runs through all groups in order. Bounded draws use Lemire's
//      multiply-and-reject, so no modulo bias and no floating point: the same integers on every
//      machine and every Swift version (Swift's `Hasher` and system generator are seeded per process,
//      and `shuffled(using:)` does not promise a fixed algorithm).
//   3. The shuffled rows are dealt round-robin: the k-th dealt row goes to shard k mod count, and
//      the deal position k continues from one group to the next. A group of m rows occupies m
//      consecutive positions, so its rows per shard differ by at most 1; all rows together occupy
//      positions 0..<rows, so shard sizes differ by at most 1 too.
//   4. Each shard's rows are sorted ascending, so gathering a shard reads the source front to back.
//
// With strata the shuffle of a group does not depend on the other groups' labels, only on their
// sizes and order. Stratifying by a column with one value gives the plain split.

/// How to cut a dataset into shards.
public struct ShardSpec: Sendable, Hashable, Codable {
    /// Number of shards, at least 1 and at most the dataset's rows.
    public var count: Int
    /// Seed of the deterministic shuffle (Note [Shard assignment]).
    public var seed: UInt64
    /// A categorical, boolean, integer or text column whose classes are spread evenly over the
    /// shards; nil for a plain split.
    public var stratifyBy: String?

    public init(count: Int, seed: UInt64 = 0, stratifyBy: String? = nil) {
        self.count = count
        self.seed = seed
        self.stratifyBy = stratifyBy
    }
}

/// One shard file written by `DatasetSharder.cut`.
public struct ShardInfo: Sendable, Hashable, Codable {
    public var index: Int
    public var rows: Int
    public var bytes: Int
    /// Hex SHA-256 of the whole shard file.
    public var sha256: String
    public var path: String

    public init(index: Int, rows: Int, bytes: Int, sha256: String, path: String) {
        self.index = index
        self.rows = rows
        self.bytes = bytes
        self.sha256 = sha256
        self.path = path
    }
}

public enum ShardPlanner {
    /// Which source rows go to each shard (Note [Shard assignment]). Deterministic for
    /// (rows, count, seed, strata) on every machine. Shard sizes differ by at most 1; with strata
    /// (one label per row) each stratum's rows per shard differ by at most 1 as well. Row indices
    /// inside a shard are ascending. With `count > rows` some shards are empty.
    public static func assign(rows: Int, count: Int, seed: UInt64, strata: [Int]?) -> [[Int]] {
        precondition(rows >= 0, "rows must not be negative")
        precondition(count >= 1, "the shard count must be at least 1")
        if let strata { precondition(strata.count == rows, "one stratum label per row") }

        var groups: [[Int]]
        if let strata {
            // rows inside a group ascending, groups in ascending label order
            var byLabel: [Int: [Int]] = [:]
            for row in 0..<rows { byLabel[strata[row], default: []].append(row) }
            groups = byLabel.keys.sorted().map { byLabel[$0]! }
        } else {
            groups = [Array(0..<rows)]
        }

        var generator = ShardShuffleGenerator(seed: seed)
        var shards = [[Int]](repeating: [], count: count)
        for s in 0..<count { shards[s].reserveCapacity(rows / count + 1) }
        var position = 0
        for g in groups.indices {
            generator.shuffle(&groups[g])
            for row in groups[g] {
                shards[position % count].append(row)
                position += 1
            }
        }
        for s in 0..<count { shards[s].sort() }
        return shards
    }
}

/// The fixed generator of Note [Shard assignment]: the engine's `SeededGenerator` (xoshiro256**
/// seeded with SplitMix64), drawn only through `next()`, with its own bounded draw and shuffle, so no
/// standard-library algorithm whose use of the generator might change between releases is involved.
struct ShardShuffleGenerator {
    private var base: SeededGenerator

    init(seed: UInt64) { base = SeededGenerator(seed: seed) }

    mutating func next() -> UInt64 { base.next() }

    /// Uniform in 0..<bound (bound ≥ 1), Lemire's method with rejection.
    mutating func next(below bound: UInt64) -> UInt64 {
        precondition(bound > 0)
        var m = next().multipliedFullWidth(by: bound)
        if m.low < bound {
            let threshold = (0 &- bound) % bound
            while m.low < threshold { m = next().multipliedFullWidth(by: bound) }
        }
        return m.high
    }

    /// Fisher-Yates, from the last element down.
    mutating func shuffle(_ a: inout [Int]) {
        var i = a.count - 1
        while i > 0 {
            let j = Int(next(below: UInt64(i + 1)))
            if i != j { a.swapAt(i, j) }
            i -= 1
        }
    }
}

public enum DatasetSharder {
    /// Cuts `dataset` into `spec.count` files "shard-<index>-of-<count>.nbds" in `directory`
    /// (created if missing), rows chosen by `ShardPlanner.assign` (Note [Shard assignment]). Each
    /// shard is a dataset file of the same format, schema and categorical dictionaries as the
    /// source (codes mean the same on every rank), with a profile of its own rows
    /// (Note [Subset files]). Files appear under their names only when complete.
    public static func cut(_ dataset: ColumnarDataset, spec: ShardSpec, directory: String) throws -> [ShardInfo] {
        let rows = dataset.rowCount
        guard spec.count >= 1 else {
            throw DatasetError(.invalidArgument, "the shard count must be at least 1 (got \(spec.count))", path: dataset.path)
        }
        guard spec.count <= rows else {
            throw DatasetError(.invalidArgument,
                               "cannot cut \(rows) rows into \(spec.count) shards: every shard needs a row, use at most \(rows) shards",
                               path: dataset.path)
        }
        let strata = try spec.stratifyBy.map { try strataLabels(dataset, column: $0) }
        let assignment = ShardPlanner.assign(rows: rows, count: spec.count, seed: spec.seed, strata: strata)
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw DatasetError(.io, "cannot create the shard directory: \(error.localizedDescription)", path: directory)
        }
        var infos: [ShardInfo] = []
        for (index, shardRows) in assignment.enumerated() {
            let path = directory + "/" + fileName(index: index, count: spec.count)
            let written = try dataset.writeSubset(rows: shardRows, to: path)
            infos.append(ShardInfo(index: index, rows: shardRows.count, bytes: written.bytes, sha256: written.sha256, path: path))
        }
        return infos
    }

    /// "shard-<index>-of-<count>.nbds"
    public static func fileName(index: Int, count: Int) -> String { "shard-\(index)-of-\(count).nbds" }

    /// One label per row for `ShardPlanner.assign`: the rank of the row's value among the column's
    /// distinct values (ascending), missing rows one label past the last value.
    static func strataLabels(_ dataset: ColumnarDataset, column name: String) throws -> [Int] {
        guard let index = dataset.columnNames.firstIndex(of: name) else {
            throw DatasetError(.invalidArgument,
                               "cannot stratify by '\(name)': no such column (columns: \(dataset.columnNames.joined(separator: ", ")))",
                               path: dataset.path)
        }
        let column = dataset.column(at: index)
        let rows = column.count
        var labels = [Int](repeating: 0, count: rows)
        switch column.type {
        case .categorical:
            // codes are dense already; rank them by code so labels do not depend on the dictionary's text
            try column.withCodes { codes in
                for i in 0..<rows { labels[i] = Int(codes[i]) }
            }
        case .boolean:
            for i in 0..<rows { labels[i] = column.double(i) == 1 ? 1 : 0 }
        case .integer:
            let ranks = try column.withInt64s { values -> [Int64: Int] in
                let distinct = Set((0..<rows).lazy.filter { !column.isNull($0) }.map { values[$0] }).sorted()
                return Dictionary(uniqueKeysWithValues: distinct.enumerated().map { ($1, $0) })
            }
            try column.withInt64s { values in
                for i in 0..<rows where !column.isNull(i) { labels[i] = ranks[values[i]]! }
            }
        case .text:
            var values = [String](repeating: "", count: rows)
            for i in 0..<rows { values[i] = column.string(i) ?? "" }
            // byte order, not Unicode collation: the same on every machine
            let distinct = Set((0..<rows).lazy.filter { !column.isNull($0) }.map { values[$0] })
                .sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            let ranks = Dictionary(uniqueKeysWithValues: distinct.enumerated().map { ($1, $0) })
            for i in 0..<rows where !column.isNull(i) { labels[i] = ranks[values[i]]! }
        case .float, .date, .datetime:
            throw DatasetError(.invalidArgument,
                               "cannot stratify by '\(name)', a \(column.type.rawValue) column: stratify needs a categorical, boolean, integer or text column",
                               path: dataset.path)
        }
        if column.nullCount > 0 {
            let missing = (labels.max() ?? 0) + 1
            for i in 0..<rows where column.isNull(i) { labels[i] = missing }
        }
        return labels
    }
}
