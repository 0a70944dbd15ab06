import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One entry of a ZIP archive's central directory.
public struct ZIPEntry: Sendable, Hashable {
    public enum Kind: Sendable, Hashable {
        case file
        case directory
        case symlink
        /// A device, FIFO or socket (Unix mode bits given).
        case special(mode: UInt32)
    }

    /// The path as stored (UTF-8, or code page 437 when it is not UTF-8), not yet validated.
    public let path: String
    public let kind: Kind
    /// 0 stored, 8 deflate; others are not supported for reading.
    public let compressionMethod: UInt16
    public let compressedSize: UInt64
    public let uncompressedSize: UInt64
    public let crc32: UInt32
    public let isEncrypted: Bool
    /// Position in the central directory.
    public let index: Int
    let localHeaderOffset: UInt64
    let dataOffset: UInt64
}

/// A ZIP archive opened for reading.
///
/// Note [Own ZIP structure parsing]: the central directory, ZIP64 records and local headers are parsed
/// here, strictly (a damaged record throws rather than ending the entry list early); zlib does the
/// inflating and the CRC-32 (`RawInflater`, `CRC32`). Every entry's data is checked to lie before the
/// central directory and not to overlap another entry's (overlapping entries are how the densest zip
/// bombs work), and the inflater only ever sees the entry's own compressed bytes.
///
/// Thread-safety: immutable after `init`; reads use `pread`, which has no shared file offset, so
/// entries may be read from several threads at once.
public final class ZIPArchive: Sendable {
    public let path: String
    /// Entries in central-directory order.
    public let entries: [ZIPEntry]
    private let fd: Int32
    private let fileSize: UInt64

