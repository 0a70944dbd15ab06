/// A trainable tensor and its gradient. A class: layers own it, optimizers update it in place.
public final class Parameter {
    public let name: String
    public var value: Tensor
    public var grad: Tensor

    public init(_ name: String, _ value: Tensor) {
        self.name = name
        self.value = value
        self.grad = Tensor(zeros: value.shape)
    }

    public func zeroGrad() { grad.fill(0) }
}

/// Autograd at layer level: `forward` keeps only what `backward` needs; `backward` takes ∂L/∂output,
/// adds ∂L/∂parameters into the parameters' `grad`, and returns ∂L/∂input.
///
/// Layers are single-threaded objects (one training loop owns them). `parameters` has a stable order:
/// the data-parallel layer packs gradients in that order on every rank.
public protocol Layer: AnyObject {
    func forward(_ input: Tensor, training: Bool) -> Tensor
    func backward(_ gradOutput: Tensor) -> Tensor
    /// `backward` for a layer whose input needs no gradient (the first layer of a model): adds
    /// ∂L/∂parameters and may skip computing ∂L/∂input. The default runs `backward` and drops its result.
    func backwardParameters(_ gradOutput: Tensor)
    var parameters: [Parameter] { get }
}

extension Layer {
    public var parameters: [Parameter] { [] }
    public func backwardParameters(_ gradOutput: Tensor) { _ = backward(gradOutput) }
    public func zeroGrad() { parameters.forEach { $0.zeroGrad() } }
}

/// Layers applied in order.
public final class Sequential: Layer {
    public let layers: [any Layer]

    public init(_ layers: [any Layer]) { self.layers = layers }

    public func forward(_ input: Tensor, training: Bool) -> Tensor {
        layers.reduce(input) { $1.forward($0, training: training) }
    }

    public func backward(_ gradOutput: Tensor) -> Tensor {
        layers.reversed().reduce(gradOutput) { $1.backward($0) }
    }

    /// Skips ∂L/∂input of the first layer (e.g. a Dense first layer saves one of its three GEMMs).
    public func backwardParameters(_ gradOutput: Tensor) {
        guard let first = layers.first else { return }
        first.backwardParameters(layers.dropFirst().reversed().reduce(gradOutput) { $1.backward($0) })
    }

    public var parameters: [Parameter] { layers.flatMap(\.parameters) }
}
