import NebulaEngine
import Testing

private func close(_ a: [Float], _ b: [Float], _ tol: Float = 1e-5) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) <= tol * max(1, abs($1)) }
}

/// Central differences (in Double) of a loss against its analytic gradient; the worst relative error.
private func lossGradientError<L: Loss>(_ loss: L, _ output: Tensor, _ target: L.Target, epsilon: Float = 1e-3) -> Double {
    let analytic = loss(output, target).grad
    var worst = 0.0
    for i in 0..<output.count {
        var plus = output, minus = output
        plus.storage[i] += epsilon
        minus.storage[i] -= epsilon
        let numeric = (Double(loss(plus, target).value) - Double(loss(minus, target).value)) / Double(2 * epsilon)
        let a = Double(analytic.storage[i])
        worst = max(worst, abs(a - numeric) / max(1e-2, abs(a) + abs(numeric)))
    }
    return worst
}

/// Reference values below come from PyTorch 2.15 (torch.nn losses, torch.optim, lr_scheduler) on the same inputs.
@Suite("Losses")
struct LossTests {
    let logits = Tensor(shape: [3, 3], storage: [1, 2, 3, 1, -1, 0, 1000, 0, -1000])
    let classes = [2, 0, 1]

    @Test func crossEntropyMatchesPyTorch() {
        let (value, grad) = CrossEntropyLoss()(logits, classes)
        #expect(abs(value - 333.60507) < 1e-3)
        #expect(close(grad.storage, [0.03001019, 0.08157617, -0.11158633, -0.11158638, 0.03001019, 0.08157615,
                                     0.33333334, -0.33333334, 0.0]))
    }

    @Test func weightedCrossEntropyUsesWeightedMean() {
        let (value, grad) = CrossEntropyLoss(classWeights: [1, 2, 0.5])(logits, classes)
        #expect(abs(value - 571.60327) < 1e-3)
        #expect(close(grad.storage, [0.01286151, 0.03496122, -0.04782272, -0.09564546, 0.02572302, 0.06992242,
                                     0.5714286, -0.5714286, 0.0]))
    }

    @Test func crossEntropyGradientsByFiniteDifferences() {
        var rng = SeededGenerator(seed: 21)
        let z = Tensor(shape: [4, 5], storage: (0..<20).map { _ in rng.uniform(3) })
        #expect(lossGradientError(CrossEntropyLoss(), z, [0, 4, 2, 2]) < 1e-2)
        #expect(lossGradientError(CrossEntropyLoss(classWeights: [0.5, 1, 2, 3, 0.25]), z, [0, 4, 2, 1]) < 1e-2)
    }

    @Test func bceWithLogitsMatchesPyTorchAndIsStable() {
        let x = Tensor(shape: [5], storage: [-2, 0.5, 3, 100, -100])
        let t = Tensor(shape: [5], storage: [0, 1, 1, 0, 1])
        let (value, grad) = BCEWithLogitsLoss()(x, t)
        #expect(abs(value - 40.12992) < 1e-4)
        #expect(close(grad.storage, [0.02384058, -0.07550813, -0.00948517, 0.2, -0.2]))
        var rng = SeededGenerator(seed: 22)
        let z = Tensor(shape: [3, 2], storage: (0..<6).map { _ in rng.uniform(4) })
        let y = Tensor(shape: [3, 2], storage: [0, 1, 0.3, 1, 0, 0.8])
        #expect(lossGradientError(BCEWithLogitsLoss(), z, y) < 1e-2)
    }

    @Test func regressionLossesMatchPyTorch() {
        let o = Tensor(shape: [4], storage: [0.5, -1, 2, 3])
        let t = Tensor(shape: [4], storage: [0, 1, 2, 0.5])
        let mse = MSELoss()(o, t), mae = MAELoss()(o, t)
        let h1 = HuberLoss(delta: 1)(o, t), h05 = HuberLoss(delta: 0.5)(o, t)
        #expect(abs(mse.value - 2.625) < 1e-6 && close(mse.grad.storage, [0.25, -1, 0, 1.25]))
        #expect(abs(mae.value - 1.25) < 1e-6 && close(mae.grad.storage, [0.25, -0.25, 0, 0.25]))
        #expect(abs(h1.value - 0.90625) < 1e-6 && close(h1.grad.storage, [0.125, -0.25, 0, 0.25]))
        #expect(abs(h05.value - 0.53125) < 1e-6 && close(h05.grad.storage, [0.125, -0.125, 0, 0.125]))
    }

    @Test func regressionGradientsByFiniteDifferences() {
        // Residuals away from 0 (MAE's kink) and from ±δ (Huber's).
        let o = Tensor(shape: [2, 3], storage: [0.3, -1.7, 2.2, 0.9, -0.2, 4])
        let t = Tensor(shape: [2, 3], storage: [0, 0, 0, 0, 0, 0])
        #expect(lossGradientError(MSELoss(), o, t) < 1e-2)
        #expect(lossGradientError(MAELoss(), o, t) < 1e-2)
        #expect(lossGradientError(HuberLoss(delta: 1), o, t) < 1e-2)
    }

    @Test func gradientBufferIsReused() {
        var g = Tensor(zeros: [3, 3])
        _ = CrossEntropyLoss().evaluate(logits, classes, gradient: &g)
        #expect(g.shape == [3, 3])
        #expect(close(g.storage, CrossEntropyLoss()(logits, classes).grad.storage, 0))
    }
}

