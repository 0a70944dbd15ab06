import Foundation
import NebulaCommon
import Synchronization

// Note [Dataset file format]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~
// One file, written once at ingest, read back with mmap:
//
//   [0, 64)        preamble: magic "NBDSET\0\0", UInt32 version (1), UInt32 flags (0),
//                  UInt64 header offset, UInt64 header length, SHA-256 of the header (32 bytes)
//   [64, ...)      column buffers, each starting at a multiple of 64 bytes
//   header         UTF-8 JSON (`FileHeader`): rows, schema, categorical dictionaries (the encoders),
//                  for every buffer its offset, length and SHA-256, the source description and the
//                  profile.
//
// Buffers (little-endian): integer Int64; float Float64; date Int32 days; datetime Int64 µs;
// boolean a bitmap (bit i of byte i/8, least significant first); categorical UInt32 codes into the
// header's dictionary; text Int64 offsets (rows + 1, starting at 0) plus the UTF-8 bytes. A column
// with missing values has a validity bitmap (1 = present) in the same bit order; missing slots hold 0.
// The header's SHA-256 is checked on every open; the buffers' checksums (SHA-256 over 1 MiB pieces,
// Note [Buffer checksums]) are checked on open with `.full` verification (the default) or by
// `verifyChecksums()`, so any flipped byte is reported.

let datasetMagic: [UInt8] = Array("NBDSET".utf8) + [0, 0]
let datasetVersion: UInt32 = 1

struct BufferRef: Codable, Sendable {
    var offset: Int
    var length: Int
    var sha256: String
}

struct ColumnHeader: Codable, Sendable {
    var name: String
    var type: ColumnType
    var nullCount: Int
    var values: BufferRef
    var offsets: BufferRef?
    var validity: BufferRef?
    var dictionary: [String]?
}

struct SourceInfo: Codable, Sendable {
    var path: String
    var bytes: Int
    var delimiter: String
    var header: Bool
}

struct FileHeader: Codable, Sendable {
    var format: String
    var version: Int
    var rows: Int
    var columns: [ColumnHeader]
    var source: SourceInfo
    var profile: DatasetProfile
}

// Note [Direct regions]
// ~~~~~~~~~~~~~~~~~~~~~
// Writing every column to a spill file and copying it into the dataset file at the end wrote and
// read all data twice more (about 9% of ingest CPU in the kernel, and twice the disk space). So the
// output file is laid out before the pass: each fixed-width column (integer, float, datetime, date,
// categorical codes) gets a region sized for the estimated rows x 1.2 + 8192, aligned to the file
// system block, and the committer writes its values in place. Regions are sparse until written.
// A column whose region fills up (the row estimate was short) or whose width changes
// (date → datetime) moves what it has to a spill file and continues there; text, booleans,
// validity bitmaps and all-missing columns always spill, and are appended after the regions.
// At the end the unused tail of each region is cut out with FALLOC_FL_COLLAPSE_RANGE (ext4, XFS);
// where the file system cannot (tmpfs, ...), the buffers after the first tail are moved down by
// copying, which costs one more copy of them.

/// The output file of one pass and its direct regions.
final class OutputLayout: @unchecked Sendable {
    let path: String
    let fd: Int32
    let blockSize: Int64
    let regions: [DirectRegion?]
    /// End of the region area: spilled buffers start here.
    let regionsEnd: Int64

    /// Immutable after init; the descriptor is used with positioned I/O only.
    init(path: String, kinds: [ParseKind], estimatedRows: Int) throws {
        self.path = path
        fd = try FileIO.openWrite(path)
        let block = FileIO.blockSize(fd)
        blockSize = block
        let capacity = Int(Double(max(0, estimatedRows)) * 1.2) + 8192
        var cursor: Int64 = 64
        var regions: [DirectRegion?] = []
        for kind in kinds {
            let width: Int
            switch kind {
            case .integer, .float, .datetime: width = 8
            case .date, .categorical: width = 4
            default:
                regions.append(nil)
                continue
            }
            cursor = (cursor + block - 1) / block * block
            regions.append(DirectRegion(offset: cursor, capacityRows: capacity, width: width))
            cursor += Int64(capacity * width)
        }
        regionsEnd = (cursor + block - 1) / block * block
        self.regions = regions
        do {
            try FileIO.truncate(fd, regionsEnd, path: path)
        } catch {
            FileIO.close(fd)
            throw error
        }
    }

