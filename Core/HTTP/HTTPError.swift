import Foundation

/// Every failure of `HTTPClient` except cancellation (which throws `CancellationError`).
public struct HTTPError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure; extensible.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// The request itself is unusable (bad URL, header with a line break, unsupported scheme).
        public static let invalidRequest = Code("invalidRequest")
        /// Name resolution or the TCP connection failed.
        public static let connectionFailed = Code("connectionFailed")
        /// The request timeout elapsed, or the transfer stalled for longer than the stall timeout.
        public static let timeout = Code("timeout")
        /// More redirects than `Configuration.maxRedirects`.
        public static let tooManyRedirects = Code("tooManyRedirects")
        /// TLS handshake or certificate verification failed.
        public static let tls = Code("tls")
        /// Any other transport failure reported by libcurl (connection reset, malformed response, ...).
        public static let transport = Code("transport")
        /// The server answered with a status that the operation does not accept (`download`, `requireSuccess`).
        public static let httpStatus = Code("httpStatus")
        /// The response body is larger than `Configuration.maxResponseBodySize` (`send` only).
        public static let bodyTooLarge = Code("bodyTooLarge")
        /// The destination file could not be created, written or moved into place.
        public static let fileSystem = Code("fileSystem")
        /// libcurl could not be initialised or configured.
        public static let `internal` = Code("internal")
    }

    public var code: Code
    /// Human-readable; for transport errors libcurl's `curl_easy_strerror` text and its detail.
    public var message: String
    /// The request URL (without user info).
    public var url: String?
    /// The HTTP status, for `.httpStatus`.
    public var status: Int?
    /// libcurl's `CURLcode`, when libcurl reported the failure.
    public var curlCode: Int?
    /// The start of the response body (at most 64 KiB), for `.httpStatus`.
    public var responseBody: Data?

    public init(code: Code, message: String, url: String? = nil, status: Int? = nil, curlCode: Int? = nil,
                responseBody: Data? = nil) {
        self.code = code
        self.message = message
        self.url = url
        self.status = status
        self.curlCode = curlCode
        self.responseBody = responseBody
    }

    static func status(_ status: Int, url: URL, body: Data) -> HTTPError {
        let snippet = body.prefix(HTTPError.maxBodySnippet)
        var message = "HTTP \(status) from \(redactedURL(url))"
        let text = String(decoding: snippet.prefix(300), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
            .replacingOccurrences(of: "\n", with: " ")
        if !text.isEmpty { message += ": \(text)" }
        return HTTPError(code: .httpStatus, message: message, url: redactedURL(url), status: status,
                         responseBody: Data(snippet))
    }

    static let maxBodySnippet = 64 * 1024

    public var description: String {
        var s = "HTTPError.\(code): \(message)"
        if let url, !message.contains(url) { s += " (\(url))" }
        return s
    }
}

/// The URL without user info, for messages and logs.
func redactedURL(_ url: URL) -> String {
    guard var components = URLComponents(url: url, resolvingAgainstBaseURL: false),
          components.user != nil || components.password != nil else { return url.absoluteString }
    components.user = nil
    components.password = nil
    return components.string ?? url.absoluteString
}
