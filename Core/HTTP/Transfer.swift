import CCurl
import CCurlShims
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Set from any thread (task cancellation), read by the transfer's callbacks on the worker thread.
final class CancellationFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    func cancel() { flag.store(true, ordering: .releasing) }
    var isCancelled: Bool { flag.load(ordering: .acquiring) }
}

/// Progress of a download: bytes written so far and the expected total when the server sent one.
public typealias HTTPProgressHandler = @Sendable (_ received: Int64, _ total: Int64?) -> Void

/// What one queued transfer does with the body, and who waits for it.
struct TransferJob: Sendable {
    enum Sink: Sendable {
        case memory(limit: Int)
        case file(path: String, progress: HTTPProgressHandler)
    }
    let request: HTTPRequest
    let sink: Sink
    let cancellation: CancellationFlag
    let continuation: CheckedContinuation<HTTPResponse, any Error>
}

/// The file a download writes: a temporary file beside the destination, moved over it only when the
/// transfer succeeded, removed otherwise, so the destination never holds a partial body.
final class DownloadFile {
    let destination: String
    let temporaryPath: String
    private var fd: Int32

    init(destination: String) throws {
        self.destination = destination
        let url = URL(fileURLWithPath: destination)
        let directory = url.deletingLastPathComponent().path
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw HTTPError(code: .fileSystem, message: "cannot create \(directory): \(error.localizedDescription)")
        }
        temporaryPath = directory + "/." + url.lastPathComponent + ".part-" + UUID().uuidString
        fd = open(temporaryPath, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            let e = errno
            throw HTTPError(code: .fileSystem, message: "cannot create \(temporaryPath): \(String(cString: strerror(e)))")
        }
    }

    /// Writes everything; returns errno on failure.
    func write(_ bytes: UnsafeRawBufferPointer) -> Int32? {
        guard var base = bytes.baseAddress else { return nil }
        var left = bytes.count
        while left > 0 {
            let n = posixWrite(fd, base, left)
            if n < 0 {
                if errno == EINTR { continue }
                return errno
            }
            base += n
            left -= n
        }
        return nil
    }

    /// fsync, close, and rename over the destination.
    func commit() throws {
        defer { fd = -1 }
        let synced = fsync(fd) == 0 ? 0 : errno
        let closed = close(fd) == 0 ? 0 : errno
        if synced != 0 || closed != 0 {
            unlink(temporaryPath)
            throw HTTPError(code: .fileSystem, message: "cannot write \(temporaryPath): \(String(cString: strerror(synced != 0 ? synced : closed)))")
        }
        guard rename(temporaryPath, destination) == 0 else {
            let e = errno
            unlink(temporaryPath)
            throw HTTPError(code: .fileSystem, message: "cannot move the download to \(destination): \(String(cString: strerror(e)))")
        }
    }

    func discard() {
        if fd >= 0 { close(fd); fd = -1 }
        unlink(temporaryPath)
    }

    deinit { if fd >= 0 { discard() } }
}

/// `write(2)` (the name is taken inside `DownloadFile`).
private func posixWrite(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int) -> Int {
    #if canImport(Glibc)
    Glibc.write(fd, p, n)
    #else
    Darwin.write(fd, p, n)
    #endif
}

/// The state one transfer's libcurl callbacks share; lives on the worker thread for the duration of
/// `curl_easy_perform` and is reached from the callbacks through the `void *` user-data pointers.
final class TransferState {
    enum Failure {
        case cancelled
        case bodyTooLarge(limit: Int)
        /// A download got a non-2xx response; its body was kept up to the snippet size and the rest
        /// not read.
        case errorStatus
        case fileWrite(errno: Int32, path: String)
    }

    let cancellation: CancellationFlag
    private let memoryLimit: Int
    private let file: DownloadFile?
    private let progress: HTTPProgressHandler?

    private(set) var body = Data()
    private(set) var received: Int64 = 0
    private(set) var failure: Failure?
    /// Status and headers of the response being received (each new status line starts a new one).
    private(set) var status = 0
    private(set) var headers = HTTPHeaders()
    /// `Location` of every redirect response, in order.
    private(set) var redirectLocations: [String] = []
    private var expectedTotal: Int64?
    private var bodyStarted = false

    init(cancellation: CancellationFlag, memoryLimit: Int, file: DownloadFile?, progress: HTTPProgressHandler?) {
        self.cancellation = cancellation
        self.memoryLimit = memoryLimit
        self.file = file
        self.progress = progress
    }

    var isSuccessStatus: Bool { (200..<300).contains(status) }

