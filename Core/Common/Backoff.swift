/// Exponential backoff with full jitter: attempt n waits a random time in [base·2ⁿ/2, base·2ⁿ], capped.
public struct Backoff: Sendable {
    public var base: Duration
    public var cap: Duration
    public private(set) var attempt = 0

    public init(base: Duration = .milliseconds(200), cap: Duration = .seconds(5)) {
        self.base = base
        self.cap = cap
    }

    /// The delay before the next attempt.
    public mutating func next<R: RandomNumberGenerator>(using random: inout R) -> Duration {
        let exponent = min(attempt, 20)
        attempt += 1
        let ceiling = min(cap.wholeMilliseconds, base.wholeMilliseconds << exponent)
        let floor = ceiling / 2
        return .milliseconds(floor == ceiling ? ceiling : Int64.random(in: floor...ceiling, using: &random))
    }

    public mutating func next() -> Duration {
        var g = SystemRandomNumberGenerator()
        return next(using: &g)
    }

    public mutating func reset() { attempt = 0 }
}
