import Foundation

/// An HTTP request method.
public struct HTTPMethod: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    public static let get = HTTPMethod(rawValue: "GET")
    public static let head = HTTPMethod(rawValue: "HEAD")
    public static let post = HTTPMethod(rawValue: "POST")
    public static let put = HTTPMethod(rawValue: "PUT")
    public static let patch = HTTPMethod(rawValue: "PATCH")
    public static let delete = HTTPMethod(rawValue: "DELETE")

    public var description: String { rawValue }
}

/// Header fields in order of appearance; names compare case-insensitively.
public struct HTTPHeaders: Sendable, Equatable, Sequence, ExpressibleByDictionaryLiteral, CustomStringConvertible {
    public private(set) var fields: [(name: String, value: String)]

    public init() { fields = [] }
    public init(_ fields: [(name: String, value: String)]) { self.fields = fields }
    public init(dictionaryLiteral elements: (String, String)...) { fields = elements.map { ($0.0, $0.1) } }

    /// Appends a field (a name may repeat).
    public mutating func add(name: String, value: String) { fields.append((name, value)) }

    /// Replaces every field with this name by one.
    public mutating func replaceOrAdd(name: String, value: String) {
        remove(name: name)
        fields.append((name, value))
    }

    public mutating func remove(name: String) {
        fields.removeAll { $0.name.caseInsensitiveCompare(name) == .orderedSame }
    }

    /// The first value of the field, or nil.
    public subscript(name: String) -> String? {
        fields.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value
    }

    /// Every value of the field, in order.
    public func values(for name: String) -> [String] {
        fields.filter { $0.name.caseInsensitiveCompare(name) == .orderedSame }.map(\.value)
    }

    public var count: Int { fields.count }
    public func makeIterator() -> IndexingIterator<[(name: String, value: String)]> { fields.makeIterator() }

    public static func == (lhs: HTTPHeaders, rhs: HTTPHeaders) -> Bool {
        lhs.fields.count == rhs.fields.count && zip(lhs.fields, rhs.fields).allSatisfy { $0.name == $1.name && $0.value == $1.value }
    }

    /// Values of `Authorization`, `Proxy-Authorization` and `Cookie` are redacted.
    public var description: String {
        fields.map { field in
            let secret = ["authorization", "proxy-authorization", "cookie"].contains(field.name.lowercased())
            return "\(field.name): \(secret ? "<redacted>" : field.value)"
        }.joined(separator: ", ")
    }
}

/// Credentials sent with a request. Never printed.
public enum HTTPAuthorization: Sendable, Equatable, CustomStringConvertible {
    /// HTTP Basic (RFC 7617). libcurl sends it to the original host only, not to a host a redirect leads to.
    case basic(username: String, password: String)
    /// `Authorization: Bearer TOKEN` (RFC 6750). libcurl drops it on a redirect to another host.
    case bearer(String)

    public var description: String {
        switch self {
        case .basic(let username, _): return "basic(\(username), <redacted>)"
        case .bearer: return "bearer(<redacted>)"
        }
    }
}

/// One HTTP request.
public struct HTTPRequest: Sendable {
    public var method: HTTPMethod
    public var url: URL
    public var headers: HTTPHeaders
    public var body: Data?
    /// The whole transfer (connect, redirects, body) must end within this; nil: the client's
    /// `Configuration.requestTimeout` for `send`, none for `download` (a stalled download still ends
    /// after `Configuration.stallTimeout`).
    public var timeout: Duration?
    public var authorization: HTTPAuthorization?

    public init(method: HTTPMethod = .get, url: URL, headers: HTTPHeaders = [:], body: Data? = nil,
                timeout: Duration? = nil, authorization: HTTPAuthorization? = nil) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.timeout = timeout
        self.authorization = authorization
    }
}

/// A response: the last one when redirects were followed.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: HTTPHeaders
    /// The body (`send`), or empty (`download`, which wrote it to the file).
    public var body: Data
    /// Body bytes received (the file's size for `download`).
    public var receivedBytes: Int64
    /// The URL of the last response (after redirects).
    public var url: URL
    public var redirectCount: Int

    public init(status: Int, headers: HTTPHeaders, body: Data, receivedBytes: Int64, url: URL, redirectCount: Int) {
        self.status = status
        self.headers = headers
        self.body = body
        self.receivedBytes = receivedBytes
        self.url = url
        self.redirectCount = redirectCount
    }

    public var isSuccess: Bool { (200..<300).contains(status) }

    /// The body as UTF-8 text (invalid sequences repaired).
    public var text: String { String(decoding: body, as: UTF8.self) }

    /// Returns self for a 2xx status, otherwise throws `HTTPError` with code `.httpStatus`.
    @discardableResult
    public func requireSuccess() throws -> HTTPResponse {
        guard isSuccess else { throw HTTPError.status(status, url: url, body: body) }
        return self
    }
}
