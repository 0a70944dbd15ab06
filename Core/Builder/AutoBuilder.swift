import Foundation
import NebulaCommon
import NebulaDataset
import NebulaEngine
import NebulaTraining

// Note [Builder runs]
// ~~~~~~~~~~~~~~~~~~~
// A run detects the task (AutoGluon's rules, overridable), holds out a validation split by AutoGluon's
// rule (n < 5000: max(0.1, min(0.2, 500/n)); else max(0.01, min(0.1, 2500/n)); stratified for
// classification), fits the preprocessing on the training rows (Note [One preprocessing path]) and
// trains a candidate set per task — tabular: linear (regression) or logistic, an MLP, a GBDT, plus a
// CNN when the columns are the pixels of a square image; text: three fastText-style classifiers. Each
// candidate gets an equal share of what is left of the time budget and stops early (iterative
// models keep the epoch with the best validation score; GBDT stops when its own validation loss stops
// improving). The leaderboard ranks them on the validation split; a weighted ensemble of the
// candidates (Caruana's greedy selection on the validation predictions) joins when it scores better.
// Because early stopping and the ensemble weights also look at the validation split, its scores are
// somewhat optimistic — as in AutoGluon, whose `score_val` is computed the same way.

/// The ML system builder: from a columnar dataset and a target to a leaderboard, report data and a
/// model bundle.
public enum AutoBuilder {
    /// A whole run in this process: prepare, train every candidate one after the other, finish.
    /// (The coordinator runs the candidates as cluster jobs instead: Note [Candidates as cluster jobs].)
    public static func run(_ dataset: ColumnarDataset, _ request: BuilderRequest,
                           progress: (String) -> Void = { _ in }) throws -> (BuilderResult, ModelBundle) {
        let clock = ContinuousClock()
        let started = clock.now
        let prep = try prepare(dataset, request, progress: progress)
        var outcomes: [CandidateOutcome] = []
        var notes: [String] = []
        for (i, name) in prep.candidateNames.enumerated() {
            let spent = (clock.now - started).seconds
            let share = max(0.5, (request.timeBudgetSeconds - spent) / Double(prep.candidateNames.count - i))
            if spent >= request.timeBudgetSeconds, !outcomes.isEmpty {
                notes.append("\(name) was not trained: the time budget was spent")
                continue
            }
            progress("training \(name) (up to \(Int(share)) s)")
            let outcome = try train(prep, candidate: name, budget: share)
            progress("\(name): \(prep.metric.name) \(String(format: "%.4f", outcome.row.scoreVal)) in \(String(format: "%.1f", outcome.row.fitTime)) s")
            outcomes.append(outcome)
        }
        return try finish(dataset, prep, outcomes: outcomes, notes: notes, started: { (clock.now - started).seconds }, progress: progress)
    }

