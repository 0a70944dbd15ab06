import NebulaEngine
import Testing

@Suite("Dense and ReLU")
struct DenseTests {
    @Test func denseMatchesHandComputation() {
        var rng = SeededGenerator(seed: 1)
        let d = Dense(2, 3, rng: &rng)
        d.weight.value = Tensor(shape: [2, 3], storage: [1, 2, 3, 4, 5, 6])
        d.bias.value = Tensor(shape: [3], storage: [0.5, -1, 0])
        let y = d.forward(Tensor(shape: [2, 2], storage: [1, 0, 1, 1]), training: false)
        #expect(y.storage == [1.5, 1, 3, 5.5, 6, 9])
    }

    @Test func denseGradients() {
        var rng = SeededGenerator(seed: 2)
        let d = Dense(5, 4, rng: &rng)
        let x = Tensor(shape: [3, 5], storage: (0..<15).map { _ in rng.uniform(1) })
        let r = GradientCheck.check(d, input: x)
        #expect(r.maxRelativeError < 1e-2, "\(r)")
    }

    @Test func reluGradients() {
        var rng = SeededGenerator(seed: 3)
        // Keep inputs away from the kink at 0, where the derivative is undefined.
        let x = Tensor(shape: [4, 6], storage: (0..<24).map { _ in
            let v = rng.uniform(1)
            return v < 0 ? v - 0.1 : v + 0.1
        })
        let r = GradientCheck.check(ReLU(), input: x)
        #expect(r.maxRelativeError < 1e-2, "\(r)")
    }

    @Test func seededGeneratorIsReproducible() {
        var a = SeededGenerator(seed: 42), b = SeededGenerator(seed: 42), c = SeededGenerator(seed: 43)
        let xa = (0..<5).map { _ in a.next() }
        #expect(xa == (0..<5).map { _ in b.next() })
        #expect(xa != (0..<5).map { _ in c.next() })
    }

    @Test func blasThreadsCanBeSet() {
        let before = BLAS.threads
        BLAS.threads = 1
        #expect(BLAS.threads == 1)
        BLAS.threads = before
    }
}
