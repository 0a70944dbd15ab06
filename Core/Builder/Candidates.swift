import Foundation
import NebulaCommon
import NebulaDataset
import NebulaEngine

/// What every candidate trains on.
struct TrainContext {
    var train: ModelInput
    var val: ModelInput
    var yClass: [Int]
    var yValue: [Double]
    var truth: AutoBuilder.Truth
    var task: ProblemType
    var metric: AutoBuilder.Metric
    var seed: UInt64
    var textColumn: String
    /// Called after each epoch of an iterative candidate (progress reports of a candidate job).
    var onEpoch: (CurvePoint) -> Void = { _ in }
    var classification: Bool { task != .regression }
}

/// One candidate model of a run (Note [Builder runs]).
enum CandidatePlan {
    case linear, logistic, mlp, gbdt
    case cnn(side: Int, channels: Int)
    case text(name: String, words: Bool, chars: Bool, hidden: Int?)

    var name: String {
        switch self {
        case .linear: "LinearModel"
        case .logistic: "LogisticRegression"
        case .mlp: "NeuralNetMLP"
        case .gbdt: "GBDT"
        case .cnn: "CNN"
        case .text(let name, _, _, _): name
        }
    }

    func fit(_ c: TrainContext, budget: Double, parallelism: (any CandidateParallelism)? = nil)
        throws -> (TrainedModel, [CurvePoint], [String: String])
    {
        // Only networks train data-parallel; a job of one rank trains as this process would.
        let parallel = parallelism.flatMap { $0.size > 1 ? $0 : nil }
        switch self {
        case .linear:
            return (.linear(LinearRegression.fit(x: c.train.features, y: c.yValue)), [], ["solver": "closed form (normal equations)"])
        case .logistic:
            let k = c.truth.k
            if k == 2 {
                let m = LogisticRegression.fit(x: c.train.features, labels: c.yClass)
                return (.logistic(m), [], ["C": "1.0", "solver": "L-BFGS", "iterations": "\(m.iterations)"])
            }
            let m = SoftmaxRegression.fit(x: c.train.features, labels: c.yClass, classes: k)
            return (.softmax(m), [], ["C": "1.0", "solver": "L-BFGS (multinomial)", "iterations": "\(m.iterations)"])
        case .gbdt:
            var p = GBDTParameters()
            p.seed = c.seed
            p.maxIterations = 300
            p.earlyStopping = GBDTEarlyStopping()
            let model: GBDTModel
            if let parallel {
                // Note [Candidates as cluster jobs]: same bin edges everywhere, every size-th row per rank.
                let mapper = GBDTBinMapper.fit(c.train.features, seed: c.seed)
                let mine = Array(stride(from: parallel.rank, to: c.train.features.rows, by: parallel.size))
                let width = c.train.features.columns
                var storage = [Float](repeating: 0, count: mine.count * width)
                c.train.features.storage.withUnsafeBufferPointer { all in
                    for (i, r) in mine.enumerated() { for j in 0..<width { storage[i * width + j] = all[r * width + j] } }
                }
                let x = Tensor(shape: [mine.count, width], storage: storage)
                let collective = parallel.gbdtCollective()
                model = c.classification
                    ? GBDTModel.fitClassifier(x: x, labels: mine.map { c.yClass[$0] }, classes: c.truth.k, parameters: p, binMapper: mapper,
                                              collective: collective)
                    : GBDTModel.fitRegressor(x: x, targets: mine.map { c.yValue[$0] }, parameters: p, binMapper: mapper, collective: collective)
            } else {
                model = c.classification
                    ? GBDTModel.fitClassifier(x: c.train.features, labels: c.yClass, classes: c.truth.k, parameters: p)
                    : GBDTModel.fitRegressor(x: c.train.features, targets: c.yValue, parameters: p)
            }
            let curve = model.validationLosses.enumerated().map { CurvePoint(step: $0.offset, trainLoss: nil, validation: $0.element) }
            return (.gbdt(Data(model.encoded()), classes: c.classification ? c.truth.k : 0), curve,
                    ["learning_rate": "0.1", "max_leaf_nodes": "31", "iterations": "\(model.iterations)",
                     "early_stopping": "10% of the training rows, patience 10"])
        case .mlp:
            return try fitNetwork(c, budget: budget, parallel: parallel)
        case .cnn(let side, let channels):
            return try fitCNN(c, side: side, channels: channels, budget: budget, parallel: parallel)
        case .text(_, let words, let chars, let hidden):
            return try fitText(c, words: words, chars: chars, hidden: hidden, budget: budget)
        }
    }

