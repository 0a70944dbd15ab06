import NebulaScheduler

func node(_ id: String, gpus: Int = 0, model: String = "", labels: [String: String] = [:], slots: Int = 1,
          responding: Bool = true, drained: Bool = false) -> SchedulerNode {
    SchedulerNode(id: id, responding: responding, drained: drained, gpus: gpus, gpuModel: model, cpus: 8,
                  labels: labels, slots: slots)
}

func job(_ id: String, priority: Int = 0, seq: Int64, min: Int = 1, max: Int? = nil, gpus: Int = 0,
         labels: [String: String] = [:], slots: Int = 1, maxRestarts: Int = 3) -> SchedulerJob {
    SchedulerJob(id: id, priority: priority, sequence: seq,
                 requirements: JobRequirements(minNodes: min, maxNodes: max ?? min, gpusPerNode: gpus,
                                               labels: labels, slotsPerNode: slots),
                 maxRestarts: maxRestarts)
}

/// A scheduler with these nodes added at time 0.
func scheduler(_ nodes: [SchedulerNode], backfill: Bool = true) -> Scheduler {
    var s = Scheduler(configuration: .init(nodeCoolDown: .seconds(60), backfill: backfill))
    for n in nodes { _ = s.nodeChanged(n, now: 0) }
    return s
}

struct Step: Hashable, CustomStringConvertible {
    var job: String
    var from: JobState?
    var to: JobState
    var description: String { "\(job): \(from?.rawValue ?? "new") -> \(to.rawValue)" }
}

extension Array where Element == SchedulerDirective {
    var transitions: [Step] {
        compactMap {
            if case let .transition(id, from, to, _) = $0 { return Step(job: id, from: from, to: to) }
            return nil
        }
    }

    var launches: [String: [String]] {
        var out: [String: [String]] = [:]
        for d in self { if case let .launch(id, _, nodes) = d { out[id] = nodes } }
        return out
    }

    func launch(of id: String) -> (attempt: Int, nodes: [String])? {
        for d in self { if case let .launch(j, a, nodes) = d, j == id { return (a, nodes) } }
        return nil
    }

    var stops: [String] {
        compactMap { if case let .stop(id, _, _) = $0 { return id }; return nil }
    }

    func reason(of id: String, to state: JobState) -> String? {
        for d in self { if case let .transition(j, _, to, r) = d, j == id, to == state { return r } }
        return nil
    }
}

/// SplitMix64: a small seeded generator, so randomized tests replay exactly.
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
