import CProtobufC
import NebulaModel
import NebulaProtoC
import NebulaRPC

// Messages of NodeService (node.proto).

extension RegisterRequest: RPCMessage {
    public init(serializedBytes bytes: [UInt8]) throws {
        self = try unpack(bytes, "RegisterRequest", unpack: nebula__v1__register_request__unpack,
                          free: nebula__v1__register_request__free_unpacked) { c in
            _ = try required(str(c.node_id), "RegisterRequest", "node_id")
            guard let resources = c.resources else {
                throw WireError.missingField(message: "RegisterRequest", field: "resources")
            }
            return RegisterRequest(nodeId: try required(str(c.node_id), "RegisterRequest", "node_id"),
                                   agentVersion: str(c.agent_version), resources: try NodeResources(c: resources.pointee),
                                   address: str(c.address), startedUnixMs: c.started_unix_ms)
        }
    }

    public func serializedBytes() -> [UInt8] {
        let arena = Arena()
        let m = arena.message(nebula__v1__register_request__init)
        m.pointee.node_id = arena.string(nodeId)
        m.pointee.agent_version = arena.string(agentVersion)
        m.pointee.resources = resources.c(in: arena)
        m.pointee.address = arena.string(address)
        m.pointee.started_unix_ms = startedUnixMs
        return pack(m, size: nebula__v1__register_request__get_packed_size, pack: nebula__v1__register_request__pack)
    }
}

extension RegisterResponse: RPCMessage {
    public init(serializedBytes bytes: [UInt8]) throws {
        self = try unpack(bytes, "RegisterResponse", unpack: nebula__v1__register_response__unpack,
                          free: nebula__v1__register_response__free_unpacked) { c in
            guard c.session != 0 else { throw WireError.missingField(message: "RegisterResponse", field: "session") }
            return RegisterResponse(nodeId: try required(str(c.node_id), "RegisterResponse", "node_id"),
                                    session: c.session, heartbeatIntervalMs: Int(c.heartbeat_interval_ms),
                                    drained: c.drained != 0, drainReason: str(c.drain_reason))
        }
    }

    public func serializedBytes() -> [UInt8] {
        let arena = Arena()
        let m = arena.message(nebula__v1__register_response__init)
        m.pointee.node_id = arena.string(nodeId)
        m.pointee.session = session
        m.pointee.heartbeat_interval_ms = UInt32(clamping: heartbeatIntervalMs)
        m.pointee.drained = drained ? 1 : 0
        m.pointee.drain_reason = arena.string(drainReason)
        return pack(m, size: nebula__v1__register_response__get_packed_size, pack: nebula__v1__register_response__pack)
    }
}

extension HeartbeatRequest: RPCMessage {
    public init(serializedBytes bytes: [UInt8]) throws {
        self = try unpack(bytes, "HeartbeatRequest", unpack: nebula__v1__heartbeat_request__unpack,
                          free: nebula__v1__heartbeat_request__free_unpacked) { c in
            HeartbeatRequest(nodeId: try required(str(c.node_id), "HeartbeatRequest", "node_id"),
                             session: c.session, samples: try list(c.n_samples, c.samples, HealthSample.init(c:)))
        }
    }

    public func serializedBytes() -> [UInt8] {
        let arena = Arena()
        let m = arena.message(nebula__v1__heartbeat_request__init)
        m.pointee.node_id = arena.string(nodeId)
        m.pointee.session = session
        let s = samples.map { $0.c(in: arena) }
        m.pointee.n_samples = s.count
        m.pointee.samples = arena.pointers(s)
        return pack(m, size: nebula__v1__heartbeat_request__get_packed_size, pack: nebula__v1__heartbeat_request__pack)
    }
}

extension HeartbeatResponse: RPCMessage {
    public init(serializedBytes bytes: [UInt8]) throws {
        self = try unpack(bytes, "HeartbeatResponse", unpack: nebula__v1__heartbeat_response__unpack,
                          free: nebula__v1__heartbeat_response__free_unpacked) { c in
            let reregister = c.reregister != 0
            let state: NodeState? = reregister
                ? try NodeState.optional(wire: c.state, "HeartbeatResponse", "state")
                : try NodeState(wire: c.state, "HeartbeatResponse", "state")
            return HeartbeatResponse(reregister: reregister, state: state, drained: c.drained != 0)
        }
    }

    public func serializedBytes() -> [UInt8] {
        let arena = Arena()
        let m = arena.message(nebula__v1__heartbeat_response__init)
        m.pointee.reregister = reregister ? 1 : 0
        m.pointee.state = state?.wire ?? NEBULA__V1__NODE_STATE__NODE_STATE_UNSPECIFIED
        m.pointee.drained = drained ? 1 : 0
        return pack(m, size: nebula__v1__heartbeat_response__get_packed_size, pack: nebula__v1__heartbeat_response__pack)
    }
}

