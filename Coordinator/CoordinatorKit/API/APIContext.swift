import Foundation
import Hummingbird
import NIOCore
import Synchronization

/// Per-request state: the caller once authenticated, the request id, the client address.
struct APIContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    var user: AuthenticatedUser?
    var requestId: String
    let clientIP: String
    /// Shared with the request middleware, which runs outside the route (its copy of the context
    /// does not see `user` being set).
    let notes = RequestNotes()

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        requestId = ""
        clientIP = source.channel.remoteAddress?.ipAddress ?? ""
    }

    /// Bodies collected whole (JSON); uploads stream and have their own limit.
    var maxUploadSize: Int { 1 << 20 }

    /// What a route learned about its request that the middleware logs.
final class RequestNotes: Sendable {
    let userId = Mutex("")
}

/// The signed-in user; routes behind `.user` or `.admin` always have one.
    func caller() throws -> AuthenticatedUser {
        guard let user else { throw APIError.unauthorized }
        return user
    }

    /// A signed-in user account (not the cluster admin token, which has no account or session).
    func account() throws -> AuthenticatedUser {
        let user = try caller()
        guard user.sessionId != "admin-token" else {
            throw APIError.badRequest("the cluster admin token is not a user account: sign in with e-mail and password for this route")
        }
        return user
    }
}

// MARK: JSON in and out (snake_case on the wire)

let apiEncoder: JSONEncoder = {
    let e = JSONEncoder()
    e.keyEncodingStrategy = .convertToSnakeCase
    e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return e
}()

let apiDecoder: JSONDecoder = {
    let d = JSONDecoder()
    d.keyDecodingStrategy = .convertFromSnakeCase
    return d
}()

extension Request {
    /// The body as `T`, with errors that name the field.
    mutating func decodeJSON<T: Decodable>(_ type: T.Type, context: APIContext, limit: Int) async throws -> T {
        if let type = headers[.contentType], !type.lowercased().hasPrefix("application/json") {
            throw APIError(.unsupportedMediaType, "unsupported_media_type", "send the body as application/json (got \(type))")
        }
        let buffer: ByteBuffer
        do {
            buffer = try await collectBody(upTo: limit)
        } catch let e as HTTPError where e.status == .contentTooLarge {
            throw APIError(.contentTooLarge, "body_too_large", "the JSON body is larger than \(limit) bytes")
        } catch is NIOTooManyBytesError {
            throw APIError(.contentTooLarge, "body_too_large", "the JSON body is larger than \(limit) bytes")
        }
        guard buffer.readableBytes > 0 else { throw APIError.badRequest("this route needs a JSON body") }
        do {
            return try apiDecoder.decode(T.self, from: Data(buffer.readableBytesView))
        } catch {
            throw APIError.badRequest("the JSON body does not match this route: \(describeDecoding(error))")
        }
    }

    func query(_ name: String) -> String? { uri.queryParameters.get(name) }

    func intQuery(_ name: String, default value: Int, range: ClosedRange<Int>) throws -> Int {
        guard let text = query(name) else { return value }
        guard let n = Int(text), range.contains(n) else {
            throw APIError.validation(name, "must be a whole number in \(range.lowerBound)...\(range.upperBound)")
        }
        return n
    }
}

func jsonResponse<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok, headers extra: HTTPFields = [:]) throws -> Response {
    var headers = extra
    headers[.contentType] = "application/json; charset=utf-8"
    return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: try apiEncoder.encode(value))))
}

/// A JSON value built by hand (for answers that embed stored JSON documents untouched: their keys are
/// data, such as column names, and must not be re-cased).
func jsonObjectResponse(_ object: Any, status: HTTPResponse.Status = .ok) throws -> Response {
    let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
    return Response(status: status, headers: [.contentType: "application/json; charset=utf-8"],
                    body: .init(byteBuffer: ByteBuffer(bytes: data)))
}

/// An `Encodable` as a JSONSerialization value (snake_case keys).
func jsonObject<T: Encodable>(_ value: T) throws -> Any {
    try JSONSerialization.jsonObject(with: apiEncoder.encode(value), options: [.fragmentsAllowed])
}

/// Stored JSON text as a JSONSerialization value (null when empty or unreadable).
func parsedJSON(_ text: String) -> Any {
    guard !text.isEmpty, let v = try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed]) else {
        return NSNull()
    }
    return v
}
