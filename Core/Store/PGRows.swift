/// The rows a statement returned, as PostgreSQL text values (nil is SQL NULL), copied out of the
/// `PGresult` so they outlive it and can cross isolation domains.
///
/// A collection of ``PGRow``s: `for row in rows { try row.int64("id") }`.
public struct PGRows: Sendable, RandomAccessCollection {
    /// Column names in result order.
    public var columns: [String] { layout.names }
    /// Every row's values in column order, in PostgreSQL's text format; nil is SQL NULL.
    public let rows: [[String?]]
    /// The row count from the command tag (`INSERT 0 3` → 3); 0 for commands that report none.
    public let affectedRows: Int

    let layout: ColumnLayout

    public init(columns: [String], rows: [[String?]], affectedRows: Int = 0) {
        self.layout = ColumnLayout(names: columns)
        self.rows = rows
        self.affectedRows = affectedRows
    }

    public var startIndex: Int { rows.startIndex }
    public var endIndex: Int { rows.endIndex }

    public subscript(position: Int) -> PGRow {
        PGRow(layout: layout, values: rows[position])
    }
}

/// Column names and a name → index lookup, shared by all rows of one result.
///
/// Immutable after `init`, hence `Sendable`.
final class ColumnLayout: Sendable {
    let names: [String]
    let indexByName: [String: Int]

    init(names: [String]) {
        self.names = names
        var index: [String: Int] = [:]
        // The first column of a given name wins, as in most drivers.
        for (position, name) in names.enumerated() where index[name] == nil {
            index[name] = position
        }
        self.indexByName = index
    }
}

/// One result row with typed accessors by column name.
///
/// Accessors throw ``PostgresError`` with code ``PostgresError/Code/decoding`` naming the column
/// when the column does not exist, is NULL where a value is required, or cannot be parsed.
/// The `optional…` variants return nil for NULL instead of throwing.
public struct PGRow: Sendable {
    let layout: ColumnLayout
    /// The row's values in column order, in text format; nil is SQL NULL.
    public let values: [String?]

    init(layout: ColumnLayout, values: [String?]) {
        self.layout = layout
        self.values = values
    }

    /// Column names in result order.
    public var columns: [String] { layout.names }

    /// The raw text value at `index` (nil for NULL). Traps when out of range, like an array.
    public subscript(index: Int) -> String? { values[index] }

    /// The raw text value of `column` (nil for NULL); throws when the column does not exist.
    public func value(_ column: String) throws -> String? {
        guard let index = layout.indexByName[column] else {
            let known = layout.names.joined(separator: ", ")
            throw PostgresError(.decoding, "column \"\(column)\" is not in the result (columns: \(known))")
        }
        return values[index]
    }

    public func string(_ column: String) throws -> String {
        try required(column, try optionalString(column))
    }

    public func optionalString(_ column: String) throws -> String? {
        try value(column)
    }

    public func int64(_ column: String) throws -> Int64 {
        try required(column, try optionalInt64(column))
    }

    public func optionalInt64(_ column: String) throws -> Int64? {
        try parse(column, as: "Int64") { Int64($0) }
    }

    public func int(_ column: String) throws -> Int {
        try required(column, try optionalInt(column))
    }

    public func optionalInt(_ column: String) throws -> Int? {
        try parse(column, as: "Int") { Int($0) }
    }

    public func double(_ column: String) throws -> Double {
        try required(column, try optionalDouble(column))
    }

    /// Parses PostgreSQL's float text, including `NaN`, `Infinity` and `-Infinity`; integer and
    /// `numeric` columns parse too.
    public func optionalDouble(_ column: String) throws -> Double? {
        try parse(column, as: "Double") { text in
            switch text {
            case "NaN": .nan
            case "Infinity": .infinity
            case "-Infinity": -.infinity
            default: Double(text)
            }
        }
    }

    public func bool(_ column: String) throws -> Bool {
        try required(column, try optionalBool(column))
    }

    /// Parses PostgreSQL's boolean text (`t` / `f`; `true` / `false` are accepted too).
    public func optionalBool(_ column: String) throws -> Bool? {
        try parse(column, as: "Bool") { text in
            switch text {
            case "t", "true": true
            case "f", "false": false
            default: nil
            }
        }
    }

    private func parse<T>(_ column: String, as typeName: String, _ convert: (String) -> T?) throws -> T? {
        guard let text = try value(column) else { return nil }
        guard let parsed = convert(text) else {
            throw PostgresError(.decoding, "column \"\(column)\": cannot parse \"\(text.prefix(64))\" as \(typeName)")
        }
        return parsed
    }

    private func required<T>(_ column: String, _ value: T?) throws -> T {
        guard let value else {
            throw PostgresError(.decoding, "column \"\(column)\" is NULL")
        }
        return value
    }
}
