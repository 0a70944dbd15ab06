/// Hyperparameters, named and defaulted as scikit-learn's `HistGradientBoosting{Regressor,Classifier}`.
public struct GBDTParameters: Sendable, Equatable {
    /// Shrinkage applied to every leaf value [`learning_rate`].
    public var learningRate = 0.1
    /// Boosting iterations (each grows one tree per output) [`max_iter`].
    public var maxIterations = 100
    /// [`max_leaf_nodes`]; nil = unlimited.
    public var maxLeafNodes: Int? = 31
    /// [`max_depth`]; nil = unlimited.
    public var maxDepth: Int?
    /// Bins for non-missing values, at most 255 [`max_bins`].
    public var maxBins = 255
    /// Rows used to compute bin thresholds (a seeded subsample above this) [`_BinMapper.subsample`].
    public var binningSubsample = 200_000
    /// `minSamplesLeaf`, `l2Regularization`, … [`min_samples_leaf`, `l2_regularization`].
    public var constraints = GBDTSplitConstraints()
    /// Off by default (scikit-learn's "auto" turns it on above 10 000 rows): training is then a pure
    /// function of the data and parameters.
    public var earlyStopping: GBDTEarlyStopping?
    /// Seeds the binning subsample and the validation split.
    public var seed: UInt64 = 0

    public init() {}

    public var minSamplesLeaf: Int {
        get { constraints.minSamplesLeaf }
        set { constraints.minSamplesLeaf = newValue }
    }

    public var l2Regularization: Double {
        get { constraints.l2Regularization }
        set { constraints.l2Regularization = newValue }
    }
}

/// Early stopping on a held-out part of the training rows, scored by the loss (scikit-learn's
/// `early_stopping=True, scoring="loss"`): stop when none of the last `patience` iterations improved the
/// validation loss by more than `tolerance` over the loss `patience + 1` iterations back. The trees up to
/// the stopping iteration are kept. The validation rows are a seeded random (not stratified) fraction of
/// each participant's rows; in distributed training the loss is summed over all participants' held-out rows.
public struct GBDTEarlyStopping: Sendable, Equatable {
    /// [`validation_fraction`]
    public var validationFraction = 0.1
    /// [`n_iter_no_change`]
    public var patience = 10
    /// [`tol`]
    public var tolerance = 1e-7
    public init() {}
}

/// A histogram-based gradient-boosted tree ensemble (LightGBM / scikit-learn `HistGradientBoosting` style):
/// features binned into ≤ 255 quantile bins plus a missing-value bin, trees grown leaf-wise from
/// gradient/hessian histograms with the subtraction trick, one tree per output per iteration.
///
/// Training is deterministic for given data, parameters and seed. It is written as a sum over data
/// partitions (Note [Histograms are sums over partitions]) with exact sums (Note [Exact histogram sums]):
/// handing every rank its rows, the same `binMapper` (Note [Distributed bin edges]) and an allreduce-backed
/// `GBDTCollective` yields, on every rank, the model a single process would train on all rows, bit for bit.
public struct GBDTModel: Sendable, Equatable {
    public let loss: GBDTLoss
    public let binMapper: GBDTBinMapper
    /// Raw prediction before any tree, per output.
    public let baseline: [Double]
    /// `trees[iteration][output]`.
    public private(set) var trees: [[GBDTTree]]
    /// Validation loss before the first tree and after each iteration (empty without early stopping).
    public private(set) var validationLosses: [Double]

    public var iterations: Int { trees.count }

    // MARK: Training

    // Note [Resuming boosting]: `resume` continues a model trained earlier on the same rows with the
    // same parameters (a checkpoint of a cluster job): its bin edges and baseline are reused (no
    // collective is entered for them, on any rank, since every rank resumes from the same model), the
    // training rows' raw scores are rebuilt by predicting with its trees (the same additions in the same
    // order as during training, so they are bit-identical), and boosting continues up to
    // `maxIterations` in total. The result is the model an uninterrupted run trains, bit for bit.
    // `onIteration` sees the model after every iteration (for checkpoints and progress).

