import Foundation
import NebulaCommon
import Synchronization
import Testing
@testable import NebulaCoordinator

/// Token buckets with a clock the test moves, and the `--rate-limit` parser with its bad inputs.
@Suite("Rate limits")
struct RateLimiterTests {
    final class Clock: Sendable {
        let now = Mutex(1000.0)
        func advance(_ s: Double) { now.withLock { $0 += s } }
    }

    @Test func bucketEmptiesRefillsAndSaysWhenToRetry() {
        let clock = Clock()
        let limiter = RateLimiter(clock: { clock.now.withLock { $0 } })
        let limit = RateLimit(perMinute: 60, burst: 3)  // one token a second
        let first = (0..<3).map { _ in limiter.take("k", limit) }
        #expect(first.map(\.allowed) == [true, true, true])
        #expect(first.map(\.remaining) == [2, 1, 0])
        let refused = limiter.take("k", limit)
        #expect(!refused.allowed && refused.retryAfterSeconds == 1 && refused.resetSeconds == 3)
        #expect(limiter.take("other", limit).allowed, "buckets are per key")
        clock.advance(1)
        #expect(limiter.take("k", limit).allowed)
        #expect(!limiter.take("k", limit).allowed)
        // A bucket idle long enough to be full again is dropped by the next sweep.
        clock.advance(120)
        _ = limiter.take("fresh", limit)
        #expect(limiter.bucketCount == 1)
    }

    @Test func rateLimitSpecs() throws {
        var table = RateLimitTable()
        try table.set("read=120/min:30")
        #expect(table.limits["read"] == RateLimit(perMinute: 120, burst: 30))
        try table.set("write=50/min")
        #expect(table.limits["write"] == RateLimit(perMinute: 50, burst: 10))
        try table.set("upload=off")
        #expect(table.limits["upload"] == nil)
        for bad in ["reads=10/min", "read", "read=10", "read=10/hour", "read=0/min", "read=-5/min", "read=10/min:0",
                    "read=10/min:x", "read=10/min:1:2"] {
            #expect(throws: ConfigurationError.self, "\(bad)") { try table.set(bad) }
        }
    }
}
