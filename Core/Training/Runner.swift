import Foundation
import NebulaCommon
import NebulaEngine

/// The models `nebula train` offers.
public enum ModelChoice: String, CaseIterable, Codable, Sendable {
    case linear, logistic, mlp, cnn, text, gbdt
}

/// What `nebula train` was asked to do.
public struct TrainOptions: Sendable {
    public var dataPath: String
    public var target: String
    public var model: ModelChoice
    public var epochs: Int?
    public var batchSize: Int = 256
    public var learningRate: Float?
    public var seed: UInt64 = 0
    public var testFraction: Double = 0.2
    /// Save the trained model (neural models: parameters; all: description) to this checkpoint file.
    public var savePath: String?
    /// BLAS threads (nil: OpenBLAS's default, all cores).
    public var threads: Int?

    public init(dataPath: String, target: String, model: ModelChoice) {
        self.dataPath = dataPath
        self.target = target
        self.model = model
    }

    public func validate() throws {
        guard testFraction > 0, testFraction < 1 else {
            throw TrainingError("--test-fraction must be between 0 and 1 (exclusive), got \(testFraction)")
        }
        if let epochs, epochs < 1 { throw TrainingError("--epochs must be at least 1, got \(epochs)") }
        guard batchSize >= 1 else { throw TrainingError("--batch-size must be at least 1, got \(batchSize)") }
        if let lr = learningRate, !(lr > 0 && lr.isFinite) { throw TrainingError("--lr must be a positive number, got \(lr)") }
        if let threads, threads < 1 { throw TrainingError("--threads must be at least 1, got \(threads)") }
    }
}

/// The result of a training run: what was detected, how it trained, and the holdout metrics.
public struct TrainReport: Codable, Sendable {
    public var data: String
    public var rows: Int
    public var target: String
    public var task: TaskKind
    public var taskReason: String
    public var model: ModelChoice
    public var features: Int
    public var trainRows: Int
    public var testRows: Int
    public var epochs: Int?
    public var trainSeconds: Double
    /// Holdout metrics: accuracy, balanced_accuracy, precision_macro, recall_macro, f1_macro, log_loss,
    /// roc_auc (binary) for classification; rmse, mae, r2 for regression.
    public var metrics: [String: Double]
    public var classes: [String]?
    /// confusion[truth][predicted], in `classes` order.
    public var confusionMatrix: [[Int]]?
    public var checkpoint: String?
}

