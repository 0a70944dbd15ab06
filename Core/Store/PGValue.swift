/// A query parameter or `COPY` value.
///
/// Values travel in PostgreSQL's text format (see ``textValue``) with an unspecified type, so the
/// server infers each parameter's type from its use in the statement, exactly as for a literal:
/// `WHERE id = $1` makes `$1` the type of `id`. Add a cast (`$1::bigint`) where the statement gives
/// no context (`SELECT $1`).
public enum PGValue: Sendable, Hashable {
    case null
    case text(String)
    case int(Int64)
    case double(Double)
    case bool(Bool)

    /// `.text(value)`, or `.null` when `value` is nil.
    public init(_ value: String?) {
        self = value.map(PGValue.text) ?? .null
    }

    /// `.int(value)`, or `.null` when `value` is nil. Traps if `value` does not fit in `Int64`.
    public init<I: BinaryInteger>(_ value: I?) {
        self = value.map { .int(Int64($0)) } ?? .null
    }

    /// `.double(value)`, or `.null` when `value` is nil.
    public init(_ value: Double?) {
        self = value.map(PGValue.double) ?? .null
    }

    /// `.bool(value)`, or `.null` when `value` is nil.
    public init(_ value: Bool?) {
        self = value.map(PGValue.bool) ?? .null
    }

    /// The value in PostgreSQL's text format, or nil for SQL NULL.
    ///
    /// Doubles use Swift's shortest round-trip spelling, with `NaN`, `Infinity` and `-Infinity`
    /// spelled as PostgreSQL spells them; booleans are `t` / `f`.
    public var textValue: String? {
        switch self {
        case .null: nil
        case .text(let value): value
        case .int(let value): String(value)
        case .double(let value): Self.postgresText(value)
        case .bool(let value): value ? "t" : "f"
        }
    }

    static func postgresText(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value == .infinity { return "Infinity" }
        if value == -.infinity { return "-Infinity" }
        return value.description
    }
}

extension PGValue: ExpressibleByStringLiteral {
    public init(stringLiteral value: String) {
        self = .text(value)
    }
}

extension PGValue: ExpressibleByIntegerLiteral {
    public init(integerLiteral value: Int64) {
        self = .int(value)
    }
}

extension PGValue: ExpressibleByFloatLiteral {
    public init(floatLiteral value: Double) {
        self = .double(value)
    }
}

extension PGValue: ExpressibleByBooleanLiteral {
    public init(booleanLiteral value: Bool) {
        self = .bool(value)
    }
}

extension PGValue: ExpressibleByNilLiteral {
    public init(nilLiteral: ()) {
        self = .null
    }
}
