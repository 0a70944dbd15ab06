import NebulaEngine
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("GBDT binning, histograms, splits, trees")
struct GBDTTests {
    /// `[n, d]` uniform features with every `nanEvery`-th value of feature 1 missing.
    static func randomFeatures(rows n: Int, features d: Int, seed: UInt64, nanEvery: Int? = 7) -> Tensor {
        var rng = SeededGenerator(seed: seed)
        var storage = (0..<(n * d)).map { _ in rng.uniform(1) }
        if let nanEvery, d > 1 { for i in stride(from: 0, to: n, by: nanEvery) { storage[i * d + 1] = .nan } }
        return Tensor(shape: [n, d], storage: storage)
    }

    // MARK: Binning

    @Test func fewDistinctValuesGiveMidpoints() {
        var values: [Double] = [3, 1, 2, 2, 1, 5]
        #expect(GBDTBinMapper.thresholds(of: &values) == [1.5, 2.5, 4])
        let x = Tensor(shape: [5, 1], storage: [1, 2, .nan, 5, 2.5])
        let mapper = GBDTBinMapper.fit(x)
        #expect(mapper.thresholds == [[1.5, 2.25, 3.75]])
        #expect(mapper.nonMissingBins(0) == 4 && mapper.missingBin(0) == 4)
        // x ≤ t goes to the lower bin: 1 → 0, 2 → 1, NaN → missing bin, 5 → 3, 2.5 → 2.
        #expect(mapper.bin(x).bins == [0, 1, 4, 3, 2])
        #expect(mapper.bin(Tensor(shape: [2, 1], storage: [1.5, 1.5000001])).bins == [0, 1])
    }

    /// Reference: `numpy.percentile(v, numpy.linspace(0, 100, 256)[1:-1], method="midpoint")` for
    /// v_i = float32(((i·7919) mod 1000)·0.5 + (i mod 3)·0.001), i < 1000 (1000 distinct values), which
    /// includes the whole-number positions k = 85 and 170 where numpy's rounding decides the value.
    @Test func manyDistinctValuesGiveNumpyPercentiles() {
        var values: [Double] = []
        for i in 0..<1000 {
            let v: Double = Double((i * 7919) % 1000) * 0.5 + Double(i % 3) * 0.001
            values.append(Double(Float(v)))
        }
        let t = GBDTBinMapper.thresholds(of: &values)
        #expect(t.count == 254)
        #expect(t[0] == 1.7515000700950623)
        #expect(t[1] == 3.75)
        #expect(t[84] == 166.7509994506836)
        #expect(t[100] == 197.75150299072266)
        #expect(t[169] == 333.2515106201172)
        #expect(t[253] == 497.75201416015625)
    }

    @Test func allMissingColumnAndEncodingRoundTrip() {
        let x = Tensor(shape: [3, 2], storage: [.nan, 1, .nan, 2, .nan, 3])
        let mapper = GBDTBinMapper.fit(x)
        #expect(mapper.thresholds[0].isEmpty && mapper.missingBin(0) == 1)
        #expect(mapper.bin(x).bins == [1, 1, 1, 0, 1, 2])
        #expect(GBDTBinMapper(encoded: mapper.encoded) == mapper)
        let wide = GBDTBinMapper.fit(Self.randomFeatures(rows: 2000, features: 3, seed: 5))
        #expect(wide.thresholds.map(\.count) == [254, 254, 254])
        #expect(GBDTBinMapper(encoded: wide.encoded) == wide)
    }

    // MARK: Histograms

    /// Random gradients and hessians snapped to the exact-sum grid for `n` rows.
    static func snappedGradients(_ n: Int, seed: UInt64) -> (g: [Double], h: [Double]) {
        var rng = SeededGenerator(seed: seed)
        var g = (0..<n).map { _ in Double(rng.nextNormal()) * 3 + 0.1 * Double(rng.next() % 1000) / 7 }
        var h = (0..<n).map { _ in Double(rng.nextUnit()) * 0.25 + 1e-9 }
        g.withUnsafeMutableBufferPointer { p in
            GBDTGradientGrid.snap(p, step: GBDTGradientGrid.step(maxMagnitude: GBDTGradientGrid.maxMagnitude(UnsafeBufferPointer(p)), totalRows: n))
        }
        h.withUnsafeMutableBufferPointer { p in
            GBDTGradientGrid.snap(p, step: GBDTGradientGrid.step(maxMagnitude: GBDTGradientGrid.maxMagnitude(UnsafeBufferPointer(p)), totalRows: n))
        }
        return (g, h)
    }