extension NodeSessionRef: RPCMessage {
    /// Encoded as AssignmentsRequest.
    public init(serializedBytes bytes: [UInt8]) throws {
        self = try unpack(bytes, "AssignmentsRequest", unpack: nebula__v1__assignments_request__unpack,
                          free: nebula__v1__assignments_request__free_unpacked) { c in
            guard c.session != 0 else { throw WireError.missingField(message: "AssignmentsRequest", field: "session") }
            return NodeSessionRef(nodeId: try required(str(c.node_id), "AssignmentsRequest", "node_id"), session: c.session)
        }
    }

    public func serializedBytes() -> [UInt8] {
        let arena = Arena()
        let m = arena.message(nebula__v1__assignments_request__init)
        m.pointee.node_id = arena.string(nodeId)
        m.pointee.session = session
        return pack(m, size: nebula__v1__assignments_request__get_packed_size, pack: nebula__v1__assignments_request__pack)
    }
}

extension NodeCommand: RPCMessage {
    public init(serializedBytes bytes: [UInt8]) throws {
        self = try unpack(bytes, "Command", unpack: nebula__v1__command__unpack,
                          free: nebula__v1__command__free_unpacked) { c in
            let kind: NodeCommand.Kind
            switch c.kind_case {
            case NEBULA__V1__COMMAND__KIND_DRAIN:
                kind = .drain(reason: str(c.drain?.pointee.reason))
            case NEBULA__V1__COMMAND__KIND_RESUME:
                kind = .resume
            case NEBULA__V1__COMMAND__KIND_LAUNCH:
                guard let l = c.launch?.pointee else { throw WireError.missingField(message: "Command", field: "launch") }
                let hosts = (0..<l.n_hosts).map { str(l.hosts[$0]) }
                let ids = (0..<l.n_node_ids).map { str(l.node_ids[$0]) }
                guard !hosts.isEmpty else { throw WireError.missingField(message: "LaunchCommand", field: "hosts") }
                guard l.world_size > 0 else { throw WireError.missingField(message: "LaunchCommand", field: "world_size") }
                kind = .launch(LaunchCommand(jobId: try required(str(l.job_id), "LaunchCommand", "job_id"),
                                             attempt: Int(l.attempt), worldSize: Int(l.world_size), hosts: hosts, nodeIds: ids,
                                             slotsPerNode: Int(max(1, l.slots_per_node))))
            case NEBULA__V1__COMMAND__KIND_STOP:
                guard let s = c.stop?.pointee else { throw WireError.missingField(message: "Command", field: "stop") }
                kind = .stop(jobId: try required(str(s.job_id), "StopCommand", "job_id"), attempt: Int(s.attempt),
                             reason: str(s.reason))
            default:
                throw WireError.badEnum(message: "Command", field: "kind", value: c.kind_case.rawValue)
            }
            return NodeCommand(id: c.id, issuedUnixMs: c.issued_unix_ms, kind: kind)
        }
    }

    public func serializedBytes() -> [UInt8] {
        let arena = Arena()
        let m = arena.message(nebula__v1__command__init)
        m.pointee.id = id
        m.pointee.issued_unix_ms = issuedUnixMs
        switch kind {
        case .drain(let reason):
            let d = arena.message(nebula__v1__drain_command__init)
            d.pointee.reason = arena.string(reason)
            m.pointee.kind_case = NEBULA__V1__COMMAND__KIND_DRAIN
            m.pointee.drain = d
        case .resume:
            m.pointee.kind_case = NEBULA__V1__COMMAND__KIND_RESUME
            m.pointee.resume = arena.message(nebula__v1__resume_command__init)
        case .launch(let launch):
            let l = arena.message(nebula__v1__launch_command__init)
            l.pointee.job_id = arena.string(launch.jobId)
            l.pointee.attempt = UInt32(clamping: launch.attempt)
            l.pointee.world_size = UInt32(clamping: launch.worldSize)
            l.pointee.n_hosts = launch.hosts.count
            l.pointee.hosts = arena.strings(launch.hosts)
            l.pointee.n_node_ids = launch.nodeIds.count
            l.pointee.node_ids = arena.strings(launch.nodeIds)
            l.pointee.slots_per_node = UInt32(clamping: launch.slotsPerNode)
            m.pointee.kind_case = NEBULA__V1__COMMAND__KIND_LAUNCH
            m.pointee.launch = l
        case .stop(let jobId, let attempt, let reason):
            let s = arena.message(nebula__v1__stop_command__init)
            s.pointee.job_id = arena.string(jobId)
            s.pointee.attempt = UInt32(clamping: attempt)
            s.pointee.reason = arena.string(reason)
            m.pointee.kind_case = NEBULA__V1__COMMAND__KIND_STOP
            m.pointee.stop = s
        }
        return pack(m, size: nebula__v1__command__get_packed_size, pack: nebula__v1__command__pack)
    }
}

