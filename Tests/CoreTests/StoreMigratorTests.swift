import Testing
@testable import NebulaStore

@Suite("Store: migrations",
       .enabled(if: StoreTestDatabase.enabled, "NEBULA_TEST_DATABASE_URL is not set"))
struct StoreMigratorTests {
    let logger = StoreTestDatabase.logger

    static let migrations = [
        Migration(version: 1, name: "create jobs", sql: "CREATE TABLE jobs (id bigint PRIMARY KEY, state text NOT NULL)"),
        Migration(version: 2, name: "log and index", sql: """
            CREATE TABLE migration_log (note text);
            INSERT INTO migration_log VALUES ('two');
            CREATE INDEX jobs_state ON jobs (state);
            """),
        Migration(version: 3, name: "add column", sql: "ALTER TABLE jobs ADD COLUMN priority int NOT NULL DEFAULT 0"),
    ]

    @Test func appliesOnceAndRerunsAsNoOp() async throws {
        try await StoreTestDatabase.withSchema { url, _ in
            let client = PostgresClient(url: url, logger: logger)
            #expect(try await Migrator.migrate(client, Array(Self.migrations.prefix(2)), logger: logger) == [1, 2])
            #expect(try await Migrator.migrate(client, Array(Self.migrations.prefix(2)), logger: logger) == [])
            #expect(try await Migrator.migrate(client, Self.migrations, logger: logger) == [3])
            #expect(try await Migrator.migrate(client, Self.migrations, logger: logger) == [])

            let recorded = try await client.query("SELECT version, name, applied_at FROM schema_migrations ORDER BY version")
            #expect(try recorded.map { try $0.int("version") } == [1, 2, 3])
            #expect(try recorded.map { try $0.string("name") } == Self.migrations.map(\.name))
            #expect(try await client.query("SELECT count(*) AS n FROM migration_log").first?.int("n") == 1)
            try await client.execute("INSERT INTO jobs (id, state) VALUES (1, 'queued')")
            #expect(try await client.query("SELECT priority FROM jobs").first?.int("priority") == 0)
            await client.close()
        }
    }

    @Test func concurrentMigratorsApplyEachMigrationOnce() async throws {
        try await StoreTestDatabase.withSchema { url, _ in
            let clients = (0..<3).map { _ in PostgresClient(url: url, logger: logger) }
            let results = try await withThrowingTaskGroup(of: [Int].self) { group in
                for client in clients {
                    group.addTask { try await Migrator.migrate(client, Self.migrations, logger: logger) }
                }
                var all: [[Int]] = []
                for try await applied in group { all.append(applied) }
                return all
            }
            #expect(results.flatMap { $0 }.sorted() == [1, 2, 3])
            #expect(results.contains([1, 2, 3]))  // the lock holder applied all; the others none
            let check = clients[0]
            #expect(try await check.query("SELECT count(*) AS n FROM schema_migrations").first?.int("n") == 3)
            #expect(try await check.query("SELECT count(*) AS n FROM migration_log").first?.int("n") == 1)
            for client in clients { await client.close() }
        }
    }

    @Test func rejectsDuplicateAndDecreasingVersionsBeforeTouchingTheDatabase() async throws {
        try await StoreTestDatabase.withSchema { url, _ in
            let client = PostgresClient(url: url, logger: logger)
            let bad: [[Migration]] = [
                [Self.migrations[1], Self.migrations[0]],
                [Self.migrations[0], Self.migrations[0]],
                [Migration(version: 0, name: "zero", sql: "SELECT 1")],
            ]
            for migrations in bad {
                let error = await #expect(throws: PostgresError.self) {
                    try await Migrator.migrate(client, migrations, logger: logger)
                }
                #expect(error?.code == .migration)
            }
            let table = try await client.query("SELECT to_regclass('schema_migrations')::text AS t")
            #expect(try table.first?.optionalString("t") == nil)
            await client.close()
        }
    }

    @Test func failingMigrationRollsBackAndReleasesTheLock() async throws {
        try await StoreTestDatabase.withSchema { url, _ in
            let client = PostgresClient(url: url, logger: logger)
            let broken = [
                Self.migrations[0],
                Migration(version: 2, name: "broken", sql: "CREATE TABLE half (id int); CREATE TABLEX oops (id int)"),
            ]
            let error = await #expect(throws: PostgresError.self) {
                try await Migrator.migrate(client, broken, logger: logger)
            }
            #expect(error?.code == .migration)
            #expect(error?.sqlState == "42601")
            #expect(error?.description.contains("broken") == true)
            let half = try await client.query("SELECT to_regclass('half')::text AS t")
            #expect(try half.first?.optionalString("t") == nil)

            // Lock released: another client migrates the fixed list without waiting.
            let other = PostgresClient(url: url, logger: logger)
            #expect(try await Migrator.migrate(other, Self.migrations, logger: logger) == [2, 3])
            await other.close()
            await client.close()
        }
    }
}
