/// Samples that a training loop can gather into batches by row index: features (`Tensor`, one sample
/// per row) and targets (`Tensor` for regression, `[Int]` class labels).
public protocol BatchGatherable {
    /// The number of samples.
    var sampleCount: Int { get }
    /// An empty batch buffer, for `gather(_:into:)` to fill.
    static func emptyBatch() -> Self
    /// Writes the samples at `indices`, in that order, into `batch`, reusing its storage when its size fits.
    func gather(_ indices: UnsafeBufferPointer<Int>, into batch: inout Self)
}

extension Tensor: BatchGatherable {
    public var sampleCount: Int { rows }
    public static func emptyBatch() -> Tensor { Tensor(zeros: [0]) }

    public func gather(_ indices: UnsafeBufferPointer<Int>, into batch: inout Tensor) {
        let c = columns, n = rows
        var shape = self.shape
        shape[0] = indices.count
        if batch.shape != shape { batch = Tensor(zeros: shape) }
        storage.withUnsafeBufferPointer { src in
            batch.storage.withUnsafeMutableBufferPointer { dst in
                var o = dst.baseAddress!
                for i in indices {
                    precondition(i >= 0 && i < n, "row \(i) out of range 0..<\(n)")
                    o.update(from: src.baseAddress! + i * c, count: c)
                    o += c
                }
            }
        }
    }
}

extension Array: BatchGatherable where Element == Int {
    public var sampleCount: Int { count }
    public static func emptyBatch() -> [Int] { [] }

    public func gather(_ indices: UnsafeBufferPointer<Int>, into batch: inout [Int]) {
        if batch.count != indices.count { batch = [Int](repeating: 0, count: indices.count) }
        withUnsafeBufferPointer { src in
            batch.withUnsafeMutableBufferPointer { dst in
                for (o, i) in indices.enumerated() { dst[o] = src[i] }
            }
        }
    }
}

/// Reproducible permutations from a `SeededGenerator`: Fisher–Yates (Durstenfeld), each draw in
/// 0..<bound by Lemire's multiply-high (bias ≤ bound/2⁶⁴). The same seed gives the same order on
/// every machine and toolchain, which the standard library's `shuffle(using:)` does not promise.
public enum Shuffle {
    public static func permute(_ a: UnsafeMutableBufferPointer<Int>, using rng: inout SeededGenerator) {
        var i = a.count
        while i > 1 {
            let j = Int(rng.next().multipliedFullWidth(by: UInt64(i)).high)
            i -= 1
            a.swapAt(i, j)
        }
    }

    /// A random permutation of 0..<n.
    public static func permutation(_ n: Int, using rng: inout SeededGenerator) -> [Int] {
        var p = Array(0..<n)
        p.withUnsafeMutableBufferPointer { permute($0, using: &rng) }
        return p
    }
}

/// What one unit of a learning-rate schedule is.
public enum ScheduleUnit: Sendable { case batch, epoch }

public struct TrainingOptions: Sendable {
    public var epochs: Int
    public var batchSize: Int
    /// Reshuffle the samples every epoch (from `seed`); false: fixed order.
    public var shuffle: Bool
    public var seed: UInt64
    /// Clip the gradients' global L2 norm to this before each step.
    public var clipNorm: Float?
    /// Sets the optimizer's learning rate before each batch or epoch (`scheduleUnit`).
    public var schedule: (any LearningRateSchedule)?
    public var scheduleUnit: ScheduleUnit

    public init(epochs: Int = 10, batchSize: Int = 256, shuffle: Bool = true, seed: UInt64 = 0, clipNorm: Float? = nil,
                schedule: (any LearningRateSchedule)? = nil, scheduleUnit: ScheduleUnit = .epoch) {
        precondition(epochs >= 0 && batchSize > 0, "epochs must be ≥ 0 and batch size > 0")
        self.epochs = epochs
        self.batchSize = batchSize
        self.shuffle = shuffle
        self.seed = seed
        self.clipNorm = clipNorm
        self.schedule = schedule
        self.scheduleUnit = scheduleUnit
    }
}

/// One epoch's figures, for progress output.
public struct EpochReport: Sendable, CustomStringConvertible {
    /// 1-based, counting every epoch this trainer ran.
    public var epoch: Int
    /// Mean training loss over the epoch's samples (each batch's mean weighted by its size).
    public var loss: Float
    public var samples: Int
    public var seconds: Double
    /// The learning rate of the epoch's last step.
    public var learningRate: Float
    public var samplesPerSecond: Double { seconds > 0 ? Double(samples) / seconds : 0 }

    public var description: String {
        "epoch \(epoch): loss \(loss), \(Int(samplesPerSecond.rounded())) samples/s, lr \(learningRate)"
    }
}

/// A single-process training loop: per epoch a seeded shuffle, then per batch gather → forward → loss →
/// backward → optional clipping → optimizer step. Batch buffers (features, targets, loss gradient, the
/// permutation) are allocated once and reused; with `FusedDense` layers a steady-state batch allocates
/// nothing of the batch's size (Note [Buffer reuse] in FusedDense.swift).
public final class Trainer<L: Loss> where L.Target: BatchGatherable {
    public let model: any Layer
    public let loss: L
    public let optimizer: any Optimizer
    public var options: TrainingOptions
    public private(set) var epochsCompleted = 0
    public private(set) var batchesCompleted = 0
    private var rng: SeededGenerator
    private var order: [Int] = []
    private var xBatch = Tensor.emptyBatch()
    private var yBatch = L.Target.emptyBatch()
    private var gradient = Tensor(zeros: [0])

