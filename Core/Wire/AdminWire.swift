import CProtobufC
import NebulaModel
import NebulaProtoC
import NebulaRPC

// Messages of AdminService (admin.proto).

extension NodeInfo: RPCMessage {
    init(c: Nebula__V1__NodeInfo) throws {
        _ = try required(str(c.node_id), "NodeInfo", "node_id")
        guard let resources = c.resources else { throw WireError.missingField(message: "NodeInfo", field: "resources") }
        self.init(nodeId: try required(str(c.node_id), "NodeInfo", "node_id"), address: str(c.address),
                  state: try NodeState(wire: c.state, "NodeInfo", "state"), drained: c.drained != 0,
                  reason: str(c.reason), resources: try NodeResources(c: resources.pointee),
                  lastSeenUnixMs: c.last_seen_unix_ms, registeredUnixMs: c.registered_unix_ms,
                  latest: try c.latest.map { try HealthSample(c: $0.pointee) }, agentVersion: str(c.agent_version),
                  session: c.session)
    }

    func c(in arena: Arena) -> UnsafeMutablePointer<Nebula__V1__NodeInfo> {
        let m = arena.message(nebula__v1__node_info__init)
        m.pointee.node_id = arena.string(nodeId)
        m.pointee.address = arena.string(address)
        m.pointee.state = state.wire
        m.pointee.drained = drained ? 1 : 0
        m.pointee.reason = arena.string(reason)
        m.pointee.resources = resources.c(in: arena)
        m.pointee.last_seen_unix_ms = lastSeenUnixMs
        m.pointee.registered_unix_ms = registeredUnixMs
        m.pointee.latest = latest?.c(in: arena)
        m.pointee.agent_version = arena.string(agentVersion)
        m.pointee.session = session
        return m
    }

    public init(serializedBytes bytes: [UInt8]) throws {
        self = try unpack(bytes, "NodeInfo", unpack: nebula__v1__node_info__unpack,
                          free: nebula__v1__node_info__free_unpacked) { try NodeInfo(c: $0) }
    }

    public func serializedBytes() -> [UInt8] {
        let arena = Arena()
        return pack(c(in: arena), size: nebula__v1__node_info__get_packed_size, pack: nebula__v1__node_info__pack)
    }
}

extension NodeEvent {
    init(c: Nebula__V1__NodeEvent) throws {
        guard let kind = NodeEvent.Kind(rawValue: str(c.kind)) else {
            throw WireError.missingField(message: "NodeEvent", field: "kind")
        }
        self.init(timeUnixMs: c.time_unix_ms, nodeId: try required(str(c.node_id), "NodeEvent", "node_id"),
                  from: try NodeState.optional(wire: c.from_state, "NodeEvent", "from_state"),
                  to: try NodeState(wire: c.to_state, "NodeEvent", "to_state"), reason: str(c.reason), kind: kind)
    }

    func c(in arena: Arena) -> UnsafeMutablePointer<Nebula__V1__NodeEvent> {
        let m = arena.message(nebula__v1__node_event__init)
        m.pointee.time_unix_ms = timeUnixMs
        m.pointee.node_id = arena.string(nodeId)
        m.pointee.from_state = from?.wire ?? NEBULA__V1__NODE_STATE__NODE_STATE_UNSPECIFIED
        m.pointee.to_state = to.wire
        m.pointee.reason = arena.string(reason)
        m.pointee.kind = arena.string(kind.rawValue)
        return m
    }
}

extension NodeList: RPCMessage {
    public init(serializedBytes bytes: [UInt8]) throws {
        self = try unpack(bytes, "ListNodesResponse", unpack: nebula__v1__list_nodes_response__unpack,
                          free: nebula__v1__list_nodes_response__free_unpacked) { c in
            NodeList(nodes: try list(c.n_nodes, c.nodes, NodeInfo.init(c:)))
        }
    }

