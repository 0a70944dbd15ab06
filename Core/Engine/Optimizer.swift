#if canImport(Glibc)
import Glibc
#endif

/// A tensor with a name, as an optimizer exports its state and a checkpoint stores it.
public struct NamedTensor: Sendable, Equatable {
    public var name: String
    public var tensor: Tensor

    public init(_ name: String, _ tensor: Tensor) {
        self.name = name
        self.tensor = tensor
    }
}

/// An optimizer's state: its step count and its per-parameter tensors in parameter order, each named
/// `<parameter name>.<slot>` (slots as PyTorch names them: `momentum_buffer`, `exp_avg`, `exp_avg_sq`).
public struct OptimizerState: Sendable, Equatable {
    public var step: Int
    public var tensors: [NamedTensor]

    public init(step: Int, tensors: [NamedTensor]) {
        self.step = step
        self.tensors = tensors
    }
}

/// A state that does not fit the optimizer it is imported into.
public struct OptimizerStateError: Error, CustomStringConvertible, Equatable {
    public var description: String
}

/// Updates a fixed list of parameters from their gradients. Single-threaded, like the layers.
public protocol Optimizer: AnyObject {
    /// The parameters in the order given at construction (the order of the exported state).
    var parameters: [Parameter] { get }
    var learningRate: Float { get set }
    /// Completed `step()` calls.
    var stepCount: Int { get }
    func step()
    func exportState() -> OptimizerState
    func importState(_ state: OptimizerState) throws(OptimizerStateError)
}

extension Optimizer {
    public func zeroGrad() { for p in parameters { p.zeroGrad() } }
}

/// Checks `state` against slot names per parameter and returns the tensors' storage in order.
func importSlots(_ state: OptimizerState, parameters: [Parameter], slots: [String]) throws(OptimizerStateError)
    -> [[Float]]
{
    guard state.step >= 0 else { throw OptimizerStateError(description: "negative step count \(state.step)") }
    guard state.tensors.count == parameters.count * slots.count else {
        throw OptimizerStateError(description:
            "state has \(state.tensors.count) tensors, expected \(parameters.count * slots.count) (\(slots.joined(separator: ", ")) per parameter)")
    }
    var out: [[Float]] = []
    var i = 0
    for p in parameters {
        for slot in slots {
            let t = state.tensors[i]
            let expected = "\(p.name).\(slot)"
            guard t.name == expected else {
                throw OptimizerStateError(description: "state tensor \(i) is '\(t.name)', expected '\(expected)'")
            }
            guard t.tensor.shape == p.value.shape else {
                throw OptimizerStateError(description: "'\(t.name)' has shape \(t.tensor.shape), parameter has \(p.value.shape)")
            }
            out.append(t.tensor.storage)
            i += 1
        }
    }
    return out
}

/// Stochastic gradient descent with PyTorch's `torch.optim.SGD` update:
///
///     g = grad + weightDecay·p
///     b = g on the first step, else momentum·b + (1 − dampening)·g
///     g = g + momentum·b (Nesterov) or b
///     p = p − lr·g
public final class SGD: Optimizer {
    public let parameters: [Parameter]
    public var learningRate: Float
    public let momentum: Float
    public let dampening: Float
    public let weightDecay: Float
    public let nesterov: Bool
    public private(set) var stepCount = 0
    private var buffers: [[Float]]

    public init(_ parameters: [Parameter], learningRate: Float, momentum: Float = 0, dampening: Float = 0,
                weightDecay: Float = 0, nesterov: Bool = false) {
        precondition(!nesterov || (momentum > 0 && dampening == 0), "Nesterov momentum requires a momentum and zero dampening")
        self.parameters = parameters
        self.learningRate = learningRate
        self.momentum = momentum
        self.dampening = dampening
        self.weightDecay = weightDecay
        self.nesterov = nesterov
        buffers = momentum == 0 ? [] : parameters.map { [Float](repeating: 0, count: $0.value.count) }
    }

