#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Physical kind a column is parsed as. `empty` means only missing values so far.
enum ParseKind: UInt8, Sendable, Comparable {
    case empty, boolean, integer, float, date, datetime, categorical, text

    static func < (a: ParseKind, b: ParseKind) -> Bool { a.rawValue < b.rawValue }

    /// Least kind that holds values of both (the widening lattice: int → float → categorical,
    /// date → datetime → categorical, bool → categorical, categorical → text).
    static func join(_ a: ParseKind, _ b: ParseKind) -> ParseKind {
        if a == b { return a }
        if a == .empty { return b }
        if b == .empty { return a }
        if a == .text || b == .text { return .text }
        let pair = (Swift.min(a, b), Swift.max(a, b))
        if pair == (.integer, .float) { return .float }
        if pair == (.date, .datetime) { return .datetime }
        return .categorical
    }

    var columnType: ColumnType {
        switch self {
        case .empty, .float: return .float
        case .boolean: return .boolean
        case .integer: return .integer
        case .date: return .date
        case .datetime: return .datetime
        case .categorical: return .categorical
        case .text: return .text
        }
    }

    init(_ type: ColumnType) {
        switch type {
        case .float: self = .float
        case .boolean: self = .boolean
        case .integer: self = .integer
        case .date: self = .date
        case .datetime: self = .datetime
        case .categorical: self = .categorical
        case .text: self = .text
        }
    }

    /// Kind of one non-missing value on its own.
    static func classify(_ s: UnsafePointer<UInt8>, _ e: UnsafePointer<UInt8>) -> ParseKind {
        if FieldValue.int(s, e) != nil { return .integer }
        if FieldValue.double(s, e) != nil { return .float }
        if FieldValue.bool(s, e) != nil { return .boolean }
        if FieldValue.date(s, e) != nil { return .date }
        if FieldValue.datetime(s, e) != nil { return .datetime }
        return .categorical
    }
}

/// Growable unmanaged array of trivial values (the parser's hot appends).
final class GrowBuf<T: BitwiseCopyable> {
    private(set) var base: UnsafeMutablePointer<T>
    var count = 0
    private(set) var capacity: Int

    init(capacity: Int = 0) {
        self.capacity = capacity
        base = UnsafeMutablePointer<T>.allocate(capacity: Swift.max(capacity, 1))
    }

    deinit { base.deallocate() }

    @inline(__always)
    func append(_ v: T) {
        if count == capacity { grow(count + 1) }
        base[count] = v
        count += 1
    }

    func append(_ p: UnsafePointer<T>, _ n: Int) {
        if count + n > capacity { grow(count + n) }
        (base + count).update(from: p, count: n)
        count += n
    }

    func reserve(_ n: Int) { if n > capacity { grow(n) } }

    private func grow(_ needed: Int) {
        var c = Swift.max(capacity * 2, 1024)
        while c < needed { c *= 2 }
        let b = UnsafeMutablePointer<T>.allocate(capacity: c)
        b.update(from: base, count: count)
        base.deallocate()
        base = b
        capacity = c
    }

    func removeAll() { count = 0 }

    var buffer: UnsafeBufferPointer<T> { UnsafeBufferPointer(start: base, count: count) }
}

/// Hash table of byte strings → dense codes in first-seen order (categorical dictionaries).
final class ByteStringTable {
    private(set) var bytes = GrowBuf<UInt8>()
    private(set) var ends = GrowBuf<Int>()  // end offset of string i in bytes
    private var hashes = GrowBuf<UInt64>()
    private var slots: [Int32]
    private var mask: Int

    init() {
        slots = [Int32](repeating: -1, count: 256)
        mask = 255
    }

    var count: Int { ends.count }

    func string(_ code: Int) -> String {
        let start = code == 0 ? 0 : ends.base[code - 1]
        let buf = UnsafeBufferPointer(start: bytes.base + start, count: ends.base[code] - start)
        return String(decoding: buf, as: UTF8.self)
    }

    func hash(_ code: Int) -> UInt64 { hashes.base[code] }

    func bytes(_ code: Int) -> UnsafeBufferPointer<UInt8> {
        let start = code == 0 ? 0 : ends.base[code - 1]
        return UnsafeBufferPointer(start: bytes.base + start, count: ends.base[code] - start)
    }

    @inline(__always)
    func code(_ p: UnsafePointer<UInt8>, _ n: Int) -> UInt32 {
        let h = hashBytes(p, n)
        return code(p, n, hash: h)
    }

