import NebulaEngine
import Testing

/// Puts an `EmbeddingBag` behind the `Layer` protocol for `GradientCheck`: the fixed bags are the
/// input, the Float tensor given to `forward` is the per-sample weights (or ignored when empty), and
/// `backward` returns ∂L/∂perSampleWeights (or an empty tensor).
private final class BagProbe: Layer {
    let bag: EmbeddingBag
    let indices: [Int32]
    let offsets: [Int]

    init(_ bag: EmbeddingBag, indices: [Int32], offsets: [Int]) {
        self.bag = bag
        self.indices = indices
        self.offsets = offsets
    }

    func forward(_ x: Tensor, training: Bool) -> Tensor {
        bag.forward(indices: indices, offsets: offsets, perSampleWeights: x.count == 0 ? nil : x.storage,
                    training: training)
    }

    func backward(_ g: Tensor) -> Tensor {
        let dw = bag.backward(g)
        return dw.map { Tensor(shape: [$0.count], storage: $0) } ?? Tensor(zeros: [0])
    }

    var parameters: [Parameter] { bag.parameters }
}

@Suite("Embedding and EmbeddingBag")
struct EmbeddingTests {
    @Test func embeddingLooksUpRows() {
        var rng = SeededGenerator(seed: 1)
        let e = Embedding(5, 3, rng: &rng)
        let x = Tensor(shape: [2, 2], storage: [4, 0, 0, 2])
        let y = e.forward(x, training: false)
        #expect(y.shape == [2, 2, 3])
        let w = e.weight.value.storage
        #expect(Array(y.storage[0..<3]) == Array(w[12..<15]))
        #expect(Array(y.storage[3..<6]) == Array(w[0..<3]))
        #expect(Array(y.storage[9..<12]) == Array(w[6..<9]))
        #expect(e.forward(indices: [4, 0, 0, 2], training: false).storage == y.storage)
    }

    @Test func embeddingGradients() {
        var rng = SeededGenerator(seed: 2)
        let e = Embedding(6, 4, rng: &rng)
        // Repeated indices: their gradients accumulate into the same row.
        let x = Tensor(shape: [3, 3], storage: [1, 5, 1, 0, 1, 3, 5, 5, 2])
        let r = GradientCheck.check(e, input: x)
        #expect(r.maxRelativeError < 1e-2, "\(r)")
        #expect(e.backward(Tensor(zeros: [3, 3, 4])).shape == [3, 3])
    }

    @Test func bagSumAndMeanMatchHandComputation() {
        var rng = SeededGenerator(seed: 3)
        let sum = EmbeddingBag(4, 2, mode: .sum, rng: &rng)
        sum.weight.value = Tensor(shape: [4, 2], storage: [1, 2, 3, 4, 5, 6, 7, 8])
        // Bags: [0, 2], [], [3, 3, 1]
        let y = sum.forward(indices: [0, 2, 3, 3, 1], offsets: [0, 2, 2], training: false)
        #expect(y.shape == [3, 2])
        #expect(y.storage == [6, 8, 0, 0, 17, 20])
        let weighted = sum.forward(indices: [0, 2, 3, 3, 1], offsets: [0, 2, 2],
                                   perSampleWeights: [1, 0.5, 2, 0, 1], training: false)
        #expect(weighted.storage == [3.5, 5, 0, 0, 17, 20])
        let mean = EmbeddingBag(4, 2, mode: .mean, rng: &rng)
        mean.weight.value = sum.weight.value
        let m = mean.forward(indices: [0, 2, 3, 3, 1], offsets: [0, 2, 2], training: false)
        #expect(zip(m.storage, [3, 4, 0, 0, 17 / 3, 20 / 3] as [Float]).allSatisfy { abs($0 - $1) < 1e-6 })
    }

    @Test(arguments: [EmbeddingBag.Mode.sum, .mean])
    func bagWeightGradients(_ mode: EmbeddingBag.Mode) {
        var rng = SeededGenerator(seed: 4)
        let bag = EmbeddingBag(7, 3, mode: mode, rng: &rng)
        let probe = BagProbe(bag, indices: [1, 6, 1, 0, 3, 3, 3, 5, 2, 6], offsets: [0, 3, 3, 7])
        let r = GradientCheck.check(probe, input: Tensor(zeros: [0]))
        #expect(r.maxRelativeError < 1e-2, "\(r)")
        let untouched = [4]
        for row in untouched { #expect(bag.weight.grad.storage[row * 3..<row * 3 + 3].allSatisfy { $0 == 0 }) }
        #expect(bag.touchedRows == [0, 1, 2, 3, 5, 6])
    }

    @Test func bagPerSampleWeightGradients() {
        var rng = SeededGenerator(seed: 5)
        let bag = EmbeddingBag(6, 4, mode: .sum, rng: &rng)
        let probe = BagProbe(bag, indices: [1, 5, 1, 0, 3, 3, 2], offsets: [0, 2, 2, 5])
        let weights = Tensor(shape: [7], storage: (0..<7).map { _ in rng.uniform(1) })
        let r = GradientCheck.check(probe, input: weights)
        #expect(r.maxRelativeError < 1e-2, "\(r)")
    }
}
