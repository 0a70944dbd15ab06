import Foundation
import NebulaEngine
import Synchronization

/// Settings of one CSV ingest.
public struct CSVIngestOptions: Sendable {
    /// Field separator; nil detects one of `,` `;` tab `|`.
    public var delimiter: UInt8?
    public var header: HeaderMode = .auto
    /// Records used to detect the header and infer column types.
    public var sampleRows = 10_000
    /// Bytes of CSV per parallel work item (Note [Speculative chunk boundaries]).
    public var chunkSize = 8 << 20
    /// Parser threads.
    public var threads = max(1, ProcessInfo.processInfo.activeProcessorCount)
    /// Skip malformed rows (counted in the report) instead of failing on the first one.
    public var skipBadRows = false
    /// Types forced by column name, overriding inference.
    public var columnTypes: [String: ColumnType] = [:]
    /// Distinct values counted exactly per column before switching to HyperLogLog.
    public var exactDistinctLimit = 16_384
    /// Values per column up to which quartiles are exact.
    public var exactQuantileLimit = 131_072
    /// A categorical column with more distinct values than this is stored as text.
    public var maxDictionarySize = 65_536
    public var topValueCount = 10
    public var histogramBins = 20
    /// Seed of the sketches' sampling (results are deterministic for a given seed and chunk size).
    public var seed: UInt64 = 0x6E65_6275_6C61
    /// Called from a parser thread after each chunk is committed: chunks done, chunks in the file.
    /// A restart after a type change starts the count again.
    public var progress: (@Sendable (_ done: Int, _ total: Int) -> Void)?

    public init() {}
}

/// What an ingest did.
public struct IngestReport: Sendable, Codable {
    public var source: String
    public var output: String
    public var dialect: CSVDialect
    public var columnNames: [String]
    public var types: [ColumnType]
    public var rows: Int
    public var badRows: Int
    /// The first malformed rows, as `file:line:column: message`.
    public var badRowSamples: [String]
    public var widenings: [Widening]
    /// Full passes restarted because a column widened in a way that needs the text of rows
    /// already written (Note [Widening during ingest]).
    public var restarts: Int
    /// Chunks whose guessed first record was wrong and that were parsed again from the true start
    /// (Note [Speculative chunk boundaries]), out of `chunks`.
    public var reparsedChunks: Int
    public var chunks: Int
    public var profile: DatasetProfile
    /// Wall-clock seconds of the phases: sniffing, the parallel pass(es) (parse, statistics,
    /// spilling), and assembling the file (checksums, histograms, header).
    public var timings: Timings

    public struct Timings: Sendable, Codable {
        public var sniff: Double
        public var parse: Double
        public var assemble: Double
    }
}

/// What the sniffer found in the first records.
public struct CSVSchemaGuess: Sendable {
    public var dialect: CSVDialect
    public var columnNames: [String]
    public var types: [ColumnType]
    /// Types per column before `.empty` (all-missing in the sample) is resolved: nil there.
    public var sampledTypes: [ColumnType?]
}

// Note [Speculative chunk boundaries]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// The data part of the file is cut into fixed byte ranges of `chunkSize`. A worker owns the
// records that *start* inside its range and reads past the range's end to finish the last one.
// Where a record starts cannot be known without the quote state at the range's start, which
// depends on everything before it. Rather than a first pass counting quote parity over the whole
// file, each worker guesses the quote state at its first byte from the first quote with an
// unambiguous neighbourhood (`guessFirstRecordStart`), and takes the first record to start after
// the first LF outside quotes. Without quotes near the boundary that is simply the first LF. Chunks are
// committed strictly in file order, and the commit of chunk i knows where chunk i-1's last record
// really ended; if chunk i's guess differs, the committer re-parses chunk i from the true start (its
// bytes are still in memory). So the result is always that of a sequential parse; a wrong guess costs
// one extra parse of one chunk. Memory stays bounded: at most 2 x threads chunks (buffers plus
// their parsed columns) are between being read and being committed, and committed columns go to
// disk: into their region of the output file or to a spill file (Note [Direct regions]).
//
// Note [Widening during ingest]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// Each chunk is parsed with the column types known when it started. Inside a chunk, an integer
// column meeting a float converts its values in place; any other misfit (a word in a numeric
// column, ...) re-parses the chunk with the joined type. At commit a chunk's types are joined with
// the global ones: a narrower chunk is converted or re-parsed; a wider chunk widens the global type.
// int → float keeps the rows already written (they are converted when the file is assembled);
// widenings that need the original text of rows already written (int → categorical, a dictionary
// outgrowing `maxDictionarySize` → text, date → categorical, ...) restart the pass with the widened
// types, so such a file is read twice. Every widening is reported with its count.

