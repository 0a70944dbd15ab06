import Logging
import NebulaCommon
import NebulaModel
import NebulaRPC

/// The coordinator's view of the cluster's nodes: the failure detector plus what each node reported.
/// Every change is handed to `persist` (batched into Postgres by the store's writer).
public actor NodeRegistry {
    struct Entry {
        var row: NodeRow
        var latest: HealthSample?
        var commands: AsyncStream<NodeCommand>.Continuation?
    }

    private var detector: FailureDetector
    private var entries: [String: Entry] = [:]
    private var nextCommandId: UInt64 = 1
    private var lastSession: UInt64
    private let persist: @Sendable ([StoreRecord]) -> Void
    private let logger: Logger

    public init(configuration: FailureDetector.Configuration, logger: Logger,
                persist: @escaping @Sendable ([StoreRecord]) -> Void) {
        self.detector = FailureDetector(configuration: configuration)
        self.persist = persist
        self.logger = logger
        // Sessions increase across coordinator restarts: start from the wall clock in microseconds.
        self.lastSession = UInt64(max(1, nowUnixMs())) * 1000
    }

    public var heartbeatIntervalMs: Int { Int(detector.configuration.heartbeatInterval.wholeMilliseconds) }

    /// Loads the nodes known before a restart. Their timers restart now; live agents re-register.
    public func restore(_ nodes: [(row: NodeRow, latest: HealthSample?)]) {
        let now = monotonicMs()
        for (row, latest) in nodes {
            entries[row.nodeId] = Entry(row: row, latest: latest, commands: nil)
            if row.state == .up || row.state == .suspect {
                detector.restore(row.nodeId, state: row.state, nowMs: now)
            }
            lastSession = max(lastSession, row.session)
        }
        logger.info("restored nodes from the database", metadata: ["nodes.count": "\(nodes.count)"])
    }

    // MARK: NodeService

    public func register(_ request: RegisterRequest) -> RegisterResponse {
        lastSession += 1
        let session = lastSession
        let nowUnix = nowUnixMs()
        let previous = entries[request.nodeId]
        previous?.commands?.finish()
        let transition = detector.registered(request.nodeId, session: session, nowMs: monotonicMs())
        var row = previous?.row ?? NodeRow(nodeId: request.nodeId, address: request.address, state: .up, drained: false,
                                          drainReason: "", stateReason: "", resources: request.resources,
                                          agentVersion: request.agentVersion, session: session,
                                          registeredUnixMs: nowUnix, lastSeenUnixMs: nowUnix)
        row.address = request.address
        row.state = .up
        row.stateReason = ""
        row.resources = request.resources
        row.agentVersion = request.agentVersion
        row.session = session
        row.registeredUnixMs = nowUnix
        row.lastSeenUnixMs = nowUnix
        entries[request.nodeId] = Entry(row: row, latest: previous?.latest, commands: nil)
        let reason = "registered from \(request.address.isEmpty ? "?" : request.address) (agent \(request.agentVersion), "
            + "\(request.resources.cpuCores) CPUs, \(request.resources.gpus.count) GPUs)"
        persist([.node(row), .event(NodeEvent(timeUnixMs: nowUnix, nodeId: request.nodeId, from: transition?.from ?? previous?.row.state,
                                              to: .up, reason: reason, kind: .register))])
        logger.info("node registered", metadata: ["node.id": "\(request.nodeId)", "node.session": "\(session)"])
        return RegisterResponse(nodeId: request.nodeId, session: session, heartbeatIntervalMs: heartbeatIntervalMs,
                                drained: row.drained, drainReason: row.drainReason)
    }

    public func heartbeat(_ request: HeartbeatRequest) -> HeartbeatResponse {
        switch detector.heartbeat(request.nodeId, session: request.session, nowMs: monotonicMs()) {
        case .reregister:
            return HeartbeatResponse(reregister: true, state: entries[request.nodeId]?.row.state, drained: false)
        case .accepted(let transition):
            guard var entry = entries[request.nodeId] else {
                return HeartbeatResponse(reregister: true, state: nil, drained: false)
            }
            var records: [StoreRecord] = request.samples.map { .health(nodeId: request.nodeId, sample: $0) }
            entry.row.lastSeenUnixMs = nowUnixMs()
            if let newest = request.samples.max(by: { $0.timeUnixMs < $1.timeUnixMs }),
               newest.timeUnixMs >= (entry.latest?.timeUnixMs ?? 0) {
                entry.latest = newest
            }
            if let transition {
                entry.row.state = transition.to
                entry.row.stateReason = ""
                records.append(.node(entry.row))
                records.append(.event(event(transition, kind: .state)))
                logger.notice("node state changed", metadata: [
                    "node.id": "\(request.nodeId)", "node.state": "\(transition.to.rawValue)",
                    "reason": "\(transition.reason)",
                ])
            }
            entries[request.nodeId] = entry
            persist(records)
            return HeartbeatResponse(reregister: false, state: entry.row.state, drained: entry.row.drained)
        }
    }

    public func leave(_ request: LeaveRequest) {
        guard let transition = detector.left(request.nodeId, session: request.session, reason: request.reason),
              var entry = entries[request.nodeId] else { return }
        entry.row.state = .left
        entry.row.stateReason = transition.reason
        entry.commands?.finish()
        entry.commands = nil
        entries[request.nodeId] = entry
        persist([.node(entry.row), .event(event(transition, kind: .state))])
        logger.info("node left", metadata: ["node.id": "\(request.nodeId)", "reason": "\(transition.reason)"])
    }

    /// The command stream of the node's current session; a stale session is refused.
    public func commands(for ref: NodeSessionRef) throws -> AsyncStream<NodeCommand> {
        guard var entry = entries[ref.nodeId], entry.row.session == ref.session,
              entry.row.state == .up || entry.row.state == .suspect else {
            throw RPCStatus(.failedPrecondition,
                            "session \(ref.session) of node \(ref.nodeId) is not current: register again")
        }
        entry.commands?.finish()
        let (stream, continuation) = AsyncStream.makeStream(of: NodeCommand.self, bufferingPolicy: .bufferingNewest(64))
        entry.commands = continuation
        entries[ref.nodeId] = entry
        return stream
    }

    /// Advances the failure detector; called periodically.
    public func tick() {
        let transitions = detector.tick(nowMs: monotonicMs())
        guard !transitions.isEmpty else { return }
        var records: [StoreRecord] = []
        for t in transitions {
            guard var entry = entries[t.nodeId] else { continue }
            entry.row.state = t.to
            entry.row.stateReason = t.reason
            if t.to == .down {
                entry.commands?.finish()
                entry.commands = nil
            }
            entries[t.nodeId] = entry
            records.append(.node(entry.row))
            records.append(.event(event(t, kind: .state)))
            logger.warning("node state changed", metadata: [
                "node.id": "\(t.nodeId)", "node.state": "\(t.to.rawValue)", "reason": "\(t.reason)",
            ])
        }
        persist(records)
    }

    // MARK: AdminService

    public func list() -> [NodeInfo] {
        entries.keys.sorted().compactMap { info($0) }
    }

    public func info(_ node: String) -> NodeInfo? {
        guard let e = entries[node] else { return nil }
        let reason = e.row.drained ? e.row.drainReason : (e.row.state == .up ? "" : e.row.stateReason)
        return NodeInfo(nodeId: e.row.nodeId, address: e.row.address, state: e.row.state, drained: e.row.drained,
                        reason: reason, resources: e.row.resources, lastSeenUnixMs: e.row.lastSeenUnixMs,
                        registeredUnixMs: e.row.registeredUnixMs, latest: e.latest, agentVersion: e.row.agentVersion,
                        session: e.row.session)
    }

    public func drain(_ node: String, reason: String) throws -> NodeInfo {
        guard var entry = entries[node] else { throw Self.notFound(node) }
        let text = reason.trimmingCharacters(in: .whitespaces)
        guard !text.isEmpty else {
            throw RPCStatus(.invalidArgument, "a drain needs a reason (e.g. --reason \"disk replacement\")")
        }
        entry.row.drained = true
        entry.row.drainReason = text
        entries[node] = entry
        persist([.node(entry.row), .event(NodeEvent(timeUnixMs: nowUnixMs(), nodeId: node, from: entry.row.state,
                                                   to: entry.row.state, reason: text, kind: .drain))])
        send(.drain(reason: text), to: node)
        logger.notice("node drained", metadata: ["node.id": "\(node)", "reason": "\(text)"])
        return info(node)!
    }

    public func resume(_ node: String) throws -> NodeInfo {
        guard var entry = entries[node] else { throw Self.notFound(node) }
        guard entry.row.drained else { return info(node)! }
        entry.row.drained = false
        entry.row.drainReason = ""
        entries[node] = entry
        persist([.node(entry.row), .event(NodeEvent(timeUnixMs: nowUnixMs(), nodeId: node, from: entry.row.state,
                                                   to: entry.row.state, reason: "resumed", kind: .resume))])
        send(.resume, to: node)
        logger.notice("node resumed", metadata: ["node.id": "\(node)"])
        return info(node)!
    }

    public func health() -> ClusterHealth {
        var h = ClusterHealth()
        var cpuSum = 0.0
        var cpuCount = 0
        for e in entries.values {
            h.nodesTotal += 1
            switch e.row.state {
            case .up: h.nodesUp += 1
            case .suspect: h.nodesSuspect += 1
            case .down: h.nodesDown += 1
            case .left: h.nodesLeft += 1
            }
            if e.row.drained { h.nodesDrained += 1 }
            guard e.row.state == .up || e.row.state == .suspect else { continue }
            h.cpusTotal += e.row.resources.cpuCores
            h.gpusTotal += e.row.resources.gpus.count
            h.memoryTotalBytes += e.row.resources.memoryTotalBytes
            if let s = e.latest {
                h.memoryUsedBytes += s.memoryUsedBytes
                cpuSum += s.cpuPercent
                cpuCount += 1
            }
        }
        h.cpuPercentAvg = cpuCount == 0 ? 0 : cpuSum / Double(cpuCount)
        return h
    }

    static func notFound(_ node: String) -> RPCStatus {
        RPCStatus(.notFound, "no node named '\(node)'; `nebula nodes` lists the known nodes")
    }

    /// Sends a command to a node's current command stream; false when the node has none.
    @discardableResult
    public func sendCommand(_ kind: NodeCommand.Kind, to node: String) -> Bool {
        guard entries[node]?.commands != nil else { return false }
        send(kind, to: node)
        return true
    }

    /// The persistent part of every known node.
    public func rows() -> [NodeRow] { entries.values.map(\.row) }

    private func send(_ kind: NodeCommand.Kind, to node: String) {
        let command = NodeCommand(id: nextCommandId, issuedUnixMs: nowUnixMs(), kind: kind)
        nextCommandId += 1
        entries[node]?.commands?.yield(command)
    }

    private func event(_ t: FailureDetector.Transition, kind: NodeEvent.Kind) -> NodeEvent {
        NodeEvent(timeUnixMs: nowUnixMs(), nodeId: t.nodeId, from: t.from, to: t.to, reason: t.reason, kind: kind)
    }
}
