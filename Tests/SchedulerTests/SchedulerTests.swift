import NebulaScheduler
import Testing

@Suite("Scheduler: placement")
struct PlacementTests {
    @Test func submissionIsAnEventThenTheJobRuns() {
        var s = scheduler([node("n1")])
        let d = s.submit(job("a", seq: 1), now: 10)
        #expect(d == [
            .transition(jobId: "a", from: nil, to: .pending, reason: "submitted"),
            .transition(jobId: "a", from: .pending, to: .running, reason: "placed on n1 (attempt 1)"),
            .launch(jobId: "a", attempt: 1, nodes: ["n1"]),
        ])
        let v = s.job("a")
        #expect(v?.state == .running)
        #expect(v?.attempt == 1)
        #expect(v?.placement == ["n1"])
        #expect(s.nodesInUse == ["n1": ["a"]])
    }

    @Test func priorityThenFIFO() {
        var s = scheduler([node("n1")])
        _ = s.submit(job("first", seq: 1), now: 0)
        _ = s.submit(job("low-early", priority: 0, seq: 2), now: 0)
        _ = s.submit(job("high", priority: 5, seq: 3), now: 0)
        _ = s.submit(job("low-late", priority: 0, seq: 4), now: 0)
        _ = s.submit(job("high-late", priority: 5, seq: 5), now: 0)
        #expect(s.jobs.map(\.job.id) == ["high", "high-late", "first", "low-early", "low-late"])
        var order: [String] = []
        var running = "first"
        for _ in 0..<4 {
            let d = s.attemptFinished(jobId: running, attempt: 1, success: true, reason: "", now: 1)
            running = try! #require(d.launches.keys.first)
            order.append(running)
        }
        #expect(order == ["high", "high-late", "low-early", "low-late"])
    }

    @Test func sequenceNotIdDecidesFIFO() {
        var s = scheduler([])
        _ = s.submit(job("z", seq: 1), now: 0)
        _ = s.submit(job("a", seq: 2), now: 0)
        let d = s.nodeChanged(node("n1"), now: 1)
        #expect(d.launches == ["z": ["n1"]])
    }

    @Test func allOrNothingWithBackfill() {
        var s = scheduler([node("n1"), node("n2")])
        let big = s.submit(job("big", priority: 10, seq: 1, min: 3), now: 0)
        #expect(big.launches.isEmpty)
        #expect(s.job("big")?.state == .pending)
        #expect(s.nodesInUse.isEmpty)  // holds no part of the cluster
        #expect(s.job("big")?.reason == "waiting for 3 nodes; 2 eligible; the cluster has 2 matching nodes")
        let small = s.submit(job("small", priority: 0, seq: 2), now: 0)
        #expect(small.launches == ["small": ["n1"]])
        // Once the cluster grows, the big job starts on all of it (after the small one is done).
        _ = s.nodeChanged(node("n3"), now: 1)
        #expect(s.job("big")?.state == .pending)
        #expect(s.job("big")?.reason == "waiting for 3 nodes; 2 eligible")
        let d = s.attemptFinished(jobId: "small", attempt: 1, success: true, reason: "", now: 2)
        #expect(d.launches == ["big": ["n1", "n2", "n3"]])
    }

    @Test func aBlockedJobThatCanFitHoldsTheFreeNodes() {
        var s = scheduler([node("n1"), node("n2"), node("n3")])
        _ = s.submit(job("long", seq: 1), now: 0)                       // n1
        _ = s.submit(job("big", priority: 10, seq: 2, min: 3), now: 0)  // needs all three
        let d = s.submit(job("small", seq: 3), now: 0)
        #expect(d.launches.isEmpty)
        #expect(s.job("small")?.reason == "waiting for 1 node; 0 eligible (2 more held for higher-priority jobs)")
        let end = s.attemptFinished(jobId: "long", attempt: 1, success: true, reason: "", now: 5)
        #expect(end.launches == ["big": ["n1", "n2", "n3"]])
        #expect(s.job("small")?.state == .pending)
    }

    @Test func strictPriorityStartsNothingBehindABlockedJob() {
        var s = scheduler([node("n1"), node("n2")], backfill: false)
        _ = s.submit(job("big", priority: 10, seq: 1, min: 3), now: 0)
        let d = s.submit(job("small", seq: 2), now: 0)
        #expect(d.launches.isEmpty)
        #expect(s.job("small")?.reason == "waiting behind higher-priority job big (strict priority)")
        _ = s.cancel(jobId: "big", reason: "too big", now: 1)
        #expect(s.job("small")?.state == .running)
    }

    @Test func labelsAndGPUs() {
        var s = scheduler([
            node("n1", gpus: 1, model: "A100", labels: ["zone": "a"]),
            node("n2", labels: ["zone": "a"]),
            node("n3", gpus: 1, model: "A100", labels: ["zone": "b", "disk": "ssd"]),
        ])
        #expect(s.submit(job("gpu-a", seq: 1, gpus: 1, labels: ["zone": "a"]), now: 0).launches == ["gpu-a": ["n1"]])
        #expect(s.submit(job("two-gpus", seq: 2, gpus: 2), now: 0).launches.isEmpty)
        #expect(s.job("two-gpus")?.reason == "waiting for 1 node with 2 GPUs; 0 eligible; the cluster has 0 matching nodes")
        #expect(s.submit(job("ssd", seq: 3, labels: ["disk": "ssd", "zone": "a"]), now: 0).launches.isEmpty)
        #expect(s.job("ssd")?.reason.hasPrefix("waiting for 1 node with labels disk=ssd,zone=a; 0 eligible") == true)
        #expect(s.submit(job("cpu-b", seq: 4, labels: ["zone": "b"]), now: 0).launches == ["cpu-b": ["n3"]])
    }

    @Test func cpuJobsPreferNodesWithoutGPUs() {
        var s = scheduler([node("n1", gpus: 2, model: "A100"), node("n2"), node("n3", gpus: 1, model: "T4")])
        #expect(s.submit(job("cpu", seq: 1, min: 1, max: 2), now: 0).launches == ["cpu": ["n2", "n3"]])
    }

    @Test func drainedDownAndSuspectNodesGetNoWork() {
        var s = scheduler([node("n1"), node("n2"), node("n3"), node("n4")])
        _ = s.nodeChanged(node("n1", drained: true), now: 1)
        _ = s.nodeLost(nodeId: "n2", reason: "no heartbeat for 10.0 s", now: 1)
        _ = s.nodeChanged(node("n4", responding: false), now: 1)
        let d = s.submit(job("j", seq: 1, min: 1, max: 4), now: 2)
        #expect(d.launches == ["j": ["n3"]])
        #expect(s.job("j")?.reason == "placed on n3 (attempt 1)")
    }

    @Test func drainingARunningNodeKeepsItsWork() {
        var s = scheduler([node("n1")])
        _ = s.submit(job("j", seq: 1), now: 0)
        #expect(s.nodeChanged(node("n1", drained: true), now: 1).isEmpty)
        #expect(s.nodeChanged(node("n1", responding: false), now: 2).isEmpty)
        #expect(s.job("j")?.state == .running)
    }

    @Test func takesMaxNodesWhenAvailable() {
        var s = scheduler((1...5).map { node("n\($0)") })
        #expect(s.submit(job("j", seq: 1, min: 2, max: 3), now: 0).launches == ["j": ["n1", "n2", "n3"]])
    }

    @Test func startsWithMinWhenOnlyMinAreEligible() {
        var s = scheduler([node("n1"), node("n2"), node("n3")])
        _ = s.submit(job("other", seq: 1), now: 0)
        #expect(s.submit(job("j", seq: 2, min: 2, max: 4), now: 0).launches == ["j": ["n2", "n3"]])
    }

    @Test func slotsAreShared() {
        var s = scheduler([node("n1", slots: 2)])
        #expect(s.submit(job("a", seq: 1), now: 0).launches == ["a": ["n1"]])
        #expect(s.submit(job("b", seq: 2), now: 0).launches == ["b": ["n1"]])
        #expect(s.submit(job("c", seq: 3), now: 0).launches.isEmpty)
        #expect(s.submit(job("wide", seq: 4, slots: 3), now: 0).launches.isEmpty)
        #expect(s.nodesInUse == ["n1": ["a", "b"]])
    }

    @Test func gpusAreShared() {
        var s = scheduler([node("n1", gpus: 4, model: "A100", slots: 4)])
        #expect(s.submit(job("a", seq: 1, gpus: 3), now: 0).launches == ["a": ["n1"]])
        #expect(s.submit(job("b", seq: 2, gpus: 2), now: 0).launches.isEmpty)
        #expect(s.submit(job("c", seq: 3, gpus: 1), now: 0).launches == ["c": ["n1"]])
    }

    @Test func reasonForAWaitingJob() {
        var s = scheduler([node("n1", gpus: 1, model: "A100"), node("n2")])
        _ = s.submit(job("j", seq: 1, min: 2, gpus: 1), now: 0)
        #expect(s.job("j")?.state == .pending)
        #expect(s.job("j")?.reason == "waiting for 2 nodes with 1 GPU; 1 eligible; the cluster has 1 matching node")
        var t = scheduler([node("n1", gpus: 1, model: "A100"), node("n2", gpus: 1, model: "A100")])
        _ = t.submit(job("x", seq: 1, gpus: 1), now: 0)
        _ = t.submit(job("j", seq: 2, min: 2, gpus: 1), now: 0)
        #expect(t.job("j")?.reason == "waiting for 2 nodes with 1 GPU; 1 eligible")
    }

    @Test func invalidAndDuplicateSubmissions() {
        var s = scheduler([node("n1")])
        let bad = s.submit(job("bad", seq: 1, min: 2, max: 1), now: 0)
        #expect(bad.transitions == [Step(job: "bad", from: nil, to: .pending), Step(job: "bad", from: .pending, to: .failed)])
        #expect(s.job("bad")?.reason == "invalid job: max nodes (1) must be >= min nodes (2)")
        _ = s.submit(job("a", seq: 2), now: 0)
        #expect(s.submit(job("a", seq: 3), now: 0).isEmpty)
    }
}