    @inline(__always)
    func code(_ p: UnsafePointer<UInt8>, _ n: Int, hash h: UInt64) -> UInt32 {
        var i = Int(truncatingIfNeeded: h) & mask
        while true {
            let s = Int(slots[i])
            if s < 0 { break }
            if hashes.base[s] == h {
                let start = s == 0 ? 0 : ends.base[s - 1]
                if ends.base[s] - start == n, memcmp(bytes.base + start, p, n) == 0 { return UInt32(s) }
            }
            i = (i + 1) & mask
        }
        let c = ends.count
        bytes.append(p, n)
        ends.append(bytes.count)
        hashes.append(h)
        slots[i] = Int32(c)
        if ends.count * 2 > slots.count { rehash() }
        return UInt32(c)
    }

    private func rehash() {
        let size = slots.count * 2
        slots = [Int32](repeating: -1, count: size)
        mask = size - 1
        for c in 0..<ends.count {
            var i = Int(truncatingIfNeeded: hashes.base[c]) & mask
            while slots[i] >= 0 { i = (i + 1) & mask }
            slots[i] = Int32(c)
        }
    }
}

/// One column of one chunk while parsing. Only the storage of the current kind is used.
final class ColumnBuilder {
    var kind: ParseKind
    var rows = 0
    var nulls = 0
    let valid = GrowBuf<UInt8>()
    let i64 = GrowBuf<Int64>()  // integer, datetime (µs)
    let f64 = GrowBuf<Double>()  // float
    let i32 = GrowBuf<Int32>()  // date (days)
    let u32 = GrowBuf<UInt32>()  // categorical codes (local dictionary)
    let u8 = GrowBuf<UInt8>()  // boolean values, text bytes
    let ends = GrowBuf<Int64>()  // text: end offset of each value in u8
    var dictionary = ByteStringTable()
    /// Values of this chunk that did not fit the integer kind and widened the column to float.
    var widenedToFloat = 0

    init(kind: ParseKind) { self.kind = kind }

    func reset(kind: ParseKind) {
        self.kind = kind
        rows = 0
        nulls = 0
        widenedToFloat = 0
        valid.removeAll()
        i64.removeAll()
        f64.removeAll()
        i32.removeAll()
        u32.removeAll()
        u8.removeAll()
        ends.removeAll()
        dictionary = ByteStringTable()
    }

    @inline(__always)
    func appendNull() {
        switch kind {
        case .integer, .datetime: i64.append(0)
        case .float: f64.append(0)
        case .date: i32.append(0)
        case .categorical: u32.append(0)
        case .boolean: u8.append(0)
        case .text: ends.append(Int64(u8.count))
        case .empty: break
        }
        valid.append(0)
        nulls += 1
        rows += 1
    }

    /// Drops rows past `n` (a bad row being discarded).
    func truncate(_ n: Int) {
        guard rows > n else { return }
        var droppedNulls = 0
        for i in n..<rows where valid.base[i] == 0 { droppedNulls += 1 }
        nulls -= droppedNulls
        valid.count = n
        switch kind {
        case .integer, .datetime: i64.count = n
        case .float: f64.count = n
        case .date: i32.count = n
        case .categorical: u32.count = n
        case .boolean: u8.count = n
        case .text:
            ends.count = n
            u8.count = n == 0 ? 0 : Int(ends.base[n - 1])
        case .empty: break
        }
        rows = n
    }

    /// int → float in place of this chunk's values.
    func convertIntegerToFloat() {
        f64.removeAll()
        f64.reserve(rows)
        for i in 0..<rows { f64.append(Double(i64.base[i])) }
        i64.removeAll()
        kind = .float
    }

    /// date → datetime in place.
    func convertDateToDatetime() {
        i64.removeAll()
        i64.reserve(rows)
        for i in 0..<rows { i64.append(Int64(i32.base[i]) * 86_400_000_000) }
        i32.removeAll()
        kind = .datetime
    }

    /// From `empty` (all rows missing so far) to a concrete kind.
    func adopt(_ k: ParseKind) {
        let n = rows
        let z = nulls
        reset(kind: k)
        for _ in 0..<n { appendNull() }
        rows = n
        nulls = z
    }
}

