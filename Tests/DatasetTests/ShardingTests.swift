import Foundation
import NebulaCommon
import NebulaDataset
import Testing

@Suite("Shard assignment (pure)")
struct ShardPlannerTests {
    static func checkPartition(_ shards: [[Int]], rows: Int, count: Int) {
        #expect(shards.count == count)
        let sizes = shards.map(\.count)
        #expect(sizes.max()! - sizes.min()! <= 1, "sizes \(sizes)")
        #expect(shards.flatMap { $0 }.sorted() == Array(0..<rows), "every row exactly once")
        #expect(shards.allSatisfy { $0 == $0.sorted() }, "rows ascending inside a shard")
    }

    @Test(arguments: [(10, 3), (7, 7), (100, 1), (1001, 8), (5, 2), (13, 5), (1, 1), (64, 64), (999, 10)])
    func balancedAndComplete(_ rows: Int, _ count: Int) {
        Self.checkPartition(ShardPlanner.assign(rows: rows, count: count, seed: 11, strata: nil), rows: rows, count: count)
    }

    @Test func deterministicPerSeed() {
        let a = ShardPlanner.assign(rows: 1000, count: 4, seed: 7, strata: nil)
        #expect(a == ShardPlanner.assign(rows: 1000, count: 4, seed: 7, strata: nil))
        #expect(a != ShardPlanner.assign(rows: 1000, count: 4, seed: 8, strata: nil))
        let labels = (0..<1000).map { $0 % 3 }
        let s = ShardPlanner.assign(rows: 1000, count: 4, seed: 7, strata: labels)
        #expect(s == ShardPlanner.assign(rows: 1000, count: 4, seed: 7, strata: labels))
        #expect(s != ShardPlanner.assign(rows: 1000, count: 4, seed: 9, strata: labels))
    }

    /// The assignment is a contract between machines (Note [Shard assignment]): these values must
    /// never change, whatever the platform or Swift version.
    @Test func pinnedAssignment() {
        #expect(ShardPlanner.assign(rows: 10, count: 3, seed: 42, strata: nil) == Self.pinnedPlain)
        #expect(ShardPlanner.assign(rows: 10, count: 3, seed: 42, strata: [0, 1, 0, 1, 0, 1, 0, 1, 2, 2]) == Self.pinnedStrata)
    }

    // checked against an independent Python implementation of the same algorithm
    static let pinnedPlain: [[Int]] = [[0, 2, 6, 9], [1, 5, 8], [3, 4, 7]]
    static let pinnedStrata: [[Int]] = [[0, 5, 6, 9], [1, 4, 7], [2, 3, 8]]

    @Test func oneStratumIsThePlainSplit() {
        #expect(ShardPlanner.assign(rows: 200, count: 6, seed: 3, strata: [Int](repeating: 5, count: 200))
            == ShardPlanner.assign(rows: 200, count: 6, seed: 3, strata: nil))
    }

    @Test(arguments: [(150, 2), (150, 4), (1000, 7), (37, 5), (12, 12)])
    func stratifiedCountsWithinOne(_ rows: Int, _ count: Int) {
        // uneven strata, a "missing" stratum (-1) and a stratum smaller than the shard count
        var generator = ShardTestGenerator(seed: UInt64(rows * 31 + count))
        let labels = (0..<rows).map { i -> Int in
            if i % 17 == 0 { return -1 }
            if i % 29 == 1 { return 99 }
            return Int(generator.next() % 4)
        }
        let shards = ShardPlanner.assign(rows: rows, count: count, seed: 5, strata: labels)
        Self.checkPartition(shards, rows: rows, count: count)
        for label in Set(labels) {
            let perShard = shards.map { $0.count { labels[$0] == label } }
            #expect(perShard.max()! - perShard.min()! <= 1, "stratum \(label): \(perShard)")
        }
    }

    @Test func moreShardsThanRowsLeavesEmptyShards() {
        let shards = ShardPlanner.assign(rows: 3, count: 5, seed: 1, strata: nil)
        #expect(shards.map(\.count).sorted() == [0, 0, 1, 1, 1])
    }
}