@Suite("Scheduler: homogeneous placement")
struct HomogeneousPlacementTests {
    @Test func prefersOneGPUModelOverIdOrder() {
        var s = scheduler([node("n1", gpus: 1, model: "T4"), node("n2", gpus: 1, model: "A100"),
                           node("n3", gpus: 1, model: "A100"), node("n4", gpus: 1, model: "T4"),
                           node("n5", gpus: 1, model: "A100")])
        #expect(s.submit(job("j", seq: 1, min: 2, max: 3, gpus: 1), now: 0).launches == ["j": ["n2", "n3", "n5"]])
    }

    @Test func prefersAHomogeneousGroupEvenIfSmaller() {
        let eligible = [node("n1", gpus: 1, model: "A100"), node("n2", gpus: 1, model: "A100"), node("n3", gpus: 1, model: "T4")]
        let req = JobRequirements(minNodes: 2, maxNodes: 3, gpusPerNode: 1)
        #expect(Scheduler.choosePlacement(eligible: eligible, requirements: req) == ["n1", "n2"])
    }

    @Test func gpuCountIsPartOfTheShape() {
        let eligible = [node("n1", gpus: 8, model: "A100"), node("n2", gpus: 4, model: "A100"), node("n3", gpus: 4, model: "A100")]
        let req = JobRequirements(minNodes: 2, maxNodes: 3, gpusPerNode: 1)
        #expect(Scheduler.choosePlacement(eligible: eligible, requirements: req) == ["n2", "n3"])
    }