struct RestartNeeded: Error {
    var kinds: [ParseKind]
    var reasons: [Int: Int]
}

/// Per-chunk summaries computed by the worker after parsing (Note [Profile sketches]).
struct ChunkColumnStats {
    var moments = Moments()
    var distinct: DistinctCounter?
    var sketch: QuantileSketch?
    var codeCounts: [Int] = []
    /// Text: value counts (exact, or a Misra-Gries summary when `textCountsExact` is false, each
    /// count then low by at most `textUndercount`) and distinct counting of the values' hashes.
    var textCounts: [String: Int] = [:]
    var textCountsExact = true
    var textUndercount = 0
    var textDistinct: DistinctCounter?
    var trues = 0
}

/// One parsed chunk on its way from a worker to the committer. Ownership passes through the
/// pipeline's mutex: only one thread touches it at a time.
final class ParsedChunk: @unchecked Sendable {
    let index: Int
    let buffer: ChunkBuffer
    let ownedEnd: Int
    var start: Int
    var parser: ChunkParser
    var kinds: [ParseKind]
    var widenEvents: [Int]
    var stats: [ChunkColumnStats] = []

    init(index: Int, buffer: ChunkBuffer, ownedEnd: Int, start: Int, parser: ChunkParser, kinds: [ParseKind],
         widenEvents: [Int])
    {
        self.index = index
        self.buffer = buffer
        self.ownedEnd = ownedEnd
        self.start = start
        self.parser = parser
        self.kinds = kinds
        self.widenEvents = widenEvents
    }
}

struct SniffResult {
    var dialect: CSVDialect
    var names: [String]
    var kinds: [ParseKind]
    var dataOffset: Int64
    var estimatedRows: Int
}

public enum CSVIngest {
    /// Detects delimiter, header and column types from the first records of `path`.
    public static func guessSchema(csv path: String, options: CSVIngestOptions = .init()) throws -> CSVSchemaGuess {
        let fd = try FileIO.openRead(path)
        defer { FileIO.close(fd) }
        let s = try sniff(fd: fd, size: FileIO.size(fd, path: path), path: path, options: options)
        return CSVSchemaGuess(dialect: s.dialect, columnNames: s.names, types: s.kinds.map(\.columnType),
                              sampledTypes: s.kinds.map { $0 == .empty ? nil : $0.columnType })
    }

    /// Reads `csv` once, in parallel and in bounded memory, into the columnar dataset file `output`
    /// (Note [Dataset file format]) and profiles every column on the way.
    public static func ingest(csv path: String, to output: String, options: CSVIngestOptions = .init()) throws
        -> IngestReport
    {
        guard options.chunkSize >= 16, options.threads >= 1, options.sampleRows >= 1 else {
            throw DatasetError(.invalidArgument, "chunkSize must be >= 16, threads and sampleRows >= 1")
        }
        let clock = ContinuousClock()
        let started = clock.now
        func seconds(since t: ContinuousClock.Instant) -> Double {
            let d = clock.now - t
            return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
        }
        let fd = try FileIO.openRead(path)
        defer { FileIO.close(fd) }
        let size = try FileIO.size(fd, path: path)
        let sniffed = try sniff(fd: fd, size: size, path: path, options: options)
        let sniffSeconds = seconds(since: started)
        let temporary = try FileIO.makeTemporaryDirectory(near: output)
        defer { FileIO.removeTree(temporary) }

        var kinds = sniffed.kinds
        var restarts = 0
        var widenedByRestart: [Int: Int] = [:]
        let maxRestarts = 4 * sniffed.names.count + 1
        let partial = output + ".partial"
        while true {
            let layout = try OutputLayout(path: partial, kinds: kinds, estimatedRows: sniffed.estimatedRows)
            var finished = false
            defer {
                layout.close()
                if !finished { FileIO.unlink(partial) }
            }
            let pass = IngestPass(fd: fd, path: path, size: size, sniffed: sniffed, kinds: kinds, options: options,
                                  temporary: temporary, layout: layout)
            let passStarted = clock.now
            do {
                try pass.run()
                let parseSeconds = seconds(since: passStarted)
                let assembleStarted = clock.now
                let committer = pass.committer
                for (c, n) in widenedByRestart { committer.widenCounts[c] += n }
                let result = try DatasetWriter.write(committer: committer, layout: layout, to: output,
                                                     sourcePath: path, sourceBytes: Int(size),
                                                     dialect: sniffed.dialect, options: options)
                finished = true
                let widenings = (0..<sniffed.names.count).compactMap { c -> Widening? in
                    let from = sniffed.kinds[c]
                    let to = committer.finalKinds[c]
                    guard from != .empty, from != to else { return nil }
                    return Widening(column: sniffed.names[c], from: from.columnType, to: to.columnType,
                                    values: committer.widenCounts[c])
                }
                return IngestReport(source: path, output: output, dialect: sniffed.dialect,
                                    columnNames: sniffed.names, types: committer.finalKinds.map(\.columnType),
                                    rows: committer.committedRows, badRows: committer.badRows,
                                    badRowSamples: committer.badSamples, widenings: widenings, restarts: restarts,
                                    reparsedChunks: committer.reparsedChunks, chunks: pass.chunkCount,
                                    profile: result,
                                    timings: .init(sniff: sniffSeconds, parse: parseSeconds,
                                                   assemble: seconds(since: assembleStarted)))
            } catch let restart as RestartNeeded {
                restarts += 1
                if restarts > maxRestarts { throw DatasetError(.typeMismatch, "column types did not settle", path: path) }
                kinds = restart.kinds
                for (c, n) in restart.reasons { widenedByRestart[c, default: 0] += n }
            }
        }
    }

