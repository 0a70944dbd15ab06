import Foundation
import Logging
import NebulaCommon
import NebulaModel
import NebulaNode
import NebulaRPC
import Testing

@Suite("Shard cache")
struct ShardCacheTests {
    @Test func evictionRemovesTheOldestShardsFirst() throws {
        let dir = NSTemporaryDirectory() + "nebula-cache-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cache = try ShardCache(directory: dir, logger: Logger(label: "test"))
        for (i, name) in ["a", "b", "c"].enumerated() {
            let path = dir + "/" + String(repeating: name, count: 64) + ".nbds"
            _ = FileManager.default.createFile(atPath: path, contents: Data(count: 1000))
            try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSince1970: Double(1000 + i))],
                                                  ofItemAtPath: path)
        }
        #expect(cache.cachedPath(String(repeating: "a", count: 64)) != nil)
        let removed = try cache.evict(keepingAtMost: 1500)
        #expect(removed == [String(repeating: "a", count: 64) + ".nbds", String(repeating: "b", count: 64) + ".nbds"])
        #expect(cache.cachedPath(String(repeating: "a", count: 64)) == nil)
        #expect(cache.cachedPath(String(repeating: "c", count: 64)) != nil)
        #expect(try cache.evict(keepingAtMost: 1500).isEmpty)
    }

    /// A coordinator that never comes back: broken streams are retried until `patience` passes
    /// without a byte, then the fetch fails naming the shard, the wait and where it stopped, and the
    /// partial file stays for the next try.
    @Test func aCoordinatorThatNeverAnswersEndsTheRetriesAfterThePatience() async throws {
        let dir = NSTemporaryDirectory() + "nebula-cache-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cache = try ShardCache(directory: dir, logger: Logger(label: "test"))
        // a port that was free a moment ago: nothing listens there
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length); return getsockname(fd, $0, &length) }
        }
        let port = Int(UInt16(bigEndian: address.sin_port))
        close(fd)
        let channel = try RPCChannel(configuration: .init(target: "127.0.0.1:\(port)"))
        defer { channel.close() }
        var retry = ShardCache.Retry()
        retry.patience = .seconds(1)
        retry.backoff = Backoff(base: .milliseconds(50), cap: .milliseconds(200))
        let sha = String(repeating: "ab", count: 32)
        let shard = ShardEntry(index: 3, rows: 10, bytes: 1000, sha256: sha)
        do {
            _ = try await cache.fetch(shard, of: "ds-1", over: channel, retry: retry)
            Issue.record("a fetch from nowhere succeeded")
        } catch let status as RPCStatus {
            #expect(status.code == .unavailable)
            #expect(status.message.contains("shard 3 of ds-1") && status.message.contains("no byte arrived"), "\(status)")
        }
        #expect(FileManager.default.fileExists(atPath: dir + "/partial/" + sha + ".part"))
        #expect(cache.cachedPath(sha) == nil)
    }
}
