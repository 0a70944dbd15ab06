import Foundation
import NebulaModel
import NebulaStore

/// What the coordinator fixes for a job at submission, beside its spec.
struct JobPlanDocument: Codable, Sendable {
    var task: String
    var classes: [String]
    /// `FeatureSchema` as JSON (handed to the ranks as is).
    var schemaJSON: String
    var reason: String
}

/// A job's row.
struct JobRecord: Sendable {
    var id: String
    var sequence: Int64
    var spec: JobSpec
    var state: String
    var reason: String
    var plan: JobPlanDocument
    var attempt: Int
    var restarts: Int
    var nodes: [String]
    var submittedUnixMs: Int64
    var startedUnixMs: Int64
    var finishedUnixMs: Int64
    var metricsJSON: String
    var modelCheckpoint: String
    var samplesPerSecond: Double
    var step: UInt64
    var loss: Double

    var info: JobInfo {
        JobInfo(jobId: id, name: spec.name, state: state, reason: reason, spec: spec, attempt: attempt, restarts: restarts,
                nodes: nodes, submittedUnixMs: submittedUnixMs, startedUnixMs: startedUnixMs, finishedUnixMs: finishedUnixMs,
                samplesPerSecond: samplesPerSecond, step: step, loss: loss, task: plan.task)
    }
}

struct CheckpointRecord: Codable, Sendable {
    var id: String
    var jobId: String
    var attempt: Int
    var step: UInt64
    var epoch: Int
    var worldSize: Int
    var final: Bool
    var bytes: UInt64
    var sha256: String
    var path: String
    var createdUnixMs: Int64
}

/// The jobs, job_events and checkpoints tables (job_metrics are written in batches by the spool).
struct JobStore: Sendable {
    let client: PostgresClient

    private static let columns = """
        id, seq, spec::text AS spec, state, reason, plan::text AS plan, attempt, restarts, nodes::text AS nodes,
        (extract(epoch FROM submitted_at) * 1000)::bigint AS submitted_ms,
        coalesce((extract(epoch FROM started_at) * 1000)::bigint, 0) AS started_ms,
        coalesce((extract(epoch FROM finished_at) * 1000)::bigint, 0) AS finished_ms,
        coalesce(metrics::text, '') AS metrics, coalesce(model_checkpoint, '') AS model_checkpoint,
        samples_per_second, step, loss
        """

    private static func record(_ r: PGRow) throws -> JobRecord {
        JobRecord(id: try r.string("id"), sequence: try r.int64("seq"), spec: try unjson(JobSpec.self, try r.string("spec")),
                  state: try r.string("state"), reason: try r.string("reason"),
                  plan: try unjson(JobPlanDocument.self, try r.string("plan")), attempt: try r.int("attempt"),
                  restarts: try r.int("restarts"), nodes: try unjson([String].self, try r.string("nodes")),
                  submittedUnixMs: try r.int64("submitted_ms"), startedUnixMs: try r.int64("started_ms"),
                  finishedUnixMs: try r.int64("finished_ms"), metricsJSON: try r.string("metrics"),
                  modelCheckpoint: try r.string("model_checkpoint"), samplesPerSecond: try r.double("samples_per_second"),
                  step: UInt64(max(0, try r.int64("step"))), loss: try r.double("loss"))
    }

    /// Inserts the job with its first event; returns it with its sequence and submission time.
    func insert(id: String, spec: JobSpec, plan: JobPlanDocument) async throws -> JobRecord {
        let rows = try await client.withConnection { conn in
            try conn.transaction { conn -> PGRows in
                let rows = try conn.query("""
                    INSERT INTO jobs (id, name, user_name, spec, state, task, plan) VALUES ($1, $2, $3, $4::jsonb, 'pending', $5, $6::jsonb)
                    RETURNING \(Self.columns)
                    """, [text(id), text(spec.name), text(spec.user), text(json(spec)), text(plan.task), text(json(plan))])
                try conn.execute("INSERT INTO job_events (job_id, attempt, from_state, to_state, reason) VALUES ($1, 0, NULL, 'pending', $2)",
                                 [text(id), text("submitted: \(plan.reason)")])
                return rows
            }
        }
        guard let row = rows.first else { throw PostgresError(.decoding, "INSERT … RETURNING gave no row") }
        return try Self.record(row)
    }

    func get(_ id: String) async throws -> JobRecord? {
        try await client.query("SELECT \(Self.columns) FROM jobs WHERE id = $1", [text(id)]).map(Self.record).first
    }

