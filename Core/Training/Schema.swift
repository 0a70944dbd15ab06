import Foundation
import NebulaCommon

/// What a column holds, inferred from its values.
public enum ColumnKind: String, Codable, Sendable, Equatable {
    case numeric, boolean, date, categorical, text
}

/// Values read as missing.
public let missingTokens: Set<String> = ["", "na", "n/a", "nan", "null", "none", "?", "-"]

public func isMissing(_ s: String) -> Bool { missingTokens.contains(s.trimmingCharacters(in: .whitespaces).lowercased()) }

/// Parses a date `YYYY-MM-DD` (optionally followed by a time) into (year, month, day).
public func parseDate(_ s: String) -> (year: Int, month: Int, day: Int)? {
    let t = s.trimmingCharacters(in: .whitespaces)
    let u = Array(t.utf8)
    guard u.count >= 10, u[4] == UInt8(ascii: "-"), u[7] == UInt8(ascii: "-"),
          let y = Int(t.prefix(4)), let m = Int(t.dropFirst(5).prefix(2)), let d = Int(t.dropFirst(8).prefix(2)),
          (1...12).contains(m), (1...31).contains(d) else { return nil }
    return (y, m, d)
}

public enum ColumnInference {
    /// Kind of a column of strings: numeric when every present value parses as a number; boolean for
    /// true/false-like values; date for ISO dates; text when values average ≥ 3 words and are mostly
    /// distinct; categorical otherwise.
    public static func kind(of values: [String]) -> ColumnKind {
        let present = values.filter { !isMissing($0) }
        guard !present.isEmpty else { return .categorical }
        if present.allSatisfy({ Double($0.trimmingCharacters(in: .whitespaces)) != nil }) { return .numeric }
        let booleans: Set<String> = ["true", "false", "yes", "no", "t", "f", "y", "n"]
        if present.allSatisfy({ booleans.contains($0.lowercased()) }) { return .boolean }
        if present.allSatisfy({ parseDate($0) != nil }) { return .date }
        let words = present.reduce(0) { $0 + $1.split(whereSeparator: \.isWhitespace).count }
        let distinct = Set(present).count
        if Double(words) / Double(present.count) >= 3, Double(distinct) / Double(present.count) > 0.01 { return .text }
        return .categorical
    }
}

/// The learning task for a target column.
public enum TaskKind: String, Codable, Sendable, Equatable {
    case regression, binary, multiclass
}

public enum TaskDetection {
    /// AutoGluon's `infer_problem_type` rules (Note [Problem type rule] in NebulaCommon's
    /// `ProblemTypeRule`): 2 distinct values → binary; non-numeric → multiclass; numeric → multiclass
    /// only when all values are integral and the distinct count is ≤ 1000 and its ratio to the rows is
    /// ≤ 0.05 (more than 1000 rows) or ≤ 0.1; otherwise regression.
    public static func detect(_ values: [String], column: String) throws -> (task: TaskKind, reason: String) {
        let present = values.filter { !isMissing($0) }
        let distinct = Set(present)
        let numbers = present.compactMap { Double($0.trimmingCharacters(in: .whitespaces)) }
        let numeric = !present.isEmpty && numbers.count == present.count
        let integral = numeric && numbers.allSatisfy { $0.rounded() == $0 }
        switch ProblemTypeRule.infer(present: present.count, distinct: distinct.count, numeric: numeric, integral: integral) {
        case .noValues:
            throw TrainingError("the target column '\(column)' has no values: choose another --target")
        case .singleValue:
            throw TrainingError("the target column '\(column)' has a single value ('\(distinct.first!)'): there is nothing to learn")
        case .detected(let kind, let reason):
            let task: TaskKind = switch kind {
            case .binary: .binary
            case .multiclass: .multiclass
            case .regression: .regression
            }
            return (task, reason)
        }
    }
}