    static func sniff(fd: Int32, size: Int64, path: String, options: CSVIngestOptions) throws -> SniffResult {
        if size == 0 { throw DatasetError(.emptyInput, "the file is empty", path: path) }
        var window = Int(min(size, Int64(4 << 20)))
        var bytes = [UInt8](repeating: 0, count: window)
        var got = try bytes.withUnsafeMutableBytes { try FileIO.readFully(fd, $0.baseAddress!, window, 0, path: path) }
        bytes.removeLast(window - got)
        let bom = bytes.starts(with: [0xEF, 0xBB, 0xBF])
        var offset = bom ? 3 : 0
        let atEOF = { Int64(got) >= size }
        let delimiter = options.delimiter ?? bytes.withUnsafeBufferPointer {
            Sniffer.detectDelimiter(UnsafeBufferPointer(rebasing: $0[offset...]), atEOF: atEOF())
        }
        let scanner = RecordScanner(delimiter: delimiter)
        var records: [[String]] = []
        var ends: [Int] = []
        while records.count <= options.sampleRows {
            let step = bytes.withUnsafeBufferPointer { scanner.next($0, from: offset, atEOF: atEOF()) }
            switch step {
            case .record(let f, let next):
                records.append(f.map { String(decoding: $0, as: UTF8.self) })
                ends.append(next)
                offset = next
                continue
            case .blank(let next):
                offset = next
                continue
            case .needMore where records.isEmpty && Int64(got) < size:
                // a first record longer than the window: read more
                window = Int(min(size, Int64(window) * 2))
                bytes = [UInt8](repeating: 0, count: window)
                got = try bytes.withUnsafeMutableBytes { try FileIO.readFully(fd, $0.baseAddress!, window, 0, path: path) }
                bytes.removeLast(window - got)
                offset = bom ? 3 : 0
                continue
            default:
                break
            }
            break
        }
        guard let first = records.first else {
            throw DatasetError(.emptyInput, "the file has no records", path: path)
        }
        let hasHeader: Bool
        switch options.header {
        case .present: hasHeader = true
        case .absent: hasHeader = false
        case .auto: hasHeader = Sniffer.detectHeader(Array(records.prefix(1000)))
        }
        var names: [String]
        if hasHeader {
            names = []
            var seen: [String: Int] = [:]
            for (i, raw) in first.enumerated() {
                var name = raw.isEmpty ? "column_\(i + 1)" : raw
                if let n = seen[name] {
                    seen[name] = n + 1
                    name += ".\(n)"
                }
                seen[name, default: 0] += 1
                names.append(name)
            }
        } else {
            names = (1...first.count).map { "column_\($0)" }
        }
        let data = hasHeader ? Array(records.dropFirst()) : records
        var kinds = (0..<names.count).map { c in Sniffer.inferKind(data.compactMap { c < $0.count ? $0[c] : nil }) }
        for (c, name) in names.enumerated() {
            if let forced = options.columnTypes[name] { kinds[c] = ParseKind(forced) }
        }
        let dataOffset = Int64(hasHeader ? ends[0] : (bom ? 3 : 0))
        let sampledBytes = Int64(ends.last!) - dataOffset
        let estimatedRows = data.isEmpty || sampledBytes <= 0
            ? 1 : Int(Double(size - dataOffset) / (Double(sampledBytes) / Double(data.count)))
        return SniffResult(dialect: CSVDialect(delimiter: delimiter, hasHeader: hasHeader, hasByteOrderMark: bom),
                           names: names, kinds: kinds, dataOffset: dataOffset, estimatedRows: estimatedRows)
    }
}

