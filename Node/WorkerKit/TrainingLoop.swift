import Foundation
import NebulaDataset
import NebulaEngine
import NebulaMPI
import NebulaModel
import Synchronization

// Note [Steps per epoch across shards]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// Every rank must enter the same number of collectives. Shards differ in size by at most one row
// (Note [Shard assignment]), and the holdout taken from each may differ a little more, so the ranks
// agree on the step count of an epoch first: max over ranks of ceil(local rows / local batch), by an
// allreduce-max. A rank that runs out of rows in the last steps contributes an empty batch; the
// gradient average is weighted by sample counts (Note [Weighted average]), so an empty contribution
// changes nothing. With per-rank batch sizes (--gpu-batch-size) the shards are still equal in size, so
// a rank with a larger batch finishes its shard in fewer steps and then contributes empty batches until
// the epoch ends. Every row is still seen once per epoch and every step is exact, but the GPU rank's
// extra capacity is not used for the rest of the epoch: shards proportional to the local batches
// would be needed for that (not done yet).
// Each rank shuffles its own rows per epoch with seed ^ epoch ^ rank.
//
// Note [Resuming from a checkpoint]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// A checkpoint holds the parameters, the optimizer state and the epoch it was taken in. A resumed
// attempt may have another world size, so its shards are cut anew and a row position inside an
// epoch means nothing there: training restarts at the beginning of the checkpoint's epoch (the rows
// of that epoch seen before the checkpoint are seen again). Checkpoints default to epoch ends,
// where nothing is repeated.

/// What the training loop reports while it runs (read by the reporting task, written by the loop).
final class LoopTelemetry: Sendable {
    struct State {
        var pending: [StepMetrics] = []
        var collectiveSeq: UInt64 = 0
        var checkpoints: [(step: UInt64, epoch: Int, bytes: [UInt8])] = []
        var done = false
    }
    let state = Mutex(State())

    /// The loop ended: the reporter sends what is left and stops.
    func finish() { state.withLock { $0.done = true } }
    var isDone: Bool { state.withLock { $0.done } }

    func entered(_ seq: UInt64) { state.withLock { $0.collectiveSeq = seq } }
    func record(_ m: StepMetrics) { state.withLock { $0.pending.append(m) } }
    func checkpoint(step: UInt64, epoch: Int, bytes: [UInt8]) {
        state.withLock { $0.checkpoints.append((step, epoch, bytes)) }
    }
    func drain() -> (seq: UInt64, steps: [StepMetrics], checkpoints: [(step: UInt64, epoch: Int, bytes: [UInt8])]) {
        state.withLock { s in
            defer {
                s.pending.removeAll()
                s.checkpoints.removeAll()
            }
            return (s.collectiveSeq, s.pending, s.checkpoints)
        }
    }
}

/// Measures the time a rank spends in allreduce (the figure `nebula job show` reports per rank): the
/// blocking calls, and for non-blocking ones the time spent starting, testing and waiting (what the
/// rank could not overlap with backward). Forwards every operation (AllreduceBackend's defaults would
/// silently lose the overlap and the Float16 sum).
final class TimedBackend: AllreduceBackend {
    let inner: any AllreduceBackend
    private(set) var seconds = 0.0
    private let clock = ContinuousClock()

    /// Numbers every operation for the hang watchdog when given (builder candidates; training jobs
    /// report their step instead).
    let counter: CollectiveCounter?

    init(_ inner: any AllreduceBackend, counter: CollectiveCounter? = nil) {
        self.inner = inner
        self.counter = counter
    }

    var rank: Int { inner.rank }
    var size: Int { inner.size }

    func timed<T>(_ body: () throws -> T) rethrows -> T {
        let start = clock.now
        defer {
            let d = clock.now - start
            seconds += Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
        }
        return try body()
    }

