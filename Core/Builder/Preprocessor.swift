import Foundation
import NebulaDataset
import NebulaEngine

// Note [One preprocessing path]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// The builder fits its preprocessing on the training rows only and applies it to *text values* —
// whatever a cell reads as (`ColumnView.string`, or a field of a prediction CSV). Training, the
// holdout evaluation and later predictions on a CSV therefore go through the same function, so a
// model predicts on a held-back CSV exactly what it predicted during its own evaluation. Per column:
//   numeric (integer, float, boolean): missing → the training mean, then (x − mean) / std;
//   categorical: one-hot of the (at most 32) most frequent training levels, plus "other or missing";
//   date / datetime: year, month, day of month, day of week, day of year, each standardised;
//   text: left to the text model (hashed word and character n-grams).

/// Fitted preprocessing of the feature columns (Note [One preprocessing path]).
public struct Preprocessor: Codable, Sendable, Equatable {
    public enum Encoding: Codable, Sendable, Equatable {
        case numeric(mean: Double, std: Double)
        case oneHot(levels: [String])
        case dateParts(means: [Double], stds: [Double])
    }

    public struct Column: Codable, Sendable, Equatable {
        public var name: String
        /// The stored type ("integer", "float", "categorical", ...), for schema checks on prediction input.
        public var type: String
        public var encoding: Encoding
    }

    public var columns: [Column]
    /// Free-text columns (the text model's input), and columns left out with the reason.
    public var textColumns: [String]
    public var skipped: [String]

    public static let maxLevels = 32

    public var width: Int {
        columns.reduce(0) { n, c in
            switch c.encoding {
            case .numeric: n + 1
            case .oneHot(let levels): n + levels.count + 1
            case .dateParts: n + 5
            }
        }
    }

    /// Names of the encoded features, in order (for importance and reports).
    public var featureNames: [String] {
        columns.flatMap { c -> [String] in
            switch c.encoding {
            case .numeric: [c.name]
            case .oneHot(let levels): levels.map { "\(c.name)=\($0)" } + ["\(c.name)=other"]
            case .dateParts: ["year", "month", "day", "weekday", "yearday"].map { "\(c.name).\($0)" }
            }
        }
    }

    /// Fits on `rows` of `dataset`, skipping `target`.
    public static func fit(_ dataset: ColumnarDataset, target: String, textColumns: [String], rows: [Int]) throws -> Preprocessor {
        var columns: [Column] = []
        var skipped: [String] = []
        for name in dataset.columnNames where name != target {
            let view = try dataset.column(name)
            if textColumns.contains(name) { continue }
            switch view.type {
            case .integer, .float, .boolean:
                var sum = 0.0, sumSq = 0.0, n = 0.0
                for r in rows { if let v = number(view.string(r)) { sum += v; sumSq += v * v; n += 1 } }
                guard n > 0 else { skipped.append("\(name): no values in the training rows"); continue }
                let mean = sum / n
                let std = max(0, sumSq / n - mean * mean).squareRoot()
                columns.append(Column(name: name, type: view.type.rawValue, encoding: .numeric(mean: mean, std: std > 1e-12 ? std : 1)))
            case .categorical, .text:
                var counts: [String: Int] = [:]
                for r in rows { if let s = view.string(r) { counts[s, default: 0] += 1 } }
                guard !counts.isEmpty else { skipped.append("\(name): no values in the training rows"); continue }
                if counts.count > rows.count / 2 && counts.count > maxLevels {
                    skipped.append("\(name): \(counts.count) distinct values (an identifier?)")
                    continue
                }
                let levels = counts.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.prefix(maxLevels).map(\.key)
                columns.append(Column(name: name, type: view.type.rawValue, encoding: .oneHot(levels: levels)))
            case .date, .datetime:
                var parts: [[Double]] = Array(repeating: [], count: 5)
                for r in rows { if let p = dateParts(view.string(r)) { for i in 0..<5 { parts[i].append(p[i]) } } }
                guard !parts[0].isEmpty else { skipped.append("\(name): no dates in the training rows"); continue }
                let means = parts.map { $0.reduce(0, +) / Double($0.count) }
                let stds = zip(parts, means).map { values, m in
                    let s = (values.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(values.count)).squareRoot()
                    return s > 1e-12 ? s : 1
                }
                columns.append(Column(name: name, type: view.type.rawValue, encoding: .dateParts(means: means, stds: stds)))
            }
        }
        return Preprocessor(columns: columns, textColumns: textColumns, skipped: skipped)
    }