    /// Regression with squared error.
    public static func fitRegressor(x: Tensor, targets: [Double], parameters: GBDTParameters = GBDTParameters(),
                                    binMapper: GBDTBinMapper? = nil,
                                    collective: some GBDTCollective = GBDTLocalCollective(), resume: GBDTModel? = nil,
                                    onIteration: (GBDTModel) -> Void = { _ in }) -> GBDTModel {
        precondition(targets.allSatisfy(\.isFinite), "GBDT: regression targets must be finite")
        return fit(x: x, targets: targets, loss: .squaredError, parameters: parameters, binMapper: binMapper,
                   collective: collective, resume: resume, onIteration: onIteration)
    }

    /// Classification with log loss: binary (one tree per iteration) for `classes == 2`, multinomial (one tree
    /// per class per iteration) above. Labels are `0 ..< classes`.
    public static func fitClassifier(x: Tensor, labels: [Int], classes: Int,
                                     parameters: GBDTParameters = GBDTParameters(), binMapper: GBDTBinMapper? = nil,
                                     collective: some GBDTCollective = GBDTLocalCollective(), resume: GBDTModel? = nil,
                                     onIteration: (GBDTModel) -> Void = { _ in }) -> GBDTModel {
        precondition(classes >= 2, "GBDT: a classifier needs at least 2 classes")
        precondition(labels.allSatisfy { $0 >= 0 && $0 < classes }, "GBDT: labels must lie in 0..<\(classes)")
        return fit(x: x, targets: labels.map(Double.init),
                   loss: classes == 2 ? .binaryLogLoss : .multinomialLogLoss(classes: classes),
                   parameters: parameters, binMapper: binMapper, collective: collective, resume: resume,
                   onIteration: onIteration)
    }

