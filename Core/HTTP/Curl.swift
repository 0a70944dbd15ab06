import CCurl
import CCurlShims

// The one file of libcurl call wrappers: every `curl_*` call the module makes goes through here, and
// this is the single place that checks return codes and captures libcurl's error text.

/// `curl_global_init` must run exactly once per process, before any other libcurl call and before
/// threads use libcurl. A `static let` is initialised once, thread-safely (swift_once).
enum CurlRuntime {
    private static let initResult: CURLcode = curl_global_init(Int(CURL_GLOBAL_ALL))

    static func ensureInitialised() throws {
        let code = initResult
        guard code == CURLE_OK else {
            throw HTTPError(code: .internal, message: "curl_global_init failed: \(Curl.describe(code))", curlCode: Int(code.rawValue))
        }
    }

    /// e.g. "libcurl/7.88.1 OpenSSL/3.0.15 zlib/1.2.13 ...".
    /// Built once: `curl_version` fills a static buffer (not safe to call from two threads at once).
    static let versionString: String = {
        _ = initResult
        return String(cString: curl_version())
    }()
}

/// `CURLAUTH_BASIC` is `(((unsigned long)1)<<0)` in curl.h, a macro with a cast that Swift does not import.
let curlAuthBasic = 1

enum Curl {
    static func describe(_ code: CURLcode) -> String { String(cString: curl_easy_strerror(code)) }

    @inline(__always)
    private static func check(_ code: CURLcode, _ what: @autoclosure () -> String) throws {
        guard code == CURLE_OK else {
            throw HTTPError(code: .internal, message: "curl_easy_setopt(\(what())) failed: \(describe(code))",
                            curlCode: Int(code.rawValue))
        }
    }

    static func set(_ h: UnsafeMutableRawPointer, _ option: CURLoption, _ value: Int) throws {
        try check(nebula_curl_setopt_long(h, option, value), "option \(option.rawValue)")
    }

    static func set(_ h: UnsafeMutableRawPointer, _ option: CURLoption, _ value: Bool) throws {
        try set(h, option, value ? 1 : 0)
    }

    /// libcurl copies string arguments (except CURLOPT_POSTFIELDS, which is never used here).
    static func set(_ h: UnsafeMutableRawPointer, _ option: CURLoption, _ value: String) throws {
        try check(value.withCString { nebula_curl_setopt_string(h, option, $0) }, "option \(option.rawValue)")
    }

    static func set(_ h: UnsafeMutableRawPointer, _ option: CURLoption, offset value: Int64) throws {
        try check(nebula_curl_setopt_off_t(h, option, curl_off_t(value)), "option \(option.rawValue)")
    }

    static func set(_ h: UnsafeMutableRawPointer, _ option: CURLoption, pointer value: UnsafeMutableRawPointer?) throws {
        try check(nebula_curl_setopt_pointer(h, option, value), "option \(option.rawValue)")
    }

    static func set(_ h: UnsafeMutableRawPointer, _ option: CURLoption, list: OpaquePointer?) throws {
        try check(nebula_curl_setopt_slist(h, option, UnsafeMutablePointer(list)), "option \(option.rawValue)")
    }

    static func set(_ h: UnsafeMutableRawPointer, _ option: CURLoption, callback: nebula_curl_write_cb) throws {
        try check(nebula_curl_setopt_write_callback(h, option, callback), "option \(option.rawValue)")
    }

    /// Note [Progress callback through the pointer setter]: the shims have no typed setter for
    /// CURLOPT_XFERINFOFUNCTION. libcurl reads that argument with `va_arg(..., curl_xferinfo_callback)`;
    /// on every ABI Swift supports (SysV x86-64, AAPCS64, Win64) a C function pointer and a `void *` are
    /// passed identically in varargs, so handing the function's address to the `void *` setter is what
    /// the C call `curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, fn)` does. A typed shim would be cleaner.
    static func setProgressCallback(_ h: UnsafeMutableRawPointer, _ callback: CurlProgressCallback) throws {
        let address = unsafeBitCast(callback, to: UnsafeMutableRawPointer.self)
        try set(h, CURLOPT_XFERINFOFUNCTION, pointer: address)
    }

    static func infoLong(_ h: UnsafeMutableRawPointer, _ info: CURLINFO) -> Int? {
        var value = 0
        return nebula_curl_getinfo_long(h, info, &value) == CURLE_OK ? value : nil
    }

    static func infoDouble(_ h: UnsafeMutableRawPointer, _ info: CURLINFO) -> Double? {
        var value = 0.0
        return nebula_curl_getinfo_double(h, info, &value) == CURLE_OK ? value : nil
    }

    /// A `curl_slist` of header lines; nil for none. Free with `freeList`.
    static func makeList(_ lines: [String]) throws -> OpaquePointer? {
        var list: UnsafeMutablePointer<curl_slist>?
        for line in lines {
            guard let appended = curl_slist_append(list, line) else {
                curl_slist_free_all(list)
                throw HTTPError(code: .internal, message: "curl_slist_append failed (out of memory)")
            }
            list = appended
        }
        return list.map { OpaquePointer($0) }
    }

    static func freeList(_ list: OpaquePointer?) {
        curl_slist_free_all(UnsafeMutablePointer(list))
    }

    static func perform(_ h: UnsafeMutableRawPointer) -> CURLcode { curl_easy_perform(h) }

    static func reset(_ h: UnsafeMutableRawPointer) { curl_easy_reset(h) }
}

/// `curl_xferinfo_callback`.
typealias CurlProgressCallback = @convention(c) (UnsafeMutableRawPointer?, curl_off_t, curl_off_t, curl_off_t, curl_off_t) -> Int32

/// One libcurl easy handle and its error buffer.
///
/// Thread-safety: libcurl allows an easy handle on any thread but on one thread at a time. A handle
/// is only ever owned by one transfer: the pool hands it out under its lock to exactly one worker
/// thread, which gives it back (or drops it) when the transfer is over. `curl_easy_cleanup` in
/// `deinit` runs after the last owner released it, so never concurrently with a transfer.
final class CurlEasyHandle: @unchecked Sendable {
    let raw: UnsafeMutableRawPointer
    /// CURLOPT_ERRORBUFFER: libcurl writes a detailed message (at most CURL_ERROR_SIZE bytes) here.
    private let errorBuffer: UnsafeMutablePointer<CChar>

    init() throws {
        try CurlRuntime.ensureInitialised()
        guard let raw = curl_easy_init() else {
            throw HTTPError(code: .internal, message: "curl_easy_init failed")
        }
        self.raw = raw
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
    }

    /// Clears every option (keeping live connections, DNS and TLS session caches) and re-attaches the
    /// error buffer.
    func prepareForTransfer() throws {
        Curl.reset(raw)
        errorBuffer[0] = 0
        try Curl.set(raw, CURLOPT_ERRORBUFFER, pointer: UnsafeMutableRawPointer(errorBuffer))
    }

    /// The detailed message of the last failed transfer, or "" when libcurl left none.
    var lastErrorDetail: String { String(cString: errorBuffer) }

    deinit {
        curl_easy_cleanup(raw)
        errorBuffer.deallocate()
    }
}
