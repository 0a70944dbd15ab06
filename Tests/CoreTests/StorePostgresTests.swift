import Foundation
import Logging
import Testing
@testable import NebulaStore

/// The integration database: `NEBULA_TEST_DATABASE_URL` (a libpq URL). Without it the database
/// tests are disabled, unless `NEBULA_REQUIRE_INTEGRATION=1`, in which case they run and fail with
/// a message saying what is missing.
enum StoreTestDatabase {
    static let url: String? = {
        guard let url = ProcessInfo.processInfo.environment["NEBULA_TEST_DATABASE_URL"], !url.isEmpty else { return nil }
        return url
    }()

    static let required = ProcessInfo.processInfo.environment["NEBULA_REQUIRE_INTEGRATION"] == "1"

    /// Whether the database suites run at all.
    static let enabled = url != nil || required

    static let logger = Logger(label: "nebula.store.tests") { _ in SwiftLogNoOpLogHandler() }

    struct Missing: Error, CustomStringConvertible {
        var description: String {
            "NEBULA_REQUIRE_INTEGRATION=1 but NEBULA_TEST_DATABASE_URL is not set: "
                + "point it at a PostgreSQL server, e.g. postgresql://postgres@127.0.0.1:55432/postgres"
        }
    }

    static func requireURL() throws -> String {
        guard let url else { throw Missing() }
        return url
    }

    /// Runs `body` with a URL whose `search_path` is a fresh schema of its own, so tests can run
    /// in parallel; drops the schema afterwards.
    static func withSchema<T>(_ body: (_ url: String, _ schema: String) async throws -> T) async throws -> T {
        let base = try requireURL()
        let schema = "store_test_" + UUID().uuidString.prefix(12).lowercased().replacingOccurrences(of: "-", with: "")
        let admin = PostgresClient(url: base, logger: logger)
        try await admin.execute("CREATE SCHEMA \(schema)")
        let separator = base.contains("?") ? "&" : "?"
        let url = base + separator + "options=-c%20search_path%3D\(schema)"
        do {
            let result = try await body(url, schema)
            try await admin.execute("DROP SCHEMA \(schema) CASCADE")
            await admin.close()
            return result
        } catch {
            _ = try? await admin.execute("DROP SCHEMA \(schema) CASCADE")
            await admin.close()
            throw error
        }
    }
}

@Suite("Store: PostgreSQL connection and client",
       .enabled(if: StoreTestDatabase.enabled, "NEBULA_TEST_DATABASE_URL is not set"))
struct StorePostgresTests {
    let logger = StoreTestDatabase.logger

    @Test func parametersRoundTrip() async throws {
        let client = PostgresClient(url: try StoreTestDatabase.requireURL(), logger: logger)
        let tricky = "it's \"quoted\"; DROP TABLE x; -- \\ back"
        let unicode = "Grüße 🚀 日本語"
        let rows = try await client.query(
            "SELECT $1::text AS tricky, $2::text AS unicode, $3::bigint AS big, $4::bigint AS small, "
                + "$5::float8 AS d, $6::bool AS b, $7::text AS nothing, $8::float8 AS nan, $9::float8 AS inf",
            [.text(tricky), .text(unicode), .int(.max), .int(.min), 0.1, true, nil, .double(.nan), .double(-.infinity)])
        #expect(rows.columns == ["tricky", "unicode", "big", "small", "d", "b", "nothing", "nan", "inf"])
        let row = try #require(rows.first)
        #expect(try row.string("tricky") == tricky)
        #expect(try row.string("unicode") == unicode)
        #expect(try row.int64("big") == .max)
        #expect(try row.int64("small") == .min)
        #expect(try row.double("d") == 0.1)
        #expect(try row.bool("b"))
        #expect(try row.optionalString("nothing") == nil)
        #expect(try row.double("nan").isNaN)
        #expect(try row.double("inf") == -.infinity)
        #expect(client.isAvailable)
        await client.close()
    }