@Suite("Optimizers and schedules")
struct OptimizerTests {
    /// Three steps on L = Σ(w − tw)² + Σ(b − tb)², the problem the PyTorch reference ran.
    private func run(_ make: ([Parameter]) -> any Optimizer, steps: Int = 3) -> (w: [Float], b: [Float], opt: any Optimizer) {
        let w = Parameter("w", Tensor(shape: [2, 2], storage: [0.5, -1, 2, 0.25]))
        let b = Parameter("b", Tensor(shape: [2], storage: [0.1, -0.3]))
        let tw: [Float] = [1, 1, -1, 0], tb: [Float] = [0.5, 0.5]
        let opt = make([w, b])
        for _ in 0..<steps {
            opt.zeroGrad()
            w.grad = Tensor(shape: [2, 2], storage: zip(w.value.storage, tw).map { 2 * ($0 - $1) })
            b.grad = Tensor(shape: [2], storage: zip(b.value.storage, tb).map { 2 * ($0 - $1) })
            opt.step()
        }
        return (w.value.storage, b.value.storage, opt)
    }

    @Test func sgdVariantsMatchPyTorch() {
        let plain = run { SGD($0, learningRate: 0.1) }
        #expect(close(plain.w, [0.744, -0.024, 0.53599995, 0.128]) && close(plain.b, [0.2952, 0.0904]))
        let momentum = run { SGD($0, learningRate: 0.1, momentum: 0.9, dampening: 0.1, weightDecay: 0.1) }
        #expect(close(momentum.w, [0.92440498, 0.83164257, -0.7698009, 0.01546041]))
        #expect(close(momentum.b, [0.45292625, 0.42818964]))
        let nesterov = run { SGD($0, learningRate: 0.1, momentum: 0.9, weightDecay: 0.1, nesterov: true) }
        #expect(close(nesterov.w, [1.01592624, 1.22662866, -1.36709714, -0.03511709]))
        #expect(close(nesterov.b, [0.52903336, 0.58522069]))
    }

    @Test func adamAndAdamWMatchPyTorch() {
        let adam = run { Adam($0, learningRate: 0.1, weightDecay: 0.1) }
        #expect(close(adam.w, [0.79414856, -0.70064253, 1.70038879, -0.03020833]))
        #expect(close(adam.b, [0.39165857, -0.00232731]))
        let state = adam.opt.exportState()
        #expect(state.step == 3)
        #expect(state.tensors.map(\.name) == ["w.exp_avg", "w.exp_avg_sq", "b.exp_avg", "b.exp_avg_sq"])
        #expect(close(state.tensors[0].tensor.storage, [-0.19684529, -1.05023599, 1.61932206, 0.0822677]))
        #expect(close(state.tensors[1].tensor.storage, [0.00173179, 0.04543842, 0.10761832, 0.00038718]))
        let adamw = run { AdamW($0, learningRate: 0.1, weightDecay: 0.1) }
        #expect(close(adamw.w, [0.77775615, -0.67398715, 1.64405859, -0.03371781]))
        #expect(close(adamw.b, [0.38685724, 0.00361446]))
    }