    func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
        counter?.enter()
        try timed { try inner.allreduceSum(buffer) }
    }

    func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float16>) throws {
        counter?.enter()
        try timed { try inner.allreduceSum(buffer) }
    }

    func startAllreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws -> any PendingAllreduce {
        counter?.enter()
        return TimedRequest(try timed { try inner.startAllreduceSum(buffer) }, self)
    }

    func startAllreduceSum(_ buffer: UnsafeMutableBufferPointer<Float16>) throws -> any PendingAllreduce {
        counter?.enter()
        return TimedRequest(try timed { try inner.startAllreduceSum(buffer) }, self)
    }

    /// A request whose tests and waits count as allreduce time.
    final class TimedRequest: PendingAllreduce {
        let inner: any PendingAllreduce
        let owner: TimedBackend
        init(_ inner: any PendingAllreduce, _ owner: TimedBackend) {
            self.inner = inner
            self.owner = owner
        }
        func test() throws -> Bool { try owner.timed { try inner.test() } }
        func wait() throws { try owner.timed { try inner.wait() } }
    }

    func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int) throws {
        counter?.enter()
        try inner.broadcast(buffer, root: root)
    }

    /// Seconds since the last call.
    func take() -> Double {
        defer { seconds = 0 }
        return seconds
    }
}

/// The result of a rank's training.
struct LoopOutcome: Sendable {
    var metricsJSON: String
    /// Rank 0: the final model as a checkpoint file.
    var finalCheckpoint: [UInt8]?
    var step: UInt64
    var epoch: Int
}

/// Synchronous data-parallel training of one rank on its shard; runs on the MPI thread.
struct TrainingLoop {
    let plan: JobPlan
    let schema: FeatureSchema
    let shardPath: String
    let resume: [UInt8]?
    let telemetry: LoopTelemetry
    let rank: Int
    let size: Int
    /// For the GBDT collective; the loop runs on its MPI thread, so calls through it are direct.
    let runtime: MPIRuntime
    let log: @Sendable (String) -> Void

    var hidden: [Int] { [256, 256] }

    /// This rank's local batch (Note [Per-rank batch sizes] in DataParallelTrainer.swift).
    var localBatch: Int {
        plan.rankBatchSizes.indices.contains(rank) ? plan.rankBatchSizes[rank] : plan.spec.batchSize
    }

    func run(_ mpi: any AllreduceBackend, _ comm: MPICommunicator) throws -> LoopOutcome {
        let backend = TimedBackend(mpi)
        let shard = try ColumnarDataset(path: shardPath)
        let labelled = try schema.labelledRows(shard)
        // the holdout: a seeded fraction of this shard's labelled rows (the same rule on every rank)
        var rng = SeededGenerator(seed: plan.spec.seed ^ 0x486F_6C64 ^ UInt64(rank))
        let shuffled = Shuffle.permutation(labelled.count, using: &rng).map { labelled[$0] }
        let holdoutCount = Int((Double(labelled.count) * plan.spec.holdoutFraction).rounded())
        let holdoutRows = Array(shuffled.prefix(holdoutCount)).sorted()
        let trainRows = Array(shuffled.dropFirst(holdoutCount)).sorted()

        let width = schema.width
        let x = Tensor(shape: [trainRows.count, width], storage: try schema.features(shard, rows: trainRows))
        let classification = schema.isClassification
        if plan.spec.model == "gbdt" {
            return try runGBDT(x, shard: shard, trainRows: trainRows, holdoutRows: holdoutRows, comm: comm)
        }
        let outputs = classification ? schema.classes.count : 1
        let network = MLP(inputs: width, hidden: hidden, outputs: outputs, seed: plan.spec.seed).build()
        let optimizer = Adam(network.parameters, learningRate: Float(plan.spec.learningRate))
        var startEpoch = 0
        var step: UInt64 = 0
        if let resume {
            let checkpoint = try Checkpoint(decoding: resume, source: "checkpoint \(plan.resumeCheckpointId)")
            try checkpoint.load(into: network.parameters)
            try optimizer.importState(OptimizerState(step: checkpoint.progress.optimizerStep, tensors: checkpoint.optimizerState))
            startEpoch = checkpoint.progress.epoch
            step = UInt64(checkpoint.progress.step)
            log("resumed from checkpoint \(plan.resumeCheckpointId) (step \(step), epoch \(startEpoch), world size \(checkpoint.progress.worldSize) → \(size))")
        }
        let options = TrainingOptions(epochs: plan.spec.epochs, batchSize: localBatch, seed: plan.spec.seed)
        let cap = max(1, plan.spec.bucketCapMB) << 20
        let wire: FusionBuffer.WireFormat = plan.spec.fp16Allreduce ? .float16 : .float32
        let overlap = !plan.spec.noOverlap
        log("mlp: local batch \(localBatch)" + (plan.rankBatchSizes.isEmpty ? "" : " (ranks: \(plan.rankBatchSizes.map(String.init).joined(separator: ",")))")
            + ", gradients \(overlap ? "overlapped with backward" : "reduced after backward"), \(wire.rawValue) wire")

        if classification {
            let y = try schema.classIndices(shard, rows: trainRows)
            let trainer = try DataParallelTrainer(model: network, loss: CrossEntropyLoss(), optimizer: optimizer, backend: backend,
                                                  options: options, bucketCapBytes: cap, wire: wire,
                                                  overlap: overlap)
            try loop(trainer, x, y, startEpoch: startEpoch, step: &step, comm: comm, network: network, optimizer: optimizer,
                     backend: backend)
        } else {
            let y = Tensor(shape: [trainRows.count, 1], storage: try schema.regressionTargets(shard, rows: trainRows))
            let trainer = try DataParallelTrainer(model: network, loss: MSELoss(), optimizer: optimizer, backend: backend,
                                                  options: options, bucketCapBytes: cap, wire: wire,
                                                  overlap: overlap)
            try loop(trainer, x, y, startEpoch: startEpoch, step: &step, comm: comm, network: network, optimizer: optimizer,
                     backend: backend)
        }

        let metrics = try evaluate(network, shard: shard, rows: holdoutRows, comm: comm)
        let final = rank == 0 ? checkpointBytes(network, optimizer, step: step, epoch: plan.spec.epochs) : nil
        return LoopOutcome(metricsJSON: metrics, finalCheckpoint: final, step: step, epoch: plan.spec.epochs)
    }

