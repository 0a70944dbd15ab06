import Logging

/// One schema change. `sql` may hold several `;`-separated statements; it runs inside a
/// transaction, so statements that cannot (`CREATE INDEX CONCURRENTLY`, `VACUUM`) do not belong here.
public struct Migration: Sendable, Hashable {
    /// Positive and strictly increasing within a migration list; never reuse or renumber one.
    public var version: Int
    public var name: String
    public var sql: String

    public init(version: Int, name: String, sql: String) {
        self.version = version
        self.name = name
        self.sql = sql
    }
}

/// Applies ``Migration``s once each, safely from several processes at once.
///
/// Applied versions are recorded in `schema_migrations` (in the first schema of the connection's
/// `search_path`). The whole run holds a session-level `pg_advisory_lock` on a fixed key, so
/// concurrent migrators queue up and each migration is applied exactly once; the lock is released
/// on success and on error (and by the server if the connection dies). Each migration and its
/// `schema_migrations` row commit in one transaction: a failing migration leaves no trace and
/// stops the run.
public enum Migrator {
    /// The advisory lock key: the ASCII bytes of "NBMIGRAT".
    public static let lockKey: Int64 = 0x4E42_4D49_4752_4154

    /// Applies the pending migrations in version order and returns the versions it applied
    /// (empty when the database was up to date).
    ///
    /// - Throws: ``PostgresError/Code/migration`` for duplicate, non-positive or non-increasing
    ///   versions (before touching the database) and when a migration fails; connection errors
    ///   as ``PostgresClient`` throws them.
    public static func migrate(_ client: PostgresClient, _ migrations: [Migration], logger: Logger) async throws -> [Int] {
        try validate(migrations)
        return try await client.withConnection { conn in
            try migrate(conn, migrations, logger: logger)
        }
    }

    /// Checks that versions are positive and strictly increasing (so also unique).
    public static func validate(_ migrations: [Migration]) throws(PostgresError) {
        var previous: Migration?
        for migration in migrations {
            guard migration.version > 0 else {
                throw PostgresError(.migration, "migration \"\(migration.name)\" has version \(migration.version); versions must be positive")
            }
            if let previous {
                if migration.version == previous.version {
                    throw PostgresError(.migration, "duplicate migration version \(migration.version) (\"\(previous.name)\" and \"\(migration.name)\")")
                }
                if migration.version < previous.version {
                    throw PostgresError(.migration, "migration versions must increase: \(migration.version) (\"\(migration.name)\") follows \(previous.version) (\"\(previous.name)\")")
                }
            }
            previous = migration
        }
    }

    private static func migrate(_ conn: isolated PostgresConnection, _ migrations: [Migration],
                                logger: Logger) throws -> [Int] {
        try conn.execute("SELECT pg_advisory_lock($1::bigint)", [.int(lockKey)])
        defer {
            do {
                try conn.execute("SELECT pg_advisory_unlock($1::bigint)", [.int(lockKey)])
            } catch {
                // A broken connection releases session locks on the server side anyway.
                logger.warning("releasing the migration lock failed", metadata: ["error": "\(error)"])
            }
        }

        try conn.execute("""
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version integer PRIMARY KEY,
                name text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """)
        var appliedNames: [Int: String] = [:]
        for row in try conn.query("SELECT version, name FROM schema_migrations") {
            appliedNames[try row.int("version")] = try row.string("name")
        }

        let known = Set(migrations.map(\.version))
        let unknown = appliedNames.keys.filter { !known.contains($0) }.sorted()
        if !unknown.isEmpty {
            logger.warning("database has migrations this build does not know",
                           metadata: ["migration.versions": "\(unknown)"])
        }
        let newest = appliedNames.keys.max() ?? 0

        var applied: [Int] = []
        for migration in migrations {
            var metadata: Logger.Metadata = [
                "migration.version": "\(migration.version)",
                "migration.name": "\(migration.name)",
            ]
            if let recorded = appliedNames[migration.version] {
                if recorded != migration.name {
                    metadata["migration.recorded_name"] = "\(recorded)"
                    logger.warning("applied migration was recorded under another name", metadata: metadata)
                }
                continue
            }
            if migration.version < newest {
                logger.warning("applying a migration older than the newest applied one", metadata: metadata)
            }
            do {
                try conn.transaction { conn in
                    try conn.executeScript(migration.sql)
                    try conn.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                                     [.int(Int64(migration.version)), .text(migration.name)])
                }
            } catch {
                metadata["error"] = "\(error)"
                logger.error("migration failed; rolled back", metadata: metadata)
                guard let error = error as? PostgresError, error.code == .query else { throw error }
                throw PostgresError(.migration, "migration \(migration.version) (\"\(migration.name)\") failed",
                                    sqlState: error.sqlState, libpqMessage: error.libpqMessage)
            }
            logger.info("applied migration", metadata: metadata)
            applied.append(migration.version)
        }
        return applied
    }
}
