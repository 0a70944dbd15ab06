import NebulaModel
import NebulaStore

/// The datasets and dataset_shards tables. Writes are immediate (not batched): a dataset's row must
/// exist before its id is handed out, and the rows are few.
struct DatasetStore: Sendable {
    let client: PostgresClient

    /// A dataset row with the parts the services need beyond `DatasetInfo`.
    struct Row: Sendable {
        var info: DatasetInfo
        var path: String
        var profileJSON: String
        var reportJSON: String
        /// User id of the API user who made it, or 'admin' (Note [Roles and tenancy]).
        var owner: String
    }

    private static let columns = """
        id, name, owner, state, kind, source, source_bytes, stored_bytes, rows, columns, error, sha256, path,
        coalesce(profile::text, '') AS profile, coalesce(report::text, '') AS report,
        (extract(epoch FROM created_at) * 1000)::bigint AS created_ms,
        (extract(epoch FROM updated_at) * 1000)::bigint AS updated_ms
        """

    private static func row(_ r: PGRow) throws -> Row {
        let info = DatasetInfo(
            datasetId: try r.string("id"), name: try r.string("name"),
            state: DatasetState(rawValue: try r.string("state")) ?? .failed,
            kind: DatasetKind(rawValue: try r.string("kind")) ?? .pending, source: try r.string("source"),
            sourceBytes: UInt64(max(0, try r.int64("source_bytes"))), storedBytes: UInt64(max(0, try r.int64("stored_bytes"))),
            rows: UInt64(max(0, try r.int64("rows"))), columns: try r.int("columns"), error: try r.string("error"),
            createdUnixMs: try r.int64("created_ms"), updatedUnixMs: try r.int64("updated_ms"), sha256: try r.string("sha256"))
        return Row(info: info, path: try r.string("path"), profileJSON: try r.string("profile"),
                   reportJSON: try r.string("report"), owner: try r.string("owner"))
    }

    func insert(_ info: DatasetInfo, owner: String = "admin") async throws {
        try await client.execute("""
            INSERT INTO datasets (id, name, state, kind, source, source_bytes, owner) VALUES ($1, $2, $3, $4, $5, $6, $7)
            """, [text(info.datasetId), text(info.name), .text(info.state.rawValue), .text(info.kind.rawValue),
                  text(info.source), int(info.sourceBytes), text(owner)])
    }

    /// Stores the outcome of ingest (or a state change); empty JSON leaves the column as it is.
    func update(_ info: DatasetInfo, path: String? = nil, profileJSON: String = "", reportJSON: String = "") async throws {
        try await client.execute("""
            UPDATE datasets SET name = $2, state = $3, kind = $4, source_bytes = $5, stored_bytes = $6, rows = $7,
                columns = $8, error = $9, sha256 = $10, path = coalesce($11, path),
                profile = coalesce(nullif($12, '')::jsonb, profile), report = coalesce(nullif($13, '')::jsonb, report),
                updated_at = now()
            WHERE id = $1
            """, [text(info.datasetId), text(info.name), .text(info.state.rawValue), .text(info.kind.rawValue),
                  int(info.sourceBytes), int(info.storedBytes), int(info.rows), PGValue(info.columns), text(info.error),
                  text(info.sha256), PGValue(path), text(profileJSON), text(reportJSON)])
    }

    func get(_ id: String) async throws -> Row? {
        try await client.query("SELECT \(Self.columns) FROM datasets WHERE id = $1", [text(id)]).map(Self.row).first
    }

    /// Newest first; `owner` nil lists everyone's.
    func list(limit: Int, offset: Int, owner: String? = nil) async throws -> (rows: [Row], total: Int) {
        let (rows, total) = try await client.withConnection { conn in
            (try conn.query("""
                SELECT \(Self.columns) FROM datasets WHERE ($3::text IS NULL OR owner = $3)
                ORDER BY created_at DESC, id LIMIT $1 OFFSET $2
                """, [PGValue(limit), PGValue(offset), PGValue(owner)]),
             try conn.query("SELECT count(*) AS n FROM datasets WHERE ($1::text IS NULL OR owner = $1)", [PGValue(owner)]))
        }
        return (try rows.map(Self.row), try total.first?.int("n") ?? 0)
    }