// Note [Chunk buffers]
// ~~~~~~~~~~~~~~~~~~~~
// A chunk buffer holds the bytes of one byte range of the file, read with pread, plus whatever
// follows until the last record that starts inside the range is complete (it grows on demand, so
// a record longer than the chunk size is fine). One byte past the valid bytes is always a NUL
// sentinel: the number scanners and the unquoted-field scanner stop on it without bounds checks,
// and a stop at `end` is told apart from a NUL inside the data by comparing the pointer.
final class ChunkBuffer {
    let fd: Int32
    let fileSize: Int64
    /// File offset of byte 0.
    let fileOffset: Int64
    private(set) var base: UnsafeMutablePointer<UInt8>
    private(set) var count = 0
    private var capacity: Int

    init(fd: Int32, fileSize: Int64, fileOffset: Int64, length: Int) throws {
        self.fd = fd
        self.fileSize = fileSize
        self.fileOffset = fileOffset
        capacity = Swift.max(length, 16)
        base = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity + 1)
        base[0] = 0
        try fill(upTo: Swift.min(Int64(length), fileSize - fileOffset))
    }

    deinit { base.deallocate() }

    var atEOF: Bool { fileOffset + Int64(count) >= fileSize }
    var end: UnsafePointer<UInt8> { UnsafePointer(base + count) }

    private func fill(upTo total: Int64) throws {
        let want = Int(total)
        if want > capacity {
            let c = Swift.max(want, capacity * 2)
            let b = UnsafeMutablePointer<UInt8>.allocate(capacity: c + 1)
            b.update(from: base, count: count)
            base.deallocate()
            base = b
            capacity = c
        }
        while count < want {
            let n = FileIO.pread(fd, base + count, want - count, fileOffset + Int64(count))
            if n < 0 { throw DatasetError(.io, "read failed: \(FileIO.lastError())") }
            if n == 0 { break }
            count += n
        }
        base[count] = 0
    }

    /// Reads more of the file (doubling), for a record that runs past the buffer.
    func extend() throws {
        let more = Swift.max(Int64(capacity), 1 << 16)
        try fill(upTo: Swift.min(Int64(count) + more, fileSize - fileOffset))
    }
}

/// Why a record was rejected.
struct BadRow: Sendable {
    /// Offset in the file of the offending byte.
    var offset: Int64
    var message: String
}

enum FieldOutcome {
    case ok
    case needMore
    case malformed(UnsafePointer<UInt8>, String)
    case widen(ParseKind)
}

enum ParseOutcome {
    case done
    case needMore(resumeAt: Int)
    case widen(column: Int, to: ParseKind)
}

/// Parses the records of one chunk buffer into column builders, typed by `kinds`.
final class ChunkParser {
    let delimiter: UInt8
    let columns: [ColumnBuilder]
    let columnCount: Int
    static let unterminated = "unterminated quoted field"
    private let stop: UnsafeMutablePointer<Bool>
    private let scratch = GrowBuf<UInt8>()
    var rows = 0
    var badRows: [BadRow] = []
    /// Offset (in the buffer) just past the last record parsed.
    var endOffset = 0

    init(delimiter: UInt8, kinds: [ParseKind]) {
        self.delimiter = delimiter
        columnCount = kinds.count
        columns = kinds.map { ColumnBuilder(kind: $0) }
        stop = UnsafeMutablePointer<Bool>.allocate(capacity: 256)
        stop.initialize(repeating: false, count: 256)
        stop[Int(delimiter)] = true
        stop[Int(Ascii.newline)] = true
        stop[Int(Ascii.carriageReturn)] = true
        stop[0] = true
    }

    deinit {
        stop.deallocate()
    }

    func reset(kinds: [ParseKind]) {
        for (c, k) in zip(columns, kinds) { c.reset(kind: k) }
        rows = 0
        badRows = []
        endOffset = 0
    }