    /// Opens and validates the archive's structure.
    /// - Parameter maxEntries: more entries than this throws `.tooManyEntries` before the central
    ///   directory is read.
    public init(path: String, maxEntries: Int = 1_000_000) throws {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let e = errno
            throw ArchiveError(code: .unreadable, message: "cannot open \(path): \(String(cString: strerror(e)))")
        }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw ArchiveError(code: .unreadable, message: "\(path) is not a regular file")
        }
        self.fd = fd
        fileSize = UInt64(info.st_size)
        do {
            entries = try ZIPStructure.readEntries(fd: fd, fileSize: fileSize, maxEntries: maxEntries, path: path)
        } catch {
            close(fd)
            throw error
        }
    }

    deinit { close(fd) }

    /// Streams the entry's uncompressed content to `consume` in chunks, then checks the size and the
    /// CRC-32 against the central directory. Output beyond the declared size throws before it is
    /// passed on (a forged size). `consume` also gets the compressed bytes read so far, for ratio checks.
    public func read(_ entry: ZIPEntry, chunkSize: Int = 32 << 10,
                     _ consume: (_ chunk: Data, _ compressedRead: UInt64) throws -> Void) throws {
        precondition(chunkSize > 0, "chunkSize must be positive")
        guard !entry.isEncrypted else {
            throw ArchiveError(code: .unsupported, entry: entry.path, message: "encrypted entries are not supported")
        }
        var produced: UInt64 = 0
        var compressedRead: UInt64 = 0
        func forward(_ chunk: Data) throws {
            produced += UInt64(chunk.count)
            guard produced <= entry.uncompressedSize else {
                throw ArchiveError(code: .corrupt, entry: entry.path, message: """
                    inflates to more than the \(entry.uncompressedSize) bytes its header declares \
                    (a forged size, as in zip bombs)
                    """)
            }
            if !chunk.isEmpty { try consume(chunk, compressedRead) }
        }
        let crc: UInt32
        switch entry.compressionMethod {
        case 0:
            guard entry.compressedSize == entry.uncompressedSize else {
                throw ArchiveError(code: .corrupt, entry: entry.path, message: "stored entry with different compressed and uncompressed sizes")
            }
            var checksum: UInt32 = 0
            while compressedRead < entry.compressedSize {
                let n = Int(min(UInt64(chunkSize), entry.compressedSize - compressedRead))
                let chunk = try readData(at: entry.dataOffset + compressedRead, count: n, entry: entry)
                compressedRead += UInt64(n)
                checksum = chunk.withUnsafeBytes { CRC32.update(checksum, $0) }
                try forward(chunk)
            }
            crc = checksum
        case 8:
            // Note [Bounded inflate input]: zlib is handed only the entry's own compressed bytes, so a
            // stream that has not ended when they are used up throws instead of reading the following
            // entries or waiting at end of file.
            let inflater = try RawInflater(inputCapacity: chunkSize)
            let output = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkSize, alignment: 1)
            defer { output.deallocate() }
            var checksum: UInt32 = 0
            var ended = false
            while !ended {
                if inflater.needsInput {
                    guard compressedRead < entry.compressedSize else {
                        throw ArchiveError(code: .corrupt, entry: entry.path,
                                           message: "deflate data does not end within the entry's \(entry.compressedSize) compressed bytes")
                    }
                    try inflater.refill { buffer in
                        let n = Int(min(UInt64(buffer.count), entry.compressedSize - compressedRead))
                        try readData(at: entry.dataOffset + compressedRead, into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<n]),
                                     entry: entry)
                        compressedRead += UInt64(n)
                        return n
                    }
                }
                let (n, streamEnded) = try inflater.inflate(into: output, entry: entry.path)
                ended = streamEnded
                guard n > 0 else { continue }
                let chunk = UnsafeRawBufferPointer(rebasing: output[..<n])
                checksum = CRC32.update(checksum, chunk)
                try forward(Data(chunk))
            }
            crc = checksum
        default:
            throw ArchiveError(code: .unsupported, entry: entry.path,
                               message: "compression method \(entry.compressionMethod) (\(Self.methodName(entry.compressionMethod))) is not supported; only stored and deflate are")
        }
        guard produced == entry.uncompressedSize else {
            throw ArchiveError(code: .corrupt, entry: entry.path,
                               message: "inflates to \(produced) bytes but its header declares \(entry.uncompressedSize)")
        }
        guard crc == entry.crc32 else {
            throw ArchiveError(code: .corrupt, entry: entry.path,
                               message: String(format: "CRC-32 mismatch (data %08x, header %08x)", crc, entry.crc32))
        }
    }

    /// At most the first `maxBytes` of the entry's content (no CRC check: the rest is not read).
    public func readPrefix(_ entry: ZIPEntry, maxBytes: Int) throws -> Data {
        struct Enough: Error {}
        var prefix = Data()
        guard maxBytes > 0, entry.uncompressedSize > 0 else { return prefix }
        do {
            try read(entry, chunkSize: max(4096, min(maxBytes, 32 << 10))) { chunk, _ in
                prefix.append(chunk.prefix(maxBytes - prefix.count))
                if prefix.count >= maxBytes { throw Enough() }
            }
        } catch is Enough {}
        return prefix
    }

    /// The whole content, in memory; throws `.entryTooLarge` beyond `limit` bytes.
    public func readAll(_ entry: ZIPEntry, limit: Int) throws -> Data {
        guard entry.uncompressedSize <= UInt64(limit) else {
            throw ArchiveError(code: .entryTooLarge, entry: entry.path, message: "larger than \(limit) bytes")
        }
        var data = Data(capacity: Int(entry.uncompressedSize))
        try read(entry) { chunk, _ in data.append(chunk) }
        return data
    }

    private func readData(at offset: UInt64, count: Int, entry: ZIPEntry) throws -> Data {
        do {
            return Data(try ZIPStructure.readBytes(fd: fd, at: offset, count: count))
        } catch var error as ArchiveError {
            error.entry = entry.path
            throw error
        }
    }

    private func readData(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer, entry: ZIPEntry) throws {
        do {
            try ZIPStructure.readBytes(fd: fd, at: offset, into: buffer)
        } catch var error as ArchiveError {
            error.entry = entry.path
            throw error
        }
    }

    static func methodName(_ method: UInt16) -> String {
        switch method {
        case 1...7: return "legacy"
        case 9: return "deflate64"
        case 12: return "bzip2"
        case 14: return "LZMA"
        case 93: return "Zstandard"
        case 95: return "XZ"
        case 99: return "AES encryption"
        default: return "unknown"
        }
    }
}

/// Parsing of the end-of-central-directory records, the central directory and the local headers.
enum ZIPStructure {
    static let maxCentralDirectorySize: UInt64 = 1 << 30

    static func readBytes(fd: Int32, at offset: UInt64, count: Int) throws -> [UInt8] {
        guard count > 0 else { return [] }
        var buffer = [UInt8](repeating: 0, count: count)
        try buffer.withUnsafeMutableBytes { try readBytes(fd: fd, at: offset, into: $0) }
        return buffer
    }