    /// The feature matrix of `count` rows whose cells `value(column, row)` gives as text.
    /// Throws when a numeric column holds something that is not a number (naming column and row).
    public func transform(rows count: Int, value: (Int, Int) throws -> String?) throws -> Tensor {
        let width = self.width
        var out = [Float](repeating: 0, count: count * width)
        var offset = 0
        for (ci, column) in columns.enumerated() {
            switch column.encoding {
            case .numeric(let mean, let std):
                for r in 0..<count {
                    let text = try value(ci, r)
                    var v = mean
                    if let text, !isMissingText(text) {
                        guard let parsed = Self.number(text) else { throw BuilderError.notANumber(column: column.name, row: r, value: text) }
                        v = parsed
                    }
                    out[r * width + offset] = Float((v - mean) / std)
                }
                offset += 1
            case .oneHot(let levels):
                let index = Dictionary(uniqueKeysWithValues: levels.enumerated().map { ($1, $0) })
                for r in 0..<count {
                    let k = (try value(ci, r)).flatMap { index[$0] } ?? levels.count
                    out[r * width + offset + k] = 1
                }
                offset += levels.count + 1
            case .dateParts(let means, let stds):
                for r in 0..<count {
                    let text = try value(ci, r)
                    var parts = means
                    if let text, !isMissingText(text) {
                        guard let p = Self.dateParts(text) else { throw BuilderError.notADate(column: column.name, row: r, value: text) }
                        parts = p
                    }
                    for i in 0..<5 { out[r * width + offset + i] = Float((parts[i] - means[i]) / stds[i]) }
                }
                offset += 5
            }
        }
        return Tensor(shape: [count, width], storage: out)
    }

    static func number(_ s: String?) -> Double? {
        guard let s else { return nil }
        let t = s.trimmingCharacters(in: .whitespaces)
        switch t.lowercased() {
        case "true": return 1
        case "false": return 0
        default: return Double(t).flatMap { $0.isFinite ? $0 : nil }
        }
    }

    /// year, month, day, weekday (0 = Monday), day of year of an ISO date or date-time.
    static func dateParts(_ s: String?) -> [Double]? {
        guard let s, s.count >= 10 else { return nil }
        let d = s.prefix(10).split(separator: "-")
        guard d.count == 3, let y = Int(d[0]), let m = Int(d[1]), let day = Int(d[2]), (1...12).contains(m), (1...31).contains(day)
        else { return nil }
        // Days since 1970-01-01 (civil-from-days inverse, Howard Hinnant's algorithm).
        let yy = m <= 2 ? y - 1 : y
        let era = (yy >= 0 ? yy : yy - 399) / 400
        let yoe = yy - era * 400
        let doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146097 + doe - 719468
        let weekday = ((days % 7) + 7 + 3) % 7  // 1970-01-01 was a Thursday (3 when Monday is 0)
        let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
        let cumulative = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334]
        let yearday = cumulative[m - 1] + day + (leap && m > 2 ? 1 : 0)
        return [Double(y), Double(m), Double(day), Double(weekday), Double(yearday)]
    }
}

func isMissingText(_ s: String) -> Bool {
    let t = s.trimmingCharacters(in: .whitespaces).lowercased()
    return t.isEmpty || t == "na" || t == "nan" || t == "null" || t == "none" || t == "n/a"
}