    private var closed = false
    func close() {
        if !closed { FileIO.close(fd) }
        closed = true
    }
}

/// Where a fixed-width column's values go straight into the dataset file (Note [Direct regions]).
struct DirectRegion: Sendable {
    var offset: Int64
    var capacityRows: Int
    var width: Int
}

/// The storage of one column during ingest: its values either in a direct region of the output
/// file or in a spill file, plus spill files for validity bytes and text bytes. With many
/// columns the spill files are opened per write instead of staying open, so a wide CSV does not
/// run into the descriptor limit.
final class ColumnSpill {
    enum File: Int { case values = 0, validity = 1, bytes = 2 }

    let paths: [String]
    private let keepOpen: Bool
    /// Values written in place into the output file while this is set.
    private(set) var region: DirectRegion?
    private(set) var directRows = 0
    private let output: Int32
    private let outputPath: String
    private var descriptors: [Int32] = [-1, -1, -1]
    private var created = [false, false, false]
    var validityStarted = false
    var pendingEmptyRows = 0
    var textBytes: Int64 = 0
    var nulls = 0
    var rows = 0

    init(directory: String, column: Int, keepOpen: Bool, region: DirectRegion?, output: Int32, outputPath: String) {
        paths = ["values", "validity", "bytes"].map { "\(directory)/c\(column).\($0)" }
        self.keepOpen = keepOpen
        self.region = region
        self.output = output
        self.outputPath = outputPath
    }

    /// Whether `n` more values of `kind` fit the direct region; if the region cannot take them
    /// (the estimate of rows was short, or the kind changed width), its values move to the spill
    /// file and the column continues there.
    private func direct(_ kind: ParseKind, _ n: Int) throws -> DirectRegion? {
        guard let r = region else { return nil }
        if r.width == Self.width(kind) && kind != .text && kind != .boolean && directRows + n <= r.capacityRows {
            return r
        }
        var moved: Int64 = 0
        let total = Int64(directRows * r.width)
        var block = [UInt8](repeating: 0, count: Int(min(total, Int64(4 << 20))))
        while moved < total {
            let m = Int(min(Int64(block.count), total - moved))
            _ = try block.withUnsafeMutableBytes {
                try FileIO.readFully(output, $0.baseAddress!, m, r.offset + moved, path: outputPath)
            }
            try block.withUnsafeBytes { b in try withFile(.values) { fd, path in try FileIO.append(fd, b.baseAddress!, m, path: path) } }
            moved += Int64(m)
        }
        region = nil
        return nil
    }

    private func writeDirect<T>(_ r: DirectRegion, _ p: UnsafePointer<T>, _ n: Int) throws {
        try FileIO.writeFully(output, UnsafeRawPointer(p), n * r.width, at: r.offset + Int64(directRows * r.width),
                              path: outputPath)
        directRows += n
    }

    deinit { closeAll() }

    func closeAll() {
        for i in 0..<3 where descriptors[i] >= 0 {
            FileIO.close(descriptors[i])
            descriptors[i] = -1
        }
    }

    static func width(_ kind: ParseKind) -> Int {
        switch kind {
        case .integer, .float, .datetime, .text: return 8
        case .date, .categorical: return 4
        case .boolean: return 1
        case .empty: return 0
        }
    }

    private func withFile(_ f: File, _ body: (Int32, String) throws -> Void) throws {
        let i = f.rawValue
        if descriptors[i] < 0 {
            descriptors[i] = created[i] ? try FileIO.openAppend(paths[i]) : try FileIO.openWrite(paths[i])
            created[i] = true
        }
        defer {
            if !keepOpen {
                FileIO.close(descriptors[i])
                descriptors[i] = -1
            }
        }
        try body(descriptors[i], paths[i])
    }

    private func write<T>(_ f: File, _ p: UnsafePointer<T>, _ n: Int) throws {
        try withFile(f) { fd, path in try FileIO.append(fd, UnsafeRawPointer(p), n * MemoryLayout<T>.stride, path: path) }
    }

