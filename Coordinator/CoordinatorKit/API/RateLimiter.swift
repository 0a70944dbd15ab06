import Foundation
import Synchronization

/// Token buckets by key (Note [Rate limits]). Thread-safe; idle buckets are dropped as they refill.
final class RateLimiter: Sendable {
    struct Decision: Sendable, Equatable {
        var allowed: Bool
        var limit: Int
        var remaining: Int
        /// Seconds until the bucket is full again.
        var resetSeconds: Int
        /// Seconds until one token is back (for Retry-After when refused).
        var retryAfterSeconds: Int
    }

    private struct Bucket {
        var tokens: Double
        var updated: Double
    }

    private let state = Mutex<(buckets: [String: Bucket], lastSweep: Double)>(([:], 0))
    private let now: @Sendable () -> Double

    init(clock: @escaping @Sendable () -> Double = { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }) {
        now = clock
    }

    /// Takes one token from `key`'s bucket under `limit`.
    func take(_ key: String, _ limit: RateLimit) -> Decision {
        let t = now()
        let rate = limit.perMinute / 60
        let capacity = Double(limit.burst)
        return state.withLock { s in
            if t - s.lastSweep > 60 {
                // A bucket idle long enough to be full again is the same as no bucket.
                s.buckets = s.buckets.filter { $0.value.tokens + (t - $0.value.updated) * rate < capacity }
                s.lastSweep = t
            }
            var b = s.buckets[key] ?? Bucket(tokens: capacity, updated: t)
            b.tokens = min(capacity, b.tokens + (t - b.updated) * rate)
            b.updated = t
            let allowed = b.tokens >= 1
            if allowed { b.tokens -= 1 }
            s.buckets[key] = b
            return Decision(allowed: allowed, limit: limit.burst, remaining: Int(b.tokens.rounded(.down)),
                            resetSeconds: Int(((capacity - b.tokens) / rate).rounded(.up)),
                            retryAfterSeconds: allowed ? 0 : max(1, Int(((1 - b.tokens) / rate).rounded(.up))))
        }
    }

    var bucketCount: Int { state.withLock { $0.buckets.count } }
}
