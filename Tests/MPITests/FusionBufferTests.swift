import NebulaEngine
import NebulaMPI
import Testing

/// The data-parallel layer without MPI: a world of one, and simulated ranks on threads.
@Suite("Fusion buffer and data-parallel trainer (no MPI)")
struct FusionBufferTests {
    /// Rank r's gradient of parameter p at element i.
    static func gradient(_ r: Int, _ p: Int, _ i: Int) -> Float { Float(r + 1) * 0.5 + Float(i % 11) * 0.25 - Float(p) }

    static func parameters(_ sizes: [Int], rank: Int) -> [Parameter] {
        sizes.enumerated().map { p, n in
            let q = Parameter("p\(p)", Tensor(zeros: [n]))
            q.grad = Tensor(shape: [n], storage: (0..<n).map { gradient(rank, p, $0) })
            return q
        }
    }

    /// Σ_r n_r·g_r / Σ_r n_r, in Double.
    static func expected(_ sizes: [Int], counts: [Int]) -> [[Double]] {
        let total = Double(counts.reduce(0, +))
        return sizes.enumerated().map { p, n in
            (0..<n).map { i in
                counts.enumerated().reduce(0.0) { $0 + Double($1.element) * Double(gradient($1.offset, p, i)) } / total
            }
        }
    }

    struct Layout: Sendable, CustomTestStringConvertible {
        var capBytes: Int
        var segmentBytes: Int?
        var testDescription: String { "cap \(capBytes) B, segment \(segmentBytes.map { "\($0) B" } ?? "whole bucket")" }
    }

    static let sizes = [5, 1, 0, 700, 33, 2]
    static let layouts = [Layout(capBytes: defaultBucketCapBytes, segmentBytes: nil),
                          Layout(capBytes: 256, segmentBytes: nil),  // several buckets, one larger than the cap
                          Layout(capBytes: 256, segmentBytes: 36)]   // segments cut through parameters