extension LogBatch: RPCMessage {
    public init(serializedBytes bytes: [UInt8]) throws {
        self = try unpack(bytes, "LogBatch", unpack: nebula__v1__log_batch__unpack,
                          free: nebula__v1__log_batch__free_unpacked) { c in
            LogBatch(nodeId: try required(str(c.node_id), "LogBatch", "node_id"), session: c.session,
                     records: try list(c.n_records, c.records, LogRecord.init(c:)))
        }
    }

    public func serializedBytes() -> [UInt8] {
        let arena = Arena()
        let m = arena.message(nebula__v1__log_batch__init)
        m.pointee.node_id = arena.string(nodeId)
        m.pointee.session = session
        let r = records.map { $0.c(in: arena) }
        m.pointee.n_records = r.count
        m.pointee.records = arena.pointers(r)
        return pack(m, size: nebula__v1__log_batch__get_packed_size, pack: nebula__v1__log_batch__pack)
    }
}

extension ShipLogsResponse: RPCMessage {
    public init(serializedBytes bytes: [UInt8]) throws {
        self = try unpack(bytes, "ShipLogsResponse", unpack: nebula__v1__ship_logs_response__unpack,
                          free: nebula__v1__ship_logs_response__free_unpacked) { ShipLogsResponse(accepted: $0.accepted) }
    }

    public func serializedBytes() -> [UInt8] {
        let arena = Arena()
        let m = arena.message(nebula__v1__ship_logs_response__init)
        m.pointee.accepted = accepted
        return pack(m, size: nebula__v1__ship_logs_response__get_packed_size, pack: nebula__v1__ship_logs_response__pack)
    }
}

extension LeaveRequest: RPCMessage {
    public init(serializedBytes bytes: [UInt8]) throws {
        self = try unpack(bytes, "LeaveRequest", unpack: nebula__v1__leave_request__unpack,
                          free: nebula__v1__leave_request__free_unpacked) { c in
            LeaveRequest(nodeId: try required(str(c.node_id), "LeaveRequest", "node_id"), session: c.session,
                         reason: str(c.reason))
        }
    }

    public func serializedBytes() -> [UInt8] {
        let arena = Arena()
        let m = arena.message(nebula__v1__leave_request__init)
        m.pointee.node_id = arena.string(nodeId)
        m.pointee.session = session
        m.pointee.reason = arena.string(reason)
        return pack(m, size: nebula__v1__leave_request__get_packed_size, pack: nebula__v1__leave_request__pack)
    }
}

extension Empty: RPCMessage {
    /// Every empty message of the contract has the same (empty) encoding; any well-formed bytes decode,
    /// unknown fields are ignored as protobuf requires.
    public init(serializedBytes bytes: [UInt8]) throws {
        self = try unpack(bytes, "Empty", unpack: nebula__v1__leave_response__unpack,
                          free: nebula__v1__leave_response__free_unpacked) { _ in Empty() }
    }

    public func serializedBytes() -> [UInt8] { [] }
}

extension AttemptExit: RPCMessage {
    public init(serializedBytes bytes: [UInt8]) throws {
        self = try unpack(bytes, "AttemptExit", unpack: nebula__v1__attempt_exit__unpack,
                          free: nebula__v1__attempt_exit__free_unpacked) { c in
            AttemptExit(nodeId: try required(str(c.node_id), "AttemptExit", "node_id"),
                        jobId: try required(str(c.job_id), "AttemptExit", "job_id"), attempt: Int(c.attempt),
                        exitCode: Int(c.exit_code), signal: Int(c.signal), outputTail: str(c.output_tail))
        }
    }

    public func serializedBytes() -> [UInt8] {
        let arena = Arena()
        let m = arena.message(nebula__v1__attempt_exit__init)
        m.pointee.node_id = arena.string(nodeId)
        m.pointee.job_id = arena.string(jobId)
        m.pointee.attempt = UInt32(clamping: attempt)
        m.pointee.exit_code = Int32(clamping: exitCode)
        m.pointee.signal = Int32(clamping: signal)
        m.pointee.output_tail = arena.string(outputTail)
        return pack(m, size: nebula__v1__attempt_exit__get_packed_size, pack: nebula__v1__attempt_exit__pack)
    }
}