    private func writeRepeated(_ f: File, byte: UInt8, count: Int) throws {
        let block = [UInt8](repeating: byte, count: min(count, 1 << 20))
        try withFile(f) { fd, path in
            var left = count
            while left > 0 {
                let n = min(left, block.count)
                try block.withUnsafeBytes { try FileIO.append(fd, $0.baseAddress!, n, path: path) }
                left -= n
            }
        }
    }

    private func writeEmptyPrefix(kind: ParseKind) throws {
        guard pendingEmptyRows > 0 else { return }
        if try direct(kind, pendingEmptyRows) != nil {
            directRows += pendingEmptyRows  // the region's unwritten bytes read as zeros
        } else if kind == .text {
            let ends = [Int64](repeating: textBytes, count: pendingEmptyRows)
            try ends.withUnsafeBufferPointer { try write(.values, $0.baseAddress!, $0.count) }
        } else {
            try writeRepeated(.values, byte: 0, count: pendingEmptyRows * Self.width(kind))
        }
        pendingEmptyRows = 0
    }

    func append(_ col: ColumnBuilder, committedRows: Int) throws {
        let n = col.rows
        nulls += col.nulls
        if col.nulls > 0 && !validityStarted {
            try writeRepeated(.validity, byte: 1, count: committedRows)
            validityStarted = true
        }
        if validityStarted { try write(.validity, col.valid.base, n) }
        rows += n
        if col.kind == .empty {
            pendingEmptyRows += n
            return
        }
        try writeEmptyPrefix(kind: col.kind)
        if let r = try direct(col.kind, n) {
            switch col.kind {
            case .integer, .datetime: try writeDirect(r, col.i64.base, n)
            case .float: try writeDirect(r, col.f64.base, n)
            case .date: try writeDirect(r, col.i32.base, n)
            case .categorical: try writeDirect(r, col.u32.base, n)
            default: preconditionFailure("no direct region for \(col.kind)")
            }
            return
        }
        switch col.kind {
        case .integer, .datetime: try write(.values, col.i64.base, n)
        case .float: try write(.values, col.f64.base, n)
        case .date: try write(.values, col.i32.base, n)
        case .categorical: try write(.values, col.u32.base, n)
        case .boolean: try write(.values, col.u8.base, n)
        case .text:
            try write(.bytes, col.u8.base, col.u8.count)
            let base = textBytes
            for i in 0..<n { col.ends.base[i] += base }
            try write(.values, col.ends.base, n)
            textBytes += Int64(col.u8.count)
        case .empty: break
        }
    }

    func finish(kind: ParseKind, rows: Int) throws {
        try writeEmptyPrefix(kind: kind)
        if region != nil, try direct(kind, 0) != nil, directRows == rows {
            closeAll()
            return
        }
        _ = try direct(.empty, 0)  // anything still in a region that no longer fits moves to the spill
        try writeRepeated(.values, byte: 0, count: 0)  // make sure the file exists
        if kind == .text { try writeRepeated(.bytes, byte: 0, count: 0) }
        closeAll()
    }

    /// A read descriptor of one spill file (the caller closes it).
    func openForReading(_ f: File) throws -> Int32 { try FileIO.openRead(paths[f.rawValue]) }
}

/// Assembles the dataset file from the spills, hashing every buffer and computing histograms in
/// the same pass (the profile's "second cheap pass", run in parallel over buffers).
enum DatasetWriter {
    enum Role { case values, offsets, validity }

    struct Job {
        var column: Int
        var role: Role
        var offset: Int64
        var length: Int64
        /// The bytes are already in the output file (a direct region).
        var inPlace: Bool
    }

    /// Result slots filled by the jobs; each job writes only its own index.
    final class Results: @unchecked Sendable {
        var digests: [String]
        var histograms: [Histogram?]
        let failure = Mutex<(any Error)?>(nil)
        init(jobs: Int, columns: Int) {
            digests = [String](repeating: "", count: jobs)
            histograms = [Histogram?](repeating: nil, count: columns)
        }
    }

