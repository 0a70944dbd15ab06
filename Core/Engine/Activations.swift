#if canImport(Glibc)
import Glibc
#endif

/// The element-wise activations the engine knows, for the fused layers (`FusedDense`) and the model builder.
public enum Activation: String, Sendable, CaseIterable, Codable {
    case identity, relu, gelu, geluTanh, tanh, sigmoid

    /// A standalone layer computing this activation (`nil` for `.identity`).
    public func makeLayer() -> (any Layer)? {
        switch self {
        case .identity: nil
        case .relu: ReLU()
        case .gelu: GELU()
        case .geluTanh: GELU(approximation: .tanh)
        case .tanh: Tanh()
        case .sigmoid: Sigmoid()
        }
    }

    /// Whether the derivative can be computed from the activation's output alone (so a layer need
    /// not keep its pre-activation): true for identity, ReLU, tanh and sigmoid; false for GELU.
    var derivativeFromOutput: Bool { self != .gelu && self != .geluTanh }
}

/// Element-wise forward and backward kernels over raw buffers, shared by the activation layers and
/// `FusedDense`. Forward may run in place (`x == y`).
enum ActivationKernels {
    /// y = f(x).
    static func forward(_ f: Activation, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        switch f {
        case .identity:
            if UnsafePointer(y) != x { y.update(from: x, count: n) }
        case .relu:
            var i = 0
            let zero = SIMD8<Float>(repeating: 0)
            while i + 8 <= n {
                let v = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)
                UnsafeMutableRawPointer(y + i).storeBytes(of: v.replacing(with: zero, where: v .< zero), as: SIMD8<Float>.self)
                i += 8
            }
            while i < n { y[i] = max(x[i], 0); i += 1 }
        case .gelu:
            for i in 0..<n { let v = x[i]; y[i] = 0.5 * v * (1 + erff(v * sqrtHalf)) }
        case .geluTanh:
            for i in 0..<n { let v = x[i]; y[i] = 0.5 * v * (1 + tanhf(sqrt2OverPi * (v + geluC * v * v * v))) }
        case .tanh:
            for i in 0..<n { y[i] = tanhf(x[i]) }
        case .sigmoid:
            for i in 0..<n { y[i] = sigmoid(x[i]) }
        }
    }

    /// dx = dy ⊙ f′, with f′ taken from the output `y` where `derivativeFromOutput`, else from the
    /// pre-activation `x`. `dx` may alias `dy`.
    static func backward(_ f: Activation, x: UnsafePointer<Float>?, y: UnsafePointer<Float>?,
                         _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, _ n: Int) {
        switch f {
        case .identity:
            if UnsafePointer(dx) != dy { dx.update(from: dy, count: n) }
        case .relu:
            let y = y!
            var i = 0
            let zero = SIMD8<Float>(repeating: 0)
            while i + 8 <= n {
                let vy = UnsafeRawPointer(y + i).loadUnaligned(as: SIMD8<Float>.self)
                let vg = UnsafeRawPointer(dy + i).loadUnaligned(as: SIMD8<Float>.self)
                UnsafeMutableRawPointer(dx + i).storeBytes(of: vg.replacing(with: zero, where: vy .<= zero),
                                                          as: SIMD8<Float>.self)
                i += 8
            }
            while i < n { dx[i] = y[i] > 0 ? dy[i] : 0; i += 1 }
        case .gelu:
            let x = x!
            for i in 0..<n {
                let v = x[i]
                let cdf = 0.5 * (1 + erff(v * sqrtHalf))
                let pdf = expf(-0.5 * v * v) * invSqrt2Pi
                dx[i] = dy[i] * (cdf + v * pdf)
            }
        case .geluTanh:
            let x = x!
            for i in 0..<n {
                let v = x[i]
                let t = tanhf(sqrt2OverPi * (v + geluC * v * v * v))
                let du = sqrt2OverPi * (1 + 3 * geluC * v * v)
                dx[i] = dy[i] * (0.5 * (1 + t) + 0.5 * v * (1 - t * t) * du)
            }
        case .tanh:
            let y = y!
            for i in 0..<n { dx[i] = dy[i] * (1 - y[i] * y[i]) }
        case .sigmoid:
            let y = y!
            for i in 0..<n { dx[i] = dy[i] * y[i] * (1 - y[i]) }
        }
    }

    /// 1 / (1 + e^(−x)) without overflow for large |x|.
    @inline(__always)
    static func sigmoid(_ x: Float) -> Float {
        if x >= 0 { return 1 / (1 + expf(-x)) }
        let e = expf(x)
        return e / (1 + e)
    }

    static let sqrtHalf: Float = 0.707_106_781_186_547_5
    static let invSqrt2Pi: Float = 0.398_942_280_401_432_7
    static let sqrt2OverPi: Float = 0.797_884_560_802_865_4
    static let geluC: Float = 0.044_715
}

/// A layer applying one element-wise activation; keeps what its backward needs (output or input).
public class ElementwiseActivation: Layer {
    public let activation: Activation
    private var saved = Tensor(zeros: [0])
    private var out = Tensor(zeros: [0])

    init(_ activation: Activation) { self.activation = activation }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        if out.shape != x.shape { out = Tensor(zeros: x.shape) }
        let f = activation
        x.storage.withUnsafeBufferPointer { xp in
            out.storage.withUnsafeMutableBufferPointer { yp in
                ActivationKernels.forward(f, xp.baseAddress!, yp.baseAddress!, xp.count)
            }
        }
        if training { saved = activation.derivativeFromOutput ? out : x }
        return out
    }

    public func backward(_ g: Tensor) -> Tensor {
        precondition(g.shape == saved.shape,
                     "\(activation).backward: gradient shape \(g.shape), expected \(saved.shape) (training forward first)")
        var dx = Tensor(zeros: g.shape)
        let f = activation, fromOutput = activation.derivativeFromOutput
        saved.storage.withUnsafeBufferPointer { s in
            g.storage.withUnsafeBufferPointer { gp in
                dx.storage.withUnsafeMutableBufferPointer { d in
                    ActivationKernels.backward(f, x: fromOutput ? nil : s.baseAddress, y: fromOutput ? s.baseAddress : nil,
                                               gp.baseAddress!, d.baseAddress!, gp.count)
                }
            }
        }
        saved = Tensor(zeros: [0])
        return dx
    }
}

/// Gaussian error linear unit. Default: the exact form x·Φ(x) = ½x(1 + erf(x/√2)), PyTorch's default
/// (`approximate='none'`); `.tanh` is ½x(1 + tanh(√(2/π)(x + 0.044715x³))), PyTorch's `approximate='tanh'`.
public final class GELU: ElementwiseActivation {
    public enum Approximation: Sendable { case none, tanh }

    public init(approximation: Approximation = .none) {
        super.init(approximation == .none ? .gelu : .geluTanh)
    }
}

/// tanh(x); backward from the saved output (1 − y²).
public final class Tanh: ElementwiseActivation {
    public init() { super.init(.tanh) }
}

/// 1 / (1 + e^(−x)), computed without overflow; backward from the saved output y(1 − y).
public final class Sigmoid: ElementwiseActivation {
    public init() { super.init(.sigmoid) }
}