/// One full parallel pass over the file (Note [Speculative chunk boundaries]). The committer's
/// state is touched only by the thread holding the commit token (`Shared.committing`), handed over
/// under the mutex; that is what makes the unchecked Sendable conformance sound.
final class IngestPass: @unchecked Sendable {
    struct Shared {
        var next = 0
        var nextCommit = 0
        var ready: [Int: ParsedChunk] = [:]
        var committing = false
        var failure: (any Error)?
        var stopped = false
        var kinds: [ParseKind]
    }

    let fd: Int32
    let path: String
    let size: Int64
    let dataOffset: Int64
    let chunkSize: Int
    let chunkCount: Int
    let options: CSVIngestOptions
    let delimiter: UInt8
    let sampleShift: Int
    let shared: Mutex<Shared>
    let window: DispatchSemaphore
    let committer: Committer

    init(fd: Int32, path: String, size: Int64, sniffed: SniffResult, kinds: [ParseKind], options: CSVIngestOptions,
         temporary: String, layout: OutputLayout)
    {
        self.fd = fd
        self.path = path
        self.size = size
        self.options = options
        dataOffset = sniffed.dataOffset
        chunkSize = options.chunkSize
        let dataBytes = max(0, size - dataOffset)
        chunkCount = Int((dataBytes + Int64(chunkSize) - 1) / Int64(chunkSize))
        delimiter = sniffed.dialect.delimiter
        // Note [Profile sketches]: about 2^16 sampled values per column reach the quantile sketch.
        var shift = 0
        if sniffed.estimatedRows > options.exactQuantileLimit {
            while (sniffed.estimatedRows >> shift) > (1 << 16) { shift += 1 }
        }
        sampleShift = shift
        shared = Mutex(Shared(kinds: kinds))
        window = DispatchSemaphore(value: 2 * options.threads)
        committer = Committer(path: path, fd: fd, names: sniffed.names, kinds: kinds, sampledKinds: sniffed.kinds,
                              expectedStart: sniffed.dataOffset, options: options, temporary: temporary,
                              sampleShift: shift, layout: layout)
    }

    func run() throws {
        let group = DispatchGroup()
        for _ in 0..<options.threads {
            group.enter()
            let thread = Thread { [self] in
                worker()
                group.leave()
            }
            thread.stackSize = 4 << 20
            thread.start()
        }
        group.wait()
        if let failure = shared.withLock({ $0.failure }) { throw failure }
        try committer.finish()
    }

    private func fail(_ error: any Error) {
        shared.withLock {
            if $0.failure == nil { $0.failure = error }
            $0.stopped = true
        }
    }

    private func worker() {
        while true {
            window.wait()
            let claim: (Int, [ParseKind])? = shared.withLock {
                if $0.stopped || $0.next >= chunkCount { return nil }
                $0.next += 1
                return ($0.next - 1, $0.kinds)
            }
            guard let (index, kinds) = claim else {
                window.signal()
                return
            }
            let parsed: ParsedChunk
            do {
                parsed = try parseSpeculatively(index, kinds: kinds)
            } catch {
                fail(error)
                window.signal()
                return
            }
            let commitNow = shared.withLock { s -> Bool in
                s.ready[index] = parsed
                if s.committing { return false }
                s.committing = true
                return true
            }
            if commitNow { commitReady() }
        }
    }

    private func commitReady() {
        while true {
            let next: (ParsedChunk, Bool)? = shared.withLock { s in
                if let c = s.ready.removeValue(forKey: s.nextCommit) {
                    s.nextCommit += 1
                    return (c, s.stopped)
                }
                s.committing = false
                return nil
            }
            guard let (chunk, stopped) = next else { return }
            if !stopped {
                do {
                    try committer.commit(chunk, pass: self)
                    let kinds = committer.kinds
                    let done = shared.withLock { s in
                        s.kinds = kinds
                        return s.nextCommit
                    }
                    options.progress?(done, chunkCount)
                } catch {
                    fail(error)
                }
            }
            window.signal()
        }
    }