    /// Fills `buffer` from `offset` (`pread`, no shared file offset); end of file first is `.corrupt`.
    static func readBytes(fd: Int32, at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        let count = buffer.count
        guard count > 0 else { return }
        guard offset <= UInt64(Int64.max) - UInt64(count) else {
            throw ArchiveError(code: .corrupt, message: "offset \(offset) is out of range")
        }
        var done = 0
        while done < count {
            let n = pread(fd, buffer.baseAddress! + done, count - done, off_t(offset) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                let e = errno
                throw ArchiveError(code: .unreadable, message: "read failed: \(String(cString: strerror(e)))")
            }
            if n == 0 { throw ArchiveError(code: .corrupt, message: "unexpected end of file at offset \(offset + UInt64(done))") }
            done += n
        }
    }

    static func readEntries(fd: Int32, fileSize: UInt64, maxEntries: Int, path: String) throws -> [ZIPEntry] {
        let notZIP = ArchiveError(code: .corrupt, message: "\(path) is not a ZIP archive (no end of central directory record)")
        guard fileSize >= 22 else { throw notZIP }

        // End of central directory: the last 22 bytes plus a comment of up to 65535 bytes.
        let tailLength = Int(min(fileSize, 22 + 0xFFFF))
        let tailStart = fileSize - UInt64(tailLength)
        let tail = try readBytes(fd: fd, at: tailStart, count: tailLength)
        var found: Int?
        var i = tail.count - 22
        while i >= 0 {
            if tail[i] == 0x50, tail[i + 1] == 0x4B, tail[i + 2] == 0x05, tail[i + 3] == 0x06 {
                let commentLength = Int(tail[i + 20]) | Int(tail[i + 21]) << 8
                if i + 22 + commentLength <= tail.count { found = i; break }
            }
            i -= 1
        }
        guard let eocdIndex = found else { throw notZIP }
        let eocdPosition = tailStart + UInt64(eocdIndex)
        var eocd = LittleEndianReader(tail, at: eocdIndex + 4, what: "end of central directory")
        let disk = try eocd.u16(), cdDisk = try eocd.u16(), entriesOnDisk = try eocd.u16(), totalEntries16 = try eocd.u16()
        let cdSize32 = try eocd.u32(), cdOffset32 = try eocd.u32()

        var totalEntries = UInt64(totalEntries16)
        var cdSize = UInt64(cdSize32)
        var cdOffset = UInt64(cdOffset32)
        var cdLimit = eocdPosition
        var multiDisk: Bool = disk != 0 || cdDisk != 0 || entriesOnDisk != totalEntries16

        // ZIP64: a locator 20 bytes before the end record points at the ZIP64 end record.
        var zip64 = false
        if eocdPosition >= 20 {
            let locator = try readBytes(fd: fd, at: eocdPosition - 20, count: 20)
            if locator[0] == 0x50, locator[1] == 0x4B, locator[2] == 0x06, locator[3] == 0x07 {
                var r = LittleEndianReader(locator, at: 4, what: "ZIP64 locator")
                let z64Disk = try r.u32(), z64Offset = try r.u64(), disks = try r.u32()
                guard eocdPosition >= 76, z64Offset <= eocdPosition - 76 else {
                    throw ArchiveError(code: .corrupt, message: "ZIP64 end record offset \(z64Offset) is out of range")
                }
                let record = try readBytes(fd: fd, at: z64Offset, count: 56)
                var z = LittleEndianReader(record, at: 0, what: "ZIP64 end of central directory")
                guard try z.u32() == 0x06064B50 else {
                    throw ArchiveError(code: .corrupt, message: "bad ZIP64 end of central directory signature")
                }
                try z.skip(12)
                let d = try z.u32(), cd = try z.u32(), onDisk = try z.u64()
                totalEntries = try z.u64()
                cdSize = try z.u64()
                cdOffset = try z.u64()
                cdLimit = z64Offset
                // The 16-bit fields of the classic record may be saturated; the ZIP64 ones count.
                multiDisk = z64Disk != 0 || disks > 1 || d != 0 || cd != 0 || onDisk != totalEntries
                zip64 = true
            }
        }
        if !zip64, cdSize32 == 0xFFFF_FFFF || cdOffset32 == 0xFFFF_FFFF {
            throw ArchiveError(code: .corrupt, message: "the ZIP64 end of central directory record is missing")
        }
        guard !multiDisk else {
            throw ArchiveError(code: .unsupported, message: "multi-disk (split) archives are not supported")
        }
        guard totalEntries <= UInt64(maxEntries) else {
            throw ArchiveError(code: .tooManyEntries, message: "the archive has \(totalEntries) entries; the limit is \(maxEntries)")
        }
        guard cdOffset <= cdLimit, cdSize <= cdLimit - cdOffset else {
            throw ArchiveError(code: .corrupt, message: "the central directory (offset \(cdOffset), \(cdSize) bytes) lies outside the file")
        }
        guard cdSize >= totalEntries * 46 else {
            throw ArchiveError(code: .corrupt, message: "the central directory is too small for \(totalEntries) entries")
        }
        guard cdSize <= maxCentralDirectorySize else {
            throw ArchiveError(code: .unsupported, message: "central directory larger than \(maxCentralDirectorySize) bytes")
        }

        let directory = try readBytes(fd: fd, at: cdOffset, count: Int(cdSize))
        var r = LittleEndianReader(directory, at: 0, what: "central directory")
        var entries: [ZIPEntry] = []
        entries.reserveCapacity(Int(totalEntries))
        for index in 0..<Int(totalEntries) {
            guard try r.u32() == 0x02014B50 else {
                throw ArchiveError(code: .corrupt, message: "central directory record \(index) has a bad signature")
            }
            let versionMadeBy = try r.u16()
            try r.skip(2)
            let flags = try r.u16(), method = try r.u16()
            try r.skip(4)
            let crc = try r.u32(), compressed32 = try r.u32(), uncompressed32 = try r.u32()
            let nameLength = Int(try r.u16()), extraLength = Int(try r.u16()), commentLength = Int(try r.u16())
            let diskStart = try r.u16()
            try r.skip(2)
            let external = try r.u32(), offset32 = try r.u32()
            let nameBytes = try r.bytes(nameLength)
            let extra = try r.bytes(extraLength)
            try r.skip(commentLength)

            let path = decodeName(nameBytes, utf8Flag: flags & 0x0800 != 0)
            var compressed = UInt64(compressed32), uncompressed = UInt64(uncompressed32), offset = UInt64(offset32)
            if uncompressed32 == 0xFFFF_FFFF || compressed32 == 0xFFFF_FFFF || offset32 == 0xFFFF_FFFF || diskStart == 0xFFFF {
                var e = LittleEndianReader(extra, at: 0, what: "extra field of '\(path)'")
                var resolved = false
                while e.remaining >= 4 {
                    let id = try e.u16(), size = Int(try e.u16())
                    var field = LittleEndianReader(try e.bytes(size), at: 0, what: "ZIP64 extra field of '\(path)'")
                    guard id == 0x0001 else { continue }
                    if uncompressed32 == 0xFFFF_FFFF { uncompressed = try field.u64() }
                    if compressed32 == 0xFFFF_FFFF { compressed = try field.u64() }
                    if offset32 == 0xFFFF_FFFF { offset = try field.u64() }
                    resolved = true
                }
                if !resolved && (uncompressed32 == 0xFFFF_FFFF || compressed32 == 0xFFFF_FFFF || offset32 == 0xFFFF_FFFF) {
                    throw ArchiveError(code: .corrupt, entry: path, message: "ZIP64 sizes without a ZIP64 extra field")
                }
            }

            // Local header: signature, the same name, and the data that follows it inside the file.
            guard offset <= cdOffset, cdOffset - offset >= 30 else {
                throw ArchiveError(code: .corrupt, entry: path, message: "local header offset \(offset) is out of range")
            }
            let local = try readBytes(fd: fd, at: offset, count: 30)
            var l = LittleEndianReader(local, at: 0, what: "local header of '\(path)'")
            guard try l.u32() == 0x04034B50 else {
                throw ArchiveError(code: .corrupt, entry: path, message: "bad local header signature")
            }
            try l.skip(22)
            let localNameLength = Int(try l.u16()), localExtraLength = Int(try l.u16())
            let localName = try readBytes(fd: fd, at: offset + 30, count: localNameLength)
            guard localName.elementsEqual(nameBytes) else {
                throw ArchiveError(code: .corrupt, entry: path, message: "the local header names a different file")
            }
            let dataOffset = offset + 30 + UInt64(localNameLength) + UInt64(localExtraLength)
            guard dataOffset <= cdOffset, compressed <= cdOffset - dataOffset else {
                throw ArchiveError(code: .corrupt, entry: path, message: "the entry's data runs past the central directory")
            }

            entries.append(ZIPEntry(path: path, kind: kind(versionMadeBy: versionMadeBy, external: external, path: path),
                                    compressionMethod: method, compressedSize: compressed, uncompressedSize: uncompressed,
                                    crc32: crc, isEncrypted: flags & 0x0001 != 0, index: index,
                                    localHeaderOffset: offset, dataOffset: dataOffset))
        }

        // No two entries may share bytes (overlapping entries multiply a small kernel many times).
        let byOffset = entries.sorted { $0.localHeaderOffset < $1.localHeaderOffset }
        for (a, b) in zip(byOffset, byOffset.dropFirst()) where a.dataOffset + a.compressedSize > b.localHeaderOffset {
            throw ArchiveError(code: .corrupt, entry: b.path, message: "overlaps the data of entry '\(a.path)' (a zip-bomb construction)")
        }
        return entries
    }

