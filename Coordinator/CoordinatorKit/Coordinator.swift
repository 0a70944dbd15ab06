import Foundation
import Logging
import NebulaCommon
import NebulaModel
import NebulaRPC
import NebulaStore

public enum NebulaVersion {
    public static let string = "0.1.0"
}

/// Everything `nebula-coordinator serve` needs. Secrets are never logged.
public struct CoordinatorConfiguration: Sendable {
    /// gRPC listen address (`host:port`).
    public var listen: String = "0.0.0.0:7070"
    public var databaseURL: String
    /// Spool and (later) datasets, checkpoints, models.
    public var dataDirectory: String
    public var joinToken: String
    public var adminToken: String
    public var detector = FailureDetector.Configuration()
    public var tls: RPCTLS?
    /// How long to wait for the database at start before giving up.
    public var databaseWait: Duration = .seconds(60)
    /// How often the failure detector is advanced.
    public var tickInterval: Duration = .milliseconds(200)
    /// How often batched records are written.
    public var flushInterval: Duration = .milliseconds(500)
    /// Uploads, conversion, Kaggle, shards.
    public var datasets = DatasetConfiguration()
    /// Scheduling and training jobs.
    public var jobs = JobConfiguration()
    public var builder = BuilderConfiguration()
    /// The REST API over HTTP.
    public var api = APIConfiguration()

    public init(databaseURL: String, dataDirectory: String, joinToken: String, adminToken: String) {
        self.databaseURL = databaseURL
        self.dataDirectory = dataDirectory
        self.joinToken = joinToken
        self.adminToken = adminToken
    }

    public func validate() throws {
        try detector.validate()
        try api.validate()
        guard joinToken.count >= 8 else { throw ConfigurationError("the join token must have at least 8 characters") }
        guard adminToken.count >= 8 else { throw ConfigurationError("the admin token must have at least 8 characters") }
        guard joinToken != adminToken else {
            throw ConfigurationError("the join token and the admin token must differ (nodes must not get admin rights)")
        }
        guard !databaseURL.isEmpty else {
            throw ConfigurationError("no database: pass --database-url or set NEBULA_DATABASE_URL")
        }
    }
}

/// A running coordinator: RPC server, node registry, failure detector loop and the batched store writer.
public final class Coordinator: Sendable {
    public let configuration: CoordinatorConfiguration
    public let registry: NodeRegistry
    public let store: CoordinatorStore
    public let hub: LogHub
    public let datasets: DatasetService
    public let jobs: JobManager
    private let server: RPCServer
    private let api: APIServer?
    private let tasks: BackgroundTasks
    private let persistFeed: AsyncStream<[StoreRecord]>.Continuation
    private let logger: Logger

    public var port: Int { server.port }
    /// The HTTP API's port (0 when it is off).
    public var httpPort: Int { api?.port ?? 0 }