    @Test func sessionSettings() async throws {
        let client = PostgresClient(url: try StoreTestDatabase.requireURL(), logger: logger)
        let row = try #require(try await client.query("""
            SELECT current_setting('application_name') AS app, current_setting('client_min_messages') AS level,
                   current_setting('client_encoding') AS encoding
            """).first)
        #expect(try row.string("app") == "nebula")
        #expect(try row.string("level") == "warning")
        #expect(try row.string("encoding") == "UTF8")
        // A notice below the threshold and a warning: neither may disturb the statement.
        try await client.execute("DO $$ BEGIN RAISE NOTICE 'quiet'; RAISE WARNING 'loud'; END $$")
        await client.close()
    }

    @Test func typedAccessorErrorsNameTheColumn() async throws {
        let client = PostgresClient(url: try StoreTestDatabase.requireURL(), logger: logger)
        let rows = try await client.query("SELECT 'abc'::text AS word, NULL::int AS empty")
        let row = try #require(rows.first)
        let unparsable = #expect(throws: PostgresError.self) { try row.int64("word") }
        #expect(unparsable?.code == .decoding)
        #expect(unparsable?.description.contains("\"word\"") == true)
        let null = #expect(throws: PostgresError.self) { try row.int("empty") }
        #expect(null?.description.contains("\"empty\"") == true)
        #expect(try row.optionalInt("empty") == nil)
        let missing = #expect(throws: PostgresError.self) { try row.string("absent") }
        #expect(missing?.description.contains("\"absent\"") == true)
        await client.close()
    }

    @Test func syntaxErrorKeepsConnectionUsable() async throws {
        let client = PostgresClient(url: try StoreTestDatabase.requireURL(), logger: logger)
        let error = await #expect(throws: PostgresError.self) {
            try await client.query("SELEC 1")
        }
        #expect(error?.code == .query)
        #expect(error?.sqlState == "42601")
        #expect(error?.libpqMessage?.contains("syntax error") == true)
        let rows = try await client.query("SELECT 1 AS one")
        #expect(try rows.first?.int("one") == 1)
        #expect(client.isAvailable)
        await client.close()
    }

    @Test func executeReportsAffectedRowsAndNULs() async throws {
        try await StoreTestDatabase.withSchema { url, _ in
            let client = PostgresClient(url: url, logger: logger)
            try await client.execute("CREATE TABLE items (id bigint PRIMARY KEY, name text)")
            #expect(try await client.execute("INSERT INTO items VALUES ($1, $2), ($3, $4)", [1, "a", 2, "b"]) == 2)
            #expect(try await client.execute("UPDATE items SET name = $1", ["c"]) == 2)
            #expect(try await client.execute("DELETE FROM items WHERE id = $1", [1]) == 1)
            let nul = await #expect(throws: PostgresError.self) {
                try await client.execute("INSERT INTO items VALUES (3, $1)", ["a\u{0}b"])
            }
            #expect(nul?.description.contains("NUL") == true)
            await client.close()
        }
    }

    @Test func transactionCommitsAndRollsBack() async throws {
        try await StoreTestDatabase.withSchema { url, _ in
            let client = PostgresClient(url: url, logger: logger)
            try await client.execute("CREATE TABLE ledger (id bigint PRIMARY KEY)")
            struct Boom: Error {}

            await #expect(throws: Boom.self) {
                try await client.withConnection { conn in
                    try conn.transaction { conn in
                        try conn.execute("INSERT INTO ledger VALUES (1)")
                        throw Boom()
                    }
                }
            }
            #expect(try await client.query("SELECT count(*) AS n FROM ledger").first?.int("n") == 0)

            // A failing statement inside: the whole transaction rolls back, the connection recovers.
            await #expect(throws: PostgresError.self) {
                try await client.withConnection { conn in
                    try conn.transaction { conn in
                        try conn.execute("INSERT INTO ledger VALUES (1)")
                        try conn.execute("INSERT INTO ledger VALUES (1)")
                    }
                }
            }
            #expect(try await client.query("SELECT count(*) AS n FROM ledger").first?.int("n") == 0)

            // Commit, with a nested transaction (savepoint) that fails and rolls back alone.
            let committed = try await client.withConnection { conn in
                try conn.transaction { conn in
                    try conn.execute("INSERT INTO ledger VALUES (2)")
                    do {
                        try conn.transaction { conn in
                            try conn.execute("INSERT INTO ledger VALUES (3)")
                            throw Boom()
                        }
                    } catch is Boom {}
                    return try conn.query("SELECT count(*) AS n FROM ledger").first?.int("n")
                }
            }
            #expect(committed == 1)
            let ids = try await client.query("SELECT id FROM ledger ORDER BY id").map { try $0.int64("id") }
            #expect(ids == [2])
            await client.close()
        }
    }

    @Test func copyInRoundTripsEscapes() async throws {
        try await StoreTestDatabase.withSchema { url, schema in
            let client = PostgresClient(url: url, logger: logger)
            try await client.execute("CREATE TABLE \"Copy Target\" (id bigint, body text, score float8, ok bool)")
            let bodies: [String?] = [
                "tab\there", "new\nline", "carriage\rreturn", "back\\slash", "\\N", "\\.", "",
                nil, "Grüße 🚀", "mixed\t\\\n\r\\t end", "\"quotes\" and 'apostrophes'",
            ]
            var rows: [[PGValue]] = bodies.enumerated().map { index, body in
                [.int(Int64(index)), PGValue(body), .double(Double(index) / 3), .bool(index.isMultiple(of: 2))]
            }
            // Enough data to span several COPY chunks.
            let long = String(repeating: "x\ty\\z\n", count: 40)
            for index in bodies.count..<(bodies.count + 5000) {
                rows.append([.int(Int64(index)), .text(long), nil, nil])
            }

            let loaded = try await client.copyIn(schema: schema, table: "Copy Target",
                                                 columns: ["id", "body", "score", "ok"], rows: rows)
            #expect(loaded == rows.count)

            let back = try await client.query("SELECT id, body, score, ok FROM \"Copy Target\" ORDER BY id")
            #expect(back.count == rows.count)
            for (index, row) in back.prefix(bodies.count).enumerated() {
                #expect(try row.optionalString("body") == bodies[index], "row \(index)")
                #expect(try row.double("score") == Double(index) / 3)
                #expect(try row.bool("ok") == index.isMultiple(of: 2))
            }
            #expect(try back.last?.string("body") == long)
            #expect(try back.last?.optionalBool("ok") == nil)
            await client.close()
        }
    }

    @Test func copyInErrorsLeaveConnectionUsable() async throws {
        try await StoreTestDatabase.withSchema { url, _ in
            let client = PostgresClient(url: url, logger: logger)
            try await client.execute("CREATE TABLE target (id bigint PRIMARY KEY)")
            let unknownColumn = await #expect(throws: PostgresError.self) {
                try await client.copyIn(table: "target", columns: ["nope"], rows: [[1]])
            }
            #expect(unknownColumn?.code == .copy)
            #expect(unknownColumn?.sqlState == "42703")

            let duplicate = await #expect(throws: PostgresError.self) {
                try await client.copyIn(table: "target", columns: ["id"], rows: [[1], [2], [1]])
            }
            #expect(duplicate?.sqlState == "23505")
            let badValue = await #expect(throws: PostgresError.self) {
                try await client.copyIn(table: "target", columns: ["id"], rows: [["not a number"]])
            }
            #expect(badValue?.sqlState == "22P02")
            #expect(try await client.query("SELECT count(*) AS n FROM target").first?.int("n") == 0)
            #expect(try await client.copyIn(table: "target", columns: ["id"], rows: [[1], [2]]) == 2)
            await client.close()
        }
    }

    @Test func reconnectsAfterBackendIsTerminated() async throws {
        let url = try StoreTestDatabase.requireURL()
        let client = PostgresClient(url: url, logger: logger)
        let admin = PostgresClient(url: url, logger: logger)
        let firstPID = try await client.withConnection { conn in
            try conn.query("SELECT pg_backend_pid() AS pid").first!.int64("pid")
        }
        #expect(try await admin.query("SELECT pg_terminate_backend($1::int) AS ok", [.int(firstPID)]).first?.bool("ok") == true)
        // Wait until the server has really ended the backend.
        for _ in 0..<100 {
            let alive = try await admin.query("SELECT count(*) AS n FROM pg_stat_activity WHERE pid = $1::int",
                                              [.int(firstPID)])
            if try alive.first?.int("n") == 0 { break }
            try await Task.sleep(for: .milliseconds(20))
        }

        let broken = await #expect(throws: PostgresError.self) {
            try await client.query("SELECT 1")
        }
        #expect(broken?.code == .connection)
        #expect(!client.isAvailable)

        let secondPID = try await client.withConnection { conn in
            try conn.query("SELECT pg_backend_pid() AS pid").first!.int64("pid")
        }
        #expect(secondPID != firstPID)
        #expect(client.isAvailable)
        await client.close()
        await admin.close()
    }

    @Test func closedClientRefusesCalls() async throws {
        let client = PostgresClient(url: try StoreTestDatabase.requireURL(), logger: logger)
        _ = try await client.query("SELECT 1")
        await client.close()
        let error = await #expect(throws: PostgresError.self) { try await client.query("SELECT 1") }
        #expect(error?.code == .connection)
    }
}

/// Needs no server: a refused port.
@Suite("Store: unreachable database")
struct StoreUnreachableTests {
    @Test func unreachablePortFailsThenBacksOff() async throws {
        let url = "postgresql://nebula:topsecret@127.0.0.1:1/nebula?connect_timeout=2"
        // A backoff window far longer than the test, so the second call falls inside it however slow
        // the machine is (no timing is asserted).
        let client = PostgresClient(url: url, logger: StoreTestDatabase.logger,
                                    backoff: .init(initial: .seconds(600), maximum: .seconds(600)))
        let first = await #expect(throws: PostgresError.self) { try await client.query("SELECT 1") }
        #expect(first?.code == .connection)
        #expect(first?.libpqMessage?.isEmpty == false)
        #expect(first?.description.contains("topsecret") == false)
        #expect(first?.description.contains("nebula@127.0.0.1:1/nebula") == true)

        // Inside the backoff window nothing is attempted.
        let second = await #expect(throws: PostgresError.self) { try await client.query("SELECT 1") }
        #expect(second?.code == .unavailable)
        #expect(second?.description.contains("topsecret") == false)
        #expect(!client.isAvailable)
        await client.close()
    }

    @Test func connectionObjectReportsItsState() async throws {
        let connection = PostgresConnection(url: "postgresql://127.0.0.1:1/x", logger: StoreTestDatabase.logger)
        #expect(await connection.isHealthy == false)
        #expect(await connection.backendPID == nil)
        let error = await #expect(throws: PostgresError.self) { try await connection.query("SELECT 1") }
        #expect(error?.code == .connection)
        await #expect(throws: PostgresError.self) { try await connection.connect() }
    }
}
