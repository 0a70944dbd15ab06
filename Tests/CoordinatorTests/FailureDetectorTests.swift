import NebulaModel
import Testing

@testable import NebulaCoordinator

@Suite("Failure detector state machine")
struct FailureDetectorTests {
    let config = FailureDetector.Configuration(heartbeatInterval: .seconds(1), suspectAfterMissed: 3, downAfter: .seconds(10))

    @Test func registrationMakesANodeUp() {
        var d = FailureDetector(configuration: config)
        let t = d.registered("a", session: 1, nowMs: 0)
        #expect(t?.from == nil)
        #expect(t?.to == .up)
        #expect(d.state(of: "a") == .up)
        #expect(d.tick(nowMs: 2_999).isEmpty)
    }

    @Test func silenceMakesSuspectThenDown() {
        var d = FailureDetector(configuration: config)
        _ = d.registered("a", session: 1, nowMs: 0)
        let suspect = d.tick(nowMs: 3_000)
        #expect(suspect.map(\.to) == [.suspect])
        #expect(suspect.first?.reason.contains("missed 3 heartbeats") == true)
        #expect(d.tick(nowMs: 5_000).isEmpty)  // no repeated transitions
        let down = d.tick(nowMs: 10_000)
        #expect(down == [FailureDetector.Transition(nodeId: "a", from: .suspect, to: .down, reason: "no heartbeat for 10.0 s")])
        #expect(d.tick(nowMs: 60_000).isEmpty)
    }

    @Test func heartbeatsKeepANodeUp() {
        var d = FailureDetector(configuration: config)
        _ = d.registered("a", session: 7, nowMs: 0)
        for t in stride(from: Int64(1000), through: 30_000, by: 1000) {
            #expect(d.heartbeat("a", session: 7, nowMs: t) == .accepted(nil))
            #expect(d.tick(nowMs: t + 500).isEmpty)
        }
    }

    @Test func suspectNodeRecoversOnHeartbeat() {
        var d = FailureDetector(configuration: config)
        _ = d.registered("a", session: 1, nowMs: 0)
        _ = d.tick(nowMs: 4_000)
        #expect(d.state(of: "a") == .suspect)
        let outcome = d.heartbeat("a", session: 1, nowMs: 4_100)
        #expect(outcome == .accepted(.init(nodeId: "a", from: .suspect, to: .up, reason: "heartbeats resumed")))
        #expect(d.state(of: "a") == .up)
    }

    @Test func downNodeMustRegisterAgain() {
        var d = FailureDetector(configuration: config)
        _ = d.registered("a", session: 1, nowMs: 0)
        _ = d.tick(nowMs: 11_000)
        #expect(d.state(of: "a") == .down)
        #expect(d.heartbeat("a", session: 1, nowMs: 11_500) == .reregister)
        let back = d.registered("a", session: 2, nowMs: 12_000)
        #expect(back?.from == .down)
        #expect(back?.to == .up)
    }

    @Test func staleOrUnknownSessionsAreRefused() {
        var d = FailureDetector(configuration: config)
        #expect(d.heartbeat("ghost", session: 1, nowMs: 0) == .reregister)
        _ = d.registered("a", session: 5, nowMs: 0)
        _ = d.registered("a", session: 6, nowMs: 10)
        #expect(d.heartbeat("a", session: 5, nowMs: 20) == .reregister)
        #expect(d.heartbeat("a", session: 6, nowMs: 20) == .accepted(nil))
    }

    @Test func leftNodesNeverGoDown() {
        var d = FailureDetector(configuration: config)
        _ = d.registered("a", session: 1, nowMs: 0)
        let t = d.left("a", session: 1, reason: "agent stopped (SIGTERM)")
        #expect(t?.to == .left)
        #expect(d.left("a", session: 1, reason: "again") == nil)
        #expect(d.tick(nowMs: 100_000).isEmpty)
        #expect(d.state(of: "a") == .left)
        #expect(d.left("b", session: 1, reason: "") == nil)
    }

    @Test func restoredNodesGetAGracePeriodThenGoDown() {
        var d = FailureDetector(configuration: config)
        d.restore("a", state: .up, nowMs: 50_000)
        #expect(d.tick(nowMs: 52_000).isEmpty)
        // The old session is void: the agent is told to register.
        #expect(d.heartbeat("a", session: 0, nowMs: 52_000) == .reregister)
        let down = d.tick(nowMs: 60_000).last
        #expect(down?.to == .down)
        #expect(down?.reason.contains("since the coordinator restarted") == true)
    }

    @Test func transitionsComeInNodeOrder() {
        var d = FailureDetector(configuration: config)
        for n in ["c", "a", "b"] { _ = d.registered(n, session: 1, nowMs: 0) }
        #expect(d.tick(nowMs: 3_500).map(\.nodeId) == ["a", "b", "c"])
    }

    @Test(arguments: [
        (Duration.seconds(1), 3, Duration.seconds(10), true),
        (Duration.seconds(1), 3, Duration.seconds(3), false),
        (Duration.zero, 3, Duration.seconds(10), false),
        (Duration.seconds(1), 0, Duration.seconds(10), false),
        (Duration.milliseconds(200), 3, Duration.seconds(2), true),
    ])
    func configurationValidation(interval: Duration, missed: Int, down: Duration, valid: Bool) {
        let c = FailureDetector.Configuration(heartbeatInterval: interval, suspectAfterMissed: missed, downAfter: down)
        if valid {
            #expect(throws: Never.self) { try c.validate() }
        } else {
            #expect(throws: DetectorConfigurationError.self) { try c.validate() }
        }
    }
}
