import Logging
import Synchronization

/// A fixed set of ``PostgresClient``s handed out round-robin, for services with many concurrent
/// short queries (the HTTP API). Each client keeps its own connection, reconnects on its own and
/// serialises its own calls, so `n` clients run up to `n` statements at once. A transaction is one
/// `withConnection` body on one client, as with a single client.
public final class PostgresPool: Sendable {
    private let clients: [PostgresClient]
    private let next = Atomic<Int>(0)

    public init(url: String, size: Int, logger: Logger) {
        precondition(size >= 1, "a pool needs at least one connection")
        clients = (0..<size).map { _ in PostgresClient(url: url, logger: logger) }
    }

    public var size: Int { clients.count }

    /// The next client in turn.
    public var client: PostgresClient {
        clients[(next.add(1, ordering: .relaxed).oldValue & Int.max) % clients.count]
    }

    public func close() async {
        for c in clients { await c.close() }
    }
}
