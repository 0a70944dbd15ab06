import NebulaScheduler
import Testing

/// Drives the scheduler with random events and checks, after every event, that its directives tell
/// the whole story: replaying the `.transition`s (each in the table, each starting where the job
/// was) gives exactly the states the scheduler now reports, so every state change emitted exactly
/// one transition; placements respect capacity and requirements; launches and stops name the right
/// attempts.
struct InvariantChecker {
    var states: [String: JobState] = [:]
    var attempts: [String: Int] = [:]
    /// Every (from, to) seen, to show what a run exercised.
    var seen: [String: Int] = [:]

    mutating func check(_ s: Scheduler, after directives: [SchedulerDirective], event: String) {
        let excludedNow = s.exclusions
        var launchedNow: Set<String> = []
        var runningBefore = states.filter { $0.value == .running }.keys.reduce(into: Set<String>()) { $0.insert($1) }
        for d in directives {
            switch d {
            case let .transition(id, from, to, reason):
                #expect(from == states[id], "\(event): \(id) from \(String(describing: from)) but was \(String(describing: states[id]))")
                #expect(JobState.isAllowed(from: from, to: to), "\(event): \(id) \(String(describing: from)) -> \(to)")
                #expect(!reason.isEmpty)
                states[id] = to
                seen["\(from?.rawValue ?? "new")->\(to.rawValue)", default: 0] += 1
                if to == .running { launchedNow.insert(id) }
            case let .launch(id, attempt, nodes):
                #expect(states[id] == .running, "\(event): launch of \(id) not running")
                #expect(launchedNow.contains(id))
                #expect(attempt == (attempts[id] ?? 0) + 1, "\(event): \(id) attempt \(attempt)")
                attempts[id] = attempt
                #expect(Set(nodes).count == nodes.count)
                for n in nodes { #expect(excludedNow[n] == nil, "\(event): \(id) launched on excluded \(n)") }
            case let .stop(id, attempt, _):
                #expect(runningBefore.contains(id), "\(event): stop of \(id) that was not running")
                #expect(attempt == attempts[id])
                runningBefore.remove(id)
            case let .exclude(n, until, _):
                #expect(s.exclusions[n] == until, "\(event): exclusion of \(n) not kept")
            }
        }
        // The scheduler's own view agrees with the replayed events.
        let views = s.jobs
        #expect(views.count == states.count)
        for v in views {
            #expect(v.state == states[v.job.id], "\(event): \(v.job.id) is \(v.state), events say \(String(describing: states[v.job.id]))")
            #expect([.pending, .running, .completed, .failed, .cancelled].contains(v.state), "rests in \(v.state)")
            if v.state == .running {
                #expect(v.attempt == attempts[v.job.id])
                #expect(v.attempt == v.restarts + 1)
            }
            #expect(v.restarts <= Swift.max(0, v.job.maxRestarts))
        }
        // Placements made by this event fit the nodes as they are now. (Work placed earlier may
        // exceed a node whose reported hardware later shrank: Note [Drain and suspect keep work].)
        var slots: [String: Int] = [:]
        var gpus: [String: Int] = [:]
        for v in views where v.state == .running {
            let req = v.job.requirements
            #expect(v.placement.count >= req.minNodes && v.placement.count <= req.maxNodes)
            for n in v.placement {
                slots[n, default: 0] += req.slotsPerNode
                gpus[n, default: 0] += req.gpusPerNode
            }
        }
        for id in launchedNow {
            let v = s.job(id)!
            for n in v.placement {
                let node = s.node(n)!
                #expect(node.responding && !node.drained, "\(event): \(id) launched on unavailable \(n)")
                #expect(v.job.requirements.labels.allSatisfy { node.labels[$0.key] == $0.value }, "\(event): labels")
                #expect(slots[n]! <= node.slots, "\(event): node \(n) over its slots")
                #expect(gpus[n]! <= node.gpus, "\(event): node \(n) over its GPUs")
            }
        }
    }
}

@Suite("Scheduler: randomized invariants")
struct InvariantTests {
    static let seeds = 0..<24

    @Test(arguments: seeds)
    func randomEventsKeepTheInvariants(seed: Int) {
        _ = Self.randomRun(seed: seed)
    }

    @Test func theRandomRunsTogetherUseEveryTransition() {
        var seen: Set<String> = []
        for seed in Self.seeds { seen.formUnion(Self.randomRun(seed: seed).seen.keys) }
        var expected: Set<String> = ["new->pending"]
        for t in JobState.allowedTransitions { expected.insert("\(t.from.rawValue)->\(t.to.rawValue)") }
        // In the table, but `Scheduler` never rests in restarting (Note [Transient states]).
        // completing->failed: an attempt that ends badly goes straight to failed, so completing always completes.
        expected.subtract(["restarting->cancelled", "restarting->failed", "completing->failed"])
        #expect(seen == expected)
    }

