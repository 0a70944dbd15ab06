/// Places training jobs on nodes and runs their lifecycle. A pure state machine: the caller passes
/// events and the time in (plain `Int64` milliseconds on its own clock) and carries out the returned
/// directives in order (store each `.transition` as a job_event, launch and stop attempts through the
/// node agents). Nothing here reads a clock, touches a socket or logs.
///
/// Rules:
/// - jobs are considered by priority (higher first), then submission sequence (FIFO), then id;
/// - placement is all-or-nothing: a job gets between `minNodes` and `maxNodes` nodes at once, as
///   many as are eligible, or none (Note [Placement]);
/// - a node is eligible when it responds, is not drained, is not cooling down after a failure, has the
///   labels, and has enough free slots and GPUs left by the running jobs on it;
/// - a lower-priority job may backfill around a higher-priority job that cannot start (Note [Backfill]);
/// - losing a node or a rank ends the attempt; the job restarts (from its last checkpoint, which is
///   the shell's business) on healthy nodes while restarts remain, else it fails
///   (Note [Transient states]);
/// - events about an attempt other than the current one are stale and ignored.
///
/// Note [Transient states]: `node_fail`, `restarting` and `completing` are entered and left within a
/// single event: after `nodeLost` a job is `running -> node_fail -> restarting -> running|pending`
/// (or `-> failed`), after `attemptFinished` it is `running -> completing -> completed|failed`. A job
/// only ever rests in `pending`, `running` or a terminal state. They are still real transitions: the
/// event log then says why a job restarted or how it ended, with the states the wire contract names.
///
/// Note [Directive order]: the model frees an attempt's nodes as soon as the attempt ends, so the
/// same event may `.stop` attempt N and `.launch` attempt N+1 (or another job) on some of the same
/// nodes. The directives come in the order to carry them out; the shell must finish a `.stop` before
/// it carries out a later `.launch`.
public struct Scheduler: Sendable {
    public struct Configuration: Sendable, Hashable {
        /// How long a node that was lost, or that a rank died on, gets no new work.
        public var nodeCoolDown: Duration
        /// Whether lower-priority jobs may start around a higher-priority one that cannot
        /// (Note [Backfill]); false gives strict priority order.
        public var backfill: Bool

        public init(nodeCoolDown: Duration = .seconds(60), backfill: Bool = true) {
            self.nodeCoolDown = nodeCoolDown
            self.backfill = backfill
        }

        var nodeCoolDownMs: Int64 {
            let (s, atto) = nodeCoolDown.components
            return s * 1000 + atto / 1_000_000_000_000_000
        }
    }

    /// A read-only view of one job.
    public struct JobView: Sendable, Hashable {
        public var job: SchedulerJob
        public var state: JobState
        /// The current (or last) attempt; 0 before the first launch, then 1, 2, ...
        public var attempt: Int
        /// How many times the job has been restarted.
        public var restarts: Int
        /// The nodes of the current (or last) attempt, in rank order.
        public var placement: [String]
        /// Why the job is in its state; for a pending job, what it waits for.
        public var reason: String
        /// Whether the shell reported the current attempt as started (`attemptStarted`).
        public var attemptStarted: Bool
    }

    public let configuration: Configuration
    private var records: [String: JobView] = [:]
    private var nodeTable: [String: SchedulerNode] = [:]
    private var excludedUntil: [String: Int64] = [:]

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    // MARK: Views

    public func job(_ id: String) -> JobView? { records[id] }

    /// All jobs in queue order (priority, then sequence, then id).
    public var jobs: [JobView] { records.values.sorted { Self.queueOrder($0.job, $1.job) } }

    public func node(_ id: String) -> SchedulerNode? { nodeTable[id] }

    /// All known nodes, by id.
    public var nodes: [SchedulerNode] { nodeTable.values.sorted { $0.id < $1.id } }

    /// Node id -> the running jobs placed on it (sorted); nodes without work are absent.
    public var nodesInUse: [String: [String]] {
        var out: [String: [String]] = [:]
        for r in records.values where r.state == .running {
            for n in r.placement { out[n, default: []].append(r.job.id) }
        }
        return out.mapValues { $0.sorted() }
    }

    /// Node id -> end of its cool-down (ms) for nodes that are cooling down (as of the last event).
    public var exclusions: [String: Int64] { excludedUntil }

    // MARK: Events

    /// A new job. Invalid requirements fail it at once; a duplicate id is ignored.
    public mutating func submit(_ job: SchedulerJob, now: Int64) -> [SchedulerDirective] {
        guard records[job.id] == nil else { return [] }
        var out: [SchedulerDirective] = [.transition(jobId: job.id, from: nil, to: .pending, reason: "submitted")]
        records[job.id] = JobView(job: job, state: .pending, attempt: 0, restarts: 0, placement: [],
                                  reason: "submitted", attemptStarted: false)
        if let problem = job.requirements.problem ?? (job.maxRestarts < 0 ? "max restarts must be >= 0" : nil) {
            move(job.id, to: .failed, reason: "invalid job: \(problem)", into: &out)
            return out
        }
        out += schedule(now: now)
        return out
    }

