import CZlib

/// zlib's raw-deflate inflater: the one place that calls zlib's inflate functions and turns their
/// return codes into `ArchiveError`s. ZIP stores bare deflate data (no zlib or gzip wrapper), hence
/// window bits -15.
///
/// Owns the `z_stream` and an input buffer, both at fixed heap addresses for the stream's lifetime:
/// zlib keeps a back pointer to the stream and refuses a stream that has moved, so it never lives in a
/// Swift variable passed `inout`.
///
/// Not Sendable: one entry's read creates, uses and drops it on one thread.
final class RawInflater {
    private let stream: UnsafeMutablePointer<z_stream>
    private let input: UnsafeMutableRawBufferPointer

    /// - Parameter inputCapacity: the most compressed bytes one `refill` hands over.
    init(inputCapacity: Int) throws {
        precondition(inputCapacity > 0 && inputCapacity <= Int(UInt32.max))
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        // `inflateInit2` is a macro over `inflateInit2_` (macros with arguments are not importable):
        // pass the header's version and the struct's size as the macro would.
        let rc = inflateInit2_(stream, -MAX_WBITS, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        guard rc == Z_OK else {
            let message = Self.message(rc, stream)
            stream.deinitialize(count: 1)
            stream.deallocate()
            throw ArchiveError(code: .io, message: "cannot initialise zlib's inflater: \(message)")
        }
        input = .allocate(byteCount: inputCapacity, alignment: 1)
    }

    deinit {
        inflateEnd(stream)
        stream.deinitialize(count: 1)
        stream.deallocate()
        input.deallocate()
    }

    /// Whether everything handed over by `refill` has been consumed.
    var needsInput: Bool { stream.pointee.avail_in == 0 }

    /// Hands zlib the next compressed bytes: `fill` writes into the input buffer and returns how many
    /// bytes it wrote (at most the buffer's size, more than 0). Only call when `needsInput`.
    func refill(_ fill: (UnsafeMutableRawBufferPointer) throws -> Int) rethrows {
        precondition(needsInput)
        let n = try fill(input)
        precondition(n > 0 && n <= input.count)
        stream.pointee.next_in = input.baseAddress!.assumingMemoryBound(to: Bytef.self)
        stream.pointee.avail_in = uInt(n)
    }

    /// Inflates pending input into `output`. Returns how many bytes were written and whether the deflate
    /// stream has ended; throws `.corrupt` with zlib's message on invalid deflate data.
    func inflate(into output: UnsafeMutableRawBufferPointer, entry: String) throws -> (produced: Int, ended: Bool) {
        precondition(output.count > 0 && output.count <= Int(UInt32.max))
        stream.pointee.next_out = output.baseAddress!.assumingMemoryBound(to: Bytef.self)
        stream.pointee.avail_out = uInt(output.count)
        let rc = CZlib.inflate(stream, Z_NO_FLUSH)
        let produced = output.count - Int(stream.pointee.avail_out)
        switch rc {
        case Z_OK:
            return (produced, false)
        case Z_STREAM_END:
            return (produced, true)
        case Z_BUF_ERROR:
            // No progress was possible: all input is consumed and the stream has not ended (the caller
            // refills, or fails when the entry's compressed bytes are used up).
            return (produced, false)
        case Z_MEM_ERROR:
            throw ArchiveError(code: .io, entry: entry, message: "zlib ran out of memory while inflating")
        default:
            // Z_DATA_ERROR (invalid deflate data), Z_NEED_DICT (impossible in raw deflate), Z_STREAM_ERROR.
            throw ArchiveError(code: .corrupt, entry: entry,
                               message: "deflate data is corrupt (\(Self.message(rc, stream)))")
        }
    }

    private static func message(_ rc: Int32, _ stream: UnsafeMutablePointer<z_stream>) -> String {
        if let msg = stream.pointee.msg { return String(cString: msg) }
        return "zlib error \(rc)"
    }
}

/// CRC-32 (the ZIP/zlib polynomial) through zlib's `crc32`.
enum CRC32 {
    /// `crc` updated with `bytes` (start from 0).
    static func update(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        guard var p = bytes.baseAddress?.assumingMemoryBound(to: Bytef.self) else { return crc }
        var value = uLong(crc)
        var left = bytes.count
        while left > 0 {
            let n = min(left, Int(UInt32.max))  // zlib's length is a 32-bit uInt
            value = CZlib.crc32(value, p, uInt(n))
            p += n
            left -= n
        }
        return UInt32(truncatingIfNeeded: value)
    }
}
