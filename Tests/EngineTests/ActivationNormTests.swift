import NebulaEngine
import Testing

/// Inputs in (−1.5, 1.5) kept 0.1 away from 0 (ReLU's kink).
private func sampleInput(_ shape: [Int], seed: UInt64, scale: Float = 1.5) -> Tensor {
    var rng = SeededGenerator(seed: seed)
    return Tensor(shape: shape, storage: (0..<shape.reduce(1, *)).map { _ in
        let v = rng.uniform(scale)
        return v < 0 ? v - 0.1 : v + 0.1
    })
}

@Suite("Activations, dropout, normalisation")
struct ActivationNormTests {
    @Test(arguments: [Activation.gelu, .geluTanh, .tanh, .sigmoid, .relu])
    func activationGradients(_ f: Activation) throws {
        let layer = try #require(f.makeLayer())
        let r = GradientCheck.check(layer, input: sampleInput([3, 7], seed: 11), epsilon: 1e-3)
        #expect(r.maxRelativeError < 1e-2, "\(f): \(r)")
    }

    @Test func activationValuesMatchPyTorch() {
        // torch.nn.functional.gelu / gelu(approximate='tanh') / tanh / sigmoid at these points.
        let x = Tensor(shape: [1, 5], storage: [-3, -0.5, 0, 0.5, 3])
        let gelu = GELU().forward(x, training: false).storage
        let expectGelu: [Float] = [-0.0040496941, -0.15426877, 0, 0.34573123, 2.9959502]
        let geluTanh = GELU(approximation: .tanh).forward(x, training: false).storage
        let expectGeluTanh: [Float] = [-0.0036373921, -0.15428599, 0, 0.34571401, 2.9963627]
        let tanh = Tanh().forward(x, training: false).storage
        let expectTanh: [Float] = [-0.9950548, -0.46211716, 0, 0.46211716, 0.9950548]
        let sig = Sigmoid().forward(x, training: false).storage
        let expectSig: [Float] = [0.04742587, 0.37754067, 0.5, 0.62245933, 0.95257413]
        for i in 0..<5 {
            #expect(abs(gelu[i] - expectGelu[i]) < 1e-6)
            #expect(abs(geluTanh[i] - expectGeluTanh[i]) < 1e-6)
            #expect(abs(tanh[i] - expectTanh[i]) < 1e-6)
            #expect(abs(sig[i] - expectSig[i]) < 1e-6)
        }
        // No overflow at the extremes.
        let big = Sigmoid().forward(Tensor(shape: [2], storage: [-200, 200]), training: false).storage
        #expect(big == [0, 1])
    }

    @Test func dropoutScalesSurvivorsAndIsIdentityInEval() {
        let d = Dropout(0.25, seed: 3)
        let x = Tensor(shape: [100, 100], repeating: 1)
        let y = d.forward(x, training: true)
        let zeros = y.storage.filter { $0 == 0 }.count
        #expect(zeros > 2_300 && zeros < 2_700, "dropped \(zeros) of 10000 at p = 0.25")
        #expect(y.storage.allSatisfy { $0 == 0 || abs($0 - 4.0 / 3.0) < 1e-6 })
        // Backward routes the gradient through the same mask.
        let g = d.backward(Tensor(shape: [100, 100], repeating: 1))
        #expect(g.storage == y.storage)
        #expect(d.forward(x, training: false) == x)
        // Same seed, same masks.
        let again = Dropout(0.25, seed: 3).forward(x, training: true)
        #expect(again == y)
    }

    @Test func dropoutGradients() {
        let d = Dropout(0.5, seed: 9)
        let r = GradientCheck.check(d, input: sampleInput([4, 6], seed: 12)) { x in
            d.generator = SeededGenerator(seed: 9)  // the same mask for every evaluation
            return d.forward(x, training: true)
        }
        #expect(r.maxRelativeError < 1e-2, "\(r)")
    }

    @Test func layerNormMatchesPyTorch() {
        let ln = LayerNorm(4)
        let y = ln.forward(Tensor(shape: [2, 4], storage: [1, 2, 3, 4, -1, 0, 0, 5]), training: false)
        // torch.nn.LayerNorm(4)(x) with default init
        let expected: [Float] = [-1.3416355, -0.44721183, 0.44721183, 1.3416355,
                                 -0.85280209, -0.42640105, -0.42640105, 1.70560418]
        for (a, b) in zip(y.storage, expected) { #expect(abs(a - b) < 1e-5) }
    }

    @Test func layerNormGradients() {
        let ln = LayerNorm(5)
        var rng = SeededGenerator(seed: 4)
        ln.weight.value = Tensor(shape: [5], storage: (0..<5).map { _ in 1 + rng.uniform(0.5) })
        ln.bias.value = Tensor(shape: [5], storage: (0..<5).map { _ in rng.uniform(0.5) })
        let r = GradientCheck.check(ln, input: sampleInput([3, 5], seed: 13), epsilon: 1e-3)
        #expect(r.maxRelativeError < 1e-2, "\(r)")
    }

    @Test func batchNormTrainingAndRunningStatistics() {
        let bn = BatchNorm1d(2)
        let x = Tensor(shape: [4, 2], storage: [1, 10, 2, 20, 3, 30, 4, 40])
        let y = bn.forward(x, training: true)
        // Column 0: mean 2.5, biased var 1.25; column 1: mean 25, biased var 125.
        let expected0: [Float] = [-1.3416355, -0.44721183, 0.44721183, 1.3416355]
        for r in 0..<4 {
            #expect(abs(y[r, 0] - expected0[r]) < 1e-5)
            #expect(abs(y[r, 1] - expected0[r]) < 1e-5)
        }
        // Running: 0.9·0 + 0.1·mean; 0.9·1 + 0.1·unbiased var (5/3 and 500/3).
        #expect(abs(bn.runningMean.storage[0] - 0.25) < 1e-6)
        #expect(abs(bn.runningMean.storage[1] - 2.5) < 1e-6)
        #expect(abs(bn.runningVar.storage[0] - (0.9 + 0.1 * 5.0 / 3.0)) < 1e-5)
        #expect(abs(bn.runningVar.storage[1] - (0.9 + 0.1 * 500.0 / 3.0)) < 1e-3)
        #expect(bn.batchesTracked == 1)
        // Eval uses the running statistics.
        let e = bn.forward(Tensor(shape: [1, 2], storage: [0.25, 2.5]), training: false)
        #expect(abs(e[0, 0]) < 1e-6 && abs(e[0, 1]) < 1e-6)
    }

    @Test func batchNormGradients() {
        let bn = BatchNorm1d(3)
        var rng = SeededGenerator(seed: 5)
        bn.weight.value = Tensor(shape: [3], storage: (0..<3).map { _ in 1 + rng.uniform(0.5) })
        bn.bias.value = Tensor(shape: [3], storage: (0..<3).map { _ in rng.uniform(0.5) })
        let r = GradientCheck.check(bn, input: sampleInput([6, 3], seed: 14), epsilon: 1e-3)
        #expect(r.maxRelativeError < 1e-2, "\(r)")
    }
}