    private func loop<L: Loss>(_ trainer: DataParallelTrainer<L>, _ x: Tensor, _ y: L.Target, startEpoch: Int,
                               step: inout UInt64, comm: MPICommunicator, network: Sequential, optimizer: Adam,
                               backend: TimedBackend) throws
        where L.Target: BatchGatherable
    {
        let n = x.rows
        let batch = localBatch
        var maxSteps = [Double((n + batch - 1) / batch)]
        try maxSteps.withUnsafeMutableBufferPointer { try comm.allreduce($0, op: .max) }
        let stepsPerEpoch = max(1, Int(maxSteps[0]))
        let every = plan.spec.checkpointEvery
        var xb = Tensor.emptyBatch()
        var yb = L.Target.emptyBatch()
        let clock = ContinuousClock()
        var samplesSeen = UInt64(0)
        for epoch in startEpoch..<plan.spec.epochs {
            var rng = SeededGenerator(seed: plan.spec.seed ^ UInt64(epoch) &* 0x9E37_79B9 ^ UInt64(rank) << 32)
            let order = Shuffle.permutation(n, using: &rng)
            var windowStart = clock.now
            var windowSamples = 0
            var lossSum = 0.0, lossSamples = 0
            var windowSteps = 0
            _ = backend.take()
            for s in 0..<stepsPerEpoch {
                let lo = min(n, s * batch), hi = min(n, lo + batch)
                order[lo..<hi].withUnsafeBufferPointer { idx in
                    x.gather(idx, into: &xb)
                    y.gather(idx, into: &yb)
                }
                if hi == lo { xb = Tensor(zeros: [0, x.columns]) }
                step += 1
                telemetry.entered(step)
                let global = try trainer.step(xb, yb)
                samplesSeen += UInt64(hi - lo)
                windowSamples += hi - lo
                windowSteps += 1
                if global.samples > 0 {
                    lossSum += global.lossSum
                    lossSamples += global.samples
                }
                let elapsed = clock.now - windowStart
                let last = s == stepsPerEpoch - 1
                if elapsed >= .milliseconds(500) || last {
                    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
                    telemetry.record(StepMetrics(step: step, epoch: epoch + 1,
                                                 loss: lossSamples > 0 ? lossSum / Double(lossSamples) : 0,
                                                 samplesPerSecond: seconds > 0 ? Double(windowSamples) / seconds : 0,
                                                 allreduceMs: backend.take() * 1000 / Double(max(1, windowSteps)),
                                                 samples: samplesSeen, timeUnixMs: Int64(Date().timeIntervalSince1970 * 1000)))
                    windowStart = clock.now
                    windowSamples = 0
                    windowSteps = 0
                }
                if rank == 0, (every > 0 && step % UInt64(every) == 0) || (every == 0 && last && epoch + 1 < plan.spec.epochs) {
                    // at an epoch end the checkpoint resumes at the next epoch (Note [Resuming from a checkpoint])
                    let resumeEpoch = last ? epoch + 1 : epoch
                    telemetry.checkpoint(step: step, epoch: resumeEpoch,
                                         bytes: checkpointBytes(network, optimizer, step: step, epoch: resumeEpoch))
                }
            }
            log("epoch \(epoch + 1)/\(plan.spec.epochs): loss \(lossSamples > 0 ? lossSum / Double(lossSamples) : .nan)")
        }
    }