    static func kind(versionMadeBy: UInt16, external: UInt32, path: String) -> ZIPEntry.Kind {
        let host = versionMadeBy >> 8
        let mode = external >> 16
        if host == 3 || host == 19, mode != 0 {  // Unix, macOS: st_mode in the high 16 bits
            switch mode & 0o170000 {
            case 0o120000: return .symlink
            case 0o040000: return .directory
            case 0o100000: return path.hasSuffix("/") ? .directory : .file
            case 0: break
            default: return .special(mode: mode)
            }
        }
        if path.hasSuffix("/") || path.hasSuffix("\\") { return .directory }
        if host == 0 || host == 11 || host == 14, external & 0x10 != 0 { return .directory }  // MS-DOS attribute
        return .file
    }

    /// UTF-8 when flagged or valid; otherwise IBM code page 437, the ZIP default.
    static func decodeName(_ bytes: ArraySlice<UInt8>, utf8Flag: Bool) -> String {
        if let utf8 = String(validating: bytes, as: UTF8.self) { return utf8 }
        if utf8Flag { return String(decoding: bytes, as: UTF8.self) }
        var scalars = String.UnicodeScalarView()
        let high = Array(cp437High.unicodeScalars)
        for byte in bytes { scalars.append(byte < 0x80 ? Unicode.Scalar(byte) : high[Int(byte) - 0x80]) }
        return String(scalars)
    }

