import Foundation
import NebulaCommon

/// Settings of the REST API (`/api/...`, `/healthz`, `/metrics`) the coordinator serves over HTTP.
/// Secrets (the JWT key, the bootstrap admin's password) come from files or the environment and are
/// never logged.
public struct APIConfiguration: Sendable {
    /// `host:port`; nil serves no HTTP at all.
    public var listen: String? = "0.0.0.0:8080"
    /// HMAC-SHA-256 key for access tokens (at least 32 bytes). Nil: a key kept in `<data dir>/api/jwt.key`
    /// (made on first start, mode 0600), so tokens survive restarts.
    public var jwtSecret: [UInt8]?
    public var accessTokenLifetime: Duration = .seconds(15 * 60)
    public var refreshTokenLifetime: Duration = .seconds(30 * 24 * 3600)
    /// bcrypt work factor (2^cost rounds). 12 takes ~0.25 s here; tests may lower it.
    public var bcryptCost = 12
    /// The admin made on first start when no admin exists (NEBULA_ADMIN_EMAIL / NEBULA_ADMIN_PASSWORD).
    public var bootstrapAdmin: (email: String, password: String)?
    /// Anyone may register (as a member); false: only admins create users.
    public var openRegistration = true
    /// Origins allowed by CORS (exact match, e.g. `https://lab.example.org`); empty: no CORS headers.
    public var corsOrigins: [String] = []
    /// Largest JSON body.
    public var maxJSONBytes = 1 << 20
    /// Largest multipart upload (all parts together); nil: the dataset service's --max-upload.
    public var maxUploadBytes: UInt64?
    /// Token buckets per route group (Note [Rate limits]).
    public var rateLimits = RateLimitTable()
    /// PostgreSQL connections of the API (reads of users, sessions, datasets run in parallel on them).
    public var databaseConnections = 4
    /// PEM certificate chain and private key: with both, the API speaks HTTPS only.
    public var tlsCertificate: String?
    public var tlsKey: String?
    /// How long request records are kept in `api_requests`.
    public var requestLogRetention: Duration = .seconds(30 * 24 * 3600)
    /// How often request records are written to PostgreSQL.
    public var requestLogFlushInterval: Duration = .seconds(1)

    public init() {}

    func validate() throws {
        if let secret = jwtSecret, secret.count < 32 {
            throw ConfigurationError("the JWT secret must have at least 32 bytes (NEBULA_JWT_SECRET or --jwt-secret-file)")
        }
        guard (1...64).contains(databaseConnections) else { throw ConfigurationError("--http-db-connections must be between 1 and 64") }
        guard requestLogRetention >= .seconds(1) else { throw ConfigurationError("--request-log-retention must be at least 1s") }
        guard (4...31).contains(bcryptCost) else { throw ConfigurationError("--bcrypt-cost must be between 4 and 31") }
        if let admin = bootstrapAdmin {
            try UserValidation.email(admin.email, field: "NEBULA_ADMIN_EMAIL")
            try UserValidation.password(admin.password, field: "NEBULA_ADMIN_PASSWORD")
        }
        if (tlsCertificate == nil) != (tlsKey == nil) {
            throw ConfigurationError("HTTPS needs both a certificate and a key (--http-tls-cert and --http-tls-key)")
        }
        for origin in corsOrigins where !(origin.hasPrefix("http://") || origin.hasPrefix("https://")) || origin.hasSuffix("/") {
            throw ConfigurationError("CORS origin '\(origin)' must look like https://host[:port] (no path, no trailing slash)")
        }
    }
}

// Note [Rate limits]
// ~~~~~~~~~~~~~~~~~~
// Token buckets (capacity = burst, refilled at `perMinute`/60 per second), one per (group, user) for
// signed-in requests and one per (group, client IP) for every request, so one user cannot exhaust the
// API from many addresses and one address cannot from many accounts. Login and registration have their
// own group keyed by IP and by e-mail, so password guessing is slow whatever else the client does.
// A refused request gets 429 with `Retry-After` (seconds until one token is back) and the
// `RateLimit-Limit` / `RateLimit-Remaining` / `RateLimit-Reset` fields of the IETF draft on every answer
// of a limited route.

/// One group's limit.
public struct RateLimit: Sendable, Equatable, CustomStringConvertible {
    public var perMinute: Double
    public var burst: Int
    public init(perMinute: Double, burst: Int) {
        self.perMinute = perMinute
        self.burst = burst
    }
    public var description: String {
        let rate = perMinute == perMinute.rounded() ? "\(Int(perMinute))" : "\(perMinute)"
        return "\(rate)/min burst \(burst)"
    }
}

/// Route groups and their limits; `--rate-limit GROUP=N/min[:BURST]` changes one.
public struct RateLimitTable: Sendable, Equatable {
    public static let groups = ["auth", "read", "write", "upload"]
    public var limits: [String: RateLimit] = [
        "auth": RateLimit(perMinute: 10, burst: 10),
        "read": RateLimit(perMinute: 600, burst: 120),
        "write": RateLimit(perMinute: 120, burst: 30),
        "upload": RateLimit(perMinute: 20, burst: 5),
    ]
    /// The per-IP bucket is this many times the per-user one (several users behind one NAT).
    public var ipMultiplier: Double = 4

    public init() {}

    /// Parses `GROUP=N/min[:BURST]` (or `GROUP=off`).
    public mutating func set(_ spec: String) throws {
        let parts = spec.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2, Self.groups.contains(parts[0]) else {
            throw ConfigurationError("--rate-limit '\(spec)': use GROUP=N/min[:BURST] with GROUP one of \(Self.groups.joined(separator: ", "))")
        }
        if parts[1] == "off" {
            limits[parts[0]] = nil
            return
        }
        let fields = parts[1].split(separator: ":").map(String.init)
        guard let rateText = fields.first, rateText.hasSuffix("/min"), let rate = Double(rateText.dropLast(4)), rate > 0,
              fields.count <= 2
        else {
            throw ConfigurationError("--rate-limit '\(spec)': the rate must look like 120/min (optionally :BURST)")
        }
        let burst = fields.count == 2 ? Int(fields[1]) : max(1, Int(rate / 5))
        guard let burst, burst >= 1 else { throw ConfigurationError("--rate-limit '\(spec)': the burst must be a whole number ≥ 1") }
        limits[parts[0]] = RateLimit(perMinute: rate, burst: burst)
    }
}
