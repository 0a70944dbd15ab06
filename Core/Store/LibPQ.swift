import CPostgres
import Logging

// The one file that calls libpq. Every call that can fail is checked here, and libpq's message is
// captured on the line right after the failing call, before anything else can overwrite it.
//
// libpq is used in blocking mode (the default; `PQsetnonblocking` is never called), so
// `PQputCopyData` never returns 0 ("would block") and `PQexec*` return only when the server has
// answered. Callers run these functions on a connection actor's private dispatch queue, never on
// the cooperative pool.

/// Where a connection goes, for messages (`user@host:port/dbname`), and the secrets to keep out
/// of every message.
struct ConnectionTarget: Sendable, CustomStringConvertible {
    let description: String
    private let secrets: [String]

    init(url: String) {
        var secrets: [String] = []
        // The raw (possibly percent-encoded) password of a URI, in case libpq echoes the URI.
        if let scheme = url.firstRange(of: "://") {
            let rest = url[scheme.upperBound...]
            if let at = rest.lastIndex(of: "@") {
                let userInfo = rest[..<at]
                if let colon = userInfo.firstIndex(of: ":") {
                    secrets.append(String(userInfo[userInfo.index(after: colon)...]))
                }
            }
        }

        var options: [String: String] = [:]
        var parseError: UnsafeMutablePointer<CChar>?
        if let parsed = PQconninfoParse(url, &parseError) {
            var option = parsed
            while let keyword = option.pointee.keyword {
                if let value = option.pointee.val {
                    options[String(cString: keyword)] = String(cString: value)
                }
                option += 1
            }
            PQconninfoFree(parsed)
        }
        if let parseError { PQfreemem(parseError) }
        if let password = options["password"] { secrets.append(password) }
        self.secrets = secrets.filter { !$0.isEmpty }

        let user = options["user"].map { "\($0)@" } ?? ""
        let host = options["host"] ?? options["hostaddr"] ?? "localhost"
        let port = options["port"] ?? "5432"
        let database = options["dbname"] ?? options["user"] ?? ""
        self.description = "\(user)\(host):\(port)/\(database)"
    }

    /// `text` with every secret replaced by `***`.
    func scrub(_ text: String) -> String {
        secrets.reduce(text) { $0.replacing($1, with: "***") }
    }
}

/// `PG_DIAG_*` field codes of `PQresultErrorField`: character-literal macros, which Swift does
/// not import.
enum DiagnosticField {
    /// `PG_DIAG_SQLSTATE` ('C').
    static let sqlState = Int32(UInt8(ascii: "C"))
    /// `PG_DIAG_SEVERITY_NONLOCALIZED` ('V'): `ERROR`, `WARNING`, `NOTICE`, … never translated.
    static let severity = Int32(UInt8(ascii: "V"))
}

/// A `PGresult` owned by Swift; `PQclear` (cheap, thread-agnostic) runs in `deinit`.
struct PQResult: ~Copyable {
    let raw: OpaquePointer

    deinit {
        PQclear(raw)
    }

    var status: ExecStatusType { PQresultStatus(raw) }

    /// The count from the command tag (`UPDATE 3` → 3), 0 when the command reports none.
    var affectedRows: Int {
        guard let tuples = PQcmdTuples(raw) else { return 0 }
        return Int(String(cString: tuples)) ?? 0
    }

    /// Copies the columns and text values out of the result.
    func rows() -> PGRows {
        let columnCount = Int(PQnfields(raw))
        let rowCount = Int(PQntuples(raw))
        let columns = (0..<columnCount).map { column in
            PQfname(raw, Int32(column)).map { String(cString: $0) } ?? "?column?"
        }
        var rows: [[String?]] = []
        rows.reserveCapacity(rowCount)
        for row in 0..<rowCount {
            var values: [String?] = []
            values.reserveCapacity(columnCount)
            for column in 0..<columnCount {
                let r = Int32(row), c = Int32(column)
                if PQgetisnull(raw, r, c) != 0 {
                    values.append(nil)
                } else if let bytes = PQgetvalue(raw, r, c) {
                    let length = Int(PQgetlength(raw, r, c))
                    let buffer = UnsafeRawBufferPointer(start: bytes, count: length)
                    values.append(String(decoding: buffer, as: UTF8.self))
                } else {
                    values.append("")
                }
            }
            rows.append(values)
        }
        return PGRows(columns: columns, rows: rows, affectedRows: affectedRows)
    }
}

/// Logger holder handed to libpq's notice receiver as its `void *` context.
///
/// Sendable: immutable. The connection actor keeps it alive for as long as its `PGconn` exists, so
/// the unretained pointer libpq holds never dangles.
final class NoticeSink: Sendable {
    let logger: Logger

    init(logger: Logger) {
        self.logger = logger
    }
}

/// libpq calls, one function per operation, each turning failures into ``PostgresError``.
enum PQCall {
    /// Client-side defaults placed *before* the URL, so that the URL may override them.
    static let defaultParameters: [(String, String)] = [
        ("connect_timeout", "10"),
        ("application_name", "nebula"),
    ]

