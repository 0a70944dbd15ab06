/// Domain types shared by the coordinator, the node agent and the CLI. Plain values: no C, no wire types.

/// Liveness of a node as judged by the coordinator's failure detector.
public enum NodeState: String, Sendable, Hashable, Codable, CaseIterable {
    case up, suspect, down, left

    /// True when the node answers heartbeats (Slurm marks the others with `*`).
    public var isResponding: Bool { self == .up }
}

public struct GpuInfo: Sendable, Hashable, Codable {
    public var index: Int
    public var name: String
    public var uuid: String
    public var memoryTotalBytes: UInt64

    public init(index: Int, name: String, uuid: String, memoryTotalBytes: UInt64) {
        self.index = index
        self.name = name
        self.uuid = uuid
        self.memoryTotalBytes = memoryTotalBytes
    }
}

/// What a node has, detected by its agent at start.
public struct NodeResources: Sendable, Hashable, Codable {
    public var hostname: String
    public var cpuCores: Int
    public var memoryTotalBytes: UInt64
    public var diskTotalBytes: UInt64
    public var gpus: [GpuInfo]
    public var os: String
    public var labels: [String: String]

    public init(hostname: String, cpuCores: Int, memoryTotalBytes: UInt64, diskTotalBytes: UInt64,
                gpus: [GpuInfo] = [], os: String = "", labels: [String: String] = [:]) {
        self.hostname = hostname
        self.cpuCores = cpuCores
        self.memoryTotalBytes = memoryTotalBytes
        self.diskTotalBytes = diskTotalBytes
        self.gpus = gpus
        self.os = os
        self.labels = labels
    }
}

public struct GpuSample: Sendable, Hashable, Codable {
    public var index: Int
    public var utilizationPercent: Double
    public var memoryUsedBytes: UInt64
    public var memoryTotalBytes: UInt64

    public init(index: Int, utilizationPercent: Double, memoryUsedBytes: UInt64, memoryTotalBytes: UInt64) {
        self.index = index
        self.utilizationPercent = utilizationPercent
        self.memoryUsedBytes = memoryUsedBytes
        self.memoryTotalBytes = memoryTotalBytes
    }
}

/// One health observation of a node.
public struct HealthSample: Sendable, Hashable, Codable {
    /// Milliseconds since the Unix epoch, taken on the node.
    public var timeUnixMs: Int64
    public var cpuPercent: Double
    public var load1: Double
    public var load5: Double
    public var load15: Double
    public var memoryUsedBytes: UInt64
    public var memoryTotalBytes: UInt64
    public var diskFreeBytes: UInt64
    public var netRxBytesPerSec: Double
    public var netTxBytesPerSec: Double
    public var gpus: [GpuSample]
    /// Strictly increasing per agent process.
    public var seq: UInt64

    public init(timeUnixMs: Int64, cpuPercent: Double, load1: Double, load5: Double, load15: Double,
                memoryUsedBytes: UInt64, memoryTotalBytes: UInt64, diskFreeBytes: UInt64,
                netRxBytesPerSec: Double, netTxBytesPerSec: Double, gpus: [GpuSample] = [], seq: UInt64) {
        self.timeUnixMs = timeUnixMs
        self.cpuPercent = cpuPercent
        self.load1 = load1
        self.load5 = load5
        self.load15 = load15
        self.memoryUsedBytes = memoryUsedBytes
        self.memoryTotalBytes = memoryTotalBytes
        self.diskFreeBytes = diskFreeBytes
        self.netRxBytesPerSec = netRxBytesPerSec
        self.netTxBytesPerSec = netTxBytesPerSec
        self.gpus = gpus
        self.seq = seq
    }
}

/// A node as the coordinator sees it.
public struct NodeInfo: Sendable, Hashable, Codable {
    public var nodeId: String
    public var address: String
    public var state: NodeState
    public var drained: Bool
    /// Drain reason, or why the node is SUSPECT/DOWN/LEFT; empty when healthy.
    public var reason: String
    public var resources: NodeResources
    public var lastSeenUnixMs: Int64
    public var registeredUnixMs: Int64
    public var latest: HealthSample?
    public var agentVersion: String
    public var session: UInt64

    public init(nodeId: String, address: String, state: NodeState, drained: Bool, reason: String,
                resources: NodeResources, lastSeenUnixMs: Int64, registeredUnixMs: Int64,
                latest: HealthSample?, agentVersion: String, session: UInt64) {
        self.nodeId = nodeId
        self.address = address
        self.state = state
        self.drained = drained
        self.reason = reason
        self.resources = resources
        self.lastSeenUnixMs = lastSeenUnixMs
        self.registeredUnixMs = registeredUnixMs
        self.latest = latest
        self.agentVersion = agentVersion
        self.session = session
    }
}

/// A recorded change of a node: a state transition, a drain or resume, a registration.
public struct NodeEvent: Sendable, Hashable, Codable {
    public enum Kind: String, Sendable, Hashable, Codable {
        case register, state, drain, resume
    }
    public var timeUnixMs: Int64
    public var nodeId: String
    /// nil for the first registration of a node.
    public var from: NodeState?
    public var to: NodeState
    public var reason: String
    public var kind: Kind

    public init(timeUnixMs: Int64, nodeId: String, from: NodeState?, to: NodeState, reason: String, kind: Kind) {
        self.timeUnixMs = timeUnixMs
        self.nodeId = nodeId
        self.from = from
        self.to = to
        self.reason = reason
        self.kind = kind
    }
}

/// Cluster summary for `nebula health`.
public struct ClusterHealth: Sendable, Hashable, Codable {
    public var nodesTotal = 0
    public var nodesUp = 0
    public var nodesSuspect = 0
    public var nodesDown = 0
    public var nodesLeft = 0
    public var nodesDrained = 0
    public var cpusTotal = 0
    public var gpusTotal = 0
    public var memoryTotalBytes: UInt64 = 0
    public var memoryUsedBytes: UInt64 = 0
    public var cpuPercentAvg: Double = 0
    public var databaseOK = false
    public var spooledRecords: UInt64 = 0
    public var coordinatorStartedUnixMs: Int64 = 0
    public var coordinatorVersion = ""

    public init() {}
}
