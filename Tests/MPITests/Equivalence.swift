import NebulaEngine
import NebulaMPI

/// The MLP workload of the global-batch equivalence tests (Note [Global batch equivalence]): a small
/// classifier on deterministic synthetic rows, trained once by the single-process `Trainer` over the
/// global batch and once data-parallel, `perRankBatch` rows per rank.
enum Equivalence {
    enum OptimizerKind: String, CaseIterable, Sendable { case sgdMomentum, adam }

    /// 95 rows: with 6 rows per rank the last global batch is split unevenly at 2 and 3 ranks.
    static let rows = 95
    static let perRankBatch = 6

    static func data() -> (x: Tensor, y: [Int]) { syntheticClassification(rows: rows, features: 10, seed: 11) }

    static func options(batch: Int, lr: Float) -> TrainingOptions {
        TrainingOptions(epochs: 3, batchSize: batch, shuffle: true, seed: 5, clipNorm: 5,
                        schedule: StepLR(base: lr, stepSize: 4, gamma: 0.7), scheduleUnit: .batch)
    }

    static func optimizer(_ kind: OptimizerKind, _ parameters: [Parameter]) -> (any Optimizer, Float) {
        switch kind {
        case .sgdMomentum: (SGD(parameters, learningRate: 0.1, momentum: 0.9), 0.1)
        case .adam: (Adam(parameters, learningRate: 0.01), 0.01)
        }
    }

    struct Outcome: Sendable {
        var parameters: [Float]
        var losses: [Float]
        /// Of the last step (data-parallel runs only): segments started during backward.
        var segmentsStartedEarly = 0
    }

    /// One process, batch = ranks × perRankBatch (or `batch`).
    static func reference(ranks: Int, _ kind: OptimizerKind, batch: Int? = nil) -> Outcome {
        let (x, y) = data()
        let model = MLP(inputs: 10, hidden: [16, 12], outputs: 3, seed: 1).build()
        let (opt, lr) = optimizer(kind, model.parameters)
        let trainer = Trainer(model: model, loss: CrossEntropyLoss(), optimizer: opt,
                              options: options(batch: batch ?? ranks * perRankBatch, lr: lr))
        let reports = trainer.fit(x, y)
        return Outcome(parameters: model.parameters.flatMap(\.value.storage), losses: reports.map(\.loss))
    }

    /// This rank's part of the data-parallel run. Ranks other than 0 initialise differently on purpose:
    /// the trainer's broadcast must make them start from rank 0's parameters.
    static func distributed(_ backend: some AllreduceBackend, _ kind: OptimizerKind, capBytes: Int = defaultBucketCapBytes,
                            segmentBytes: Int? = defaultFusionSegmentBytes, overlap: Bool = true,
                            wire: FusionBuffer.WireFormat = .float32, rankBatchSizes: [Int]? = nil) throws -> Outcome {
        let (x, y) = data()
        let model = MLP(inputs: 10, hidden: [16, 12], outputs: 3, seed: 1 + UInt64(backend.rank)).build()
        let (opt, lr) = optimizer(kind, model.parameters)
        let trainer = try DataParallelTrainer(model: model, loss: CrossEntropyLoss(), optimizer: opt, backend: backend,
                                              options: options(batch: perRankBatch, lr: lr), bucketCapBytes: capBytes,
                                              segmentBytes: segmentBytes, wire: wire, overlap: overlap,
                                              rankBatchSizes: rankBatchSizes)
        let reports = try trainer.fit(x, y)
        precondition(reports.allSatisfy { $0.samples == rows })
        return Outcome(parameters: model.parameters.flatMap(\.value.storage), losses: reports.map(\.loss),
                       segmentsStartedEarly: trainer.fusion.segmentsStartedEarly)
    }

    /// The largest |a − b| / max(|b|, 1) (a relative error that does not blow up near zero).
    static func maxError(_ a: [Float], _ b: [Float]) -> Float {
        precondition(a.count == b.count)
        return zip(a, b).reduce(0) { Swift.max($0, abs($1.0 - $1.1) / Swift.max(abs($1.1), 1)) }
    }
}
