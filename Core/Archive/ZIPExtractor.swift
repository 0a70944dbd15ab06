import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What an archive may contain before extraction refuses it.
public struct ZIPExtractionLimits: Sendable, Equatable {
    /// Entries in the central directory (directories included).
    public var maxEntries: Int = 250_000
    /// Uncompressed bytes of one entry.
    public var maxEntrySize: UInt64 = 8 << 30
    /// Uncompressed bytes of all entries together.
    public var maxTotalSize: UInt64 = 32 << 30
    /// Uncompressed / compressed bytes of one entry, declared and while inflating (output so far over
    /// compressed input read so far). Deflate tops out near 1032:1; real data rarely passes 100:1.
    public var maxCompressionRatio: Double = 200
    /// The ratio is only enforced once an entry has produced (or declares) more than this.
    public var ratioGraceBytes: UInt64 = 1 << 20
    /// UTF-8 bytes of an entry path.
    public var maxPathLength: Int = 1024
    /// Directories in an entry path.
    public var maxPathDepth: Int = 64

    public init() {}
}

/// What an extraction produced.
public struct ZIPExtractionReport: Sendable, Equatable {
    public var destination: String
    public var files: Int
    public var directories: Int
    /// Uncompressed bytes written.
    public var bytes: UInt64
    /// Entries left out (macOS metadata), as stored in the archive.
    public var skipped: [String]
}

/// Extracts ZIP archives safely.
///
/// Every entry is validated before anything is written: no absolute paths, no `..`, no symbolic
/// links or special files, no duplicate paths, no encryption, no method other than stored and deflate,
/// and the declared sizes and ratios within `limits`. The same limits are then enforced on the bytes
/// actually inflated, and output beyond an entry's declared size stops it (forged headers), as do CRC
/// mismatches. Files are written with mode 0644, directories 0755 (the archive's modes, owners and
/// times are ignored).
///
/// Everything is extracted into a private directory beside the destination, renamed to the
/// destination only once complete; on any failure that directory is removed, so the destination
/// either does not exist or holds the whole archive. (Only a crash mid-way leaves a
/// `.NAME.extracting-UUID` directory behind.)
public struct ZIPExtractor: Sendable {
    public var limits: ZIPExtractionLimits
    /// Leaves out `__MACOSX/` resource forks and `.DS_Store` files that macOS's archiver adds.
    public var skipMacOSMetadata: Bool

    public init(limits: ZIPExtractionLimits = ZIPExtractionLimits(), skipMacOSMetadata: Bool = true) {
        self.limits = limits
        self.skipMacOSMetadata = skipMacOSMetadata
    }