/// SplitMix64, for test labels only.
struct ShardTestGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite("Shard files")
struct ShardFileTests {
    /// Every column type, missing values in most, and a unique id to follow rows across shards.
    static func mixedCSV(rows: Int) -> String {
        var text = "id,x,flag,day,at,color,note,n\n"
        let colors = ["red", "green", "blue", "violet"]
        for i in 0..<rows {
            let x = i % 11 == 3 ? "" : String(Double(i) / 4 - 7)
            let flag = i % 13 == 5 ? "" : (i % 3 == 0 ? "true" : "false")
            let day = i % 7 == 2 ? "" : "2024-0\(1 + i % 9)-1\(i % 10)"
            let at = i % 9 == 4 ? "" : "2023-05-0\(1 + i % 9)T1\(i % 10):00:00"
            let color = i % 10 == 7 ? "" : colors[i % 4]
            let note = i % 6 == 1 ? "" : "\"note \(i), with \"\"quotes\"\" and more words\""
            let n = i % 5
            text += "\(i),\(x),\(flag),\(day),\(at),\(color),\(note),\(n)\n"
        }
        return text
    }

    static func mixed(rows: Int, scratch: Scratch) throws -> ColumnarDataset {
        var o = CSVIngestOptions()
        o.columnTypes = ["note": .text]
        let (r, d) = try ingest(mixedCSV(rows: rows), options: o, scratch: scratch)
        try #require(r.types == [.integer, .float, .boolean, .date, .datetime, .categorical, .text, .integer])
        return d
    }