    /// Cancels a job that has not ended; a running attempt is stopped. Unknown or ended jobs: [].
    public mutating func cancel(jobId: String, reason: String, now: Int64) -> [SchedulerDirective] {
        guard let r = records[jobId], JobState.isAllowed(from: r.state, to: .cancelled) else { return [] }
        let why = reason.isEmpty ? "cancelled" : reason
        var out: [SchedulerDirective] = []
        move(jobId, to: .cancelled, reason: why, into: &out)
        if r.state == .running { out.append(.stop(jobId: jobId, attempt: r.attempt, reason: why)) }
        // A cancelled job frees its nodes, or its hold on free nodes (Note [Backfill]).
        out += schedule(now: now)
        return out
    }

    /// A node was added, changed, came back, or was drained or resumed.
    ///
    /// Note [Drain and suspect keep work]: a drained or non-responding (SUSPECT) node only stops
    /// getting new work; its running attempts go on. Only `nodeLost` (DOWN or LEFT) ends them, so a
    /// short network hiccup does not cost a restart.
    public mutating func nodeChanged(_ node: SchedulerNode, now: Int64) -> [SchedulerDirective] {
        nodeTable[node.id] = node
        return schedule(now: now)
    }

    /// A node went DOWN or left: it cools down, and every running attempt on it ends (node_fail).
    /// Unknown nodes: [].
    public mutating func nodeLost(nodeId: String, reason: String, now: Int64) -> [SchedulerDirective] {
        guard nodeTable[nodeId] != nil else { return [] }
        nodeTable[nodeId]!.responding = false
        let why = "node \(nodeId) lost" + (reason.isEmpty ? "" : ": \(reason)")
        var out: [SchedulerDirective] = [exclude(nodeId, now: now, reason: why)]
        let hit = records.values
            .filter { $0.state == .running && $0.placement.contains(nodeId) }
            .sorted { Self.queueOrder($0.job, $1.job) }
        for r in hit {
            move(r.job.id, to: .nodeFail, reason: why, into: &out)
            out.append(.stop(jobId: r.job.id, attempt: r.attempt, reason: why))
            restartOrFail(r.job.id, after: why, into: &out)
        }
        out += schedule(now: now)
        return out
    }

    /// The shell saw the attempt start (mpirun running). Informational; stale attempts are ignored.
    public mutating func attemptStarted(jobId: String, attempt: Int) -> [SchedulerDirective] {
        guard let r = records[jobId], r.state == .running, r.attempt == attempt else { return [] }
        records[jobId]!.attemptStarted = true
        return []
    }

    /// A rank or worker of the attempt died. The attempt is stopped, `failedNode` (when it is one of
    /// the attempt's nodes) cools down, and the job restarts while restarts remain, else fails.
    ///
    /// Note [Cool-down is cluster-wide]: a node a rank died on is kept from every job, not only this
    /// one: the likely causes (a bad GPU, a full disk, a broken NIC) hurt any job, and a per-job list
    /// would grow without bound for jobs that restart many times.
    public mutating func attemptFailed(jobId: String, attempt: Int, reason: String, failedNode: String?,
                                       now: Int64) -> [SchedulerDirective] {
        guard let r = records[jobId], r.state == .running, r.attempt == attempt else { return [] }
        let why = "attempt \(attempt) failed"
            + (failedNode.map { " on node \($0)" } ?? "")
            + (reason.isEmpty ? "" : ": \(reason)")
        var out: [SchedulerDirective] = []
        if let failedNode, r.placement.contains(failedNode) {
            out.append(exclude(failedNode, now: now, reason: why))
        }
        out.append(.stop(jobId: jobId, attempt: attempt, reason: why))
        restartOrFail(jobId, after: why, into: &out)
        out += schedule(now: now)
        return out
    }

    /// The attempt ran to its end: `running -> completing -> completed` on success, `-> failed`
    /// otherwise. A job that ends unsuccessfully on its own is not restarted: it would fail the same
    /// way again (a restartable crash is `attemptFailed`).
    public mutating func attemptFinished(jobId: String, attempt: Int, success: Bool, reason: String,
                                         now: Int64) -> [SchedulerDirective] {
        guard let r = records[jobId], r.state == .running, r.attempt == attempt else { return [] }
        var out: [SchedulerDirective] = []
        let why = reason.isEmpty ? (success ? "finished" : "attempt \(attempt) failed") : reason
        if success {
            move(jobId, to: .completing, reason: "attempt \(attempt) finished", into: &out)
            move(jobId, to: .completed, reason: why, into: &out)
        } else {
            // an attempt that ended badly without a restart (a hang): straight to failed
            move(jobId, to: .failed, reason: why, into: &out)
        }
        out += schedule(now: now)
        return out
    }