    private static let cp437High =
        "ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜ¢£¥₧ƒáíóúñÑªº¿⌐¬½¼¡«»░▒▓│┤╡╢╖╕╣║╗╝╜╛┐└┴┬├─┼╞╟╚╔╩╦╠═╬╧╨╤╥╙╘╒╓╫╪┘┌█▄▌▐▀αßΓπΣσµτΦΘΩδ∞φε∩≡±≥≤⌠⌡÷≈°∙·√ⁿ²■\u{00A0}"
}

/// Bounds-checked little-endian field reader.
struct LittleEndianReader {
    private let bytes: ArraySlice<UInt8>
    private var position: Int
    private let what: String

    init(_ bytes: [UInt8], at position: Int, what: String) {
        self.init(bytes[...], at: position, what: what)
    }

    init(_ bytes: ArraySlice<UInt8>, at position: Int, what: String) {
        self.bytes = bytes
        self.position = bytes.startIndex + position
        self.what = what
    }

    var remaining: Int { bytes.endIndex - position }

    private mutating func take(_ n: Int) throws -> ArraySlice<UInt8> {
        guard n >= 0, n <= remaining else { throw ArchiveError(code: .corrupt, message: "truncated \(what)") }
        defer { position += n }
        return bytes[position..<position + n]
    }

    mutating func skip(_ n: Int) throws { _ = try take(n) }
    mutating func bytes(_ n: Int) throws -> ArraySlice<UInt8> { try take(n) }

    mutating func u16() throws -> UInt16 {
        let b = try take(2)
        return UInt16(b[b.startIndex]) | UInt16(b[b.startIndex + 1]) << 8
    }

    mutating func u32() throws -> UInt32 {
        try take(4).reversed().reduce(0) { $0 << 8 | UInt32($1) }
    }

    mutating func u64() throws -> UInt64 {
        try take(8).reversed().reduce(0) { $0 << 8 | UInt64($1) }
    }
}