    public func serializedBytes() -> [UInt8] {
        let arena = Arena()
        let m = arena.message(nebula__v1__list_nodes_response__init)
        let n = nodes.map { $0.c(in: arena) }
        m.pointee.n_nodes = n.count
        m.pointee.nodes = arena.pointers(n)
        return pack(m, size: nebula__v1__list_nodes_response__get_packed_size, pack: nebula__v1__list_nodes_response__pack)
    }
}

extension GetNodeRequest: RPCMessage {
    public init(serializedBytes bytes: [UInt8]) throws {
        self = try unpack(bytes, "GetNodeRequest", unpack: nebula__v1__get_node_request__unpack,
                          free: nebula__v1__get_node_request__free_unpacked) { c in
            GetNodeRequest(nodeId: try required(str(c.node_id), "GetNodeRequest", "node_id"),
                           eventsLimit: Int(c.events_limit), samplesLimit: Int(c.samples_limit))
        }
    }

    public func serializedBytes() -> [UInt8] {
        let arena = Arena()
        let m = arena.message(nebula__v1__get_node_request__init)
        m.pointee.node_id = arena.string(nodeId)
        m.pointee.events_limit = UInt32(clamping: eventsLimit)
        m.pointee.samples_limit = UInt32(clamping: samplesLimit)
        return pack(m, size: nebula__v1__get_node_request__get_packed_size, pack: nebula__v1__get_node_request__pack)
    }
}

extension NodeDetail: RPCMessage {
    public init(serializedBytes bytes: [UInt8]) throws {
        self = try unpack(bytes, "GetNodeResponse", unpack: nebula__v1__get_node_response__unpack,
                          free: nebula__v1__get_node_response__free_unpacked) { c in
            guard let node = c.node else { throw WireError.missingField(message: "GetNodeResponse", field: "node") }
            return NodeDetail(node: try NodeInfo(c: node.pointee), events: try list(c.n_events, c.events, NodeEvent.init(c:)),
                              recent: try list(c.n_recent, c.recent, HealthSample.init(c:)))
        }
    }

    public func serializedBytes() -> [UInt8] {
        let arena = Arena()
        let m = arena.message(nebula__v1__get_node_response__init)
        m.pointee.node = node.c(in: arena)
        let e = events.map { $0.c(in: arena) }
        m.pointee.n_events = e.count
        m.pointee.events = arena.pointers(e)
        let r = recent.map { $0.c(in: arena) }
        m.pointee.n_recent = r.count
        m.pointee.recent = arena.pointers(r)
        return pack(m, size: nebula__v1__get_node_response__get_packed_size, pack: nebula__v1__get_node_response__pack)
    }
}

extension DrainRequest: RPCMessage {
    public init(serializedBytes bytes: [UInt8]) throws {
        self = try unpack(bytes, "DrainNodeRequest", unpack: nebula__v1__drain_node_request__unpack,
                          free: nebula__v1__drain_node_request__free_unpacked) { c in
            DrainRequest(nodeId: try required(str(c.node_id), "DrainNodeRequest", "node_id"),
                         reason: try required(str(c.reason), "DrainNodeRequest", "reason"))
        }
    }

    public func serializedBytes() -> [UInt8] {
        let arena = Arena()
        let m = arena.message(nebula__v1__drain_node_request__init)
        m.pointee.node_id = arena.string(nodeId)
        m.pointee.reason = arena.string(reason)
        return pack(m, size: nebula__v1__drain_node_request__get_packed_size, pack: nebula__v1__drain_node_request__pack)
    }
}

extension ResumeRequest: RPCMessage {
    public init(serializedBytes bytes: [UInt8]) throws {
        self = try unpack(bytes, "ResumeNodeRequest", unpack: nebula__v1__resume_node_request__unpack,
                          free: nebula__v1__resume_node_request__free_unpacked) { c in
            ResumeRequest(nodeId: try required(str(c.node_id), "ResumeNodeRequest", "node_id"))
        }
    }

