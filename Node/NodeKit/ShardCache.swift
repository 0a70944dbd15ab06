import Foundation
import Logging
import NebulaCommon
import NebulaModel
import NebulaRPC
import NebulaWire

#if canImport(Glibc)
import Glibc
#endif

// Note [Shard cache]
// ~~~~~~~~~~~~~~~~~~
// Shards are content-addressed by the SHA-256 of their file, which the coordinator's manifest
// names. A node keeps `<cache>/<sha256>.nbds` for every shard it has fetched, so a restarted job or
// a second job over the same shard set fetches nothing. A transfer writes `<cache>/partial/<sha256>.part`
// and appends each chunk at the offset the coordinator states; when the stream breaks (coordinator
// restart, network cut) the next attempt asks for the bytes from the partial file's size on, so
// nothing is sent twice. A finished file is hashed and only renamed into place when the checksum
// matches; a mismatch discards the partial file and starts over once. Two workers of one node
// fetching the same shard serialise on an flock of the partial file: the second finds the shard
// cached when it gets the lock.

/// A node-local cache of dataset shards, filled over `ShardService.FetchShard`.
public struct ShardCache: Sendable {
    public let directory: String
    let logger: Logger

    /// What a fetch did.
    public struct Fetch: Sendable {
        public var path: String
        /// Already in the cache: nothing was transferred.
        public var cached: Bool
        /// Bytes received in this call.
        public var bytesReceived: UInt64
        /// Where the first attempt of this call started (the size of an earlier partial file).
        public var resumedFrom: UInt64
        /// Streams opened (more than one after a broken connection).
        public var attempts: Int
    }

    public struct Retry: Sendable {
        /// How long broken streams are retried without a byte arriving before the fetch gives up. A
        /// coordinator restart (migrations, a database that comes back late) can take a minute on a
        /// loaded machine; a count of attempts gave up after about 60 s whatever the progress.
        public var patience: Duration = .seconds(180)
        public var backoff = Backoff(base: .milliseconds(200), cap: .seconds(3))
        public init() {}
    }

    public init(directory: String, logger: Logger) throws {
        self.directory = directory
        self.logger = logger
        try FileManager.default.createDirectory(atPath: directory + "/partial", withIntermediateDirectories: true)
    }

    public func cachedPath(_ sha256: String) -> String? {
        let path = finalPath(sha256)
        return FileManager.default.fileExists(atPath: path) ? path : nil
    }

    func finalPath(_ sha256: String) -> String { directory + "/" + sha256 + ".nbds" }
    func partialPath(_ sha256: String) -> String { directory + "/partial/" + sha256 + ".part" }