    /// One random run of 400 events over 6 nodes; every third seed uses strict priority.
    static func randomRun(seed: Int) -> InvariantChecker {
        var rng = SeededRandom(seed: UInt64(seed) &* 0x9E37_79B9 &+ 1)
        var s = Scheduler(configuration: .init(nodeCoolDown: .seconds(60), backfill: seed % 3 != 0))
        var checker = InvariantChecker()
        var now: Int64 = 0
        var nextJob = 0
        let nodeIds = (1...6).map { "n\($0)" }
        let models = ["A100", "T4"]
        func randomNode(_ id: String) -> SchedulerNode {
            let gpus = [0, 0, 1, 2, 4].randomElement(using: &rng)!
            return SchedulerNode(id: id, responding: Int.random(in: 0..<8, using: &rng) != 0,
                                 drained: Int.random(in: 0..<10, using: &rng) == 0, gpus: gpus,
                                 gpuModel: gpus == 0 ? "" : models.randomElement(using: &rng)!, cpus: 8,
                                 labels: Bool.random(using: &rng) ? ["zone": "a"] : ["zone": "b"],
                                 slots: Int.random(in: 1...3, using: &rng))
        }
        for id in nodeIds {
            let d = s.nodeChanged(randomNode(id), now: now)
            checker.check(s, after: d, event: "add \(id)")
        }
        for step in 0..<400 {
            now += Int64.random(in: 0...5_000, using: &rng)
            let jobIds = s.jobs.map(\.job.id)
            let event: String
            let d: [SchedulerDirective]
            switch Int.random(in: 0..<100, using: &rng) {
            case 0..<20:
                nextJob += 1
                let minN = Int.random(in: 1...3, using: &rng)
                let j = SchedulerJob(
                    id: "j\(nextJob)", priority: Int.random(in: 0...2, using: &rng), sequence: Int64(nextJob),
                    requirements: JobRequirements(minNodes: minN, maxNodes: minN + Int.random(in: -1...2, using: &rng),
                                                  gpusPerNode: [0, 0, 1, 2].randomElement(using: &rng)!,
                                                  labels: Int.random(in: 0..<4, using: &rng) == 0 ? ["zone": "a"] : [:],
                                                  slotsPerNode: Int.random(in: 1...2, using: &rng)),
                    maxRestarts: Int.random(in: 0...2, using: &rng))
                event = "submit \(j.id)"
                d = s.submit(j, now: now)
            case 20..<25:
                let id = jobIds.randomElement(using: &rng) ?? "none"
                event = "cancel \(id)"
                d = s.cancel(jobId: id, reason: "random", now: now)
            case 25..<35:
                let id = nodeIds.randomElement(using: &rng)!
                event = "change \(id)"
                d = s.nodeChanged(randomNode(id), now: now)
            case 35..<45:
                let id = nodeIds.randomElement(using: &rng)!
                event = "lose \(id)"
                d = s.nodeLost(nodeId: id, reason: "down", now: now)
            case 45..<80:
                let running = s.jobs.filter { $0.state == .running }
                guard let v = running.randomElement(using: &rng) ?? s.jobs.randomElement(using: &rng) else { continue }
                let stale = v.state != .running || Int.random(in: 0..<6, using: &rng) == 0
                let attempt = stale && v.state == .running ? v.attempt + (Bool.random(using: &rng) ? 1 : -1) : v.attempt
                let current = v.state == .running && attempt == v.attempt
                let failed = v.placement.randomElement(using: &rng)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0:
                    event = "finish \(v.job.id)#\(attempt)"
                    d = s.attemptFinished(jobId: v.job.id, attempt: attempt, success: Bool.random(using: &rng), reason: "", now: now)
                case 1:
                    event = "fail \(v.job.id)#\(attempt)"
                    d = s.attemptFailed(jobId: v.job.id, attempt: attempt, reason: "rank died", failedNode: failed, now: now)
                default:
                    event = "started \(v.job.id)#\(attempt)"
                    d = s.attemptStarted(jobId: v.job.id, attempt: attempt)
                    #expect(d.isEmpty)
                }
                if !current { #expect(d.isEmpty, "stale \(event) at step \(step) gave \(d)") }
            default:
                now += Int64.random(in: 0...40_000, using: &rng)
                event = "tick \(now)"
                d = s.tick(now: now)
            }
            checker.check(s, after: d, event: "step \(step) \(event)")
        }
        return checker
    }

    @Test func aScenarioThroughEveryState() {
        // A fixed scenario through every state, checked by the same invariants.
        var s = scheduler([node("n1"), node("n2")])
        var checker = InvariantChecker()
        checker.check(s, after: [], event: "start")
        var seen: Set<JobState> = []
        func run(_ d: [SchedulerDirective], _ e: String) {
            checker.check(s, after: d, event: e)
            seen.formUnion(d.transitions.map(\.to))
        }
        run(s.submit(job("a", seq: 1, maxRestarts: 1), now: 0), "submit a")
        run(s.nodeLost(nodeId: "n1", reason: "", now: 1), "lose n1")
        run(s.attemptFailed(jobId: "a", attempt: 2, reason: "", failedNode: nil, now: 2), "fail a")
        run(s.submit(job("b", seq: 2), now: 3), "submit b")
        run(s.attemptFinished(jobId: "b", attempt: 1, success: true, reason: "", now: 4), "finish b")
        run(s.submit(job("c", seq: 3, min: 2), now: 5), "submit c")
        run(s.cancel(jobId: "c", reason: "", now: 6), "cancel c")
        #expect(seen == Set(JobState.allCases))
    }
}