    static func write(committer: Committer, layout: OutputLayout, to output: String, sourcePath: String,
                      sourceBytes: Int, dialect: CSVDialect, options: CSVIngestOptions) throws -> DatasetProfile
    {
        let rows = committer.committedRows
        let kinds = committer.finalKinds
        let out = layout.fd
        let partial = layout.path
        var jobs: [Job] = []
        var cursor = layout.regionsEnd
        func place(_ column: Int, _ role: Role, _ length: Int64) {
            jobs.append(Job(column: column, role: role, offset: cursor, length: length, inPlace: false))
            cursor = (cursor + length + 63) / 64 * 64
        }
        let bitmapLength = Int64((rows + 7) / 8)
        for (c, kind) in kinds.enumerated() {
            let spill = committer.spills[c]
            switch kind {
            case .boolean: place(c, .values, bitmapLength)
            case .text:
                place(c, .offsets, Int64(rows + 1) * 8)
                place(c, .values, spill.textBytes)
            default:
                if let r = spill.region {
                    jobs.append(Job(column: c, role: .values, offset: r.offset, length: Int64(rows * r.width), inPlace: true))
                } else {
                    place(c, .values, Int64(rows * ColumnSpill.width(kind)))
                }
            }
            if spill.nulls > 0 { place(c, .validity, bitmapLength) }
        }
        let results = Results(jobs: jobs.count, columns: kinds.count)
        let next = Atomic<Int>(0)
        let group = DispatchGroup()
        // longest buffers first, so the threads finish together
        let order = jobs.indices.sorted { jobs[$0].length > jobs[$1].length }
        let jobList = jobs
        let context = JobContext(committer: committer, out: out, path: partial, rows: rows, bins: options.histogramBins)
        for _ in 0..<min(options.threads, max(1, jobs.count)) {
            group.enter()
            Thread {
                while true {
                    let n = next.wrappingAdd(1, ordering: .relaxed).oldValue
                    if n >= order.count { break }
                    let j = order[n]
                    do {
                        try context.run(jobList[j], index: j, results: results)
                    } catch {
                        results.failure.withLock { $0 = $0 ?? error }
                    }
                }
                group.leave()
            }.start()
        }
        group.wait()
        if let failure = results.failure.withLock({ $0 }) { throw failure }

        // Note [Direct regions]: cut the unused tails of the regions out, last first
        let direct = jobs.filter(\.inPlace).sorted { $0.offset < $1.offset }
        let block = layout.blockSize
        var gaps: [(at: Int64, length: Int64)] = []
        for (i, job) in direct.enumerated() {
            let dataEnd = (job.offset + job.length + block - 1) / block * block
            let allocatedEnd = i + 1 < direct.count ? direct[i + 1].offset : layout.regionsEnd
            if allocatedEnd > dataEnd { gaps.append((dataEnd, allocatedEnd - dataEnd)) }
        }
        var fileEnd = cursor
        var removed: [(at: Int64, length: Int64)] = []
        var collapsed = true
        for gap in gaps.reversed() {
            if gap.at + gap.length >= fileEnd {
                fileEnd -= gap.length  // nothing after it: the final truncate drops it
            } else if FileIO.collapseRange(out, offset: gap.at, length: gap.length) {
                fileEnd -= gap.length
            } else {
                collapsed = false
                break
            }
            removed.append(gap)
        }
        func final(_ offset: Int64) -> Int64 { offset - removed.filter { $0.at < offset }.reduce(0) { $0 + $1.length } }
        if !collapsed {
            // the file system cannot collapse ranges (tmpfs, ...): move the buffers down instead
            removed = gaps
            var moving = [UInt8](repeating: 0, count: 4 << 20)
            for job in jobs.sorted(by: { $0.offset < $1.offset }) where final(job.offset) != job.offset {
                let to = final(job.offset)
                var done: Int64 = 0
                while done < job.length {
                    let n = Int(min(Int64(moving.count), job.length - done))
                    _ = try moving.withUnsafeMutableBytes {
                        try FileIO.readFully(out, $0.baseAddress!, n, job.offset + done, path: partial)
                    }
                    try moving.withUnsafeBytes { try FileIO.writeFully(out, $0.baseAddress!, n, at: to + done, path: partial) }
                    done += Int64(n)
                }
            }
            fileEnd = final(cursor)
            // zero the padding between the moved buffers (it held bytes of the old layout)
            let placed = jobs.map { (final($0.offset), $0.length) }.sorted { $0.0 < $1.0 }
            for (i, buffer) in placed.enumerated() {
                let padStart = buffer.0 + buffer.1
                let padEnd = i + 1 < placed.count ? placed[i + 1].0 : fileEnd
                if padEnd > padStart {
                    let zeros = [UInt8](repeating: 0, count: Int(padEnd - padStart))
                    try zeros.withUnsafeBytes { try FileIO.writeFully(out, $0.baseAddress!, zeros.count, at: padStart, path: partial) }
                }
            }
        }

        var profile = Self.profile(committer: committer, rows: rows, sourceBytes: sourceBytes, options: options)
        for c in 0..<kinds.count { profile.columnProfiles[c].histogram = results.histograms[c] }
        var columns: [ColumnHeader] = []
        for (c, kind) in kinds.enumerated() {
            func ref(_ role: Role) -> BufferRef? {
                guard let i = jobs.firstIndex(where: { $0.column == c && $0.role == role }) else { return nil }
                return BufferRef(offset: Int(final(jobs[i].offset)), length: Int(jobs[i].length), sha256: results.digests[i])
            }
            let dictionary = kind == .categorical
                ? (0..<committer.dictionaries[c].count).map { committer.dictionaries[c].string($0) } : nil
            columns.append(ColumnHeader(name: committer.names[c], type: kind.columnType,
                                        nullCount: committer.spills[c].nulls, values: ref(.values)!,
                                        offsets: ref(.offsets), validity: ref(.validity), dictionary: dictionary))
        }
        let header = FileHeader(format: "nebula-dataset", version: Int(datasetVersion), rows: rows, columns: columns,
                                source: SourceInfo(path: sourcePath, bytes: sourceBytes,
                                                   delimiter: String(UnicodeScalar(dialect.delimiter)),
                                                   header: dialect.hasHeader),
                                profile: profile)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        let json = [UInt8](try encoder.encode(header))
        let headerOffset = (fileEnd + 63) / 64 * 64
        try json.withUnsafeBytes { try FileIO.writeFully(out, $0.baseAddress!, json.count, at: headerOffset, path: partial) }
        var preamble = [UInt8](repeating: 0, count: 64)
        preamble.replaceSubrange(0..<8, with: datasetMagic)
        storeLE(&preamble, 8, UInt64(datasetVersion), bytes: 4)
        storeLE(&preamble, 16, UInt64(headerOffset), bytes: 8)
        storeLE(&preamble, 24, UInt64(json.count), bytes: 8)
        preamble.replaceSubrange(32..<64, with: SHA256.hash(json))
        try preamble.withUnsafeBytes { try FileIO.writeFully(out, $0.baseAddress!, 64, at: 0, path: partial) }
        try FileIO.truncate(out, headerOffset + Int64(json.count), path: partial)
        layout.close()
        try FileIO.rename(partial, output)
        return profile
    }

