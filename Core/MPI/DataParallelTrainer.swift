import NebulaEngine

/// One data-parallel epoch's figures (global: all ranks together).
public struct DataParallelEpochReport: Sendable, Equatable, CustomStringConvertible {
    /// 1-based, counting every epoch this trainer ran.
    public var epoch: Int
    /// Mean training loss over the epoch's samples on all ranks.
    public var loss: Float
    /// Samples over all ranks.
    public var samples: Int
    public var ranks: Int
    public var seconds: Double
    /// The learning rate of the epoch's last step.
    public var learningRate: Float
    /// Samples per second over all ranks together.
    public var samplesPerSecond: Double { seconds > 0 ? Double(samples) / seconds : 0 }

    public var description: String {
        "epoch \(epoch): loss \(loss), \(Int(samplesPerSecond.rounded())) samples/s on \(ranks) ranks, lr \(learningRate)"
    }
}

/// Synchronous data-parallel training (PyTorch DDP / Horovod semantics, CPU): every rank holds a
/// replica of the model; each step, every rank runs forward and backward on its own part of the global
/// batch, the gradients are averaged over the ranks through a `FusionBuffer` (weighted by sample
/// counts, Note [Weighted average]), and every rank applies the same optimizer step to the same
/// averaged gradients, so the replicas stay identical without ever exchanging parameters again.
/// `init` broadcasts rank 0's initial parameters, so replicas start identical even when their
/// initialisation differed.
///
/// Note [Global batch equivalence]: `options.batchSize` is the batch *per rank* (as in DDP); the
/// global batch is batchSize × size. An epoch shuffles the sample indices exactly as `Trainer` does (the
/// same seeded permutation on every rank), cuts them into global batches, and rank r takes the r-th of
/// `size` near-equal contiguous slices of each. So N ranks at batch b follow, step for step, the
/// trajectory of one `Trainer` at batch N·b over the same samples, up to float rounding; the MPI tests
/// check that.
///
/// With `rankBatchSizes` (Note [Per-rank batch sizes]) ranks take unequal parts: the global batch is
/// B = Σ b_r, and rank r takes the slice [count·P_r / B, count·P_{r+1} / B) of a global batch of
/// `count` samples, P_r = b_0 + … + b_{r−1}: exactly b_r samples of a full batch, and a share
/// proportional to b_r of the last, shorter one. The averaging is weighted by sample counts (Note
/// [Weighted average]), so the step is still the mean over the global batch, and the trajectory is one
/// `Trainer`'s at batch B.
///
/// Note [Per-rank batch sizes]: a mixed placement gives the ranks on GPU nodes a larger local batch
/// than those on CPU nodes (`nebula submit --gpu-batch-size`), so that a step takes about as long
/// everywhere. Every rank must pass the same list (it fixes who takes which samples).
///
/// Overlap: by default (`overlap: true`) backward and the gradient allreduce overlap (Note [Overlapped
/// reduction] in FusionBuffer.swift); `overlap: false` reduces after backward with blocking calls. Both
/// give the same averages (up to the order of additions inside MPI); every rank must choose the same.
///
/// Drive it from one thread. With `MPIAllreduceBackend`, run the loop on the MPI thread
/// (Note [Training on the MPI thread]). Every rank must call `step`/`trainEpoch` the same number of
/// times (they are collective).
public final class DataParallelTrainer<L: Loss> where L.Target: BatchGatherable {
    public let model: any Layer
    public let loss: L
    public let optimizer: any Optimizer
    public let backend: any AllreduceBackend
    public var options: TrainingOptions
    public let fusion: FusionBuffer
    /// Whether backward overlaps the gradient allreduce.
    public let overlap: Bool
    /// Every rank's local batch size, or nil for `options.batchSize` everywhere (Note [Per-rank batch sizes]).
    public let rankBatchSizes: [Int]?
    public private(set) var epochsCompleted = 0
    public private(set) var batchesCompleted = 0
    private var rng: SeededGenerator
    private var order: [Int] = []
    private var xBatch = Tensor.emptyBatch()
    private var yBatch = L.Target.emptyBatch()
    private var gradient = Tensor(zeros: [0])

    /// Broadcasts rank 0's parameter values to every rank (collective). `rankBatchSizes`, when given,
    /// has one positive entry per rank and replaces `options.batchSize` (Note [Per-rank batch sizes]).
    public init(model: any Layer, loss: L, optimizer: any Optimizer, backend: any AllreduceBackend,
                options: TrainingOptions = TrainingOptions(), bucketCapBytes: Int = defaultBucketCapBytes,
                segmentBytes: Int? = defaultFusionSegmentBytes, wire: FusionBuffer.WireFormat = .float32,
                overlap: Bool = true, rankBatchSizes: [Int]? = nil) throws {
        if let sizes = rankBatchSizes {
            precondition(sizes.count == backend.size && sizes.allSatisfy { $0 > 0 },
                         "rankBatchSizes needs one positive batch size per rank (\(backend.size)), got \(sizes)")
        }
        self.model = model
        self.loss = loss
        self.optimizer = optimizer
        self.backend = backend
        self.options = options
        self.overlap = overlap
        self.rankBatchSizes = rankBatchSizes
        rng = SeededGenerator(seed: options.seed)
        fusion = FusionBuffer(for: optimizer.parameters, capBytes: bucketCapBytes, segmentBytes: segmentBytes, wire: wire)
        let all = model.parameters
        try FusionBuffer(for: all, capBytes: bucketCapBytes, segmentBytes: segmentBytes)
            .broadcastValues(all, root: 0, backend: backend)
    }

