import Foundation
import NebulaCommon
import Logging
import NebulaStore
import Synchronization

/// One answered request, as stored in `api_requests`.
struct RequestRecord: Sendable {
    var timeUnixMs: Int64
    var requestId: String
    var method: String
    var route: String
    var status: Int
    var durationMs: Double
    var userId: String
    var ip: String
}

/// Buffers request records and writes them with COPY every interval. Bounded: when PostgreSQL is
/// away longer than the buffer lasts, the oldest records are dropped and the count is logged (these
/// are usage statistics, not platform state).
final class RequestLog: Sendable {
    private let buffer = Mutex<(records: [RequestRecord], dropped: Int)>(([], 0))
    private let client: PostgresClient
    private let logger: Logger
    static let capacity = 100_000

    init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    func append(_ record: RequestRecord) {
        buffer.withLock {
            if $0.records.count >= Self.capacity {
                $0.records.removeFirst($0.records.count / 10)
                $0.dropped += Self.capacity / 10
            }
            $0.records.append(record)
        }
    }

    /// Writes what is buffered; on failure puts it back for the next round.
    func flush() async {
        let (batch, dropped) = buffer.withLock { s -> ([RequestRecord], Int) in
            defer { s.records = []; s.dropped = 0 }
            return (s.records, s.dropped)
        }
        if dropped > 0 { logger.warning("request records dropped while PostgreSQL was unavailable", metadata: ["count": "\(dropped)"]) }
        guard !batch.isEmpty else { return }
        do {
            _ = try await client.copyIn(table: "api_requests",
                                        columns: ["time", "request_id", "method", "route", "status", "duration_ms", "user_id", "ip"],
                                        rows: batch.map { r in
                                            [.text(isoTimestamp(r.timeUnixMs)), .text(r.requestId), .text(r.method), .text(r.route),
                                             PGValue(r.status), PGValue(r.durationMs), .text(r.userId), .text(r.ip)]
                                        })
        } catch {
            logger.warning("request records not written yet", metadata: ["error": "\(error)", "count": "\(batch.count)"])
            buffer.withLock { $0.records.insert(contentsOf: batch, at: 0) }
        }
    }

    /// Deletes records older than `retention`.
    func prune(olderThan retention: Duration) async {
        do {
            let removed = try await client.execute("DELETE FROM api_requests WHERE time < now() - make_interval(secs => $1)",
                                                   [PGValue(Double(retention.components.seconds))])
            if removed > 0 { logger.debug("old request records removed", metadata: ["count": "\(removed)"]) }
        } catch {
            logger.warning("old request records not removed yet", metadata: ["error": "\(error)"])
        }
    }

    /// Flushes every `interval`; prunes at start and then every retention/10 (at most hourly).
    func run(every interval: Duration, retention: Duration) async {
        let clock = ContinuousClock()
        let pruneEvery = min(.seconds(3600), retention / 10)
        var nextPrune = clock.now
        while !Task.isCancelled {
            if clock.now >= nextPrune {
                await prune(olderThan: retention)
                nextPrune = clock.now + pruneEvery
            }
            try? await Task.sleep(for: interval)
            await flush()
        }
        await flush()
    }
}
