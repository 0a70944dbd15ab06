#if canImport(Glibc)
import Glibc
#endif

/// A learning rate as a pure function of the scheduler step t = 0, 1, 2, … (what one step is, a batch
/// or an epoch, is the caller's choice; `Trainer` takes either). Pure, so a resumed run only needs t.
/// Closed forms of PyTorch's StepLR, CosineAnnealingLR, LinearLR and SequentialLR.
public protocol LearningRateSchedule: Sendable {
    func learningRate(at step: Int) -> Float
}

/// A constant rate.
public struct ConstantLR: LearningRateSchedule {
    public let base: Float
    public init(_ base: Float) { self.base = base }
    public func learningRate(at step: Int) -> Float { base }
}

/// base · γ^⌊t / stepSize⌋ (PyTorch `StepLR`).
public struct StepLR: LearningRateSchedule {
    public let base: Float
    public let stepSize: Int
    public let gamma: Float

    public init(base: Float, stepSize: Int, gamma: Float = 0.1) {
        precondition(stepSize > 0, "StepLR step size must be positive")
        self.base = base
        self.stepSize = stepSize
        self.gamma = gamma
    }

    public func learningRate(at step: Int) -> Float {
        Float(Double(base) * pow(Double(gamma), Double(max(0, step) / stepSize)))
    }
}

/// min + (base − min)·(1 + cos(π·t/T))/2 for t ≤ T, then min (PyTorch `CosineAnnealingLR(T_max: T, eta_min: min)`
/// over its first half-period, which is how it is used).
public struct CosineLR: LearningRateSchedule {
    public let base: Float
    public let steps: Int
    public let minimum: Float

    public init(base: Float, steps: Int, minimum: Float = 0) {
        precondition(steps > 0, "CosineLR needs a positive number of steps")
        self.base = base
        self.steps = steps
        self.minimum = minimum
    }

    public func learningRate(at step: Int) -> Float {
        let t = Double(min(max(0, step), steps)) / Double(steps)
        return Float(Double(minimum) + Double(base - minimum) * (1 + cos(Double.pi * t)) / 2)
    }
}

/// Linear warm-up into another schedule: for t < W the rate goes linearly from startFactor·r₀ to
/// r₀ = next(0) (PyTorch `LinearLR(start_factor, total_iters: W)`); from t = W on it is next(t − W)
/// (`SequentialLR` with milestone W). Composes: `LinearWarmup(steps: 5, then: CosineLR(base: 1e-3, steps: 95))`.
public struct LinearWarmup<Next: LearningRateSchedule>: LearningRateSchedule {
    public let steps: Int
    public let startFactor: Float
    public let next: Next

    public init(steps: Int, startFactor: Float = 0, then next: Next) {
        precondition(steps >= 0, "warm-up steps must not be negative")
        self.steps = steps
        self.startFactor = startFactor
        self.next = next
    }

    public func learningRate(at step: Int) -> Float {
        if step >= steps { return next.learningRate(at: step - steps) }
        let f = Double(startFactor) + (1 - Double(startFactor)) * Double(max(0, step)) / Double(steps)
        return Float(Double(next.learningRate(at: 0)) * f)
    }
}
