import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// Who may call a route.
enum RouteAccess: String, Sendable {
    /// Anyone (a valid token, when sent, still identifies the caller).
    case `public`
    /// A signed-in user of any role; a route in a write group also needs a role that writes.
    case user
    /// Admins only.
    case admin
}

/// One route: everything the router, the gate, the metrics and the OpenAPI document need.
/// Note [Routes from one table]: routes are registered only through `APIRouteTable.add`, which
/// records the spec; `/api/openapi.json` is generated from the same records, and a test requests
/// every documented route to check that the router has it, so the two cannot drift.
struct RouteSpec: Sendable {
    var method: HTTPRequest.Method
    /// OpenAPI template: `/api/datasets/{id}`.
    var path: String
    var access: RouteAccess
    /// Rate-limit group (Note [Rate limits]); nil: not limited.
    var group: String?
    var tag: String
    var summary: String
    /// "json" (with the schema's name), "multipart", or nil.
    var body: RequestBodyKind? = nil
    /// Query parameters: name → description.
    var query: [String: String] = [:]
    /// Success status and its content type.
    var success: Int = 200
    var produces: String = "application/json"

    enum RequestBodyKind: Sendable {
        case json(schema: String, required: [String], properties: [String: String])
        case multipart
    }

    /// Hummingbird's form of the path (`{id}` → `:id`).
    var routerPath: String {
        path.split(separator: "/", omittingEmptySubsequences: false).map { part in
            part.hasPrefix("{") && part.hasSuffix("}") ? ":" + part.dropFirst().dropLast() : String(part)
        }.joined(separator: "/")
    }

    var parameters: [String] {
        path.split(separator: "/").filter { $0.hasPrefix("{") }.map { String($0.dropFirst().dropLast()) }
    }
}

typealias RouteHandler = @Sendable (Request, APIContext) async throws -> Response

/// Registers routes on the router through the gate, and remembers their specs.
final class APIRouteTable: @unchecked Sendable {
    // Thread-safety: filled before the server starts, read-only afterwards.
    private(set) var specs: [RouteSpec] = []
    let router: Router<APIContext>
    let gate: Gate

    init(router: Router<APIContext>, gate: Gate) {
        self.router = router
        self.gate = gate
    }

    func add(_ spec: RouteSpec, _ handler: @escaping RouteHandler) {
        precondition(!specs.contains { $0.method == spec.method && $0.path == spec.path }, "route \(spec.method) \(spec.path) twice")
        specs.append(spec)
        let gate = self.gate
        router.on(RouterPath(spec.routerPath), method: spec.method) { request, context in
            var context = context
            let limitHeaders = try await gate.admit(spec, request, &context)
            do {
                var response = try await handler(request, context)
                response.headers.append(contentsOf: limitHeaders)
                return response
            } catch {
                var mapped = APIError.from(error, requestId: context.requestId)
                mapped.headers.append(contentsOf: limitHeaders)
                if mapped.status == .internalServerError {
                    context.logger.error("request failed", metadata: ["error": "\(error)", "route": "\(spec.path)"])
                }
                throw mapped
            }
        }
    }
}

// Note [Admin token on the REST API]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// The `nebula` CLI holds the cluster's admin token, not a user's password. Sent as a bearer token to
// the REST API it acts as the built-in admin principal 'admin' — the owner of everything made through
// the gRPC admin CLI — so `nebula build` and `nebula predict` use the same routes as web pages.
// It is compared in constant time; it has no session, so logout and the session routes do not
// apply to it.

/// Authentication, role checks and rate limits of a route (run before its handler).
struct Gate: Sendable {
    let auth: AuthService
    let limiter: RateLimiter
    let limits: RateLimitTable
    /// The cluster admin token (Note [Admin token on the REST API]).
    let adminToken: [UInt8]

    /// Sets `context.user`; returns the RateLimit-* fields to add to the answer.
    func admit(_ spec: RouteSpec, _ request: Request, _ context: inout APIContext) async throws -> HTTPFields {
        if let header = request.headers[.authorization] {
            let parts = header.split(separator: " ", maxSplits: 1)
            guard parts.count == 2, parts[0].lowercased() == "bearer" else {
                throw APIError(.unauthorized, "unauthorized", "the Authorization header must be `Bearer <access token>`")
            }
            if Self.constantTimeEqual(Array(parts[1].utf8), adminToken) {
                context.user = AuthenticatedUser(id: AuthenticatedUser.cliOwner, role: .admin, sessionId: "admin-token")
                context.notes.userId.withLock { $0 = AuthenticatedUser.cliOwner }
            } else if let user = await auth.authenticate(bearer: String(parts[1])) {
                context.user = user
                context.notes.userId.withLock { $0 = user.id }
            } else {
                throw APIError(.unauthorized, "invalid_token",
                               "the access token is invalid, expired or signed out; refresh it (POST /api/auth/refresh) or sign in again")
            }
        }
        switch spec.access {
        case .public: break
        case .user:
            guard let user = context.user else { throw APIError.unauthorized }
            if let group = spec.group, group == "write" || group == "upload", !user.role.canWrite {
                throw APIError.forbidden("viewers can read but not create, change or delete; ask an admin for the member role")
            }
        case .admin:
            guard let user = context.user else { throw APIError.unauthorized }
            guard user.role == .admin else { throw APIError.forbidden("this route is for admins") }
        }
        guard let group = spec.group, let limit = limits.limits[group] else { return [:] }
        return try check(group: group, limit: limit, context: context)
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count, !b.isEmpty else { return false }
        var diff: UInt8 = 0
        for i in a.indices { diff |= a[i] ^ b[i] }
        return diff == 0
    }

    /// Takes a token from the caller's bucket and the address's bucket (Note [Rate limits]).
    func check(group: String, limit: RateLimit, context: APIContext) throws -> HTTPFields {
        var decisions: [RateLimiter.Decision] = []
        if let user = context.user { decisions.append(limiter.take("\(group):u:\(user.id)", limit)) }
        let ipLimit = RateLimit(perMinute: limit.perMinute * limits.ipMultiplier, burst: Int(Double(limit.burst) * limits.ipMultiplier))
        decisions.append(limiter.take("\(group):ip:\(context.clientIP)", context.user == nil ? limit : ipLimit))
        return try verdict(group: group, decisions)
    }

    /// One more bucket for a key of the route's own (the e-mail of a login).
    func check(group: String, limit: RateLimit, key: String) throws -> HTTPFields {
        try verdict(group: group, [limiter.take("\(group):k:\(key)", limit)])
    }

    private func verdict(group: String, _ decisions: [RateLimiter.Decision]) throws -> HTTPFields {
        let shown = decisions.first { !$0.allowed } ?? decisions[0]
        var fields: HTTPFields = [:]
        fields[HTTPField.Name("RateLimit-Limit")!] = String(shown.limit)
        fields[HTTPField.Name("RateLimit-Remaining")!] = String(shown.remaining)
        fields[HTTPField.Name("RateLimit-Reset")!] = String(shown.resetSeconds)
        if !shown.allowed {
            fields[.retryAfter] = String(shown.retryAfterSeconds)
            var error = APIError(.tooManyRequests, "rate_limited",
                                 "too many \(group) requests; retry in \(shown.retryAfterSeconds) s",
                                 details: ["group": group, "retry_after_seconds": String(shown.retryAfterSeconds)])
            error.headers = fields
            throw error
        }
        return fields
    }
}