    /// Everything before training: task, labels, metric, holdout split, preprocessing (fitted on the
    /// training rows, or `preprocessor` as given — a candidate job uses the coordinator's) and the
    /// candidate set.
    /// `trainingInputs: false` leaves the training rows unencoded (the coordinator, which only scores
    /// and reports, never trains on them).
    public static func prepare(_ dataset: ColumnarDataset, _ request: BuilderRequest, preprocessor given: Preprocessor? = nil,
                               trainingInputs: Bool = true, progress: (String) -> Void = { _ in }) throws -> BuilderPreparation {
        let (detection, override) = try preamble(dataset, request)
        let task = detection.problemType
        let classification = task != .regression
        let targetView = try dataset.column(request.target)
        let labelled = (0..<dataset.rowCount).filter { targetView.string($0).map { !isMissingText($0) } ?? false }
        guard labelled.count >= 10 else {
            throw BuilderError(.invalidRequest, "target '\(request.target)' has \(labelled.count) rows with a value; at least 10 are needed",
                               field: "target")
        }
        // Classes sorted by value, so the class order does not depend on the row order.
        var classes: [String] = []
        var classOf: [String: Int] = [:]
        var yClass: [Int] = []
        var yValue: [Double] = []
        if classification {
            classes = Set(labelled.compactMap { targetView.string($0) }).sorted { a, b in
                if let x = Double(a), let y = Double(b) { return x < y }
                return a < b
            }
            guard classes.count >= 2 else {
                throw BuilderError(.invalidRequest, "target '\(request.target)' has a single value ('\(classes.first ?? "")'): nothing to learn", field: "target")
            }
            classOf = Dictionary(uniqueKeysWithValues: classes.enumerated().map { ($1, $0) })
            yClass = labelled.map { classOf[targetView.string($0)!]! }
        } else {
            yValue = try labelled.map { r in
                guard let v = Preprocessor.number(targetView.string(r)) else {
                    throw BuilderError(.invalidRequest, "target '\(request.target)' row \(r + 1) is '\(targetView.string(r) ?? "")', not a number; regression needs numbers",
                                       field: "target")
                }
                return v
            }
        }
        let metric = try evalMetric(request.metric, task: task)

        // Holdout (AutoGluon's rule).
        let n = labelled.count
        let fraction = n < 5000 ? max(0.1, min(0.2, 500 / Double(n))) : max(0.01, min(0.1, 2500 / Double(n)))
        let split = trainTestSplit(rows: n, testFraction: fraction, seed: request.seed, stratifyBy: classification ? yClass : nil)
        let trainRows = split.train.map { labelled[$0] }
        let valRows = split.test.map { labelled[$0] }
        progress("\(task.rawValue) (\(detection.reason)); \(trainRows.count) training and \(valRows.count) validation rows")

        let preprocessor = try given ?? Preprocessor.fit(dataset, target: request.target, textColumns: detection.textColumns, rows: trainRows)
        func input(_ rows: [Int]) throws -> ModelInput {
            let views = try preprocessor.columns.map { try dataset.column($0.name) }
            let x = try preprocessor.transform(rows: rows.count) { c, r in views[c].string(rows[r]) }
            var texts: [String] = []
            if let textColumn = detection.textColumns.first {
                let view = try dataset.column(textColumn)
                texts = rows.map { view.string($0) ?? "" }
            }
            return ModelInput(features: x, texts: texts)
        }
        let truth = Truth(classes: split.test.map { classification ? yClass[$0] : 0 }, values: split.test.map { classification ? 0 : yValue[$0] },
                          k: classes.count)
        let context = TrainContext(train: try input(trainingInputs ? trainRows : []), val: try input(valRows),
                                   yClass: split.train.map { classification ? yClass[$0] : 0 },
                                   yValue: split.train.map { classification ? 0 : yValue[$0] }, truth: truth, task: task,
                                   metric: metric, seed: request.seed, textColumn: detection.textColumns.first ?? "")
        progress("\(preprocessor.width) features from \(preprocessor.columns.count) columns" +
                 (detection.textColumns.isEmpty ? "" : "; text column '\(detection.textColumns[0])'"))

        // Candidates.
        var plans: [CandidatePlan] = []
        if detection.modality == .text, !detection.textColumns.isEmpty, classification {
            plans = [.text(name: "TextNGrams", words: true, chars: true, hidden: nil),
                     .text(name: "TextWords", words: true, chars: false, hidden: nil),
                     .text(name: "TextNGramsHidden", words: true, chars: true, hidden: 64)]
        } else {
            guard preprocessor.width > 0 else {
                throw BuilderError(.invalidRequest, "no usable feature columns besides '\(request.target)' (\(preprocessor.skipped.joined(separator: "; ")))",
                                   field: "target")
            }
            plans = [classification ? .logistic : .linear, .mlp, .gbdt]
            if classification, let image = squareImage(dataset, preprocessor, target: request.target) {
                plans.append(.cnn(side: image.side, channels: image.channels))
            }
        }
        return BuilderPreparation(request: request, detection: detection, overridden: override != nil, classes: classes, metric: metric,
                                  holdoutFraction: fraction, trainRows: trainRows, validationRows: valRows, preprocessor: preprocessor,
                                  context: context, plans: plans)
    }

