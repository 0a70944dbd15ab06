import Foundation
import Logging
import NebulaCommon
import NebulaModel
import NebulaStore

/// A change the coordinator must persist. Written in batches by a `SpoolingWriter`: when Postgres is
/// away, records wait on disk and are replayed in order, so none is lost.
public enum StoreRecord: Codable, Sendable, Hashable {
    /// Upsert of a node's row (registration, state change, drain, resume, leave).
    case node(NodeRow)
    case health(nodeId: String, sample: HealthSample)
    case event(NodeEvent)
    case log(LogRecord)
    /// Step metrics of one rank of a job attempt.
    case jobMetrics(jobId: String, attempt: Int, rank: Int, StepMetrics)
}

/// The persistent part of a node.
public struct NodeRow: Codable, Sendable, Hashable {
    public var nodeId: String
    public var address: String
    public var state: NodeState
    public var drained: Bool
    public var drainReason: String
    public var stateReason: String
    public var resources: NodeResources
    public var agentVersion: String
    public var session: UInt64
    public var registeredUnixMs: Int64
    public var lastSeenUnixMs: Int64
}

/// The coordinator's tables: batched writes through the spool, and the reads the services need.
public final class CoordinatorStore: Sendable {
    public let client: PostgresClient
    public let writer: SpoolingWriter<StoreRecord>
    private let logger: Logger

    public init(client: PostgresClient, spoolDirectory: String, flushInterval: Duration = .milliseconds(500),
                logger: Logger) throws {
        self.client = client
        self.logger = logger
        self.writer = try SpoolingWriter<StoreRecord>(
            directory: spoolDirectory, maxBatch: 5000, flushInterval: flushInterval, logger: logger
        ) { [client] records in
            try await CoordinatorStore.write(records, client: client)
        }
    }

    /// Applies the schema (waits for the database; returns applied versions).
    public func migrate() async throws -> [Int] {
        try await Migrator.migrate(client, CoordinatorSchema.migrations, logger: logger)
    }

    // MARK: Batched writes

    static let healthColumns = ["node_id", "time", "seq", "cpu_percent", "load1", "load5", "load15",
                                "memory_used_bytes", "memory_total_bytes", "disk_free_bytes",
                                "net_rx_bytes_per_sec", "net_tx_bytes_per_sec", "gpus"]
    static let eventColumns = ["node_id", "time", "kind", "from_state", "to_state", "reason"]
    static let logColumns = ["time", "node_id", "level", "source", "message", "metadata", "seq"]
    static let jobMetricColumns = ["job_id", "attempt", "rank", "step", "epoch", "loss", "samples_per_second", "allreduce_ms",
                                   "samples", "time"]

    static func write(_ records: [StoreRecord], client: PostgresClient) async throws {
        var nodes: [String: NodeRow] = [:]
        var nodeOrder: [String] = []
        var health: [[PGValue]] = []
        var events: [[PGValue]] = []
        var logs: [[PGValue]] = []
        var metrics: [[PGValue]] = []
        for record in records {
            switch record {
            case .node(let row):
                if nodes[row.nodeId] == nil { nodeOrder.append(row.nodeId) }
                nodes[row.nodeId] = row  // the last state of a node in the batch wins
            case .health(let node, let s):
                health.append([text(node), .text(isoTimestamp(s.timeUnixMs)), int(s.seq), .double(s.cpuPercent),
                               .double(s.load1), .double(s.load5), .double(s.load15), int(s.memoryUsedBytes),
                               int(s.memoryTotalBytes), int(s.diskFreeBytes), .double(s.netRxBytesPerSec),
                               .double(s.netTxBytesPerSec), text(json(s.gpus))])
            case .event(let e):
                events.append([text(e.nodeId), .text(isoTimestamp(e.timeUnixMs)), .text(e.kind.rawValue),
                               PGValue(e.from?.rawValue), .text(e.to.rawValue), text(e.reason)])
            case .log(let l):
                logs.append([.text(isoTimestamp(l.timeUnixMs)), text(l.nodeId), .text(l.level.rawValue),
                             text(l.source), text(l.message), text(json(l.metadata)), int(l.seq)])
            case .jobMetrics(let job, let attempt, let rank, let m):
                metrics.append([text(job), PGValue(attempt), PGValue(rank), int(m.step), PGValue(m.epoch), .double(finite(m.loss)),
                                .double(finite(m.samplesPerSecond)), .double(finite(m.allreduceMs)), int(m.samples),
                                .text(isoTimestamp(m.timeUnixMs))])
            }
        }
        let upserts = nodeOrder.compactMap { nodes[$0] }
        let (healthRows, eventRows, logRows, metricRows) = (health, events, logs, metrics)
        try await client.withConnection { conn in
            try conn.transaction { conn in
                for row in upserts {
                    try conn.execute("""
                        INSERT INTO nodes (node_id, address, state, drained, drain_reason, state_reason, resources,
                                           agent_version, session, registered_at, last_seen_at, updated_at)
                        VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10, $11, now())
                        ON CONFLICT (node_id) DO UPDATE SET
                            address = EXCLUDED.address, state = EXCLUDED.state, drained = EXCLUDED.drained,
                            drain_reason = EXCLUDED.drain_reason, state_reason = EXCLUDED.state_reason,
                            resources = EXCLUDED.resources, agent_version = EXCLUDED.agent_version,
                            session = EXCLUDED.session, registered_at = EXCLUDED.registered_at,
                            last_seen_at = GREATEST(nodes.last_seen_at, EXCLUDED.last_seen_at), updated_at = now()
                        """, [text(row.nodeId), text(row.address), .text(row.state.rawValue), .bool(row.drained),
                              text(row.drainReason), text(row.stateReason), text(json(row.resources)),
                              text(row.agentVersion), .int(Int64(bitPattern: row.session)),
                              .text(isoTimestamp(row.registeredUnixMs)), .text(isoTimestamp(row.lastSeenUnixMs))])
                }
                if !healthRows.isEmpty {
                    _ = try conn.copyIn(table: "node_health", columns: healthColumns, rows: healthRows)
                }
                if !eventRows.isEmpty { _ = try conn.copyIn(table: "node_events", columns: eventColumns, rows: eventRows) }
                if !logRows.isEmpty { _ = try conn.copyIn(table: "logs", columns: logColumns, rows: logRows) }
                if !metricRows.isEmpty {
                    _ = try conn.copyIn(table: "job_metrics", columns: jobMetricColumns, rows: metricRows)
                }
            }
        }
    }