    /// One synchronous step on this rank's local batch (which may be empty): forward, backward,
    /// gradient averaging over all ranks, optional clipping, optimizer step. Collective. Returns the
    /// global batch; when no rank had samples, nothing is updated.
    @discardableResult
    public func step(_ x: Tensor, _ y: L.Target) throws -> GlobalBatch {
        precondition(x.rows == y.sampleCount, "\(x.rows) feature rows but \(y.sampleCount) targets")
        if x.rows == 0 { return try update(samples: 0, lossSum: 0) }
        let indices = Array(0..<x.rows)
        indices.withUnsafeBufferPointer { idx in
            x.gather(idx, into: &xBatch)
            y.gather(idx, into: &yBatch)
        }
        return try localStep(samples: x.rows)
    }

    /// One pass over the data set, which every rank holds in full (Note [Global batch equivalence]).
    /// Collective; the report's loss and sample count are global.
    public func trainEpoch(_ x: Tensor, _ y: L.Target) throws -> DataParallelEpochReport {
        let n = x.rows
        precondition(y.sampleCount == n, "\(n) feature rows but \(y.sampleCount) targets")
        if order.count != n { order = Array(0..<n) } else { for i in 0..<n { order[i] = i } }
        if options.shuffle { order.withUnsafeMutableBufferPointer { Shuffle.permute($0, using: &rng) } }
        if let s = options.schedule, options.scheduleUnit == .epoch {
            optimizer.learningRate = s.learningRate(at: epochsCompleted)
        }
        let clock = ContinuousClock()
        let start = clock.now
        let ranks = backend.size, rank = backend.rank
        // P_r and P_{r+1} over B (Note [Global batch equivalence]); equal batches give r and r + 1 over size.
        let sizes = rankBatchSizes ?? [Int](repeating: 1, count: ranks)
        let global = rankBatchSizes.map { $0.reduce(0, +) } ?? options.batchSize * ranks
        let weightTotal = sizes.reduce(0, +)
        let below = sizes[..<rank].reduce(0, +), upTo = below + sizes[rank]
        var lossSum: Double = 0, samples = 0
        var first = 0
        while first < n {
            let count = min(global, n - first)
            // This rank's slice of the global batch: [count·P_r/B, count·P_{r+1}/B).
            let lo = first + count * below / weightTotal, hi = first + count * upTo / weightTotal
            if let s = options.schedule, options.scheduleUnit == .batch {
                optimizer.learningRate = s.learningRate(at: batchesCompleted)
            }
            let batch: GlobalBatch
            if hi > lo {
                order.withUnsafeBufferPointer { p in
                    let idx = UnsafeBufferPointer(rebasing: p[lo..<hi])
                    x.gather(idx, into: &xBatch)
                    y.gather(idx, into: &yBatch)
                }
                batch = try localStep(samples: hi - lo)
            } else {
                batch = try update(samples: 0, lossSum: 0)
            }
            lossSum += batch.lossSum
            samples += batch.samples
            first += count
        }
        let elapsed = clock.now - start
        epochsCompleted += 1
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        return DataParallelEpochReport(epoch: epochsCompleted, loss: samples > 0 ? Float(lossSum / Double(samples)) : .nan,
                                       samples: samples, ranks: ranks, seconds: seconds,
                                       learningRate: optimizer.learningRate)
    }

    /// Runs `options.epochs` epochs, calling `onEpoch` after each. Collective.
    @discardableResult
    public func fit(_ x: Tensor, _ y: L.Target, onEpoch: (DataParallelEpochReport) -> Void = { _ in }) throws
        -> [DataParallelEpochReport]
    {
        var reports: [DataParallelEpochReport] = []
        for _ in 0..<options.epochs {
            let r = try trainEpoch(x, y)
            reports.append(r)
            onEpoch(r)
        }
        return reports
    }

    /// Forward, loss and backward of the gathered local batch, then the collective update.
    private func localStep(samples: Int) throws -> GlobalBatch {
        optimizer.zeroGrad()
        let output = model.forward(xBatch, training: true)
        let value = loss.evaluate(output, yBatch, gradient: &gradient)
        let lossSum = Double(value) * Double(samples)
        let parameters = optimizer.parameters
        let batch: GlobalBatch
        if overlap {
            // Note [Overlapped reduction]: buckets start while backward still runs.
            try fusion.beginPass(parameters, samples: samples, lossSum: lossSum, backend: backend)
            let fusion = self.fusion
            model.backwardParameters(gradient) { fusion.gradientsReady($0) }
            batch = try fusion.finishPass()
        } else {
            model.backwardParameters(gradient)
            batch = try fusion.averageGradients(parameters, samples: samples, lossSum: lossSum, backend: backend)
        }
        return try apply(batch)
    }

    /// A step to which this rank contributes no samples (it still takes part in every reduction, in the
    /// same form as the other ranks: blocking or non-blocking).
    private func update(samples: Int, lossSum: Double) throws -> GlobalBatch {
        optimizer.zeroGrad()
        let parameters = optimizer.parameters
        if overlap {
            try fusion.beginPass(parameters, samples: samples, lossSum: lossSum, backend: backend)
            return try apply(try fusion.finishPass())
        }
        return try apply(try fusion.averageGradients(parameters, samples: samples, lossSum: lossSum, backend: backend))
    }

    /// Clipping and the optimizer step on the averaged gradients.
    private func apply(_ batch: GlobalBatch) throws -> GlobalBatch {
        let parameters = optimizer.parameters
        guard batch.samples > 0 else { return batch }
        // Every rank holds the same averaged gradients here, so clipping and the step agree everywhere.
        if let c = options.clipNorm { clipGradientNorm(parameters, maxNorm: c) }
        optimizer.step()
        batchesCompleted += 1
        return batch
    }
}
