/// What a job needs from each node it runs on.
public struct JobRequirements: Sendable, Hashable {
    /// The job starts with at least this many nodes (>= 1).
    public var minNodes: Int
    /// And takes at most this many (>= minNodes).
    public var maxNodes: Int
    /// GPUs per node; 0 means the job runs on CPUs (any node will do).
    public var gpusPerNode: Int
    /// Every pair must be present, with the same value, in a node's labels.
    public var labels: [String: String]
    /// Ranks per node; each takes one of the node's slots.
    public var slotsPerNode: Int

    public init(minNodes: Int = 1, maxNodes: Int = 1, gpusPerNode: Int = 0, labels: [String: String] = [:],
                slotsPerNode: Int = 1) {
        self.minNodes = minNodes
        self.maxNodes = maxNodes
        self.gpusPerNode = gpusPerNode
        self.labels = labels
        self.slotsPerNode = slotsPerNode
    }

    /// Why these requirements can never be met, or nil when they make sense.
    public var problem: String? {
        if minNodes < 1 { return "min nodes must be >= 1 (got \(minNodes))" }
        if maxNodes < minNodes { return "max nodes (\(maxNodes)) must be >= min nodes (\(minNodes))" }
        if gpusPerNode < 0 { return "gpus per node must be >= 0 (got \(gpusPerNode))" }
        if slotsPerNode < 1 { return "slots per node must be >= 1 (got \(slotsPerNode))" }
        return nil
    }
}

/// A job as the scheduler sees it.
public struct SchedulerJob: Sendable, Hashable {
    public var id: String
    /// Higher runs first.
    public var priority: Int
    /// Submission order (e.g. the store's sequence): lower runs first among equal priorities.
    public var sequence: Int64
    public var requirements: JobRequirements
    /// How many times the job may be started again after an attempt failed or lost a node.
    public var maxRestarts: Int

    public init(id: String, priority: Int = 0, sequence: Int64, requirements: JobRequirements = JobRequirements(),
                maxRestarts: Int = 3) {
        self.id = id
        self.priority = priority
        self.sequence = sequence
        self.requirements = requirements
        self.maxRestarts = maxRestarts
    }
}

/// A compute node as the scheduler sees it.
public struct SchedulerNode: Sendable, Hashable {
    public var id: String
    /// UP in the failure detector (false while SUSPECT or DOWN).
    public var responding: Bool
    /// An operator asked that no new work be placed here; running work stays.
    public var drained: Bool
    public var gpus: Int
    /// Empty when the node has no GPU.
    public var gpuModel: String
    public var cpus: Int
    public var labels: [String: String]
    /// How many ranks the node can host at once.
    public var slots: Int

    public init(id: String, responding: Bool = true, drained: Bool = false, gpus: Int = 0, gpuModel: String = "",
                cpus: Int = 1, labels: [String: String] = [:], slots: Int = 1) {
        self.id = id
        self.responding = responding
        self.drained = drained
        self.gpus = gpus
        self.gpuModel = gpuModel
        self.cpus = cpus
        self.labels = labels
        self.slots = slots
    }
}

/// What the shell must do, in order, after an event. See Note [Directive order] in Scheduler.swift.
public enum SchedulerDirective: Sendable, Hashable {
    /// Store a job_event. `from` is nil only when the job is created (`to` is then `.pending`).
    case transition(jobId: String, from: JobState?, to: JobState, reason: String)
    /// Start attempt `attempt` of the job over these nodes (rank order follows the array).
    case launch(jobId: String, attempt: Int, nodes: [String])
    /// Kill attempt `attempt` of the job on all its nodes; must finish before a later `.launch` reuses them.
    case stop(jobId: String, attempt: Int, reason: String)
    /// The node gets no new work until `until` (ms, the caller's clock).
    case exclude(nodeId: String, until: Int64, reason: String)
}