    /// Time passes: cool-downs end, and waiting jobs may start.
    public mutating func tick(now: Int64) -> [SchedulerDirective] {
        schedule(now: now)
    }

    // MARK: Lifecycle helpers

    private mutating func move(_ id: String, to: JobState, reason: String, into out: inout [SchedulerDirective]) {
        let from = records[id]!.state
        precondition(JobState.isAllowed(from: from, to: to),
                     "scheduler bug: job \(id) \(from.rawValue) -> \(to.rawValue) is not in the table")
        records[id]!.state = to
        records[id]!.reason = reason
        out.append(.transition(jobId: id, from: from, to: to, reason: reason))
    }

    /// The attempt has ended (state running or node_fail): restart while restarts remain, else fail.
    private mutating func restartOrFail(_ id: String, after why: String, into out: inout [SchedulerDirective]) {
        let r = records[id]!
        if r.restarts < r.job.maxRestarts {
            records[id]!.restarts += 1
            move(id, to: .restarting, reason: "restart \(r.restarts + 1) of \(r.job.maxRestarts) after \(why)",
                 into: &out)
        } else {
            move(id, to: .failed, reason: "\(why); no restarts left (max \(r.job.maxRestarts))", into: &out)
        }
    }

    private mutating func exclude(_ node: String, now: Int64, reason: String) -> SchedulerDirective {
        let until = now + configuration.nodeCoolDownMs
        excludedUntil[node] = max(until, excludedUntil[node] ?? until)
        return .exclude(nodeId: node, until: excludedUntil[node]!, reason: reason)
    }

    // MARK: Scheduling

    static func queueOrder(_ a: SchedulerJob, _ b: SchedulerJob) -> Bool {
        if a.priority != b.priority { return a.priority > b.priority }
        if a.sequence != b.sequence { return a.sequence < b.sequence }
        return a.id < b.id
    }

    /// Note [Backfill]: a job that cannot start does not stop the queue: lower-priority jobs may
    /// start on nodes it cannot use now. Without it, one job asking for more nodes than the cluster
    /// has (or for labels no node carries) would idle the whole cluster. Pure backfill would instead
    /// starve large jobs: small jobs keep taking each node as it frees up. We have no run-time
    /// estimates, so EASY backfill (start a small job only if it ends before the big one could start)
    /// is not possible; instead a blocked job *holds* the free nodes it could use, and lower-priority
    /// jobs may only use the others. Nodes freed later reach the blocked job first, so it starts as
    /// soon as enough have freed up. A job holds nodes only when it could run on the cluster as it is
    /// once running work ends (counting nodes in cool-down, which come back on their own, but not
    /// drained or non-responding ones); a job that cannot fit at all holds nothing and waits for the
    /// cluster to change. The cost: held nodes idle until the blocked job starts. `backfill: false`
    /// gives strict priority (nothing starts behind a blocked job).
    private mutating func schedule(now: Int64) -> [SchedulerDirective] {
        excludedUntil = excludedUntil.filter { $0.value > now }
        var out: [SchedulerDirective] = []
        var usage = currentUsage()
        var held: Set<String> = []
        var blockedBy: String?

        let queue = records.values
            .filter { $0.state == .pending || $0.state == .restarting }
            .sorted { Self.queueOrder($0.job, $1.job) }
        for r in queue {
            let id = r.job.id
            let req = r.job.requirements
            if let blocker = blockedBy {
                wait(id, reason: "waiting behind higher-priority job \(blocker) (strict priority)", into: &out)
                continue
            }
            let fit = nodeTable.values.filter { isEligible($0, for: req, usage: usage) }
            let eligible = fit.filter { !held.contains($0.id) }
            if let picked = Self.choosePlacement(eligible: eligible, requirements: req) {
                let attempt = r.attempt + 1
                records[id]!.attempt = attempt
                records[id]!.placement = picked
                records[id]!.attemptStarted = false
                for n in picked {
                    usage[n, default: Usage()].slots += req.slotsPerNode
                    usage[n, default: Usage()].gpus += req.gpusPerNode
                }
                move(id, to: .running, reason: "placed on \(picked.joined(separator: ", ")) (attempt \(attempt))",
                     into: &out)
                out.append(.launch(jobId: id, attempt: attempt, nodes: picked))
                continue
            }
            var reason = "waiting for \(Self.describe(req)); \(eligible.count) eligible"
            let heldHere = fit.count - eligible.count
            if heldHere > 0 { reason += " (\(heldHere) more held for higher-priority jobs)" }
            let potential = nodeTable.values.filter { couldEverRun($0, for: req) }.count
            if potential < req.minNodes {
                reason += "; the cluster has \(potential) matching node\(potential == 1 ? "" : "s")"
            }
            wait(id, reason: reason, into: &out)
            if !configuration.backfill {
                blockedBy = id
            } else if potential >= req.minNodes {
                held.formUnion(eligible.map(\.id))
            }
        }
        return out
    }