    // Note [Distributed GBDT jobs]
    // ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
    // Histogram GBDT trains data-parallel by summing per-rank gradient histograms (and taking maxima)
    // through `MPIGBDTCollective` instead of averaging parameter gradients; with the same bin edges on
    // every rank the model equals the single-process one (the engine's Note [Exact histogram sums]).
    // Rank 0 fits the edges on its shard and broadcasts them (Note [Distributed bin edges]). --epochs
    // is the number of boosting iterations. Every iteration reports progress (step = iteration); rank 0
    // checkpoints the model (Note [GBDT model file], as the payload of a checkpoint of kind "gbdt") every
    // --checkpoint-every iterations (0: every 10) and at the end, so `nebula job download` returns it.
    // A restarted attempt resumes from the last checkpoint (the engine's Note [Resuming boosting]): the
    // checkpoint's bin edges replace the broadcast, and at an unchanged world size the resumed model is
    // the one an uninterrupted run trains. At another world size the shards and their holdouts are cut
    // anew, so boosting continues on a different training split (as MLP jobs do).
    private func runGBDT(_ x: Tensor, shard: ColumnarDataset, trainRows: [Int], holdoutRows: [Int],
                         comm: MPICommunicator) throws -> LoopOutcome {
        var parameters = GBDTParameters()
        parameters.maxIterations = plan.spec.epochs
        parameters.learningRate = plan.spec.learningRate
        parameters.seed = plan.spec.seed
        var resumed: GBDTModel?
        if let resume {
            let checkpoint = try Checkpoint(decoding: resume, source: "checkpoint \(plan.resumeCheckpointId)")
            guard checkpoint.model.kind == "gbdt" else {
                throw WorkerError("checkpoint \(plan.resumeCheckpointId) holds a \(checkpoint.model.kind) model, this is a gbdt job")
            }
            resumed = try GBDTModel(decoding: checkpoint.payload, source: "checkpoint \(plan.resumeCheckpointId)")
            log("resumed from checkpoint \(plan.resumeCheckpointId) (iteration \(resumed!.iterations), world size \(checkpoint.progress.worldSize) → \(size))")
        }
        let mapper: GBDTBinMapper
        if let resumed {
            mapper = resumed.binMapper
        } else {
            // the bin edges: rank 0's, broadcast (length first)
            var edges = rank == 0 ? GBDTBinMapper.fit(x, seed: plan.spec.seed).encoded : []
            var count = [Double(edges.count)]
            try count.withUnsafeMutableBufferPointer { try comm.broadcast($0, root: 0) }
            if rank != 0 { edges = [Double](repeating: 0, count: Int(count[0])) }
            try edges.withUnsafeMutableBufferPointer { try comm.broadcast($0, root: 0) }
            mapper = GBDTBinMapper(encoded: edges)
        }
        let collective = CountingCollective(inner: MPIGBDTCollective(runtime), telemetry: telemetry)
        let clock = ContinuousClock()
        let start = clock.now
        var windowStart = start
        var windowIterations = 0
        let every = plan.spec.checkpointEvery > 0 ? plan.spec.checkpointEvery : 10
        let onIteration: (GBDTModel) -> Void = { model in
            windowIterations += 1
            let elapsed = clock.now - windowStart
            let last = model.iterations == plan.spec.epochs
            if elapsed >= .milliseconds(500) || last {
                let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
                telemetry.record(StepMetrics(step: UInt64(model.iterations), epoch: model.iterations, loss: 0,
                                             samplesPerSecond: seconds > 0 ? Double(trainRows.count * windowIterations) / seconds : 0,
                                             allreduceMs: 0, samples: UInt64(trainRows.count * model.iterations),
                                             timeUnixMs: Int64(Date().timeIntervalSince1970 * 1000)))
                windowStart = clock.now
                windowIterations = 0
            }
            if rank == 0 && !last && model.iterations % every == 0 {
                telemetry.checkpoint(step: UInt64(model.iterations), epoch: model.iterations,
                                     bytes: gbdtCheckpointBytes(model))
            }
        }
        let model: GBDTModel
        if schema.isClassification {
            model = GBDTModel.fitClassifier(x: x, labels: try schema.classIndices(shard, rows: trainRows),
                                            classes: schema.classes.count, parameters: parameters, binMapper: mapper,
                                            collective: collective, resume: resumed, onIteration: onIteration)
        } else {
            let targets = try schema.regressionTargets(shard, rows: trainRows).map { Double($0) * schema.targetStd + schema.targetMean }
            model = GBDTModel.fitRegressor(x: x, targets: targets, parameters: parameters, binMapper: mapper, collective: collective,
                                           resume: resumed, onIteration: onIteration)
        }
        let elapsed = clock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        log("gbdt: \(model.trees.count) iterations on \(trainRows.count) rows in \(String(format: "%.2f", seconds)) s")
        let xh = Tensor(shape: [holdoutRows.count, schema.width], storage: try schema.features(shard, rows: holdoutRows))
        let metrics: String
        if schema.isClassification {
            metrics = try classificationMetrics(holdoutRows.isEmpty ? [] : model.predictClasses(xh), shard: shard, rows: holdoutRows,
                                                comm: comm)
        } else {
            metrics = try regressionMetrics(holdoutRows.isEmpty ? [] : model.predict(xh), shard: shard, rows: holdoutRows, comm: comm)
        }
        return LoopOutcome(metricsJSON: metrics, finalCheckpoint: rank == 0 ? gbdtCheckpointBytes(model) : nil,
                           step: UInt64(model.trees.count), epoch: model.trees.count)
    }

