import NebulaCommon

// Note [Text features]
// ~~~~~~~~~~~~~~~~~~~~
// AutoGluon's `check_if_nlp_feature`: a string column is free text when its distinct values are more
// than 1% of the rows (missing rows count as rows) and those distinct values average at least 3
// whitespace-separated words. Here the candidates are every column but the target that is text or
// categorical (a categorical with long, varied values is free text too). A categorical column's
// distinct values are its used dictionary entries, exactly. For a text column the distinct count is
// the profile's (exact up to 16384 values, a HyperLogLog estimate beyond), and the words are
// averaged over the distinct values among about `textSampleRows` evenly spaced rows (missing ones
// skipped), so the check costs the same on a million reviews as on ten thousand.

/// The learning problem of a target column (AutoGluon's problem types).
public enum ProblemType: String, Codable, Sendable {
    case binary, multiclass, regression
}

/// What the features are. Image and object-detection datasets are recognised from their ZIP
/// layout elsewhere; a table is tabular, or text when it has a free-text feature column.
public enum Modality: String, Codable, Sendable {
    case tabular, text
}

public struct TaskDetectionResult: Codable, Sendable {
    public var problemType: ProblemType
    public var modality: Modality
    /// Why, for people: e.g. "3 distinct integer values (ratio 0.020 <= 0.1)".
    public var reason: String
    /// Feature columns found to be free text (Note [Text features]), in column order.
    public var textColumns: [String]
    /// Distinct target values, for binary and multiclass problems.
    public var classes: Int?

    public init(problemType: ProblemType, modality: Modality, reason: String, textColumns: [String], classes: Int?) {
        self.problemType = problemType
        self.modality = modality
        self.reason = reason
        self.textColumns = textColumns
        self.classes = classes
    }
}

public enum TaskInference {
    /// Distinct/rows above which a string column may be free text (Note [Text features]).
    public static let textUniqueRatio = 0.01
    /// Average words per distinct value at or above which a string column is free text.
    public static let textMinimumWords = 3.0
    /// Rows of a text column read to average its words.
    public static let textSampleRows = 10_000

    /// The problem type of `target` by AutoGluon's rules (Note [Problem type rule] in NebulaCommon),
    /// or `override` when given and compatible with the column, and the modality from the feature
    /// columns (Note [Text features]). Throws `DatasetError(.invalidArgument)` for an unknown
    /// column, a target without values or with a single value, and an override the column cannot be.
    public static func detect(_ dataset: ColumnarDataset, target: String, override: ProblemType? = nil) throws
        -> TaskDetectionResult
    {
        guard let index = dataset.columnNames.firstIndex(of: target) else {
            let names = dataset.columnNames
            // targets are often the last column: with many columns, show both ends
            let quoted = names.map { "'\($0)'" }
            let shown = quoted.count <= 30 ? quoted.joined(separator: ", ")
                : quoted.prefix(20).joined(separator: ", ") + ", … (\(quoted.count - 25) more), "
                    + quoted.suffix(5).joined(separator: ", ")
            throw DatasetError(.invalidArgument, "no column '\(target)' in the dataset: choose the target among \(shown)",
                               path: dataset.path)
        }
        let column = dataset.column(at: index)
        let stats = try targetStats(column, profile: dataset.profile.column(target))
        let detected: (ProblemType, String)
        switch ProblemTypeRule.infer(present: stats.present, distinct: stats.distinct, numeric: stats.numeric,
                                     integral: stats.integral)
        {
        case .noValues:
            throw DatasetError(.invalidArgument,
                               "the target column '\(target)' has no values (all \(column.count) rows are missing): choose another target column",
                               path: dataset.path)
        case .singleValue:
            let value = (0..<column.count).lazy.compactMap { column.string($0) }.first ?? ""
            throw DatasetError(.invalidArgument,
                               "the target column '\(target)' has a single value ('\(value)'): there is nothing to learn; choose another target column",
                               path: dataset.path)
        case .detected(let kind, let reason):
            if !stats.orderable && kind != .binary {
                throw DatasetError(.invalidArgument,
                                   "the target column '\(target)' is a \(column.type.rawValue) column with \(stats.distinct) distinct values: a target must be numbers, categories, booleans or text; choose another target column",
                                   path: dataset.path)
            }
            detected = (ProblemType(rawValue: kind.rawValue)!, reason)
        }

        var problemType = detected.0
        var reason = detected.1
        if let override, override != problemType {
            switch override {
            case .binary where stats.distinct != 2:
                throw DatasetError(.invalidArgument,
                                   "the target column '\(target)' cannot be binary: it has \(stats.distinct) distinct values; use multiclass or regression",
                                   path: dataset.path)
            case .regression where column.type != .integer && column.type != .float:
                throw DatasetError(.invalidArgument,
                                   "the target column '\(target)' cannot be a regression target: it is a \(column.type.rawValue) column, not numbers; use binary or multiclass",
                                   path: dataset.path)
            default:
                break
            }
            reason = "\(override.rawValue) as requested (detected \(problemType.rawValue): \(reason))"
            problemType = override
        }

        var textColumns: [String] = []
        for c in 0..<dataset.columnCount where c != index {
            let feature = dataset.column(at: c)
            if isFreeText(feature, profile: dataset.profile.column(feature.name)) { textColumns.append(feature.name) }
        }
        if !textColumns.isEmpty {
            reason += "; free text in \(textColumns.map { "'\($0)'" }.joined(separator: ", "))"
        }
        return TaskDetectionResult(problemType: problemType, modality: textColumns.isEmpty ? .tabular : .text,
                                   reason: reason, textColumns: textColumns,
                                   classes: problemType == .regression ? nil : stats.distinct)
    }

