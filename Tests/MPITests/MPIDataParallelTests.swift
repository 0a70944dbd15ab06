import NebulaEngine
import NebulaMPI
import Testing

extension MPIWorldTests {
    /// The data-parallel layer over MPI. Each rank computes the single-process reference itself (no MPI)
    /// and compares.
    @Suite("Data parallel over MPI")
    struct DataParallel {
        var mpi: MPIRuntime { TestWorld.mpi }

        /// Rank 0 has 3 samples, rank 1 has 5 (rank r: 3 + 2r).
        @Test(arguments: FusionBufferTests.layouts)
        func weightedAverageWithUnequalCounts(layout: FusionBufferTests.Layout) async throws {
            try await TestWorld.enter()
            let sizes = FusionBufferTests.sizes
            let (total, grads) = try await mpi.run { comm in
                let params = FusionBufferTests.parameters(sizes, rank: comm.rank)
                let fusion = FusionBuffer(for: params, capBytes: layout.capBytes, segmentBytes: layout.segmentBytes)
                let total = try fusion.averageGradients(params, samples: 3 + 2 * comm.rank, lossSum: 1.5,
                                                        backend: MPIAllreduceBackend(TestWorld.mpi))
                return (total, params.map(\.grad.storage))
            }
            let counts = (0..<mpi.size).map { 3 + 2 * $0 }
            #expect(total.samples == counts.reduce(0, +))
            #expect(total.lossSum == 1.5 * Double(mpi.size))
            if mpi.size == 1 {
                // Note [World of one]: untouched.
                #expect(grads == FusionBufferTests.parameters(sizes, rank: 0).map(\.grad.storage))
            }
            for (g, w) in zip(grads, FusionBufferTests.expected(sizes, counts: counts)) {
                for (a, b) in zip(g, w) { #expect(abs(Double(a) - b) <= 1e-6 * max(abs(b), 1), "\(a) vs \(b)") }
            }
        }

        /// Gradients larger than the bucket cap (and one larger than the default 25 MiB cap), weighted by
        /// r + 1; values are small integers times exact weights, so the check is tight.
        @Test(arguments: [(sizes: [3, 70_000, 1, 9_000], cap: 64 << 10, segment: Int?.some(16 << 10)),
                          (sizes: [3, 70_000, 1, 9_000], cap: 64 << 10, segment: nil),
                          (sizes: [7_000_001, 5], cap: defaultBucketCapBytes, segment: defaultFusionSegmentBytes)])
        func gradientsLargerThanTheBucketCap(sizes: [Int], cap: Int, segment: Int?) async throws {
            try await TestWorld.enter()
            let (buckets, worst) = try await mpi.run { comm in
                let r = comm.rank
                let params = sizes.map { n in
                    let p = Parameter("p", Tensor(zeros: [n]))
                    p.grad = Tensor(shape: [n], storage: (0..<n).map { Float((r + 1) * ($0 % 7)) })
                    return p
                }
                let fusion = FusionBuffer(for: params, capBytes: cap, segmentBytes: segment)
                try fusion.averageGradients(params, samples: r + 1, backend: MPIAllreduceBackend(TestWorld.mpi))
                // Σ (r+1)² / Σ (r+1) = (2s + 1) / 3 for s ranks.
                let s = Float(comm.size), factor = (2 * s + 1) / 3
                var worst: Float = 0
                for p in params {
                    for (i, g) in p.grad.storage.enumerated() {
                        worst = max(worst, abs(g - factor * Float(i % 7)) / max(1, factor * Float(i % 7)))
                    }
                }
                return (fusion.buckets.count, worst)
            }
            #expect(buckets == planGradientBuckets(parameterSizes: sizes, capBytes: cap).count)
            #expect(worst < 1e-6)
        }

        /// Note [Global batch equivalence]: N ranks at batch b end where one process at batch N·b ends,
        /// with backward overlapping non-blocking bucket allreduces (Note [Overlapped reduction]; small
        /// buckets and segments, so several are in flight) and with blocking reduction after backward.
        @Test(arguments: Equivalence.OptimizerKind.allCases, [true, false])
        func mlpMatchesTheSingleProcessGlobalBatch(kind: Equivalence.OptimizerKind, overlap: Bool) async throws {
            try await TestWorld.enter()
            let size = mpi.size
            let reference = Equivalence.reference(ranks: size, kind)
            let mine = try await mpi.run { _ in
                try Equivalence.distributed(MPIAllreduceBackend(TestWorld.mpi), kind, capBytes: 512, segmentBytes: 256,
                                            overlap: overlap)
            }
            if overlap && size > 1 {
                // The output layer's buckets went out while the first layer's backward still had to run.
                #expect(mine.segmentsStartedEarly > 0, "no allreduce started during backward")
            }
            if size == 1 {
                #expect(mine.parameters == reference.parameters)
                #expect(mine.losses == reference.losses)
            }
            let err = Equivalence.maxError(mine.parameters, reference.parameters)
            #expect(err < 1e-5, "rank \(mpi.rank): parameters differ from the single process by \(err)")
            #expect(Equivalence.maxError(mine.losses, reference.losses) < 1e-5, "\(mine.losses) vs \(reference.losses)")
            // The replicas are bit-identical: the elementwise max and min over ranks are this rank's values.
            #expect(try await mpi.allreduce(mine.parameters, op: .max) == mine.parameters)
            #expect(try await mpi.allreduce(mine.parameters.map { -$0 }, op: .max) == mine.parameters.map { -$0 })
        }

        /// The same from a training loop on its own thread: every allreduce, test and wait hops to the
        /// MPI thread.
        @Test(arguments: [true, false])
        func mlpFromAPlainThread(overlap: Bool) async throws {
            try await TestWorld.enter()
            let reference = Equivalence.reference(ranks: mpi.size, .adam)
            let mine = try await onPlainThread(name: "trainer") {
                try Equivalence.distributed(MPIAllreduceBackend(TestWorld.mpi), .adam, capBytes: 1024, segmentBytes: 300,
                                            overlap: overlap)
            }
            #expect(Equivalence.maxError(mine.parameters, reference.parameters) < 1e-5)
        }

        /// Note [Float16 wire format] over MPI's user-defined Float16 sum: the weighted average of
        /// gradients that are not Float16 numbers comes back within Float16 rounding, blocking and
        /// overlapped, the same on every rank; counts and loss exact.
        @Test(arguments: [false, true])
        func float16WeightedAverage(overlap: Bool) async throws {
            try await TestWorld.enter()
            let sizes = FusionBufferTests.sizes
            let (total, grads) = try await mpi.run { comm in
                let params = FusionBufferTests.parameters(sizes, rank: comm.rank)
                for p in params { p.grad = Tensor(shape: p.grad.shape, storage: p.grad.storage.map { $0 + FusionBufferTests.third }) }
                let fusion = FusionBuffer(for: params, capBytes: 256, segmentBytes: 36, wire: .float16)
                let backend = MPIAllreduceBackend(TestWorld.mpi)
                let total: GlobalBatch
                if overlap {
                    try fusion.beginPass(params, samples: 3 + 2 * comm.rank, lossSum: 1.5, backend: backend)
                    for p in params.reversed() { fusion.gradientsReady([p]) }
                    total = try fusion.finishPass()
                } else {
                    total = try fusion.averageGradients(params, samples: 3 + 2 * comm.rank, lossSum: 1.5, backend: backend)
                }
                return (total, params.flatMap(\.grad.storage))
            }
            let counts = (0..<mpi.size).map { 3 + 2 * $0 }
            #expect(total.samples == counts.reduce(0, +))
            #expect(total.lossSum == 1.5 * Double(mpi.size))
            let want = FusionBufferTests.expected(sizes, counts: counts).flatMap { $0 }.map { $0 + Double(FusionBufferTests.third) }
            let worst = zip(grads, want).reduce(0.0) { max($0, abs(Double($1.0) - $1.1)) }
            if mpi.size == 1 {
                #expect(worst < 1e-6)  // Note [World of one]: nothing travels, nothing is rounded
            } else {
                #expect(worst <= Double(mpi.size) * 0x1p-11 * 6, "largest error \(worst)")
                #expect(worst > 1e-6, "Float16 wire gave Float32-exact results: were halves sent?")
            }
            #expect(try await mpi.allreduce(grads, op: .max) == grads)
            #expect(try await mpi.allreduce(grads.map { -$0 }, op: .max) == grads.map { -$0 })
        }

        /// A whole training run with the Float16 wire ends close to the Float32 trajectory (Float16
        /// tolerance, accumulated over 3 epochs of steps), and the replicas stay identical.
        @Test func mlpWithFloat16WireStaysCloseToFloat32() async throws {
            try await TestWorld.enter()
            let reference = Equivalence.reference(ranks: mpi.size, .adam)
            let mine = try await mpi.run { _ in
                try Equivalence.distributed(MPIAllreduceBackend(TestWorld.mpi), .adam, capBytes: 512, segmentBytes: 256,
                                            wire: .float16)
            }
            let err = Equivalence.maxError(mine.parameters, reference.parameters)
            #expect(err < 2e-2, "rank \(mpi.rank): Float16 wire drifted \(err) from the Float32 trajectory")
            #expect(Equivalence.maxError(mine.losses, reference.losses) < 1e-2, "\(mine.losses) vs \(reference.losses)")
            #expect(try await mpi.allreduce(mine.parameters, op: .max) == mine.parameters)
        }

        /// Note [Per-rank batch sizes]: rank 0 takes 1 sample per step, rank r > 0 takes 4·(r + 1)
        /// (unequal local batches); the run follows one process at the summed batch, overlapped and
        /// blocking. At 2 and 3 ranks the last global batch of each epoch (5 and 11 rows) leaves rank 0
        /// without samples, so its empty step has to meet the others' non-blocking reductions.
        @Test(arguments: [true, false])
        func unequalLocalBatchesMatchTheSummedBatch(overlap: Bool) async throws {
            try await TestWorld.enter()
            let batches = (0..<mpi.size).map { $0 == 0 ? 1 : 4 * ($0 + 1) }
            let reference = Equivalence.reference(ranks: mpi.size, .sgdMomentum, batch: batches.reduce(0, +))
            let mine = try await mpi.run { _ in
                try Equivalence.distributed(MPIAllreduceBackend(TestWorld.mpi), .sgdMomentum, capBytes: 512, segmentBytes: 256,
                                            overlap: overlap, rankBatchSizes: batches)
            }
            let err = Equivalence.maxError(mine.parameters, reference.parameters)
            #expect(err < 1e-5, "rank \(mpi.rank): parameters differ from one process at batch \(batches.reduce(0, +)) by \(err)")
            #expect(Equivalence.maxError(mine.losses, reference.losses) < 1e-5, "\(mine.losses) vs \(reference.losses)")
            #expect(try await mpi.allreduce(mine.parameters, op: .max) == mine.parameters)
        }
    }
}
