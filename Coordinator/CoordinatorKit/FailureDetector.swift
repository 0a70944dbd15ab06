import NebulaModel

/// Decides node liveness from heartbeats. A pure state machine: callers pass the time in, get the
/// transitions out, and do the I/O (persisting events, notifying) themselves.
///
/// Rules (defaults in `Configuration`):
/// - `registered` makes a node UP under a new session;
/// - a node whose last heartbeat is older than `suspectAfterMissed` intervals becomes SUSPECT;
/// - a node silent for longer than `downAfter` becomes DOWN; a heartbeat cannot revive it: the
///   agent must register again (so work placed on it can be ended cleanly first);
/// - a SUSPECT node that heartbeats again is UP;
/// - `left` marks a clean goodbye (LEFT), which never turns DOWN.
public struct FailureDetector: Sendable {
    public struct Configuration: Sendable, Hashable {
        public var heartbeatInterval: Duration
        public var suspectAfterMissed: Int
        public var downAfter: Duration

        public init(heartbeatInterval: Duration = .seconds(1), suspectAfterMissed: Int = 3,
                    downAfter: Duration = .seconds(10)) {
            self.heartbeatInterval = heartbeatInterval
            self.suspectAfterMissed = suspectAfterMissed
            self.downAfter = downAfter
        }

        /// Checks the settings make sense together; the message says what to change.
        public func validate() throws {
            guard heartbeatInterval > .zero else { throw DetectorConfigurationError("heartbeat interval must be > 0") }
            guard suspectAfterMissed >= 1 else { throw DetectorConfigurationError("suspect-after-missed must be >= 1") }
            guard downAfter > heartbeatInterval * suspectAfterMissed else {
                throw DetectorConfigurationError(
                    "down-after (\(downAfter)) must be longer than heartbeat interval × suspect-after-missed (\(heartbeatInterval * suspectAfterMissed))")
            }
        }

        var suspectAfterMs: Int64 { ms(heartbeatInterval) * Int64(suspectAfterMissed) }
        var downAfterMs: Int64 { ms(downAfter) }
    }

    public struct Transition: Sendable, Hashable {
        public var nodeId: String
        public var from: NodeState?
        public var to: NodeState
        public var reason: String
    }

    public enum HeartbeatOutcome: Sendable, Hashable {
        /// The heartbeat counted; a SUSPECT node may have become UP.
        case accepted(Transition?)
        /// Unknown node or session, or the node is DOWN/LEFT: it must register again.
        case reregister
    }

    struct Member: Sendable, Hashable {
        var state: NodeState
        var session: UInt64
        var lastHeardMs: Int64
        /// True when restored after a coordinator restart and not heard from since.
        var restored: Bool
    }

    public let configuration: Configuration
    private(set) var members: [String: Member] = [:]

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    public func state(of node: String) -> NodeState? { members[node]?.state }
    public func session(of node: String) -> UInt64? { members[node]?.session }
    public func lastHeardMs(of node: String) -> Int64? { members[node]?.lastHeardMs }

    /// A node known from before a coordinator restart. Its timers start now; its old session is void,
    /// so its next heartbeat asks it to register again.
    public mutating func restore(_ node: String, state: NodeState, nowMs: Int64) {
        members[node] = Member(state: state, session: 0, lastHeardMs: nowMs, restored: true)
    }

    public mutating func registered(_ node: String, session: UInt64, nowMs: Int64) -> Transition? {
        let previous = members[node]?.state
        members[node] = Member(state: .up, session: session, lastHeardMs: nowMs, restored: false)
        guard previous != .up else { return nil }
        return Transition(nodeId: node, from: previous, to: .up,
                          reason: previous == nil ? "registered" : "registered again (session \(session))")
    }

    public mutating func heartbeat(_ node: String, session: UInt64, nowMs: Int64) -> HeartbeatOutcome {
        guard var m = members[node], m.session == session, session != 0, m.state == .up || m.state == .suspect else {
            return .reregister
        }
        m.lastHeardMs = nowMs
        var transition: Transition?
        if m.state == .suspect {
            m.state = .up
            transition = Transition(nodeId: node, from: .suspect, to: .up, reason: "heartbeats resumed")
        }
        members[node] = m
        return .accepted(transition)
    }

    public mutating func left(_ node: String, session: UInt64, reason: String) -> Transition? {
        guard var m = members[node], m.session == session, m.state != .left else { return nil }
        let from = m.state
        m.state = .left
        members[node] = m
        return Transition(nodeId: node, from: from, to: .left, reason: reason.isEmpty ? "agent left" : reason)
    }

    /// Advances time: returns the nodes that became SUSPECT or DOWN, in node order.
    public mutating func tick(nowMs: Int64) -> [Transition] {
        var out: [Transition] = []
        for node in members.keys.sorted() {
            guard var m = members[node] else { continue }
            let silent = nowMs - m.lastHeardMs
            let since = m.restored ? " since the coordinator restarted" : ""
            switch m.state {
            case .up where silent >= configuration.downAfterMs, .suspect where silent >= configuration.downAfterMs:
                out.append(Transition(nodeId: node, from: m.state, to: .down,
                                      reason: "no heartbeat for \(seconds(silent))\(since)"))
                m.state = .down
            case .up where silent >= configuration.suspectAfterMs:
                let missed = silent / max(1, ms(configuration.heartbeatInterval))
                out.append(Transition(nodeId: node, from: .up, to: .suspect,
                                      reason: "missed \(missed) heartbeats (last \(seconds(silent)) ago)\(since)"))
                m.state = .suspect
            default:
                continue
            }
            members[node] = m
        }
        return out
    }
}

public struct DetectorConfigurationError: Error, CustomStringConvertible {
    public var description: String
    init(_ d: String) { description = d }
}

private func ms(_ d: Duration) -> Int64 {
    let (s, atto) = d.components
    return s * 1000 + atto / 1_000_000_000_000_000
}

private func seconds(_ ms: Int64) -> String {
    let tenths = (ms + 50) / 100
    return "\(tenths / 10).\(tenths % 10) s"
}
