import Logging
import Synchronization

/// What services use to talk to PostgreSQL: one ``PostgresConnection``, connected on first use
/// and reconnected after it breaks, with exponential backoff while the server is unreachable.
///
/// ```swift
/// let client = PostgresClient(url: config.databaseURL, logger: logger)
/// let rows = try await client.withConnection { conn in
///     try conn.query("SELECT id, name FROM nodes WHERE state = $1", ["ready"])
/// }
/// ```
///
/// Failure behaviour, chosen so that callers can spool instead of waiting on a dead database:
/// - The first call connects. When a connect fails, no new connect is attempted for a backoff
///   window (100 ms doubling to 5 s, with jitter, by default); calls inside the window throw
///   ``PostgresError/Code/unavailable`` immediately, without touching the network.
/// - When a statement fails and libpq reports the connection as broken afterwards, the failing
///   call throws, the connection is marked broken, and the next call reconnects right away.
///
/// Calls are serialised on the one connection (its actor); all statements of one
/// `withConnection` body run back to back on it, so a body is also the unit for transactions.
///
/// Sendable: its mutable state (backoff, availability, closed flag) lives in a `Mutex` that is
/// never held across an `await`; the connection is an actor; everything else is immutable.
public final class PostgresClient: Sendable {
    private struct State {
        var backoff: ReconnectBackoff
        var available = false
        var closed = false
        var hasConnected = false
        var lastConnectError: PostgresError?
    }

    private let connection: PostgresConnection
    private let state: Mutex<State>
    private let logger: Logger

    /// Where the client connects, as `user@host:port/dbname` (no password).
    public var target: String { connection.target }

    /// Creates a client; nothing is connected until the first call.
    ///
    /// - Parameters:
    ///   - url: libpq connection string or URI; see ``PostgresConnection/init(url:logger:)``.
    ///   - backoff: reconnect delays after failed connects.
    public init(url: String, logger: Logger, backoff: ReconnectBackoff.Policy = .init()) {
        let connection = PostgresConnection(url: url, logger: logger)
        var logger = logger
        logger[metadataKey: "db.target"] = "\(connection.target)"
        self.connection = connection
        self.logger = logger
        self.state = Mutex(State(backoff: ReconnectBackoff(policy: backoff)))
    }

    /// The last known state: true after a successful connect or statement, false before the
    /// first connect, after a failed connect, after the connection broke, and after ``close()``.
    /// It does not probe the server.
    public var isAvailable: Bool {
        state.withLock { $0.available }
    }

    /// Runs `body` on the connection, connecting first when needed.
    ///
    /// `body` runs on the connection's own dispatch queue (never the cooperative pool) and may
    /// issue any number of synchronous statements.
    ///
    /// - Throws: ``PostgresError/Code/unavailable`` inside a backoff window;
    ///   ``PostgresError/Code/connection`` when connecting fails or the connection breaks; and
    ///   whatever `body` throws.
    public func withConnection<T: Sendable>(
        _ body: @Sendable (isolated PostgresConnection) throws -> T
    ) async throws -> T {
        try admit(at: .now)
        return try await connection.run { conn in
            try self.connectIfNeeded(conn)
            do {
                let value = try body(conn)
                self.state.withLock { $0.available = true }
                return value
            } catch {
                if !conn.isHealthy { self.markBroken(error) }
                throw error
            }
        }
    }

    /// Runs one statement and returns its rows; see ``PostgresConnection/query(_:_:)``.
    public func query(_ sql: String, _ params: [PGValue] = []) async throws -> PGRows {
        try await withConnection { try $0.query(sql, params) }
    }

    /// Runs one statement and returns the affected rows; see ``PostgresConnection/execute(_:_:)``.
    @discardableResult
    public func execute(_ sql: String, _ params: [PGValue] = []) async throws -> Int {
        try await withConnection { try $0.execute(sql, params) }
    }

    /// Bulk-loads rows with COPY; see ``PostgresConnection/copyIn(schema:table:columns:rows:)``.
    @discardableResult
    public func copyIn(schema: String? = nil, table: String, columns: [String], rows: [[PGValue]]) async throws -> Int {
        try await withConnection { try $0.copyIn(schema: schema, table: table, columns: columns, rows: rows) }
    }

    /// Closes the connection; later calls throw ``PostgresError/Code/connection``.
    public func close() async {
        state.withLock {
            $0.closed = true
            $0.available = false
        }
        await connection.close()
    }

    /// Throws when closed or inside a backoff window; otherwise lets the call proceed.
    private func admit(at now: ContinuousClock.Instant) throws(PostgresError) {
        try state.withLock { state throws(PostgresError) in
            if state.closed {
                throw PostgresError(.connection, "client for \(connection.target) is closed")
            }
            if !state.backoff.mayAttempt(at: now) {
                var message = "database \(connection.target) is unavailable"
                if let retryAt = state.backoff.retryAt {
                    message += "; next connect attempt in \(Self.milliseconds(retryAt - now)) ms"
                }
                throw PostgresError(.unavailable, message, sqlState: state.lastConnectError?.sqlState,
                                    libpqMessage: state.lastConnectError?.libpqMessage)
            }
        }
    }

    private func connectIfNeeded(_ conn: isolated PostgresConnection) throws(PostgresError) {
        if conn.isHealthy { return }
        // Re-check now that it is this call's turn: a call queued before it may just have failed.
        try admit(at: .now)
        do {
            try conn.connect()
        } catch {
            let (delay, failures) = state.withLock { state in
                state.available = false
                state.lastConnectError = error
                let delay = state.backoff.connectFailed(at: .now, jitterSample: Double.random(in: 0..<1))
                return (delay, state.backoff.failures)
            }
            logger.warning("postgres connect failed", metadata: [
                "db.failures": "\(failures)",
                "db.retry_in_ms": "\(Self.milliseconds(delay))",
                "error": "\(error)",
            ])
            throw error
        }
        let reconnected = state.withLock { state in
            let reconnected = state.hasConnected
            state.backoff.connected()
            state.available = true
            state.hasConnected = true
            state.lastConnectError = nil
            return reconnected
        }
        logger.info(reconnected ? "postgres reconnected" : "postgres connected")
    }

    private static func milliseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }

    private func markBroken(_ error: any Error) {
        state.withLock { $0.available = false }
        logger.warning("postgres connection broken; reconnecting on next use", metadata: ["error": "\(error)"])
    }
}
