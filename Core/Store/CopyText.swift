/// PostgreSQL's `COPY` text format and identifier quoting: pure functions, tested without a server.
enum CopyText {
    /// `"name"` with embedded quotes doubled, so any string is a safe identifier.
    static func quoteIdentifier(_ name: String) throws(PostgresError) -> String {
        guard !name.isEmpty else {
            throw PostgresError(.query, "an identifier must not be empty")
        }
        guard !name.utf8.contains(0) else {
            throw PostgresError(.query, "identifier \"\(name)\" contains a NUL byte")
        }
        return "\"" + name.replacing("\"", with: "\"\"") + "\""
    }

    /// Checks every row before the COPY starts, so that encoding cannot fail half-way through.
    static func validate(_ rows: [[PGValue]], columnCount: Int) throws(PostgresError) {
        for (index, row) in rows.enumerated() {
            guard row.count == columnCount else {
                throw PostgresError(.copy, "row \(index) has \(row.count) values for \(columnCount) columns")
            }
            for (column, value) in row.enumerated() {
                if case .text(let text) = value, text.utf8.contains(0) {
                    throw PostgresError(.copy, "row \(index), column \(column) contains a NUL byte, which PostgreSQL text cannot hold")
                }
            }
        }
    }

    /// Appends one row: fields separated by tab, ended by newline, NULL as `\N`.
    static func appendRow(_ row: [PGValue], to buffer: inout [UInt8]) {
        for (index, value) in row.enumerated() {
            if index > 0 { buffer.append(tab) }
            appendField(value, to: &buffer)
        }
        buffer.append(newline)
    }

    /// Appends one field. Backslash, tab, newline and carriage return are the only bytes with a
    /// meaning inside a field; they are escaped (`\\`, `\t`, `\n`, `\r`). Every other byte,
    /// multi-byte UTF-8 included, is taken literally by the server.
    static func appendField(_ value: PGValue, to buffer: inout [UInt8]) {
        guard let text = value.textValue else {
            buffer.append(backslash)
            buffer.append(UInt8(ascii: "N"))
            return
        }
        for byte in text.utf8 {
            switch byte {
            case backslash: buffer.append(backslash); buffer.append(backslash)
            case tab: buffer.append(backslash); buffer.append(UInt8(ascii: "t"))
            case newline: buffer.append(backslash); buffer.append(UInt8(ascii: "n"))
            case carriageReturn: buffer.append(backslash); buffer.append(UInt8(ascii: "r"))
            default: buffer.append(byte)
            }
        }
    }

    private static let backslash = UInt8(ascii: "\\")
    private static let tab = UInt8(ascii: "\t")
    private static let newline = UInt8(ascii: "\n")
    private static let carriageReturn = UInt8(ascii: "\r")
}