    func onHeaderLine(_ raw: UnsafeRawBufferPointer) {
        var scalars = String(decoding: raw, as: UTF8.self).unicodeScalars
        while let last = scalars.last, last == "\r" || last == "\n" { scalars.removeLast() }
        let line = String(scalars)
        if line.hasPrefix("HTTP/") {
            if (300..<400).contains(status), let location = headers["Location"] { redirectLocations.append(location) }
            let parts = line.split(separator: " ", maxSplits: 2)
            status = parts.count > 1 ? Int(parts[1]) ?? 0 : 0
            headers = HTTPHeaders()
            bodyStarted = false
            return
        }
        guard !line.isEmpty else { return }
        if line.first == " " || line.first == "\t", let last = headers.fields.last {
            // Obsolete line folding (RFC 7230 3.2.4): continues the previous field.
            headers.remove(name: last.name)
            headers.add(name: last.name, value: last.value + " " + line.trimmingCharacters(in: .whitespaces))
            return
        }
        guard let colon = line.firstIndex(of: ":") else { return }
        let name = String(line[..<colon]).trimmingCharacters(in: .whitespaces)
        let value = String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces)
        headers.add(name: name, value: value)
    }

    /// Returns false to make libcurl abort the transfer.
    func onBody(_ bytes: UnsafeRawBufferPointer) -> Bool {
        if cancellation.isCancelled {
            failure = .cancelled
            return false
        }
        if !bodyStarted {
            bodyStarted = true
            if let length = headers["Content-Length"].flatMap({ Int64($0) }), length >= 0 { expectedTotal = length }
        }
        guard let file, isSuccessStatus else {
            // In memory: the body of `send`, or an error body of `download` (kept for the message).
            let limit = file == nil ? memoryLimit : HTTPError.maxBodySnippet
            if body.count + bytes.count > limit {
                if file != nil {
                    body.append(contentsOf: bytes.prefix(max(0, limit - body.count)))
                    failure = .errorStatus
                } else {
                    failure = .bodyTooLarge(limit: limit)
                }
                return false
            }
            body.append(contentsOf: bytes)
            received += Int64(bytes.count)
            return true
        }
        if let error = file.write(bytes) {
            failure = .fileWrite(errno: error, path: file.temporaryPath)
            return false
        }
        received += Int64(bytes.count)
        progress?(received, expectedTotal)
        return true
    }

    /// Returns true to make libcurl abort the transfer.
    func onProgress() -> Bool {
        if cancellation.isCancelled {
            failure = .cancelled
            return true
        }
        return false
    }
}

// MARK: - C callbacks (capture-free; the context arrives through the user-data pointer)

private func transferBodyCallback(_ data: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int,
                                  _ context: UnsafeMutableRawPointer?) -> Int {
    guard let context else { return 0 }
    let state = Unmanaged<TransferState>.fromOpaque(context).takeUnretainedValue()
    let n = size * count
    return state.onBody(UnsafeRawBufferPointer(start: data, count: n)) ? n : 0
}

private func transferHeaderCallback(_ data: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int,
                                    _ context: UnsafeMutableRawPointer?) -> Int {
    guard let context else { return 0 }
    let state = Unmanaged<TransferState>.fromOpaque(context).takeUnretainedValue()
    let n = size * count
    state.onHeaderLine(UnsafeRawBufferPointer(start: data, count: n))
    return n
}

private let transferProgressCallback: CurlProgressCallback = { context, _, _, _, _ in
    guard let context else { return 0 }
    return Unmanaged<TransferState>.fromOpaque(context).takeUnretainedValue().onProgress() ? 1 : 0
}

// MARK: - One transfer