    /// Opens a blocking connection. On failure the half-made `PGconn` is freed before throwing.
    static func connect(url: String, target: ConnectionTarget, notices: NoticeSink) throws(PostgresError) -> OpaquePointer {
        // expand_dbname = 1: the `dbname` value is the URL (or key=value string) and expands into
        // its parameters; parameters after it override it, parameters before it are overridden.
        var keywords = defaultParameters.map(\.0)
        var values = defaultParameters.map(\.1)
        keywords += ["dbname", "client_encoding"]
        values += [url, "UTF8"]

        let raw = withCStringArray(keywords + [nil]) { keywordPointers in
            withCStringArray(values + [nil]) { valuePointers in
                PQconnectdbParams(keywordPointers, valuePointers, 1)
            }
        }
        guard let conn = raw else {
            throw PostgresError(.connection, "cannot allocate a connection to \(target)")
        }
        guard PQstatus(conn) == CONNECTION_OK else {
            let message = errorMessage(conn, target: target)
            PQfinish(conn)
            throw PostgresError(.connection, "cannot connect to \(target)", libpqMessage: message)
        }
        let context = Unmanaged.passUnretained(notices).toOpaque()
        PQsetNoticeReceiver(conn, { context, result in
            guard let context, let result else { return }
            let sink = Unmanaged<NoticeSink>.fromOpaque(context).takeUnretainedValue()
            let message = PQresultErrorMessage(result).map { String(cString: $0) } ?? ""
            let severity = PQresultErrorField(result, DiagnosticField.severity).map { String(cString: $0) } ?? ""
            let sqlState = PQresultErrorField(result, DiagnosticField.sqlState).map { String(cString: $0) } ?? ""
            let text = message.trimmingTrailingWhitespace()
            let metadata: Logger.Metadata = ["db.sqlstate": "\(sqlState)"]
            if severity == "WARNING" {
                sink.logger.warning("postgres: \(text)", metadata: metadata)
            } else {
                sink.logger.debug("postgres: \(text)", metadata: metadata)
            }
        }, context)
        return conn
    }

    /// `PQexecParams` with text-format parameters and text-format results. Exactly one statement.
    ///
    /// - Throws: ``PostgresError`` with `code` (or `.connection` when the connection broke).
    static func exec(_ conn: OpaquePointer, _ sql: String, _ params: [String?], code: PostgresError.Code,
                     target: ConnectionTarget) throws(PostgresError) -> PQResult {
        guard params.count <= Int(Int32.max) else {
            throw PostgresError(code, "too many parameters (\(params.count))")
        }
        for (index, param) in params.enumerated() where param?.utf8.contains(0) == true {
            throw PostgresError(code, "parameter $\(index + 1) contains a NUL byte, which PostgreSQL text cannot hold")
        }
        let raw = withCStringArray(params) { pointers in
            PQexecParams(conn, sql, Int32(params.count), nil, pointers, nil, nil, 0)
        }
        return try checked(conn, raw, code: code, target: target)
    }

    /// `PQexec`: the simple query protocol, which accepts several statements separated by `;`
    /// (and no parameters). Returns the last statement's result.
    static func execScript(_ conn: OpaquePointer, _ sql: String, code: PostgresError.Code,
                           target: ConnectionTarget) throws(PostgresError) -> PQResult {
        let raw = PQexec(conn, sql)
        return try checked(conn, raw, code: code, target: target)
    }

    /// Starts `COPY … FROM STDIN`; the connection is then in copy-in state until ``endCopy``
    /// or ``abortCopy``.
    static func beginCopy(_ conn: OpaquePointer, _ sql: String, target: ConnectionTarget) throws(PostgresError) {
        let raw = PQexec(conn, sql)
        guard let raw else {
            throw failure(conn, .copy, "COPY could not be sent", target: target)
        }
        let result = PQResult(raw: raw)
        guard result.status == PGRES_COPY_IN else {
            if result.status == PGRES_COMMAND_OK || result.status == PGRES_TUPLES_OK {
                throw PostgresError(.copy, "statement did not start COPY FROM STDIN")
            }
            throw resultError(conn, result, .copy, "COPY failed to start", target: target)
        }
    }