    @Test func mixesWhenNoGroupReachesMin() {
        let eligible = [node("n2", gpus: 1, model: "T4"), node("n1", gpus: 1, model: "A100"), node("n3", gpus: 2, model: "A100")]
        let req = JobRequirements(minNodes: 3, maxNodes: 3, gpusPerNode: 1)
        #expect(Scheduler.choosePlacement(eligible: eligible, requirements: req) == ["n1", "n2", "n3"])
        #expect(Scheduler.choosePlacement(eligible: eligible, requirements: .init(minNodes: 4, maxNodes: 4, gpusPerNode: 1)) == nil)
    }

    @Test func equalGroupsBreakTiesBySizeThenId() {
        let a100 = (1...3).map { node("a\($0)", gpus: 1, model: "A100") }
        let t4 = (1...2).map { node("t\($0)", gpus: 1, model: "T4") }
        let v100 = (1...2).map { node("v\($0)", gpus: 1, model: "V100") }
        let req = JobRequirements(minNodes: 1, maxNodes: 2, gpusPerNode: 1)
        // All give 2 nodes: the smallest groups (T4, V100) win over A100, then the lower id.
        #expect(Scheduler.choosePlacement(eligible: v100 + a100 + t4, requirements: req) == ["t1", "t2"])
        // Wanting 3, only A100 gives 3.
        #expect(Scheduler.choosePlacement(eligible: v100 + a100 + t4, requirements: .init(minNodes: 1, maxNodes: 3, gpusPerNode: 1))
            == ["a1", "a2", "a3"])
    }
}