    /// Parses chunk `index` from the guessed first record start.
    private func parseSpeculatively(_ index: Int, kinds: [ParseKind]) throws -> ParsedChunk {
        let chunkStart = dataOffset + Int64(index) * Int64(chunkSize)
        let chunkEnd = min(chunkStart + Int64(chunkSize), size)
        let bufferStart = index == 0 ? chunkStart : chunkStart - 1
        let buffer = try ChunkBuffer(fd: fd, fileSize: size, fileOffset: bufferStart,
                                     length: Int(chunkEnd - bufferStart) + (64 << 10))
        var start = 0
        if index > 0 {
            while true {
                if let s = guessFirstRecordStart(buffer) {
                    start = s
                    break
                }
                if buffer.atEOF {
                    start = buffer.count
                    break
                }
                try buffer.extend()
            }
        }
        var k = kinds
        var events = [Int](repeating: 0, count: kinds.count)
        let parser = try parse(buffer, from: start, ownedEnd: Int(chunkEnd - bufferStart), kinds: &k, events: &events)
        let chunk = ParsedChunk(index: index, buffer: buffer, ownedEnd: Int(chunkEnd - bufferStart), start: start,
                                parser: parser, kinds: k, widenEvents: events)
        chunk.stats = computeStats(chunk)
        return chunk
    }

    /// Guesses where the first record starts in a chunk buffer whose byte 0 is the last byte of
    /// the previous range (Note [Speculative chunk boundaries]). The quote state at the start is
    /// read from the first quote with an unambiguous neighbourhood (Ge et al., "Speculative
    /// Distributed CSV Data Parsing", SIGMOD 2019): `"` followed by a delimiter or line end and not
    /// preceded by one closes a field (so the range started inside quotes); `"` preceded by a
    /// delimiter or line start and not followed by one opens a field. Quotes passed on the way
    /// flip the state. The record starts after the first LF outside quotes. Nil: no such LF yet.
    func guessFirstRecordStart(_ buffer: ChunkBuffer) -> Int? {
        let b = buffer.base
        let n = buffer.count
        let limit = min(n, 1 << 16)
        func boundary(_ c: UInt8) -> Bool { c == delimiter || c == Ascii.newline || c == Ascii.carriageReturn }
        var inside = false
        var skipped = 0
        var i = 1
        search: while i < limit {
            guard let q = memchr(b + i, Int32(Ascii.quote), limit - i) else { break }
            let at = UnsafeMutableRawPointer(q) - UnsafeMutableRawPointer(b)
            let next: UInt8 = at + 1 < n ? b[at + 1] : Ascii.newline
            let previous = b[at - 1]
            if next == Ascii.quote {
                skipped += 2
                i = at + 2
                continue
            }
            if boundary(next) && !boundary(previous) {
                inside = skipped % 2 == 0  // this quote closes: odd quotes before it → started outside
                break search
            }
            if boundary(previous) && !boundary(next) {
                inside = skipped % 2 == 1
                break search
            }
            skipped += 1
            i = at + 1
        }
        var j = 0
        while j < n {
            let c = b[j]
            if c == Ascii.quote {
                inside.toggle()
            } else if c == Ascii.newline && !inside {
                return j + 1
            }
            j += 1
        }
        return nil
    }

    func parse(_ buffer: ChunkBuffer, from: Int, ownedEnd: Int, kinds: inout [ParseKind], events: inout [Int]) throws
        -> ChunkParser
    {
        let parser = ChunkParser(delimiter: delimiter, kinds: kinds)
        var resume = from
        while true {
            switch parser.parse(buffer, from: resume, ownedEnd: ownedEnd) {
            case .done:
                for (c, col) in parser.columns.enumerated() {
                    kinds[c] = col.kind
                    events[c] += col.widenedToFloat
                }
                return parser
            case .needMore(let r):
                try buffer.extend()
                resume = r
            case .widen(let c, let k):
                for (i, col) in parser.columns.enumerated() { kinds[i] = col.kind }
                kinds[c] = ParseKind.join(kinds[c], k)
                events[c] += 1
                parser.reset(kinds: kinds)
                resume = from
            }
        }
    }

