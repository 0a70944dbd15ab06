import Foundation
import JWTKit
import NebulaCommon

/// The claims of an access token: who (sub), which session (sid), which role, until when.
struct AccessClaims: JWTPayload, Equatable {
    var sub: SubjectClaim
    var sid: String
    var role: String
    var iss: IssuerClaim
    var iat: IssuedAtClaim
    var exp: ExpirationClaim

    static let issuer = "nebula"

    func verify(using algorithm: some JWTAlgorithm) throws {
        try exp.verifyNotExpired()
        guard iss.value == Self.issuer else {
            throw JWTError.claimVerificationFailure(failedClaim: iss, reason: "issuer is not \(Self.issuer)")
        }
    }
}

/// The signed-in caller of a request.
public struct AuthenticatedUser: Sendable, Equatable {
    public var id: String
    public var role: UserRole
    public var sessionId: String
    /// Objects made through the gRPC admin CLI carry this owner; only admins see them.
    static let cliOwner = "admin"

    func owns(_ owner: String) -> Bool { role == .admin || owner == id }
}

// Note [Token design]
// ~~~~~~~~~~~~~~~~~~~
// Access tokens are HS256 JWTs (15 minutes by default) checked without a database round trip: the
// signature, `alg` (only HS256 is accepted; `none` and every other algorithm are refused before the
// signature is even looked at), issuer, expiry, and that their session is not in the in-memory set of
// revoked sessions (loaded at start for the access-token lifetime, updated on every revocation), so
// logout takes effect at once. Refresh tokens are 32 random bytes (base64url), stored only as SHA-256
// hashes, exchanged exactly once: each exchange marks the old one used and issues a new one in the same
// session. Presenting a used one again means it was copied, so the whole session (the token family)
// is revoked and both holders must sign in again (RFC 6819 §5.2.2.3, OAuth 2.0 Security BCP §4.14).

/// Signs and checks access tokens, makes refresh tokens.
final class TokenIssuer: Sendable {
    private let keys: JWTKeyCollection
    let accessLifetime: Duration

    init(secret: [UInt8], accessLifetime: Duration) async {
        keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
        self.accessLifetime = accessLifetime
    }

    func accessToken(for user: AuthenticatedUser) async throws -> String {
        let now = Date()
        let claims = AccessClaims(sub: .init(value: user.id), sid: user.sessionId, role: user.role.rawValue,
                                  iss: .init(value: AccessClaims.issuer), iat: .init(value: now),
                                  exp: .init(value: now.addingTimeInterval(Double(accessLifetime.components.seconds))))
        return try await keys.sign(claims)
    }

    /// The token's claims, or nil when it is malformed, not HS256, badly signed, expired or foreign.
    func verify(_ token: String) async -> AccessClaims? {
        guard Self.algorithm(of: token) == "HS256" else { return nil }
        return try? await keys.verify(token, as: AccessClaims.self)
    }

    /// The `alg` of a JWT's header, read without trusting anything else in it.
    static func algorithm(of token: String) -> String? {
        guard let header = token.split(separator: ".", omittingEmptySubsequences: false).first,
              let data = base64URLDecode(String(header)),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return nil }
        return object["alg"] as? String
    }

    /// A new refresh token and the hash that is stored.
    static func newRefreshToken() -> (token: String, hash: String) {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let token = base64URLEncode(bytes)
        return (token, hash(token))
    }

    static func hash(_ refreshToken: String) -> String {
        NebulaCommon.SHA256.hex(NebulaCommon.SHA256.hash(Array(refreshToken.utf8)))
    }
}

func base64URLEncode(_ bytes: [UInt8]) -> String {
    Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
        .replacingOccurrences(of: "=", with: "")
}

func base64URLDecode(_ text: String) -> Data? {
    var s = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
    while s.count % 4 != 0 { s += "=" }
    return Data(base64Encoded: s)
}
