import Foundation

/// "512 B", "1.5 KiB", "3.2 GiB": byte counts for people (CLI tables, error messages).
public func humanBytes(_ bytes: UInt64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
    var v = Double(bytes)
    var i = 0
    while v >= 1024, i < units.count - 1 {
        v /= 1024
        i += 1
    }
    return i == 0 ? "\(bytes) B" : String(format: "%.1f %@", v, units[i])
}

/// Parses `k=v,k=v` labels (`--labels`); an item without `=` or with an empty key is an error that
/// names it.
public func parseLabels(_ text: String?) throws -> [String: String] {
    var labels: [String: String] = [:]
    for pair in (text ?? "").split(separator: ",") where !pair.isEmpty {
        let parts = pair.split(separator: "=", maxSplits: 1)
        guard parts.count == 2, !parts[0].isEmpty else {
            throw LabelError(item: String(pair))
        }
        labels[String(parts[0])] = String(parts[1])
    }
    return labels
}

public struct LabelError: Error, CustomStringConvertible, Equatable {
    public var item: String
    public init(item: String) { self.item = item }
    public var description: String { "label '\(item)' is not key=value (e.g. --labels rack=a,gpu=a100)" }
}
