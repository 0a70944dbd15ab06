import Foundation

// Note [Problem type rule]
// ~~~~~~~~~~~~~~~~~~~~~~~~
// AutoGluon's `infer_problem_type` (autogluon.core.utils.utils), on the non-missing target values:
//   * exactly 2 distinct values → binary (whatever their type);
//   * otherwise non-numeric values (strings, categories) → multiclass;
//   * otherwise numbers → multiclass when the distinct count is ≤ 1000 and the ratio distinct/values
//     is ≤ 0.05 (more than 1000 values) or ≤ 0.1 (1000 or fewer), and, for floats, every value is
//     integral (`np.array_equal(y, y.astype(int))`); else regression.
// Unlike AutoGluon, no values and a single distinct value are reported here rather than left to fail
// later: there is nothing to learn. The rule is written once, here; the CSV path of training
// (`TaskDetection`) and the dataset service (`TaskInference`) count their values and call it.

/// The problem type of a target column from counts of its values (Note [Problem type rule]).
public enum ProblemTypeRule {
    public enum Kind: String, Codable, Sendable, Equatable {
        case binary, multiclass, regression
    }

    public enum Outcome: Sendable, Equatable {
        case detected(Kind, reason: String)
        /// Every value is missing.
        case noValues
        /// One distinct value: nothing to learn.
        case singleValue
    }

    /// More distinct numbers than this are always a regression target.
    public static let multiclassUpperLimit = 1000

    /// The largest distinct/values ratio of a numeric multiclass target.
    public static func ratioLimit(present: Int) -> Double { present > 1000 ? 0.05 : 0.1 }

    /// - Parameters:
    ///   - present: non-missing values.
    ///   - distinct: distinct non-missing values.
    ///   - numeric: the values are numbers (not strings, categories or booleans).
    ///   - integral: every number is a whole number (always true for an integer column).
    public static func infer(present: Int, distinct: Int, numeric: Bool, integral: Bool) -> Outcome {
        if present == 0 { return .noValues }
        if distinct <= 1 { return .singleValue }
        if distinct == 2 { return .detected(.binary, reason: "2 distinct values") }
        guard numeric else { return .detected(.multiclass, reason: "\(distinct) distinct non-numeric values") }
        let ratio = Double(distinct) / Double(present)
        let limit = ratioLimit(present: present)
        let shown = String(format: "%.3f", ratio)
        if distinct > multiclassUpperLimit {
            return .detected(.regression, reason: "\(distinct) distinct numeric values (more than \(multiclassUpperLimit))")
        }
        if ratio > limit {
            let what = integral ? "integer" : "numeric"
            return .detected(.regression, reason: "\(distinct) distinct \(what) values (ratio \(shown) > \(limit))")
        }
        if !integral {
            return .detected(.regression, reason: "\(distinct) distinct numeric values that are not all integers")
        }
        return .detected(.multiclass, reason: "\(distinct) distinct integer values (ratio \(shown) <= \(limit))")
    }
}