    /// Chunk-local summaries (Note [Profile sketches]).
    func computeStats(_ chunk: ParsedChunk) -> [ChunkColumnStats] {
        let distinctExact = committer.distinctStillExact
        return chunk.parser.columns.enumerated().map { c, col in
            var s = ChunkColumnStats()
            let n = col.rows
            let valid: UnsafePointer<UInt8>? = col.nulls > 0 ? UnsafePointer(col.valid.base) : nil
            switch col.kind {
            case .integer, .float, .date, .datetime:
                let values: UnsafePointer<Double>
                var owned: UnsafeMutablePointer<Double>?
                if col.kind == .float {
                    values = UnsafePointer(col.f64.base)
                } else {
                    let t = UnsafeMutablePointer<Double>.allocate(capacity: max(n, 1))
                    switch col.kind {
                    case .date: for i in 0..<n { t[i] = Double(col.i32.base[i]) }
                    default: for i in 0..<n { t[i] = Double(col.i64.base[i]) }
                    }
                    owned = t
                    values = UnsafePointer(t)
                }
                defer { owned?.deallocate() }
                s.moments = Moments.of(values, count: n, valid: valid)
                let keys = UnsafeMutablePointer<UInt64>.allocate(capacity: max(n, 1))
                defer { keys.deallocate() }
                var k = 0
                for i in 0..<n where valid == nil || valid![i] != 0 {
                    keys[k] = numericKey(values[i])
                    k += 1
                }
                var d = DistinctCounter(limit: options.exactDistinctLimit, exact: distinctExact[c])
                d.add(keys: keys, count: k)
                s.distinct = d
                var sketch = QuantileSketch(exactLimit: options.exactQuantileLimit,
                                            seed: options.seed ^ UInt64(chunk.index &* 7919 &+ c))
                let step = 1 << sampleShift
                var rng = SeededGenerator(seed: options.seed &+ UInt64(chunk.index) &* 1_000_003 &+ UInt64(c))
                var position = Int(rng.next() % UInt64(step))
                var seen = 0
                for i in 0..<n where valid == nil || valid![i] != 0 {
                    if seen == position {
                        sketch.insert(values[i], level: sampleShift)
                        position += step
                    }
                    seen += 1
                }
                s.sketch = sketch
            case .boolean:
                for i in 0..<n where valid == nil || valid![i] != 0 { s.trues += Int(col.u8.base[i]) }
            case .categorical:
                var counts = [Int](repeating: 0, count: col.dictionary.count)
                counts.withUnsafeMutableBufferPointer { ct in
                    for i in 0..<n where valid == nil || valid![i] != 0 { ct[Int(col.u32.base[i])] += 1 }
                }
                s.codeCounts = counts
            case .text:
                // count through a byte-string table; only distinct values become Strings
                let table = ByteStringTable()
                var counts: [Int] = []
                for i in 0..<n where valid == nil || valid![i] != 0 {
                    let start = i == 0 ? 0 : Int(col.ends.base[i - 1])
                    let end = Int(col.ends.base[i])
                    let code = Int(table.code(UnsafePointer(col.u8.base + start), end - start))
                    if code == counts.count { counts.append(0) }
                    counts[code] += 1
                }
                var keys = (0..<table.count).map { table.hash($0) }
                var d = DistinctCounter(limit: options.exactDistinctLimit, exact: distinctExact[c])
                keys.withUnsafeMutableBufferPointer { d.add(keys: UnsafePointer($0.baseAddress!), count: $0.count) }
                s.textDistinct = d
                var kept = Array(counts.indices)
                let k = FrequentStrings.defaultSummarySize
                if counts.count > options.exactDistinctLimit && counts.count > k {
                    // Misra-Gries reduction of the chunk (Note [Profile sketches]): keep the counters
                    // above the (k+1)-th largest count, minus that count
                    let cut = counts.sorted(by: >)[k]
                    kept = kept.filter { counts[$0] > cut }
                    for i in kept { counts[i] -= cut }
                    s.textCountsExact = false
                    s.textUndercount = cut
                }
                var out: [String: Int] = [:]
                out.reserveCapacity(kept.count)
                for i in kept { out[table.string(i)] = counts[i] }
                s.textCounts = out
            case .empty:
                break
            }
            return s
        }
    }
}

/// Global per-column statistics (committer side).
struct ColumnStatsState {
    var moments = Moments()
    var distinct: DistinctCounter
    var sketch: QuantileSketch
    var categoryCounts: [Int] = []
    var frequent: FrequentStrings
    var textDistinct: DistinctCounter
    var trues = 0
    var nonNull = 0
    var nulls = 0
}

/// Commits parsed chunks in file order: boundary check, type reconciliation, dictionary merge,
/// statistics merge and spilling of the columns.
final class Committer {
    let path: String
    let fd: Int32
    let names: [String]
    let options: CSVIngestOptions
    let sampleShift: Int
    var kinds: [ParseKind]
    let sampledKinds: [ParseKind]
    var committedRows = 0
    var expectedStart: Int64
    var badRows = 0
    var badSamples: [String] = []
    var reparsedChunks = 0
    var widenCounts: [Int]
    /// Rows written as Int64 before an int → float widening, per column.
    var integerPrefix: [Int]
    var spills: [ColumnSpill]
    var stats: [ColumnStatsState]
    var dictionaries: [ByteStringTable]
    var finalKinds: [ParseKind] = []
    private var lines: LineLocator
    private let distinctFlags: Mutex<[Bool]>