/// Trains one model on one CSV on this machine and evaluates it on a seeded holdout split.
public enum TrainRunner {
    public static func run(_ options: TrainOptions, progress: (String) -> Void = { _ in }) throws -> TrainReport {
        try options.validate()
        if let threads = options.threads { BLAS.threads = threads }
        let table = try CSVTable.read(path: options.dataPath)
        let targetColumn = try table.column(named: options.target)
        let targetValues = table.columns[targetColumn]
        let (task, reason) = try TaskDetection.detect(targetValues, column: options.target)
        progress("\(table.rowCount) rows, \(table.header.count) columns; target '\(options.target)': \(task.rawValue) (\(reason))")

        // Rows with a missing target cannot be learned from or scored.
        let usable = (0..<table.rowCount).filter { !isMissing(targetValues[$0]) }
        if usable.count < table.rowCount { progress("skipping \(table.rowCount - usable.count) rows without a target value") }
        let labels = task == .regression ? nil : LabelEncoder.fit(usable.map { targetValues[$0] })
        let labelOf = usable.map { labels?.encode(targetValues[$0]) ?? 0 }
        let split = trainTestSplit(rows: usable.count, testFraction: options.testFraction, seed: options.seed,
                                   stratifyBy: task == .regression ? nil : labelOf)
        let trainRows = split.train.map { usable[$0] }
        let testRows = split.test.map { usable[$0] }
        guard !trainRows.isEmpty, !testRows.isEmpty else {
            throw TrainingError("\(usable.count) rows are too few to split with --test-fraction \(options.testFraction)")
        }
        let featureColumns = table.header.filter { $0 != options.target }

        try check(options.model, fits: task)
        let clock = ContinuousClock()
        let started = clock.now
        var report = TrainReport(data: options.dataPath, rows: table.rowCount, target: options.target, task: task,
                                 taskReason: reason, model: options.model, features: 0, trainRows: trainRows.count,
                                 testRows: testRows.count, epochs: nil, trainSeconds: 0, metrics: [:],
                                 classes: labels?.classes, confusionMatrix: nil, checkpoint: nil)
        let outcome: Outcome
        switch options.model {
        case .text:
            outcome = try trainText(table, featureColumns, labels!, trainRows, testRows, options, progress)
        case .cnn:
            outcome = try trainCNN(table, featureColumns, labels!, trainRows, testRows, options, progress)
        default:
            let encoder = try FeatureEncoder.fit(table, columns: featureColumns, rows: trainRows)
            guard encoder.width > 0 else {
                throw TrainingError("no usable feature columns besides '\(options.target)' (text columns need --model text)")
            }
            let xTrain = try encoder.transform(table, rows: trainRows)
            let xTest = try encoder.transform(table, rows: testRows)
            progress("\(encoder.width) features from \(encoder.columns.count) columns")
            if task == .regression {
                let yTrain = try trainRows.map { try number(targetValues[$0], options.target, $0) }
                let yTest = try testRows.map { try number(targetValues[$0], options.target, $0) }
                outcome = try trainRegressor(xTrain, yTrain, xTest, yTest, encoder, options, progress)
            } else {
                outcome = try trainClassifier(xTrain, trainRows.map { labels!.encode(targetValues[$0])! }, xTest,
                                              testRows.map { labels!.encode(targetValues[$0])! }, labels!, encoder,
                                              options, progress)
            }
        }
        report.trainSeconds = (clock.now - started).seconds
        report.features = outcome.features
        report.epochs = outcome.epochs
        report.metrics = outcome.metrics
        report.confusionMatrix = outcome.confusion
        if let path = options.savePath, let checkpoint = outcome.checkpoint {
            try checkpoint.write(to: path)
            report.checkpoint = path
            progress("saved the model to \(path)")
        }
        return report
    }

    struct Outcome {
        var features: Int
        var epochs: Int?
        var metrics: [String: Double]
        var confusion: [[Int]]?
        var checkpoint: Checkpoint?
    }

    static func check(_ model: ModelChoice, fits task: TaskKind) throws {
        switch (model, task) {
        case (.linear, .binary), (.linear, .multiclass):
            throw TrainingError("--model linear is a regression model but the target is a \(task.rawValue) classification; use --model logistic")
        case (.logistic, .regression), (.cnn, .regression), (.text, .regression):
            throw TrainingError("--model \(model.rawValue) is a classifier but the target is numeric (regression); use --model linear, mlp or gbdt")
        default:
            return
        }
    }

    static func number(_ s: String, _ column: String, _ row: Int) throws -> Double {
        guard let v = Double(s.trimmingCharacters(in: .whitespaces)) else {
            throw TrainingError("target '\(column)' row \(row + 2): '\(s)' is not a number")
        }
        return v
    }

    // MARK: Metrics

    static func classificationMetrics(_ truth: [Int], probabilities: [Double], classes: Int) -> ([String: Double], [[Int]]) {
        let predicted = (0..<truth.count).map { i in
            (0..<classes).max { probabilities[i * classes + $0] < probabilities[i * classes + $1] }!
        }
        var m: [String: Double] = [
            "accuracy": Metrics.accuracy(truth, predicted),
            "balanced_accuracy": Metrics.balancedAccuracy(truth, predicted),
            "precision_macro": Metrics.precision(truth, predicted),
            "recall_macro": Metrics.recall(truth, predicted),
            "f1_macro": Metrics.f1(truth, predicted),
            "log_loss": Metrics.logLoss(truth, probabilities: probabilities, classes: classes),
        ]
        if classes == 2, let auc = Metrics.rocAUC(truth, scores: (0..<truth.count).map { probabilities[$0 * 2 + 1] }) {
            m["roc_auc"] = auc
        }
        return (m, Metrics.confusionMatrix(truth, predicted, labels: Array(0..<classes)))
    }

