import Foundation
import Logging
import NebulaModel
import NebulaNode
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
}
