/// A multilayer perceptron's shape, and the model built from it: `FusedDense` layers (bias and
/// activation fused) with optional dropout after each hidden activation, as a `Sequential`.
///
///     let model = MLP(inputs: 64, hidden: [256, 256], outputs: 10, activation: .relu, seed: 0).build()
///
/// The same as PyTorch's `Sequential(Linear(64, 256), ReLU(), Linear(256, 256), ReLU(), Linear(256, 10))`
/// (same initialisation distribution; the output layer has no activation: losses take logits).
/// Parameters are named `fc0.weight`, `fc0.bias`, `fc1.weight`, … in layer order.
public struct MLP: Sendable, Equatable, Codable {
    public var inputs: Int
    public var hidden: [Int]
    public var outputs: Int
    public var activation: Activation
    /// Dropout probability after each hidden activation (0: no dropout layers).
    public var dropout: Float
    /// Seeds the weights (and, offset per layer, the dropout masks).
    public var seed: UInt64

    public init(inputs: Int, hidden: [Int], outputs: Int, activation: Activation = .relu, dropout: Float = 0,
                seed: UInt64 = 0) {
        precondition(inputs > 0 && outputs > 0 && hidden.allSatisfy { $0 > 0 }, "MLP sizes must be positive")
        self.inputs = inputs
        self.hidden = hidden
        self.outputs = outputs
        self.activation = activation
        self.dropout = dropout
        self.seed = seed
    }

    public func build() -> Sequential {
        var rng = SeededGenerator(seed: seed)
        var layers: [any Layer] = []
        let sizes = [inputs] + hidden + [outputs]
        for i in 0..<(sizes.count - 1) {
            let last = i == sizes.count - 2
            layers.append(FusedDense(sizes[i], sizes[i + 1], activation: last ? .identity : activation, rng: &rng,
                                     name: "fc\(i)"))
            if !last && dropout > 0 { layers.append(Dropout(dropout, seed: seed &+ 0x5EED &+ UInt64(i))) }
        }
        return Sequential(layers)
    }
}