    /// Trains epoch by epoch, keeping the parameters of the epoch with the best validation score;
    /// stops after `patience` epochs without improvement, at `maxEpochs`, or when the budget is spent.
    /// With `parallel`, the decision to stop is taken together (Note [Candidates as cluster jobs]).
    private static func earlyStopped(_ c: TrainContext, parameters: [Parameter], maxEpochs: Int, patience: Int, budget: Double,
                                     parallel: (any CandidateParallelism)? = nil,
                                     epoch: (Int) throws -> Double, predict: () throws -> AutoBuilder.Truth.Scored)
        throws -> (curve: [CurvePoint], bestEpoch: Int)
    {
        let clock = ContinuousClock()
        let start = clock.now
        var best: (score: Double, epoch: Int, values: [[Float]])?
        var curve: [CurvePoint] = []
        var slowest = 0.0
        for e in 1...maxEpochs {
            let epochStart = clock.now
            func together(_ flag: Bool) throws -> Bool { try parallel?.any(flag) ?? flag }
            // Another epoch would overrun the budget: stop with what is best so far.
            if e > 1, try together((clock.now - start).seconds + slowest > budget) { break }
            let loss = try epoch(e)
            let score = try predict().score
            curve.append(CurvePoint(step: e, trainLoss: loss, validation: score))
            c.onEpoch(curve[curve.count - 1])
            if best == nil || c.metric.worse(best!.score, score) { best = (score, e, parameterValues(parameters)) }
            slowest = max(slowest, (clock.now - epochStart).seconds)
            if try together(e - best!.epoch >= patience || (clock.now - start).seconds > budget) { break }
        }
        if let best { try load(best.values, into: parameters) }
        return (curve, best?.epoch ?? 0)
    }

    /// One epoch per call of a cross-entropy classifier: data-parallel over the job's ranks, or here.
    private static func classifierEpochs(_ network: any Layer, _ optimizer: any Optimizer, _ options: TrainingOptions, _ x: Tensor,
                                         _ labels: [Int], _ parallel: (any CandidateParallelism)?) throws -> () throws -> Double {
        if let parallel {
            return try parallel.epochs(model: network, optimizer: optimizer, options: options, x: x, labels: labels)
        }
        let trainer = Trainer(model: network, loss: CrossEntropyLoss(), optimizer: optimizer, options: options)
        return { Double(trainer.trainEpoch(x, labels).loss) }
    }

    private func fitNetwork(_ c: TrainContext, budget: Double, parallel: (any CandidateParallelism)?) throws -> (TrainedModel, [CurvePoint], [String: String]) {
        let x = c.train.features
        let outputs = c.classification ? c.truth.k : 1
        let spec = MLP(inputs: x.columns, hidden: [128, 64], outputs: outputs, seed: c.seed)
        let network = spec.build()
        let optimizer = Adam(network.parameters, learningRate: 1e-3)
        let options = TrainingOptions(epochs: 1, batchSize: 32, seed: c.seed)
        var mean: Double?, std: Double?
        let curve: [CurvePoint]
        let bestEpoch: Int
        if c.classification {
            let runEpoch = try Self.classifierEpochs(network, optimizer, options, x, c.yClass, parallel)
            (curve, bestEpoch) = try Self.earlyStopped(c, parameters: network.parameters, maxEpochs: 200, patience: 15, budget: budget,
                                                       parallel: parallel, epoch: { _ in try runEpoch() },
                                                       predict: { c.truth.scored(.probabilities(softmaxRows(network.predict(c.val.features)), classes: outputs), c.metric) })
        } else {
            let m = c.yValue.reduce(0, +) / Double(c.yValue.count)
            let s = max(1e-12, (c.yValue.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(c.yValue.count)).squareRoot())
            mean = m; std = s
            let y = Tensor(shape: [c.yValue.count, 1], storage: c.yValue.map { Float(($0 - m) / s) })
            let runEpoch: () throws -> Double
            if let parallel {
                runEpoch = try parallel.epochs(model: network, optimizer: optimizer, options: options, x: x, targets: y)
            } else {
                let trainer = Trainer(model: network, loss: MSELoss(), optimizer: optimizer, options: options)
                runEpoch = { Double(trainer.trainEpoch(x, y).loss) }
            }
            (curve, bestEpoch) = try Self.earlyStopped(c, parameters: network.parameters, maxEpochs: 300, patience: 20, budget: budget,
                                                       parallel: parallel, epoch: { _ in try runEpoch() },
                                                       predict: { c.truth.scored(.values(network.predict(c.val.features).storage.map { Double($0) * s + m }), c.metric) })
        }
        return (.mlp(spec, parameters: parameterValues(network.parameters), targetMean: mean, targetStd: std), curve,
                ["hidden": "128,64", "activation": "relu", "optimizer": "adam", "lr": "0.001", "batch_size": "32",
                 "epochs": "\(curve.count)", "best_epoch": "\(bestEpoch)"])
    }