    /// Parses records that start at or after `from` and before `ownedEnd` (buffer offsets).
    func parse(_ buffer: ChunkBuffer, from: Int, ownedEnd: Int) -> ParseOutcome {
        let base = UnsafePointer(buffer.base)
        let end = buffer.end
        let atEOF = buffer.atEOF
        var p = base + from
        let owned = base + Swift.min(ownedEnd, buffer.count)
        // unretained references: `columns` keeps the builders alive for the whole call, and the
        // per-field retain/release of an array element showed up at ~3% of ingest time
        let cols = columns.map { Unmanaged.passUnretained($0) }
        while p < owned {
            if p[0] == Ascii.newline {
                p += 1
                continue
            }
            if p[0] == Ascii.carriageReturn && p[1] == Ascii.newline {
                p += 2
                continue
            }
            let recordStart = p
            var c = 0
            var bad: (UnsafePointer<UInt8>, String)?
            var needSkip = false
            fields: while true {
                let outcome = cols[c]._withUnsafeGuaranteedRef { parseField($0, &p, end, atEOF) }
                switch outcome {
                case .ok: break
                case .needMore:
                    truncateAll(rows)
                    return .needMore(resumeAt: recordStart - base)
                case .widen(let k):
                    return .widen(column: c, to: k)
                case .malformed(let at, let message):
                    bad = (at, message)
                    if at == end || message == ChunkParser.unterminated {
                        p = end  // an unterminated quote runs to the end of the file
                    } else {
                        needSkip = true
                        p = at
                    }
                    break fields
                }
                // p is at the field's terminator
                if p == end {
                    if !atEOF {
                        truncateAll(rows)
                        return .needMore(resumeAt: recordStart - base)
                    }
                    if c != columnCount - 1 { bad = (p, "expected \(columnCount) fields, found \(c + 1)") }
                    break fields
                }
                let b = p[0]
                if b == delimiter {
                    if c == columnCount - 1 {
                        bad = (p, "expected \(columnCount) fields, found more")
                        needSkip = true
                        break fields
                    }
                    p += 1
                    c += 1
                    continue
                }
                // newline or CRLF
                if c != columnCount - 1 { bad = (p, "expected \(columnCount) fields, found \(c + 1)") }
                p += b == Ascii.carriageReturn ? 2 : 1
                break fields
            }
            if let bad {
                truncateAll(rows)
                badRows.append(BadRow(offset: buffer.fileOffset + Int64(bad.0 - base), message: bad.1))
                if needSkip {
                    switch skipRecord(&p, end, atEOF) {
                    case .needMore:
                        badRows.removeLast()
                        return .needMore(resumeAt: recordStart - base)
                    default: break
                    }
                }
                continue
            }
            rows += 1
        }
        endOffset = p - base
        return .done
    }

    private func truncateAll(_ n: Int) {
        for col in columns where col.rows > n { col.truncate(n) }
    }

    /// Skips the rest of a bad record with the same quoting rules as the parser.
    private func skipRecord(_ p: inout UnsafePointer<UInt8>, _ end: UnsafePointer<UInt8>, _ atEOF: Bool) -> FieldOutcome {
        var atFieldStart = false
        while true {
            if p == end { return atEOF ? .ok : .needMore }
            let b = p[0]
            if atFieldStart && b == Ascii.quote {
                var q = p + 1
                while true {
                    guard let r = findQuote(q, end) else {
                        if atEOF {
                            p = end
                            return .ok
                        }
                        return .needMore
                    }
                    if r + 1 == end && !atEOF { return .needMore }
                    if r[1] == Ascii.quote {
                        q = r + 2
                        continue
                    }
                    p = r + 1
                    break
                }
                atFieldStart = false
                continue
            }
            atFieldStart = false
            if b == delimiter {
                atFieldStart = true
                p += 1
            } else if b == Ascii.newline {
                p += 1
                return .ok
            } else if b == Ascii.carriageReturn && p[1] == Ascii.newline {
                p += 2
                return .ok
            } else {
                p += 1
            }
        }
    }

    @inline(__always)
    private func findQuote(_ from: UnsafePointer<UInt8>, _ end: UnsafePointer<UInt8>) -> UnsafePointer<UInt8>? {
        guard from < end, let r = memchr(from, Int32(Ascii.quote), end - from) else { return nil }
        return UnsafePointer(r.assumingMemoryBound(to: UInt8.self))
    }

    /// True when `q` ends a field: delimiter, LF, CRLF or the end of the buffer.
    @inline(__always)
    private func isTerminator(_ q: UnsafePointer<UInt8>, _ end: UnsafePointer<UInt8>) -> Bool {
        let b = q[0]
        return b == delimiter || b == Ascii.newline || (b == Ascii.carriageReturn && q[1] == Ascii.newline)
            || (b == 0 && q == end)
    }

    /// End of an unquoted field starting at `p`.
    @inline(__always)
    private func unquotedEnd(_ p: UnsafePointer<UInt8>, _ end: UnsafePointer<UInt8>) -> UnsafePointer<UInt8> {
        var q = p
        while true {
            while !stop[Int(q[0])] { q += 1 }
            if isTerminator(q, end) { return q }
            q += 1
        }
    }

