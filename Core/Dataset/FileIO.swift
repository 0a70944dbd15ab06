#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The C library's functions whose names `FileIO` reuses, reached without naming the module.
private enum LibC {
    #if canImport(Glibc)
    static func pread(_ fd: Int32, _ b: UnsafeMutableRawPointer, _ n: Int, _ o: off_t) -> Int { Glibc.pread(fd, b, n, o) }
    static func pwrite(_ fd: Int32, _ b: UnsafeRawPointer, _ n: Int, _ o: off_t) -> Int { Glibc.pwrite(fd, b, n, o) }
    static func write(_ fd: Int32, _ b: UnsafeRawPointer, _ n: Int) -> Int { Glibc.write(fd, b, n) }
    static func close(_ fd: Int32) -> Int32 { Glibc.close(fd) }
    static func unlink(_ p: String) -> Int32 { Glibc.unlink(p) }
    static func rename(_ a: String, _ b: String) -> Int32 { Glibc.rename(a, b) }
    static func rmdir(_ p: String) -> Int32 { Glibc.rmdir(p) }
    #else
    static func pread(_ fd: Int32, _ b: UnsafeMutableRawPointer, _ n: Int, _ o: off_t) -> Int { Darwin.pread(fd, b, n, o) }
    static func pwrite(_ fd: Int32, _ b: UnsafeRawPointer, _ n: Int, _ o: off_t) -> Int { Darwin.pwrite(fd, b, n, o) }
    static func write(_ fd: Int32, _ b: UnsafeRawPointer, _ n: Int) -> Int { Darwin.write(fd, b, n) }
    static func close(_ fd: Int32) -> Int32 { Darwin.close(fd) }
    static func unlink(_ p: String) -> Int32 { Darwin.unlink(p) }
    static func rename(_ a: String, _ b: String) -> Int32 { Darwin.rename(a, b) }
    static func rmdir(_ p: String) -> Int32 { Darwin.rmdir(p) }
    #endif
}

/// The POSIX calls of this module, in one place: each checks its return code and turns it into a
/// `DatasetError` carrying `strerror(errno)` captured right after the call.
enum FileIO {
    static func lastError() -> String { String(cString: strerror(errno)) }

