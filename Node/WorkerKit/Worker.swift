import Foundation
import Logging
import NebulaCommon
import NebulaDataset
import NebulaMPI
import NebulaModel
import NebulaNode
import NebulaRPC
import NebulaWire

/// Everything one rank of a job needs (`nebula-node worker`, started by mpirun).
public struct WorkerConfiguration: Sendable {
    public var coordinator: String
    public var token: String
    public var jobId: String
    public var attempt: Int
    /// The job's nodes in rank order (rank r runs on nodeIds[r / slotsPerNode]).
    public var nodeIds: [String]
    public var slotsPerNode: Int
    /// The node's shard cache.
    public var cacheDirectory: String
    public var tls: RPCTLS?
    /// How often progress goes to the coordinator.
    public var reportInterval: Duration = .seconds(1)

    public init(coordinator: String, token: String, jobId: String, attempt: Int, nodeIds: [String], slotsPerNode: Int,
                cacheDirectory: String) {
        self.coordinator = coordinator
        self.token = token
        self.jobId = jobId
        self.attempt = attempt
        self.nodeIds = nodeIds
        self.slotsPerNode = slotsPerNode
        self.cacheDirectory = cacheDirectory
    }
}

/// One rank: joins the job, fetches its shard, checks the MPI world with a preflight allreduce,
/// trains (on the MPI thread), reports progress and checkpoints, and rank 0 reports the result.
public enum Worker {
    public static func run(_ configuration: WorkerConfiguration, logger baseLogger: Logger) async throws {
        let mpi = try MPIRuntime(logger: baseLogger)
        var logger = baseLogger
        logger[metadataKey: "job.id"] = "\(configuration.jobId)"
        logger[metadataKey: "mpi.rank"] = "\(mpi.rank)"
        let rank = mpi.rank, size = mpi.size
        let channel = try RPCChannel(configuration: .init(target: configuration.coordinator, tls: configuration.tls,
                                                          metadata: .bearer(configuration.token)))
        defer { channel.close() }
        let nodeIndex = rank / max(1, configuration.slotsPerNode)
        let nodeId = nodeIndex < configuration.nodeIds.count ? configuration.nodeIds[nodeIndex] : ProcessInfo.processInfo.hostName

        let plan = try await channel.unary(
            WorkerServicePath.joinJob,
            JoinJobRequest(jobId: configuration.jobId, attempt: configuration.attempt, rank: rank, worldSize: size, nodeId: nodeId,
                           host: ProcessInfo.processInfo.hostName, pid: Int(getpid())),
            as: JobPlan.self, timeout: .seconds(600))
        logger.info("rank joined", metadata: ["mpi.size": "\(size)", "node.id": "\(nodeId)",
                                              "shard.index": "\(plan.shard.index)", "shard.rows": "\(plan.shard.rows)"])

        let cache = try ShardCache(directory: configuration.cacheDirectory, logger: logger)
        let fetched = try await cache.fetch(plan.shard, of: plan.spec.datasetId, over: channel)
        logger.info(fetched.cached ? "shard found in the node cache" : "shard fetched",
                    metadata: ["shard.bytes": "\(plan.shard.bytes)", "shard.resumed_from": "\(fetched.resumedFrom)"])

        if plan.spec.model == "builder" {
            try await CandidateWorker.run(configuration, plan: plan, datasetPath: fetched.path, mpi: mpi, channel: channel, logger: logger)
            return
        }
        let schema = try JSONDecoder().decode(FeatureSchema.self, from: Data(plan.schemaJSON.utf8))

        var resume: [UInt8]?
        if !plan.resumeCheckpointId.isEmpty {
            resume = try await fetchCheckpoint(channel, job: configuration.jobId, id: plan.resumeCheckpointId,
                                               sha256: plan.resumeSHA256)
        }

        // Preflight: every rank reaches the coordinator and the MPI world sums correctly.
        let preflight = try await mpi.allreduce([1.0], op: .sum)
        guard preflight == [Double(size)] else {
            throw WorkerError("preflight allreduce gave \(preflight), expected [\(size)]: the MPI world is broken")
        }

        let telemetry = LoopTelemetry()
        let loop = TrainingLoop(plan: plan, schema: schema, shardPath: fetched.path, resume: resume, telemetry: telemetry,
                                rank: rank, size: size, runtime: mpi, log: { [logger] in logger.info("\($0)") })
        let backend = MPIAllreduceBackend(mpi)
        let outcome = try await reporting(channel, configuration, rank: rank, telemetry: telemetry, logger: logger) {
            try await mpi.run { comm in try loop.run(backend, comm) }
        }
        if rank == 0 {
            try await finish(channel, configuration, model: outcome.finalCheckpoint, step: outcome.step, epoch: outcome.epoch,
                             worldSize: size, metricsJSON: outcome.metricsJSON)
            logger.info("job finished", metadata: ["metrics": "\(outcome.metricsJSON)"])
        }
        try await mpi.barrier()
        try mpi.close()
    }