    /// Connects to the database (waiting for it), migrates, restores the registry, and starts serving.
    /// `bootstrapLogging` receives the sink for the coordinator's own log records so they can be stored.
    public static func start(_ configuration: CoordinatorConfiguration, logger: Logger,
                             logSinkReady: (@Sendable (any LogSink) -> Void)? = nil) async throws -> Coordinator {
        try configuration.validate()
        try FileManager.default.createDirectory(atPath: configuration.dataDirectory, withIntermediateDirectories: true)
        let client = PostgresClient(url: configuration.databaseURL, logger: logger)
        let store = try CoordinatorStore(client: client, spoolDirectory: configuration.dataDirectory + "/spool",
                                         flushInterval: configuration.flushInterval, logger: logger)
        try await waitForDatabase(store, within: configuration.databaseWait, logger: logger)

        let (feed, feedContinuation) = AsyncStream.makeStream(of: [StoreRecord].self, bufferingPolicy: .unbounded)
        // Node rows also reach the job manager (a node that goes DOWN ends its jobs' attempts).
        let relay = NodeChangeRelay()
        let persist: @Sendable ([StoreRecord]) -> Void = { records in
            feedContinuation.yield(records)
            relay.forward(records)
        }
        let registry = NodeRegistry(configuration: configuration.detector, logger: logger, persist: persist)
        await registry.restore(try await store.loadNodes())
        let hub = LogHub()
        let ingest = LogIngest(persist: persist, hub: hub)
        logSinkReady?(CoordinatorLogSink(ingest: ingest))

        let datasets = try DatasetService(dataDirectory: configuration.dataDirectory, configuration: configuration.datasets,
                                          store: DatasetStore(client: client), logger: logger)
        try await datasets.recover()
        let jobs = try JobManager(configuration: configuration.jobs, store: JobStore(client: client), datasets: datasets,
                                  registry: registry, dataDirectory: configuration.dataDirectory, persist: persist, logger: logger)
        try await jobs.recover()
        let builder = try BuilderService(dataDirectory: configuration.dataDirectory, client: client, datasets: datasets, jobs: jobs,
                                         configuration: configuration.builder, logger: logger)
        try await builder.recover()

        let started = nowUnixMs()
        let join = configuration.joinToken
        let admin = configuration.adminToken
        let methods = NodeServiceMethods.make(registry: registry, logs: ingest, jobs: jobs)
            + AdminServiceMethods.make(registry: registry, store: store, hub: hub, startedUnixMs: started,
                                       version: NebulaVersion.string, logger: logger)
            + DatasetServiceMethods.make(datasets)
            + ShardServiceMethods.make(datasets)
            + JobServiceMethods.make(jobs, store: store)
            + WorkerServiceMethods.make(jobs)
        let server = RPCServer(
            configuration: .init(address: configuration.listen, tls: configuration.tls), methods: methods,
            authorizer: { method, metadata in authorize(method: method, metadata: metadata, joinToken: join, adminToken: admin) },
            logger: logger)
        try server.start()

        var api: APIServer?
        if configuration.api.listen != nil {
            let services = APIServices(datasets: datasets, jobs: jobs, builder: builder, registry: registry, store: store,
                                       startedUnixMs: started, version: NebulaVersion.string, adminToken: configuration.adminToken)
            do {
                let server = try await APIServer.make(configuration: configuration.api, services: services,
                                                      databaseURL: configuration.databaseURL,
                                                      dataDirectory: configuration.dataDirectory, logger: logger)
                try await server.start()
                api = server
            } catch {
                await server.shutdown(grace: .seconds(1))
                await datasets.shutdown()
                throw error
            }
        }

        let writer = store.writer
        let tick = configuration.tickInterval
        let tasks = BackgroundTasks(
            feed: Task { for await batch in feed { await writer.append(batch) } },
            writer: Task { await writer.run() },
            ticks: Task {
                while !Task.isCancelled {
                    try? await Task.sleep(for: tick)
                    await registry.tick()
                    await jobs.tick()
                }
            },
            nodeRows: Task { await relay.deliver(to: jobs) })
        logger.info("coordinator started", metadata: [
            "rpc.port": "\(server.port)", "http.port": "\(api?.port ?? 0)", "data.dir": "\(configuration.dataDirectory)",
            "detector.heartbeat": "\(configuration.detector.heartbeatInterval)",
            "detector.suspect_after_missed": "\(configuration.detector.suspectAfterMissed)",
            "detector.down_after": "\(configuration.detector.downAfter)",
        ])
        return Coordinator(configuration: configuration, registry: registry, store: store, hub: hub, datasets: datasets,
                           jobs: jobs, server: server, api: api, tasks: tasks, persistFeed: feedContinuation, logger: logger)
    }

    private init(configuration: CoordinatorConfiguration, registry: NodeRegistry, store: CoordinatorStore, hub: LogHub,
                 datasets: DatasetService, jobs: JobManager, server: RPCServer, api: APIServer?, tasks: BackgroundTasks, persistFeed: AsyncStream<[StoreRecord]>.Continuation,
                 logger: Logger) {
        self.configuration = configuration
        self.registry = registry
        self.store = store
        self.hub = hub
        self.datasets = datasets
        self.jobs = jobs
        self.server = server
        self.api = api
        self.tasks = tasks
        self.persistFeed = persistFeed
        self.logger = logger
    }