    /// Extracts `archive` into `destination`, which must not exist (its parent is created). Runs on a
    /// thread of its own; cancelling the task stops it (`ArchiveError.Code.cancelled`) and removes
    /// what was written.
    public func extract(archive: String, to destination: String) async throws -> ZIPExtractionReport {
        let cancelled = Atomic<Bool>(false)
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<ZIPExtractionReport, any Error>) in
                let thread = Thread {
                    continuation.resume(with: Result {
                        try extract(archive: archive, to: destination) { cancelled.load(ordering: .relaxed) }
                    })
                }
                thread.name = "nebula.unzip"
                thread.start()
            }
        } onCancel: {
            cancelled.store(true, ordering: .relaxed)
        }
    }

    /// `extract` on the calling thread (blocking: not for the Swift concurrency pool).
    @discardableResult
    public func extractBlocking(archive: String, to destination: String) throws -> ZIPExtractionReport {
        try extract(archive: archive, to: destination) { false }
    }

    /// One file or directory to create, validated.
    struct PlannedEntry {
        let entry: ZIPEntry
        let relativePath: String
        let isDirectory: Bool
    }

    /// Validates every entry against the path rules and the declared limits; writes nothing.
    func plan(_ archive: ZIPArchive) throws -> (entries: [PlannedEntry], skipped: [String]) {
        var planned: [PlannedEntry] = []
        var skipped: [String] = []
        var files: [String: String] = [:]        // relative path -> entry path
        var directories: [String: String] = [:]  // explicit directory entries
        var declaredTotal: UInt64 = 0
        for entry in archive.entries {
            let components = try EntryPath.components(of: entry.path, maxLength: limits.maxPathLength, maxDepth: limits.maxPathDepth)
            if skipMacOSMetadata, components.first == "__MACOSX" || components.last == ".DS_Store" {
                skipped.append(entry.path)
                continue
            }
            let relative = components.joined(separator: "/")
            switch entry.kind {
            case .symlink:
                throw ArchiveError(code: .symlink, entry: entry.path, message: "symbolic links are not extracted")
            case .special(let mode):
                throw ArchiveError(code: .specialFile, entry: entry.path,
                                   message: "special file (mode \(String(mode, radix: 8))) is not extracted")
            case .directory:
                if !relative.isEmpty {
                    directories[relative] = entry.path
                    planned.append(PlannedEntry(entry: entry, relativePath: relative, isDirectory: true))
                }
                continue
            case .file:
                break
            }
            guard !relative.isEmpty else {
                throw ArchiveError(code: .invalidPath, entry: entry.path, message: "a file entry without a file name")
            }
            if entry.isEncrypted {
                throw ArchiveError(code: .unsupported, entry: entry.path, message: "encrypted entries are not supported")
            }
            guard entry.compressionMethod == 0 || entry.compressionMethod == 8 else {
                throw ArchiveError(code: .unsupported, entry: entry.path, message: """
                    compression method \(entry.compressionMethod) (\(ZIPArchive.methodName(entry.compressionMethod))) \
                    is not supported; only stored and deflate are
                    """)
            }
            try checkDeclared(entry, total: &declaredTotal)
            if let other = files[relative] {
                throw ArchiveError(code: .duplicateEntry, entry: entry.path, message: "a second entry for '\(other)'")
            }
            files[relative] = entry.path
            planned.append(PlannedEntry(entry: entry, relativePath: relative, isDirectory: false))
        }
        // A path cannot be a file and a directory.
        for (relative, entryPath) in files {
            if let directory = directories[relative] {
                throw ArchiveError(code: .duplicateEntry, entry: entryPath, message: "'\(directory)' is also a directory entry")
            }
            var prefix = ""
            for component in relative.split(separator: "/").dropLast() {
                prefix += prefix.isEmpty ? String(component) : "/" + component
                if let file = files[prefix] {
                    throw ArchiveError(code: .duplicateEntry, entry: entryPath, message: "needs '\(file)', which is a file, to be a directory")
                }
            }
        }
        return (planned, skipped)
    }

    private func checkDeclared(_ entry: ZIPEntry, total: inout UInt64) throws {
        let size = entry.uncompressedSize
        guard size <= limits.maxEntrySize else {
            throw ArchiveError(code: .entryTooLarge, entry: entry.path,
                               message: "declares \(size) bytes; the per-entry limit is \(limits.maxEntrySize)")
        }
        let (sum, overflow) = total.addingReportingOverflow(size)
        guard !overflow, sum <= limits.maxTotalSize else {
            throw ArchiveError(code: .totalTooLarge, entry: entry.path,
                               message: "brings the declared total past the limit of \(limits.maxTotalSize) bytes")
        }
        total = sum
        if size > limits.ratioGraceBytes, Double(size) > limits.maxCompressionRatio * Double(max(entry.compressedSize, 1)) {
            let ratio = Double(size) / Double(max(entry.compressedSize, 1))
            throw ArchiveError(code: .compressionRatio, entry: entry.path, message: """
                declares \(size) bytes from \(entry.compressedSize) compressed (\(Int(ratio)):1); the limit is \
                \(Int(limits.maxCompressionRatio)):1
                """)
        }
    }

    func extract(archive path: String, to destination: String, isCancelled: () -> Bool) throws -> ZIPExtractionReport {
        let destinationURL = URL(fileURLWithPath: destination).standardizedFileURL
        try ensureAbsent(destinationURL.path)
        let archive = try ZIPArchive(path: path, maxEntries: limits.maxEntries)
        let (planned, skipped) = try plan(archive)

        let parent = destinationURL.deletingLastPathComponent()
        // The parent's missing ancestors, deepest first: removed again (if still empty) on failure.
        var createdParents: [String] = []
        var ancestor = parent
        while !FileManager.default.fileExists(atPath: ancestor.path), ancestor.path != "/" {
            createdParents.append(ancestor.path)
            ancestor = ancestor.deletingLastPathComponent()
        }
        do {
            try FileManager.default.createDirectory(at: parent, withIntermediateDirectories: true)
        } catch {
            throw ArchiveError(code: .io, message: "cannot create \(parent.path): \(error.localizedDescription)")
        }
        let staging = parent.appendingPathComponent(".\(destinationURL.lastPathComponent).extracting-\(UUID().uuidString)").path
        guard mkdir(staging, 0o700) == 0 else {
            let e = errno
            for path in createdParents { rmdir(path) }
            throw ArchiveError(code: .io, message: "cannot create \(staging): \(String(cString: strerror(e)))")
        }
        do {
            var report = ZIPExtractionReport(destination: destination, files: 0, directories: 0, bytes: 0, skipped: skipped)
            var created: Set<String> = [""]
            for item in planned {
                if isCancelled() { throw ArchiveError(code: .cancelled, message: "extraction cancelled") }
                if item.isDirectory {
                    report.directories += try makeDirectories(item.relativePath, in: staging, created: &created, entry: item.entry)
                    continue
                }
                let parentPath = item.relativePath.split(separator: "/").dropLast().joined(separator: "/")
                report.directories += try makeDirectories(parentPath, in: staging, created: &created, entry: item.entry)
                report.bytes += try write(item.entry, from: archive, to: staging + "/" + item.relativePath,
                                          totalSoFar: report.bytes, isCancelled: isCancelled)
                report.files += 1
            }
            guard chmod(staging, 0o755) == 0 else {
                throw ArchiveError(code: .io, message: "cannot set the mode of \(staging): \(String(cString: strerror(errno)))")
            }
            try ensureAbsent(destinationURL.path)
            guard rename(staging, destinationURL.path) == 0 else {
                throw ArchiveError(code: .io, message: "cannot move the extracted files to \(destinationURL.path): \(String(cString: strerror(errno)))")
            }
            return report
        } catch {
            try? FileManager.default.removeItem(atPath: staging)
            for path in createdParents { rmdir(path) }  // fails, harmlessly, where something else appeared
            throw error
        }
    }

    private func ensureAbsent(_ path: String) throws {
        var info = stat()
        if lstat(path, &info) == 0 {
            throw ArchiveError(code: .destinationExists, message: "\(path) already exists; extraction needs a fresh directory")
        }
    }

    /// Creates the missing directories of `relative` under `root`; returns how many were created.
    private func makeDirectories(_ relative: String, in root: String, created: inout Set<String>, entry: ZIPEntry) throws -> Int {
        var count = 0
        var prefix = ""
        for component in relative.split(separator: "/") {
            prefix += prefix.isEmpty ? String(component) : "/" + component
            if created.contains(prefix) { continue }
            if mkdir(root + "/" + prefix, 0o755) != 0 {
                let e = errno
                var info = stat()
                guard e == EEXIST, lstat(root + "/" + prefix, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else {
                    throw ArchiveError(code: .io, entry: entry.path, message: "cannot create directory '\(prefix)': \(String(cString: strerror(e)))")
                }
            } else {
                count += 1
            }
            created.insert(prefix)
        }
        return count
    }

    /// Inflates one entry into a new file, enforcing the limits on the bytes produced.
    private func write(_ entry: ZIPEntry, from archive: ZIPArchive, to path: String, totalSoFar: UInt64,
                       isCancelled: () -> Bool) throws -> UInt64 {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw ArchiveError(code: .io, entry: entry.path, message: "cannot create the file: \(String(cString: strerror(errno)))")
        }
        var closed = false
        defer { if !closed { close(fd) } }
        var written: UInt64 = 0
        try archive.read(entry) { chunk, compressedRead in
            if isCancelled() { throw ArchiveError(code: .cancelled, message: "extraction cancelled") }
            written += UInt64(chunk.count)
            guard written <= limits.maxEntrySize else {
                throw ArchiveError(code: .entryTooLarge, entry: entry.path,
                                   message: "inflates past the per-entry limit of \(limits.maxEntrySize) bytes")
            }
            guard totalSoFar + written <= limits.maxTotalSize else {
                throw ArchiveError(code: .totalTooLarge, entry: entry.path,
                                   message: "inflating it takes the total past the limit of \(limits.maxTotalSize) bytes")
            }
            if written > limits.ratioGraceBytes, Double(written) > limits.maxCompressionRatio * Double(max(compressedRead, 1)) {
                throw ArchiveError(code: .compressionRatio, entry: entry.path, message: """
                    expands more than \(Int(limits.maxCompressionRatio)):1 while inflating (\(written) bytes from the \
                    first \(compressedRead) compressed bytes)
                    """)
            }
            try chunk.withUnsafeBytes { bytes in
                var offset = 0
                while offset < bytes.count {
                    let n = posixWrite(fd, bytes.baseAddress! + offset, bytes.count - offset)
                    if n < 0 {
                        if errno == EINTR { continue }
                        throw ArchiveError(code: .io, entry: entry.path, message: "write failed: \(String(cString: strerror(errno)))")
                    }
                    offset += n
                }
            }
        }
        closed = true
        guard close(fd) == 0 else {
            throw ArchiveError(code: .io, entry: entry.path, message: "write failed: \(String(cString: strerror(errno)))")
        }
        return written
    }
}

/// `write(2)` (the name is taken by `ZIPExtractor.write`).
private func posixWrite(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int) -> Int {
    #if canImport(Glibc)
    Glibc.write(fd, p, n)
    #else
    Darwin.write(fd, p, n)
    #endif
}