    static func storeLE(_ b: inout [UInt8], _ at: Int, _ v: UInt64, bytes: Int) {
        for i in 0..<bytes { b[at + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) }
    }

    /// Everything a buffer job reads; the committer is finished and no longer mutated.
    struct JobContext: @unchecked Sendable {
        let committer: Committer
        let out: Int32
        let path: String
        let rows: Int
        let bins: Int

        func run(_ job: Job, index: Int, results: Results) throws {
            let spill = committer.spills[job.column]
            let kind = committer.finalKinds[job.column]
            let hash = PieceDigest(expectedLength: Int(job.length))
            var written: Int64 = 0
            func emit(_ p: UnsafeRawPointer, _ n: Int) throws {
                hash.update(UnsafeRawBufferPointer(start: p, count: n))
                try FileIO.writeFully(out, p, n, at: job.offset + written, path: path)
                written += Int64(n)
            }
            let blockRows = max(8, min(1 << 20, rows))
            switch (job.role, kind) {
            case (.values, _) where job.inPlace:
                try inPlaceValues(job, kind: kind, hash: hash, results: results)
                written = job.length
            case (.validity, _), (.values, .boolean):
                let fd = try spill.openForReading(job.role == .validity ? .validity : .values)
                defer { FileIO.close(fd) }
                var bytes = [UInt8](repeating: 0, count: blockRows)
                var bits = [UInt8](repeating: 0, count: (blockRows + 7) / 8)
                var row = 0
                while row < rows {
                    let n = min(blockRows, rows - row)
                    _ = try bytes.withUnsafeMutableBytes { try FileIO.readFully(fd, $0.baseAddress!, n, Int64(row), path: path) }
                    let m = (n + 7) / 8
                    for i in 0..<m {
                        var byte: UInt8 = 0
                        for b in 0..<8 where i * 8 + b < n && bytes[i * 8 + b] != 0 { byte |= 1 << UInt8(b) }
                        bits[i] = byte
                    }
                    try bits.withUnsafeBytes { try emit($0.baseAddress!, m) }
                    row += n
                }
            case (.offsets, _):
                var zero: Int64 = 0
                try withUnsafeBytes(of: &zero) { try emit($0.baseAddress!, 8) }
                let fd = try spill.openForReading(.values)
                defer { FileIO.close(fd) }
                try copy(fd, length: Int64(rows) * 8, emit: emit)
            case (.values, .text):
                let fd = try spill.openForReading(.bytes)
                defer { FileIO.close(fd) }
                try copy(fd, length: spill.textBytes, emit: emit)
            case (.values, .categorical):
                let fd = try spill.openForReading(.values)
                defer { FileIO.close(fd) }
                try copy(fd, length: job.length, emit: emit)
            case (.values, _):
                try numericValues(job, spill: spill, kind: kind, results: results, emit: emit)
            }
            if written != job.length {
                throw DatasetError(.io, "buffer length mismatch while assembling the dataset", path: path)
            }
            results.digests[index] = hash.finalize()
        }