    /// Trains one candidate of a prepared run and scores it on the validation rows. With
    /// `parallelism` (a job over several ranks) the networks train data-parallel; every rank must call
    /// this with the same arguments.
    public static func train(_ prep: BuilderPreparation, candidate name: String, budget: Double,
                             parallelism: (any CandidateParallelism)? = nil,
                             onEpoch: @escaping (CurvePoint) -> Void = { _ in }) throws -> CandidateOutcome {
        guard prep.context.train.features.rows == prep.trainRows.count else {
            throw BuilderError(.invalidRequest, "this run was prepared without its training inputs: it cannot train candidates")
        }
        guard let plan = prep.plans.first(where: { $0.name == name }) else {
            throw BuilderError(.invalidRequest, "no candidate '\(name)' for this run (candidates: \(prep.candidateNames.joined(separator: ", ")))")
        }
        let clock = ContinuousClock()
        let fitStart = clock.now
        var context = prep.context
        context.onEpoch = onEpoch
        let (model, curve, params) = try plan.fit(context, budget: budget, parallelism: parallelism)
        let fitTime = (clock.now - fitStart).seconds
        let predStart = clock.now
        let prediction = try model.predict(prep.context.val, classes: prep.classes.count)
        let predTime = (clock.now - predStart).seconds
        let scores = prep.context.truth.scores(prediction)
        var parameters = params
        if let p = parallelism, p.size > 1 { parameters["ranks"] = "\(p.size) (data-parallel)" }
        let row = LeaderboardRow(model: plan.name, scoreVal: scores[prep.metric.name] ?? .nan, evalMetric: prep.metric.name, fitTime: fitTime,
                                 predTimeVal: predTime, params: parameters, metrics: scores, best: false)
        return CandidateOutcome(row: row, model: model, prediction: prediction, curve: curve, fingerprint: prep.fingerprint)
    }

    /// From the trained candidates to the leaderboard (plus a weighted ensemble when it scores better),
    /// the bundle and the report data.
    public static func finish(_ dataset: ColumnarDataset, _ prep: BuilderPreparation, outcomes: [CandidateOutcome], notes given: [String],
                              started seconds: () -> Double, progress: (String) -> Void = { _ in }) throws -> (BuilderResult, ModelBundle) {
        guard !outcomes.isEmpty else {
            throw BuilderError(.invalidRequest, "no candidate was trained: " + (given.isEmpty ? "none ran" : given.joined(separator: "; ")))
        }
        for o in outcomes where o.fingerprint != prep.fingerprint {
            throw BuilderError(.invalidRequest, "candidate \(o.row.model) trained on another split of the data (\(o.fingerprint), expected \(prep.fingerprint))")
        }
        let request = prep.request
        let task = prep.task
        let classification = task != .regression
        let classes = prep.classes
        let metric = prep.metric
        let truth = prep.context.truth
        let preprocessor = prep.preprocessor
        var notes = given
        var members = outcomes.map(\.model)
        var rows = outcomes.map(\.row)
        var predictions = outcomes.map(\.prediction)
        if outcomes.count >= 2 {
            let (weights, ensemblePrediction) = greedyEnsemble(predictions, truth: truth, metric: metric)
            let scores = truth.scores(ensemblePrediction)
            let score = scores[metric.name] ?? .nan
            let bestSingle = rows.map(\.scoreVal).max(by: { metric.worse($0, $1) })!
            let used = weights.enumerated().filter { $0.element > 0 }
            if used.count >= 2, metric.worse(bestSingle, score) {
                let params = Dictionary(uniqueKeysWithValues: used.map { (rows[$0.offset].model, String(format: "%.3f", $0.element)) })
                members.append(.ensemble(members: used.map(\.offset), weights: used.map(\.element)))
                rows.append(LeaderboardRow(model: "WeightedEnsemble", scoreVal: score, evalMetric: metric.name,
                                           fitTime: rows.map(\.fitTime).reduce(0, +), predTimeVal: rows.map(\.predTimeVal).reduce(0, +),
                                           params: params, metrics: scores, best: false))
                predictions.append(ensemblePrediction)
            } else {
                notes.append("a weighted ensemble did not score better than the best single model on validation")
            }
        }
        let bestIndex = rows.indices.max { metric.worse(rows[$0].scoreVal, rows[$1].scoreVal) }!
        rows[bestIndex].best = true
        let bundle = ModelBundle(task: task.rawValue, target: request.target, classes: classes, preprocessor: preprocessor,
                                 textColumn: prep.detection.textColumns.first, members: members, best: bestIndex,
                                 modelName: rows[bestIndex].model, metrics: rows[bestIndex].metrics)
        let bestPrediction = predictions[bestIndex]

        // Report data for the best model.
        var result = BuilderResult(
            target: request.target, task: task.rawValue, modality: prep.detection.modality.rawValue, taskReason: prep.detection.reason,
            taskOverridden: prep.overridden, rows: dataset.rowCount, trainRows: prep.trainRows.count, validationRows: prep.validationRows.count,
            holdoutFraction: prep.holdoutFraction, evalMetric: metric.name,
            columns: try dataset.columnNames.map { name in
                let c = try dataset.column(name)
                let distinct = c.type == .categorical ? c.dictionary.count : nil
                return .init(name: name, type: c.type.rawValue, missing: c.nullCount, distinct: distinct)
            },
            features: preprocessor.width, skippedColumns: preprocessor.skipped, classes: classification ? classes : nil,
            leaderboard: rows.sorted { metric.worse($1.scoreVal, $0.scoreVal) }, bestModel: rows[bestIndex].model,
            bestMetrics: rows[bestIndex].metrics,
            curves: Dictionary(uniqueKeysWithValues: outcomes.filter { !$0.curve.isEmpty }.map { ($0.row.model, $0.curve) }),
            confusionMatrix: nil, rocCurve: nil, predictedVsActual: nil, permutationImportance: [],
            validationRowNumbers: prep.validationRows, seconds: 0, notes: notes)
        if classification {
            result.confusionMatrix = Metrics.confusionMatrix(truth.classes, bestPrediction.classes, labels: Array(0..<classes.count))
            if classes.count == 2, case .probabilities(let p, _) = bestPrediction {
                result.rocCurve = rocCurve(truth.classes, scores: (0..<truth.classes.count).map { p[$0 * 2 + 1] })
            }
        } else if case .values(let v) = bestPrediction {
            result.predictedVsActual = zip(v, truth.values).prefix(1000).map { [$0, $1] }
        }
        progress("permutation importance of \(rows[bestIndex].model)")
        let image = prep.plans.lazy.compactMap { plan -> (side: Int, channels: Int)? in
            if case .cnn(let side, let channels) = plan { (side, channels) } else { nil }
        }.first
        let limit = max(10, request.timeBudgetSeconds / 10)
        let (importance, complete) = try permutationImportance(bundle, val: prep.context.val, truth: truth, metric: metric,
                                                               base: rows[bestIndex].scoreVal, seed: request.seed, image: image,
                                                               limitSeconds: limit)
        result.permutationImportance = importance
        if image != nil { result.notes.append("permutation importance is measured per image patch (all channels of a block of pixels), not per pixel") }
        if !complete {
            result.notes.append("permutation importance stopped after \(Int(limit)) s: \(importance.count) of the columns were measured")
        }
        result.seconds = seconds()
        return (result, bundle)
    }

