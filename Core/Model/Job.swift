/// Training jobs as the coordinator, the node agent, the workers and the CLI see them (plain values).

/// What a user asks for. Validated by the coordinator before anything is queued.
public struct JobSpec: Sendable, Hashable, Codable {
    public var name: String
    public var datasetId: String
    public var target: String
    public var model: String
    public var minNodes: Int
    public var maxNodes: Int
    public var gpusPerNode: Int
    public var labels: [String: String]
    public var priority: Int
    public var epochs: Int
    public var batchSize: Int
    public var learningRate: Double
    public var seed: UInt64
    public var maxRestarts: Int
    public var checkpointEvery: Int
    public var holdoutFraction: Double
    public var task: String
    public var bucketCapMB: Int
    public var fp16Allreduce: Bool
    public var user: String
    public var stallTimeoutSeconds: Int
    /// The local batch of ranks on nodes with GPUs; 0: `batchSize` everywhere (Note [Per-rank batch
    /// sizes] in DataParallelTrainer.swift).
    public var gpuBatchSize: Int
    /// Reduce gradients after backward instead of overlapping the two (Note [Overlapped reduction]).
    public var noOverlap: Bool
    /// Model "builder": the builder run's candidate this job trains (JSON; Note [Candidates as cluster
    /// jobs]). Only the coordinator sets it.
    public var builder: String

    public init(name: String = "", datasetId: String, target: String, model: String = "mlp", minNodes: Int = 1,
                maxNodes: Int = 1, gpusPerNode: Int = 0, labels: [String: String] = [:], priority: Int = 0, epochs: Int = 10,
                batchSize: Int = 64, learningRate: Double = 1e-3, seed: UInt64 = 0, maxRestarts: Int = 3,
                checkpointEvery: Int = 0, holdoutFraction: Double = 0, task: String = "", bucketCapMB: Int = 25,
                fp16Allreduce: Bool = false, user: String = "", stallTimeoutSeconds: Int = 120, gpuBatchSize: Int = 0,
                noOverlap: Bool = false, builder: String = "") {
        self.name = name
        self.datasetId = datasetId
        self.target = target
        self.model = model
        self.minNodes = minNodes
        self.maxNodes = maxNodes
        self.gpusPerNode = gpusPerNode
        self.labels = labels
        self.priority = priority
        self.epochs = epochs
        self.batchSize = batchSize
        self.learningRate = learningRate
        self.seed = seed
        self.maxRestarts = maxRestarts
        self.checkpointEvery = checkpointEvery
        self.holdoutFraction = holdoutFraction
        self.task = task
        self.bucketCapMB = bucketCapMB
        self.fp16Allreduce = fp16Allreduce
        self.user = user
        self.stallTimeoutSeconds = stallTimeoutSeconds
        self.gpuBatchSize = gpuBatchSize
        self.noOverlap = noOverlap
        self.builder = builder
    }

    /// The local batch of a rank on a node with `gpus` GPUs.
    public func localBatchSize(gpus: Int) -> Int { gpus > 0 && gpuBatchSize > 0 ? gpuBatchSize : batchSize }

    /// Every rank's local batch for ranks on nodes with these GPU counts (rank order); empty when the
    /// job sets no GPU batch size (then every rank takes `batchSize`).
    public func rankBatchSizes(gpusPerRank: [Int]) -> [Int] {
        gpuBatchSize > 0 ? gpusPerRank.map { localBatchSize(gpus: $0) } : []
    }
}

