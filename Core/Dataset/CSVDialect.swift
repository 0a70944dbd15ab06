#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Whether the first record holds column names.
public enum HeaderMode: String, Sendable, Codable {
    case auto, present, absent
}

/// The shape of a CSV file: what the sniffer detected or the caller fixed.
public struct CSVDialect: Sendable, Codable, Equatable {
    /// Field separator byte (`,` `;` `\t` `|` are detected).
    public var delimiter: UInt8
    public var hasHeader: Bool
    /// A UTF-8 byte order mark was present and skipped.
    public var hasByteOrderMark: Bool
}

/// Splits records of a byte buffer into fields with the parser's quoting rules (RFC 4180: quoted
/// fields, doubled quotes, embedded newlines, LF or CRLF endings; a quote inside an unquoted field
/// is an ordinary byte). Used for sniffing and by `CSVReader`; the typed ingest parser
/// (`ChunkParser`) follows the same grammar.
struct RecordScanner {
    enum Step {
        case record([[UInt8]], next: Int)
        case blank(next: Int)
        case needMore
        case end
        case malformed(at: Int, String)
    }

    let delimiter: UInt8

    func next(_ b: UnsafeBufferPointer<UInt8>, from start: Int, atEOF: Bool) -> Step {
        let n = b.count
        var i = start
        if i >= n { return atEOF ? .end : .needMore }
        if b[i] == Ascii.newline { return .blank(next: i + 1) }
        if b[i] == Ascii.carriageReturn {
            if i + 1 >= n { return atEOF ? .blank(next: n) : .needMore }
            if b[i + 1] == Ascii.newline { return .blank(next: i + 2) }
        }
        var fields: [[UInt8]] = []
        var field: [UInt8] = []
        while true {
            if i < n && b[i] == Ascii.quote {
                // quoted field
                let open = i
                i += 1
                while true {
                    if i >= n { return atEOF ? .malformed(at: open, ChunkParser.unterminated) : .needMore }
                    if b[i] == Ascii.quote {
                        if i + 1 >= n && !atEOF { return .needMore }
                        if i + 1 < n && b[i + 1] == Ascii.quote {
                            field.append(Ascii.quote)
                            i += 2
                            continue
                        }
                        i += 1
                        break
                    }
                    field.append(b[i])
                    i += 1
                }
                if i < n && !(b[i] == delimiter || b[i] == Ascii.newline || b[i] == Ascii.carriageReturn) {
                    return .malformed(at: i, "unexpected character after a closing quote")
                }
            }
            // unquoted part (or after a closing quote)
            while i < n {
                let c = b[i]
                if c == delimiter || c == Ascii.newline { break }
                if c == Ascii.carriageReturn {
                    if i + 1 >= n && !atEOF { return .needMore }
                    if i + 1 < n && b[i + 1] == Ascii.newline { break }
                }
                field.append(c)
                i += 1
            }
            fields.append(field)
            field = []
            if i >= n {
                if !atEOF { return .needMore }
                return .record(fields, next: n)
            }
            if b[i] == delimiter {
                i += 1
                continue
            }
            i += b[i] == Ascii.carriageReturn ? 2 : 1
            return .record(fields, next: i)
        }
    }
}

/// A streaming reader of CSV records as strings, in bounded memory (a block buffer that grows only
/// for a record longer than the block). It does not interpret a header; `CSVIngest` is the typed,
/// parallel path.
public final class CSVReader {
    public let path: String
    public private(set) var delimiter = UInt8(ascii: ",")
    private let fd: Int32
    private let fileSize: Int64
    private var buffer: [UInt8] = []
    private var position = 0
    private var bufferOffset: Int64 = 0
    private let blockSize: Int
    /// 1-based line number where the next record starts.
    public private(set) var line = 1

