import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import NebulaRPC

// Note [One error shape]
// ~~~~~~~~~~~~~~~~~~~~~~
// Every error the API answers, from a route, a middleware, Hummingbird itself (unknown route, body too
// large) or a service deeper down, is `{"error": {"code": "...", "message": "...", "details": {...}}}`
// with a stable machine code, a sentence for people (what was wrong and how to fix it) and, for
// validation errors, the field. Service errors arrive as `RPCStatus` (the same services answer gRPC)
// and are mapped by code; anything else is a 500 whose message is a fixed sentence plus the request id,
// while the real error goes to the log only — no stack traces, SQL or paths reach the client.

/// An error answered as JSON (Note [One error shape]).
public struct APIError: Error, HTTPResponseError, Sendable, CustomStringConvertible {
    public var status: HTTPResponse.Status
    public var code: String
    public var message: String
    public var details: [String: String]
    public var headers: HTTPFields = [:]

    public init(_ status: HTTPResponse.Status, _ code: String, _ message: String, details: [String: String] = [:]) {
        self.status = status
        self.code = code
        self.message = message
        self.details = details
    }

    public var description: String { "\(status.code) \(code): \(message)" }

    static func validation(_ field: String, _ message: String) -> APIError {
        APIError(.unprocessableContent, "validation_failed", "\(field): \(message)", details: ["field": field])
    }
    static func badRequest(_ message: String, details: [String: String] = [:]) -> APIError {
        APIError(.badRequest, "bad_request", message, details: details)
    }
    static func notFound(_ what: String) -> APIError { APIError(.notFound, "not_found", "\(what) not found") }
    static let unauthorized = APIError(.unauthorized, "unauthorized",
                                       "sign in first: send `Authorization: Bearer <access token>` from POST /api/auth/login")
    static func forbidden(_ message: String) -> APIError { APIError(.forbidden, "forbidden", message) }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var fields = headers
        fields[.contentType] = "application/json; charset=utf-8"
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }

    var body: [UInt8] {
        struct Envelope: Encodable {
            struct Inner: Encodable {
                var code: String
                var message: String
                var details: [String: String]
            }
            var error: Inner
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return Array((try? encoder.encode(Envelope(error: .init(code: code, message: message, details: details)))) ?? Data())
    }

    /// Maps whatever a route threw to the one shape; `requestId` goes into a 500's message.
    static func from(_ error: any Error, requestId: String) -> APIError {
        switch error {
        case let e as APIError:
            return e
        case let s as RPCStatus:
            return from(s)
        case let e as HTTPError:
            switch e.status {
            case .contentTooLarge:
                return APIError(.contentTooLarge, "body_too_large", e.body ?? "the request body is larger than this route accepts")
            case .notFound:
                return APIError(.notFound, "route_not_found", "no such route; GET /api/openapi.json lists them")
            case .methodNotAllowed:
                return APIError(.methodNotAllowed, "method_not_allowed", "this route does not take that method")
            default:
                return APIError(e.status, "http_\(e.status.code)", e.body ?? e.status.reasonPhrase)
            }
        case is NIOTooManyBytesError:
            return APIError(.contentTooLarge, "body_too_large", "the request body is larger than this route accepts")
        case is DecodingError:
            return .badRequest("the JSON body does not match this route's schema: \(describeDecoding(error))")
        default:
            return APIError(.internalServerError, "internal",
                            "the server failed to answer this request (request id \(requestId)); the coordinator's log has the cause")
        }
    }

    static func from(_ s: RPCStatus) -> APIError {
        switch s.code {
        case .invalidArgument: return APIError(.unprocessableContent, "invalid_argument", s.message)
        case .notFound: return APIError(.notFound, "not_found", s.message)
        case .alreadyExists: return APIError(.conflict, "already_exists", s.message)
        case .failedPrecondition: return APIError(.conflict, "failed_precondition", s.message)
        case .outOfRange: return APIError(.rangeNotSatisfiable, "out_of_range", s.message)
        case .resourceExhausted: return APIError(.insufficientStorage, "resource_exhausted", s.message)
        case .unauthenticated: return .unauthorized
        case .permissionDenied: return .forbidden(s.message)
        case .unavailable: return APIError(.serviceUnavailable, "unavailable", s.message)
        default: return APIError(.internalServerError, "internal", s.message)
        }
    }
}

/// A decoding error in words: which field, what was expected.
func describeDecoding(_ error: any Error) -> String {
    guard let e = error as? DecodingError else { return "\(error)" }
    // Keys as the client wrote them (snake_case), not as Swift names them.
    func snake(_ key: String) -> String {
        key.reduce(into: "") { out, ch in
            if ch.isUppercase { out += "_" + ch.lowercased() } else { out.append(ch) }
        }
    }
    func path(_ c: [any CodingKey]) -> String {
        c.isEmpty ? "the body" : c.map { $0.intValue.map { "[\($0)]" } ?? snake($0.stringValue) }.joined(separator: ".")
    }
    switch e {
    case .keyNotFound(let key, let ctx): return "missing field '\(path(ctx.codingPath + [key]))'"
    case .typeMismatch(let type, let ctx): return "'\(path(ctx.codingPath))' must be \(type)"
    case .valueNotFound(let type, let ctx): return "'\(path(ctx.codingPath))' must be a \(type), not null"
    case .dataCorrupted(let ctx): return ctx.codingPath.isEmpty ? "not valid JSON" : "'\(path(ctx.codingPath))': \(ctx.debugDescription)"
    @unknown default: return "\(e)"
    }
}

extension HTTPResponse.Status {
    /// 507: the coordinator has no room to store what was sent.
    static let insufficientStorage = HTTPResponse.Status(code: 507, reasonPhrase: "Insufficient Storage")
}
