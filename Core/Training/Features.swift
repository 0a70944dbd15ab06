import Foundation
import NebulaEngine

/// Turns table columns into a numeric feature matrix: numbers standardised (mean-imputed), booleans
/// 0/1, dates as year/month/day-of-week/day-of-year, categoricals one-hot (top 50 levels, the rest
/// and missing in one bucket). Fitted on the training rows only; stored with the model.
public struct FeatureEncoder: Codable, Sendable, Equatable {
    public enum Encoding: Codable, Sendable, Equatable {
        case numeric(mean: Double, std: Double)
        case boolean
        case date
        case oneHot(levels: [String])
    }

    public struct Column: Codable, Sendable, Equatable {
        public var name: String
        public var kind: ColumnKind
        public var encoding: Encoding
    }

    public var columns: [Column]

    public var width: Int {
        columns.reduce(0) { n, c in
            switch c.encoding {
            case .numeric, .boolean: return n + 1
            case .date: return n + 4
            case .oneHot(let levels): return n + levels.count + 1
            }
        }
    }

    public var featureNames: [String] {
        columns.flatMap { c -> [String] in
            switch c.encoding {
            case .numeric, .boolean: return [c.name]
            case .date: return ["\(c.name).year", "\(c.name).month", "\(c.name).weekday", "\(c.name).yday"]
            case .oneHot(let levels): return levels.map { "\(c.name)=\($0)" } + ["\(c.name)=other"]
            }
        }
    }

    /// Fits on `rows` of `table` using the columns `names` (text columns are not encoded here).
    public static func fit(_ table: CSVTable, columns names: [String], rows: [Int]) throws -> FeatureEncoder {
        var out: [Column] = []
        for name in names {
            let values = try rows.map { table.columns[try table.column(named: name)][$0] }
            let kind = ColumnInference.kind(of: values)
            switch kind {
            case .numeric:
                let xs = values.compactMap { isMissing($0) ? nil : Double($0.trimmingCharacters(in: .whitespaces)) }
                let mean = xs.isEmpty ? 0 : xs.reduce(0, +) / Double(xs.count)
                let variance = xs.isEmpty ? 0 : xs.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(xs.count)
                out.append(Column(name: name, kind: kind, encoding: .numeric(mean: mean, std: variance > 0 ? variance.squareRoot() : 1)))
            case .boolean:
                out.append(Column(name: name, kind: kind, encoding: .boolean))
            case .date:
                out.append(Column(name: name, kind: kind, encoding: .date))
            case .categorical:
                var counts: [String: Int] = [:]
                for v in values where !isMissing(v) { counts[v, default: 0] += 1 }
                let levels = counts.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.prefix(50).map(\.key)
                out.append(Column(name: name, kind: kind, encoding: .oneHot(levels: levels)))
            case .text:
                continue
            }
        }
        return FeatureEncoder(columns: out)
    }

    /// The feature matrix [rows, width] for `rows` of `table`.
    public func transform(_ table: CSVTable, rows: [Int]) throws -> Tensor {
        var out = Tensor(zeros: [rows.count, width])
        var offset = 0
        for c in columns {
            let values = table.columns[try table.column(named: c.name)]
            switch c.encoding {
            case .numeric(let mean, let std):
                for (r, row) in rows.enumerated() {
                    let v = values[row]
                    var x = mean
                    if !isMissing(v) {
                        guard let parsed = Double(v.trimmingCharacters(in: .whitespaces)) else {
                            throw TrainingError("column '\(c.name)' row \(row + 2): '\(v)' is not a number")
                        }
                        x = parsed
                    }
                    out[r, offset] = Float((x - mean) / std)
                }
                offset += 1
            case .boolean:
                for (r, row) in rows.enumerated() {
                    out[r, offset] = ["true", "yes", "t", "y", "1"].contains(values[row].lowercased()) ? 1 : 0
                }
                offset += 1
            case .date:
                for (r, row) in rows.enumerated() {
                    guard let d = parseDate(values[row]) else { continue }
                    let comps = DateComponents(calendar: Calendar(identifier: .gregorian), year: d.year, month: d.month, day: d.day)
                    let date = Calendar(identifier: .gregorian).date(from: comps) ?? Date(timeIntervalSince1970: 0)
                    let weekday = Calendar(identifier: .gregorian).component(.weekday, from: date)
                    let yday = Calendar(identifier: .gregorian).ordinality(of: .day, in: .year, for: date) ?? 1
                    out[r, offset] = Float(d.year - 2000) / 10
                    out[r, offset + 1] = Float(d.month - 1) / 11
                    out[r, offset + 2] = Float(weekday - 1) / 6
                    out[r, offset + 3] = Float(yday - 1) / 365
                }
                offset += 4
            case .oneHot(let levels):
                let index = Dictionary(uniqueKeysWithValues: levels.enumerated().map { ($1, $0) })
                for (r, row) in rows.enumerated() { out[r, offset + (index[values[row]] ?? levels.count)] = 1 }
                offset += levels.count + 1
            }
        }
        return out
    }
}

/// Class labels of a classification target, in a stable order (numeric order when all are numbers).
public struct LabelEncoder: Codable, Sendable, Equatable {
    public var classes: [String]

    public static func fit(_ values: [String]) -> LabelEncoder {
        let distinct = Set(values.filter { !isMissing($0) })
        let numeric = distinct.allSatisfy { Double($0) != nil }
        return LabelEncoder(classes: distinct.sorted { numeric ? Double($0)! < Double($1)! : $0 < $1 })
    }

    public func encode(_ value: String) -> Int? { classes.firstIndex(of: value) }
}

/// Seeded shuffle split: the last `testFraction` of the shuffled rows are the test set. With
/// `stratifyBy`, each class is split separately so both sets keep the class proportions.
public func trainTestSplit(rows: Int, testFraction: Double, seed: UInt64, stratifyBy labels: [Int]? = nil) -> (train: [Int], test: [Int]) {
    var rng = SeededGenerator(seed: seed)
    func split(_ indices: [Int]) -> ([Int], [Int]) {
        var shuffled = indices
        shuffled.shuffle(using: &rng)
        let nTest = Int((Double(shuffled.count) * testFraction).rounded())
        return (Array(shuffled.dropLast(nTest)), Array(shuffled.suffix(nTest)))
    }
    guard let labels else {
        let (a, b) = split(Array(0..<rows))
        return (a, b)
    }
    var train: [Int] = [], test: [Int] = []
    for cls in Set(labels).sorted() {
        let (a, b) = split((0..<rows).filter { labels[$0] == cls })
        train += a
        test += b
    }
    return (train.sorted(), test.sorted())
}
