import Foundation
import Logging
import NebulaCommon
import NebulaDataset
import NebulaModel
import NebulaRPC
import NebulaScheduler

/// Settings of the job service.
public struct JobConfiguration: Sendable {
    /// How long a failed node gets no new work.
    public var nodeCoolDown: Duration = .seconds(60)
    /// Models the distributed trainer runs today.
    public static let distributedModels: Set<String> = ["mlp", "gbdt"]
    public init() {}
}

// Note [Attempt numbers after a coordinator restart]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// The scheduler is rebuilt empty when the coordinator starts; unfinished jobs are submitted to it
// again. Their earlier attempts may still be running on nodes that lost their coordinator, so the
// stored attempt number becomes an offset: the scheduler's attempt k is attempt offset + k in
// PostgreSQL, on the wire and in the launch command, and ranks of an older attempt are refused at
// JoinJob and told to stop at their next progress report.

// Note [Ordered transition writes]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// The actor applies a scheduler decision at once and stores it in the background, so a slow
// PostgreSQL never holds up scheduling. One decision can carry several transitions of one job
// (running → completing → completed when the last rank reports). Each used to be stored by a task
// of its own, and tasks run in any order: under load 'completing' was written after 'completed' and
// the job stayed 'completing' in PostgreSQL for good while the coordinator had forgotten it. Each
// job's writes now form a chain, every write waiting for the one before it; jobs do not wait for
// each other.