    @Test func histogramIsExactSumOverPartitions() {
        let n = 1500
        let x = Self.randomFeatures(rows: n, features: 4, seed: 21)
        let mapper = GBDTBinMapper.fit(x)
        let data = mapper.bin(x)
        let (g, h) = Self.snappedGradients(n, seed: 22)
        let full = GBDTHistogram.build(data, layout: mapper.layout, rows: nil, gradients: g, hessians: h)
        // Every feature's bins hold every row once.
        for f in 0..<4 {
            var count = 0.0
            for b in mapper.layout.offsets[f]..<mapper.layout.offsets[f + 1] { count += full[3 * b + 2] }
            #expect(count == Double(n))
        }
        for parts in [2, 3] {
            // Round-robin partitions, summed in reverse order: bit-identical to the single pass.
            var summed = [Double](repeating: 0, count: mapper.layout.count)
            for p in (0..<parts).reversed() {
                let rows = (0..<n).filter { $0 % parts == p }.map(Int32.init)
                let part = GBDTHistogram.build(data, layout: mapper.layout, rows: rows, gradients: g, hessians: h)
                part.withUnsafeBufferPointer { src in
                    summed.withUnsafeMutableBufferPointer { GBDTHistogram.add(src.baseAddress!, into: $0.baseAddress!, count: src.count) }
                }
            }
            #expect(summed == full)
        }
        // A node's rows (shuffled subset) split into 3 uneven contiguous chunks.
        var rng = SeededGenerator(seed: 23)
        let node = Array((0..<Int32(n)).shuffled(using: &rng).prefix(700))
        let whole = GBDTHistogram.build(data, layout: mapper.layout, rows: node, gradients: g, hessians: h)
        var summed = [Double](repeating: 0, count: mapper.layout.count)
        for chunk in [node[0..<100], node[100..<450], node[450...]] {
            let part = GBDTHistogram.build(data, layout: mapper.layout, rows: Array(chunk), gradients: g, hessians: h)
            for i in summed.indices { summed[i] += part[i] }
        }
        #expect(summed == whole)
        // Why the grid: the same sums of raw Doubles depend on the order (some bin differs in its last bits).
        var raw = SeededGenerator(seed: 24)
        let rawG = (0..<n).map { _ in Double(raw.nextNormal()) * 3 + 0.1 * Double(raw.next() % 1000) / 7 }
        let rawFull = GBDTHistogram.build(data, layout: mapper.layout, rows: nil, gradients: rawG, hessians: h)
        var rawSummed = [Double](repeating: 0, count: mapper.layout.count)
        for p in (0..<3).reversed() {
            let part = GBDTHistogram.build(data, layout: mapper.layout, rows: (0..<n).filter { $0 % 3 == p }.map(Int32.init),
                                           gradients: rawG, hessians: h)
            for i in rawSummed.indices { rawSummed[i] += part[i] }
        }
        #expect(rawSummed != rawFull)
    }

    @Test func siblingIsParentMinusChildExactly() {
        let n = 800
        let x = Self.randomFeatures(rows: n, features: 3, seed: 31)
        let mapper = GBDTBinMapper.fit(x)
        let data = mapper.bin(x)
        let (g, h) = Self.snappedGradients(n, seed: 32)
        let left = (0..<Int32(n)).filter { x[Int($0), 0] <= 0.1 }, right = (0..<Int32(n)).filter { x[Int($0), 0] > 0.1 }
        let parent = GBDTHistogram.build(data, layout: mapper.layout, rows: nil, gradients: g, hessians: h)
        let l = GBDTHistogram.build(data, layout: mapper.layout, rows: left, gradients: g, hessians: h)
        let r = GBDTHistogram.build(data, layout: mapper.layout, rows: right, gradients: g, hessians: h)
        var difference = [Double](repeating: 0, count: parent.count)
        GBDTHistogram.subtract(parent, l, into: &difference, count: parent.count)
        #expect(difference == r)
    }

    @Test func gridStepBoundsTheSums() {
        let step = GBDTGradientGrid.step(maxMagnitude: 3.7, totalRows: 1000)
        #expect(step.significand == 1)  // a power of two
        #expect(3.7 * 1000 <= 0x1p52 * step && 3.7 * 1000 > 0x1p51 * step)
        #expect(GBDTGradientGrid.step(maxMagnitude: 0, totalRows: 10) == 1)
        #expect(GBDTGradientGrid.step(maxMagnitude: 1, totalRows: 1) == 0x1p-51)
    }

    // MARK: Split finding

    /// One feature, thresholds [1.5, 2.5, 3.5]: bins 0–3 and the missing bin 4.
    static let oneFeature = GBDTBinMapper(thresholds: [[1.5, 2.5, 3.5]])

    static func histogram(_ bins: [(g: Double, h: Double, n: Double)]) -> [Double] {
        bins.flatMap { [$0.g, $0.h, $0.n] }
    }