extension JobSpec {
    /// Decodes specs stored before `gpuBatchSize`, `noOverlap` and `builder` existed (they default to 0, false and "").
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(name: try c.decode(String.self, forKey: .name), datasetId: try c.decode(String.self, forKey: .datasetId),
                  target: try c.decode(String.self, forKey: .target), model: try c.decode(String.self, forKey: .model),
                  minNodes: try c.decode(Int.self, forKey: .minNodes), maxNodes: try c.decode(Int.self, forKey: .maxNodes),
                  gpusPerNode: try c.decode(Int.self, forKey: .gpusPerNode),
                  labels: try c.decode([String: String].self, forKey: .labels), priority: try c.decode(Int.self, forKey: .priority),
                  epochs: try c.decode(Int.self, forKey: .epochs), batchSize: try c.decode(Int.self, forKey: .batchSize),
                  learningRate: try c.decode(Double.self, forKey: .learningRate), seed: try c.decode(UInt64.self, forKey: .seed),
                  maxRestarts: try c.decode(Int.self, forKey: .maxRestarts),
                  checkpointEvery: try c.decode(Int.self, forKey: .checkpointEvery),
                  holdoutFraction: try c.decode(Double.self, forKey: .holdoutFraction), task: try c.decode(String.self, forKey: .task),
                  bucketCapMB: try c.decode(Int.self, forKey: .bucketCapMB),
                  fp16Allreduce: try c.decode(Bool.self, forKey: .fp16Allreduce), user: try c.decode(String.self, forKey: .user),
                  stallTimeoutSeconds: try c.decode(Int.self, forKey: .stallTimeoutSeconds),
                  gpuBatchSize: try c.decodeIfPresent(Int.self, forKey: .gpuBatchSize) ?? 0,
                  noOverlap: try c.decodeIfPresent(Bool.self, forKey: .noOverlap) ?? false,
                  builder: try c.decodeIfPresent(String.self, forKey: .builder) ?? "")
    }
}

public struct JobInfo: Sendable, Hashable, Codable {
    public var jobId: String
    public var name: String
    public var state: String
    public var reason: String
    public var spec: JobSpec
    public var attempt: Int
    public var restarts: Int
    public var nodes: [String]
    public var submittedUnixMs: Int64
    public var startedUnixMs: Int64
    public var finishedUnixMs: Int64
    public var samplesPerSecond: Double
    public var step: UInt64
    public var loss: Double
    public var task: String

    public init(jobId: String, name: String, state: String, reason: String = "", spec: JobSpec, attempt: Int = 0,
                restarts: Int = 0, nodes: [String] = [], submittedUnixMs: Int64 = 0, startedUnixMs: Int64 = 0,
                finishedUnixMs: Int64 = 0, samplesPerSecond: Double = 0, step: UInt64 = 0, loss: Double = 0, task: String = "") {
        self.jobId = jobId
        self.name = name
        self.state = state
        self.reason = reason
        self.spec = spec
        self.attempt = attempt
        self.restarts = restarts
        self.nodes = nodes
        self.submittedUnixMs = submittedUnixMs
        self.startedUnixMs = startedUnixMs
        self.finishedUnixMs = finishedUnixMs
        self.samplesPerSecond = samplesPerSecond
        self.step = step
        self.loss = loss
        self.task = task
    }
}

public struct JobList: Sendable, Hashable {
    public var jobs: [JobInfo]
    public init(jobs: [JobInfo]) { self.jobs = jobs }
}

public struct JobListRequest: Sendable, Hashable {
    public var limit: Int
    public var all: Bool
    public init(limit: Int = 0, all: Bool = false) {
        self.limit = limit
        self.all = all
    }
}

/// A job with its documents as JSON text (events, ranks, checkpoints, holdout metrics, recent progress).
public struct JobDetail: Sendable, Hashable {
    public var info: JobInfo
    public var eventsJSON: String
    public var ranksJSON: String
    public var checkpointsJSON: String
    public var metricsJSON: String
    public var progressJSON: String

    public init(info: JobInfo, eventsJSON: String = "[]", ranksJSON: String = "[]", checkpointsJSON: String = "[]",
                metricsJSON: String = "{}", progressJSON: String = "[]") {
        self.info = info
        self.eventsJSON = eventsJSON
        self.ranksJSON = ranksJSON
        self.checkpointsJSON = checkpointsJSON
        self.metricsJSON = metricsJSON
        self.progressJSON = progressJSON
    }
}