        private func copy(_ fd: Int32, length: Int64, emit: (UnsafeRawPointer, Int) throws -> Void) throws {
            var block = [UInt8](repeating: 0, count: Int(max(1, min(Int64(4 << 20), length))))
            var done: Int64 = 0
            while done < length {
                let n = Int(min(Int64(block.count), length - done))
                let got = try block.withUnsafeMutableBytes { try FileIO.readFully(fd, $0.baseAddress!, n, done, path: path) }
                if got != n { throw DatasetError(.io, "spill file is short", path: path) }
                try block.withUnsafeBytes { try emit($0.baseAddress!, n) }
                done += Int64(n)
            }
        }

        /// A direct region (Note [Direct regions]): mapped in windows, converted in place where an
        /// int → float widening left Int64 rows, hashed, and binned for the histogram.
        private func inPlaceValues(_ job: Job, kind: ParseKind, hash: PieceDigest, results: Results) throws {
            let c = job.column
            let spill = committer.spills[c]
            let width = ColumnSpill.width(kind)
            let prefix = kind == .float ? committer.integerPrefix[c] : 0
            let numeric = kind != .categorical
            let m = committer.stats[c].moments
            var histogram = HistogramBuilder(bins: bins, lower: m.min, upper: m.max, enabled: numeric && m.count > 0)
            // 4 MiB windows: page multiples for widths 4 and 8, one group of hash pieces, and small
            // in the resident set (mapped file pages count in VmHWM while mapped)
            let windowRows = (4 << 20) / width
            var valid = [UInt8](repeating: 1, count: max(1, min(windowRows, rows)))
            var doubles = [Double](repeating: 0, count: numeric && kind != .float ? max(1, min(windowRows, rows)) : 1)
            let validityFD = spill.validityStarted ? try spill.openForReading(.validity) : -1
            defer { if validityFD >= 0 { FileIO.close(validityFD) } }
            var row = 0
            while row < rows {
                let n = min(windowRows, rows - row)
                let bytes = n * width
                let base = try FileIO.mapWindow(out, offset: job.offset + Int64(row * width), length: bytes,
                                                writable: row < prefix, path: path)
                defer { FileIO.unmap(base, bytes) }
                if row < prefix {
                    // Note [Widening during ingest]: rows written as Int64 before the widening
                    for i in 0..<min(n, prefix - row) {
                        let v = base.load(fromByteOffset: i * 8, as: Int64.self)
                        base.storeBytes(of: Double(v), toByteOffset: i * 8, as: Double.self)
                    }
                }
                if numeric {
                    if validityFD >= 0 {
                        _ = try valid.withUnsafeMutableBytes {
                            try FileIO.readFully(validityFD, $0.baseAddress!, n, Int64(row), path: path)
                        }
                    }
                    valid.withUnsafeBufferPointer { v in
                        switch kind {
                        case .float:
                            base.withMemoryRebound(to: Double.self, capacity: n) { histogram.add($0, v.baseAddress!, n) }
                        case .date:
                            doubles.withUnsafeMutableBufferPointer { d in
                                for i in 0..<n { d[i] = Double(base.load(fromByteOffset: i * 4, as: Int32.self)) }
                                histogram.add(d.baseAddress!, v.baseAddress!, n)
                            }
                        default:
                            doubles.withUnsafeMutableBufferPointer { d in
                                for i in 0..<n { d[i] = Double(base.load(fromByteOffset: i * 8, as: Int64.self)) }
                                histogram.add(d.baseAddress!, v.baseAddress!, n)
                            }
                        }
                    }
                }
                hash.update(UnsafeRawBufferPointer(start: base, count: bytes))
                row += n
            }
            if histogram.enabled { results.histograms[c] = histogram.result }
        }