    /// Runs the training (`body`) while a reporter task sends telemetry; whether it succeeds or throws,
    /// the reporter sends the last metrics and checkpoints and stops before this returns (cancelling it
    /// could cut an upload).
    static func reporting<T>(_ channel: RPCChannel, _ configuration: WorkerConfiguration, rank: Int, telemetry: LoopTelemetry,
                             logger: Logger, _ body: () async throws -> T) async throws -> T {
        let reporter = Task {
            await report(channel, configuration, rank: rank, telemetry: telemetry, logger: logger)
        }
        let result: T
        do {
            result = try await body()
        } catch {
            telemetry.finish()
            await reporter.value
            throw error
        }
        telemetry.finish()
        await reporter.value
        return result
    }

    /// Rank 0 at the end: uploads the final model (if any) and reports the holdout metrics.
    static func finish(_ channel: RPCChannel, _ configuration: WorkerConfiguration, model bytes: [UInt8]?, step: UInt64, epoch: Int,
                       worldSize: Int, metricsJSON: String) async throws {
        var model = ""
        if let bytes {
            model = try await uploadCheckpoint(channel, configuration, bytes: bytes, step: step, epoch: epoch, worldSize: worldSize,
                                               isFinal: true).checkpointId
        }
        _ = try await channel.unary(WorkerServicePath.finishJob,
                                    FinishJobRequest(jobId: configuration.jobId, attempt: configuration.attempt,
                                                     metricsJSON: metricsJSON, modelCheckpointId: model),
                                    as: Empty.self, timeout: .seconds(60))
    }

    /// Sends telemetry every interval until the loop is done, then what is left. The wait between
    /// reports ends early when the loop finishes: a rank used to sit out the rest of the interval (up
    /// to a second per job) before it could report its result. Not by cancelling the task: that
    /// would cancel the final report's RPC too.
    static func report(_ channel: RPCChannel, _ configuration: WorkerConfiguration, rank: Int, telemetry: LoopTelemetry,
                       logger: Logger) async {
        let clock = ContinuousClock()
        while true {
            let done = telemetry.isDone
            await flush(channel, configuration, rank: rank, telemetry: telemetry, logger: logger)
            if done { return }
            let next = clock.now + configuration.reportInterval
            while !telemetry.isDone, clock.now < next {
                try? await Task.sleep(for: min(.milliseconds(20), next - clock.now))
            }
        }
    }

    static func flush(_ channel: RPCChannel, _ configuration: WorkerConfiguration, rank: Int, telemetry: LoopTelemetry,
                      logger: Logger) async {
        let (seq, steps, checkpoints) = telemetry.drain()
        // Progress first: checkpoint uploads can take a while, and a short job may end before a
        // report queued behind them arrives (rank 0, which checkpoints, then showed no progress).
        do {
            let ack = try await channel.unary(WorkerServicePath.reportProgress,
                                              ProgressReport(jobId: configuration.jobId, attempt: configuration.attempt,
                                                             rank: rank, collectiveSeq: seq, steps: steps),
                                              as: ProgressAck.self, timeout: .seconds(10))
            if ack.stop {
                logger.notice("the coordinator ended this attempt: exiting", metadata: ["reason": "\(ack.reason)"])
                exit(3)
            }
        } catch {
            logger.debug("progress report failed", metadata: ["error": "\(error)"])
        }
        for c in checkpoints {
            do {
                _ = try await uploadCheckpoint(channel, configuration, bytes: c.bytes, step: c.step, epoch: c.epoch,
                                               worldSize: 0, isFinal: false)
            } catch {
                logger.warning("checkpoint upload failed", metadata: ["step": "\(c.step)", "error": "\(error)"])
            }
        }
    }

    static func uploadCheckpoint(_ channel: RPCChannel, _ configuration: WorkerConfiguration, bytes: [UInt8], step: UInt64,
                                 epoch: Int, worldSize: Int, isFinal: Bool) async throws -> CheckpointInfo {
        let stream = try channel.clientStreaming(WorkerServicePath.uploadCheckpoint, timeout: .seconds(600))
        let sha = SHA256.hex(SHA256.hash(bytes))
        let chunk = 1 << 20
        var offset = 0
        repeat {
            let end = min(bytes.count, offset + chunk)
            let first = offset == 0
            try await stream.send(CheckpointChunk(jobId: first ? configuration.jobId : "", attempt: first ? configuration.attempt : 0,
                                                  step: step, epoch: epoch, worldSize: worldSize, isFinal: isFinal,
                                                  offset: UInt64(offset), data: Array(bytes[offset..<end]),
                                                  totalBytes: UInt64(bytes.count), sha256: first ? sha : ""))
            offset = end
        } while offset < bytes.count
        return try await stream.finish(as: CheckpointInfo.self)
    }

    static func fetchCheckpoint(_ channel: RPCChannel, job: String, id: String, sha256: String) async throws -> [UInt8] {
        var bytes: [UInt8] = []
        for try await chunk in try channel.serverStreaming(WorkerServicePath.fetchCheckpoint,
                                                           FetchCheckpointRequest(jobId: job, checkpointId: id),
                                                           as: ArtifactChunk.self, timeout: .seconds(600)) {
            guard chunk.offset == UInt64(bytes.count) else { throw WorkerError("checkpoint \(id) arrived out of order") }
            bytes += chunk.data
        }
        guard SHA256.hex(SHA256.hash(bytes)) == sha256 else {
            throw WorkerError("checkpoint \(id) does not match its SHA-256: refusing to resume from it")
        }
        return bytes
    }
}

public struct WorkerError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