    func list(limit: Int, all: Bool) async throws -> [JobRecord] {
        try await client.query("""
            SELECT \(Self.columns) FROM jobs
            WHERE $2 OR state NOT IN ('completed', 'failed', 'cancelled') OR finished_at > now() - interval '1 hour'
            ORDER BY seq DESC LIMIT $1
            """, [PGValue(limit), .bool(all)]).map(Self.record)
    }

    /// One page of a user's jobs (nil: everyone's), newest first, optionally in one state; and how
    /// many match in all. Uses the (user_name, seq) index.
    func page(owner: String?, state: String?, limit: Int, offset: Int) async throws -> (records: [JobRecord], total: Int) {
        let filter = "($1::text IS NULL OR user_name = $1) AND ($2::text IS NULL OR state = $2)"
        let records = try await client.query("""
            SELECT \(Self.columns) FROM jobs WHERE \(filter) ORDER BY seq DESC LIMIT $3 OFFSET $4
            """, [PGValue(owner), PGValue(state), PGValue(limit), PGValue(offset)]).map(Self.record)
        let total = try await client.query("SELECT count(*)::bigint AS n FROM jobs WHERE \(filter)", [PGValue(owner), PGValue(state)])
            .first?.int64("n") ?? 0
        return (records, Int(total))
    }

    /// How many jobs are in each state (all of them).
    func countsByState() async throws -> [String: Int] {
        var counts: [String: Int] = [:]
        for row in try await client.query("SELECT state, count(*)::bigint AS n FROM jobs GROUP BY state") {
            counts[try row.string("state")] = Int(try row.int64("n"))
        }
        return counts
    }

    /// The ids and states of a user's jobs (all of them).
    func owned(by owner: String) async throws -> [(id: String, state: String)] {
        try await client.query("SELECT id, state FROM jobs WHERE user_name = $1", [.text(owner)]).map { (try $0.string("id"), try $0.string("state")) }
    }

    /// Jobs that are not finished (for recovery after a restart), oldest first.
    func active() async throws -> [JobRecord] {
        try await client.query("SELECT \(Self.columns) FROM jobs WHERE state NOT IN ('completed', 'failed', 'cancelled') ORDER BY seq")
            .map(Self.record)
    }

    /// A state change with its event, in one transaction.
    func transition(_ job: JobRecord, from: String?, to: String, attempt: Int, reason: String) async throws {
        let nodes = json(job.nodes)
        try await client.withConnection { conn in
            try conn.transaction { conn in
                try conn.execute("""
                    UPDATE jobs SET state = $2, reason = $3, attempt = $4, restarts = $5, nodes = $6::jsonb,
                        started_at = CASE WHEN $7::bigint > 0 THEN to_timestamp($7::bigint / 1000.0) ELSE started_at END,
                        finished_at = CASE WHEN $8::bigint > 0 THEN to_timestamp($8::bigint / 1000.0) ELSE finished_at END,
                        updated_at = now()
                    WHERE id = $1
                    """, [text(job.id), text(to), text(job.reason), PGValue(job.attempt), PGValue(job.restarts), text(nodes),
                          .int(job.startedUnixMs), .int(job.finishedUnixMs)])
                try conn.execute("INSERT INTO job_events (job_id, attempt, from_state, to_state, reason) VALUES ($1, $2, $3, $4, $5)",
                                 [text(job.id), PGValue(attempt), PGValue(from), text(to), text(reason)])
            }
        }
    }

    func updateProgress(_ id: String, samplesPerSecond: Double, step: UInt64, loss: Double) async throws {
        try await client.execute("UPDATE jobs SET samples_per_second = $2, step = $3, loss = $4, updated_at = now() WHERE id = $1",
                                 [text(id), .double(finite(samplesPerSecond)), int(step), .double(finite(loss))])
    }

    func finish(_ id: String, metricsJSON: String, modelCheckpoint: String) async throws {
        try await client.execute("UPDATE jobs SET metrics = $2::jsonb, model_checkpoint = nullif($3, ''), updated_at = now() WHERE id = $1",
                                 [text(id), text(metricsJSON.isEmpty ? "{}" : metricsJSON), text(modelCheckpoint)])
    }

    struct Event: Codable, Sendable {
        var timeUnixMs: Int64
        var attempt: Int
        var from: String?
        var to: String
        var reason: String
    }