    static func regressionMetrics(_ truth: [Double], _ predicted: [Double]) -> [String: Double] {
        ["rmse": Metrics.rootMeanSquaredError(truth, predicted), "mae": Metrics.meanAbsoluteError(truth, predicted),
         "r2": Metrics.r2(truth, predicted)]
    }

    // MARK: Models

    static func trainClassifier(_ xTrain: Tensor, _ yTrain: [Int], _ xTest: Tensor, _ yTest: [Int], _ labels: LabelEncoder,
                                _ encoder: FeatureEncoder, _ options: TrainOptions,
                                _ progress: (String) -> Void) throws -> Outcome {
        let k = labels.classes.count
        let description = Checkpoint.ModelDescription(kind: options.model.rawValue, featureNames: encoder.featureNames,
                                                      classes: labels.classes)
        switch options.model {
        case .logistic:
            let probabilities: [Double]
            if k == 2 {
                let model = LogisticRegression.fit(x: xTrain, labels: yTrain)
                progress("logistic regression: \(model.iterations) L-BFGS iterations, converged: \(model.converged)")
                probabilities = model.predictProbabilities(xTest).flatMap { [1 - $0, $0] }
            } else {
                let model = SoftmaxRegression.fit(x: xTrain, labels: yTrain, classes: k)
                progress("softmax regression: \(model.iterations) L-BFGS iterations, converged: \(model.converged)")
                probabilities = model.predictProbabilities(xTest)
            }
            let (m, c) = classificationMetrics(yTest, probabilities: probabilities, classes: k)
            return Outcome(features: xTrain.columns, epochs: nil, metrics: m, confusion: c, checkpoint: nil)
        case .gbdt:
            var parameters = GBDTParameters()
            parameters.seed = options.seed
            if let lr = options.learningRate { parameters.learningRate = Double(lr) }
            if let e = options.epochs { parameters.maxIterations = e }
            let model = GBDTModel.fitClassifier(x: xTrain, labels: yTrain, classes: k, parameters: parameters)
            progress("gradient-boosted trees: \(model.iterations) iterations")
            let (m, c) = classificationMetrics(yTest, probabilities: model.predictProbabilities(xTest), classes: k)
            return Outcome(features: xTrain.columns, epochs: model.iterations, metrics: m, confusion: c, checkpoint: nil)
        default:  // mlp
            let epochs = options.epochs ?? 30
            let network = MLP(inputs: xTrain.columns, hidden: [256, 256], outputs: k, seed: options.seed).build()
            let optimizer = Adam(network.parameters, learningRate: options.learningRate ?? 1e-3)
            let trainer = Trainer(model: network, loss: CrossEntropyLoss(), optimizer: optimizer,
                                  options: TrainingOptions(epochs: epochs, batchSize: options.batchSize, seed: options.seed))
            _ = trainer.fit(xTrain, yTrain) { progress(epochLine($0, epochs)) }
            let (m, c) = classificationMetrics(yTest, probabilities: softmaxRows(trainer.predict(xTest)), classes: k)
            let checkpoint = Checkpoint(model: description, progress: .init(step: optimizer.stepCount, epoch: epochs, dataPosition: 0,
                                                                            worldSize: 1, optimizer: "adam",
                                                                            optimizerStep: optimizer.stepCount),
                                        parameters: network.parameters,
                                        optimizerState: optimizer.exportState().tensors)
            return Outcome(features: xTrain.columns, epochs: epochs, metrics: m, confusion: c, checkpoint: checkpoint)
        }
    }

