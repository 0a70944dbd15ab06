import NebulaEngine
import Testing

private func randomTensor(_ shape: [Int], seed: UInt64, scale: Float = 1) -> Tensor {
    var rng = SeededGenerator(seed: seed)
    return Tensor(shape: shape, storage: (0..<shape.reduce(1, *)).map { _ in rng.uniform(scale) })
}

@Suite("FusedDense, MLP and Trainer")
struct MLPTrainerTests {
    @Test func fusedDenseComputesDenseThenActivation() {
        var r1 = SeededGenerator(seed: 5), r2 = SeededGenerator(seed: 5)
        let fused = FusedDense(6, 4, activation: .relu, rng: &r1)
        let dense = Dense(6, 4, rng: &r2)
        #expect(fused.weight.value == dense.weight.value && fused.bias.value == dense.bias.value)
        let reference = Sequential([dense, ReLU()])
        let x = randomTensor([5, 6], seed: 6)
        #expect(fused.forward(x, training: true) == reference.forward(x, training: true))
        let g = randomTensor([5, 4], seed: 7)
        let dx = fused.backward(g), dxRef = reference.backward(g)
        for (a, b) in zip(dx.storage, dxRef.storage) { #expect(abs(a - b) < 1e-6) }
        for (p, q) in zip(fused.parameters, dense.parameters) {
            for (a, b) in zip(p.grad.storage, q.grad.storage) { #expect(abs(a - b) < 1e-6) }
        }
    }

    @Test(arguments: Activation.allCases)
    func fusedDenseGradients(_ f: Activation) {
        var rng = SeededGenerator(seed: 8)
        let layer = FusedDense(5, 11, activation: f, rng: &rng)  // 11: SIMD body and scalar tail
        // Bias away from 0 so that no ReLU input sits on the kink.
        layer.bias.value = Tensor(shape: [11], storage: (0..<11).map { $0 % 2 == 0 ? 0.7 : -0.7 })
        let r = GradientCheck.check(layer, input: randomTensor([3, 5], seed: 9, scale: 0.5))
        #expect(r.maxRelativeError < 1e-2, "\(f): \(r)")
    }

    @Test func backwardParametersMatchesBackward() {
        let a = MLP(inputs: 4, hidden: [8], outputs: 3, seed: 1).build()
        let b = MLP(inputs: 4, hidden: [8], outputs: 3, seed: 1).build()
        let x = randomTensor([6, 4], seed: 2), g = randomTensor([6, 3], seed: 3)
        _ = a.forward(x, training: true)
        _ = a.backward(g)
        _ = b.forward(x, training: true)
        b.backwardParameters(g)
        #expect(a.parameters.map(\.grad) == b.parameters.map(\.grad))
    }

    @Test func mlpLayoutAndNames() {
        let model = MLP(inputs: 64, hidden: [256, 256], outputs: 10, activation: .gelu, dropout: 0.1, seed: 0).build()
        #expect(model.layers.count == 5)  // dense, dropout, dense, dropout, dense
        #expect(model.parameters.map(\.name) == ["fc0.weight", "fc0.bias", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"])
        let count: Int = model.parameters.reduce(0) { $0 + $1.value.count }
        let expected: Int = 64 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10
        #expect(count == expected)
        // Same seed, same weights.
        let again = MLP(inputs: 64, hidden: [256, 256], outputs: 10, activation: .gelu, dropout: 0.1, seed: 0).build()
        #expect(model.parameters.map(\.value) == again.parameters.map(\.value))
        let x = randomTensor([3, 64], seed: 4)
        #expect(model.forward(x, training: false) == again.forward(x, training: false))
    }

    @Test func shuffleIsAPermutationAndReproducible() {
        var a = SeededGenerator(seed: 0), b = SeededGenerator(seed: 0)
        let p = Shuffle.permutation(1000, using: &a)
        #expect(p.sorted() == Array(0..<1000))
        #expect(p != Array(0..<1000))
        #expect(p == Shuffle.permutation(1000, using: &b))
    }

    @Test func trainerFitsARegressionAndReportsEpochs() {
        // y = 2·x₀ − x₁ + 0.5
        let n = 512
        let x = randomTensor([n, 2], seed: 10)
        let y = Tensor(shape: [n, 1], storage: (0..<n).map { 2 * x[$0, 0] - x[$0, 1] + 0.5 })
        let model = MLP(inputs: 2, hidden: [16], outputs: 1, activation: .tanh, seed: 3).build()
        let opt = Adam(model.parameters, learningRate: 0.02)
        let trainer = Trainer(model: model, loss: MSELoss(), optimizer: opt,
                              options: TrainingOptions(epochs: 60, batchSize: 64, seed: 1, clipNorm: 10,
                                                       schedule: LinearWarmup(steps: 2, then: CosineLR(base: 0.02, steps: 58))))
        var seen: [Int] = []
        let reports = trainer.fit(x, y) { seen.append($0.epoch) }
        #expect(seen == Array(1...60))
        #expect(reports.allSatisfy { $0.samples == n && $0.samplesPerSecond > 0 })
        #expect(reports.last!.loss < 0.01 * reports.first!.loss, "loss \(reports.first!.loss) → \(reports.last!.loss)")
        #expect(trainer.evaluate(x, y) < 0.01)
        #expect(trainer.batchesCompleted == 60 * 8)
        #expect(abs(opt.learningRate) < 1e-6 + 0.02 * 0.01)  // the cosine's end
    }

    @Test func trainingIsReproducible() {
        func run() -> [Float] {
            let x = randomTensor([100, 3], seed: 11)
            let labels = (0..<100).map { x[$0, 0] + x[$0, 2] > 0 ? 1 : 0 }
            let model = MLP(inputs: 3, hidden: [8], outputs: 2, dropout: 0.2, seed: 5).build()
            let trainer = Trainer(model: model, loss: CrossEntropyLoss(), optimizer: SGD(model.parameters, learningRate: 0.1, momentum: 0.9),
                                  options: TrainingOptions(epochs: 3, batchSize: 16, seed: 2))
            trainer.fit(x, labels)
            return model.parameters.flatMap(\.value.storage)
        }
        #expect(run() == run())
    }
}
