import NebulaModel
import Synchronization

/// Fans new log records out to `TailLogs --follow` subscribers and keeps the newest records in
/// memory, so tails work while the database is away.
public final class LogHub: Sendable {
    private struct Subscriber {
        let nodeId: String
        let minLevel: LogLevel?
        let continuation: AsyncStream<LogRecord>.Continuation
    }
    private struct State {
        var subscribers: [Int: Subscriber] = [:]
        var nextId = 0
        var recent: [LogRecord] = []
        var recentStart = 0
    }
    private let state = Mutex(State())
    private let capacity: Int

    public init(capacity: Int = 2000) { self.capacity = capacity }

    public func publish(_ records: [LogRecord]) {
        guard !records.isEmpty else { return }
        let subscribers = state.withLock { s -> [Subscriber] in
            for r in records {
                if s.recent.count < capacity {
                    s.recent.append(r)
                } else {
                    s.recent[s.recentStart] = r
                    s.recentStart = (s.recentStart + 1) % capacity
                }
            }
            return Array(s.subscribers.values)
        }
        for sub in subscribers {
            for r in records where Self.matches(r, sub.nodeId, sub.minLevel) { sub.continuation.yield(r) }
        }
    }

    /// New records matching the filter, from now on.
    public func subscribe(nodeId: String, minLevel: LogLevel?) -> AsyncStream<LogRecord> {
        let (stream, continuation) = AsyncStream.makeStream(of: LogRecord.self, bufferingPolicy: .bufferingNewest(10_000))
        let id = state.withLock { s -> Int in
            s.nextId += 1
            s.subscribers[s.nextId] = Subscriber(nodeId: nodeId, minLevel: minLevel, continuation: continuation)
            return s.nextId
        }
        continuation.onTermination = { [weak self] _ in
            self?.state.withLock { _ = $0.subscribers.removeValue(forKey: id) }
        }
        return stream
    }

    /// The newest `limit` records in memory matching the filter, oldest first.
    public func recent(nodeId: String, minLevel: LogLevel?, limit: Int) -> [LogRecord] {
        let all = state.withLock { s in Array(s.recent[s.recentStart...] + s.recent[..<s.recentStart]) }
        return Array(all.filter { Self.matches($0, nodeId, minLevel) }.suffix(limit))
    }

    static func matches(_ r: LogRecord, _ nodeId: String, _ minLevel: LogLevel?) -> Bool {
        (nodeId.isEmpty || r.nodeId == nodeId) && r.level >= (minLevel ?? .trace)
    }
}