    @Test func bestSplitOnHandMadeHistogram() throws {
        var constraints = GBDTSplitConstraints()
        constraints.minSamplesLeaf = 1
        let hist = Self.histogram([(-4, 4, 4), (-4, 4, 4), (4, 4, 4), (4, 4, 4), (0, 0, 0)])
        let split = try #require(hist.withUnsafeBufferPointer {
            GBDTSplitFinder.bestSplit(histogram: $0, mapper: Self.oneFeature, hasMissing: [false], gradient: 0, hessian: 16,
                                      count: 16, constraints: constraints)
        })
        #expect(split.feature == 0 && split.bin == 1 && !split.missingGoesLeft)
        #expect(split.countLeft == 8 && split.countRight == 8 && split.gradientLeft == -8 && split.hessianRight == 8)
        #expect(abs(split.gain - 16) < 1e-12)  // G_L²/H_L + G_R²/H_R − G²/H = 8 + 8 − 0
        // min_samples_leaf = 9 makes every split invalid.
        constraints.minSamplesLeaf = 9
        #expect(hist.withUnsafeBufferPointer {
            GBDTSplitFinder.bestSplit(histogram: $0, mapper: Self.oneFeature, hasMissing: [false], gradient: 0, hessian: 16,
                                      count: 16, constraints: constraints)
        } == nil)
    }

    @Test func missingValuesChooseTheirSide() throws {
        var constraints = GBDTSplitConstraints()
        constraints.minSamplesLeaf = 1
        // Missing rows look like the low bins: best is {0, 1, missing} vs {2, 3}, scanned right to left.
        let hist = Self.histogram([(-4, 4, 4), (-4, 4, 4), (4, 4, 4), (4, 4, 4), (-3, 3, 3)])
        let split = try #require(hist.withUnsafeBufferPointer {
            GBDTSplitFinder.bestSplit(histogram: $0, mapper: Self.oneFeature, hasMissing: [true], gradient: -3, hessian: 19,
                                      count: 19, constraints: constraints)
        })
        #expect(split.bin == 1 && split.missingGoesLeft && split.countLeft == 11 && split.gradientLeft == -11)
        #expect(abs(split.gain - (11 + 8 - 9.0 / 19)) < 1e-12)
        // Missing rows unlike everything else: "all non-missing left, missing right" (bin 3, left to right).
        let odd = Self.histogram([(1, 4, 4), (1, 4, 4), (1, 4, 4), (1, 4, 4), (-20, 3, 3)])
        let s2 = try #require(odd.withUnsafeBufferPointer {
            GBDTSplitFinder.bestSplit(histogram: $0, mapper: Self.oneFeature, hasMissing: [true], gradient: -16, hessian: 19,
                                      count: 19, constraints: constraints)
        })
        #expect(s2.bin == 3 && !s2.missingGoesLeft && s2.countRight == 3)
    }

    // MARK: Trees and models

    @Test func treesRespectConstraints() {
        let n = 1000
        let x = Self.randomFeatures(rows: n, features: 4, seed: 41)
        let y = (0..<n).map { i in Double(x[i, 0]) * 3 + (x[i, 1].isNaN ? 2 : Double(x[i, 1] * x[i, 2])) + sin(Double(i)) }
        var p = GBDTParameters()
        p.maxIterations = 10
        let model = GBDTModel.fitRegressor(x: x, targets: y, parameters: p)
        #expect(model.iterations == 10 && model.trees.allSatisfy { $0.count == 1 })
        for tree in model.trees.flatMap({ $0 }) {
            #expect(tree.leafCount <= 31)
            #expect(tree.nodes.filter(\.isLeaf).allSatisfy { $0.count >= 20 })
            #expect(tree.nodes[0].count == n)
            for node in tree.nodes where !node.isLeaf {
                #expect(node.count == tree.nodes[node.left].count + tree.nodes[node.right].count)
            }
        }
        #expect(model.trees[0][0].leafCount == 31)
        p.maxDepth = 2
        p.maxLeafNodes = nil
        let shallow = GBDTModel.fitRegressor(x: x, targets: y, parameters: p)
        #expect(shallow.trees.flatMap { $0 }.allSatisfy { $0.depth <= 2 && $0.leafCount <= 4 })
        // Training error falls with iterations.
        p = GBDTParameters()
        p.maxIterations = 30
        let longer = GBDTModel.fitRegressor(x: x, targets: y, parameters: p)
        #expect(Metrics.rootMeanSquaredError(y, longer.predict(x)) < Metrics.rootMeanSquaredError(y, model.predict(x)))
    }

    @Test func trainingIsDeterministic() {
        let x = Self.randomFeatures(rows: 400, features: 3, seed: 51)
        let labels = (0..<400).map { i in x[i, 0] + (x[i, 1].isNaN ? 0.5 : x[i, 1]) > 0.2 ? (x[i, 2] > 0 ? 2 : 1) : 0 }
        var p = GBDTParameters()
        p.maxIterations = 15
        let a = GBDTModel.fitClassifier(x: x, labels: labels, classes: 3, parameters: p)
        let b = GBDTModel.fitClassifier(x: x, labels: labels, classes: 3, parameters: p)
        #expect(a == b)
        #expect(a.trees.allSatisfy { $0.count == 3 })
        #expect(a.predictProbabilities(x) == b.predictProbabilities(x))
    }

    @Test func learnsWhereMissingValuesGo() {
        // Target 10 where feature 0 is missing, otherwise a step in feature 0.
        var rng = SeededGenerator(seed: 61)
        let n = 500
        var storage: [Float] = []
        var y: [Double] = []
        for i in 0..<n {
            let a = rng.nextUnit(), b = rng.nextUnit()
            storage += [i % 5 == 0 ? .nan : a, b]
            y.append(i % 5 == 0 ? 10 : (a > 0.5 ? 1 : 0))
        }
        let x = Tensor(shape: [n, 2], storage: storage)
        let model = GBDTModel.fitRegressor(x: x, targets: y)
        let probe = Tensor(shape: [3, 2], storage: [.nan, 0.3, 0.9, 0.3, 0.1, 0.7])
        let predicted = model.predict(probe)
        #expect(abs(predicted[0] - 10) < 0.05 && abs(predicted[1] - 1) < 0.05 && abs(predicted[2]) < 0.05, "\(predicted)")
        #expect(Metrics.rootMeanSquaredError(y, model.predict(x)) < 0.05)
    }

    @Test func unseenMissingValuesFollowTheLargerChild() {
        let x = Self.randomFeatures(rows: 300, features: 2, seed: 71, nanEvery: nil)
        let y = (0..<300).map { i in Double(x[i, 0]) * 2 - Double(x[i, 1]) }
        var p = GBDTParameters()
        p.maxIterations = 5
        let model = GBDTModel.fitRegressor(x: x, targets: y, parameters: p)
        // Expected: walk each tree towards the child with more training rows.
        var expected = model.baseline[0]
        for tree in model.trees.map({ $0[0] }) {
            var i = 0
            while !tree.nodes[i].isLeaf {
                let node = tree.nodes[i]
                #expect(node.missingGoesLeft == (tree.nodes[node.left].count > tree.nodes[node.right].count))
                i = node.missingGoesLeft ? node.left : node.right
            }
            expected += tree.nodes[i].value
        }
        #expect(model.predict(Tensor(shape: [1, 2], storage: [.nan, .nan]))[0] == expected)
    }

    @Test func binaryClassifierProbabilities() throws {
        let x = Self.randomFeatures(rows: 400, features: 3, seed: 81)
        let labels = (0..<400).map { i in x[i, 0] * 2 + x[i, 2] > 0.1 ? 1 : 0 }
        let model = GBDTModel.fitClassifier(x: x, labels: labels, classes: 2)
        #expect(model.loss == .binaryLogLoss && model.trees.allSatisfy { $0.count == 1 })
        let p = model.predictProbabilities(x)
        #expect(p.count == 800)
        #expect((0..<400).allSatisfy { abs(p[2 * $0] + p[2 * $0 + 1] - 1) < 1e-12 })
        let classes = model.predictClasses(x)
        #expect((0..<400).allSatisfy { classes[$0] == (p[2 * $0 + 1] > 0.5 ? 1 : 0) })
        #expect(Metrics.accuracy(labels, classes) > 0.97)
        #expect(try #require(Metrics.rocAUC(labels, scores: (0..<400).map { p[2 * $0 + 1] })) > 0.99)
    }

    @Test func earlyStoppingStopsOnNoise() {
        var rng = SeededGenerator(seed: 91)
        let x = Tensor(shape: [600, 3], storage: (0..<1800).map { _ in rng.uniform(1) })
        let y = (0..<600).map { _ in Double(rng.nextNormal()) }  // nothing to learn
        var p = GBDTParameters()
        p.earlyStopping = GBDTEarlyStopping()
        let model = GBDTModel.fitRegressor(x: x, targets: y, parameters: p)
        #expect(model.iterations < 100)
        #expect(model.validationLosses.count == model.iterations + 1)
        #expect(model.trees[0][0].nodes[0].count == 540)  // 10% held out
        #expect(model == GBDTModel.fitRegressor(x: x, targets: y, parameters: p))
    }
}