    public func step() {
        let lr = learningRate, mu = momentum, damp = dampening, wd = weightDecay, first = stepCount == 0
        for (k, p) in parameters.enumerated() {
            p.value.storage.withUnsafeMutableBufferPointer { w in
                p.grad.storage.withUnsafeBufferPointer { g in
                    let n = w.count
                    if mu == 0 {
                        for i in 0..<n { w[i] -= lr * (g[i] + wd * w[i]) }
                        return
                    }
                    buffers[k].withUnsafeMutableBufferPointer { b in
                        for i in 0..<n {
                            let d = g[i] + wd * w[i]
                            b[i] = first ? d : mu * b[i] + (1 - damp) * d
                            w[i] -= lr * (nesterov ? d + mu * b[i] : b[i])
                        }
                    }
                }
            }
        }
        stepCount += 1
    }

    public func exportState() -> OptimizerState {
        OptimizerState(step: stepCount, tensors: zip(parameters, buffers).map {
            NamedTensor("\($0.name).momentum_buffer", Tensor(shape: $0.value.shape, storage: $1))
        })
    }

    public func importState(_ state: OptimizerState) throws(OptimizerStateError) {
        buffers = try importSlots(state, parameters: parameters, slots: momentum == 0 ? [] : ["momentum_buffer"])
        stepCount = state.step
    }
}

/// Adam (`torch.optim.Adam`, amsgrad off) and AdamW (`torch.optim.AdamW`), PyTorch's single-tensor update:
///
///     p = p·(1 − lr·wd)                       (AdamW: decoupled decay)
///     g = grad + wd·p                         (Adam: L2 in the gradient)
///     m = m + (1 − β₁)(g − m);  v = β₂v + (1 − β₂)g²
///     p = p − lr/(1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε)
///
/// One fused SIMD pass per parameter over p, grad, m and v (Note [Vector square root] in SIMDMath.swift).
public class Adam: Optimizer {
    public let parameters: [Parameter]
    public var learningRate: Float
    public let beta1: Float
    public let beta2: Float
    public let epsilon: Float
    public let weightDecay: Float
    /// true: AdamW's decoupled weight decay; false: Adam's L2 term in the gradient.
    public let decoupledWeightDecay: Bool
    public private(set) var stepCount = 0
    private var m: [[Float]]
    private var v: [[Float]]

    public init(_ parameters: [Parameter], learningRate: Float = 1e-3, beta1: Float = 0.9, beta2: Float = 0.999,
                epsilon: Float = 1e-8, weightDecay: Float = 0, decoupledWeightDecay: Bool = false) {
        self.parameters = parameters
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
        self.decoupledWeightDecay = decoupledWeightDecay
        m = parameters.map { [Float](repeating: 0, count: $0.value.count) }
        v = m
    }

    public func step() {
        stepCount += 1
        let t = Double(stepCount)
        let bc1 = 1 - pow(Double(beta1), t), bc2 = 1 - pow(Double(beta2), t)
        let lr = learningRate
        // Note [Adam denominator]: PyTorch divides √v by √(1 − β₂ᵗ); multiplying by the reciprocal saves a
        // vector division per element and differs by at most an ulp or so.
        let stepSize = Float(Double(lr) / bc1), invBc2Sqrt = Float(1 / bc2.squareRoot())
        let shrink: Float = decoupledWeightDecay ? 1 - lr * weightDecay : 1
        let l2: Float = decoupledWeightDecay ? 0 : weightDecay
        for k in parameters.indices {
            let p = parameters[k]
            p.value.storage.withUnsafeMutableBufferPointer { w in
                p.grad.storage.withUnsafeBufferPointer { g in
                    m[k].withUnsafeMutableBufferPointer { mb in
                        v[k].withUnsafeMutableBufferPointer { vb in
                            Adam.update(w.baseAddress!, g.baseAddress!, mb.baseAddress!, vb.baseAddress!, w.count,
                                        shrink: shrink, l2: l2, beta1: beta1, beta2: beta2, stepSize: stepSize,
                                        invBc2Sqrt: invBc2Sqrt, epsilon: epsilon)
                        }
                    }
                }
            }
        }
    }