public struct JobRequest: Sendable, Hashable {
    public var jobId: String
    public init(jobId: String) { self.jobId = jobId }
}

public struct CancelJobRequest: Sendable, Hashable {
    public var jobId: String
    public var reason: String
    public init(jobId: String, reason: String = "") {
        self.jobId = jobId
        self.reason = reason
    }
}

public struct TailJobLogsRequest: Sendable, Hashable {
    public var jobId: String
    public var limit: Int
    public var follow: Bool
    public init(jobId: String, limit: Int = 0, follow: Bool = false) {
        self.jobId = jobId
        self.limit = limit
        self.follow = follow
    }
}

public struct DownloadArtifactRequest: Sendable, Hashable {
    public var jobId: String
    public var checkpointId: String
    public init(jobId: String, checkpointId: String = "") {
        self.jobId = jobId
        self.checkpointId = checkpointId
    }
}

public struct ArtifactChunk: Sendable, Hashable {
    public var offset: UInt64
    public var data: [UInt8]
    public var totalBytes: UInt64
    public var fileName: String
    public var sha256: String
    public init(offset: UInt64, data: [UInt8], totalBytes: UInt64, fileName: String = "", sha256: String = "") {
        self.offset = offset
        self.data = data
        self.totalBytes = totalBytes
        self.fileName = fileName
        self.sha256 = sha256
    }
}

public struct JoinJobRequest: Sendable, Hashable {
    public var jobId: String
    public var attempt: Int
    public var rank: Int
    public var worldSize: Int
    public var nodeId: String
    public var host: String
    public var pid: Int
    public init(jobId: String, attempt: Int, rank: Int, worldSize: Int, nodeId: String = "", host: String = "", pid: Int = 0) {
        self.jobId = jobId
        self.attempt = attempt
        self.rank = rank
        self.worldSize = worldSize
        self.nodeId = nodeId
        self.host = host
        self.pid = pid
    }
}

/// What a rank needs to train: the spec, the task, its shard, the feature schema, a checkpoint to resume.
public struct JobPlan: Sendable, Hashable {
    public var spec: JobSpec
    public var attempt: Int
    public var task: String
    public var classes: [String]
    public var shard: ShardEntry
    public var shardCount: Int
    public var schemaJSON: String
    public var resumeCheckpointId: String
    public var resumeBytes: UInt64
    public var resumeSHA256: String
    /// Every rank's local batch in rank order (empty: `spec.batchSize` everywhere).
    public var rankBatchSizes: [Int]

    public init(spec: JobSpec, attempt: Int, task: String, classes: [String], shard: ShardEntry, shardCount: Int,
                schemaJSON: String, resumeCheckpointId: String = "", resumeBytes: UInt64 = 0, resumeSHA256: String = "",
                rankBatchSizes: [Int] = []) {
        self.spec = spec
        self.attempt = attempt
        self.task = task
        self.classes = classes
        self.shard = shard
        self.shardCount = shardCount
        self.schemaJSON = schemaJSON
        self.resumeCheckpointId = resumeCheckpointId
        self.resumeBytes = resumeBytes
        self.resumeSHA256 = resumeSHA256
        self.rankBatchSizes = rankBatchSizes
    }
}

public struct StepMetrics: Sendable, Hashable, Codable {
    public var step: UInt64
    public var epoch: Int
    public var loss: Double
    public var samplesPerSecond: Double
    public var allreduceMs: Double
    public var samples: UInt64
    public var timeUnixMs: Int64
    public init(step: UInt64, epoch: Int, loss: Double, samplesPerSecond: Double, allreduceMs: Double, samples: UInt64,
                timeUnixMs: Int64) {
        self.step = step
        self.epoch = epoch
        self.loss = loss
        self.samplesPerSecond = samplesPerSecond
        self.allreduceMs = allreduceMs
        self.samples = samples
        self.timeUnixMs = timeUnixMs
    }
}