    static func trainRegressor(_ xTrain: Tensor, _ yTrain: [Double], _ xTest: Tensor, _ yTest: [Double],
                               _ encoder: FeatureEncoder, _ options: TrainOptions,
                               _ progress: (String) -> Void) throws -> Outcome {
        switch options.model {
        case .linear:
            let model = LinearRegression.fit(x: xTrain, y: yTrain)
            return Outcome(features: xTrain.columns, epochs: nil, metrics: regressionMetrics(yTest, model.predict(xTest)),
                           confusion: nil, checkpoint: nil)
        case .gbdt:
            var parameters = GBDTParameters()
            parameters.seed = options.seed
            if let lr = options.learningRate { parameters.learningRate = Double(lr) }
            if let e = options.epochs { parameters.maxIterations = e }
            let model = GBDTModel.fitRegressor(x: xTrain, targets: yTrain, parameters: parameters)
            progress("gradient-boosted trees: \(model.iterations) iterations")
            return Outcome(features: xTrain.columns, epochs: model.iterations,
                           metrics: regressionMetrics(yTest, model.predict(xTest)), confusion: nil, checkpoint: nil)
        default:  // mlp on a standardised target
            let epochs = options.epochs ?? 100
            let mean = yTrain.reduce(0, +) / Double(yTrain.count)
            let std = max(1e-12, (yTrain.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(yTrain.count)).squareRoot())
            let target = Tensor(shape: [yTrain.count, 1], storage: yTrain.map { Float(($0 - mean) / std) })
            let network = MLP(inputs: xTrain.columns, hidden: [256, 256], outputs: 1, seed: options.seed).build()
            let optimizer = Adam(network.parameters, learningRate: options.learningRate ?? 1e-3)
            let trainer = Trainer(model: network, loss: MSELoss(), optimizer: optimizer,
                                  options: TrainingOptions(epochs: epochs, batchSize: options.batchSize, seed: options.seed))
            _ = trainer.fit(xTrain, target) { progress(epochLine($0, epochs)) }
            let predicted = trainer.predict(xTest).storage.map { Double($0) * std + mean }
            return Outcome(features: xTrain.columns, epochs: epochs, metrics: regressionMetrics(yTest, predicted),
                           confusion: nil, checkpoint: nil)
        }
    }

    static func trainCNN(_ table: CSVTable, _ featureColumns: [String], _ labels: LabelEncoder, _ trainRows: [Int],
                         _ testRows: [Int], _ options: TrainOptions, _ progress: (String) -> Void) throws -> Outcome {
        let side = Int(Double(featureColumns.count).squareRoot().rounded())
        guard side * side == featureColumns.count, side >= 4 else {
            throw TrainingError("--model cnn needs square images: \(featureColumns.count) feature columns are not side×side pixels")
        }
        let indices = try featureColumns.map { try table.column(named: $0) }
        func pixels(_ rows: [Int]) throws -> Tensor {
            var t = Tensor(zeros: [rows.count, 1, side, side])
            for (r, row) in rows.enumerated() {
                for (c, col) in indices.enumerated() {
                    let s = table.columns[col][row]
                    guard let v = Float(s.trimmingCharacters(in: .whitespaces)) else {
                        throw TrainingError("--model cnn: column '\(table.header[col])' row \(row + 2) is '\(s)', not a pixel value")
                    }
                    t.storage[r * side * side + c] = v
                }
            }
            return t
        }
        var xTrain = try pixels(trainRows)
        var xTest = try pixels(testRows)
        // Pixel normalisation: divide by the largest training value (16 for the 8×8 digits, 255 for bytes).
        let scale = max(1e-12, xTrain.maxAbs)
        xTrain.scale(by: 1 / scale)
        xTest.scale(by: 1 / scale)
        let targets = table.columns[try table.column(named: options.target)]
        let yTrain = trainRows.map { labels.encode(targets[$0])! }
        let yTest = testRows.map { labels.encode(targets[$0])! }
        // The settings of the digits acceptance test: Adam 2e-3 with cosine decay per batch, batch 32.
        let epochs = options.epochs ?? 8
        let batchSize = options.batchSize == 256 ? 32 : options.batchSize
        let lr = options.learningRate ?? 2e-3
        var rng = SeededGenerator(seed: options.seed &+ 1)
        let network = CNN.make(.init(inputChannels: 1, height: side, width: side, classes: labels.classes.count), rng: &rng)
        let optimizer = Adam(network.parameters, learningRate: lr)
        let steps = epochs * ((xTrain.rows + batchSize - 1) / batchSize)
        let trainer = Trainer(model: network, loss: CrossEntropyLoss(), optimizer: optimizer,
                              options: TrainingOptions(epochs: epochs, batchSize: batchSize, seed: options.seed &+ 1,
                                                       schedule: CosineLR(base: lr, steps: steps), scheduleUnit: .batch))
        progress("CNN on \(side)×\(side) images, pixels / \(scale)")
        _ = trainer.fit(xTrain, yTrain) { progress(epochLine($0, epochs)) }
        let (m, c) = classificationMetrics(yTest, probabilities: softmaxRows(trainer.predict(xTest)),
                                           classes: labels.classes.count)
        let checkpoint = Checkpoint(model: .init(kind: "cnn", hyperparameters: ["side": "\(side)", "scale": "\(scale)"],
                                                 featureNames: featureColumns, classes: labels.classes),
                                    progress: .init(step: optimizer.stepCount, epoch: epochs, dataPosition: 0, worldSize: 1,
                                                    optimizer: "adam", optimizerStep: optimizer.stepCount),
                                    parameters: network.parameters,
                                    optimizerState: optimizer.exportState().tensors)
        return Outcome(features: side * side, epochs: epochs, metrics: m, confusion: c, checkpoint: checkpoint)
    }

