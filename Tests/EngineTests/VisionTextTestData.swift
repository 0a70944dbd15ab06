import Foundation
import NebulaEngine

/// Data helpers of the CNN and text-classifier acceptance tests: files under `Tests/Data`, an RFC 4180
/// CSV reader, and the seeded split.
enum VisionTextData {
    /// Repository root: three levels up from `Tests/EngineTests/<file>.swift`.
    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    static func dataFile(_ name: String) -> URL {
        repositoryRoot.appendingPathComponent("Tests/Data").appendingPathComponent(name)
    }

    /// Records of an RFC 4180 CSV file (the header is the first record): fields separated by commas,
    /// optionally quoted with `"`; inside quotes `""` is a quote and commas / line breaks are literal;
    /// records end at LF or CRLF; a final line break adds no empty record.
    static func readCSV(_ name: String) throws -> [[String]] {
        let bytes = try [UInt8](Data(contentsOf: dataFile(name)))
        var records: [[String]] = []
        var record: [String] = []
        var field: [UInt8] = []
        var quoted = false, i = 0
        func endField() {
            record.append(String(decoding: field, as: UTF8.self))
            field.removeAll(keepingCapacity: true)
        }
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
                endField()
            } else if b == UInt8(ascii: "\n") || b == UInt8(ascii: "\r") {
                if b == UInt8(ascii: "\r") && i + 1 < bytes.count && bytes[i + 1] == UInt8(ascii: "\n") { i += 1 }
                endField()
                records.append(record)
                record.removeAll(keepingCapacity: true)
            } else {
                field.append(b)
            }
            i += 1
        }
        if !field.isEmpty || !record.isEmpty {
            endField()
            records.append(record)
        }
        return records
    }

    /// A seeded row split, the same as the MLP digits test's: `Shuffle.permutation(count)` from
    /// `SeededGenerator(seed:)`, then the last ⌈testFraction · count⌉ rows (sklearn's rounding of
    /// `test_size`) are the test set and the rest, in permuted order, the training set.
    static func seededSplit(count: Int, seed: UInt64, testFraction: Double = 0.2) -> (train: [Int], test: [Int]) {
        var rng = SeededGenerator(seed: seed)
        let order = Shuffle.permutation(count, using: &rng)
        let testCount = Int((Double(count) * testFraction).rounded(.up))
        return (Array(order.dropLast(testCount)), Array(order.suffix(testCount)))
    }

    static func accuracy(_ predicted: [Int], _ expected: [Int]) -> Double {
        Double(zip(predicted, expected).filter { $0 == $1 }.count) / Double(max(1, expected.count))
    }
}