    /// The checks a run makes before training (target, task, metric, labels), so a service can
    /// refuse a bad request at once.
    public static func validate(_ dataset: ColumnarDataset, _ request: BuilderRequest) throws {
        let (detection, _) = try preamble(dataset, request)
        _ = try evalMetric(request.metric, task: detection.problemType)
        if detection.problemType != .regression {
            let view = try dataset.column(request.target)
            var seen = Set<String>()
            for r in 0..<dataset.rowCount {
                if let v = view.string(r), !isMissingText(v) { seen.insert(v); if seen.count > 1 { return } }
            }
            throw BuilderError(.invalidRequest, "target '\(request.target)' has a single value ('\(seen.first ?? "")'): nothing to learn",
                               field: "target")
        }
    }

    static func preamble(_ dataset: ColumnarDataset, _ request: BuilderRequest) throws -> (TaskDetectionResult, ProblemType?) {
        guard request.timeBudgetSeconds >= 1 else {
            throw BuilderError(.invalidRequest, "the time budget must be at least 1 second", field: "time_budget")
        }
        guard dataset.columnNames.contains(request.target) else {
            throw BuilderError(.invalidRequest, "no column '\(request.target)' in the dataset: choose the target among \(dataset.columnNames.map { "'\($0)'" }.joined(separator: ", "))",
                               field: "target")
        }
        var override: ProblemType?
        if let t = request.task, !t.isEmpty {
            guard let p = ProblemType(rawValue: t) else {
                throw BuilderError(.invalidRequest, "unknown task '\(t)': use binary, multiclass or regression", field: "task")
            }
            override = p
        }
        let detection: TaskDetectionResult
        do {
            detection = try TaskInference.detect(dataset, target: request.target, override: override)
        } catch let e as DatasetError {
            throw BuilderError(.invalidRequest, e.message, field: "target")
        }
        return (detection, override)
    }

