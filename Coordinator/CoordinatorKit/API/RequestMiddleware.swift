import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NebulaCommon
import Prometheus

/// Around every request: request id, CORS, the one error shape, security headers, metrics, the
/// request log (one line per request) and the request record for PostgreSQL.
struct RequestMiddleware: RouterMiddleware {
    typealias Context = APIContext
    let corsOrigins: Set<String>
    let https: Bool
    let metrics: APIMetrics
    let requestLog: RequestLog

    func handle(_ request: Request, context: APIContext, next: (Request, APIContext) async throws -> Response) async throws -> Response {
        let clock = ContinuousClock()
        let start = clock.now
        var context = context
        context.requestId = Self.requestId(from: request)
        context.logger[metadataKey: "request.id"] = .string(context.requestId)
        let origin = request.headers[.origin].flatMap { corsOrigins.contains($0) ? $0 : nil }

        var response: Response
        if request.method == .options, origin != nil, request.headers[.accessControlRequestMethod] != nil {
            response = Response(status: .noContent)
            response.headers[.accessControlAllowMethods] = "GET, POST, PATCH, DELETE, OPTIONS"
            response.headers[.accessControlAllowHeaders] = "Authorization, Content-Type, X-Request-Id"
            response.headers[.accessControlMaxAge] = "600"
        } else {
            do {
                response = try await next(request, context)
            } catch {
                let mapped = APIError.from(error, requestId: context.requestId)
                if mapped.status == .internalServerError, !(error is APIError) {
                    context.logger.error("request failed", metadata: ["error": "\(error)"])
                }
                response = try mapped.response(from: request, context: context)
            }
        }
        if let origin {
            response.headers[.accessControlAllowOrigin] = origin
            response.headers[.accessControlAllowCredentials] = "true"
            response.headers[.accessControlExposeHeaders] =
                "X-Request-Id, Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, Content-Disposition"
            response.headers[.vary] = "Origin"
        }
        response.headers[HTTPField.Name("X-Request-Id")!] = context.requestId
        response.headers[.xContentTypeOptions] = "nosniff"
        response.headers[HTTPField.Name("X-Frame-Options")!] = "DENY"
        response.headers[HTTPField.Name("Referrer-Policy")!] = "no-referrer"
        if response.headers[.contentSecurityPolicy] == nil {
            response.headers[.contentSecurityPolicy] = "default-src 'none'; frame-ancestors 'none'"
        }
        if response.headers[.cacheControl] == nil { response.headers[.cacheControl] = "no-store" }
        if https { response.headers[.strictTransportSecurity] = "max-age=31536000" }

        let route = context.endpointPath.map(Self.template) ?? "unmatched"
        let elapsed = clock.now - start
        let status = Int(response.status.code)
        metrics.record(method: request.method.rawValue, route: route, status: status, duration: elapsed)
        let ms = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
        context.logger.info("\(request.method.rawValue) \(request.uri.path) \(status)", metadata: [
            "http.route": "\(route)", "http.status": "\(status)", "http.duration_ms": "\(String(format: "%.2f", ms))",
            "user.id": "\(context.notes.userId.withLock { $0 })",
        ])
        requestLog.append(RequestRecord(timeUnixMs: nowUnixMs(), requestId: context.requestId, method: request.method.rawValue,
                                        route: route, status: status, durationMs: ms, userId: context.notes.userId.withLock { $0 },
                                        ip: context.clientIP))
        return response
    }

    /// The caller's X-Request-Id when it is short and plain, else a new one.
    static func requestId(from request: Request) -> String {
        if let given = request.headers[HTTPField.Name("X-Request-Id")!], (1...64).contains(given.count),
           given.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) {
            return given
        }
        return UUID().uuidString.lowercased()
    }

    /// `/api/datasets/:id` → `/api/datasets/{id}` (the OpenAPI form, used as the metrics label).
    static func template(_ path: String) -> String {
        path.split(separator: "/", omittingEmptySubsequences: false)
            .map { $0.hasPrefix(":") ? "{\($0.dropFirst())}" : String($0) }.joined(separator: "/")
    }
}

/// Request counts and latencies by route, for `/metrics`.
final class APIMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    static let buckets: [Duration] = [.milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
                                      .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(5)]

    func record(method: String, route: String, status: Int, duration: Duration) {
        registry.makeCounter(descriptor: .init(namespace: "nebula", metricName: "http_requests", unitName: "total",
                                               helpText: "HTTP requests by method, route and status"),
                             labels: [("method", method), ("route", route), ("status", String(status))]).increment()
        registry.makeDurationHistogram(descriptor: .init(namespace: "nebula", metricName: "http_request_duration",
                                                         unitName: "seconds", helpText: "HTTP request latency by route"),
                                       labels: [("method", method), ("route", route)], buckets: Self.buckets).record(duration)
    }

    func set(_ name: String, help: String, label: String, values: [String: Int]) {
        for (key, value) in values {
            registry.makeGauge(descriptor: .init(namespace: "nebula", metricName: name, unitName: "", helpText: help),
                               labels: [(label, key)]).set(Double(value))
        }
    }
}