    private func fitCNN(_ c: TrainContext, side: Int, channels: Int, budget: Double, parallel: (any CandidateParallelism)?) throws -> (TrainedModel, [CurvePoint], [String: String]) {
        let config = CNN.Configuration(inputChannels: channels, height: side, width: side, classes: c.truth.k)
        var rng = SeededGenerator(seed: c.seed &+ 1)
        let network = CNN.make(config, rng: &rng)
        let optimizer = Adam(network.parameters, learningRate: 2e-3)
        let images = Tensor(shape: [c.train.features.rows, channels, side, side], storage: c.train.features.storage)
        let valImages = Tensor(shape: [c.val.features.rows, channels, side, side], storage: c.val.features.storage)
        let options = TrainingOptions(epochs: 1, batchSize: 32, seed: c.seed &+ 1)
        let runEpoch = try Self.classifierEpochs(network, optimizer, options, images, c.yClass, parallel)
        let k = c.truth.k
        let (curve, bestEpoch) = try Self.earlyStopped(c, parameters: network.parameters, maxEpochs: 30, patience: 5, budget: budget,
                                                       parallel: parallel, epoch: { _ in try runEpoch() },
                                                       predict: { c.truth.scored(.probabilities(softmaxRows(network.predict(valImages)), classes: k), c.metric) })
        return (.cnn(config, parameters: parameterValues(network.parameters), pixelScale: 1), curve,
                ["channels": "32,64", "kernel": "3", "pool": "2", "hidden": "128", "optimizer": "adam", "lr": "0.002",
                 "input": "\(side)x\(side)\(channels == 3 ? " RGB" : "") standardised pixels", "epochs": "\(curve.count)", "best_epoch": "\(bestEpoch)"])
    }

    private func fitText(_ c: TrainContext, words: Bool, chars: Bool, hidden: Int?, budget: Double)
        throws -> (TrainedModel, [CurvePoint], [String: String])
    {
        // 2^16 buckets: every Adam step updates the whole table, so a smaller one buys more steps per
        // second; on corpora of this size (≈10k documents) it cost no accuracy in our runs.
        let features = TextFeaturizer.Configuration(buckets: 1 << 16, wordUnigrams: words, wordBigrams: words,
                                                    characterNGrams: chars ? 3...5 : nil)
        let config = TextClassifier.Configuration(features: features, dimension: 32, hidden: hidden, classes: c.truth.k)
        var rng = SeededGenerator(seed: c.seed)
        let model = TextClassifier(config, rng: &rng)
        let trainBatch = model.encode(c.train.texts)
        let valBatch = model.encode(c.val.texts)
        let optimizer = Adam(model.parameters, learningRate: 1e-2)
        let loss = CrossEntropyLoss()
        var order = Array(0..<c.train.texts.count)
        var shuffler = SeededGenerator(seed: c.seed &+ 1)
        let k = c.truth.k
        let (curve, bestEpoch) = try Self.earlyStopped(c, parameters: model.parameters, maxEpochs: 20, patience: 3, budget: budget,
            epoch: { _ in
                order.shuffle(using: &shuffler)
                var total: Float = 0
                for b in stride(from: 0, to: order.count, by: 64) {
                    let idx = Array(order[b..<min(b + 64, order.count)])
                    model.zeroGrad()
                    let (value, grad) = loss(model.forward(trainBatch.subset(idx), training: true), idx.map { c.yClass[$0] })
                    model.backward(grad)
                    optimizer.step()
                    total += value * Float(idx.count)
                }
                return Double(total) / Double(max(1, order.count))
            },
            predict: { c.truth.scored(.probabilities(softmaxRows(model.forward(valBatch, training: false)), classes: k), c.metric) })
        return (.text(config, parameters: parameterValues(model.parameters), column: c.textColumn), curve,
                ["features": [words ? "word 1-2-grams" : nil, chars ? "char 3-5-grams" : nil].compactMap { $0 }.joined(separator: " + "),
                 "buckets": "65536", "dimension": "32", "hidden": hidden.map(String.init) ?? "none", "optimizer": "adam",
                 "lr": "0.01", "batch_size": "64", "epochs": "\(curve.count)", "best_epoch": "\(bestEpoch)"])
    }
}

extension AutoBuilder.Truth {
    struct Scored { var score: Double }
    func scored(_ p: Prediction, _ metric: AutoBuilder.Metric) -> Scored { Scored(score: scores(p)[metric.name] ?? .nan) }
}