    // MARK: Reads

    /// Every known node with its latest sample (for recovery after a restart and for listings).
    public func loadNodes() async throws -> [(row: NodeRow, latest: HealthSample?)] {
        let rows = try await client.withConnection { conn in
            try conn.query("""
                SELECT n.node_id, n.address, n.state, n.drained, n.drain_reason, n.state_reason,
                       n.resources::text AS resources, n.agent_version, n.session,
                       (extract(epoch FROM n.registered_at) * 1000)::bigint AS registered_ms,
                       (extract(epoch FROM GREATEST(n.last_seen_at, h.time)) * 1000)::bigint AS last_seen_ms,
                       (extract(epoch FROM h.time) * 1000)::bigint AS time_ms, h.seq, h.cpu_percent, h.load1, h.load5,
                       h.load15, h.memory_used_bytes, h.memory_total_bytes, h.disk_free_bytes,
                       h.net_rx_bytes_per_sec, h.net_tx_bytes_per_sec, h.gpus::text AS gpus
                FROM nodes n
                LEFT JOIN LATERAL (
                    SELECT * FROM node_health WHERE node_health.node_id = n.node_id ORDER BY time DESC LIMIT 1
                ) h ON true
                ORDER BY n.node_id
                """)
        }
        return try rows.map { r in
            guard let state = NodeState(rawValue: try r.string("state")) else {
                throw PostgresError(.decoding, "nodes.state has an unknown value for \(try r.string("node_id"))")
            }
            let row = NodeRow(nodeId: try r.string("node_id"), address: try r.string("address"), state: state,
                              drained: try r.bool("drained"), drainReason: try r.string("drain_reason"),
                              stateReason: try r.string("state_reason"),
                              resources: try unjson(NodeResources.self, try r.string("resources")),
                              agentVersion: try r.string("agent_version"),
                              session: UInt64(bitPattern: try r.int64("session")),
                              registeredUnixMs: try r.int64("registered_ms"), lastSeenUnixMs: try r.int64("last_seen_ms"))
            let latest = try r.optionalInt64("time_ms") != nil ? try sample(r) : nil
            return (row, latest)
        }
    }

    /// The newest events of a node, newest first.
    public func events(of node: String, limit: Int) async throws -> [NodeEvent] {
        let rows = try await client.withConnection { conn in
            try conn.query("""
                SELECT node_id, (extract(epoch FROM time) * 1000)::bigint AS time_ms, kind, from_state, to_state, reason
                FROM node_events WHERE node_id = $1 ORDER BY time DESC, id DESC LIMIT $2
                """, [.text(node), PGValue(limit)])
        }
        return try rows.map { r in
            NodeEvent(timeUnixMs: try r.int64("time_ms"), nodeId: try r.string("node_id"),
                      from: try r.optionalString("from_state").flatMap(NodeState.init(rawValue:)),
                      to: NodeState(rawValue: try r.string("to_state")) ?? .down, reason: try r.string("reason"),
                      kind: NodeEvent.Kind(rawValue: try r.string("kind")) ?? .state)
        }
    }