    static func fileSHA256(_ path: String) throws -> String {
        SHA256.hex(SHA256.hash([UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))))
    }

    /// Every shard row equals its source row in every column; types, dictionaries and the profile's
    /// counts follow.
    static func expectShardsMatch(_ source: ColumnarDataset, _ infos: [ShardInfo], _ assignment: [[Int]]) throws {
        for (info, rows) in zip(infos, assignment) {
            let shard = try ColumnarDataset(path: info.path)  // verifies every checksum
            #expect(shard.rowCount == rows.count && info.rows == rows.count)
            #expect(shard.columnNames == source.columnNames)
            #expect(shard.profile.rows == rows.count && shard.profile.columns == source.columnCount)
            for c in 0..<source.columnCount {
                let a = source.column(at: c)
                let b = shard.column(at: c)
                #expect(a.type == b.type)
                #expect(a.dictionary == b.dictionary, "same dictionary in every shard")
                let expected = rows.map { a.string($0) }
                let actual = (0..<b.count).map { b.string($0) }
                #expect(actual == expected, "column \(a.name) of shard \(info.index)")
                let missing = expected.count { $0 == nil }
                #expect(b.nullCount == missing)
                let p = try #require(shard.profile.column(a.name))
                #expect(p.count == rows.count - missing && p.missing == missing && p.type == a.type)
                if a.type == .categorical {
                    try #expect(b.withCodes { Array($0) } == a.withCodes { codes in rows.map { codes[$0] } })
                }
            }
        }
    }

    @Test func everyTypeRoundTrips() throws {
        let s = Scratch()
        defer { s.remove() }
        let d = try Self.mixed(rows: 500, scratch: s)
        let directory = s.path("shards")
        let infos = try DatasetSharder.cut(d, spec: ShardSpec(count: 3, seed: 9), directory: directory)
        #expect(infos.map(\.index) == [0, 1, 2])
        #expect(infos.map { ($0.path as NSString).lastPathComponent } == (0..<3).map { "shard-\($0)-of-3.nbds" })
        try Self.expectShardsMatch(d, infos, ShardPlanner.assign(rows: 500, count: 3, seed: 9, strata: nil))
        for info in infos {
            let attributes = try FileManager.default.attributesOfItem(atPath: info.path)
            #expect((attributes[.size] as? Int) == info.bytes)
            #expect(try Self.fileSHA256(info.path) == info.sha256)
        }
        // nothing but the shards is left in the directory (no temporary files)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).sorted() == (0..<3).map { "shard-\($0)-of-3.nbds" })
        // the shard profile is the shard's own
        let shard = try ColumnarDataset(path: infos[0].path)
        let ids = try shard.column("id").withInt64s { $0.map { Double($0) } }
        let p = try #require(shard.profile.column("id"))
        #expect(p.min == ids.min() && p.max == ids.max() && p.distinct == ids.count)
        #expect(abs(p.mean! - ids.reduce(0, +) / Double(ids.count)) < 1e-9)
        #expect(p.histogram?.counts.reduce(0, +) == ids.count)
    }

    @Test func sameCutGivesIdenticalFiles() throws {
        let s = Scratch()
        defer { s.remove() }
        let d = try Self.mixed(rows: 200, scratch: s)
        let spec = ShardSpec(count: 4, seed: 1, stratifyBy: "color")
        let a = try DatasetSharder.cut(d, spec: spec, directory: s.path("a"))
        let b = try DatasetSharder.cut(d, spec: spec, directory: s.path("b"))
        #expect(a.map(\.sha256) == b.map(\.sha256))
        // again into the same directory: replaced in place
        let c = try DatasetSharder.cut(d, spec: spec, directory: s.path("a"))
        #expect(c.map(\.sha256) == a.map(\.sha256))
    }

    @Test func stratifiedByCategoricalWithMissing() throws {
        let s = Scratch()
        defer { s.remove() }
        let d = try Self.mixed(rows: 403, scratch: s)
        let infos = try DatasetSharder.cut(d, spec: ShardSpec(count: 4, seed: 2, stratifyBy: "color"),
                                           directory: s.path("shards"))
        #expect(infos.map(\.rows).reduce(0, +) == 403)
        #expect(infos.map(\.rows).max()! - infos.map(\.rows).min()! <= 1)
        let source = try strings(d, "color")
        for value in Set(source) {
            let perShard = try infos.map { info in
                try strings(try ColumnarDataset(path: info.path), "color").count { $0 == value }
            }
            #expect(perShard.max()! - perShard.min()! <= 1, "\(value ?? "missing"): \(perShard)")
            #expect(perShard.reduce(0, +) == source.count { $0 == value })
        }
        // the ids of all shards are the source's ids, once each
        let ids = try infos.flatMap { try ColumnarDataset(path: $0.path).column("id").withInt64s { Array($0) } }
        #expect(ids.sorted() == (0..<403).map { Int64($0) })
    }

    @Test(arguments: ["flag", "n", "note"])
    func stratifiedByBooleanIntegerText(_ column: String) throws {
        let s = Scratch()
        defer { s.remove() }
        let d = try Self.mixed(rows: 300, scratch: s)
        let infos = try DatasetSharder.cut(d, spec: ShardSpec(count: 3, seed: 4, stratifyBy: column), directory: s.path("shards"))
        let source = try strings(d, column)
        let shards = try infos.map { try strings(try ColumnarDataset(path: $0.path), column) }
        for value in Set(source) {
            let perShard = shards.map { $0.count { $0 == value } }
            #expect(perShard.max()! - perShard.min()! <= 1, "\(column) = \(value ?? "missing"): \(perShard)")
        }
    }

    @Test func recutWithAnotherCountCoversAllRows() throws {
        let s = Scratch()
        defer { s.remove() }
        let d = try Self.mixed(rows: 250, scratch: s)
        for count in [2, 5, 7] {
            let infos = try DatasetSharder.cut(d, spec: ShardSpec(count: count, seed: 3, stratifyBy: "n"),
                                               directory: s.path("shards-\(count)"))
            #expect(infos.count == count)
            let ids = try infos.flatMap { try ColumnarDataset(path: $0.path).column("id").withInt64s { Array($0) } }
            #expect(ids.sorted() == (0..<250).map { Int64($0) })
        }
    }

    @Test func oneShardPerRow() throws {
        let s = Scratch()
        defer { s.remove() }
        let d = try Self.mixed(rows: 12, scratch: s)
        let infos = try DatasetSharder.cut(d, spec: ShardSpec(count: 12), directory: s.path("shards"))
        #expect(infos.allSatisfy { $0.rows == 1 })
        try Self.expectShardsMatch(d, infos, ShardPlanner.assign(rows: 12, count: 12, seed: 0, strata: nil))
    }

    @Test func irisStratifiedByTarget() throws {
        let s = Scratch()
        defer { s.remove() }
        let out = s.path("iris.nbds")
        _ = try CSVIngest.ingest(csv: dataDirectory + "/sklearn_iris.csv", to: out)
        let d = try ColumnarDataset(path: out)
        for count in [2, 3, 5] {
            let infos = try DatasetSharder.cut(d, spec: ShardSpec(count: count, seed: 42, stratifyBy: "target"),
                                               directory: s.path("iris-\(count)"))
            #expect(infos.map(\.rows) == [Int](repeating: 150 / count, count: count))
            for info in infos {
                let shard = try ColumnarDataset(path: info.path)
                let targets = try shard.column("target").withInt64s { Array($0) }
                let perClass = (0..<3).map { k in targets.count { $0 == Int64(k) } }
                #expect(perClass.allSatisfy { $0 == 50 / count || $0 == (50 + count - 1) / count }, "\(perClass)")
            }
        }
    }

    @Test func penguinsStratifiedBySexWithMissing() throws {
        let s = Scratch()
        defer { s.remove() }
        let out = s.path("penguins.nbds")
        _ = try CSVIngest.ingest(csv: dataDirectory + "/penguins.csv", to: out)
        let d = try ColumnarDataset(path: out)
        try #require(try d.column("sex").nullCount > 0)
        let infos = try DatasetSharder.cut(d, spec: ShardSpec(count: 4, seed: 1, stratifyBy: "sex"), directory: s.path("p"))
        let source = try strings(d, "sex")
        let shards = try infos.map { try strings(try ColumnarDataset(path: $0.path), "sex") }
        for value in Set(source) {
            let perShard = shards.map { $0.count { $0 == value } }
            #expect(perShard.max()! - perShard.min()! <= 1, "\(value ?? "missing"): \(perShard)")
        }
    }

    @Test func subsetOfNoRowsAndBadRows() throws {
        let s = Scratch()
        defer { s.remove() }
        let d = try Self.mixed(rows: 20, scratch: s)
        let empty = try d.writeSubset(rows: [], to: s.path("empty.nbds"))
        let e = try ColumnarDataset(path: s.path("empty.nbds"))
        #expect(e.rowCount == 0 && e.columnNames == d.columnNames && empty.bytes > 0)
        // any order, repeats allowed
        _ = try d.writeSubset(rows: [5, 5, 0], to: s.path("some.nbds"))
        #expect(try strings(try ColumnarDataset(path: s.path("some.nbds")), "id") == ["5", "5", "0"])
        #expect { try d.writeSubset(rows: [20], to: s.path("bad.nbds")) } throws: {
            ($0 as? DatasetError)?.code == .invalidArgument && "\($0)".contains("out of range")
        }
        #expect(!FileManager.default.fileExists(atPath: s.path("bad.nbds")))
    }

    @Test func errors() throws {
        let s = Scratch()
        defer { s.remove() }
        let d = try Self.mixed(rows: 10, scratch: s)
        func expectInvalid(_ spec: ShardSpec, _ text: String) {
            #expect {
                try DatasetSharder.cut(d, spec: spec, directory: s.path("shards"))
            } throws: { error in
                guard let e = error as? DatasetError else { return false }
                return e.code == .invalidArgument && e.message.contains(text)
            }
        }
        expectInvalid(ShardSpec(count: 0), "at least 1")
        expectInvalid(ShardSpec(count: 11), "cannot cut 10 rows into 11 shards")
        expectInvalid(ShardSpec(count: 2, stratifyBy: "nope"), "'nope'")
        expectInvalid(ShardSpec(count: 2, stratifyBy: "x"), "stratify needs a categorical, boolean, integer or text column")
        expectInvalid(ShardSpec(count: 2, stratifyBy: "day"), "stratify needs a categorical, boolean, integer or text column")
        #expect(!FileManager.default.fileExists(atPath: s.path("shards")))
    }
}
