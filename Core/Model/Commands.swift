/// A command the coordinator sends down a node's assignment stream.
public struct NodeCommand: Sendable, Hashable, Codable {
    public enum Kind: Sendable, Hashable, Codable {
        case drain(reason: String)
        case resume
        /// Run one attempt of a job (this node is its first host).
        case launch(LaunchCommand)
        /// End an attempt this node launched.
        case stop(jobId: String, attempt: Int, reason: String)
    }
    public var id: UInt64
    public var issuedUnixMs: Int64
    public var kind: Kind

    public init(id: UInt64, issuedUnixMs: Int64, kind: Kind) {
        self.id = id
        self.issuedUnixMs = issuedUnixMs
        self.kind = kind
    }
}

/// Node -> coordinator: registration.
public struct RegisterRequest: Sendable, Hashable {
    public var nodeId: String
    public var agentVersion: String
    public var resources: NodeResources
    public var address: String
    public var startedUnixMs: Int64

    public init(nodeId: String, agentVersion: String, resources: NodeResources, address: String, startedUnixMs: Int64) {
        self.nodeId = nodeId
        self.agentVersion = agentVersion
        self.resources = resources
        self.address = address
        self.startedUnixMs = startedUnixMs
    }
}

public struct RegisterResponse: Sendable, Hashable {
    public var nodeId: String
    public var session: UInt64
    public var heartbeatIntervalMs: Int
    public var drained: Bool
    public var drainReason: String

    public init(nodeId: String, session: UInt64, heartbeatIntervalMs: Int, drained: Bool, drainReason: String) {
        self.nodeId = nodeId
        self.session = session
        self.heartbeatIntervalMs = heartbeatIntervalMs
        self.drained = drained
        self.drainReason = drainReason
    }
}

public struct HeartbeatRequest: Sendable, Hashable {
    public var nodeId: String
    public var session: UInt64
    /// Oldest first.
    public var samples: [HealthSample]

    public init(nodeId: String, session: UInt64, samples: [HealthSample]) {
        self.nodeId = nodeId
        self.session = session
        self.samples = samples
    }
}

public struct HeartbeatResponse: Sendable, Hashable {
    public var reregister: Bool
    /// nil when `reregister` is set (the coordinator does not know the session).
    public var state: NodeState?
    public var drained: Bool

    public init(reregister: Bool, state: NodeState?, drained: Bool) {
        self.reregister = reregister
        self.state = state
        self.drained = drained
    }
}

/// Identifies one registration of a node (assignment stream, log batches, leave).
public struct NodeSessionRef: Sendable, Hashable {
    public var nodeId: String
    public var session: UInt64
    public init(nodeId: String, session: UInt64) {
        self.nodeId = nodeId
        self.session = session
    }
}

public struct LogBatch: Sendable, Hashable {
    public var nodeId: String
    public var session: UInt64
    public var records: [LogRecord]
    public init(nodeId: String, session: UInt64, records: [LogRecord]) {
        self.nodeId = nodeId
        self.session = session
        self.records = records
    }
}

public struct ShipLogsResponse: Sendable, Hashable {
    public var accepted: UInt64
    public init(accepted: UInt64) { self.accepted = accepted }
}

public struct LeaveRequest: Sendable, Hashable {
    public var nodeId: String
    public var session: UInt64
    public var reason: String
    public init(nodeId: String, session: UInt64, reason: String) {
        self.nodeId = nodeId
        self.session = session
        self.reason = reason
    }
}

/// An empty message (Leave's response, ListNodes' and ClusterHealth's requests).
public struct Empty: Sendable, Hashable { public init() {} }

// MARK: Admin

public struct NodeList: Sendable, Hashable { public var nodes: [NodeInfo]; public init(nodes: [NodeInfo]) { self.nodes = nodes } }

public struct GetNodeRequest: Sendable, Hashable {
    public var nodeId: String
    public var eventsLimit: Int
    public var samplesLimit: Int
    public init(nodeId: String, eventsLimit: Int = 0, samplesLimit: Int = 0) {
        self.nodeId = nodeId
        self.eventsLimit = eventsLimit
        self.samplesLimit = samplesLimit
    }
}

public struct NodeDetail: Sendable, Hashable, Codable {
    public var node: NodeInfo
    /// Newest first.
    public var events: [NodeEvent]
    /// Newest first.
    public var recent: [HealthSample]
    public init(node: NodeInfo, events: [NodeEvent], recent: [HealthSample]) {
        self.node = node
        self.events = events
        self.recent = recent
    }
}

public struct DrainRequest: Sendable, Hashable {
    public var nodeId: String
    public var reason: String
    public init(nodeId: String, reason: String) {
        self.nodeId = nodeId
        self.reason = reason
    }
}

public struct ResumeRequest: Sendable, Hashable {
    public var nodeId: String
    public init(nodeId: String) { self.nodeId = nodeId }
}

public struct TailLogsRequest: Sendable, Hashable {
    /// Empty: every node and the coordinator.
    public var nodeId: String
    public var limit: Int
    public var follow: Bool
    public var minLevel: LogLevel?
    public init(nodeId: String = "", limit: Int = 0, follow: Bool = false, minLevel: LogLevel? = nil) {
        self.nodeId = nodeId
        self.limit = limit
        self.follow = follow
        self.minLevel = minLevel
    }
}
