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

/// Told during a backward pass that the gradients of `parameters` are final for this pass
/// (Note [Gradients-ready hook]).
public typealias GradientsReady = (_ parameters: [Parameter]) -> Void

/// Autograd at layer level: `forward` keeps only what `backward` needs; `backward` takes ∂L/∂output,
/// adds ∂L/∂parameters into the parameters' `grad`, and returns ∂L/∂input.
///
/// Layers are single-threaded objects (one training loop owns them). `parameters` has a stable order:
/// the data-parallel layer packs gradients in that order on every rank.
///
/// Note [Gradients-ready hook]: `backward(_:gradientsReady:)` and `backwardParameters(_:gradientsReady:)`
/// run the same backward pass and call `gradientsReady` with a group of parameters as soon as no later
/// part of the pass adds to their gradients. A data-parallel trainer uses it to start the allreduce of
/// a gradient bucket while the earlier layers still compute (DDP's autograd hooks, at layer
/// granularity). The defaults report all of a layer's parameters once its backward returned; a
/// container (`Sequential`) passes the hook down, so each inner layer reports as soon as it is done, in
/// backward order. Contract: every parameter is reported at most once per pass, and only after its last
/// gradient contribution (a parameter shared by two layers must not be reported by the first; no
/// layer here shares parameters). Parameters that were never reported are treated as ready at the end of
/// the pass by the caller. The hook costs one closure call per layer that has parameters.
public protocol Layer: AnyObject {
    func forward(_ input: Tensor, training: Bool) -> Tensor
    func backward(_ gradOutput: Tensor) -> Tensor
    /// `backward` for a layer whose input needs no gradient (the first layer of a model): adds
    /// ∂L/∂parameters and may skip computing ∂L/∂input. The default runs `backward` and drops its result.
    func backwardParameters(_ gradOutput: Tensor)
    /// `backward`, reporting parameters whose gradients are final (Note [Gradients-ready hook]).
    func backward(_ gradOutput: Tensor, gradientsReady: GradientsReady) -> Tensor
    /// `backwardParameters`, reporting parameters whose gradients are final (Note [Gradients-ready hook]).
    func backwardParameters(_ gradOutput: Tensor, gradientsReady: GradientsReady)
    var parameters: [Parameter] { get }
}

extension Layer {
    public var parameters: [Parameter] { [] }
    public func backwardParameters(_ gradOutput: Tensor) { _ = backward(gradOutput) }
    public func zeroGrad() { parameters.forEach { $0.zeroGrad() } }

    public func backward(_ gradOutput: Tensor, gradientsReady: GradientsReady) -> Tensor {
        let gradInput = backward(gradOutput)
        let own = parameters
        if !own.isEmpty { gradientsReady(own) }
        return gradInput
    }

    public func backwardParameters(_ gradOutput: Tensor, gradientsReady: GradientsReady) {
        backwardParameters(gradOutput)
        let own = parameters
        if !own.isEmpty { gradientsReady(own) }
    }
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

    /// Each layer reports its own parameters as soon as its backward returned (last layer first).
    public func backward(_ gradOutput: Tensor, gradientsReady: GradientsReady) -> Tensor {
        layers.reversed().reduce(gradOutput) { $1.backward($0, gradientsReady: gradientsReady) }
    }

    public func backwardParameters(_ gradOutput: Tensor, gradientsReady: GradientsReady) {
        guard let first = layers.first else { return }
        let g = layers.dropFirst().reversed().reduce(gradOutput) { $1.backward($0, gradientsReady: gradientsReady) }
        first.backwardParameters(g, gradientsReady: gradientsReady)
    }

    public var parameters: [Parameter] { layers.flatMap(\.parameters) }
}