        /// Fixed-width numeric values (with int → float conversion of a widened prefix) and the
        /// column's histogram.
        private func numericValues(_ job: Job, spill: ColumnSpill, kind: ParseKind, results: Results,
                                   emit: (UnsafeRawPointer, Int) throws -> Void) throws
        {
            let c = job.column
            let width = ColumnSpill.width(kind)
            let prefix = kind == .float ? committer.integerPrefix[c] : 0
            let m = committer.stats[c].moments
            var histogram = HistogramBuilder(bins: bins, lower: m.min, upper: m.max, enabled: m.count > 0)
            let blockRows = max(1, min(1 << 19, rows))
            var raw = [UInt8](repeating: 0, count: blockRows * width)
            var valid = [UInt8](repeating: 1, count: blockRows)
            var doubles = [Double](repeating: 0, count: blockRows)
            let valuesFD = try spill.openForReading(.values)
            defer { FileIO.close(valuesFD) }
            let validityFD = spill.validityStarted ? try spill.openForReading(.validity) : -1
            defer { if validityFD >= 0 { FileIO.close(validityFD) } }
            var row = 0
            while row < rows {
                let n = min(blockRows, rows - row)
                let got = try raw.withUnsafeMutableBytes {
                    try FileIO.readFully(valuesFD, $0.baseAddress!, n * width, Int64(row * width), path: path)
                }
                if got != n * width { throw DatasetError(.io, "spill file is short", path: path) }
                if spill.validityStarted {
                    _ = try valid.withUnsafeMutableBytes {
                        try FileIO.readFully(validityFD, $0.baseAddress!, n, Int64(row), path: path)
                    }
                }
                raw.withUnsafeMutableBytes { r in
                    let base = r.baseAddress!
                    if kind == .float && row < prefix {
                        // Note [Widening during ingest]: rows written as Int64 before the widening
                        for i in 0..<min(n, prefix - row) {
                            let v = base.load(fromByteOffset: i * 8, as: Int64.self)
                            base.storeBytes(of: Double(v), toByteOffset: i * 8, as: Double.self)
                        }
                    }
                    valid.withUnsafeBufferPointer { v in
                        switch kind {
                        case .float:
                            base.withMemoryRebound(to: Double.self, capacity: n) { histogram.add($0, v.baseAddress!, n) }
                        case .date:
                            doubles.withUnsafeMutableBufferPointer { d in
                                for i in 0..<n { d[i] = Double(base.load(fromByteOffset: i * 4, as: Int32.self)) }
                                histogram.add(d.baseAddress!, v.baseAddress!, n)
                            }
                        default:
                            doubles.withUnsafeMutableBufferPointer { d in
                                for i in 0..<n { d[i] = Double(base.load(fromByteOffset: i * 8, as: Int64.self)) }
                                histogram.add(d.baseAddress!, v.baseAddress!, n)
                            }
                        }
                    }
                }
                try raw.withUnsafeBytes { try emit($0.baseAddress!, n * width) }
                row += n
            }
            if histogram.enabled { results.histograms[c] = histogram.result }
        }
    }