    /// Long enough for the SIMD body of the update, not only its scalar tail.
    @Test func adamSIMDPathMatchesScalarReference() {
        let n = 37
        let p = Parameter("p", Tensor(shape: [n], storage: (0..<n).map { Float($0) / 10 - 1 }))
        let opt = Adam([p], learningRate: 0.01, weightDecay: 0.05)
        var w = p.value.storage.map(Double.init), m = [Double](repeating: 0, count: n), v = m
        for t in 1...4 {
            p.grad = Tensor(shape: [n], storage: p.value.storage.enumerated().map { Float($0.offset % 5) * 0.3 - $0.element })
            let g = p.grad.storage.map(Double.init)
            opt.step()
            for i in 0..<n {
                let d = g[i] + 0.05 * w[i]
                m[i] = 0.9 * m[i] + 0.1 * d
                v[i] = 0.999 * v[i] + 0.001 * d * d
                let mh = m[i] / (1 - pow(0.9, Double(t))), vh = v[i] / (1 - pow(0.999, Double(t)))
                w[i] -= 0.01 * mh / (vh.squareRoot() + 1e-8)
            }
        }
        #expect(close(p.value.storage, w.map(Float.init), 1e-5))
    }

    @Test func stateRoundTripsAndResumesIdentically() throws {
        func make() -> (Parameter, Adam) {
            let p = Parameter("p", Tensor(shape: [3], storage: [1, -2, 3]))
            return (p, Adam([p], learningRate: 0.05))
        }
        func grad(_ p: Parameter) { p.grad = Tensor(shape: [3], storage: p.value.storage.map { 2 * $0 - 1 }) }
        let (p1, a1) = make()
        for _ in 0..<5 { grad(p1); a1.step() }
        let (p2, a2) = make()
        for _ in 0..<2 { grad(p2); a2.step() }
        let saved = a2.exportState(), savedValue = p2.value
        let (p3, a3) = make()
        p3.value = savedValue
        try a3.importState(saved)
        #expect(a3.stepCount == 2)
        for _ in 0..<3 { grad(p3); a3.step() }
        #expect(p3.value == p1.value)

        let q = Parameter("q", Tensor(zeros: [3]))
        #expect(throws: OptimizerStateError.self) { try Adam([q]).importState(saved) }
        let sgd = SGD([p1], learningRate: 0.1, momentum: 0.9)
        #expect(sgd.exportState().tensors.map(\.name) == ["p.momentum_buffer"])
        #expect(throws: OptimizerStateError.self) { try sgd.importState(saved) }
    }

    @Test func clippingMatchesPyTorch() {
        let w = Parameter("w", Tensor(zeros: [2, 2])), b = Parameter("b", Tensor(zeros: [2]))
        w.grad = Tensor(shape: [2, 2], storage: [3, 4, 0, 0])
        b.grad = Tensor(shape: [2], storage: [12, 0])
        let norm = clipGradientNorm([w, b], maxNorm: 5)
        #expect(abs(norm - 13) < 1e-5)
        #expect(close(w.grad.storage, [1.15384603, 1.53846145, 0, 0]) && close(b.grad.storage, [4.6153841, 0]))
        // Below the limit: untouched.
        #expect(abs(clipGradientNorm([w, b], maxNorm: 100) - 5) < 1e-4)
        #expect(close(b.grad.storage, [4.6153841, 0]))
    }

    @Test func schedulesMatchPyTorch() {
        let step = StepLR(base: 0.1, stepSize: 3, gamma: 0.5)
        #expect(close((0..<8).map { step.learningRate(at: $0) }, [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025], 1e-6))
        let cosine = CosineLR(base: 0.1, steps: 10, minimum: 0.01)
        #expect(close((0...10).map { cosine.learningRate(at: $0) },
                      [0.1, 0.09779754, 0.09140576, 0.08145034, 0.06890576, 0.055, 0.04109424, 0.02854966,
                       0.01859424, 0.01220246, 0.01], 1e-6))
        let warm = LinearWarmup(steps: 4, startFactor: 0.25, then: CosineLR(base: 0.1, steps: 6))
        #expect(close((0...10).map { warm.learningRate(at: $0) },
                      [0.025, 0.04375, 0.0625, 0.08125, 0.1, 0.09330127, 0.075, 0.05, 0.025, 0.00669873, 0], 1e-6))
        #expect(ConstantLR(0.3).learningRate(at: 99) == 0.3)
    }
}

#if canImport(Glibc)
import Glibc
#endif
