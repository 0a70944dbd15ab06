import Synchronization
import Logging
import NebulaCommon
import NebulaModel
import NebulaRPC
import NebulaWire

/// NodeService: what node agents call.
enum NodeServiceMethods {
    static func make(registry: NodeRegistry, logs: LogIngest, jobs: JobManager) -> [RPCMethod] {
        [
            .unary(NodeServicePath.register) { (request: RegisterRequest, _) -> RegisterResponse in
                try validateNodeId(request.nodeId)
                return await registry.register(request)
            },
            .unary(NodeServicePath.heartbeat) { (request: HeartbeatRequest, _) -> HeartbeatResponse in
                await registry.heartbeat(request)
            },
            .serverStreaming(NodeServicePath.assignments) {
                (ref: NodeSessionRef, _, writer: RPCStreamWriter<NodeCommand>) in
                for await command in try await registry.commands(for: ref) {
                    try await writer.write(command)
                }
            },
            .clientStreaming(NodeServicePath.shipLogs) { (batches: RPCStreamReader<LogBatch>, _) -> ShipLogsResponse in
                var accepted: UInt64 = 0
                for try await batch in batches {
                    let records = batch.records.map { r -> LogRecord in
                        var r = r
                        r.nodeId = batch.nodeId  // a node ships only its own records
                        return r
                    }
                    logs.ingest(records)
                    accepted += UInt64(records.count)
                }
                return ShipLogsResponse(accepted: accepted)
            },
            .unary(NodeServicePath.leave) { (request: LeaveRequest, _) -> Empty in
                await registry.leave(request)
                return Empty()
            },
            .unary(NodeServicePath.reportAttemptExit) { (exit: AttemptExit, _) -> Empty in
                await jobs.attemptExited(exit)
                return Empty()
            },
        ]
    }

    /// Node ids appear in tables, logs and host lists: keep them simple.
    static func validateNodeId(_ id: String) throws {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_")
        guard id.count <= 64, id.allSatisfy({ allowed.contains($0) }) else {
            throw RPCStatus(.invalidArgument,
                            "node id '\(id)' is invalid: use up to 64 letters, digits, '.', '-' or '_' (set it with --name)")
        }
    }
}

/// AdminService: what the `nebula` CLI calls.
enum AdminServiceMethods {
    static func make(registry: NodeRegistry, store: CoordinatorStore, hub: LogHub, startedUnixMs: Int64,
                     version: String, logger: Logger) -> [RPCMethod] {
        [
            .unary(AdminServicePath.listNodes) { (_: Empty, _) -> NodeList in
                NodeList(nodes: await registry.list())
            },
            .unary(AdminServicePath.getNode) { (request: GetNodeRequest, _) -> NodeDetail in
                guard let node = await registry.info(request.nodeId) else { throw NodeRegistry.notFound(request.nodeId) }
                let eventsLimit = request.eventsLimit > 0 ? min(request.eventsLimit, 1000) : 20
                let samplesLimit = request.samplesLimit > 0 ? min(request.samplesLimit, 1000) : 10
                do {
                    return NodeDetail(node: node, events: try await store.events(of: node.nodeId, limit: eventsLimit),
                                      recent: try await store.samples(of: node.nodeId, limit: samplesLimit))
                } catch {
                    logger.warning("node history unavailable", metadata: ["node.id": "\(node.nodeId)", "error": "\(error)"])
                    throw RPCStatus(.unavailable, "the database is unreachable, so the node's history cannot be read: \(error)")
                }
            },
            .unary(AdminServicePath.drainNode) { (request: DrainRequest, _) -> NodeInfo in
                try await registry.drain(request.nodeId, reason: request.reason)
            },
            .unary(AdminServicePath.resumeNode) { (request: ResumeRequest, _) -> NodeInfo in
                try await registry.resume(request.nodeId)
            },
            .unary(AdminServicePath.clusterHealth) { (_: Empty, _) -> ClusterHealth in
                var health = await registry.health()
                health.databaseOK = store.client.isAvailable
                health.spooledRecords = UInt64(await store.writer.spooledCount)
                health.coordinatorStartedUnixMs = startedUnixMs
                health.coordinatorVersion = version
                return health
            },
            .serverStreaming(AdminServicePath.tailLogs) {
                (request: TailLogsRequest, _, writer: RPCStreamWriter<LogRecord>) in
                let limit = request.limit > 0 ? min(request.limit, 10_000) : 50
                // Subscribe before reading history so nothing falls between the two.
                let live = request.follow ? hub.subscribe(nodeId: request.nodeId, minLevel: request.minLevel) : nil
                let history: [LogRecord]
                do {
                    history = try await store.tailLogs(node: request.nodeId.isEmpty ? nil : request.nodeId,
                                                       limit: limit, minLevel: request.minLevel)
                } catch {
                    history = hub.recent(nodeId: request.nodeId, minLevel: request.minLevel, limit: limit)
                }
                var seen = Set<String>()
                for r in history {
                    seen.insert("\(r.nodeId)#\(r.seq)#\(r.timeUnixMs)")
                    try await writer.write(r)
                }
                guard let live else { return }
                for await r in live where !seen.contains("\(r.nodeId)#\(r.seq)#\(r.timeUnixMs)") {
                    try await writer.write(r)
                }
            },
        ]
    }
}

/// Where log records go: the database (batched, spooled) and live tails.
struct LogIngest: Sendable {
    let persist: @Sendable ([StoreRecord]) -> Void
    let hub: LogHub

    func ingest(_ records: [LogRecord]) {
        guard !records.isEmpty else { return }
        persist(records.map { .log($0) })
        hub.publish(records)
    }
}

/// The coordinator's own log records, stored like a node's (node id empty).
final class CoordinatorLogSink: LogSink {
    private let ingest: LogIngest
    private let counter = Counter()

    init(ingest: LogIngest) { self.ingest = ingest }

    func receive(level: Logger.Level, label: String, message: String, metadata: [String: String], timeUnixMs: Int64) {
        let record = LogRecord(timeUnixMs: timeUnixMs, level: LogLevel(rawValue: level.rawValue) ?? .info, nodeId: "",
                               source: label, message: message, metadata: metadata, seq: counter.next())
        ingest.ingest([record])
    }
}

final class Counter: Sendable {
    private let value = Mutex<UInt64>(0)
    func next() -> UInt64 { value.withLock { $0 += 1; return $0 } }
}
