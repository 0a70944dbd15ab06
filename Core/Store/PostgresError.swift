/// The one error type of NebulaStore.
///
/// `code` says what kind of operation failed and is what callers switch on; `message` says what
/// Nebula was doing; `libpqMessage` is libpq's own text (`PQerrorMessage` / `PQresultErrorMessage`),
/// captured on the line right after the failing call; `sqlState` is the server's five-character
/// SQLSTATE when the server reported one (`42601` syntax error, `23505` unique violation, …).
///
/// Messages never contain the connection password: connection targets are shown as
/// `user@host:port/dbname`, and the password is scrubbed from anything libpq says.
public struct PostgresError: Error, CustomStringConvertible, Sendable {
    /// An extensible error code: new codes can be added without breaking `switch`es, which must
    /// compare with `==` (or use `case .connection` patterns on `Code`'s static members).
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Storage: Hashable, Sendable {
            case connection, query, copy, migration, unavailable, decoding
        }

        private let storage: Storage

        private init(_ storage: Storage) {
            self.storage = storage
        }

        /// Connecting failed, the connection is closed, or it broke during a call.
        public static let connection = Code(.connection)
        /// The server or libpq rejected a query (the connection itself may still be fine).
        public static let query = Code(.query)
        /// A `COPY … FROM STDIN` failed.
        public static let copy = Code(.copy)
        /// Migrations were malformed or one failed to apply.
        public static let migration = Code(.migration)
        /// The database is known to be down and the reconnect backoff window has not passed yet:
        /// nothing was attempted. Callers should spool or retry later instead of waiting.
        public static let unavailable = Code(.unavailable)
        /// A result value was missing, NULL where a value was required, or could not be parsed.
        public static let decoding = Code(.decoding)

        public var description: String {
            switch storage {
            case .connection: "connection"
            case .query: "query"
            case .copy: "copy"
            case .migration: "migration"
            case .unavailable: "unavailable"
            case .decoding: "decoding"
            }
        }
    }

    /// What kind of operation failed.
    public let code: Code
    /// What Nebula was doing, in words (never contains a password).
    public let message: String
    /// The server's SQLSTATE, when the server reported one.
    public let sqlState: String?
    /// libpq's or the server's own message, trimmed, when there was one.
    public let libpqMessage: String?

    public init(_ code: Code, _ message: String = "", sqlState: String? = nil, libpqMessage: String? = nil) {
        self.code = code
        self.message = message
        self.sqlState = sqlState
        self.libpqMessage = libpqMessage
    }

    public var description: String {
        var text = "PostgresError.\(code)"
        if let sqlState { text += " [\(sqlState)]" }
        if !message.isEmpty { text += ": \(message)" }
        if let libpqMessage, !libpqMessage.isEmpty {
            text += message.isEmpty ? ": \(libpqMessage)" : " — \(libpqMessage)"
        }
        return text
    }
}