    /// Opens `path`; the delimiter is detected from the first block when not given.
    public init(path: String, delimiter: UInt8? = nil, blockSize: Int = 1 << 20) throws {
        self.path = path
        self.blockSize = Swift.max(blockSize, 16)
        fd = try FileIO.openRead(path)
        do {
            fileSize = try FileIO.size(fd, path: path)
        } catch {
            FileIO.close(fd)
            throw error
        }
        do {
            try refill()
            if buffer.starts(with: [0xEF, 0xBB, 0xBF]) { position = 3 }
            if let delimiter {
                self.delimiter = delimiter
            } else {
                let sample = buffer.withUnsafeBufferPointer { UnsafeBufferPointer(rebasing: $0[position...]) }
                self.delimiter = Sniffer.detectDelimiter(sample, atEOF: bufferOffset + Int64(buffer.count) >= fileSize)
            }
        } catch {
            FileIO.close(fd)
            throw error
        }
    }

    deinit { FileIO.close(fd) }

    private var atEOF: Bool { bufferOffset + Int64(buffer.count) >= fileSize }

    private func refill() throws {
        // keep the unconsumed tail, read another block after it
        if position > 0 {
            buffer.removeFirst(position)
            bufferOffset += Int64(position)
            position = 0
        }
        let want = Swift.max(blockSize, buffer.count)
        let old = buffer.count
        buffer.append(contentsOf: repeatElement(0, count: want))
        let got = try buffer.withUnsafeMutableBytes {
            try FileIO.readFully(fd, $0.baseAddress! + old, want, bufferOffset + Int64(old), path: path)
        }
        buffer.removeLast(want - got)
    }

    /// The next record's fields, or nil at the end of the file. Blank lines are skipped.
    public func next() throws -> [String]? {
        let scanner = RecordScanner(delimiter: delimiter)
        while true {
            let step = buffer.withUnsafeBufferPointer { scanner.next($0, from: position, atEOF: atEOF) }
            switch step {
            case .end: return nil
            case .needMore:
                let before = bufferOffset + Int64(buffer.count)
                try refill()
                if bufferOffset + Int64(buffer.count) == before && !atEOF {
                    throw DatasetError(.io, "unexpected end of data", path: path)
                }
            case .blank(let next):
                line += 1
                position = next
            case .malformed(let at, let message):
                let (l, c) = buffer.withUnsafeBufferPointer { Sniffer.lineAndColumn($0, from: position, to: at, startLine: line) }
                throw DatasetError(.malformedRow, message, path: path, line: l, column: c)
            case .record(let fields, let next):
                line += buffer[position..<next].reduce(0) { $0 + ($1 == Ascii.newline ? 1 : 0) }
                position = next
                return fields.map { String(decoding: $0, as: UTF8.self) }
            }
        }
    }
}

/// Delimiter, header and column-type detection from the first records of a file.
enum Sniffer {
    static let candidates: [UInt8] = [UInt8(ascii: ","), UInt8(ascii: ";"), UInt8(ascii: "\t"), UInt8(ascii: "|")]

    /// Chooses the candidate that splits the first records into the most consistent field count
    /// greater than one (ties: more fields, then the candidate order , ; tab |).
    static func detectDelimiter(_ b: UnsafeBufferPointer<UInt8>, atEOF: Bool) -> UInt8 {
        var best: (score: Double, fields: Int, delimiter: UInt8) = (0, 1, UInt8(ascii: ","))
        for d in candidates {
            let scanner = RecordScanner(delimiter: d)
            var counts: [Int: Int] = [:]
            var records = 0
            var i = 0
            scan: while records < 100 {
                switch scanner.next(b, from: i, atEOF: atEOF) {
                case .record(let f, let next):
                    counts[f.count, default: 0] += 1
                    records += 1
                    i = next
                case .blank(let next): i = next
                case .needMore, .end, .malformed: break scan
                }
            }
            guard records > 0, let mode = counts.max(by: { $0.value != $1.value ? $0.value < $1.value : $0.key < $1.key })
            else { continue }
            if mode.key < 2 { continue }
            let consistency = Double(mode.value) / Double(records)
            if consistency > best.score + 1e-9 || (abs(consistency - best.score) < 1e-9 && mode.key > best.fields) {
                best = (consistency, mode.key, d)
            }
        }
        return best.delimiter
    }