    /// A GBDT model as a checkpoint file: kind "gbdt", the model file as the payload (Note [GBDT model
    /// file]), the feature schema (how to turn a table into the model's inputs) as a hyperparameter.
    func gbdtCheckpointBytes(_ model: GBDTModel) -> [UInt8] {
        let description = Checkpoint.ModelDescription(
            kind: "gbdt", hyperparameters: ["iterations": "\(model.iterations)", "learning_rate": "\(plan.spec.learningRate)",
                                            "inputs": "\(schema.width)", "task": plan.task,
                                            "schema": String(decoding: (try? JSONEncoder().encode(schema)) ?? Data(), as: UTF8.self)],
            featureNames: schema.columns.map(\.name), classes: schema.classes)
        let checkpoint = Checkpoint(model: description,
                                    progress: .init(step: model.iterations, epoch: model.iterations, dataPosition: 0, worldSize: size,
                                                    optimizer: "", optimizerStep: 0),
                                    parameters: [NamedTensor](), payload: model.encoded())
        return checkpoint.encoded()
    }

    func checkpointBytes(_ network: Sequential, _ optimizer: Adam, step: UInt64, epoch: Int) -> [UInt8] {
        let state = optimizer.exportState()
        let description = Checkpoint.ModelDescription(
            kind: "mlp", hyperparameters: ["hidden": hidden.map(String.init).joined(separator: ","),
                                           "inputs": "\(schema.width)", "task": plan.task],
            featureNames: schema.columns.map(\.name), classes: schema.classes)
        let checkpoint = Checkpoint(model: description,
                                    progress: .init(step: Int(step), epoch: epoch, dataPosition: 0, worldSize: size,
                                                    optimizer: "adam", optimizerStep: state.step),
                                    parameters: network.parameters, optimizerState: state.tensors,
                                    payload: Array((try? JSONEncoder().encode(schema)) ?? Data()))
        return checkpoint.encoded()
    }

    /// Holdout metrics over all ranks' holdout rows: sums are allreduced, so the figures are exact.
    private func evaluate(_ network: Sequential, shard: ColumnarDataset, rows: [Int], comm: MPICommunicator) throws -> String {
        let x = Tensor(shape: [rows.count, schema.width], storage: try schema.features(shard, rows: rows))
        let output = rows.isEmpty ? Tensor(zeros: [0, 1]) : network.forward(x, training: false)
        if schema.isClassification {
            let k = schema.classes.count
            let predicted = (0..<rows.count).map { i in (0..<k).max { output[i, $0] < output[i, $1] } ?? 0 }
            return try classificationMetrics(predicted, shard: shard, rows: rows, comm: comm)
        }
        let predicted = (0..<rows.count).map { Double(output[$0, 0]) * schema.targetStd + schema.targetMean }
        return try regressionMetrics(predicted, shard: shard, rows: rows, comm: comm)
    }