/// The thin shell around the pure `Scheduler`: persists every transition as a job_event, launches and
/// stops attempts through the node agents, takes the ranks' reports, and ends hung attempts.
public actor JobManager {
    private var scheduler: Scheduler
    private let store: JobStore
    private let datasets: DatasetService
    private let registry: NodeRegistry
    private let persist: @Sendable ([StoreRecord]) -> Void
    private let checkpointRoot: String
    private let logger: Logger
    private var jobs: [String: JobRecord] = [:]
    private var attemptOffset: [String: Int] = [:]
    private var restartOffset: [String: Int] = [:]
    private var watchdogs: [String: CollectiveWatchdog] = [:]
    /// Rank → pid/host of the current attempt (shown by `job show`).
    private var rankInfo: [String: [Int: (node: String, host: String, pid: Int)]] = [:]
    private var finished: Set<String> = []
    private var nextSequence: Int64 = 0
    /// The last stored transition of each active job: the next one waits for it, so PostgreSQL sees a
    /// job's transitions in the order they happened (Note [Ordered transition writes]).
    private var transitionWrites: [String: Task<Void, Never>] = [:]

    init(configuration: JobConfiguration, store: JobStore, datasets: DatasetService, registry: NodeRegistry, dataDirectory: String,
         persist: @escaping @Sendable ([StoreRecord]) -> Void, logger: Logger) throws {
        scheduler = Scheduler(configuration: .init(nodeCoolDown: configuration.nodeCoolDown))
        self.store = store
        self.datasets = datasets
        self.registry = registry
        self.persist = persist
        checkpointRoot = dataDirectory + "/jobs"
        self.logger = logger
        try FileManager.default.createDirectory(atPath: checkpointRoot, withIntermediateDirectories: true)
    }

    private var now: Int64 { nowUnixMs() }

    /// The scheduler's number for a job's current attempt (Note [Attempt numbers after a coordinator restart]).
    private func schedulerAttempt(_ job: JobRecord) -> Int { job.attempt - (attemptOffset[job.id] ?? 0) }

    /// Just the state of a job (active ones from memory), for loops that poll it.
    /// A job's info, live while it is active.
    func info(of id: String) async throws -> JobInfo {
        if let job = jobs[id] { return live(job) }
        guard let stored = try await store.get(id) else { throw notFound(id) }
        return stored.info
    }

    func state(of id: String) async throws -> String {
        if let job = jobs[id] { return job.state }
        guard let stored = try await store.get(id) else { throw notFound(id) }
        return stored.state
    }

    /// The stored info, with what only the scheduler knows live (why a pending job waits).
    private func live(_ record: JobRecord) -> JobInfo {
        var info = (jobs[record.id] ?? record).info
        if info.state == "pending", let view = scheduler.job(record.id), !view.reason.isEmpty { info.reason = view.reason }
        return info
    }

    /// Known nodes first, then the unfinished jobs (Note [Attempt numbers after a coordinator restart]).
    func recover() async throws {
        for row in await registry.rows() { await nodeChanged(row) }
        for var job in try await store.active() {
            attemptOffset[job.id] = job.attempt
            restartOffset[job.id] = job.restarts
            if job.state != "pending" {
                let from = job.state
                job.state = "pending"
                job.reason = "the coordinator restarted; waiting to run again"
                jobs[job.id] = job
                try await store.transition(job, from: from, to: "pending", attempt: job.attempt, reason: job.reason)
            }
            jobs[job.id] = job
            nextSequence = max(nextSequence, job.sequence)
            apply(scheduler.submit(schedulerJob(job), now: now), quietSubmit: true)
        }
    }

    private func schedulerJob(_ job: JobRecord) -> SchedulerJob {
        SchedulerJob(id: job.id, priority: job.spec.priority, sequence: job.sequence,
                     requirements: JobRequirements(minNodes: job.spec.minNodes, maxNodes: job.spec.maxNodes,
                                                   gpusPerNode: job.spec.gpusPerNode, labels: job.spec.labels),
                     maxRestarts: job.spec.maxRestarts)
    }

    // MARK: Submit

    /// Queues a job. `builderCandidate`: the builder service submits a candidate (model "builder"),
    /// which users cannot.
    func submit(_ request: JobSpec, builderCandidate: Bool = false) async throws -> JobInfo {
        var spec = request
        try validate(spec, builderCandidate: builderCandidate)
        let prepared = try await datasets.prepareJob(datasetId: spec.datasetId, target: spec.target, task: spec.task,
                                                     model: spec.model)
        if spec.name.isEmpty { spec.name = "\(spec.model)-\(spec.target)" }
        if spec.maxNodes == 0 { spec.maxNodes = spec.minNodes }
        if spec.holdoutFraction == 0 { spec.holdoutFraction = holdoutFraction(rows: prepared.rows) }
        if spec.user.isEmpty { spec.user = "admin" }
        if spec.learningRate == 0 { spec.learningRate = spec.model == "gbdt" ? 0.1 : 1e-3 }
        let id = "job-" + String(UInt64.random(in: 0...0xFF_FFFF_FFFF), radix: 16).leftPadded(to: 10)
        let record = try await store.insert(id: id, spec: spec, plan: prepared.plan)
        jobs[id] = record
        nextSequence = max(nextSequence, record.sequence)
        logger.info("job submitted", metadata: ["job.id": "\(id)", "job.task": "\(prepared.plan.task)",
                                                "job.nodes": "\(spec.minNodes)-\(spec.maxNodes)"])
        apply(scheduler.submit(schedulerJob(record), now: now), quietSubmit: true)
        return jobs[id]?.info ?? record.info
    }

    nonisolated func validate(_ spec: JobSpec, builderCandidate: Bool = false) throws {
        func bad(_ field: String, _ message: String) -> RPCStatus { RPCStatus(.invalidArgument, "\(field): \(message)") }
        guard (spec.model == "builder") == builderCandidate, spec.builder.isEmpty != builderCandidate else {
            throw bad("--model", "'builder' jobs are the candidates of builder runs: start one with `nebula build` or POST /api/process/builder")
        }
        guard builderCandidate || JobConfiguration.distributedModels.contains(spec.model) else {
            let known = ["mlp", "linear", "logistic", "gbdt", "cnn", "text"]
            throw bad("--model", known.contains(spec.model)
                ? "'\(spec.model)' runs with `nebula train` on one machine; cluster jobs train mlp and gbdt models so far"
                : "unknown model '\(spec.model)': use one of \(known.joined(separator: ", "))")
        }
        guard spec.minNodes >= 1 else { throw bad("--nodes/--min-nodes", "must be at least 1") }
        guard spec.maxNodes == 0 || spec.maxNodes >= spec.minNodes else {
            throw bad("--max-nodes", "\(spec.maxNodes) is below --min-nodes \(spec.minNodes)")
        }
        guard spec.maxNodes <= 256 else { throw bad("--max-nodes", "at most 256") }
        guard spec.epochs >= 1, spec.epochs <= 100_000 else { throw bad("--epochs", "must be between 1 and 100000") }
        guard spec.batchSize >= 1, spec.batchSize <= 1 << 20 else { throw bad("--batch-size", "must be between 1 and 1048576") }
        guard spec.learningRate >= 0, spec.learningRate.isFinite, spec.learningRate < 10 else {
            throw bad("--lr", "must be a positive number below 10 (or 0 for the model's default)")
        }
        guard spec.holdoutFraction >= 0, spec.holdoutFraction < 0.9 else { throw bad("--holdout", "must be in [0, 0.9)") }
        guard spec.maxRestarts >= 0, spec.maxRestarts <= 100 else { throw bad("--max-restarts", "must be between 0 and 100") }
        guard spec.gpusPerNode >= 0, spec.gpusPerNode <= 64 else { throw bad("--gpus-per-node", "must be between 0 and 64") }
        guard ["", "binary", "multiclass", "regression"].contains(spec.task) else {
            throw bad("--task", "use binary, multiclass or regression")
        }
        guard spec.bucketCapMB >= 0, spec.bucketCapMB <= 1024 else { throw bad("--bucket-cap-mb", "must be between 1 and 1024") }
        guard spec.gpuBatchSize >= 0, spec.gpuBatchSize <= 1 << 20 else {
            throw bad("--gpu-batch-size", "must be between 1 and 1048576 (or 0: --batch-size on every node)")
        }
        if spec.model == "gbdt" {
            if spec.gpuBatchSize > 0 { throw bad("--gpu-batch-size", "gbdt jobs train on whole shards, not batches: drop it") }
            if spec.fp16Allreduce { throw bad("--fp16-allreduce", "gbdt jobs sum histograms exactly in Float64: drop it") }
        }
    }

    /// AutoGluon's holdout rule: n < 5000 → max(0.1, min(0.2, 500/n)); else max(0.01, min(0.1, 2500/n)).
    nonisolated func holdoutFraction(rows: Int) -> Double {
        let n = Double(max(1, rows))
        return rows < 5000 ? max(0.1, min(0.2, 500 / n)) : max(0.01, min(0.1, 2500 / n))
    }

    // MARK: Queries

    func list(_ request: JobListRequest) async throws -> JobList {
        let stored = try await store.list(limit: request.limit > 0 ? min(request.limit, 1000) : 100, all: request.all)
        return JobList(jobs: stored.map { live($0) })
    }

    /// A page of a user's jobs (nil: everyone's) with the live view of the active ones, and the total.
    func page(owner: String?, state: String?, limit: Int, offset: Int) async throws -> (jobs: [JobInfo], total: Int) {
        let (records, total) = try await store.page(owner: owner, state: state, limit: limit, offset: offset)
        return (records.map { live($0) }, total)
    }

    func countsByState() async throws -> [String: Int] { try await store.countsByState() }

    func owned(by owner: String) async throws -> [(id: String, state: String)] { try await store.owned(by: owner) }

    func detail(_ id: String) async throws -> JobDetail {
        guard let record = try await store.get(id) else { throw notFound(id) }
        let live = jobs[id] ?? record
        var info = self.live(record)
        info.samplesPerSecond = record.samplesPerSecond
        info.step = record.step
        info.loss = record.loss
        let events = try await store.events(id)
        let checkpoints = try await store.checkpoints(id)
        struct Rank: Codable {
            var rank: Int
            var node: String
            var host: String
            var pid: Int
            var step: UInt64
            var epoch: Int
            var samplesPerSecond: Double
            var allreduceMs: Double
            var collectiveSeq: UInt64?
        }
        let summaries = try await store.ranks(id, attempt: live.attempt)
        let known = rankInfo[id] ?? [:]
        let ranks = Set(summaries.map(\.rank)).union(known.keys).sorted().map { r -> Rank in
            let s = summaries.first { $0.rank == r }
            let k = known[r]
            return Rank(rank: r, node: k?.node ?? "", host: k?.host ?? "", pid: k?.pid ?? 0, step: s?.step ?? 0, epoch: s?.epoch ?? 0,
                        samplesPerSecond: s?.samplesPerSecond ?? 0, allreduceMs: s?.allreduceMs ?? 0,
                        collectiveSeq: watchdogs[id]?.lastEntered(rank: r))
        }
        struct Checkpoint: Codable {
            var id: String
            var attempt: Int
            var step: UInt64
            var epoch: Int
            var worldSize: Int
            var final: Bool
            var bytes: UInt64
            var sha256: String
            var createdUnixMs: Int64
        }
        return JobDetail(
            info: info, eventsJSON: snakeJSON(events), ranksJSON: snakeJSON(ranks),
            checkpointsJSON: snakeJSON(checkpoints.map {
                Checkpoint(id: $0.id, attempt: $0.attempt, step: $0.step, epoch: $0.epoch, worldSize: $0.worldSize, final: $0.final,
                           bytes: $0.bytes, sha256: $0.sha256, createdUnixMs: $0.createdUnixMs)
            }),
            metricsJSON: record.metricsJSON.isEmpty ? "{}" : record.metricsJSON,
            progressJSON: snakeJSON(try await store.progress(id, limit: 50)))
    }

    func cancel(_ id: String, reason: String) async throws -> JobInfo {
        guard let job = jobs[id] else {
            guard let stored = try await store.get(id) else { throw notFound(id) }
            throw RPCStatus(.failedPrecondition, "job \(id) is already \(stored.state)")
        }
        let directives = scheduler.cancel(jobId: id, reason: reason.isEmpty ? "cancelled by the admin" : "cancelled: \(reason)",
                                          now: now)
        apply(directives)
        var info = job.info
        for case .transition(_, _, let to, let why) in directives {
            info.state = to.rawValue
            info.reason = why
        }
        return info
    }

    // MARK: Nodes

    /// Every change of a node's row (registration, state, drain) reaches the scheduler.
    func nodeChanged(_ row: NodeRow) async {
        if row.state == .down || row.state == .left {
            apply(scheduler.nodeLost(nodeId: row.nodeId, reason: "node \(row.nodeId) is \(row.state.rawValue): \(row.stateReason)",
                                     now: now))
        } else {
            let r = row.resources
            let node = SchedulerNode(id: row.nodeId, responding: row.state == .up, drained: row.drained, gpus: r.gpus.count,
                                     gpuModel: r.gpus.first?.name ?? "", cpus: r.cpuCores, labels: r.labels,
                                     slots: 1)
            apply(scheduler.nodeChanged(node, now: now))
        }
    }

    // MARK: Workers

    func join(_ request: JoinJobRequest) async throws -> JobPlan {
        guard let job = jobs[request.jobId] else { throw RPCStatus(.notFound, "job \(request.jobId) is not active") }
        guard request.attempt == job.attempt, job.state == "running" else {
            throw RPCStatus(.failedPrecondition, "attempt \(request.attempt) of job \(job.id) is not current (attempt \(job.attempt), \(job.state))")
        }
        guard request.worldSize == job.nodes.count, request.rank >= 0, request.rank < request.worldSize else {
            throw RPCStatus(.invalidArgument, "rank \(request.rank) of \(request.worldSize) does not fit attempt \(job.attempt) over \(job.nodes.count) nodes")
        }
        rankInfo[job.id, default: [:]][request.rank] = (request.nodeId, request.host, request.pid)
        // A builder candidate's ranks each read the whole dataset in row order: the one-shard cut
        // (Note [Candidates as cluster jobs]).
        let candidate = job.spec.model == "builder"
        let stratify = job.plan.task == "regression" || candidate ? "" : job.spec.target
        let manifest = try await datasets.manifest(ShardManifestRequest(datasetId: job.spec.datasetId, count: candidate ? 1 : request.worldSize,
                                                                         seed: candidate ? 0 : job.spec.seed, stratifyBy: stratify))
        guard let shard = manifest.shards.first(where: { $0.index == (candidate ? 0 : request.rank) }) else {
            throw RPCStatus(.internal, "the shard manifest of \(job.spec.datasetId) has no shard \(request.rank)")
        }
        var plan = JobPlan(spec: job.spec, attempt: job.attempt, task: job.plan.task, classes: job.plan.classes, shard: shard,
                           shardCount: manifest.count, schemaJSON: job.plan.schemaJSON)
        if job.spec.gpuBatchSize > 0 {
            // one rank per node, in placement order (Note [Per-rank batch sizes])
            var gpus: [Int] = []
            for node in job.nodes { gpus.append(await registry.info(node)?.resources.gpus.count ?? 0) }
            plan.rankBatchSizes = job.spec.rankBatchSizes(gpusPerRank: gpus)
        }
        if let checkpoint = try await store.latestCheckpoint(job.id) {
            plan.resumeCheckpointId = checkpoint.id
            plan.resumeBytes = checkpoint.bytes
            plan.resumeSHA256 = checkpoint.sha256
        }
        return plan
    }

    func progress(_ report: ProgressReport) async -> ProgressAck {
        guard let job = jobs[report.jobId] else { return ProgressAck(stop: true, reason: "job \(report.jobId) is not active") }
        guard report.attempt == job.attempt, job.state == "running" || job.state == "completing" else {
            return ProgressAck(stop: true, reason: "attempt \(report.attempt) is not current (attempt \(job.attempt), \(job.state))")
        }
        if watchdogs[job.id] == nil {
            watchdogs[job.id] = CollectiveWatchdog(worldSize: job.nodes.count,
                                                   timeout: .seconds(max(5, job.spec.stallTimeoutSeconds)))
            apply(scheduler.attemptStarted(jobId: job.id, attempt: schedulerAttempt(job)))
        }
        if report.collectiveSeq > 0 { watchdogs[job.id]?.entered(rank: report.rank, seq: report.collectiveSeq, now: now) }
        if !report.steps.isEmpty {
            persist(report.steps.map { .jobMetrics(jobId: job.id, attempt: job.attempt, rank: report.rank, $0) })
            if report.rank == 0, let last = report.steps.last {
                // all ranks together: rank 0's rate times the world size (ranks step in lock-step)
                let total = last.samplesPerSecond * Double(job.nodes.count)
                jobs[job.id]?.samplesPerSecond = total
                jobs[job.id]?.step = last.step
                jobs[job.id]?.loss = last.loss
                try? await store.updateProgress(job.id, samplesPerSecond: total, step: last.step, loss: last.loss)
            }
        }
        return ProgressAck()
    }

    func storeCheckpoint(_ chunks: RPCStreamReader<CheckpointChunk>) async throws -> CheckpointInfo {
        var iterator = chunks.makeAsyncIterator()
        guard let first = try await iterator.next() else { throw RPCStatus(.invalidArgument, "empty checkpoint upload") }
        guard let job = jobs[first.jobId], first.attempt == job.attempt else {
            throw RPCStatus(.failedPrecondition, "job \(first.jobId) attempt \(first.attempt) is not current")
        }
        let id = "ckpt-" + String(UInt64.random(in: 0...0xFF_FFFF_FFFF), radix: 16).leftPadded(to: 10)
        let directory = checkpointRoot + "/" + job.id
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = directory + "/" + id + ".ckpt"
        let partial = path + ".partial"
        guard FileManager.default.createFile(atPath: partial, contents: nil), let handle = FileHandle(forWritingAtPath: partial) else {
            throw RPCStatus(.internal, "cannot write a checkpoint into the coordinator's data directory")
        }
        var hasher = SHA256()
        var written: UInt64 = 0
        var chunk: CheckpointChunk? = first
        do {
            while let c = chunk {
                guard c.offset == written else { throw RPCStatus(.invalidArgument, "checkpoint chunk at \(c.offset), expected \(written)") }
                try handle.write(contentsOf: c.data)
                hasher.update(c.data)
                written += UInt64(c.data.count)
                guard written <= first.totalBytes else { throw RPCStatus(.invalidArgument, "checkpoint larger than announced") }
                chunk = try await iterator.next()
            }
            try handle.synchronize()
            try handle.close()
        } catch {
            try? handle.close()
            try? FileManager.default.removeItem(atPath: partial)
            throw error
        }
        let sha = SHA256.hex(hasher.finalize())
        guard written == first.totalBytes, sha == first.sha256 else {
            try? FileManager.default.removeItem(atPath: partial)
            throw RPCStatus(.dataLoss, "checkpoint upload incomplete or corrupt (\(written) of \(first.totalBytes) bytes, checksum \(sha == first.sha256 ? "ok" : "mismatch"))")
        }
        try FileManager.default.moveItem(atPath: partial, toPath: path)
        let record = CheckpointRecord(id: id, jobId: job.id, attempt: job.attempt, step: first.step, epoch: first.epoch,
                                      worldSize: first.worldSize > 0 ? first.worldSize : job.nodes.count, final: first.isFinal,
                                      bytes: written, sha256: sha, path: path, createdUnixMs: now)
        try await store.insertCheckpoint(record)
        logger.info("checkpoint stored", metadata: ["job.id": "\(job.id)", "checkpoint.id": "\(id)", "step": "\(first.step)",
                                                    "final": "\(first.isFinal)"])
        return CheckpointInfo(checkpointId: id, bytes: written, sha256: sha)
    }

    func checkpointFile(_ jobId: String, _ id: String) async throws -> (path: String, record: CheckpointRecord) {
        guard let job = try await store.get(jobId) else { throw notFound(jobId) }
        let checkpointId = id.isEmpty ? job.modelCheckpoint : id
        guard !checkpointId.isEmpty else {
            throw RPCStatus(.failedPrecondition, "job \(jobId) has no final model yet (it is \(job.state))")
        }
        guard let record = try await store.checkpoint(jobId, checkpointId) else {
            throw RPCStatus(.notFound, "job \(jobId) has no checkpoint \(checkpointId)")
        }
        return (record.path, record)
    }

    func finish(_ request: FinishJobRequest) async throws {
        guard let job = jobs[request.jobId], request.attempt == job.attempt else {
            throw RPCStatus(.failedPrecondition, "job \(request.jobId) attempt \(request.attempt) is not current")
        }
        try await store.finish(job.id, metricsJSON: request.metricsJSON, modelCheckpoint: request.modelCheckpointId)
        finished.insert(job.id)
        apply(scheduler.attemptFinished(jobId: job.id, attempt: schedulerAttempt(job), success: true,
                                        reason: "finished: holdout \(request.metricsJSON)", now: now))
    }

    /// mpirun ended on the launching node.
    func attemptExited(_ exit: AttemptExit) {
        guard let job = jobs[exit.jobId], exit.attempt == job.attempt else { return }
        if finished.contains(job.id) { return }
        let how = exit.exitCode >= 0 ? "exit code \(exit.exitCode)" : "signal \(exit.signal)"
        let tail = exit.outputTail.split(separator: "\n").suffix(6).joined(separator: " | ")
        let reason = "mpirun on \(exit.nodeId) ended with \(how) before the job finished" + (tail.isEmpty ? "" : ": \(tail)")
        apply(scheduler.attemptFailed(jobId: job.id, attempt: schedulerAttempt(job), reason: reason,
                                      failedNode: nil, now: now))
    }

    /// Cool-downs, scheduling, and the collective watchdogs.
    func tick() {
        apply(scheduler.tick(now: now))
        for (id, var dog) in watchdogs {
            let verdict = dog.tick(now: now)
            watchdogs[id] = dog
            guard let verdict, let job = jobs[id] else { continue }
            let names = verdict.missingRanks.map { r in
                let node = rankInfo[id]?[r].map { " on \($0.node) (pid \($0.pid))" } ?? ""
                return "rank \(r)\(node)"
            }
            let reason = "hang: \(names.joined(separator: ", ")) never entered collective #\(verdict.seq) (waited \(verdict.waitedMs / 1000)s); aborted"
            logger.error("job attempt hung", metadata: ["job.id": "\(id)", "missing.ranks": "\(verdict.missingRanks)"])
            watchdogs[id] = nil
            // a hang is not cured by a restart on the same code and data: the job fails with the names
            apply(scheduler.attemptFinished(jobId: id, attempt: schedulerAttempt(job), success: false,
                                            reason: reason, now: now))
            sendStop(job, reason: reason)
        }
    }

    // MARK: Directives

    private func apply(_ directives: [SchedulerDirective], quietSubmit: Bool = false) {
        for directive in directives {
            switch directive {
            case .transition(let id, let from, let to, let schedulerReason):
                guard var job = jobs[id] else { continue }
                if from == nil && quietSubmit { continue }  // the submission row and event are written already
                let offset = attemptOffset[id] ?? 0
                let reason = Self.shiftAttempts(schedulerReason, by: offset)
                let view = scheduler.job(id)
                job.state = to.rawValue
                job.reason = reason
                job.attempt = (view?.attempt ?? 0) + offset
                job.restarts = (view?.restarts ?? 0) + (restartOffset[id] ?? 0)
                if to == .running {
                    job.nodes = view?.placement ?? job.nodes
                    job.startedUnixMs = now
                    finished.remove(id)
                }
                if to.isTerminal { job.finishedUnixMs = now }
                jobs[id] = job
                let snapshot = job
                let store = self.store
                let logger = self.logger
                let previous = transitionWrites[id]
                transitionWrites[id] = Task {
                    await previous?.value
                    do {
                        try await store.transition(snapshot, from: from?.rawValue, to: to.rawValue, attempt: snapshot.attempt,
                                                   reason: reason)
                    } catch {
                        logger.error("could not store a job transition", metadata: ["job.id": "\(id)", "error": "\(error)"])
                    }
                }
                logger.info("job \(from?.rawValue ?? "-") → \(to.rawValue)", metadata: ["job.id": "\(id)", "reason": "\(reason)"])
                if to.isTerminal {
                    jobs[id] = nil
                    watchdogs[id] = nil
                    transitionWrites[id] = nil  // the write goes on; nothing comes after a terminal state
                }
            case .launch(let id, let attempt, let nodes):
                guard var job = jobs[id] else { continue }
                job.attempt = attempt + (attemptOffset[id] ?? 0)
                job.nodes = nodes
                jobs[id] = job
                watchdogs[id] = nil
                rankInfo[id] = nil
                let launch = job
                Task { await self.launch(launch) }
            case .stop(let id, _, let reason):
                if let job = jobs[id] { sendStop(job, reason: reason) }
            case .exclude(let node, let until, let reason):
                logger.notice("node excluded from new work", metadata: ["node.id": "\(node)", "until.unix_ms": "\(until)",
                                                                         "reason": "\(reason)"])
            }
        }
    }

    /// "attempt 2" in the scheduler's words is "attempt 2 + offset" here
    /// (Note [Attempt numbers after a coordinator restart]).
    static func shiftAttempts(_ text: String, by offset: Int) -> String {
        guard offset > 0 else { return text }
        var out = ""
        var rest = Substring(text)
        while let range = rest.range(of: "attempt ") {
            out += rest[..<range.upperBound]
            rest = rest[range.upperBound...]
            let digits = rest.prefix { $0.isNumber }
            if let n = Int(digits) {
                out += String(n + offset)
                rest = rest.dropFirst(digits.count)
            }
        }
        return out + rest
    }

    private func launch(_ job: JobRecord) async {
        let rows = Dictionary(uniqueKeysWithValues: await registry.rows().map { ($0.nodeId, $0) })
        let hosts = job.nodes.map { id -> String in
            guard let row = rows[id] else { return id }
            return row.address.isEmpty ? row.resources.hostname : row.address
        }
        let command = LaunchCommand(jobId: job.id, attempt: job.attempt, worldSize: job.nodes.count, hosts: hosts,
                                    nodeIds: job.nodes)
        // After a coordinator restart the agents reconnect their command streams within seconds: wait for it.
        var delivered = false
        if let first = job.nodes.first {
            for _ in 0..<60 {
                if await registry.sendCommand(.launch(command), to: first) {
                    delivered = true
                    break
                }
                try? await Task.sleep(for: .milliseconds(500))
                guard jobs[job.id]?.attempt == job.attempt, jobs[job.id]?.state == "running" else { return }
            }
        }
        guard delivered else {
            logger.error("could not reach the first node of a job", metadata: ["job.id": "\(job.id)"])
            apply(scheduler.attemptFailed(jobId: job.id, attempt: schedulerAttempt(job),
                                          reason: "node \(job.nodes.first ?? "?") has no command stream", failedNode: job.nodes.first,
                                          now: now))
            return
        }
        logger.info("attempt launched", metadata: ["job.id": "\(job.id)", "job.attempt": "\(job.attempt)", "nodes": "\(job.nodes)"])
    }

    private func sendStop(_ job: JobRecord, reason: String) {
        guard let first = job.nodes.first else { return }
        let registry = self.registry
        Task { await registry.sendCommand(.stop(jobId: job.id, attempt: job.attempt, reason: reason), to: first) }
    }

    nonisolated func notFound(_ id: String) -> RPCStatus { RPCStatus(.notFound, "no job '\(id)' (see `nebula jobs`)") }
}

func snakeJSON<T: Encodable>(_ value: T) -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    encoder.keyEncodingStrategy = .convertToSnakeCase
    encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    return (try? String(decoding: encoder.encode(value), as: UTF8.self)) ?? "null"
}
