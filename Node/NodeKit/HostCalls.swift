#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The system calls the probe makes, each turning a failure into a `ProbeError` with `strerror`'s text
/// captured right after the call.
enum HostCall {
    /// The node's host name (`gethostname`).
    static func hostname() throws(ProbeError) -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else {
            throw ProbeError(.systemCall, file: "gethostname", errnoText())
        }
        buffer[buffer.count - 1] = 0
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// CPUs online now (`sysconf(_SC_NPROCESSORS_ONLN)`).
    static func onlineCPUs() throws(ProbeError) -> Int {
        let count = sysconf(Int32(_SC_NPROCESSORS_ONLN))
        guard count >= 1 else {
            throw ProbeError(.systemCall, file: "sysconf(_SC_NPROCESSORS_ONLN)", count < 0 ? errnoText() : "returned 0")
        }
        return count
    }

    /// Size and free space of the file system holding `path` (`statvfs`).
    static func fileSystemSpace(at path: String) throws(ProbeError) -> FileSystemSpace {
        var info = statvfs()
        guard statvfs(path, &info) == 0 else {
            throw ProbeError(.systemCall, file: path, "statvfs: \(errnoText())")
        }
        let blockSize = UInt64(info.f_frsize)
        return FileSystemSpace(totalBytes: UInt64(info.f_blocks).multipliedClamping(by: blockSize),
                               availableBytes: UInt64(info.f_bavail).multipliedClamping(by: blockSize))
    }

    private static func errnoText() -> String {
        let code = errno
        return "\(String(cString: strerror(code))) (errno \(code))"
    }
}

/// A file system's size and the space an unprivileged user may still fill (`f_bavail`, which leaves
/// out blocks reserved for root).
struct FileSystemSpace: Sendable, Hashable {
    var totalBytes: UInt64
    var availableBytes: UInt64
}

extension UInt64 {
    func multipliedClamping(by other: UInt64) -> UInt64 {
        let (product, overflow) = multipliedReportingOverflow(by: other)
        return overflow ? .max : product
    }
}
