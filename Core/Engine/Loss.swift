#if canImport(Glibc)
import Glibc
#endif

/// A training objective: the mean loss over a batch and its gradient with respect to the model's
/// output. Not a layer: it ends the graph, so it returns ∂L/∂output directly.
///
/// `evaluate(_:_:gradient:)` writes the gradient into a caller-owned tensor (reused across batches by
/// the trainer: no allocation once it has the right shape); `callAsFunction` returns a fresh one.
public protocol Loss {
    associatedtype Target
    func evaluate(_ output: Tensor, _ target: Target, gradient: inout Tensor) -> Float
}

extension Loss {
    public func callAsFunction(_ output: Tensor, _ target: Target) -> (value: Float, grad: Tensor) {
        var grad = Tensor(zeros: output.shape)
        let value = evaluate(output, target, gradient: &grad)
        return (value, grad)
    }
}

/// Reshapes `gradient` to `shape` unless it already has it (the trainer's buffer keeps its storage).
@inline(__always)
func prepareGradient(_ gradient: inout Tensor, _ shape: [Int]) {
    if gradient.shape != shape { gradient = Tensor(zeros: shape) }
}

/// Shared loop of the element-wise regression losses: f(d) returns (loss, ∂loss/∂d) for d = output − target.
@inline(__always)
private func elementwise(_ name: String, _ output: Tensor, _ target: Tensor, _ gradient: inout Tensor,
                         _ f: (Float) -> (Float, Float)) -> Float {
    precondition(output.count == target.count,
                 "\(name): output \(output.shape) and target \(target.shape) have different element counts")
    prepareGradient(&gradient, output.shape)
    let n = output.count
    guard n > 0 else { return .nan }
    let inv = 1 / Float(n)
    var total: Double = 0
    output.storage.withUnsafeBufferPointer { o in
        target.storage.withUnsafeBufferPointer { t in
            gradient.storage.withUnsafeMutableBufferPointer { g in
                for i in 0..<n {
                    let (l, d) = f(o[i] - t[i])
                    total += Double(l)
                    g[i] = d * inv
                }
            }
        }
    }
    return Float(total / Double(n))
}

/// Mean squared error, mean over all elements (PyTorch `MSELoss()`).
public struct MSELoss: Loss, Sendable {
    public init() {}
    public func evaluate(_ output: Tensor, _ target: Tensor, gradient: inout Tensor) -> Float {
        elementwise("MSELoss", output, target, &gradient) { d in (d * d, 2 * d) }
    }
}

/// Mean absolute error (PyTorch `L1Loss()`); the subgradient at 0 is 0, as `sign(0)` in PyTorch.
public struct MAELoss: Loss, Sendable {
    public init() {}
    public func evaluate(_ output: Tensor, _ target: Tensor, gradient: inout Tensor) -> Float {
        elementwise("MAELoss", output, target, &gradient) { d in (abs(d), d > 0 ? 1 : (d < 0 ? -1 : 0)) }
    }
}

/// Huber loss (PyTorch `HuberLoss(delta:)`): ½d² where |d| ≤ δ, else δ(|d| − ½δ); mean over elements.
public struct HuberLoss: Loss, Sendable {
    public let delta: Float
    public init(delta: Float = 1) {
        precondition(delta > 0, "HuberLoss delta must be positive")
        self.delta = delta
    }
    public func evaluate(_ output: Tensor, _ target: Tensor, gradient: inout Tensor) -> Float {
        let delta = self.delta
        return elementwise("HuberLoss", output, target, &gradient) { d in
            let a = abs(d)
            return a <= delta ? (0.5 * d * d, d) : (delta * (a - 0.5 * delta), d > 0 ? delta : -delta)
        }
    }
}

/// Softmax cross-entropy over logits [N, C] with integer class targets (PyTorch `CrossEntropyLoss`).
/// Log-sum-exp with the row maximum subtracted, so any finite logits are safe. With class weights w,
/// the loss is PyTorch's weighted mean Σᵢ w[yᵢ]·(−log pᵢ[yᵢ]) / Σᵢ w[yᵢ]; without, the plain mean.
public struct CrossEntropyLoss: Loss, Sendable {
    public let classWeights: [Float]?

    public init(classWeights: [Float]? = nil) { self.classWeights = classWeights }

    public func evaluate(_ output: Tensor, _ target: [Int], gradient: inout Tensor) -> Float {
        precondition(output.rank == 2, "CrossEntropyLoss expects logits [N, C], got \(output.shape)")
        let n = output.shape[0], c = output.shape[1]
        precondition(c > 0, "CrossEntropyLoss needs at least one class")
        precondition(target.count == n, "CrossEntropyLoss: \(n) rows of logits but \(target.count) targets")
        if let w = classWeights { precondition(w.count == c, "CrossEntropyLoss: \(w.count) class weights for \(c) classes") }
        prepareGradient(&gradient, output.shape)
        guard n > 0 else { return .nan }
        var total: Double = 0, weightSum: Double = 0
        output.storage.withUnsafeBufferPointer { o in
            gradient.storage.withUnsafeMutableBufferPointer { g in
                for r in 0..<n {
                    let y = target[r]
                    precondition(y >= 0 && y < c, "CrossEntropyLoss: target \(y) outside 0..<\(c)")
                    let row = o.baseAddress! + r * c, grow = g.baseAddress! + r * c
                    var m = row[0]
                    for j in 1..<c { m = max(m, row[j]) }
                    var s: Float = 0
                    for j in 0..<c {
                        let e = expf(row[j] - m)
                        grow[j] = e
                        s += e
                    }
                    let w = classWeights?[y] ?? 1
                    // −log softmax[y] = log Σ e^(z−m) − (z_y − m)
                    total += Double(w) * Double(logf(s) - (row[y] - m))
                    weightSum += Double(w)
                    let inv = w / s
                    for j in 0..<c { grow[j] *= inv }
                    grow[y] -= w
                }
            }
        }
        // Gradient so far is w·(p − onehot) per row; the mean divides by Σw (N without weights).
        let scale = weightSum > 0 ? Float(1 / weightSum) : 0
        gradient.scale(by: scale)
        return Float(total / weightSum)
    }
}

/// Binary cross-entropy on logits (PyTorch `BCEWithLogitsLoss()`), targets in [0, 1] of the same
/// element count: ℓ = max(x, 0) − x·y + log(1 + e^(−|x|)), stable for any finite x; mean over elements.
public struct BCEWithLogitsLoss: Loss, Sendable {
    public init() {}

    public func evaluate(_ output: Tensor, _ target: Tensor, gradient: inout Tensor) -> Float {
        precondition(output.count == target.count,
                     "BCEWithLogitsLoss: output \(output.shape) and target \(target.shape) have different element counts")
        prepareGradient(&gradient, output.shape)
        let n = output.count
        guard n > 0 else { return .nan }
        let inv = 1 / Float(n)
        var total: Double = 0
        output.storage.withUnsafeBufferPointer { o in
            target.storage.withUnsafeBufferPointer { t in
                gradient.storage.withUnsafeMutableBufferPointer { g in
                    for i in 0..<n {
                        let x = o[i], y = t[i]
                        total += Double(max(x, 0) - x * y + log1pf(expf(-abs(x))))
                        g[i] = (ActivationKernels.sigmoid(x) - y) * inv
                    }
                }
            }
        }
        return Float(total / Double(n))
    }
}