    /// Header votes per column: a column whose values (rows 2...) all parse as a type that the
    /// first row's value does not parse as says "header"; one whose first value parses like the
    /// rest says "no header". All-text columns decide by whether the first row's values occur
    /// again below. Ties and empty evidence mean a header (the common case).
    static func detectHeader(_ records: [[String]]) -> Bool {
        guard let first = records.first else { return false }
        let rest = records.dropFirst()
        if rest.isEmpty {
            // a lone record is a header unless every value is a number, date or boolean
            return !first.allSatisfy { v in
                let k = inferKind([v])
                return k != .empty && k < .categorical
            }
        }
        var header = 0
        var data = 0
        for c in 0..<first.count {
            let column = rest.compactMap { c < $0.count ? $0[c] : nil }
            let kind = inferKind(column)
            let value = first[c]
            if isMissingString(value) { continue }
            let firstKind = inferKind([value])
            switch kind {
            case .empty: continue
            case .categorical, .text:
                if firstKind == .categorical {
                    if column.contains(value) { data += 1 }
                } else {
                    data += 1
                }
            default:
                if ParseKind.join(kind, firstKind) == kind { data += 1 } else { header += 1 }
            }
        }
        if header > 0 { return true }
        if data > 0 {
            // all evidence says data: only text columns whose first value never repeats are unclear
            return false
        }
        return Set(first).count == first.count
    }

    static func isMissingString(_ s: String) -> Bool {
        var s = s
        return s.withUTF8 { u in
            guard let b = u.baseAddress else { return true }
            return FieldValue.isMissing(b, b + u.count)
        }
    }

    /// The kind of a column from sample values; text vs categorical by the rule in
    /// Note [Type inference].
    static func inferKind(_ values: [String]) -> ParseKind {
        var kind = ParseKind.empty
        var present = 0
        var words = 0
        var distinct = Set<String>()
        for v in values {
            var s = v
            let k: ParseKind = s.withUTF8 { u in
                guard let b = u.baseAddress, !FieldValue.isMissing(b, b + u.count) else { return .empty }
                return ParseKind.classify(b, b + u.count)
            }
            if k == .empty { continue }
            present += 1
            kind = ParseKind.join(kind, k)
            if kind >= .categorical {
                words += v.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).count
                distinct.insert(v)
            }
        }
        if kind == .categorical, present > 0 {
            let ratio = Double(distinct.count) / Double(present)
            let averageWords = Double(words) / Double(present)
            if (averageWords >= 3 && ratio > 0.01) || (present >= 1000 && ratio > 0.5) { return .text }
        }
        return kind
    }

    /// 1-based line and character column of byte `to`, counting from `from` at line `startLine`.
    static func lineAndColumn(_ b: UnsafeBufferPointer<UInt8>, from: Int, to: Int, startLine: Int) -> (Int, Int) {
        var line = startLine
        var lineStart = from
        var i = from
        while i < to && i < b.count {
            if b[i] == Ascii.newline {
                line += 1
                lineStart = i + 1
            }
            i += 1
        }
        var column = 1
        var j = lineStart
        while j < to && j < b.count {
            if b[j] & 0xC0 != 0x80 { column += 1 }
            j += 1
        }
        return (line, column)
    }
}

// Note [Type inference]
// ~~~~~~~~~~~~~~~~~~~~~
// Column types come from the first `sampleRows` records: each non-missing value is classified on
// its own (integer, float, boolean, date, datetime, anything else a string) and the classes are
// joined in the widening lattice of `ParseKind.join`: int → float → categorical,
// date → datetime → categorical, bool → categorical, categorical → text. A string column is text
// rather than categorical when its values average at least three words and more than 1% of them are
// distinct, or when it has at least 1000 values of which more than half are distinct (identifiers);
// otherwise categorical. Missing tokens (empty, NA, N/A, null, NaN, None, ?, any case) never vote.
// The full pass confirms the sample: a value that does not fit widens the column (see
// Note [Widening during ingest]).
