/// Exponential reconnect backoff as a pure state machine: no clock, no randomness inside; the
/// caller passes the time and a jitter sample, so tests drive it directly.
///
/// After the n-th consecutive failed connect, no new attempt is made for
/// `min(initial · 2ⁿ⁻¹, maximum)` reduced by up to `jitter` (a fraction), so that many clients
/// that lost the same server do not reconnect in lockstep. A successful connect resets it.
public struct ReconnectBackoff: Sendable {
    /// The delays: 100 ms doubling to a 5 s cap, up to 20 % shorter at random, by default.
    public struct Policy: Sendable, Hashable {
        public var initial: Duration
        public var maximum: Duration
        /// The fraction (0…1) by which a delay may be shortened at random.
        public var jitter: Double

        public init(initial: Duration = .milliseconds(100), maximum: Duration = .seconds(5), jitter: Double = 0.2) {
            self.initial = initial
            self.maximum = max(maximum, initial)
            self.jitter = min(max(jitter, 0), 1)
        }
    }

    public let policy: Policy
    /// Consecutive failed connects since the last success.
    public private(set) var failures = 0
    /// No connect is attempted before this instant; nil when attempts are allowed.
    public private(set) var retryAt: ContinuousClock.Instant?

    public init(policy: Policy = Policy()) {
        self.policy = policy
    }

    /// Whether a connect may be attempted at `now`.
    public func mayAttempt(at now: ContinuousClock.Instant) -> Bool {
        retryAt.map { now >= $0 } ?? true
    }

    /// The delay before the next attempt after `failures` consecutive failures, before jitter.
    public func baseDelay(failures: Int) -> Duration {
        guard failures > 0 else { return .zero }
        var delay = policy.initial
        for _ in 1..<min(failures, 64) {
            delay *= 2
            if delay >= policy.maximum { return policy.maximum }
        }
        return min(delay, policy.maximum)
    }

    /// Records a failed connect at `now`; `jitterSample` in 0..<1 picks how much shorter the wait
    /// is. Returns the wait.
    @discardableResult
    public mutating func connectFailed(at now: ContinuousClock.Instant, jitterSample: Double) -> Duration {
        failures += 1
        let sample = min(max(jitterSample, 0), 1)
        let delay = baseDelay(failures: failures) * (1 - policy.jitter * sample)
        retryAt = now + delay
        return delay
    }

    /// Records a successful connect: the next failure starts from `initial` again.
    public mutating func connected() {
        failures = 0
        retryAt = nil
    }
}