    @inline(__always)
    private func parseField(_ col: ColumnBuilder, _ p: inout UnsafePointer<UInt8>, _ end: UnsafePointer<UInt8>,
                            _ atEOF: Bool) -> FieldOutcome
    {
        let s = p
        if s[0] == Ascii.quote { return parseQuoted(col, &p, end, atEOF) }
        switch col.kind {
        case .float:
            let r = scanDouble(s, exactPowersOfTen)
            if r.result == .value, isTerminator(r.end, end) {
                col.f64.append(r.value)
                col.valid.append(1)
                col.rows += 1
                p = r.end
                return .ok
            }
        case .integer:
            let r = scanInt(s)
            if r.result == .value, isTerminator(r.end, end) {
                col.i64.append(r.value)
                col.valid.append(1)
                col.rows += 1
                p = r.end
                return .ok
            }
        case .date:
            if end - s >= 10, isTerminator(s + 10, end), let d = FieldValue.dateAt(s) {
                col.i32.append(d)
                col.valid.append(1)
                col.rows += 1
                p = s + 10
                return .ok
            }
        case .categorical:
            let e = unquotedEnd(s, end)
            p = e
            let n = e - s
            if n <= 4 || s[0] == Ascii.space || s[0] == Ascii.tab || e[-1] == Ascii.space || e[-1] == Ascii.tab,
               FieldValue.isMissing(s, e)
            {
                col.appendNull()
                return .ok
            }
            col.u32.append(col.dictionary.code(s, n))
            col.valid.append(1)
            col.rows += 1
            return .ok
        default:
            break
        }
        let e = unquotedEnd(s, end)
        p = e
        return typedValue(col, s, e)
    }

    private func parseQuoted(_ col: ColumnBuilder, _ p: inout UnsafePointer<UInt8>, _ end: UnsafePointer<UInt8>,
                             _ atEOF: Bool) -> FieldOutcome
    {
        let open = p
        var q = p + 1
        var escaped = false
        var close: UnsafePointer<UInt8>
        while true {
            guard let r = findQuote(q, end) else {
                return atEOF ? .malformed(open, ChunkParser.unterminated) : .needMore
            }
            if r + 1 == end && !atEOF { return .needMore }
            if r[1] == Ascii.quote && r + 1 < end {
                escaped = true
                q = r + 2
                continue
            }
            close = r
            break
        }
        let after = close + 1
        if !isTerminator(after, end) {
            return .malformed(after, "unexpected character after a closing quote")
        }
        p = after
        if !escaped { return typedValue(col, open + 1, close) }
        scratch.removeAll()
        var i = open + 1
        while i < close {
            scratch.append(i[0])
            i += i[0] == Ascii.quote ? 2 : 1
        }
        let s = UnsafePointer(scratch.base)
        return typedValue(col, s, s + scratch.count)
    }

    /// General path for a field's bytes [s, e): missing tokens, spaces, quoted content, widening.
    private func typedValue(_ col: ColumnBuilder, _ s: UnsafePointer<UInt8>, _ e: UnsafePointer<UInt8>) -> FieldOutcome {
        if FieldValue.isMissing(s, e) {
            col.appendNull()
            return .ok
        }
        switch col.kind {
        case .float:
            if let v = FieldValue.double(s, e) {
                col.f64.append(v)
                break
            }
            return .widen(ParseKind.join(.float, ParseKind.classify(s, e)))
        case .integer:
            if let v = FieldValue.int(s, e) {
                col.i64.append(v)
                break
            }
            if let v = FieldValue.double(s, e) {
                col.convertIntegerToFloat()
                col.widenedToFloat += 1
                col.f64.append(v)
                break
            }
            return .widen(ParseKind.join(.integer, ParseKind.classify(s, e)))
        case .boolean:
            if let v = FieldValue.bool(s, e) {
                col.u8.append(v ? 1 : 0)
                break
            }
            return .widen(.categorical)
        case .date:
            if let v = FieldValue.date(s, e) {
                col.i32.append(v)
                break
            }
            if let v = FieldValue.datetime(s, e) {
                col.convertDateToDatetime()
                col.i64.append(v)
                break
            }
            return .widen(.categorical)
        case .datetime:
            if let v = FieldValue.datetime(s, e) {
                col.i64.append(v)
                break
            }
            return .widen(.categorical)
        case .categorical:
            col.u32.append(col.dictionary.code(s, e - s))
        case .text:
            col.u8.append(s, e - s)
            col.ends.append(Int64(col.u8.count))
        case .empty:
            col.adopt(ParseKind.classify(s, e))
            return typedValue(col, s, e)
        }
        col.valid.append(1)
        col.rows += 1
        return .ok
    }
}