    // MARK: Metrics

    public struct Metric: Sendable {
        public var name: String
        public var higherIsBetter: Bool
        /// true when `a` is worse than `b` (NaN is worst).
        func worse(_ a: Double, _ b: Double) -> Bool {
            if a.isNaN { return !b.isNaN }
            if b.isNaN { return false }
            return higherIsBetter ? a < b : a > b
        }
    }

    static func evalMetric(_ requested: String?, task: ProblemType) throws -> Metric {
        let classification = ["accuracy": true, "balanced_accuracy": true, "f1_macro": true, "log_loss": false]
        let binaryOnly = ["roc_auc": true]
        let regression = ["rmse": false, "mae": false, "r2": true]
        let allowed = task == .regression ? regression : task == .binary ? classification.merging(binaryOnly) { a, _ in a } : classification
        let name = requested.flatMap { $0.isEmpty ? nil : $0 } ?? (task == .regression ? "rmse" : "accuracy")
        guard let higher = allowed[name] else {
            throw BuilderError(.invalidRequest, "metric '\(name)' does not apply to \(task.rawValue): use one of \(allowed.keys.sorted().joined(separator: ", "))",
                               field: "metric")
        }
        return Metric(name: name, higherIsBetter: higher)
    }

    struct Truth {
        var classes: [Int]
        var values: [Double]
        var k: Int

        func scores(_ p: Prediction) -> [String: Double] {
            switch p {
            case .probabilities(let probs, let k):
                let predicted = p.classes
                var m: [String: Double] = [
                    "accuracy": Metrics.accuracy(classes, predicted),
                    "balanced_accuracy": Metrics.balancedAccuracy(classes, predicted),
                    "f1_macro": Metrics.f1(classes, predicted),
                    "log_loss": Metrics.logLoss(classes, probabilities: probs, classes: k),
                ]
                if k == 2, let auc = Metrics.rocAUC(classes, scores: (0..<classes.count).map { probs[$0 * 2 + 1] }) { m["roc_auc"] = auc }
                return m
            case .values(let v):
                return ["rmse": Metrics.rootMeanSquaredError(values, v), "mae": Metrics.meanAbsoluteError(values, v),
                        "r2": Metrics.r2(values, v)]
            }
        }
    }

    /// Caruana et al.'s ensemble selection: 25 greedy rounds, with replacement; weights are the counts.
    static func greedyEnsemble(_ predictions: [Prediction], truth: Truth, metric: Metric) -> ([Double], Prediction) {
        func vector(_ p: Prediction) -> [Double] {
            switch p { case .probabilities(let v, _): v; case .values(let v): v }
        }
        let vectors = predictions.map(vector)
        let isValues: Bool = { if case .values = predictions[0] { return true } else { return false } }()
        func wrap(_ v: [Double]) -> Prediction { isValues ? .values(v) : .probabilities(v, classes: truth.k) }
        var counts = [Int](repeating: 0, count: predictions.count)
        var sum = [Double](repeating: 0, count: vectors[0].count)
        var chosen = 0
        for _ in 0..<25 {
            var best: (index: Int, score: Double)?
            for (i, v) in vectors.enumerated() {
                let trial = zip(sum, v).map { ($0 + $1) / Double(chosen + 1) }
                let s = truth.scores(wrap(trial))[metric.name] ?? .nan
                if best == nil || metric.worse(best!.score, s) { best = (i, s) }
            }
            guard let pick = best else { break }
            counts[pick.index] += 1
            chosen += 1
            for j in sum.indices { sum[j] += vectors[pick.index][j] }
        }
        let weights = counts.map { Double($0) / Double(max(1, chosen)) }
        return (weights, wrap(sum.map { $0 / Double(max(1, chosen)) }))
    }

    static func rocCurve(_ truth: [Int], scores: [Double]) -> [[Double]] {
        let order = scores.indices.sorted { scores[$0] > scores[$1] }
        let positives = Double(truth.filter { $0 == 1 }.count), negatives = Double(truth.count) - positives
        guard positives > 0, negatives > 0 else { return [] }
        var tp = 0.0, fp = 0.0
        var points: [[Double]] = [[0, 0]]
        var i = 0
        while i < order.count {
            let s = scores[order[i]]
            while i < order.count && scores[order[i]] == s {
                if truth[order[i]] == 1 { tp += 1 } else { fp += 1 }
                i += 1
            }
            points.append([fp / negatives, tp / positives])
        }
        // At most ~200 points for the chart.
        let step = max(1, points.count / 200)
        return points.enumerated().filter { $0.offset % step == 0 || $0.offset == points.count - 1 }.map(\.element)
    }

