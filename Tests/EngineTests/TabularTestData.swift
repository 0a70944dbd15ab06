import Foundation
import NebulaEngine

/// Tabular data sets of the metrics / linear / GBDT acceptance tests, read from `Tests/Data` with the target
/// column named by `Tests/Data/MANIFEST.json`.
///
/// Encoding (documented here because the scores depend on it):
/// - numeric columns → Float; an empty field, `NA` or `nan` → NaN (missing);
/// - other string columns → ordinal codes in sorted order of the distinct values, empty → NaN
///   (penguins: `island`, `sex`);
/// - a `date` column (`YYYY-MM-DD`, Seattle weather) → three numeric features appended after the other
///   columns (derive, then drop the date): year, month (1–12) and day of year (1–366). The year matters:
///   the label vocabulary of that data set drifts by year (2012 is mostly "rain", 2014–15 "sun"/"fog"), and
///   without it the GBDT scores about 0.54 (scikit-learn's split) to 0.64 (ours) instead of 0.77–0.79.
///   Feature order matters a little too (equal gains go to the first feature, as in scikit-learn);
/// - the target: classification labels → codes in sorted order of the distinct values (numeric labels
///   in numeric order), regression → Double.
enum TabularTestData {
    struct Dataset {
        var name: String
        var featureNames: [String]
        /// `[rows, features]`.
        var x: Tensor
        /// Regression targets, or the class codes as Double.
        var targets: [Double]
        /// Class codes (empty for regression).
        var labels: [Int]
        var classNames: [String]
        var classes: Int { classNames.count }
        var rows: Int { x.rows }
    }

    static let dataDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Data")

    struct ManifestEntry: Decodable {
        var name: String
        var file: String
        var task: String
        var target: String
        var drop_cols: [String]?
    }

    static func load(_ name: String) throws -> Dataset {
        let manifest = try JSONDecoder().decode([ManifestEntry].self,
                                                from: Data(contentsOf: dataDirectory.appendingPathComponent("MANIFEST.json")))
        guard let entry = manifest.first(where: { $0.name == name }) else {
            throw CocoaError(.fileNoSuchFile, userInfo: [NSLocalizedDescriptionKey: "\(name) is not in MANIFEST.json"])
        }
        let records = try readCSV(dataDirectory.appendingPathComponent(entry.file))
        let header = records[0], body = records.dropFirst().filter { !($0.count == 1 && $0[0].isEmpty) }
        guard let targetColumn = header.firstIndex(of: entry.target) else {
            throw CocoaError(.fileReadCorruptFile, userInfo: [NSLocalizedDescriptionKey: "no target \(entry.target)"])
        }
        let dropped = Set(entry.drop_cols ?? [])
        var names: [String] = []
        var columns: [[Float]] = []
        var dateNames: [String] = []
        var dateColumns: [[Float]] = []
        for (c, columnName) in header.enumerated() where c != targetColumn && !dropped.contains(columnName) {
            let raw = body.map { $0[c] }
            if columnName == "date" {
                let parts = raw.map { $0.split(separator: "-").compactMap { Int($0) } }
                dateNames += ["year", "month", "day_of_year"]
                dateColumns.append(parts.map { Float($0[0]) })
                dateColumns.append(parts.map { Float($0[1]) })
                dateColumns.append(parts.map { Float(dayOfYear(year: $0[0], month: $0[1], day: $0[2])) })
            } else if raw.allSatisfy({ isMissing($0) || Double($0) != nil }) {
                names.append(columnName)
                columns.append(raw.map { isMissing($0) ? .nan : Float(Double($0)!) })
            } else {
                let codes = Dictionary(uniqueKeysWithValues: Set(raw.filter { !isMissing($0) }).sorted().enumerated()
                    .map { ($1, $0) })
                names.append(columnName)
                columns.append(raw.map { isMissing($0) ? .nan : Float(codes[$0]!) })
            }
        }
        names += dateNames
        columns += dateColumns
        let n = body.count, d = columns.count
        var storage = [Float](repeating: 0, count: n * d)
        for j in 0..<d { for i in 0..<n { storage[i * d + j] = columns[j][i] } }
        let x = Tensor(shape: [n, d], storage: storage)
        let rawTarget = body.map { $0[targetColumn] }
        if entry.task == "regression" {
            return Dataset(name: name, featureNames: names, x: x, targets: rawTarget.map { Double($0)! }, labels: [],
                           classNames: [])
        }
        let distinct = Set(rawTarget)
        let classNames = distinct.allSatisfy({ Double($0) != nil })
            ? distinct.sorted { Double($0)! < Double($1)! } : distinct.sorted()
        let code = Dictionary(uniqueKeysWithValues: classNames.enumerated().map { ($1, $0) })
        let labels = rawTarget.map { code[$0]! }
        return Dataset(name: name, featureNames: names, x: x, targets: labels.map(Double.init), labels: labels,
                       classNames: classNames)
    }