    func delete(_ id: String) async throws -> Bool {
        try await client.execute("DELETE FROM datasets WHERE id = $1", [text(id)]) > 0
    }

    /// Datasets whose upload or conversion was cut short by a coordinator restart become FAILED.
    func failInterrupted() async throws -> [String] {
        try await client.query("""
            UPDATE datasets SET state = 'failed', updated_at = now(),
                error = 'the coordinator stopped while this dataset was being ' || state || '; upload it again'
            WHERE state IN ('uploading', 'ingesting') RETURNING id
            """).map { try $0.string("id") }
    }

    // MARK: Shards

    struct StoredShard: Sendable {
        var entry: ShardEntry
        var path: String
    }

    private static func entry(_ r: PGRow) throws -> ShardEntry {
        ShardEntry(index: try r.int("index"), rows: UInt64(try r.int64("rows")), bytes: UInt64(try r.int64("bytes")),
                   sha256: try r.string("sha256"))
    }

    private static func storedShard(_ r: PGRow) throws -> StoredShard {
        StoredShard(entry: try entry(r), path: try r.string("path"))
    }

    func shards(of id: String, count: Int, seed: UInt64, stratifyBy: String) async throws -> [StoredShard] {
        try await client.query("""
            SELECT index, rows, bytes, sha256, path FROM dataset_shards
            WHERE dataset_id = $1 AND shard_count = $2 AND seed = $3 AND stratify_by = $4 ORDER BY index
            """, [text(id), PGValue(count), .int(Int64(bitPattern: seed)), text(stratifyBy)]).map(Self.storedShard)
    }

    func insertShards(of id: String, count: Int, seed: UInt64, stratifyBy: String, _ shards: [StoredShard]) async throws {
        let rows = shards.map { s -> [PGValue] in
            [text(id), PGValue(count), .int(Int64(bitPattern: seed)), text(stratifyBy), PGValue(s.entry.index),
             int(s.entry.rows), int(s.entry.bytes), text(s.entry.sha256), text(s.path)]
        }
        try await client.withConnection { conn in
            try conn.transaction { conn in
                for row in rows {
                    try conn.execute("""
                        INSERT INTO dataset_shards (dataset_id, shard_count, seed, stratify_by, index, rows, bytes, sha256, path)
                        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                        ON CONFLICT (dataset_id, shard_count, seed, stratify_by, index) DO UPDATE SET
                            rows = EXCLUDED.rows, bytes = EXCLUDED.bytes, sha256 = EXCLUDED.sha256, path = EXCLUDED.path
                        """, row)
                }
            }
        }
    }

    func shard(of id: String, sha256: String) async throws -> StoredShard? {
        try await client.query("""
            SELECT index, rows, bytes, sha256, path FROM dataset_shards WHERE dataset_id = $1 AND sha256 = $2 LIMIT 1
            """, [text(id), text(sha256)]).map(Self.storedShard).first
    }

    /// Every shard set of a dataset, by world size.
    func shardSets(of id: String) async throws -> [ShardManifest] {
        let rows = try await client.query("""
            SELECT shard_count, seed, stratify_by, index, rows, bytes, sha256 FROM dataset_shards WHERE dataset_id = $1
            ORDER BY shard_count, seed, stratify_by, index
            """, [text(id)])
        var sets: [ShardManifest] = []
        for r in rows {
            let count = try r.int("shard_count")
            let seed = UInt64(bitPattern: try r.int64("seed"))
            let strat = try r.string("stratify_by")
            let entry = try Self.entry(r)
            if let last = sets.last, last.count == count, last.seed == seed, last.stratifyBy == strat {
                sets[sets.count - 1].shards.append(entry)
            } else {
                sets.append(ShardManifest(datasetId: id, count: count, seed: seed, stratifyBy: strat, shards: [entry]))
            }
        }
        return sets
    }
}