    static func fit(x: Tensor, targets: [Double], loss: GBDTLoss, parameters: GBDTParameters,
                    binMapper: GBDTBinMapper?, collective: some GBDTCollective, resume: GBDTModel? = nil,
                    onIteration: (GBDTModel) -> Void = { _ in }) -> GBDTModel {
        precondition(x.rank == 2 && x.rows == targets.count, "GBDT: x \(x.shape) vs \(targets.count) targets")
        precondition(parameters.learningRate > 0 && parameters.maxIterations >= 0, "GBDT: bad parameters")
        if let resume {
            precondition(resume.loss == loss, "GBDT: resuming a \(resume.loss) model with \(loss)")
            precondition(binMapper == nil || binMapper == resume.binMapper, "GBDT: resuming with other bin edges")
        }
        // Hold out validation rows first; bin thresholds come from the training rows only.
        var trainRows = Array(0..<x.rows), validationRows: [Int] = []
        if let stopping = parameters.earlyStopping {
            var rng = SeededGenerator(seed: parameters.seed)
            var order = trainRows
            for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
            let held = Int((Double(order.count) * stopping.validationFraction).rounded(.up))
            validationRows = order.suffix(held).sorted()
            trainRows = order.prefix(order.count - held).sorted()
        }
        let xTrain = validationRows.isEmpty ? x : x.gatherRows(trainRows)
        let yTrain = validationRows.isEmpty ? targets : trainRows.map { targets[$0] }
        let mapper = resume?.binMapper ?? binMapper ?? GBDTBinMapper.fit(xTrain, maxBins: parameters.maxBins,
                                                                          subsample: parameters.binningSubsample,
                                                                          seed: parameters.seed)
        precondition(mapper.features == x.columns, "GBDT: bin mapper for \(mapper.features) features, x has \(x.columns)")
        let binned = mapper.bin(xTrain)
        let k = loss.outputs, n = binned.rows
        let baseline = resume?.baseline ?? loss.baseline(yTrain, collective: collective)
        let totalRows = collective.totalCount(n)

        var model = resume ?? GBDTModel(loss: loss, binMapper: mapper, baseline: baseline, trees: [], validationLosses: [])
        // Note [Resuming boosting]: the raw scores of the trees so far
        var raw = resume.map { n > 0 ? $0.rawPredictions(xTrain) : [] } ?? [Double](repeating: 0, count: n * k)
        if resume == nil { for i in 0..<n { for c in 0..<k { raw[i * k + c] = baseline[c] } } }

        // Early-stopping state (binned validation rows, their raw predictions, the loss history).
        let validation = validationRows.isEmpty ? nil : mapper.bin(x.gatherRows(validationRows))
        let yValidation = validationRows.map { targets[$0] }
        let totalValidation = parameters.earlyStopping == nil ? 0 : collective.totalCount(validationRows.count)
        var validationRaw = [Double](repeating: 0, count: validationRows.count * k)
        for i in 0..<validationRows.count { for c in 0..<k { validationRaw[i * k + c] = baseline[c] } }
        if let resume, !validationRows.isEmpty { validationRaw = resume.rawPredictions(x.gatherRows(validationRows)) }
        func validationLoss() -> Double {
            let losses = validationRaw.withUnsafeBufferPointer { r in
                yValidation.withUnsafeBufferPointer { loss.rowLosses(raw: r.baseAddress!, targets: $0.baseAddress!, n: validationRows.count) }
            }
            return losses.withUnsafeBufferPointer { collective.exactSum($0) } / Double(max(totalValidation, 1))
        }
        if parameters.earlyStopping != nil && resume == nil { model.validationLosses.append(validationLoss()) }
        if let stopping = parameters.earlyStopping, resume != nil, shouldStop(model.validationLosses, stopping) { return model }

        var grower = GBDTGrower(data: binned, mapper: mapper, constraints: parameters.constraints,
                                maxLeafNodes: parameters.maxLeafNodes, maxDepth: parameters.maxDepth,
                                learningRate: parameters.learningRate)
        var gradients = [Double](repeating: 0, count: n * k), hessians = gradients
        let missingBins = (0..<mapper.features).map(mapper.missingBin)

        for _ in model.iterations..<max(model.iterations, parameters.maxIterations) {
            raw.withUnsafeBufferPointer { r in
                yTrain.withUnsafeBufferPointer { y in
                    gradients.withUnsafeMutableBufferPointer { g in
                        hessians.withUnsafeMutableBufferPointer { h in
                            loss.gradients(raw: r.baseAddress!, targets: y.baseAddress!, n: n, g: g.baseAddress!, h: h.baseAddress!)
                        }
                    }
                }
            }
            // Snap each output's gradients and hessians to its exact-sum grid (global max magnitudes).
            var maxima = [Double](repeating: 0, count: 2 * k)
            gradients.withUnsafeMutableBufferPointer { g in
                hessians.withUnsafeMutableBufferPointer { h in
                    for c in 0..<k {
                        maxima[2 * c] = GBDTGradientGrid.maxMagnitude(UnsafeBufferPointer(rebasing: g[(c * n)..<(c * n + n)]))
                        maxima[2 * c + 1] = GBDTGradientGrid.maxMagnitude(UnsafeBufferPointer(rebasing: h[(c * n)..<(c * n + n)]))
                    }
                    maxima.withUnsafeMutableBufferPointer { collective.max($0) }
                    for c in 0..<k {
                        GBDTGradientGrid.snap(UnsafeMutableBufferPointer(rebasing: g[(c * n)..<(c * n + n)]),
                                              step: GBDTGradientGrid.step(maxMagnitude: maxima[2 * c], totalRows: totalRows))
                        GBDTGradientGrid.snap(UnsafeMutableBufferPointer(rebasing: h[(c * n)..<(c * n + n)]),
                                              step: GBDTGradientGrid.step(maxMagnitude: maxima[2 * c + 1], totalRows: totalRows))
                    }
                }
            }
            var iterationTrees: [GBDTTree] = []
            for c in 0..<k {
                let (tree, leaves) = gradients.withUnsafeBufferPointer { g in
                    hessians.withUnsafeBufferPointer { h in
                        grower.grow(gradients: g.baseAddress! + c * n, hessians: h.baseAddress! + c * n, collective: collective)
                    }
                }
                // Training rows: add each leaf's value to the rows it holds (no tree traversal needed).
                grower.partition.withUnsafeBufferPointer { p in
                    raw.withUnsafeMutableBufferPointer { r in
                        for leaf in leaves {
                            for j in leaf.start..<leaf.stop { r[Int(p[j]) * k + c] += leaf.value }
                        }
                    }
                }
                if let validation {
                    tree.nodes.withUnsafeBufferPointer { nodes in
                        validation.bins.withUnsafeBufferPointer { bins in
                            missingBins.withUnsafeBufferPointer { mb in
                                for i in 0..<validation.rows {
                                    validationRaw[i * k + c] += tree.predictBinned(bins.baseAddress!, rows: validation.rows, row: i,
                                                                                   missingBins: mb.baseAddress!, nodes: nodes)
                                }
                            }
                        }
                    }
                }
                iterationTrees.append(tree)
            }
            model.trees.append(iterationTrees)
            if let stopping = parameters.earlyStopping {
                model.validationLosses.append(validationLoss())
                if shouldStop(model.validationLosses, stopping) {
                    onIteration(model)
                    break
                }
            }
            onIteration(model)
        }
        return model
    }

