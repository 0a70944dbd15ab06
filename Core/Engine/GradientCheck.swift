/// Finite-difference gradient checks (central differences in Double around Float parameters).
public enum GradientCheck {
    public struct Report: Sendable, CustomStringConvertible {
        public var maxRelativeError: Double
        public var worst: String
        public var description: String { "max relative error \(maxRelativeError) at \(worst)" }
    }

    /// Checks ∂L/∂input and ∂L/∂parameters of `layer` for L = Σ output ⊙ weights (fixed random weights).
    public static func check(_ layer: any Layer, input: Tensor, epsilon: Float = 1e-2, seed: UInt64 = 7,
                             forward: ((Tensor) -> Tensor)? = nil) -> Report {
        var rng = SeededGenerator(seed: seed)
        let run = forward ?? { layer.forward($0, training: true) }
        let probe = run(input)
        let weights = Tensor(shape: probe.shape, storage: (0..<probe.count).map { _ in rng.uniform(1) })
        func loss(_ x: Tensor) -> Double {
            let y = run(x)
            return zip(y.storage, weights.storage).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        }
        layer.zeroGrad()
        _ = run(input)
        let dx = layer.backward(weights)
        var worst = Report(maxRelativeError: 0, worst: "-")
        func compare(_ analytic: Float, _ numeric: Double, _ at: String) {
            let err = abs(Double(analytic) - numeric) / max(1e-3, abs(Double(analytic)) + abs(numeric))
            if err > worst.maxRelativeError { worst = Report(maxRelativeError: err, worst: at) }
        }
        for i in 0..<input.count {
            var plus = input, minus = input
            plus.storage[i] += epsilon
            minus.storage[i] -= epsilon
            compare(dx.storage[i], (loss(plus) - loss(minus)) / Double(2 * epsilon), "input[\(i)]")
        }
        for p in layer.parameters {
            let analytic = p.grad
            for i in 0..<p.value.count {
                let saved = p.value.storage[i]
                p.value.storage[i] = saved + epsilon
                let lp = loss(input)
                p.value.storage[i] = saved - epsilon
                let lm = loss(input)
                p.value.storage[i] = saved
                compare(analytic.storage[i], (lp - lm) / Double(2 * epsilon), "\(p.name)[\(i)]")
            }
        }
        return worst
    }
}