    /// The 80/20 split of the acceptance tests: a Fisher–Yates shuffle of 0..<n driven by
    /// `SeededGenerator(seed: 0)`, the last ⌈0.2·n⌉ rows of the permutation are the test set. Not
    /// scikit-learn's `train_test_split(random_state=0)` (a different generator), so the test rows — and on
    /// these small sets the scores — differ somewhat from BASELINES.md.
    static func split(rows n: Int, seed: UInt64 = 0, testFraction: Double = 0.2) -> (train: [Int], test: [Int]) {
        var rng = SeededGenerator(seed: seed)
        var order = Array(0..<n)
        for i in stride(from: n - 1, to: 0, by: -1) { order.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
        let test = Int((Double(n) * testFraction).rounded(.up))
        return (Array(order.prefix(n - test)), Array(order.suffix(test)))
    }

    /// scikit-learn's `train_test_split(test_size=0.2, random_state=0)` rows (the split of BASELINES.md):
    /// `ShuffleSplit` takes `numpy.random.RandomState(0).permutation(n)`, the first ⌈0.2·n⌉ entries are the
    /// test rows and the rest the training rows. Reproduced with `NumpyRandomState`.
    static func sklearnSplit(rows n: Int, testFraction: Double = 0.2) -> (train: [Int], test: [Int]) {
        var rng = NumpyRandomState(seed: 0)
        let permutation = rng.permutation(n)
        let test = Int((Double(n) * testFraction).rounded(.up))
        return (Array(permutation[test...]), Array(permutation[..<test]))
    }

    /// Train and test parts of a data set, by our seeded split or by scikit-learn's.
    static func trainTest(_ data: Dataset, sklearn: Bool = false) -> (train: Dataset, test: Dataset) {
        let (train, test) = sklearn ? sklearnSplit(rows: data.rows) : split(rows: data.rows)
        func subset(_ rows: [Int]) -> Dataset {
            var d = data
            d.x = data.x.gatherRows(rows)
            d.targets = rows.map { data.targets[$0] }
            d.labels = data.labels.isEmpty ? [] : rows.map { data.labels[$0] }
            return d
        }
        return (subset(train), subset(test))
    }

    static func isMissing(_ field: String) -> Bool { field.isEmpty || field == "NA" || field.lowercased() == "nan" }

    static func dayOfYear(year: Int, month: Int, day: Int) -> Int {
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
        let before = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334]
        return before[month - 1] + day + (leap && month > 2 ? 1 : 0)
    }

    /// Records of a CSV file: comma-separated, fields optionally quoted with `"` (`""` inside quotes is a
    /// quote; commas and line breaks inside quotes are literal), LF or CRLF line ends.
    static func readCSV(_ url: URL) throws -> [[String]] {
        let bytes = try [UInt8](Data(contentsOf: url))
        var records: [[String]] = [], record: [String] = [], field: [UInt8] = []
        var quoted = false, i = 0
        while i < bytes.count {
            let b = bytes[i]
            if quoted {
                if b == UInt8(ascii: "\"") {
                    if i + 1 < bytes.count && bytes[i + 1] == UInt8(ascii: "\"") {
                        field.append(b)
                        i += 1
                    } else {
                        quoted = false
                    }
                } else {
                    field.append(b)
                }
            } else if b == UInt8(ascii: "\"") && field.isEmpty {
                quoted = true
            } else if b == UInt8(ascii: ",") {
                record.append(String(decoding: field, as: UTF8.self))
                field.removeAll(keepingCapacity: true)
            } else if b == UInt8(ascii: "\n") || b == UInt8(ascii: "\r") {
                if b == UInt8(ascii: "\r") && i + 1 < bytes.count && bytes[i + 1] == UInt8(ascii: "\n") { i += 1 }
                record.append(String(decoding: field, as: UTF8.self))
                field.removeAll(keepingCapacity: true)
                records.append(record)
                record.removeAll(keepingCapacity: true)
            } else {
                field.append(b)
            }
            i += 1
        }
        if !field.isEmpty || !record.isEmpty {
            record.append(String(decoding: field, as: UTF8.self))
            records.append(record)
        }
        return records
    }
}

/// numpy's legacy `RandomState(seed)` for an integer seed, as far as `permutation` needs it: MT19937 seeded
/// by `init_genrand(seed)`, and `shuffle`'s Fisher–Yates from the end with `random_interval` (a masked
/// 32-bit draw, rejected while above the bound).
struct NumpyRandomState {
    private var mt = [UInt32](repeating: 0, count: 624)
    private var index = 624

    init(seed: UInt32) {
        mt[0] = seed
        for i in 1..<624 { mt[i] = 1_812_433_253 &* (mt[i - 1] ^ (mt[i - 1] >> 30)) &+ UInt32(i) }
    }

    mutating func nextUInt32() -> UInt32 {
        if index >= 624 {
            for i in 0..<624 {
                let y = (mt[i] & 0x8000_0000) | (mt[(i + 1) % 624] & 0x7fff_ffff)
                mt[i] = mt[(i + 397) % 624] ^ (y >> 1) ^ (y & 1 == 0 ? 0 : 0x9908_b0df)
            }
            index = 0
        }
        var y = mt[index]
        index += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9d2c_5680
        y ^= (y << 15) & 0xefc6_0000
        y ^= y >> 18
        return y
    }

    /// A uniform integer in 0...max (numpy's `random_interval` for max < 2³²).
    mutating func interval(_ max: UInt32) -> UInt32 {
        if max == 0 { return 0 }
        var mask = max
        mask |= mask >> 1
        mask |= mask >> 2
        mask |= mask >> 4
        mask |= mask >> 8
        mask |= mask >> 16
        while true {
            let value = nextUInt32() & mask
            if value <= max { return value }
        }
    }

    /// `RandomState.permutation(n)`.
    mutating func permutation(_ n: Int) -> [Int] {
        var a = Array(0..<n)
        for i in stride(from: n - 1, through: 1, by: -1) { a.swapAt(i, Int(interval(UInt32(i)))) }
        return a
    }
}