    init(path: String, fd: Int32, names: [String], kinds: [ParseKind], sampledKinds: [ParseKind], expectedStart: Int64,
         options: CSVIngestOptions, temporary: String, sampleShift: Int, layout: OutputLayout)
    {
        self.path = path
        self.fd = fd
        self.names = names
        self.kinds = kinds
        self.sampledKinds = sampledKinds
        self.expectedStart = expectedStart
        self.options = options
        self.sampleShift = sampleShift
        widenCounts = [Int](repeating: 0, count: names.count)
        integerPrefix = [Int](repeating: 0, count: names.count)
        spills = (0..<names.count).map {
            ColumnSpill(directory: temporary, column: $0, keepOpen: names.count <= 128, region: layout.regions[$0],
                        output: layout.fd, outputPath: layout.path)
        }
        stats = (0..<names.count).map { c in
            ColumnStatsState(distinct: DistinctCounter(limit: options.exactDistinctLimit),
                             sketch: QuantileSketch(exactLimit: options.exactQuantileLimit, seed: options.seed &+ UInt64(c)),
                             frequent: FrequentStrings(exactLimit: options.exactDistinctLimit),
                             textDistinct: DistinctCounter(limit: options.exactDistinctLimit))
        }
        dictionaries = names.map { _ in ByteStringTable() }
        lines = LineLocator(fd: fd)
        distinctFlags = Mutex([Bool](repeating: true, count: names.count))
    }

    /// Per column: is the global distinct count still exact (workers then build exact tables).
    var distinctStillExact: [Bool] { distinctFlags.withLock { $0 } }

    func commit(_ chunk: ParsedChunk, pass: IngestPass) throws {
        let buffer = chunk.buffer
        var changed = false
        // 1. the chunk must start where the previous one ended (Note [Speculative chunk boundaries])
        if buffer.fileOffset + Int64(chunk.start) != expectedStart {
            chunk.start = Int(expectedStart - buffer.fileOffset)
            // the guess was wrong: whatever that parse widened is discarded with it
            reparsedChunks += 1
            var k = kinds
            var events = [Int](repeating: 0, count: k.count)
            chunk.parser = try pass.parse(buffer, from: chunk.start, ownedEnd: chunk.ownedEnd, kinds: &k, events: &events)
            chunk.kinds = k
            chunk.widenEvents = events
            changed = true
        }
        // 2. reconcile the chunk's types with the global ones (Note [Widening during ingest])
        var target = kinds.enumerated().map { ParseKind.join($1, chunk.kinds[$0]) }
        var needsReparse = false
        for c in 0..<target.count where chunk.kinds[c] != target[c] {
            let k = chunk.kinds[c]
            if k == .empty || (k == .integer && target[c] == .float) || (k == .date && target[c] == .datetime) {
                continue
            }
            needsReparse = true
        }
        if needsReparse {
            var events = [Int](repeating: 0, count: target.count)
            chunk.parser = try pass.parse(buffer, from: chunk.start, ownedEnd: chunk.ownedEnd, kinds: &target,
                                          events: &events)
            for c in 0..<events.count { chunk.widenEvents[c] = max(chunk.widenEvents[c], events[c]) }
            chunk.kinds = target
            changed = true
        }
        for (c, col) in chunk.parser.columns.enumerated() where col.kind != target[c] {
            switch (col.kind, target[c]) {
            case (.empty, let t): col.adopt(t)
            case (.integer, .float): col.convertIntegerToFloat()
            case (.date, .datetime): col.convertDateToDatetime()
            default: preconditionFailure("unreconciled column kind")
            }
            chunk.kinds[c] = target[c]
            changed = true
        }
        // 3. widen the global types
        var restart: [ParseKind]?
        var reasons: [Int: Int] = [:]
        for c in 0..<kinds.count where chunk.kinds[c] != kinds[c] {
            let g = kinds[c]
            let j = chunk.kinds[c]
            if committedRows == 0 || g == .empty {
                kinds[c] = j
            } else if g == .integer && j == .float {
                integerPrefix[c] = committedRows
                kinds[c] = j
            } else {
                if restart == nil { restart = kinds }
                restart![c] = j
                reasons[c, default: 0] += max(1, chunk.widenEvents[c])
            }
        }
        if let restart { throw RestartNeeded(kinds: restart, reasons: reasons) }
        for c in 0..<kinds.count { widenCounts[c] += chunk.widenEvents[c] }
        if changed { chunk.stats = pass.computeStats(chunk) }
        // 4. categorical codes → global dictionary
        for (c, col) in chunk.parser.columns.enumerated() where col.kind == .categorical {
            let counts = chunk.stats[c].codeCounts
            var remap = [UInt32](repeating: 0, count: counts.count)
            let dictionary = dictionaries[c]
            for code in 0..<counts.count where counts[code] > 0 {
                let b = col.dictionary.bytes(code)
                remap[code] = dictionary.code(b.baseAddress ?? UnsafePointer(col.dictionary.bytes.base), b.count)
            }
            if dictionary.count > options.maxDictionarySize {
                var k = kinds
                k[c] = .text
                throw RestartNeeded(kinds: k, reasons: [c: 1])
            }
            if stats[c].categoryCounts.count < dictionary.count {
                stats[c].categoryCounts += [Int](repeating: 0, count: dictionary.count - stats[c].categoryCounts.count)
            }
            for code in 0..<counts.count where counts[code] > 0 { stats[c].categoryCounts[Int(remap[code])] += counts[code] }
            remap.withUnsafeBufferPointer { r in
                for i in 0..<col.rows { col.u32.base[i] = r[Int(col.u32.base[i])] }
            }
        }
        // 5. malformed rows
        for bad in chunk.parser.badRows {
            let (line, column) = try lines.locate(bad.offset)
            let error = DatasetError(.malformedRow, bad.message, path: path, line: line, column: column)
            if !options.skipBadRows { throw error }
            badRows += 1
            if badSamples.count < 20 { badSamples.append(error.description) }
        }
        // 6. statistics
        var flagsChanged = false
        for (c, col) in chunk.parser.columns.enumerated() {
            let s = chunk.stats[c]
            stats[c].nulls += col.nulls
            stats[c].nonNull += col.rows - col.nulls
            switch col.kind {
            case .integer, .float, .date, .datetime:
                stats[c].moments.merge(s.moments)
                if let d = s.distinct {
                    let wasExact = stats[c].distinct.isExact
                    stats[c].distinct.merge(d)
                    if wasExact && !stats[c].distinct.isExact { flagsChanged = true }
                }
                if let sk = s.sketch { stats[c].sketch.merge(sk) }
            case .boolean:
                stats[c].trues += s.trues
            case .text:
                stats[c].frequent.merge(s.textCounts, exact: s.textCountsExact, undercount: s.textUndercount)
                if let d = s.textDistinct {
                    let wasExact = stats[c].textDistinct.isExact
                    stats[c].textDistinct.merge(d)
                    if wasExact && !stats[c].textDistinct.isExact { flagsChanged = true }
                }
            case .categorical, .empty:
                break
            }
        }
        if flagsChanged {
            let flags = stats.enumerated().map { c, s in kinds[c] == .text ? s.textDistinct.isExact : s.distinct.isExact }
            distinctFlags.withLock { $0 = flags }
        }
        // 7. spill
        for (c, col) in chunk.parser.columns.enumerated() {
            try spills[c].append(col, committedRows: committedRows)
        }
        committedRows += chunk.parser.rows
        expectedStart = buffer.fileOffset + Int64(chunk.parser.endOffset)
    }