@Suite("Scheduler: failures and restarts")
struct RestartTests {
    @Test func nodeLossRestartsOnTheRemainingNodes() {
        var s = scheduler([node("n1"), node("n2"), node("n3")])
        _ = s.submit(job("j", seq: 1, min: 2, max: 3, maxRestarts: 2), now: 0)
        _ = s.attemptStarted(jobId: "j", attempt: 1)
        #expect(s.job("j")?.attemptStarted == true)
        let d = s.nodeLost(nodeId: "n2", reason: "no heartbeat for 10.0 s", now: 1_000)
        let why = "node n2 lost: no heartbeat for 10.0 s"
        #expect(d == [
            .exclude(nodeId: "n2", until: 61_000, reason: why),
            .transition(jobId: "j", from: .running, to: .nodeFail, reason: why),
            .stop(jobId: "j", attempt: 1, reason: why),
            .transition(jobId: "j", from: .nodeFail, to: .restarting, reason: "restart 1 of 2 after \(why)"),
            .transition(jobId: "j", from: .restarting, to: .running, reason: "placed on n1, n3 (attempt 2)"),
            .launch(jobId: "j", attempt: 2, nodes: ["n1", "n3"]),
        ])
        let v = s.job("j")
        #expect(v?.attempt == 2)
        #expect(v?.restarts == 1)
        #expect(v?.attemptStarted == false)
        #expect(s.exclusions == ["n2": 61_000])
    }

    @Test func excludedNodeIsNotReusedUntilItsCoolDownEnds() {
        var s = scheduler([node("n1"), node("n2"), node("n3")])
        _ = s.submit(job("j", seq: 1, min: 2, max: 3, maxRestarts: 5), now: 0)
        let first = s.attemptFailed(jobId: "j", attempt: 1, reason: "rank 1 exited with signal 9", failedNode: "n2", now: 1_000)
        #expect(first.first == .exclude(nodeId: "n2", until: 61_000,
                                        reason: "attempt 1 failed on node n2: rank 1 exited with signal 9"))
        #expect(first.transitions.map(\.to) == [.restarting, .running])
        #expect(first.launch(of: "j")! == (2, ["n1", "n3"]))
        // Before the cool-down ends the node gets nothing, not even a new job...
        _ = s.submit(job("k", seq: 2), now: 30_000)
        #expect(s.job("k")?.state == .pending)
        #expect(s.tick(now: 60_999).isEmpty)
        // ...then it does.
        #expect(s.tick(now: 61_000).launches == ["k": ["n2"]])
        #expect(s.exclusions.isEmpty)
    }

    @Test func restartUsesTheNodeAgainAfterItsCoolDown() {
        var s = scheduler([node("n1"), node("n2"), node("n3")])
        _ = s.submit(job("j", seq: 1, min: 2, max: 3, maxRestarts: 5), now: 0)
        _ = s.attemptFailed(jobId: "j", attempt: 1, reason: "", failedNode: "n2", now: 1_000)
        let again = s.attemptFailed(jobId: "j", attempt: 2, reason: "NCCL timeout", failedNode: nil, now: 70_000)
        #expect(again.launch(of: "j")! == (3, ["n1", "n2", "n3"]))
        #expect(s.job("j")?.restarts == 2)
    }

    @Test func restartWaitsWhenTooFewNodesRemain() {
        var s = scheduler([node("n1"), node("n2")])
        _ = s.submit(job("j", seq: 1, min: 2), now: 0)
        let d = s.nodeLost(nodeId: "n1", reason: "left", now: 0)
        #expect(d.transitions.map(\.to) == [.nodeFail, .restarting, .pending])
        #expect(s.job("j")?.reason == "waiting for 2 nodes; 1 eligible; the cluster has 1 matching node")
        #expect(s.nodesInUse.isEmpty)
        // The agent registers again at once, but the node cools down first.
        #expect(s.nodeChanged(node("n1"), now: 5_000).isEmpty)
        #expect(s.tick(now: 60_000).launch(of: "j")! == (2, ["n1", "n2"]))
    }

    @Test func maxRestartsExhaustedFailsTheJob() {
        var s = scheduler([node("n1"), node("n2"), node("n3")])
        _ = s.submit(job("j", seq: 1, maxRestarts: 1), now: 0)
        _ = s.nodeLost(nodeId: "n1", reason: "", now: 0)
        #expect(s.job("j")?.placement == ["n2"])
        let d = s.nodeLost(nodeId: "n2", reason: "", now: 1)
        #expect(d.transitions == [Step(job: "j", from: .running, to: .nodeFail), Step(job: "j", from: .nodeFail, to: .failed)])
        #expect(d.stops == ["j"])
        #expect(d.launches.isEmpty)
        #expect(s.job("j")?.reason == "node n2 lost; no restarts left (max 1)")
        #expect(s.job("j")?.restarts == 1)
    }

    @Test func aFailedAttemptRestartsThenFails() {
        var s = scheduler([node("n1"), node("n2")])
        _ = s.submit(job("j", seq: 1, maxRestarts: 1), now: 0)
        let d1 = s.attemptFailed(jobId: "j", attempt: 1, reason: "rank 0 died", failedNode: "n1", now: 10)
        #expect(d1.transitions == [Step(job: "j", from: .running, to: .restarting), Step(job: "j", from: .restarting, to: .running)])
        #expect(d1.launch(of: "j")! == (2, ["n2"]))
        let d2 = s.attemptFailed(jobId: "j", attempt: 2, reason: "rank 0 died", failedNode: "n2", now: 20)
        #expect(d2.transitions == [Step(job: "j", from: .running, to: .failed)])
        #expect(d2.stops == ["j"])
        #expect(s.job("j")?.reason == "attempt 2 failed on node n2: rank 0 died; no restarts left (max 1)")
        #expect(s.nodesInUse.isEmpty)
    }

    @Test func zeroRestartsFailsAtOnce() {
        var s = scheduler([node("n1")])
        _ = s.submit(job("j", seq: 1, maxRestarts: 0), now: 0)
        let d = s.attemptFailed(jobId: "j", attempt: 1, reason: "oom", failedNode: nil, now: 1)
        #expect(d.transitions.map(\.to) == [.failed])
    }

    @Test func nodeLossEndsEveryJobOnIt() {
        var s = scheduler([node("n1", slots: 2), node("n2")])
        _ = s.submit(job("a", seq: 1), now: 0)
        _ = s.submit(job("b", seq: 2), now: 0)
        _ = s.submit(job("c", seq: 3), now: 0)
        #expect(s.nodesInUse == ["n1": ["a", "b"], "n2": ["c"]])
        let d = s.nodeLost(nodeId: "n1", reason: "", now: 0)
        #expect(Set(d.stops) == ["a", "b"])
        #expect(d.launches.isEmpty)
        #expect(s.job("c")?.state == .running)
        #expect(s.job("a")?.state == .pending)  // n2 is busy with c
        #expect(s.job("b")?.state == .pending)
    }

    @Test func unknownNodeLossIsIgnored() {
        var s = scheduler([node("n1")])
        #expect(s.nodeLost(nodeId: "ghost", reason: "", now: 0).isEmpty)
    }

    @Test func staleAttemptEventsAreIgnored() {
        var s = scheduler([node("n1"), node("n2")])
        _ = s.submit(job("j", seq: 1), now: 0)
        _ = s.attemptFailed(jobId: "j", attempt: 1, reason: "", failedNode: "n1", now: 0)
        #expect(s.job("j")?.attempt == 2)
        let before = s.job("j")
        #expect(s.attemptFailed(jobId: "j", attempt: 1, reason: "late", failedNode: "n2", now: 1).isEmpty)
        #expect(s.attemptFinished(jobId: "j", attempt: 1, success: true, reason: "", now: 1).isEmpty)
        #expect(s.attemptStarted(jobId: "j", attempt: 1).isEmpty)
        #expect(s.attemptFinished(jobId: "j", attempt: 3, success: true, reason: "", now: 1).isEmpty)
        #expect(s.attemptFailed(jobId: "nope", attempt: 1, reason: "", failedNode: nil, now: 1).isEmpty)
        #expect(s.job("j") == before)
        #expect(s.exclusions.keys.sorted() == ["n1"])
        // A failed node that is not part of the attempt is not excluded.
        let d = s.attemptFailed(jobId: "j", attempt: 2, reason: "", failedNode: "n9", now: 1)
        #expect(!d.contains { if case .exclude = $0 { true } else { false } })
        #expect(s.job("j")?.attempt == 3)
        // An attempt of a job that has ended is stale too.
        _ = s.attemptFinished(jobId: "j", attempt: 3, success: true, reason: "", now: 2)
        #expect(s.attemptFailed(jobId: "j", attempt: 3, reason: "", failedNode: nil, now: 3).isEmpty)
    }
}

