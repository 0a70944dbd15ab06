import Foundation

// Note [Feature schema from the whole dataset]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// In a distributed job every rank sees only its shard, but the encoding of the features must be the
// same on every rank, and the same as a single process would use. So the coordinator fits the schema
// once on the whole dataset, from what ingest already computed: the profile's mean and standard
// deviation of numeric columns (population std, as the single-process encoder uses) and the
// categorical dictionaries, which shards share with their dataset (subset files keep the source's
// dictionaries, Note [Subset files]). The class list of a classification target is fixed the same
// way (sorted by value, so it does not depend on which rank saw which class first). Workers only
// apply it.

/// How the columns of a dataset become a numeric feature matrix and a target vector.
public struct FeatureSchema: Codable, Sendable, Equatable {
    public enum Encoding: Codable, Sendable, Equatable {
        /// (x - mean) / std; missing → 0 (the mean).
        case numeric(mean: Double, std: Double)
        /// One column per dictionary code below `levels`, plus one for other codes and missing.
        case oneHot(levels: Int)
    }

    public struct Column: Codable, Sendable, Equatable {
        public var name: String
        public var encoding: Encoding
    }

    public var columns: [Column]
    public var target: String
    /// Classification: the class labels in index order; empty for regression.
    public var classes: [String]
    /// Regression: the target's mean and std (the model learns the standardised target).
    public var targetMean: Double
    public var targetStd: Double
    /// Columns left out and why (text columns, too many categories).
    public var skipped: [String]

    /// Categorical columns with more levels than this are left out of an MLP's features.
    public static let maxOneHotLevels = 64

    public var width: Int {
        columns.reduce(0) { n, c in
            switch c.encoding {
            case .numeric: n + 1
            case .oneHot(let levels): n + levels + 1
            }
        }
    }

    public var isClassification: Bool { !classes.isEmpty }

    /// Fits the schema on the whole dataset (Note [Feature schema from the whole dataset]).
    public static func fit(_ dataset: ColumnarDataset, target: String, classification: Bool) throws -> FeatureSchema {
        guard dataset.columnNames.contains(target) else {
            throw DatasetError(.invalidArgument, "no column '\(target)' in the dataset", path: dataset.path)
        }
        var columns: [Column] = []
        var skipped: [String] = []
        for name in dataset.columnNames where name != target {
            let view = try dataset.column(name)
            let profile = dataset.profile.column(name)
            switch view.type {
            case .integer, .float, .boolean, .date, .datetime:
                let std = profile?.std ?? 1
                columns.append(Column(name: name, encoding: .numeric(mean: profile?.mean ?? 0,
                                                                     std: std.isFinite && std > 0 ? std : 1)))
            case .categorical:
                if view.dictionary.count <= maxOneHotLevels {
                    columns.append(Column(name: name, encoding: .oneHot(levels: view.dictionary.count)))
                } else {
                    skipped.append("\(name): \(view.dictionary.count) categories (more than \(maxOneHotLevels))")
                }
            case .text:
                skipped.append("\(name): free text (not encoded by this model)")
            }
        }
        let t = try dataset.column(target)
        var classes: [String] = []
        var mean = 0.0, std = 1.0
        if classification {
            var seen = Set<String>()
            for row in 0..<t.count { if let v = t.string(row) { seen.insert(v) } }
            classes = seen.sorted { a, b in
                if let x = Double(a), let y = Double(b) { return x < y }
                return a < b
            }
        } else {
            guard [.integer, .float, .boolean].contains(t.type) else {
                throw DatasetError(.invalidArgument, "the target '\(target)' is \(t.type.rawValue), not numeric: regression needs numbers")
            }
            let p = dataset.profile.column(target)
            mean = p?.mean ?? 0
            let s = p?.std ?? 1
            std = s.isFinite && s > 0 ? s : 1
        }
        guard !columns.isEmpty else {
            throw DatasetError(.invalidArgument, "no usable feature columns besides '\(target)' (\(skipped.joined(separator: "; ")))")
        }
        return FeatureSchema(columns: columns, target: target, classes: classes, targetMean: mean, targetStd: std,
                             skipped: skipped)
    }

    /// The rows of `dataset` (a shard) with a present target, as a row-major Float matrix.
    public func features(_ dataset: ColumnarDataset, rows: [Int]) throws -> [Float] {
        let width = self.width
        var out = [Float](repeating: 0, count: rows.count * width)
        var offset = 0
        for column in columns {
            let view = try dataset.column(column.name)
            switch column.encoding {
            case .numeric(let mean, let std):
                for (i, row) in rows.enumerated() {
                    if let v = view.double(row) { out[i * width + offset] = Float((v - mean) / std) }
                }
                offset += 1
            case .oneHot(let levels):
                try view.withCodes { codes in
                    for (i, row) in rows.enumerated() {
                        let code = view.isNull(row) ? levels : min(Int(codes[row]), levels)
                        out[i * width + offset + code] = 1
                    }
                }
                offset += levels + 1
            }
        }
        return out
    }

    /// Rows whose target is present (the others cannot be trained on).
    public func labelledRows(_ dataset: ColumnarDataset) throws -> [Int] {
        let t = try dataset.column(target)
        return (0..<t.count).filter { !t.isNull($0) }
    }

    /// Class indices (classification) of `rows`; throws for a label outside the schema's classes.
    public func classIndices(_ dataset: ColumnarDataset, rows: [Int]) throws -> [Int] {
        let t = try dataset.column(target)
        let index = Dictionary(uniqueKeysWithValues: classes.enumerated().map { ($1, $0) })
        return try rows.map { row in
            guard let label = t.string(row), let i = index[label] else {
                throw DatasetError(.invalidArgument, "row \(row): target value '\(t.string(row) ?? "")' is not one of the job's classes")
            }
            return i
        }
    }

    /// Standardised regression targets of `rows`.
    public func regressionTargets(_ dataset: ColumnarDataset, rows: [Int]) throws -> [Float] {
        let t = try dataset.column(target)
        return rows.map { Float(((t.double($0) ?? targetMean) - targetMean) / targetStd) }
    }
}