    static func profile(committer: Committer, rows: Int, sourceBytes: Int, options: CSVIngestOptions) -> DatasetProfile {
        var columns: [ColumnProfile] = []
        for (c, kind) in committer.finalKinds.enumerated() {
            let s = committer.stats[c]
            var p = ColumnProfile(name: committer.names[c], type: kind.columnType, count: s.nonNull, missing: s.nulls,
                                  distinct: 0, distinctExact: true)
            switch kind {
            case .integer, .float, .date, .datetime:
                p.distinct = s.distinct.estimate
                p.distinctExact = s.distinct.isExact
                if s.moments.count > 0 {
                    p.mean = s.moments.mean
                    p.std = s.moments.sampleStd
                    p.min = s.moments.min
                    p.max = s.moments.max
                    if let q = s.sketch.quantiles([0.25, 0.5, 0.75]) {
                        p.q25 = q[0]
                        p.q50 = q[1]
                        p.q75 = q[2]
                        p.quantilesExact = s.sketch.isExact
                    }
                }
                if let table = s.distinct.exactTable {
                    p.topValues = table.top(options.topValueCount).map { key, count in
                        let v = Double(bitPattern: key)
                        let label: String
                        switch kind {
                        case .integer: label = String(Int64(v))
                        case .date: label = FieldValue.formatDate(days: Int(v))
                        case .datetime: label = FieldValue.formatDatetime(micros: Int64(v))
                        default: label = String(v)
                        }
                        return ValueCount(value: label, count: count)
                    }
                    p.topValuesExact = true
                }
            case .boolean:
                let falses = s.nonNull - s.trues
                p.distinct = (s.trues > 0 ? 1 : 0) + (falses > 0 ? 1 : 0)
                p.mean = s.nonNull > 0 ? Double(s.trues) / Double(s.nonNull) : nil
                p.topValues = [ValueCount(value: "true", count: s.trues), ValueCount(value: "false", count: falses)]
                    .filter { $0.count > 0 }.sorted { $0.count > $1.count }
                p.topValuesExact = true
            case .categorical:
                let d = committer.dictionaries[c]
                let counts = s.categoryCounts
                p.distinct = counts.filter { $0 > 0 }.count
                let order = counts.indices.sorted { counts[$0] != counts[$1] ? counts[$0] > counts[$1] : $0 < $1 }
                p.topValues = order.prefix(options.topValueCount).filter { counts[$0] > 0 }
                    .map { ValueCount(value: d.string($0), count: counts[$0]) }
                p.topValuesExact = true
            case .text:
                p.distinct = s.textDistinct.estimate
                p.distinctExact = s.textDistinct.isExact
                p.topValues = s.frequent.top(options.topValueCount).map { ValueCount(value: $0.0, count: $0.1) }
                p.topValuesExact = s.frequent.exact
            case .empty:
                break
            }
            columns.append(p)
        }
        return DatasetProfile(rows: rows, columns: committer.names.count, bytes: sourceBytes, badRows: committer.badRows,
                              columnProfiles: columns)
    }
}

/// numpy.histogram(x, bins, range=(min, max)) for equal-width bins, including its edge fix-ups.
struct HistogramBuilder {
    let bins: Int
    let lower: Double
    let upper: Double
    let enabled: Bool
    var counts: [Int]
    private let edges: [Double]
    private let norm: Double

    init(bins: Int, lower lo: Double, upper hi: Double, enabled: Bool) {
        self.bins = bins
        self.enabled = enabled && lo.isFinite && hi.isFinite
        var first = lo
        var last = hi
        if first == last {
            first -= 0.5
            last += 0.5
        }
        lower = first
        upper = last
        counts = [Int](repeating: 0, count: bins)
        let step = (last - first) / Double(bins)
        var e = (0...bins).map { Double($0) * step + first }
        e[bins] = last
        edges = e
        norm = Double(bins) / (last - first)
    }

    mutating func add(_ x: UnsafeMutablePointer<Double>, _ valid: UnsafePointer<UInt8>, _ n: Int) {
        guard enabled else { return }
        counts.withUnsafeMutableBufferPointer { ct in
            edges.withUnsafeBufferPointer { edge in
                for i in 0..<n where valid[i] != 0 {
                    let v = x[i]
                    if v < lower || v > upper || v.isNaN { continue }
                    var b = Int((v - lower) * norm)
                    if b >= bins { b = bins - 1 }
                    if v < edge[b] { b -= 1 } else if b != bins - 1 && v >= edge[b + 1] { b += 1 }
                    ct[b] += 1
                }
            }
        }
    }

    var result: Histogram { Histogram(lower: lower, upper: upper, counts: counts) }
}