    /// Score drop per input column when its values are shuffled across the validation rows — per image
    /// patch (a 4×4 grid of blocks, all channels) when the columns are an image's pixels; stops after
    /// `limitSeconds` (answering false) so that a table of thousands of columns does not hold a run up.
    static func permutationImportance(_ bundle: ModelBundle, val: ModelInput, truth: Truth, metric: Metric, base: Double,
                                      seed: UInt64, image: (side: Int, channels: Int)? = nil,
                                      limitSeconds: Double = .infinity) throws -> ([[String]], Bool) {
        var rng = SeededGenerator(seed: seed &+ 99)
        let n = val.features.rows, width = val.features.columns
        let permutation: [Int] = {
            var p = Array(0..<n)
            p.shuffle(using: &rng)
            return p
        }()
        // Groups of feature positions, each shuffled together.
        var groups: [(String, [Int])] = []
        if let image, width == image.side * image.side * image.channels {
            let step = max(1, (image.side + 3) / 4), plane = image.side * image.side
            for y0 in stride(from: 0, to: image.side, by: step) {
                for x0 in stride(from: 0, to: image.side, by: step) {
                    var members: [Int] = []
                    for c in 0..<image.channels {
                        for y in y0..<min(image.side, y0 + step) {
                            for x in x0..<min(image.side, x0 + step) { members.append(c * plane + y * image.side + x) }
                        }
                    }
                    groups.append(("pixels y \(y0)–\(min(image.side, y0 + step) - 1), x \(x0)–\(min(image.side, x0 + step) - 1)", members))
                }
            }
        } else {
            var offset = 0
            for column in bundle.preprocessor.columns {
                let block: Int
                switch column.encoding {
                case .numeric: block = 1
                case .oneHot(let levels): block = levels.count + 1
                case .dateParts: block = 5
                }
                groups.append((column.name, Array(offset..<offset + block)))
                offset += block
            }
        }
        let clock = ContinuousClock()
        let start = clock.now
        var results: [(String, Double)] = []
        var complete = true
        for (name, members) in groups {
            if (clock.now - start).seconds > limitSeconds { complete = false; break }
            var shuffled = val
            for r in 0..<n {
                for j in members { shuffled.features.storage[r * width + j] = val.features.storage[permutation[r] * width + j] }
            }
            let score = truth.scores(try bundle.predict(shuffled))[metric.name] ?? .nan
            results.append((name, metric.higherIsBetter ? base - score : score - base))
        }
        if complete, let text = bundle.textColumn, !val.texts.isEmpty {
            var shuffled = val
            shuffled.texts = permutation.map { val.texts[$0] }
            let score = truth.scores(try bundle.predict(shuffled))[metric.name] ?? .nan
            results.append((text, metric.higherIsBetter ? base - score : score - base))
        }
        return (results.sorted { $0.1 > $1.1 }.map { [$0.0, String(format: "%.5f", $0.1)] }, complete)
    }

    /// The side and channel count of the image when the feature columns are the pixels of one square
    /// image: named prefix0…prefixN−1, all numeric, N = side² (grey) or 3·side² (RGB, channel-major as
    /// the pixel tables of image folders are), side at least 4.
    static func squareImage(_ dataset: ColumnarDataset, _ preprocessor: Preprocessor, target: String) -> (side: Int, channels: Int)? {
        let names = dataset.columnNames.filter { $0 != target }
        guard preprocessor.columns.count == names.count,
              preprocessor.columns.allSatisfy({ if case .numeric = $0.encoding { true } else { false } })
        else { return nil }
        let prefix = names.first?.prefix { !$0.isNumber } ?? ""
        guard !prefix.isEmpty, names.enumerated().allSatisfy({ $0.element == "\(prefix)\($0.offset)" }) else { return nil }
        for channels in [1, 3] where names.count % channels == 0 {
            let side = Int(Double(names.count / channels).squareRoot().rounded())
            if side >= 4, side * side * channels == names.count { return (side, channels) }
        }
        return nil
    }
}