    public init(model: any Layer, loss: L, optimizer: any Optimizer, options: TrainingOptions = TrainingOptions()) {
        self.model = model
        self.loss = loss
        self.optimizer = optimizer
        self.options = options
        rng = SeededGenerator(seed: options.seed)
    }

    /// Runs `options.epochs` epochs, calling `onEpoch` after each.
    @discardableResult
    public func fit(_ x: Tensor, _ y: L.Target, onEpoch: (EpochReport) -> Void = { _ in }) -> [EpochReport] {
        var reports: [EpochReport] = []
        for _ in 0..<options.epochs {
            let r = trainEpoch(x, y)
            reports.append(r)
            onEpoch(r)
        }
        return reports
    }

    /// One pass over the samples.
    public func trainEpoch(_ x: Tensor, _ y: L.Target) -> EpochReport {
        let n = x.rows
        precondition(y.sampleCount == n, "\(n) feature rows but \(y.sampleCount) targets")
        if order.count != n { order = Array(0..<n) } else { for i in 0..<n { order[i] = i } }
        if options.shuffle { order.withUnsafeMutableBufferPointer { Shuffle.permute($0, using: &rng) } }
        if let s = options.schedule, options.scheduleUnit == .epoch {
            optimizer.learningRate = s.learningRate(at: epochsCompleted)
        }
        let parameters = optimizer.parameters
        let clock = ContinuousClock()
        let start = clock.now
        var total: Double = 0
        var first = 0
        while first < n {
            let count = min(options.batchSize, n - first)
            order.withUnsafeBufferPointer { p in
                let idx = UnsafeBufferPointer(rebasing: p[first..<(first + count)])
                x.gather(idx, into: &xBatch)
                y.gather(idx, into: &yBatch)
            }
            if let s = options.schedule, options.scheduleUnit == .batch {
                optimizer.learningRate = s.learningRate(at: batchesCompleted)
            }
            optimizer.zeroGrad()
            let value = step()
            if let c = options.clipNorm { clipGradientNorm(parameters, maxNorm: c) }
            optimizer.step()
            total += Double(value) * Double(count)
            batchesCompleted += 1
            first += count
        }
        let elapsed = clock.now - start
        epochsCompleted += 1
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        return EpochReport(epoch: epochsCompleted, loss: n > 0 ? Float(total / Double(n)) : .nan, samples: n,
                           seconds: seconds, learningRate: optimizer.learningRate)
    }

    /// Forward, loss and backward of the gathered batch; the output tensor dies here, so the next
    /// batch's forward writes its buffers in place.
    private func step() -> Float {
        let output = model.forward(xBatch, training: true)
        let value = loss.evaluate(output, yBatch, gradient: &gradient)
        model.backwardParameters(gradient)
        return value
    }

    /// The model's outputs (evaluation mode) for every row of `x`, computed `batchSize` rows at a time.
    public func predict(_ x: Tensor, batchSize: Int = 1024) -> Tensor { model.predict(x, batchSize: batchSize) }

    /// The arg-max class of each row of the model's outputs.
    public func predictClasses(_ x: Tensor, batchSize: Int = 1024) -> [Int] {
        predict(x, batchSize: batchSize).argmaxRows()
    }

    /// The loss over all of `x` (evaluation mode).
    public func evaluate(_ x: Tensor, _ y: L.Target, batchSize: Int = 1024) -> Float {
        loss(predict(x, batchSize: batchSize), y).value
    }
}

extension Layer {
    /// Outputs (evaluation mode) for every row of `x`, `batchSize` rows per forward, into one [rows, outputs] tensor.
    public func predict(_ x: Tensor, batchSize: Int = 1024) -> Tensor {
        precondition(batchSize > 0, "batch size must be positive")
        let n = x.rows
        var batch = Tensor.emptyBatch()
        var result: [Float] = []
        var width = 0
        var indices = [Int](repeating: 0, count: min(batchSize, n))
        var first = 0
        while first < n {
            let count = min(batchSize, n - first)
            for i in 0..<count { indices[i] = first + i }
            indices.withUnsafeBufferPointer { x.gather(UnsafeBufferPointer(rebasing: $0[0..<count]), into: &batch) }
            let out = forward(batch, training: false)
            if result.isEmpty {
                width = out.columns
                result.reserveCapacity(n * width)
            }
            result.append(contentsOf: out.storage)
            first += count
        }
        return Tensor(shape: [n, width], storage: result)
    }
}

extension Tensor {
    /// The column index of each row's largest value (the first one on ties).
    public func argmaxRows() -> [Int] {
        let c = columns
        guard c > 0 else { return [Int](repeating: 0, count: rows) }
        return storage.withUnsafeBufferPointer { p in
            (0..<rows).map { r in
                var best = 0
                for j in 1..<c where p[r * c + j] > p[r * c + best] { best = j }
                return best
            }
        }
    }
}