    /// A job that could not be placed: a restarting one becomes pending; a pending one only gets its
    /// reason updated (a reason change is not a transition).
    private mutating func wait(_ id: String, reason: String, into out: inout [SchedulerDirective]) {
        if records[id]!.state == .restarting {
            move(id, to: .pending, reason: reason, into: &out)
        } else {
            records[id]!.reason = reason
        }
    }

    struct Usage: Hashable {
        var slots = 0
        var gpus = 0
    }

    private func currentUsage() -> [String: Usage] {
        var usage: [String: Usage] = [:]
        for r in records.values where r.state == .running {
            for n in r.placement {
                usage[n, default: Usage()].slots += r.job.requirements.slotsPerNode
                usage[n, default: Usage()].gpus += r.job.requirements.gpusPerNode
            }
        }
        return usage
    }

    private func isEligible(_ node: SchedulerNode, for req: JobRequirements, usage: [String: Usage]) -> Bool {
        guard node.responding, !node.drained, excludedUntil[node.id] == nil, Self.labelsMatch(node, req) else {
            return false
        }
        let used = usage[node.id] ?? Usage()
        return node.slots - used.slots >= req.slotsPerNode && node.gpus - used.gpus >= req.gpusPerNode
    }

    /// Whether the node could take the job once the work running on it ends.
    private func couldEverRun(_ node: SchedulerNode, for req: JobRequirements) -> Bool {
        node.responding && !node.drained && Self.labelsMatch(node, req)
            && node.slots >= req.slotsPerNode && node.gpus >= req.gpusPerNode
    }

    static func labelsMatch(_ node: SchedulerNode, _ req: JobRequirements) -> Bool {
        req.labels.allSatisfy { node.labels[$0.key] == $0.value }
    }

    /// Note [Placement]: given the eligible nodes, take as many as possible up to `maxNodes` (a
    /// bigger world trains faster), or nothing below `minNodes`.
    /// - GPU jobs prefer a homogeneous group (same GPU model and count): synchronous data parallel
    ///   runs at the pace of its slowest rank, so 3 A100 nodes usually beat 3 A100 + 1 T4. The group
    ///   that gives the most nodes (up to max) wins; among equals the smallest group (best fit, which
    ///   keeps big pools whole for big jobs), then the lowest node id. When no single group reaches
    ///   `minNodes` the job takes a mixed set rather than wait.
    /// - CPU jobs take nodes without GPUs first, so GPU nodes stay free for GPU jobs.
    /// - Ties break by node id, so placements are deterministic.
    public static func choosePlacement(eligible: [SchedulerNode], requirements req: JobRequirements) -> [String]? {
        guard req.minNodes >= 1, eligible.count >= req.minNodes else { return nil }
        if req.gpusPerNode == 0 {
            let ordered = eligible.sorted { ($0.gpus, $0.id) < ($1.gpus, $1.id) }
            return ordered.prefix(req.maxNodes).map(\.id)
        }
        struct Shape: Hashable { var model: String; var gpus: Int }
        let groups = Dictionary(grouping: eligible) { Shape(model: $0.gpuModel, gpus: $0.gpus) }
            .values
            .map { $0.map(\.id).sorted() }
            .filter { $0.count >= req.minNodes }
        let best = groups.min { a, b in
            let (ta, tb) = (min(a.count, req.maxNodes), min(b.count, req.maxNodes))
            if ta != tb { return ta > tb }
            if a.count != b.count { return a.count < b.count }
            return a[0] < b[0]
        }
        if let best { return Array(best.prefix(req.maxNodes)) }
        return Array(eligible.map(\.id).sorted().prefix(req.maxNodes))
    }

    /// "2 nodes with 1 GPU and labels zone=a", for waiting reasons.
    static func describe(_ req: JobRequirements) -> String {
        func count(_ n: Int, _ noun: String) -> String { "\(n) \(noun)\(n == 1 ? "" : "s")" }
        var with: [String] = []
        if req.gpusPerNode > 0 { with.append(count(req.gpusPerNode, "GPU")) }
        if req.slotsPerNode > 1 { with.append(count(req.slotsPerNode, "slot")) }
        if !req.labels.isEmpty {
            with.append("labels " + req.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
                .joined(separator: ","))
        }
        return count(req.minNodes, "node") + (with.isEmpty ? "" : " with " + with.joined(separator: " and "))
    }
}
