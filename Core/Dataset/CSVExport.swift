/// Writes a columnar dataset back out as RFC 4180 CSV, a block of rows at a time (downloads stream it).
/// Missing values become empty fields; fields with a comma, quote or line break are quoted.
public struct ColumnarCSVExporter {
    public let dataset: ColumnarDataset
    private let columns: [ColumnView]

    public init(path: String) throws {
        let dataset = try ColumnarDataset(path: path, verify: .header)
        self.dataset = dataset
        columns = (0..<dataset.columnCount).map { dataset.column(at: $0) }
    }

    /// Rows [start, start + rows) as CSV text (the header line first when start is 0); nil past the end.
    public func csv(from start: Int, rows: Int) -> String? {
        guard start < dataset.rowCount || (start == 0 && dataset.rowCount == 0 && !columns.isEmpty) else { return nil }
        var out = ""
        if start == 0 { out += columns.map { csvQuoted($0.name) }.joined(separator: ",") + "\n" }
        for r in start..<min(dataset.rowCount, start + rows) {
            out += columns.map { $0.string(r).map(csvQuoted) ?? "" }.joined(separator: ",")
            out += "\n"
        }
        return out
    }

}

/// A CSV field as RFC 4180 writes it: quoted (quotes doubled) when it holds a comma, quote or line break.
public func csvQuoted(_ value: String) -> String {
    guard value.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return value }
    return "\"" + value.replacingOccurrences(of: "\"", with: "\"\"") + "\""
}