    /// scikit-learn's `_should_stop` on losses: no recent loss beats the one `patience + 1` back by `tolerance`.
    private static func shouldStop(_ losses: [Double], _ stopping: GBDTEarlyStopping) -> Bool {
        let reference = stopping.patience + 1
        guard losses.count >= reference else { return false }
        let referenceLoss = losses[losses.count - reference] - stopping.tolerance
        return !losses.suffix(reference - 1).contains { $0 < referenceLoss }
    }

    // MARK: Prediction

    /// Raw scores `[n × outputs]`: the baseline plus every tree's output. NaN features follow each node's
    /// missing-value direction.
    public func rawPredictions(_ x: Tensor) -> [Double] {
        precondition(x.rank == 2 && x.columns == binMapper.features,
                     "GBDT: expected [n, \(binMapper.features)] features, got \(x.shape)")
        let n = x.rows, d = x.columns, k = loss.outputs
        var raw = [Double](repeating: 0, count: n * k)
        x.storage.withUnsafeBufferPointer { xs in
            raw.withUnsafeMutableBufferPointer { r in
                for i in 0..<n { for c in 0..<k { r[i * k + c] = baseline[c] } }
                for iteration in trees {
                    for (c, tree) in iteration.enumerated() {
                        tree.nodes.withUnsafeBufferPointer { nodes in
                            for i in 0..<n { r[i * k + c] += tree.predict(row: xs.baseAddress! + i * d, nodes: nodes) }
                        }
                    }
                }
            }
        }
        return raw
    }

    /// Regression predictions.
    public func predict(_ x: Tensor) -> [Double] {
        precondition(loss == .squaredError, "GBDT: predict(_:) is for regression; use predictProbabilities or predictClasses")
        return rawPredictions(x)
    }

    /// Class probabilities `[n × classes]` (two columns, P(0) and P(1), for a binary model).
    public func predictProbabilities(_ x: Tensor) -> [Double] {
        var raw = rawPredictions(x)
        switch loss {
        case .squaredError:
            preconditionFailure("GBDT: predictProbabilities(_:) is for classifiers")
        case .binaryLogLoss:
            var out = [Double](repeating: 0, count: 2 * x.rows)
            for i in 0..<x.rows {
                let p = linearSigmoid(raw[i])
                out[2 * i] = 1 - p
                out[2 * i + 1] = p
            }
            return out
        case .multinomialLogLoss(let k):
            raw.withUnsafeMutableBufferPointer { r in
                for i in 0..<x.rows { linearSoftmaxInPlace(r.baseAddress! + i * k, k) }
            }
            return raw
        }
    }

    /// The most probable class per row.
    public func predictClasses(_ x: Tensor) -> [Int] {
        let raw = rawPredictions(x)
        switch loss {
        case .squaredError:
            preconditionFailure("GBDT: predictClasses(_:) is for classifiers")
        case .binaryLogLoss:
            return raw.map { $0 > 0 ? 1 : 0 }
        case .multinomialLogLoss(let k):
            return (0..<x.rows).map { i in
                var best = 0
                for c in 1..<k where raw[i * k + c] > raw[i * k + best] { best = c }
                return best
            }
        }
    }
}