    /// Stops serving, then writes (or spools) everything still buffered.
    public func shutdown() async {
        logger.info("coordinator stopping")
        await api?.shutdown()
        await server.shutdown(grace: .seconds(1))
        await datasets.shutdown()
        tasks.ticks.cancel()
        tasks.nodeRows.cancel()
        persistFeed.finish()
        await tasks.feed.value
        tasks.writer.cancel()
        await tasks.writer.value
        await store.writer.flush()
    }

    static func waitForDatabase(_ store: CoordinatorStore, within limit: Duration, logger: Logger) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + limit
        var backoff = Backoff(base: .milliseconds(250), cap: .seconds(5))
        while true {
            do {
                let applied = try await store.migrate()
                if !applied.isEmpty { logger.info("database migrated", metadata: ["db.versions": "\(applied)"]) }
                return
            } catch {
                let delay = backoff.next()
                if clock.now + delay > deadline {
                    throw ConfigurationError("the database is not reachable (\(error)); check --database-url / NEBULA_DATABASE_URL and that PostgreSQL is running")
                }
                logger.warning("database not reachable yet; retrying", metadata: ["error": "\(error)", "retry.in": "\(delay)"])
                try await Task.sleep(for: delay)
            }
        }
    }
}

/// Node calls need the join token, admin and dataset calls the admin token, shard calls either (nodes
/// fetch shards, admins look at them). Other paths pass (they answer UNIMPLEMENTED).
func authorize(method: String, metadata: RPCMetadata, joinToken: String, adminToken: String) -> RPCStatus? {
    let accepted: [String]
    let role: String
    if method.hasPrefix("/nebula.v1.NodeService/") {
        accepted = [joinToken]
        role = "cluster join token"
    } else if method.hasPrefix("/nebula.v1.WorkerService/") {
        accepted = [joinToken]
        role = "cluster join token"
    } else if method.hasPrefix("/nebula.v1.AdminService/") || method.hasPrefix("/nebula.v1.DatasetService/")
                || method.hasPrefix("/nebula.v1.JobService/") {
        accepted = [adminToken]
        role = "admin token"
    } else if method.hasPrefix("/nebula.v1.ShardService/") {
        accepted = [joinToken, adminToken]
        role = "cluster join token or admin token"
    } else {
        return nil
    }
    guard let presented = metadata.bearerToken else {
        return RPCStatus(.unauthenticated, "missing \(role): send it as 'authorization: Bearer <token>'")
    }
    // every candidate is compared, so the time taken does not tell which one matched
    let matches = accepted.map { constantTimeEqual(presented, $0) }
    guard matches.contains(true) else {
        return RPCStatus(.unauthenticated, "wrong \(role)")
    }
    return nil
}

func constantTimeEqual(_ a: String, _ b: String) -> Bool {
    let x = Array(a.utf8), y = Array(b.utf8)
    var diff = UInt8(x.count == y.count ? 0 : 1)
    for i in 0..<max(x.count, y.count) {
        diff |= (i < x.count ? x[i] : 0) ^ (i < y.count ? y[i] : 0)
    }
    return diff == 0
}

/// The coordinator's long-running tasks, stopped in this order at shutdown: ticks and node rows,
/// then the persist feed drains into the writer, then the writer.
struct BackgroundTasks {
    var feed: Task<Void, Never>
    var writer: Task<Void, Never>
    var ticks: Task<Void, Never>
    var nodeRows: Task<Void, Never>
}

/// Hands node rows to the job manager, one at a time and in the order the registry produced them
/// (a node that goes DOWN and registers again must not reach the scheduler as UP then DOWN). Rows
/// produced before the job manager exists wait in the stream.
final class NodeChangeRelay: Sendable {
    private let rows: AsyncStream<NodeRow>
    private let continuation: AsyncStream<NodeRow>.Continuation

    init() {
        (rows, continuation) = AsyncStream.makeStream(of: NodeRow.self, bufferingPolicy: .unbounded)
    }

    func forward(_ records: [StoreRecord]) {
        for case .node(let row) in records { continuation.yield(row) }
    }

    /// Runs until its task is cancelled.
    func deliver(to target: JobManager) async {
        for await row in rows { await target.nodeChanged(row) }
    }
}
