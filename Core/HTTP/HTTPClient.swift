import Foundation

/// An HTTP/1.1 and HTTP/2 client over libcurl easy handles.
///
/// Transfers run on the client's own worker threads (see Note [Blocking transfers off the cooperative
/// pool]); the async methods suspend until the transfer ends. Redirects are followed (up to
/// `Configuration.maxRedirects`); TLS peers are verified against the system's CA store; cancelling
/// the calling task aborts the transfer and throws `CancellationError`. Every other failure throws
/// `HTTPError`.
///
/// Share one client: it keeps connections alive between requests. When the last reference goes away,
/// its idle threads exit and its handles are freed.
public final class HTTPClient: Sendable {
    public struct Configuration: Sendable {
        /// Transfers that run at once (worker threads and pooled easy handles); more wait in a queue.
        public var maxConcurrentTransfers: Int = 4
        /// Redirects followed before `HTTPError.Code.tooManyRedirects`; 0 disables following.
        public var maxRedirects: Int = 10
        /// Name resolution plus TCP and TLS handshakes.
        public var connectTimeout: Duration = .seconds(30)
        /// The whole of a `send` whose request has no timeout of its own; nil for none.
        public var requestTimeout: Duration? = .seconds(120)
        /// A transfer that receives nothing for this long fails with `.timeout`; nil to wait forever.
        public var stallTimeout: Duration? = .seconds(60)
        /// `send` fails with `.bodyTooLarge` beyond this; use `download` for large bodies.
        public var maxResponseBodySize: Int = 64 << 20
        /// A PEM bundle of trusted CAs instead of the system's store.
        public var caBundlePath: String?
        public var userAgent: String = "nebula/1 " + HTTPClient.libcurlVersion
        /// How long a worker thread waits for work before exiting.
        public var idleThreadTimeout: Duration = .seconds(30)

        public init() {}
    }

    public let configuration: Configuration
    private let executor: TransferExecutor

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
        executor = TransferExecutor(configuration: configuration)
    }

    deinit { executor.close() }

    /// libcurl's version line, e.g. "libcurl/7.88.1 OpenSSL/3.0.15 zlib/1.2.13".
    public static var libcurlVersion: String { CurlRuntime.versionString }

    /// Sends the request and returns the response with its body in memory, whatever its status
    /// (`requireSuccess()` turns a non-2xx status into an error).
    public func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        try await run(request, sink: .memory(limit: configuration.maxResponseBodySize))
    }

    /// Streams a 2xx response body into the file at `path` and returns the response (empty `body`).
    /// The body goes to a temporary file beside `path`, which replaces `path` only once the transfer
    /// is complete; on any failure (a non-2xx status included, as `.httpStatus`) no file is left.
    /// `progress` runs on the transfer's thread after each chunk is written, with the bytes written so
    /// far (non-decreasing) and the Content-Length when the server sent one.
    public func download(_ request: HTTPRequest, to path: String,
                         progress: @escaping HTTPProgressHandler = { _, _ in }) async throws -> HTTPResponse {
        try await run(request, sink: .file(path: path, progress: progress))
    }

    private func run(_ request: HTTPRequest, sink: TransferJob.Sink) async throws -> HTTPResponse {
        let cancellation = CancellationFlag()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let job = TransferJob(request: request, sink: sink, cancellation: cancellation, continuation: continuation)
                if !executor.submit(job) {
                    continuation.resume(throwing: HTTPError(code: .internal, message: "the HTTP client has been shut down"))
                }
            }
        } onCancel: {
            cancellation.cancel()
        }
    }
}