extension Duration {
    /// Whole milliseconds, rounded up, at least 1.
    var curlMilliseconds: Int {
        let (seconds, attoseconds) = components
        let ms = seconds.multipliedReportingOverflow(by: 1000)
        guard !ms.overflow else { return Int.max }
        return max(1, Int(ms.partialValue) + Int((attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000))
    }
}

enum TransferRunner {
    /// Runs one transfer on the calling (worker) thread with a handle it owns.
    static func run(_ job: TransferJob, handle: CurlEasyHandle, configuration: HTTPClient.Configuration) throws -> HTTPResponse {
        if job.cancellation.isCancelled { throw CancellationError() }
        let request = job.request
        try validate(request)

        var file: DownloadFile?
        var progress: HTTPProgressHandler?
        let memoryLimit: Int
        switch job.sink {
        case .memory(let limit):
            memoryLimit = limit
        case .file(let path, let handler):
            file = try DownloadFile(destination: path)
            progress = handler
            memoryLimit = 0
        }
        var committed = false
        defer { if !committed { file?.discard() } }

        let state = TransferState(cancellation: job.cancellation, memoryLimit: memoryLimit, file: file, progress: progress)
        let h = handle.raw
        try handle.prepareForTransfer()
        var headerList: OpaquePointer?
        defer {
            // Forget every pointer into this transfer before the list and the state go away.
            Curl.reset(h)
            Curl.freeList(headerList)
        }
        headerList = try configure(h, request: request, state: state, sink: job.sink, configuration: configuration)

        let code = withExtendedLifetime(state) { Curl.perform(h) }

        if let failure = state.failure {
            switch failure {
            case .cancelled:
                throw CancellationError()
            case .bodyTooLarge(let limit):
                throw HTTPError(code: .bodyTooLarge, message: "the response body of \(redactedURL(request.url)) exceeds \(limit) bytes",
                                url: redactedURL(request.url))
            case .errorStatus:
                break  // reported below from the status
            case .fileWrite(let e, let path):
                throw HTTPError(code: .fileSystem, message: "cannot write \(path): \(String(cString: strerror(e)))",
                                url: redactedURL(request.url))
            }
        }
        if job.cancellation.isCancelled { throw CancellationError() }
        let redirectCount = Curl.infoLong(h, CURLINFO_REDIRECT_COUNT) ?? 0
        var finalURL = request.url
        for location in state.redirectLocations.prefix(redirectCount) {
            finalURL = URL(string: location, relativeTo: finalURL)?.absoluteURL ?? finalURL
        }
        if case .errorStatus = state.failure {
            throw HTTPError.status(state.status, url: finalURL, body: state.body)
        }
        guard code == CURLE_OK else {
            throw transportError(code, detail: handle.lastErrorDetail, url: request.url)
        }

        let status = Curl.infoLong(h, CURLINFO_RESPONSE_CODE) ?? state.status
        var response = HTTPResponse(status: status, headers: state.headers, body: state.body,
                                    receivedBytes: state.received, url: finalURL, redirectCount: redirectCount)
        if let file {
            guard response.isSuccess else { throw HTTPError.status(status, url: finalURL, body: state.body) }
            try file.commit()
            committed = true
            response.body = Data()
        }
        return response
    }

    static func validate(_ request: HTTPRequest) throws {
        let url = redactedURL(request.url)
        guard let scheme = request.url.scheme?.lowercased(), scheme == "http" || scheme == "https",
              request.url.host != nil else {
            throw HTTPError(code: .invalidRequest, message: "only absolute http and https URLs are supported: \(url)", url: url)
        }
        // Line breaks and NUL would split or end a header line ("\r\n" is one Character: test scalars).
        let forbidden: (Character) -> Bool = { $0.unicodeScalars.contains { $0 == "\r" || $0 == "\n" || $0 == "\0" } }
        guard !request.method.rawValue.isEmpty, request.method.rawValue.allSatisfy({ $0.isLetter || $0 == "-" || $0 == "_" }) else {
            throw HTTPError(code: .invalidRequest, message: "invalid method '\(request.method)'", url: url)
        }
        for field in request.headers {
            guard !field.name.isEmpty, !field.name.contains(where: { forbidden($0) || $0 == ":" || $0 == " " }),
                  !field.value.contains(where: forbidden) else {
                throw HTTPError(code: .invalidRequest, message: "invalid header field '\(field.name)'", url: url)
            }
        }
        if case .basic(let user, let password) = request.authorization,
           user.contains(where: forbidden) || password.contains(where: forbidden) || user.contains(":") {
            throw HTTPError(code: .invalidRequest, message: "invalid basic-auth credentials (':' in the user name or a line break)", url: url)
        }
        if case .bearer(let token) = request.authorization, token.contains(where: forbidden) {
            throw HTTPError(code: .invalidRequest, message: "invalid bearer token (line break)", url: url)
        }
    }

