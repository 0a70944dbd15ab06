import CPostgres
import Logging

/// One libpq connection, as an actor whose executor is a private serial dispatch queue.
///
/// libpq's calls block until the server answers. Running them on the cooperative pool (two
/// threads on a two-core machine) would stall every other task, so every isolated method of this
/// actor runs on its own ``DispatchQueueExecutor`` instead: a slow query occupies one dispatch
/// thread, never the pool. libpq allows one thread at a time per `PGconn`; actor isolation is what
/// guarantees it.
///
/// Methods are synchronous once isolated, so a batch of statements runs in one hop:
/// ```swift
/// try await connection.run { conn in
///     try conn.transaction { conn in
///         try conn.execute("UPDATE jobs SET state = $1 WHERE id = $2", ["done", 42])
///     }
/// }
/// ```
/// Services normally use ``PostgresClient``, which adds lazy connecting and reconnecting.
public actor PostgresConnection {
    private let executor: DispatchQueueExecutor
    private let url: String
    private let logger: Logger
    private let notices: NoticeSink
    /// Where the connection goes, as `user@host:port/dbname` (no password).
    public nonisolated let target: String
    private let connectionTarget: ConnectionTarget

    /// The `PGconn`, owned by this actor; nil before `connect()` and after `close()`.
    private var handle: OpaquePointer?
    private var savepointDepth = 0

    public nonisolated var unownedExecutor: UnownedSerialExecutor {
        executor.asUnownedSerialExecutor()
    }

    /// Creates a connection object; nothing is connected until ``connect()``.
    ///
    /// - Parameter url: a libpq connection string, URI (`postgresql://user@host:5432/db`) or
    ///   `key=value` form. `connect_timeout` defaults to 10 s and `application_name` to `nebula`
    ///   unless the URL sets them; the client encoding is always UTF-8.
    public init(url: String, logger: Logger) {
        let target = ConnectionTarget(url: url)
        self.url = url
        self.connectionTarget = target
        self.target = target.description
        var logger = logger
        logger[metadataKey: "db.target"] = "\(target.description)"
        self.logger = logger
        self.notices = NoticeSink(logger: logger)
        self.executor = DispatchQueueExecutor(label: "nebula.postgres.\(target.description)")
    }

    isolated deinit {
        if let handle {
            PQfinish(handle)
        }
    }

    /// Connects (blocking, on this actor's queue). A no-op when already connected and healthy;
    /// a broken connection is finished first and replaced.
    ///
    /// Sets `client_min_messages = warning`; server warnings go to the logger.
    public func connect() throws(PostgresError) {
        if isHealthy { return }
        if let handle {
            PQfinish(handle)
            self.handle = nil
        }
        savepointDepth = 0
        let conn = try PQCall.connect(url: url, target: connectionTarget, notices: notices)
        do {
            _ = try PQCall.exec(conn, "SET client_min_messages = warning", [], code: .connection,
                                target: connectionTarget)
        } catch {
            PQfinish(conn)
            throw error
        }
        handle = conn
        logger.debug("postgres connected", metadata: ["db.pid": "\(PQbackendPID(conn))"])
    }

    /// Closes the connection (idempotent). ``connect()`` may open it again.
    public func close() {
        guard let handle else { return }
        PQfinish(handle)
        self.handle = nil
        logger.debug("postgres connection closed")
    }

    /// True when connected and libpq's last known state is `CONNECTION_OK`.
    ///
    /// This does not talk to the server: a connection the server dropped while idle still looks
    /// healthy until the next statement fails.
    public var isHealthy: Bool {
        guard let handle else { return false }
        return PQstatus(handle) == CONNECTION_OK
    }

    /// The server process id serving this connection, or nil when not connected.
    public var backendPID: Int32? {
        handle.map { PQbackendPID($0) }
    }

    /// Runs `body` isolated to this connection: one hop for any number of statements.
    public func run<T: Sendable>(_ body: @Sendable (isolated PostgresConnection) throws -> T) rethrows -> T {
        try body(self)
    }

    /// Runs one statement with parameters `$1…$n` sent separately from the SQL text (never
    /// interpolated) and returns its rows.
    public func query(_ sql: String, _ params: [PGValue] = []) throws(PostgresError) -> PGRows {
        let conn = try requireHandle()
        logger.trace("postgres query", metadata: ["db.statement": "\(sql)"])
        let result = try PQCall.exec(conn, sql, params.map(\.textValue), code: .query, target: connectionTarget)
        return result.rows()
    }

    /// Runs one statement with parameters and returns the number of rows it affected.
    @discardableResult
    public func execute(_ sql: String, _ params: [PGValue] = []) throws(PostgresError) -> Int {
        let conn = try requireHandle()
        logger.trace("postgres execute", metadata: ["db.statement": "\(sql)"])
        let result = try PQCall.exec(conn, sql, params.map(\.textValue), code: .query, target: connectionTarget)
        return result.affectedRows
    }

    /// Runs SQL that may hold several `;`-separated statements and no parameters (schema
    /// scripts, migrations). Never build its text from untrusted values.
    public func executeScript(_ sql: String) throws(PostgresError) {
        let conn = try requireHandle()
        _ = try PQCall.execScript(conn, sql, code: .query, target: connectionTarget)
    }

    /// Runs `body` in a transaction: `BEGIN`, then `COMMIT` when it returns or `ROLLBACK` when it
    /// throws (the error is rethrown). Nested calls use savepoints, so an inner failure rolls back
    /// only the inner part.
    public func transaction<T: Sendable>(_ body: (isolated PostgresConnection) throws -> T) throws -> T {
        let conn = try requireHandle()
        let nested = PQtransactionStatus(conn) != PQTRANS_IDLE
        let savepoint = nested ? "nebula_savepoint_\(savepointDepth + 1)" : nil
        try execute(savepoint.map { "SAVEPOINT \($0)" } ?? "BEGIN")
        if nested { savepointDepth += 1 }
        defer { if nested { savepointDepth -= 1 } }

        let value: T
        do {
            value = try body(self)
        } catch {
            rollback(savepoint: savepoint)
            throw error
        }
        try execute(savepoint.map { "RELEASE SAVEPOINT \($0)" } ?? "COMMIT")
        return value
    }

    private func rollback(savepoint: String?) {
        guard isHealthy else { return }
        do {
            if let savepoint {
                try execute("ROLLBACK TO SAVEPOINT \(savepoint)")
                try execute("RELEASE SAVEPOINT \(savepoint)")
            } else {
                try execute("ROLLBACK")
            }
        } catch {
            logger.warning("postgres rollback failed", metadata: ["error": "\(error)"])
        }
    }

    /// Loads `rows` with `COPY table (columns) FROM STDIN` in text format and returns the number
    /// of rows loaded. Far faster than inserts for batches; all rows or none are loaded.
    ///
    /// Values are escaped (backslash, tab, newline, carriage return; NULL as `\N`) and the table,
    /// schema and column names are quoted identifiers, so they are case-sensitive.
    public func copyIn(schema: String? = nil, table: String, columns: [String],
                       rows: [[PGValue]]) throws(PostgresError) -> Int {
        let conn = try requireHandle()
        guard !columns.isEmpty else {
            throw PostgresError(.copy, "copyIn needs at least one column")
        }
        var qualified = try CopyText.quoteIdentifier(table)
        if let schema { qualified = try CopyText.quoteIdentifier(schema) + "." + qualified }
        var quotedColumns: [String] = []
        for column in columns { quotedColumns.append(try CopyText.quoteIdentifier(column)) }
        try CopyText.validate(rows, columnCount: columns.count)
        if rows.isEmpty { return 0 }

        let sql = "COPY \(qualified) (\(quotedColumns.joined(separator: ", "))) FROM STDIN"
        try PQCall.beginCopy(conn, sql, target: connectionTarget)
        let chunkSize = 256 * 1024
        var buffer: [UInt8] = []
        buffer.reserveCapacity(chunkSize + 4096)
        do {
            for row in rows {
                CopyText.appendRow(row, to: &buffer)
                if buffer.count >= chunkSize {
                    try PQCall.putCopyData(conn, buffer, target: connectionTarget)
                    buffer.removeAll(keepingCapacity: true)
                }
            }
            if !buffer.isEmpty {
                try PQCall.putCopyData(conn, buffer, target: connectionTarget)
            }
        } catch {
            PQCall.abortCopy(conn, reason: "client failed while sending COPY data")
            throw error
        }
        let loaded = try PQCall.endCopy(conn, target: connectionTarget)
        logger.trace("postgres copy", metadata: ["db.table": "\(qualified)", "db.rows": "\(loaded)"])
        return loaded
    }

    /// `"name"` with embedded quotes doubled: a safe identifier for dynamic SQL.
    public nonisolated static func quoteIdentifier(_ name: String) throws(PostgresError) -> String {
        try CopyText.quoteIdentifier(name)
    }

    private func requireHandle() throws(PostgresError) -> OpaquePointer {
        guard let handle else {
            throw PostgresError(.connection, "not connected to \(target)")
        }
        return handle
    }
}