    /// Sends one chunk of COPY text data.
    static func putCopyData(_ conn: OpaquePointer, _ bytes: [UInt8], target: ConnectionTarget) throws(PostgresError) {
        let status = bytes.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { chars in
                PQputCopyData(conn, chars.baseAddress, Int32(chars.count))
            }
        }
        if status != 1 {
            throw failure(conn, .copy, "sending COPY data failed", target: target)
        }
    }

    /// Ends a COPY successfully and returns the number of rows the server loaded.
    static func endCopy(_ conn: OpaquePointer, target: ConnectionTarget) throws(PostgresError) -> Int {
        if PQputCopyEnd(conn, nil) != 1 {
            let error = failure(conn, .copy, "ending COPY failed", target: target)
            drainResults(conn)
            throw error
        }
        return try finishResults(conn, code: .copy, target: target)
    }

    /// Aborts a COPY in progress (the server rolls the whole COPY back) and drains its results.
    static func abortCopy(_ conn: OpaquePointer, reason: String) {
        _ = PQputCopyEnd(conn, reason)
        drainResults(conn)
    }

    /// Reads every pending result of the current command; the first error wins. Returns the
    /// affected-row count of the last successful result.
    private static func finishResults(_ conn: OpaquePointer, code: PostgresError.Code,
                                      target: ConnectionTarget) throws(PostgresError) -> Int {
        var firstError: PostgresError?
        var affected = 0
        while let raw = PQgetResult(conn) {
            let result = PQResult(raw: raw)
            switch result.status {
            case PGRES_COMMAND_OK, PGRES_TUPLES_OK:
                affected = result.affectedRows
            default:
                if firstError == nil {
                    firstError = resultError(conn, result, code, "COPY failed", target: target)
                }
            }
            if PQstatus(conn) == CONNECTION_BAD { break }
        }
        if let firstError { throw firstError }
        return affected
    }

    private static func drainResults(_ conn: OpaquePointer) {
        while let raw = PQgetResult(conn) {
            PQclear(raw)
            if PQstatus(conn) == CONNECTION_BAD { break }
        }
    }

    /// Turns a `PQexec*` return into a result or an error. Leaves the connection idle: a
    /// statement that unexpectedly started a COPY is ended before throwing.
    private static func checked(_ conn: OpaquePointer, _ raw: OpaquePointer?, code: PostgresError.Code,
                                target: ConnectionTarget) throws(PostgresError) -> PQResult {
        guard let raw else {
            throw failure(conn, code, "statement could not be sent", target: target)
        }
        let result = PQResult(raw: raw)
        switch result.status {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY:
            return result
        case PGRES_COPY_IN:
            abortCopy(conn, reason: "COPY FROM STDIN is only supported through copyIn")
            throw PostgresError(code, "COPY FROM STDIN is only supported through copyIn(table:columns:rows:)")
        case PGRES_COPY_OUT:
            var buffer: UnsafeMutablePointer<CChar>?
            while PQgetCopyData(conn, &buffer, 0) > 0 {
                if let data = buffer { PQfreemem(data) }
                buffer = nil
            }
            drainResults(conn)
            throw PostgresError(code, "COPY TO STDOUT is not supported")
        default:
            throw resultError(conn, result, code, "statement failed", target: target)
        }
    }

    private static func resultError(_ conn: OpaquePointer, _ result: borrowing PQResult, _ code: PostgresError.Code,
                                    _ message: String, target: ConnectionTarget) -> PostgresError {
        let text = PQresultErrorMessage(result.raw).map { String(cString: $0) } ?? ""
        let sqlState = PQresultErrorField(result.raw, DiagnosticField.sqlState).map { String(cString: $0) }
        let broken = PQstatus(conn) == CONNECTION_BAD
        var libpqMessage = target.scrub(text.trimmingTrailingWhitespace())
        if libpqMessage.isEmpty { libpqMessage = errorMessage(conn, target: target) }
        return PostgresError(broken ? .connection : code,
                             broken ? "\(message); connection to \(target) is broken" : message,
                             sqlState: sqlState, libpqMessage: libpqMessage)
    }

    /// An error from the connection's own message (`PQerrorMessage`), for calls without a result.
    private static func failure(_ conn: OpaquePointer, _ code: PostgresError.Code, _ message: String,
                                target: ConnectionTarget) -> PostgresError {
        let text = errorMessage(conn, target: target)
        let broken = PQstatus(conn) == CONNECTION_BAD
        return PostgresError(broken ? .connection : code,
                             broken ? "\(message); connection to \(target) is broken" : message,
                             libpqMessage: text)
    }

    private static func errorMessage(_ conn: OpaquePointer, target: ConnectionTarget) -> String {
        let text = PQerrorMessage(conn).map { String(cString: $0) } ?? ""
        return target.scrub(text.trimmingTrailingWhitespace())
    }
}

/// Lays `strings` out NUL-terminated in one buffer and calls `body` with a pointer to each (nil
/// stays nil). The pointers are valid only during `body`, which is exactly as long as libpq needs
/// them (`PQexecParams` and `PQconnectdbParams` copy what they keep).
func withCStringArray<R>(_ strings: [String?], _ body: ([UnsafePointer<CChar>?]) -> R) -> R {
    var storage: [CChar] = []
    storage.reserveCapacity(strings.reduce(0) { $0 + ($1?.utf8.count ?? 0) + 1 })
    var offsets: [Int?] = []
    offsets.reserveCapacity(strings.count)
    for string in strings {
        guard let string else {
            offsets.append(nil)
            continue
        }
        offsets.append(storage.count)
        storage.append(contentsOf: string.utf8.map { CChar(bitPattern: $0) })
        storage.append(0)
    }
    return storage.withUnsafeBufferPointer { buffer in
        let pointers: [UnsafePointer<CChar>?] = offsets.map { offset in
            guard let offset, let base = buffer.baseAddress else { return nil }
            return base + offset
        }
        return body(pointers)
    }
}

extension String {
    func trimmingTrailingWhitespace() -> String {
        var text = Substring(self)
        while let last = text.last, last.isWhitespace { text = text.dropLast() }
        return String(text)
    }
}