    /// Sets every option of the transfer; returns the header list, which the caller frees after perform.
    private static func configure(_ h: UnsafeMutableRawPointer, request: HTTPRequest, state: TransferState,
                                  sink: TransferJob.Sink, configuration: HTTPClient.Configuration) throws -> OpaquePointer? {
        try Curl.set(h, CURLOPT_URL, request.url.absoluteString)
        try Curl.set(h, CURLOPT_PROTOCOLS_STR, "http,https")
        try Curl.set(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https")
        // No signals from libcurl on worker threads (its timeouts would otherwise use SIGALRM).
        try Curl.set(h, CURLOPT_NOSIGNAL, true)
        try Curl.set(h, CURLOPT_FOLLOWLOCATION, configuration.maxRedirects > 0)
        try Curl.set(h, CURLOPT_MAXREDIRS, configuration.maxRedirects)
        try Curl.set(h, CURLOPT_CONNECTTIMEOUT_MS, configuration.connectTimeout.curlMilliseconds)
        let timeout: Duration?
        switch sink {
        case .memory: timeout = request.timeout ?? configuration.requestTimeout
        case .file: timeout = request.timeout
        }
        if let timeout { try Curl.set(h, CURLOPT_TIMEOUT_MS, timeout.curlMilliseconds) }
        if let stall = configuration.stallTimeout {
            try Curl.set(h, CURLOPT_LOW_SPEED_LIMIT, 1)
            try Curl.set(h, CURLOPT_LOW_SPEED_TIME, max(1, (stall.curlMilliseconds + 999) / 1000))
        }
        try Curl.set(h, CURLOPT_SSL_VERIFYPEER, true)
        try Curl.set(h, CURLOPT_SSL_VERIFYHOST, 2)
        if let ca = configuration.caBundlePath { try Curl.set(h, CURLOPT_CAINFO, ca) }
        try Curl.set(h, CURLOPT_TCP_KEEPALIVE, true)
        try Curl.set(h, CURLOPT_USERAGENT, configuration.userAgent)

        switch request.method {
        case .get where request.body == nil:
            try Curl.set(h, CURLOPT_HTTPGET, true)
        case .head:
            try Curl.set(h, CURLOPT_NOBODY, true)
        default:
            // POST, PUT and PATCH always carry a body (an empty one: Content-Length: 0).
            let needsBody = [.post, .put, .patch].contains(request.method)
            if let body = request.body ?? (needsBody ? Data() : nil) {
                try Curl.set(h, CURLOPT_POST, true)
                try Curl.set(h, CURLOPT_POSTFIELDSIZE_LARGE, offset: Int64(body.count))
                // COPYPOSTFIELDS copies the bytes now (POSTFIELDS would keep pointing into `body`).
                try body.withUnsafeBytes { bytes in
                    let empty: UInt8 = 0
                    try withUnsafePointer(to: empty) { fallback in
                        try Curl.set(h, CURLOPT_COPYPOSTFIELDS,
                                     pointer: UnsafeMutableRawPointer(mutating: bytes.baseAddress ?? UnsafeRawPointer(fallback)))
                    }
                }
            }
            if request.method != .post {
                try Curl.set(h, CURLOPT_CUSTOMREQUEST, request.method.rawValue)
            }
        }

        var lines = request.headers.map { "\($0.name): \($0.value)" }
        // No "Expect: 100-continue" round trip for large bodies.
        if request.headers["Expect"] == nil { lines.append("Expect:") }
        switch request.authorization {
        case .basic(let user, let password):
            try Curl.set(h, CURLOPT_HTTPAUTH, curlAuthBasic)
            try Curl.set(h, CURLOPT_USERNAME, user)
            try Curl.set(h, CURLOPT_PASSWORD, password)
        case .bearer(let token):
            lines.append("Authorization: Bearer \(token)")
        case nil:
            break
        }
        let list = try Curl.makeList(lines)
        do {
            try Curl.set(h, CURLOPT_HTTPHEADER, list: list)
            let context = Unmanaged.passUnretained(state).toOpaque()
            try Curl.set(h, CURLOPT_WRITEFUNCTION, callback: transferBodyCallback)
            try Curl.set(h, CURLOPT_WRITEDATA, pointer: context)
            try Curl.set(h, CURLOPT_HEADERFUNCTION, callback: transferHeaderCallback)
            try Curl.set(h, CURLOPT_HEADERDATA, pointer: context)
            try Curl.setProgressCallback(h, transferProgressCallback)
            try Curl.set(h, CURLOPT_XFERINFODATA, pointer: context)
            try Curl.set(h, CURLOPT_NOPROGRESS, false)
        } catch {
            Curl.freeList(list)
            throw error
        }
        return list
    }

    static func transportError(_ code: CURLcode, detail: String, url: URL) -> HTTPError {
        let kind: HTTPError.Code
        switch code {
        case CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY, CURLE_COULDNT_CONNECT:
            kind = .connectionFailed
        case CURLE_OPERATION_TIMEDOUT:
            kind = .timeout
        case CURLE_TOO_MANY_REDIRECTS:
            kind = .tooManyRedirects
        case CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CERTPROBLEM, CURLE_SSL_CIPHER,
             CURLE_SSL_CACERT_BADFILE, CURLE_SSL_ISSUER_ERROR, CURLE_SSL_PINNEDPUBKEYNOTMATCH,
             CURLE_SSL_INVALIDCERTSTATUS, CURLE_SSL_CRL_BADFILE, CURLE_SSL_ENGINE_NOTFOUND, CURLE_SSL_ENGINE_SETFAILED:
            kind = .tls
        case CURLE_UNSUPPORTED_PROTOCOL, CURLE_URL_MALFORMAT:
            kind = .invalidRequest
        default:
            kind = .transport
        }
        var message = Curl.describe(code)
        if !detail.isEmpty, detail != message { message += ": " + detail }
        return HTTPError(code: kind, message: message, url: redactedURL(url), curlCode: Int(code.rawValue))
    }
}