    /// Accuracy and macro F1 from a confusion matrix summed over all ranks.
    private func classificationMetrics(_ predicted: [Int], shard: ColumnarDataset, rows: [Int], comm: MPICommunicator) throws
        -> String
    {
        let k = schema.classes.count
        let truth = try schema.classIndices(shard, rows: rows)
        var confusion = [Double](repeating: 0, count: k * k)
        for (t, p) in zip(truth, predicted) { confusion[t * k + p] += 1 }
        try confusion.withUnsafeMutableBufferPointer { try comm.allreduce($0, op: .sum) }
        let total = confusion.reduce(0, +)
        let correct = (0..<k).reduce(0.0) { $0 + confusion[$1 * k + $1] }
        var f1s: [Double] = []
        for c in 0..<k {
            let tp = confusion[c * k + c]
            let predictedCount = (0..<k).reduce(0.0) { $0 + confusion[$1 * k + c] }
            let actual = (0..<k).reduce(0.0) { $0 + confusion[c * k + $1] }
            let p = predictedCount > 0 ? tp / predictedCount : 0, r = actual > 0 ? tp / actual : 0
            f1s.append(p + r > 0 ? 2 * p * r / (p + r) : 0)
        }
        return try encode(["accuracy": total > 0 ? correct / total : 0, "macro_f1": f1s.reduce(0, +) / Double(max(1, k)),
                           "holdout_rows": total])
    }

    /// RMSE and R² (original scale) from sums over all ranks.
    private func regressionMetrics(_ predicted: [Double], shard: ColumnarDataset, rows: [Int], comm: MPICommunicator) throws
        -> String
    {
        let truth = try schema.regressionTargets(shard, rows: rows)
        var sums = [0.0, 0.0, 0.0, 0.0]  // n, Σ(y-ŷ)², Σy, Σy²
        for (t, p) in zip(truth, predicted) {
            let y = Double(t) * schema.targetStd + schema.targetMean
            sums[0] += 1
            sums[1] += (y - p) * (y - p)
            sums[2] += y
            sums[3] += y * y
        }
        try sums.withUnsafeMutableBufferPointer { try comm.allreduce($0, op: .sum) }
        let n = max(1, sums[0])
        let ssTotal = sums[3] - sums[2] * sums[2] / n
        return try encode(["rmse": (sums[1] / n).squareRoot(), "r2": ssTotal > 0 ? 1 - sums[1] / ssTotal : 0, "holdout_rows": sums[0]])
    }

    private func encode(_ metrics: [String: Double]) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return String(decoding: try encoder.encode(metrics), as: UTF8.self)
    }
}

/// Counts the GBDT's collective operations for the hang watchdog (Note [Distributed GBDT jobs]).
struct CountingCollective<Inner: GBDTCollective>: GBDTCollective {
    let inner: Inner
    let counter: CollectiveCounter

    init(inner: Inner, telemetry: LoopTelemetry) {
        self.init(inner: inner, counter: CollectiveCounter { telemetry.entered($0) })
    }

    init(inner: Inner, counter: CollectiveCounter) {
        self.inner = inner
        self.counter = counter
    }

    func sum(_ buffer: UnsafeMutableBufferPointer<Double>) {
        counter.enter()
        inner.sum(buffer)
    }

    func max(_ buffer: UnsafeMutableBufferPointer<Double>) {
        counter.enter()
        inner.max(buffer)
    }
}

/// Numbers a rank's collective operations 1, 2, 3, ... and tells `entered` each number before the
/// operation starts (what the coordinator's CollectiveWatchdog compares across ranks).
public final class CollectiveCounter: Sendable {
    private let value = Mutex<UInt64>(0)
    private let entered: @Sendable (UInt64) -> Void

    public init(_ entered: @escaping @Sendable (UInt64) -> Void) { self.entered = entered }

    public var count: UInt64 { value.withLock { $0 } }

    func enter() { entered(value.withLock { $0 += 1; return $0 }) }
}