    public func serializedBytes() -> [UInt8] {
        let arena = Arena()
        let m = arena.message(nebula__v1__resume_node_request__init)
        m.pointee.node_id = arena.string(nodeId)
        return pack(m, size: nebula__v1__resume_node_request__get_packed_size, pack: nebula__v1__resume_node_request__pack)
    }
}

extension ClusterHealth: RPCMessage {
    public init(serializedBytes bytes: [UInt8]) throws {
        self = try unpack(bytes, "ClusterHealthResponse", unpack: nebula__v1__cluster_health_response__unpack,
                          free: nebula__v1__cluster_health_response__free_unpacked) { c in
            var h = ClusterHealth()
            h.nodesTotal = Int(c.nodes_total)
            h.nodesUp = Int(c.nodes_up)
            h.nodesSuspect = Int(c.nodes_suspect)
            h.nodesDown = Int(c.nodes_down)
            h.nodesLeft = Int(c.nodes_left)
            h.nodesDrained = Int(c.nodes_drained)
            h.cpusTotal = Int(c.cpus_total)
            h.gpusTotal = Int(c.gpus_total)
            h.memoryTotalBytes = c.memory_total_bytes
            h.memoryUsedBytes = c.memory_used_bytes
            h.cpuPercentAvg = c.cpu_percent_avg
            h.databaseOK = c.database_ok != 0
            h.spooledRecords = c.spooled_records
            h.coordinatorStartedUnixMs = c.coordinator_started_unix_ms
            h.coordinatorVersion = try required(str(c.coordinator_version), "ClusterHealthResponse", "coordinator_version")
            return h
        }
    }

    public func serializedBytes() -> [UInt8] {
        let arena = Arena()
        let m = arena.message(nebula__v1__cluster_health_response__init)
        m.pointee.nodes_total = UInt32(clamping: nodesTotal)
        m.pointee.nodes_up = UInt32(clamping: nodesUp)
        m.pointee.nodes_suspect = UInt32(clamping: nodesSuspect)
        m.pointee.nodes_down = UInt32(clamping: nodesDown)
        m.pointee.nodes_left = UInt32(clamping: nodesLeft)
        m.pointee.nodes_drained = UInt32(clamping: nodesDrained)
        m.pointee.cpus_total = UInt32(clamping: cpusTotal)
        m.pointee.gpus_total = UInt32(clamping: gpusTotal)
        m.pointee.memory_total_bytes = memoryTotalBytes
        m.pointee.memory_used_bytes = memoryUsedBytes
        m.pointee.cpu_percent_avg = cpuPercentAvg
        m.pointee.database_ok = databaseOK ? 1 : 0
        m.pointee.spooled_records = spooledRecords
        m.pointee.coordinator_started_unix_ms = coordinatorStartedUnixMs
        m.pointee.coordinator_version = arena.string(coordinatorVersion)
        return pack(m, size: nebula__v1__cluster_health_response__get_packed_size,
                    pack: nebula__v1__cluster_health_response__pack)
    }
}

extension TailLogsRequest: RPCMessage {
    public init(serializedBytes bytes: [UInt8]) throws {
        self = try unpack(bytes, "TailLogsRequest", unpack: nebula__v1__tail_logs_request__unpack,
                          free: nebula__v1__tail_logs_request__free_unpacked) { c in
            TailLogsRequest(nodeId: str(c.node_id), limit: Int(c.limit), follow: c.follow != 0,
                            minLevel: try LogLevel.optional(wire: c.min_level, "TailLogsRequest", "min_level"))
        }
    }

    public func serializedBytes() -> [UInt8] {
        let arena = Arena()
        let m = arena.message(nebula__v1__tail_logs_request__init)
        m.pointee.node_id = arena.string(nodeId)
        m.pointee.limit = UInt32(clamping: limit)
        m.pointee.follow = follow ? 1 : 0
        m.pointee.min_level = minLevel?.wire ?? NEBULA__V1__LOG_LEVEL__LOG_LEVEL_UNSPECIFIED
        return pack(m, size: nebula__v1__tail_logs_request__get_packed_size, pack: nebula__v1__tail_logs_request__pack)
    }
}