    func events(_ id: String) async throws -> [Event] {
        try await client.query("""
            SELECT (extract(epoch FROM time) * 1000)::bigint AS time_ms, attempt, from_state, to_state, reason
            FROM job_events WHERE job_id = $1 ORDER BY id
            """, [text(id)]).map { r in
            Event(timeUnixMs: try r.int64("time_ms"), attempt: try r.int("attempt"), from: try r.optionalString("from_state"),
                  to: try r.string("to_state"), reason: try r.string("reason"))
        }
    }

    // MARK: Checkpoints

    private static let checkpointColumns = """
        id, job_id, attempt, step, epoch, world_size, final, bytes, sha256, path,
        (extract(epoch FROM created_at) * 1000)::bigint AS created_ms
        """

    private static func checkpoint(_ r: PGRow) throws -> CheckpointRecord {
        CheckpointRecord(id: try r.string("id"), jobId: try r.string("job_id"), attempt: try r.int("attempt"),
                         step: UInt64(try r.int64("step")), epoch: try r.int("epoch"), worldSize: try r.int("world_size"),
                         final: try r.bool("final"), bytes: UInt64(try r.int64("bytes")), sha256: try r.string("sha256"),
                         path: try r.string("path"), createdUnixMs: try r.int64("created_ms"))
    }

    func insertCheckpoint(_ c: CheckpointRecord) async throws {
        try await client.execute("""
            INSERT INTO checkpoints (id, job_id, attempt, step, epoch, world_size, final, bytes, sha256, path)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
            """, [text(c.id), text(c.jobId), PGValue(c.attempt), int(c.step), PGValue(c.epoch), PGValue(c.worldSize),
                  .bool(c.final), int(c.bytes), text(c.sha256), text(c.path)])
    }

    func checkpoints(_ jobId: String) async throws -> [CheckpointRecord] {
        try await client.query("SELECT \(Self.checkpointColumns) FROM checkpoints WHERE job_id = $1 ORDER BY step, created_at",
                               [text(jobId)]).map(Self.checkpoint)
    }

    func checkpoint(_ jobId: String, _ id: String) async throws -> CheckpointRecord? {
        try await client.query("SELECT \(Self.checkpointColumns) FROM checkpoints WHERE job_id = $1 AND id = $2",
                               [text(jobId), text(id)]).map(Self.checkpoint).first
    }

    /// The newest training checkpoint (not the final model) to resume from.
    func latestCheckpoint(_ jobId: String) async throws -> CheckpointRecord? {
        try await client.query("""
            SELECT \(Self.checkpointColumns) FROM checkpoints WHERE job_id = $1 AND NOT final ORDER BY step DESC, created_at DESC LIMIT 1
            """, [text(jobId)]).map(Self.checkpoint).first
    }

    // MARK: Ranks

    struct RankSummary: Codable, Sendable {
        var rank: Int
        var step: UInt64
        var epoch: Int
        var samplesPerSecond: Double
        var allreduceMs: Double
        var samples: UInt64
    }

    /// Each rank's latest metrics in an attempt.
    func ranks(_ jobId: String, attempt: Int) async throws -> [RankSummary] {
        try await client.query("""
            SELECT DISTINCT ON (rank) rank, step, epoch, samples_per_second, allreduce_ms, samples FROM job_metrics
            WHERE job_id = $1 AND attempt = $2 ORDER BY rank, step DESC
            """, [text(jobId), PGValue(attempt)]).map { r in
            RankSummary(rank: try r.int("rank"), step: UInt64(try r.int64("step")), epoch: try r.int("epoch"),
                        samplesPerSecond: try r.double("samples_per_second"), allreduceMs: try r.double("allreduce_ms"),
                        samples: UInt64(try r.int64("samples")))
        }
    }

    struct ProgressPoint: Codable, Sendable {
        var attempt: Int
        var step: UInt64
        var epoch: Int
        var loss: Double
        var samplesPerSecond: Double
    }

    /// Rank 0's recent progress (newest last).
    func progress(_ jobId: String, limit: Int) async throws -> [ProgressPoint] {
        try await client.query("""
            SELECT * FROM (SELECT attempt, step, epoch, loss, samples_per_second, time FROM job_metrics
                           WHERE job_id = $1 AND rank = 0 ORDER BY time DESC LIMIT $2) newest ORDER BY time
            """, [text(jobId), PGValue(limit)]).map { r in
            ProgressPoint(attempt: try r.int("attempt"), step: UInt64(try r.int64("step")), epoch: try r.int("epoch"),
                          loss: try r.double("loss"), samplesPerSecond: try r.double("samples_per_second"))
        }
    }
}