    static func openRead(_ path: String) throws -> Int32 {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw DatasetError(.io, "cannot open for reading: \(lastError())", path: path) }
        return fd
    }

    static func openWrite(_ path: String) throws -> Int32 {
        let fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        if fd < 0 { throw DatasetError(.io, "cannot create: \(lastError())", path: path) }
        return fd
    }

    static func openAppend(_ path: String) throws -> Int32 {
        let fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)
        if fd < 0 { throw DatasetError(.io, "cannot open for appending: \(lastError())", path: path) }
        return fd
    }

    static func size(_ fd: Int32, path: String) throws -> Int64 {
        var st = stat()
        if fstat(fd, &st) != 0 { throw DatasetError(.io, "cannot stat: \(lastError())", path: path) }
        return Int64(st.st_size)
    }

    static func pread(_ fd: Int32, _ buf: UnsafeMutableRawPointer, _ count: Int, _ offset: Int64) -> Int {
        while true {
            let n = LibC.pread(fd, buf, count, off_t(offset))
            if n < 0 && errno == EINTR { continue }
            return n
        }
    }

    /// Reads exactly `count` bytes (fewer only at the end of the file).
    static func readFully(_ fd: Int32, _ buf: UnsafeMutableRawPointer, _ count: Int, _ offset: Int64, path: String) throws -> Int {
        var done = 0
        while done < count {
            let n = pread(fd, buf + done, count - done, offset + Int64(done))
            if n < 0 { throw DatasetError(.io, "read failed: \(lastError())", path: path) }
            if n == 0 { break }
            done += n
        }
        return done
    }

    static func writeFully(_ fd: Int32, _ buf: UnsafeRawPointer, _ count: Int, at offset: Int64, path: String) throws {
        var done = 0
        while done < count {
            let n = LibC.pwrite(fd, buf + done, count - done, off_t(offset + Int64(done)))
            if n < 0 {
                if errno == EINTR { continue }
                throw DatasetError(.io, "write failed: \(lastError())", path: path)
            }
            done += n
        }
    }

    static func append(_ fd: Int32, _ buf: UnsafeRawPointer, _ count: Int, path: String) throws {
        var done = 0
        while done < count {
            let n = LibC.write(fd, buf + done, count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw DatasetError(.io, "write failed: \(lastError())", path: path)
            }
            done += n
        }
    }

    static func truncate(_ fd: Int32, _ length: Int64, path: String) throws {
        if ftruncate(fd, off_t(length)) != 0 { throw DatasetError(.io, "cannot resize: \(lastError())", path: path) }
    }

    static func seekToStart(_ fd: Int32) { lseek(fd, 0, SEEK_SET) }

    static func close(_ fd: Int32) { _ = LibC.close(fd) }

    static func unlink(_ path: String) { _ = LibC.unlink(path) }

    static func rename(_ from: String, _ to: String) throws {
        if LibC.rename(from, to) != 0 { throw DatasetError(.io, "cannot rename to \(to): \(lastError())", path: from) }
    }

    static func rmdir(_ path: String) { _ = LibC.rmdir(path) }

    static func makeTemporaryDirectory(near path: String) throws -> String {
        let dir = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
        var template = ((dir.isEmpty ? "/" : dir) + "/.nebula-ingest-XXXXXX").utf8CString
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        if made == nil { throw DatasetError(.io, "cannot create a temporary directory: \(lastError())", path: dir) }
        return template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    /// Removes a directory of plain files (our spill directory).
    static func removeTree(_ path: String) {
        guard let dir = opendir(path) else { return }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            if name != "." && name != ".." { unlink("\(path)/\(name)") }
        }
        closedir(dir)
        rmdir(path)
    }

    static func mapReadOnly(_ fd: Int32, _ length: Int, path: String) throws -> UnsafeRawPointer {
        let p = mmap(nil, length, PROT_READ, MAP_SHARED, fd, 0)
        if p == MAP_FAILED || p == nil { throw DatasetError(.io, "cannot map: \(lastError())", path: path) }
        return UnsafeRawPointer(p!)
    }

    static func unmap(_ p: UnsafeRawPointer, _ length: Int) { munmap(UnsafeMutableRawPointer(mutating: p), length) }

    /// Maps `length` bytes at `offset` (a multiple of the page size) shared, read-only or writable.
    static func mapWindow(_ fd: Int32, offset: Int64, length: Int, writable: Bool, path: String) throws
        -> UnsafeMutableRawPointer
    {
        let p = mmap(nil, length, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, off_t(offset))
        if p == MAP_FAILED || p == nil { throw DatasetError(.io, "cannot map: \(lastError())", path: path) }
        _ = madvise(p, length, MADV_SEQUENTIAL)
        return p!
    }

    /// The file system's block size for `fd` (at least the page size).
    static func blockSize(_ fd: Int32) -> Int64 {
        var st = stat()
        let page = Int64(sysconf(Int32(_SC_PAGESIZE)))
        guard fstat(fd, &st) == 0 else { return max(page, 4096) }
        let b = Int64(st.st_blksize)
        return b > 0 && b % page == 0 ? b : max(page, 4096)
    }

    /// Removes [offset, offset + length) from the file, shifting what follows down
    /// (fallocate FALLOC_FL_COLLAPSE_RANGE; ext4 and XFS, block-aligned ranges not reaching the end
    /// of the file). False where the file system or the C library cannot do it. `fallocate` is
    /// looked up at run time: the Glibc module does not export it.
    static func collapseRange(_ fd: Int32, offset: Int64, length: Int64) -> Bool {
        #if os(Linux)
        typealias Fallocate = @convention(c) (Int32, Int32, Int64, Int64) -> Int32
        guard let symbol = dlsym(nil, "fallocate") else { return false }
        let fallocate = unsafeBitCast(symbol, to: Fallocate.self)
        let collapseRange: Int32 = 0x08  // FALLOC_FL_COLLAPSE_RANGE, linux/falloc.h
        return fallocate(fd, collapseRange, offset, length) == 0
        #else
        return false
        #endif
    }

    /// Peak resident set size of this process in bytes (VmHWM), nil where /proc is missing.
    static func peakResidentBytes() -> Int? { procStatus("VmHWM:") }
    static func residentBytes() -> Int? { procStatus("VmRSS:") }

    private static func procStatus(_ key: String) -> Int? {
        let fd = open("/proc/self/status", O_RDONLY)
        if fd < 0 { return nil }
        defer { _ = LibC.close(fd) }
        var bytes = [UInt8](repeating: 0, count: 8192)
        let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress!, 8192) }
        guard n > 0 else { return nil }
        let text = String(decoding: bytes[0..<n], as: UTF8.self)
        for line in text.split(separator: "\n") where line.hasPrefix(key) {
            let digits = line.dropFirst(key.count).filter { $0.isNumber }
            return Int(digits).map { $0 * 1024 }
        }
        return nil
    }
}