    static func trainText(_ table: CSVTable, _ featureColumns: [String], _ labels: LabelEncoder, _ trainRows: [Int],
                          _ testRows: [Int], _ options: TrainOptions, _ progress: (String) -> Void) throws -> Outcome {
        guard let textColumn = featureColumns.first(where: {
            ColumnInference.kind(of: table.columns[(try? table.column(named: $0)) ?? 0]) == .text
        }) else {
            throw TrainingError("--model text needs a free-text column (several words per value); none of \(featureColumns.joined(separator: ", ")) is one")
        }
        let texts = table.columns[try table.column(named: textColumn)]
        let targets = table.columns[try table.column(named: options.target)]
        progress("text classifier on column '\(textColumn)' (hashed word 1-2-grams and char 3-5-grams)")
        var rng = SeededGenerator(seed: options.seed)
        let model = TextClassifier(.init(classes: labels.classes.count), rng: &rng)
        let trainBatch = model.encode(trainRows.map { texts[$0] })
        let testBatch = model.encode(testRows.map { texts[$0] })
        let yTrain = trainRows.map { labels.encode(targets[$0])! }
        let yTest = testRows.map { labels.encode(targets[$0])! }
        let epochs = options.epochs ?? 10
        let optimizer = Adam(model.parameters, learningRate: options.learningRate ?? 1e-2)
        let loss = CrossEntropyLoss()
        var order = Array(0..<trainRows.count)
        var shuffler = SeededGenerator(seed: options.seed &+ 1)
        let clock = ContinuousClock()
        for epoch in 1...epochs {
            let start = clock.now
            order.shuffle(using: &shuffler)
            var total: Float = 0
            for b in stride(from: 0, to: order.count, by: options.batchSize) {
                let idx = Array(order[b..<min(b + options.batchSize, order.count)])
                model.zeroGrad()
                let logits = model.forward(trainBatch.subset(idx), training: true)
                let (value, grad) = loss(logits, idx.map { yTrain[$0] })
                model.backward(grad)
                optimizer.step()
                total += value * Float(idx.count)
            }
            let seconds = (clock.now - start).seconds
            progress(epochLine(epoch, epochs, total / Float(order.count), Double(order.count) / max(seconds, 1e-9)))
        }
        let (m, c) = classificationMetrics(yTest, probabilities: softmaxRows(model.forward(testBatch, training: false)),
                                           classes: labels.classes.count)
        return Outcome(features: model.configuration.features.buckets, epochs: epochs, metrics: m, confusion: c,
                       checkpoint: nil)
    }

    static func epochLine(_ r: EpochReport, _ epochs: Int) -> String {
        epochLine(r.epoch, epochs, r.loss, r.samplesPerSecond)
    }

    static func epochLine(_ epoch: Int, _ epochs: Int, _ loss: Float, _ samplesPerSecond: Double) -> String {
        String(format: "epoch %d/%d  loss %.4f  %.0f samples/s", epoch, epochs, loss, samplesPerSecond)
    }
}