    func finish() throws {
        finalKinds = kinds.map { $0 == .empty ? .float : $0 }
        for c in 0..<spills.count { try spills[c].finish(kind: finalKinds[c], rows: committedRows) }
    }
}

/// Finds the line and column of a file offset, scanning forward from the last answer (offsets
/// arrive in increasing order: chunks commit in file order).
struct LineLocator {
    let fd: Int32
    var offset: Int64 = 0
    var line = 1
    var lineStart: Int64 = 0

    init(fd: Int32) { self.fd = fd }

    mutating func locate(_ target: Int64) throws -> (line: Int, column: Int) {
        if target < offset {
            offset = 0
            line = 1
            lineStart = 0
        }
        var block = [UInt8](repeating: 0, count: 1 << 16)
        while offset < target {
            let want = Int(min(Int64(block.count), target - offset))
            let n = try block.withUnsafeMutableBytes { try FileIO.readFully(fd, $0.baseAddress!, want, offset, path: "") }
            if n == 0 { break }
            for i in 0..<n where block[i] == Ascii.newline {
                line += 1
                lineStart = offset + Int64(i) + 1
            }
            offset += Int64(n)
        }
        // character column: UTF-8 lead bytes between the line start and the target
        let length = Int(min(target - lineStart, 1 << 20))
        var text = [UInt8](repeating: 0, count: length)
        let n = try text.withUnsafeMutableBytes { try FileIO.readFully(fd, $0.baseAddress!, length, target - Int64(length), path: "") }
        let column = text[0..<n].reduce(1) { $0 + ($1 & 0xC0 != 0x80 ? 1 : 0) }
        return (line, column)
    }
}