public struct ProgressReport: Sendable, Hashable {
    public var jobId: String
    public var attempt: Int
    public var rank: Int
    public var collectiveSeq: UInt64
    public var steps: [StepMetrics]
    public var message: String
    public init(jobId: String, attempt: Int, rank: Int, collectiveSeq: UInt64, steps: [StepMetrics] = [], message: String = "") {
        self.jobId = jobId
        self.attempt = attempt
        self.rank = rank
        self.collectiveSeq = collectiveSeq
        self.steps = steps
        self.message = message
    }
}

public struct ProgressAck: Sendable, Hashable {
    public var stop: Bool
    public var reason: String
    public init(stop: Bool = false, reason: String = "") {
        self.stop = stop
        self.reason = reason
    }
}

public struct CheckpointChunk: Sendable, Hashable {
    public var jobId: String
    public var attempt: Int
    public var step: UInt64
    public var epoch: Int
    public var worldSize: Int
    public var isFinal: Bool
    public var offset: UInt64
    public var data: [UInt8]
    public var totalBytes: UInt64
    public var sha256: String
    public init(jobId: String = "", attempt: Int = 0, step: UInt64 = 0, epoch: Int = 0, worldSize: Int = 0, isFinal: Bool = false,
                offset: UInt64, data: [UInt8], totalBytes: UInt64, sha256: String = "") {
        self.jobId = jobId
        self.attempt = attempt
        self.step = step
        self.epoch = epoch
        self.worldSize = worldSize
        self.isFinal = isFinal
        self.offset = offset
        self.data = data
        self.totalBytes = totalBytes
        self.sha256 = sha256
    }
}

public struct CheckpointInfo: Sendable, Hashable, Codable {
    public var checkpointId: String
    public var bytes: UInt64
    public var sha256: String
    public init(checkpointId: String, bytes: UInt64, sha256: String) {
        self.checkpointId = checkpointId
        self.bytes = bytes
        self.sha256 = sha256
    }
}

public struct FetchCheckpointRequest: Sendable, Hashable {
    public var jobId: String
    public var checkpointId: String
    public var offset: UInt64
    public init(jobId: String, checkpointId: String, offset: UInt64 = 0) {
        self.jobId = jobId
        self.checkpointId = checkpointId
        self.offset = offset
    }
}

public struct FinishJobRequest: Sendable, Hashable {
    public var jobId: String
    public var attempt: Int
    public var metricsJSON: String
    public var modelCheckpointId: String
    public init(jobId: String, attempt: Int, metricsJSON: String, modelCheckpointId: String) {
        self.jobId = jobId
        self.attempt = attempt
        self.metricsJSON = metricsJSON
        self.modelCheckpointId = modelCheckpointId
    }
}

/// Coordinator -> node: run one attempt of a job with mpirun.
public struct LaunchCommand: Sendable, Hashable, Codable {
    public var jobId: String
    public var attempt: Int
    public var worldSize: Int
    public var hosts: [String]
    public var nodeIds: [String]
    public var slotsPerNode: Int
    public init(jobId: String, attempt: Int, worldSize: Int, hosts: [String], nodeIds: [String], slotsPerNode: Int = 1) {
        self.jobId = jobId
        self.attempt = attempt
        self.worldSize = worldSize
        self.hosts = hosts
        self.nodeIds = nodeIds
        self.slotsPerNode = slotsPerNode
    }
}

/// Node -> coordinator: the launcher of an attempt ended.
public struct AttemptExit: Sendable, Hashable, Codable {
    public var nodeId: String
    public var jobId: String
    public var attempt: Int
    public var exitCode: Int
    public var signal: Int
    public var outputTail: String
    public init(nodeId: String, jobId: String, attempt: Int, exitCode: Int, signal: Int = 0, outputTail: String = "") {
        self.nodeId = nodeId
        self.jobId = jobId
        self.attempt = attempt
        self.exitCode = exitCode
        self.signal = signal
        self.outputTail = outputTail
    }
}
