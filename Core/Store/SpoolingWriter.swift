import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A batched writer that loses no records when its sink (typically a database COPY) is down.
///
/// Records are buffered and handed to `write` in batches of at most `maxBatch`, when the buffer
/// reaches `maxBatch`, every `flushInterval` while ``run()`` runs, and on ``flush()``. When the
/// sink throws, the batch goes to a spool file on disk (JSON lines, `fsync`ed, renamed into place),
/// and every later flush first replays spool files oldest-first (one file, one batch; deleted after
/// the sink accepts it) before writing new records. So records reach the sink in append order,
/// each once, across sink outages and process restarts: a new writer over the same directory picks
/// up the files a previous process left.
///
/// Flushes never overlap: a flush requested during another waits for it, so batches cannot be
/// reordered by actor reentrancy while the sink is awaited.
///
/// The actor runs on its own serial dispatch queue (``DispatchQueueExecutor``) because spooling
/// does blocking file I/O and `fsync`, which must not occupy the cooperative pool.
///
/// Limits (by design, logged as errors when they happen):
/// - A spool file whose lines cannot be decoded is renamed to `*.corrupt` and skipped.
/// - A record that cannot be JSON-encoded cannot be spooled and is dropped when the sink is down.
/// - If the spool directory cannot be written either, records stay in memory (in order) until the
///   sink or the disk recovers; memory then grows without bound.
/// - The sink must be all-or-nothing per batch (as a COPY is): a batch it fails is retried whole.
/// - Records still buffered when the process dies are lost; ``run()`` flushes on cancellation.
public actor SpoolingWriter<Record: Codable & Sendable> {
    public typealias Sink = @Sendable ([Record]) async throws -> Void

    private struct SpoolFile {
        var name: String
        var count: Int
    }

    private let executor: DispatchQueueExecutor
    private let directory: String
    private let maxBatch: Int
    private let flushInterval: Duration
    private let logger: Logger
    private let sink: Sink
    private let encoder: JSONEncoder
    private let decoder: JSONDecoder

    private var buffer: [Record] = []
    private var spoolFiles: [SpoolFile]
    private var lastStamp: UInt64
    private var fileCounter = 0
    private var flushing = false
    private var flushWaiters: [CheckedContinuation<Void, Never>] = []

    public nonisolated var unownedExecutor: UnownedSerialExecutor {
        executor.asUnownedSerialExecutor()
    }

    /// Creates the writer and picks up spool files left in `directory` by a previous process
    /// (they are replayed on the first flush).
    ///
    /// - Parameters:
    ///   - directory: the spool directory, created (with parents) if missing. One writer per directory.
    ///   - maxBatch: the most records handed to `write` at once; reaching it triggers a flush.
    ///   - flushInterval: how often ``run()`` flushes.
    ///   - write: the sink. It must write the whole batch or throw.
    /// - Throws: when the directory cannot be created or listed.
    public init(directory: String, maxBatch: Int, flushInterval: Duration, logger: Logger,
                write: @escaping Sink) throws {
        precondition(maxBatch > 0, "maxBatch must be positive")
        var logger = logger
        logger[metadataKey: "spool.dir"] = "\(directory)"
        self.executor = DispatchQueueExecutor(label: "nebula.spool.\(directory)")
        self.directory = directory
        self.maxBatch = maxBatch
        self.flushInterval = flushInterval
        self.logger = logger
        self.sink = write
        let encoder = JSONEncoder()
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        self.encoder = encoder
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(
            positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        self.decoder = decoder

        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let found = try Self.scan(directory: directory, logger: logger)
        self.spoolFiles = found.files
        self.lastStamp = found.lastStamp
        if !found.files.isEmpty {
            logger.info("found spooled records from an earlier run", metadata: [
                "spool.files": "\(found.files.count)",
                "spool.records": "\(found.files.reduce(0) { $0 + $1.count })",
            ])
        }
    }

    deinit {
        let unflushed = buffer.count
        if unflushed > 0 {
            logger.error("spooling writer released with unflushed records", metadata: ["spool.records": "\(unflushed)"])
        }
    }

    /// Records currently in spool files on disk, waiting to be replayed.
    public var spooledCount: Int {
        spoolFiles.reduce(0) { $0 + $1.count }
    }

    /// Records buffered in memory, not yet handed to the sink or spooled.
    public var bufferedCount: Int {
        buffer.count
    }

    /// Buffers `records`; flushes when the buffer reaches `maxBatch`.
    public func append(_ records: [Record]) async {
        guard !records.isEmpty else { return }
        buffer.append(contentsOf: records)
        if buffer.count >= maxBatch {
            await flush()
        }
    }

    /// Buffers one record; flushes when the buffer reaches `maxBatch`.
    public func append(_ record: Record) async {
        await append([record])
    }

    /// Replays spool files oldest-first, then writes the buffer; whatever the sink refuses is
    /// spooled. Never throws: failures are logged and the records kept.
    public func flush() async {
        await acquireFlushLock()
        await flushLocked()
        releaseFlushLock()
    }

    /// Flushes every `flushInterval` until the task is cancelled, then flushes once more (that
    /// last flush is shielded from the cancellation, so the sink gets a fair try).
    public func run() async {
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: flushInterval)
            } catch {
                break
            }
            await flush()
        }
        await Task { await self.flush() }.value
    }

    // MARK: Flushing

    private func acquireFlushLock() async {
        if !flushing {
            flushing = true
            return
        }
        // Ownership is handed over directly by `releaseFlushLock`; `flushing` stays true.
        await withCheckedContinuation { flushWaiters.append($0) }
    }

    private func releaseFlushLock() {
        if flushWaiters.isEmpty {
            flushing = false
        } else {
            flushWaiters.removeFirst().resume()
        }
    }

    private func flushLocked() async {
        let sinkUp = await replaySpool()

        guard !buffer.isEmpty else { return }
        let pending = buffer
        buffer = []
        let batches = stride(from: 0, to: pending.count, by: maxBatch).map {
            Array(pending[$0..<min($0 + maxBatch, pending.count)])
        }
        var next = 0
        if sinkUp {
            while next < batches.count {
                do {
                    try await sink(batches[next])
                    next += 1
                } catch {
                    logger.warning("sink failed; spooling to disk", metadata: [
                        "spool.records": "\(batches[next...].reduce(0) { $0 + $1.count })",
                        "error": "\(error)",
                    ])
                    break
                }
            }
        }
        while next < batches.count {
            do {
                try spool(batches[next])
                next += 1
            } catch {
                // Keep the rest in memory, ahead of anything appended meanwhile: the spool files
                // written so far are older, so replaying them first keeps the order.
                let kept = batches[next...].flatMap { $0 }
                buffer = kept + buffer
                logger.error("cannot spool to disk; keeping records in memory", metadata: [
                    "spool.records": "\(kept.count)",
                    "error": "\(error)",
                ])
                return
            }
        }
    }

    /// Replays spool files oldest-first. Returns false when the sink failed (the file stays).
    private func replaySpool() async -> Bool {
        while let file = spoolFiles.first {
            let path = self.path(file.name)
            let records: [Record]
            do {
                records = try readSpoolFile(path)
            } catch {
                moveAside(file.name, because: error)
                spoolFiles.removeFirst()
                continue
            }
            if !records.isEmpty {
                do {
                    try await sink(records)
                } catch {
                    logger.warning("sink still failing; spool kept", metadata: [
                        "spool.file": "\(file.name)",
                        "spool.pending": "\(spooledCount)",
                        "error": "\(error)",
                    ])
                    return false
                }
            }
            spoolFiles.removeFirst()
            if unlink(path) != 0 {
                let reason = String(cString: strerror(errno))
                // The records were delivered; if the file stays, a restart would deliver them again.
                logger.error("cannot delete replayed spool file", metadata: ["spool.file": "\(file.name)", "error": "\(reason)"])
            } else {
                logger.info("replayed spooled records", metadata: ["spool.file": "\(file.name)", "spool.records": "\(records.count)"])
            }
        }
        return true
    }

    // MARK: Spool files

    private func path(_ name: String) -> String {
        directory + "/" + name
    }

    /// Writes one batch as a new spool file: to `name.tmp`, `fsync`, rename, `fsync` the directory.
    private func spool(_ batch: [Record]) throws {
        var data = Data()
        var written = 0
        for record in batch {
            do {
                data.append(try encoder.encode(record))
                data.append(UInt8(ascii: "\n"))
                written += 1
            } catch {
                logger.error("record cannot be encoded for the spool; dropped", metadata: ["error": "\(error)"])
            }
        }
        guard written > 0 else { return }

        let name = nextFileName()
        let temporary = path(name + ".tmp")
        try writeDurably(data, to: temporary)
        guard rename(temporary, path(name)) == 0 else {
            let error = SpoolIOError(operation: "rename", path: temporary, errno: errno)
            unlink(temporary)
            throw error
        }
        syncDirectory()
        spoolFiles.append(SpoolFile(name: name, count: written))
        logger.debug("spooled records", metadata: ["spool.file": "\(name)", "spool.records": "\(written)"])
    }

    /// `spool-<ns since epoch, 20 digits>-<sequence, 6 digits>.jsonl`: names sort in creation
    /// order. The stamp is forced above every existing file's, so a clock step back cannot
    /// reorder files.
    private func nextFileName() -> String {
        let now = UInt64(max(0, Date().timeIntervalSince1970 * 1e9))
        lastStamp = max(now, lastStamp + 1)
        fileCounter += 1
        return "spool-" + Self.padded(lastStamp, 20) + "-" + Self.padded(UInt64(fileCounter % 1_000_000), 6) + ".jsonl"
    }

    private func readSpoolFile(_ path: String) throws -> [Record] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        var records: [Record] = []
        for (number, line) in data.split(separator: UInt8(ascii: "\n")).enumerated() where !line.isEmpty {
            do {
                records.append(try decoder.decode(Record.self, from: Data(line)))
            } catch {
                throw SpoolDecodeError(line: number + 1, underlying: "\(error)")
            }
        }
        return records
    }

    private func moveAside(_ name: String, because error: any Error) {
        let corrupt = path(name + ".corrupt")
        if rename(path(name), corrupt) == 0 {
            logger.error("spool file is corrupt; moved aside", metadata: [
                "spool.file": "\(name)", "spool.moved_to": "\(corrupt)", "error": "\(error)",
            ])
        } else {
            let reason = String(cString: strerror(errno))
            logger.error("spool file is corrupt and cannot be moved aside; skipped", metadata: [
                "spool.file": "\(name)", "error": "\(error)", "rename.error": "\(reason)",
            ])
        }
    }

    private func writeDurably(_ data: Data, to path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw SpoolIOError(operation: "open", path: path, errno: errno) }
        var failure: SpoolIOError?
        data.withUnsafeBytes { bytes in
            var offset = 0
            while offset < bytes.count {
                let n = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    failure = SpoolIOError(operation: "write", path: path, errno: errno)
                    return
                }
                offset += n
            }
        }
        if failure == nil, fsync(fd) != 0 {
            failure = SpoolIOError(operation: "fsync", path: path, errno: errno)
        }
        if close(fd) != 0, failure == nil {
            failure = SpoolIOError(operation: "close", path: path, errno: errno)
        }
        if let failure {
            unlink(path)
            throw failure
        }
    }

    /// Makes the rename durable. Best effort: a failure here only weakens crash safety.
    private func syncDirectory() {
        let fd = open(directory, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = fsync(fd)
        _ = close(fd)
    }

    /// Lists spool files oldest-first with their record counts; moves leftovers of interrupted
    /// writes (`*.tmp`) aside.
    private static func scan(directory: String, logger: Logger) throws -> (files: [SpoolFile], lastStamp: UInt64) {
        var files: [SpoolFile] = []
        var lastStamp: UInt64 = 0
        for name in try FileManager.default.contentsOfDirectory(atPath: directory).sorted() {
            let path = directory + "/" + name
            if name.hasPrefix("spool-") && name.hasSuffix(".jsonl.tmp") {
                if rename(path, path + ".corrupt") == 0 {
                    logger.error("interrupted spool write found; moved aside", metadata: ["spool.file": "\(name)"])
                }
                continue
            }
            guard name.hasPrefix("spool-"), name.hasSuffix(".jsonl") else { continue }
            let stampDigits = name.dropFirst("spool-".count).prefix(while: \.isNumber)
            if let stamp = UInt64(stampDigits) { lastStamp = max(lastStamp, stamp) }
            let count: Int
            if let data = FileManager.default.contents(atPath: path) {
                count = data.split(separator: UInt8(ascii: "\n")).count
            } else {
                count = 0
            }
            files.append(SpoolFile(name: name, count: count))
        }
        return (files, lastStamp)
    }

    private static func padded(_ value: UInt64, _ width: Int) -> String {
        let digits = String(value)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }
}

/// A spool file line that does not decode as a record.
struct SpoolDecodeError: Error, CustomStringConvertible {
    var line: Int
    var underlying: String
    var description: String { "line \(line) does not decode: \(underlying)" }
}

/// A failed system call on a spool file.
struct SpoolIOError: Error, CustomStringConvertible {
    var operation: String
    var path: String
    var errno: Int32
    var description: String { "\(operation) \(path): \(String(cString: strerror(errno)))" }
}