    /// The shard's file, from the cache or fetched (resuming a partial file).
    /// - Parameter progress: bytes on disk and the shard's size, after every chunk.
    public func fetch(_ shard: ShardEntry, of datasetId: String, over channel: RPCChannel, chunkBytes: Int = 0,
                      retry: Retry = Retry(),
                      progress: @Sendable (UInt64, UInt64) async -> Void = { _, _ in }) async throws -> Fetch {
        guard shard.sha256.count == 64, shard.sha256.allSatisfy(\.isHexDigit) else {
            throw RPCStatus(.invalidArgument, "shard \(shard.index) has no valid SHA-256 in its manifest ('\(shard.sha256)')")
        }
        if let path = cachedPath(shard.sha256) {
            return Fetch(path: path, cached: true, bytesReceived: 0, resumedFrom: 0, attempts: 0)
        }
        let partial = partialPath(shard.sha256)
        let fd = open(partial, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw RPCStatus(.internal, "cannot open \(partial): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard flock(fd, LOCK_EX) == 0 else { throw RPCStatus(.internal, "cannot lock \(partial)") }
        defer { flock(fd, LOCK_UN) }
        if let path = cachedPath(shard.sha256) {  // another worker finished it while we waited
            return Fetch(path: path, cached: true, bytesReceived: 0, resumedFrom: 0, attempts: 0)
        }

        var offset = UInt64(max(0, lseek(fd, 0, SEEK_END)))
        if offset > shard.bytes {
            guard ftruncate(fd, 0) == 0 else { throw RPCStatus(.internal, "cannot truncate \(partial)") }
            offset = 0
        }
        let resumedFrom = offset
        var received: UInt64 = 0
        var attempts = 0
        var restartedAfterMismatch = false
        var backoff = retry.backoff
        var lastProgress = ContinuousClock.now
        while true {
            if offset < shard.bytes || (offset == 0 && shard.bytes == 0) {
                attempts += 1
                do {
                    let stream = try channel.serverStreaming(
                        ShardServicePath.fetchShard,
                        FetchShardRequest(datasetId: datasetId, sha256: shard.sha256, offset: offset, chunkBytes: chunkBytes),
                        as: ShardChunk.self)
                    for try await chunk in stream {
                        guard chunk.offset == offset else {
                            throw RPCStatus(.dataLoss, "the coordinator sent bytes at \(chunk.offset), expected \(offset)")
                        }
                        guard chunk.totalBytes == shard.bytes else {
                            throw RPCStatus(.failedPrecondition, """
                                shard \(shard.index) is \(chunk.totalBytes) bytes on the coordinator but \(shard.bytes) in the \
                                manifest: ask for the manifest again
                                """)
                        }
                        try writeAll(fd, chunk.data, at: offset, path: partial)
                        offset += UInt64(chunk.data.count)
                        received += UInt64(chunk.data.count)
                        lastProgress = .now
                        backoff.reset()
                        await progress(offset, shard.bytes)
                    }
                    guard offset == shard.bytes else {
                        throw RPCStatus(.unavailable, "the stream ended at \(offset) of \(shard.bytes) bytes")
                    }
                } catch let status as RPCStatus where Self.isRetryable(status) {
                    guard ContinuousClock.now - lastProgress < retry.patience else {
                        throw RPCStatus(status.code, """
                            shard \(shard.index) of \(datasetId): no byte arrived for \(retry.patience) over \(attempts) \
                            attempts (stopped at byte \(offset) of \(shard.bytes); the partial file is kept): \(status.message)
                            """)
                    }
                    let delay = backoff.next()
                    logger.notice("shard transfer broke; resuming", metadata: [
                        "shard.index": "\(shard.index)", "shard.offset": "\(offset)", "error": "\(status)",
                        "retry.in": "\(delay)",
                    ])
                    try await Task.sleep(for: delay)
                    continue
                }
            }
            guard fsync(fd) == 0 else { throw RPCStatus(.internal, "cannot sync \(partial)") }
            let digest = try Self.sha256(fd: fd, length: offset, path: partial)
            if digest == shard.sha256 { break }
            guard ftruncate(fd, 0) == 0 else { throw RPCStatus(.internal, "cannot truncate \(partial)") }
            offset = 0
            if restartedAfterMismatch {
                throw RPCStatus(.dataLoss, "shard \(shard.index) arrived twice with checksum \(digest), not \(shard.sha256)")
            }
            restartedAfterMismatch = true
            logger.warning("shard checksum mismatch; fetching it again", metadata: ["shard.index": "\(shard.index)"])
        }
        let destination = finalPath(shard.sha256)
        guard rename(partial, destination) == 0 else {
            throw RPCStatus(.internal, "cannot move \(partial) into the cache: \(String(cString: strerror(errno)))")
        }
        return Fetch(path: destination, cached: false, bytesReceived: received, resumedFrom: resumedFrom, attempts: attempts)
    }

    /// Broken connections and coordinator restarts are worth another attempt; refusals are not.
    static func isRetryable(_ status: RPCStatus) -> Bool {
        switch status.code {
        case .unavailable, .cancelled, .deadlineExceeded, .internal, .unknown, .aborted, .resourceExhausted: true
        default: false
        }
    }

    /// Removes cached shards, oldest first, until at most `bytes` remain.
    @discardableResult
    public func evict(keepingAtMost bytes: UInt64) throws -> [String] {
        let files = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".nbds") }
            .map { name -> (String, UInt64, Date) in
                let attributes = try FileManager.default.attributesOfItem(atPath: directory + "/" + name)
                return (name, (attributes[.size] as? NSNumber)?.uint64Value ?? 0,
                        attributes[.modificationDate] as? Date ?? .distantPast)
            }
            .sorted { $0.2 < $1.2 }
        var total = files.reduce(0) { $0 + $1.1 }
        var removed: [String] = []
        for (name, size, _) in files where total > bytes {
            try FileManager.default.removeItem(atPath: directory + "/" + name)
            total -= size
            removed.append(name)
        }
        return removed
    }

    private func writeAll(_ fd: Int32, _ bytes: [UInt8], at offset: UInt64, path: String) throws {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress! + done, bytes.count - done, off_t(offset) + off_t(done)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw RPCStatus(.internal, "cannot write \(path): \(String(cString: strerror(errno)))")
            }
            done += n
        }
    }

    static func sha256(fd: Int32, length: UInt64, path: String) throws -> String {
        var hasher = SHA256()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var offset: UInt64 = 0
        while offset < length {
            let want = Int(min(UInt64(buffer.count), length - offset))
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, want, off_t(offset)) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { throw RPCStatus(.internal, "cannot read \(path) back") }
            buffer.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            offset += UInt64(n)
        }
        return SHA256.hex(hasher.finalize())
    }
}