    @Test(arguments: [[3, 5], [3, 5, 0], [2, 2, 2, 1]], layouts)
    func weightedAverageOverSimulatedRanks(counts: [Int], layout: Layout) throws {
        let group = SimulatedGroup(size: counts.count)
        let results = try group.run { rank, backend in
            let params = Self.parameters(Self.sizes, rank: rank)
            let fusion = FusionBuffer(for: params, capBytes: layout.capBytes, segmentBytes: layout.segmentBytes)
            let total = try fusion.averageGradients(params, samples: counts[rank], lossSum: Double(rank) * 10,
                                                    backend: backend)
            return (total, params.map(\.grad.storage))
        }
        let want = Self.expected(Self.sizes, counts: counts)
        for (total, grads) in results {
            #expect(total.samples == counts.reduce(0, +))
            #expect(total.lossSum == Double((0..<counts.count).reduce(0, +) * 10))
            for (g, w) in zip(grads, want) {
                for (a, b) in zip(g, w) { #expect(abs(Double(a) - b) <= 1e-6 * max(abs(b), 1), "\(a) vs \(b)") }
            }
        }
    }

    /// Note [Overlapped reduction]: the pass API gives the blocking path's averages, whether the
    /// parameters are reported in backward order, in an order against the plan, or not at all (a rank
    /// without samples runs no backward).
    @Test(arguments: [[3, 5], [3, 5, 0], [2, 2, 2, 1]], layouts)
    func overlappedPassGivesTheWeightedAverage(counts: [Int], layout: Layout) throws {
        let group = SimulatedGroup(size: counts.count)
        let results = try group.run { rank, backend in
            let params = Self.parameters(Self.sizes, rank: rank)
            let fusion = FusionBuffer(for: params, capBytes: layout.capBytes, segmentBytes: layout.segmentBytes)
            try fusion.beginPass(params, samples: counts[rank], lossSum: Double(rank) * 10, backend: backend)
            switch rank % 3 {
            case 0: for p in params.reversed() { fusion.gradientsReady([p]) }      // backward order
            case 1: fusion.gradientsReady(Array(params.prefix(3)))                 // against the plan, and partly
            default: break                                                         // none: finishPass starts all
            }
            let total = try fusion.finishPass()
            return (total, params.map(\.grad.storage))
        }
        let want = Self.expected(Self.sizes, counts: counts)
        for (total, grads) in results {
            #expect(total.samples == counts.reduce(0, +))
            #expect(total.lossSum == Double((0..<counts.count).reduce(0, +) * 10))
            for (g, w) in zip(grads, want) {
                for (a, b) in zip(g, w) { #expect(abs(Double(a) - b) <= 1e-6 * max(abs(b), 1), "\(a) vs \(b)") }
            }
        }
    }

    /// Note [Float16 wire format]: within Float16 rounding of the exact weighted average (each element
    /// rounded once when packed, then once per addition), blocking and overlapped; the counts and the
    /// loss stay exact.
    @Test(arguments: [[3, 5], [3, 5, 0], [2, 2, 2, 1]], [false, true])
    func float16WireIsCloseToTheExactAverage(counts: [Int], overlap: Bool) throws {
        let group = SimulatedGroup(size: counts.count)
        let results = try group.run { rank, backend in
            let params = Self.parameters(Self.sizes, rank: rank)
            // + 1/3: not a Float16 number, so the rounding on the wire shows.
            for p in params { p.grad = Tensor(shape: p.grad.shape, storage: p.grad.storage.map { $0 + Self.third }) }
            let fusion = FusionBuffer(for: params, capBytes: 256, segmentBytes: 36, wire: .float16)
            let total: GlobalBatch
            if overlap {
                try fusion.beginPass(params, samples: counts[rank], lossSum: 2.5, backend: backend)
                for p in params.reversed() { fusion.gradientsReady([p]) }
                total = try fusion.finishPass()
            } else {
                total = try fusion.averageGradients(params, samples: counts[rank], lossSum: 2.5, backend: backend)
            }
            return (total, params.map(\.grad.storage))
        }
        let want = Self.expected(Self.sizes, counts: counts).map { $0.map { $0 + Double(Self.third) } }
        // 2⁻¹¹ relative per rounding, one for packing and one per addition (size − 1), on values ≤ 6.
        let bound = Double(counts.count) * 0x1p-11 * 6
        var worst = 0.0, anyInexact = false
        for (total, grads) in results {
            #expect(total.samples == counts.reduce(0, +))
            #expect(total.lossSum == 2.5 * Double(counts.count))
            #expect(grads == results[0].1)  // every rank got the same Float16 sums
            for (g, w) in zip(grads, want) {
                for (a, b) in zip(g, w) {
                    worst = max(worst, abs(Double(a) - b))
                    if Double(a) != b && abs(Double(a) - b) > 1e-6 * max(abs(b), 1) { anyInexact = true }
                }
            }
        }
        #expect(worst <= bound, "largest error \(worst) above the Float16 bound \(bound)")
        #expect(anyInexact, "Float16 path gave Float32-exact results: did the wire really carry halves?")
    }

    static let third: Float = 1.0 / 3

    @Test func noSamplesAnywhereGivesZeroGradients() throws {
        let results = try SimulatedGroup(size: 2).run { rank, backend in
            let params = Self.parameters([4, 3], rank: rank)
            let total = try FusionBuffer(for: params).averageGradients(params, samples: 0, backend: backend)
            return (total.samples, params.flatMap(\.grad.storage))
        }
        for (samples, grads) in results {
            #expect(samples == 0)
            #expect(grads.allSatisfy { $0 == 0 })
        }
    }

    @Test func broadcastCopiesTheRootsValues() throws {
        let results = try SimulatedGroup(size: 3).run { rank, backend in
            let params = (0..<3).map { p in
                Parameter("p\(p)", Tensor(shape: [10 + p], storage: (0..<(10 + p)).map { Float(rank * 100 + p + $0) }))
            }
            try FusionBuffer(for: params, capBytes: 48, segmentBytes: 20).broadcastValues(params, root: 1, backend: backend)
            return params.map(\.value.storage)
        }
        let want = (0..<3).map { p in (0..<(10 + p)).map { Float(100 + p + $0) } }
        for r in results { #expect(r == want) }
    }

    @Test func worldOfOneIsTheSingleProcessTrainerExactly() throws {
        for kind in Equivalence.OptimizerKind.allCases {
            let reference = Equivalence.reference(ranks: 1, kind)
            let local = try Equivalence.distributed(LocalAllreduceBackend(), kind)
            #expect(local.parameters == reference.parameters, "\(kind)")
            #expect(local.losses == reference.losses, "\(kind)")
        }
    }

    @Test(arguments: [2, 3], Equivalence.OptimizerKind.allCases)
    func simulatedRanksFollowTheGlobalBatchTrajectory(ranks: Int, kind: Equivalence.OptimizerKind) throws {
        let reference = Equivalence.reference(ranks: ranks, kind)
        for overlap in [false, true] {
            let results = try SimulatedGroup(size: ranks).run { _, backend in
                try Equivalence.distributed(backend, kind, capBytes: 512, segmentBytes: 200, overlap: overlap)
            }
            for r in results {
                #expect(r.parameters == results[0].parameters)  // replicas stay identical
                let err = Equivalence.maxError(r.parameters, reference.parameters)
                #expect(err < 1e-5, "overlap \(overlap): parameters differ by \(err)")
                #expect(Equivalence.maxError(r.losses, reference.losses) < 1e-5)
            }
        }
    }

    /// Note [Per-rank batch sizes]: unequal local batches follow one process at their sum.
    @Test(arguments: [[4, 8], [3, 9, 1]])
    func unequalLocalBatchesFollowTheSummedBatch(batches: [Int]) throws {
        let reference = Equivalence.reference(ranks: batches.count, .adam, batch: batches.reduce(0, +))
        let results = try SimulatedGroup(size: batches.count).run { _, backend in
            try Equivalence.distributed(backend, .adam, capBytes: 512, segmentBytes: 200, rankBatchSizes: batches)
        }
        for r in results {
            #expect(r.parameters == results[0].parameters)  // replicas stay identical
            let err = Equivalence.maxError(r.parameters, reference.parameters)
            #expect(err < 1e-5, "parameters differ by \(err)")
            #expect(Equivalence.maxError(r.losses, reference.losses) < 1e-5)
        }
    }
}
