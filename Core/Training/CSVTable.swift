import Foundation

/// A CSV file read whole into string columns: RFC 4180 (quoted fields, doubled quotes, embedded
/// newlines, CRLF), UTF-8 with or without BOM, comma separated, first row is the header. Used by
/// `nebula train` on files that fit in memory; the streaming, typed ingest of datasets is separate.
public struct CSVTable: Sendable {
    public var header: [String]
    /// columns[c][r]
    public var columns: [[String]]
    public var rowCount: Int { columns.first?.count ?? 0 }

    public init(header: [String], columns: [[String]]) {
        self.header = header
        self.columns = columns
    }

    public static func read(path: String) throws -> CSVTable {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TrainingError("cannot read \(path): no such file or no permission")
        }
        return try parse(Array(data), source: path)
    }

    public static func parse(_ bytes: [UInt8], source: String = "input") throws -> CSVTable {
        var start = 0
        if bytes.count >= 3, bytes[0] == 0xEF, bytes[1] == 0xBB, bytes[2] == 0xBF { start = 3 }
        var rows: [[String]] = []
        var row: [String] = []
        var field: [UInt8] = []
        var inQuotes = false
        var line = 1
        var rowStartLine = 1
        var i = start
        func endField() {
            row.append(String(decoding: field, as: UTF8.self))
            field.removeAll(keepingCapacity: true)
        }
        func endRow() throws {
            endField()
            if !(row.count == 1 && row[0].isEmpty) {  // skip blank lines
                if let width = rows.first?.count, row.count != width {
                    throw TrainingError("\(source):\(rowStartLine): expected \(width) fields like the header, found \(row.count)")
                }
                rows.append(row)
            }
            row.removeAll(keepingCapacity: true)
            rowStartLine = line
        }
        while i < bytes.count {
            let b = bytes[i]
            if inQuotes {
                if b == UInt8(ascii: "\"") {
                    if i + 1 < bytes.count, bytes[i + 1] == UInt8(ascii: "\"") {
                        field.append(b)
                        i += 1
                    } else {
                        inQuotes = false
                    }
                } else {
                    if b == UInt8(ascii: "\n") { line += 1 }
                    field.append(b)
                }
            } else {
                switch b {
                case UInt8(ascii: "\""):
                    guard field.isEmpty else {
                        throw TrainingError("\(source):\(line): a quote inside an unquoted field (column \(row.count + 1)); quote the whole field and double inner quotes")
                    }
                    inQuotes = true
                case UInt8(ascii: ","):
                    endField()
                case UInt8(ascii: "\n"):
                    line += 1
                    try endRow()
                case UInt8(ascii: "\r"):
                    break
                default:
                    field.append(b)
                }
            }
            i += 1
        }
        if inQuotes { throw TrainingError("\(source):\(rowStartLine): a quoted field is never closed") }
        if !field.isEmpty || !row.isEmpty { try endRow() }
        guard let header = rows.first else { throw TrainingError("\(source) is empty: expected a header row") }
        guard rows.count > 1 else { throw TrainingError("\(source) has a header but no rows") }
        var columns = [[String]](repeating: [], count: header.count)
        for c in 0..<header.count { columns[c].reserveCapacity(rows.count - 1) }
        for r in rows.dropFirst() { for c in 0..<header.count { columns[c].append(r[c]) } }
        return CSVTable(header: header.map { $0.trimmingCharacters(in: .whitespaces) }, columns: columns)
    }

    public func column(named name: String) throws -> Int {
        guard let c = header.firstIndex(of: name) else {
            throw TrainingError("no column named '\(name)'; the columns are: \(header.joined(separator: ", "))")
        }
        return c
    }
}

/// A problem with the user's data or options, with what to change.
public struct TrainingError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