    /// The newest health samples of a node, newest first.
    public func samples(of node: String, limit: Int) async throws -> [HealthSample] {
        let rows = try await client.withConnection { conn in
            try conn.query("""
                SELECT (extract(epoch FROM time) * 1000)::bigint AS time_ms, seq, cpu_percent, load1, load5, load15,
                       memory_used_bytes, memory_total_bytes, disk_free_bytes, net_rx_bytes_per_sec,
                       net_tx_bytes_per_sec, gpus::text AS gpus
                FROM node_health WHERE node_id = $1 ORDER BY time DESC LIMIT $2
                """, [.text(node), PGValue(limit)])
        }
        return try rows.map(sample)
    }

    /// The last `limit` log records (of one node, or all when `node` is nil), oldest first.
    public func tailLogs(node: String?, limit: Int, minLevel: LogLevel?) async throws -> [LogRecord] {
        let levels = LogLevel.allCases.filter { $0 >= (minLevel ?? .trace) }.map(\.rawValue)
        let rows = try await client.withConnection { conn in
            try conn.query("""
                SELECT * FROM (
                    SELECT id, (extract(epoch FROM time) * 1000)::bigint AS time_ms, node_id, level, source, message,
                           metadata::text AS metadata, seq
                    FROM logs
                    WHERE ($1::text IS NULL OR node_id = $1) AND level = ANY($2::text[])
                    ORDER BY id DESC LIMIT $3
                ) newest ORDER BY id
                """, [PGValue(node), .text("{" + levels.joined(separator: ",") + "}"), PGValue(limit)])
        }
        return try rows.map { r in
            LogRecord(timeUnixMs: try r.int64("time_ms"), level: LogLevel(rawValue: try r.string("level")) ?? .info,
                      nodeId: try r.string("node_id"), source: try r.string("source"), message: try r.string("message"),
                      metadata: (try? unjson([String: String].self, try r.string("metadata"))) ?? [:],
                      seq: UInt64(bitPattern: try r.int64("seq")))
        }
    }

    /// A job's log records (metadata `job.id`) with a database id above `after`, oldest first.
    public func jobLogs(jobId: String, after: Int64, limit: Int) async throws -> [(id: Int64, record: LogRecord)] {
        let rows = try await client.query("""
            SELECT * FROM (
                SELECT id, (extract(epoch FROM time) * 1000)::bigint AS time_ms, node_id, level, source, message,
                       metadata::text AS metadata, seq
                FROM logs WHERE metadata->>'job.id' = $1 AND id > $2 ORDER BY id DESC LIMIT $3
            ) newest ORDER BY id
            """, [.text(jobId), .int(after), PGValue(limit)])
        return try rows.map { r in
            (try r.int64("id"),
             LogRecord(timeUnixMs: try r.int64("time_ms"), level: LogLevel(rawValue: try r.string("level")) ?? .info,
                       nodeId: try r.string("node_id"), source: try r.string("source"), message: try r.string("message"),
                       metadata: (try? unjson([String: String].self, try r.string("metadata"))) ?? [:],
                       seq: UInt64(bitPattern: try r.int64("seq"))))
        }
    }

    private func sample(_ r: PGRow) throws -> HealthSample {
        HealthSample(timeUnixMs: try r.int64("time_ms"), cpuPercent: try r.double("cpu_percent"),
                     load1: try r.double("load1"), load5: try r.double("load5"), load15: try r.double("load15"),
                     memoryUsedBytes: UInt64(try r.int64("memory_used_bytes")),
                     memoryTotalBytes: UInt64(try r.int64("memory_total_bytes")),
                     diskFreeBytes: UInt64(try r.int64("disk_free_bytes")),
                     netRxBytesPerSec: try r.double("net_rx_bytes_per_sec"),
                     netTxBytesPerSec: try r.double("net_tx_bytes_per_sec"),
                     gpus: try unjson([GpuSample].self, try r.string("gpus")), seq: UInt64(try r.int64("seq")))
    }
}

// Note [Poison records]: a batch that Postgres rejects for its data (not for the connection) would be
// spooled and retried forever. Values from agents are therefore made storable before they are written:
// integers clamped into bigint, NUL characters (refused in text columns) removed.
func int(_ v: UInt64) -> PGValue { .int(Int64(clamping: v)) }

/// NaN and infinities are stored as 0 (a loss can diverge; the column is double precision NOT NULL).
func finite(_ v: Double) -> Double { v.isFinite ? v : 0 }

func text(_ s: String) -> PGValue { .text(s.contains("\u{0}") ? s.replacingOccurrences(of: "\u{0}", with: "") : s) }

func json<T: Encodable>(_ value: T) -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = .sortedKeys
    return (try? String(decoding: encoder.encode(value), as: UTF8.self)) ?? "null"
}

func unjson<T: Decodable>(_ type: T.Type, _ text: String) throws -> T {
    try JSONDecoder().decode(T.self, from: Data(text.utf8))
}