    @inline(__always)
    private static func update(_ w: UnsafeMutablePointer<Float>, _ g: UnsafePointer<Float>,
                               _ m: UnsafeMutablePointer<Float>, _ v: UnsafeMutablePointer<Float>, _ n: Int,
                               shrink: Float, l2: Float, beta1: Float, beta2: Float, stepSize: Float,
                               invBc2Sqrt: Float, epsilon: Float) {
        let a1 = 1 - beta1, a2 = 1 - beta2
        var i = 0
        typealias V = SIMD8<Float>
        let vShrink = V(repeating: shrink), vL2 = V(repeating: l2), vA1 = V(repeating: a1)
        let vB2 = V(repeating: beta2), vA2 = V(repeating: a2), vStep = V(repeating: stepSize)
        let vBc2 = V(repeating: invBc2Sqrt), vEps = V(repeating: epsilon)
        while i + 8 <= n {
            var p = UnsafeRawPointer(w + i).loadUnaligned(as: V.self)
            var d = UnsafeRawPointer(g + i).loadUnaligned(as: V.self)
            var mm = UnsafeRawPointer(m + i).loadUnaligned(as: V.self)
            var vv = UnsafeRawPointer(v + i).loadUnaligned(as: V.self)
            p = p * vShrink
            d = d + vL2 * p
            mm = mm + vA1 * (d - mm)
            vv = vv * vB2 + vA2 * d * d
            p = p - vStep * (mm / (SIMDMath.squareRoot(vv) * vBc2 + vEps))
            UnsafeMutableRawPointer(w + i).storeBytes(of: p, as: V.self)
            UnsafeMutableRawPointer(m + i).storeBytes(of: mm, as: V.self)
            UnsafeMutableRawPointer(v + i).storeBytes(of: vv, as: V.self)
            i += 8
        }
        while i < n {
            var p = w[i] * shrink
            let d = g[i] + l2 * p
            m[i] += a1 * (d - m[i])
            v[i] = v[i] * beta2 + a2 * d * d
            p -= stepSize * (m[i] / (v[i].squareRoot() * invBc2Sqrt + epsilon))
            w[i] = p
            i += 1
        }
    }

    public func exportState() -> OptimizerState {
        var tensors: [NamedTensor] = []
        for (k, p) in parameters.enumerated() {
            tensors.append(NamedTensor("\(p.name).exp_avg", Tensor(shape: p.value.shape, storage: m[k])))
            tensors.append(NamedTensor("\(p.name).exp_avg_sq", Tensor(shape: p.value.shape, storage: v[k])))
        }
        return OptimizerState(step: stepCount, tensors: tensors)
    }

    public func importState(_ state: OptimizerState) throws(OptimizerStateError) {
        let slots = try importSlots(state, parameters: parameters, slots: ["exp_avg", "exp_avg_sq"])
        m = stride(from: 0, to: slots.count, by: 2).map { slots[$0] }
        v = stride(from: 1, to: slots.count, by: 2).map { slots[$0] }
        stepCount = state.step
    }
}

/// AdamW: Adam with decoupled weight decay (PyTorch's default decay 0.01).
public final class AdamW: Adam {
    public init(_ parameters: [Parameter], learningRate: Float = 1e-3, beta1: Float = 0.9, beta2: Float = 0.999,
                epsilon: Float = 1e-8, weightDecay: Float = 0.01) {
        super.init(parameters, learningRate: learningRate, beta1: beta1, beta2: beta2, epsilon: epsilon,
                   weightDecay: weightDecay, decoupledWeightDecay: true)
    }
}

/// Scales all gradients so that their global L2 norm is at most `maxNorm` (PyTorch
/// `clip_grad_norm_`: factor maxNorm / (norm + 1e-6) when below 1). Returns the norm before clipping.
@discardableResult
public func clipGradientNorm(_ parameters: [Parameter], maxNorm: Float) -> Float {
    var sumSquares: Double = 0
    for p in parameters {
        p.grad.storage.withUnsafeBufferPointer { g in
            var acc = SIMD8<Float>(repeating: 0)
            var i = 0
            let n = g.count
            while i + 8 <= n {
                let x = UnsafeRawPointer(g.baseAddress! + i).loadUnaligned(as: SIMD8<Float>.self)
                acc += x * x
                i += 8
            }
            var s = Double(acc.sum())
            while i < n { s += Double(g[i] * g[i]); i += 1 }
            sumSquares += s
        }
    }
    let norm = Float(sumSquares.squareRoot())
    let factor = maxNorm / (norm + 1e-6)
    if factor < 1 { for p in parameters { p.grad.scale(by: factor) } }
    return norm
}