    /// What the problem-type rule needs of a target column.
    struct TargetStats {
        var present: Int
        var distinct: Int
        var numeric: Bool
        var integral: Bool
        /// False for dates and datetimes: AutoGluon accepts them only as a binary target.
        var orderable = true
    }

    static func targetStats(_ column: ColumnView, profile: ColumnProfile?) throws -> TargetStats {
        let rows = column.count
        let present = rows - column.nullCount
        // numbers: past this many distinct values the answer is regression, and the exact count
        // is not needed (the profile's estimate is reported)
        let cap = ProblemTypeRule.multiclassUpperLimit + 1
        func capped(_ exact: Int) -> Int { exact < cap ? exact : max(exact, profile?.distinct ?? exact) }
        switch column.type {
        case .integer, .datetime:
            var seen = Set<Int64>()
            try column.withInt64s { v in
                for i in 0..<rows where !column.isNull(i) {
                    seen.insert(v[i])
                    if seen.count >= cap { break }
                }
            }
            return TargetStats(present: present, distinct: capped(seen.count), numeric: true, integral: true,
                               orderable: column.type == .integer)
        case .date:
            var seen = Set<Int32>()
            try column.withDays { v in
                for i in 0..<rows where !column.isNull(i) {
                    seen.insert(v[i])
                    if seen.count >= cap { break }
                }
            }
            return TargetStats(present: present, distinct: capped(seen.count), numeric: true, integral: true, orderable: false)
        case .float:
            var seen = Set<UInt64>()
            var integral = true
            try column.withFloat64s { v in
                for i in 0..<rows where !column.isNull(i) {
                    let x = v[i]
                    if integral && !(x.isFinite && x.rounded() == x) { integral = false }
                    if seen.count < cap { seen.insert(numericKey(x)) }
                    if seen.count >= cap && !integral { break }
                }
            }
            return TargetStats(present: present, distinct: capped(seen.count), numeric: true, integral: integral)
        case .boolean:
            var trues = 0
            for i in 0..<rows where column.double(i) == 1 { trues += 1 }
            let distinct = (trues > 0 ? 1 : 0) + (present - trues > 0 ? 1 : 0)
            return TargetStats(present: present, distinct: distinct, numeric: false, integral: false)
        case .categorical:
            var used = [Bool](repeating: false, count: column.dictionary.count)
            try column.withCodes { codes in
                for i in 0..<rows where !column.isNull(i) && Int(codes[i]) < used.count { used[Int(codes[i])] = true }
            }
            return TargetStats(present: present, distinct: used.count(where: { $0 }), numeric: false, integral: false)
        case .text:
            var seen = Set<UInt64>()
            column.withText { value in seen.insert(hashBytes(value.baseAddress!, value.count)) }
            return TargetStats(present: present, distinct: seen.count, numeric: false, integral: false)
        }
    }

    /// Whether a feature column is free text (Note [Text features]).
    static func isFreeText(_ column: ColumnView, profile: ColumnProfile?) -> Bool {
        let rows = column.count
        guard rows > 0, column.nullCount < rows else { return false }
        var values: [String] = []
        let distinct: Int
        switch column.type {
        case .categorical:
            let dictionary = column.dictionary
            var used = [Bool](repeating: false, count: dictionary.count)
            _ = try? column.withCodes { codes in
                for i in 0..<rows where !column.isNull(i) && Int(codes[i]) < used.count { used[Int(codes[i])] = true }
            }
            values = dictionary.indices.filter { used[$0] }.map { dictionary[$0] }
            distinct = values.count
        case .text:
            // an evenly spaced sample of rows; missing ones are skipped
            let step = max(1, rows / textSampleRows)
            var sample = Set<String>()
            for row in Swift.stride(from: 0, to: rows, by: step) {
                if let value = column.string(row) { sample.insert(value) }
            }
            values = Array(sample)
            if let counted = profile?.distinct {
                distinct = counted
            } else {
                var seen = Set<UInt64>()
                column.withText { value in seen.insert(hashBytes(value.baseAddress!, value.count)) }
                distinct = seen.count
            }
        default:
            return false
        }
        guard Double(distinct) / Double(rows) > textUniqueRatio, !values.isEmpty else { return false }
        let words = values.reduce(0) { $0 + $1.split(whereSeparator: \.isWhitespace).count }
        return Double(words) / Double(values.count) >= textMinimumWords
    }
}

extension ColumnView {
    /// Calls `body` with the UTF-8 bytes of every present value of a text column, in row order
    /// (a valid pointer even for an empty value).
    func withText(_ body: (UnsafeBufferPointer<UInt8>) -> Void) {
        guard type == .text, let offsetsRef = header.offsets else { return }
        withExtendedLifetime(dataset) {
            let offsets = dataset.base + offsetsRef.offset
            let bytes = (dataset.base + header.values.offset).assumingMemoryBound(to: UInt8.self)
            for i in 0..<count where !isNull(i) {
                let start = Int(offsets.load(fromByteOffset: i * 8, as: Int64.self))
                let end = Int(offsets.load(fromByteOffset: i * 8 + 8, as: Int64.self))
                body(UnsafeBufferPointer(start: bytes + start, count: end - start))
            }
        }
    }
}