@Suite("Scheduler: ending jobs")
struct EndingTests {
    @Test func successGoesThroughCompleting() {
        var s = scheduler([node("n1")])
        _ = s.submit(job("j", seq: 1), now: 0)
        _ = s.submit(job("next", seq: 2), now: 0)
        let d = s.attemptFinished(jobId: "j", attempt: 1, success: true, reason: "", now: 5)
        #expect(d == [
            .transition(jobId: "j", from: .running, to: .completing, reason: "attempt 1 finished"),
            .transition(jobId: "j", from: .completing, to: .completed, reason: "finished"),
            .transition(jobId: "next", from: .pending, to: .running, reason: "placed on n1 (attempt 1)"),
            .launch(jobId: "next", attempt: 1, nodes: ["n1"]),
        ])
        #expect(s.job("j")?.placement == ["n1"])  // kept as history
    }

    @Test func anUnsuccessfulEndFailsWithoutRestart() {
        var s = scheduler([node("n1")])
        _ = s.submit(job("j", seq: 1, maxRestarts: 3), now: 0)
        let d = s.attemptFinished(jobId: "j", attempt: 1, success: false, reason: "target column missing", now: 5)
        #expect(d.transitions.map(\.to) == [.failed])  // straight from running: nothing completed
        #expect(s.job("j")?.reason == "target column missing")
        #expect(s.job("j")?.restarts == 0)
    }

    @Test func cancelPending() {
        var s = scheduler([])
        _ = s.submit(job("j", seq: 1), now: 0)
        let d = s.cancel(jobId: "j", reason: "by alice", now: 1)
        #expect(d == [.transition(jobId: "j", from: .pending, to: .cancelled, reason: "by alice")])
    }

    @Test func cancelRunningStopsItAndFreesItsNodes() {
        var s = scheduler([node("n1")])
        _ = s.submit(job("j", seq: 1), now: 0)
        _ = s.submit(job("next", seq: 2), now: 0)
        let d = s.cancel(jobId: "j", reason: "", now: 1)
        #expect(d == [
            .transition(jobId: "j", from: .running, to: .cancelled, reason: "cancelled"),
            .stop(jobId: "j", attempt: 1, reason: "cancelled"),
            .transition(jobId: "next", from: .pending, to: .running, reason: "placed on n1 (attempt 1)"),
            .launch(jobId: "next", attempt: 1, nodes: ["n1"]),
        ])
    }

    @Test func cancelEndedOrUnknownIsIgnored() {
        var s = scheduler([node("n1")])
        _ = s.submit(job("j", seq: 1), now: 0)
        _ = s.attemptFinished(jobId: "j", attempt: 1, success: true, reason: "", now: 1)
        #expect(s.cancel(jobId: "j", reason: "", now: 2).isEmpty)
        #expect(s.cancel(jobId: "nope", reason: "", now: 2).isEmpty)
        #expect(s.job("j")?.state == .completed)
    }

    @Test func cancellingABlockedJobReleasesTheNodesItHeld() {
        var s = scheduler([node("n1"), node("n2")])
        _ = s.submit(job("long", seq: 1), now: 0)
        _ = s.submit(job("big", priority: 9, seq: 2, min: 2), now: 0)
        _ = s.submit(job("small", seq: 3), now: 0)
        #expect(s.job("small")?.state == .pending)
        #expect(s.cancel(jobId: "big", reason: "", now: 1).launches == ["small": ["n2"]])
    }
}
