import Foundation
import HummingbirdBcrypt
import Logging
import NebulaCommon
import Synchronization

/// Registration, sign-in, token exchange, sessions and user management (Note [Token design],
/// Note [Roles and tenancy]). Knows nothing of HTTP; throws `APIError`s.
final class AuthService: Sendable {
    let users: UserStore
    let tokens: TokenIssuer
    let configuration: APIConfiguration
    let logger: Logger
    private let revoked = Mutex<Set<String>>([])

    struct TokenPair: Codable, Sendable {
        var accessToken: String
        var refreshToken: String
        var tokenType = "Bearer"
        var expiresIn: Int
        var user: UserRecord
    }

    init(users: UserStore, tokens: TokenIssuer, configuration: APIConfiguration, logger: Logger) {
        self.users = users
        self.tokens = tokens
        self.configuration = configuration
        self.logger = logger
        dummyHash = Bcrypt.hash("nebula-dummy-password-\(UInt64.random(in: 0...UInt64.max))", cost: UInt8(configuration.bcryptCost))
    }

    /// Loads recent revocations and makes the configured admin when there is no admin yet.
    func start() async throws {
        let recent = try await users.recentlyRevoked(withinSeconds: Int(tokens.accessLifetime.components.seconds) + 60)
        revoked.withLock { $0.formUnion(recent) }
        if let admin = configuration.bootstrapAdmin, try await users.countAdmins() == 0 {
            let hash = await hashPassword(admin.password)
            if try await users.insert(email: admin.email, name: "admin", role: .admin, passwordHash: hash) != nil {
                logger.notice("bootstrap admin created", metadata: ["user.email": "\(admin.email)"])
            } else {
                logger.warning("NEBULA_ADMIN_EMAIL names an existing non-admin user; no admin was created",
                               metadata: ["user.email": "\(admin.email)"])
            }
        }
    }

    // MARK: Passwords (bcrypt on a thread of its own: ~0.25 s of CPU at cost 12)

    func hashPassword(_ password: String) async -> String {
        let cost = UInt8(configuration.bcryptCost)
        return (try? await runOnThread(name: "nebula.bcrypt") { Bcrypt.hash(password, cost: cost) }) ?? ""
    }

    func checkPassword(_ password: String, _ hash: String) async -> Bool {
        (try? await runOnThread(name: "nebula.bcrypt") { Bcrypt.verify(password, hash: hash) }) ?? false
    }

    /// A hash to check against when the e-mail is unknown, at the configured cost, so an unknown
    /// e-mail takes as long to refuse as a wrong password (no account enumeration by timing).
    private let dummyHash: String

    // MARK: Flows

    func register(email: String, password: String, name: String, role: UserRole = .member, userAgent: String, ip: String,
                  signIn: Bool = true) async throws -> (UserRecord, TokenPair?) {
        try UserValidation.email(email)
        try UserValidation.password(password)
        try UserValidation.name(name)
        let hash = await hashPassword(password)
        guard let user = try await users.insert(email: email, name: name, role: role, passwordHash: hash) else {
            throw APIError(.conflict, "email_taken", "a user with e-mail \(email) exists; sign in or use another address",
                           details: ["field": "email"])
        }
        logger.info("user registered", metadata: ["user.id": "\(user.id)", "user.role": "\(role.rawValue)"])
        return (user, signIn ? try await openSession(user, userAgent: userAgent, ip: ip) : nil)
    }

    func login(email: String, password: String, userAgent: String, ip: String) async throws -> TokenPair {
        let found = try await users.byEmail(email)
        let ok = await checkPassword(password, found?.hash ?? dummyHash)
        guard let (user, _) = found, ok else {
            throw APIError(.unauthorized, "invalid_credentials", "wrong e-mail or password")
        }
        return try await openSession(user, userAgent: userAgent, ip: ip)
    }

    private func openSession(_ user: UserRecord, userAgent: String, ip: String) async throws -> TokenPair {
        let (refresh, hash) = TokenIssuer.newRefreshToken()
        let sid = try await users.createSession(userId: user.id,
                                                expiresInSeconds: Int(configuration.refreshTokenLifetime.components.seconds),
                                                userAgent: userAgent, ip: ip, tokenHash: hash)
        let access = try await tokens.accessToken(for: AuthenticatedUser(id: user.id, role: user.role, sessionId: sid))
        return TokenPair(accessToken: access, refreshToken: refresh, expiresIn: Int(tokens.accessLifetime.components.seconds),
                         user: user)
    }

    func refresh(_ token: String) async throws -> TokenPair {
        let (next, nextHash) = TokenIssuer.newRefreshToken()
        switch try await users.rotate(oldHash: TokenIssuer.hash(token), newHash: nextHash) {
        case .unknown:
            throw APIError(.unauthorized, "invalid_refresh_token", "this refresh token is not known; sign in again")
        case .expired:
            throw APIError(.unauthorized, "refresh_token_expired", "this session has expired; sign in again")
        case .revoked:
            throw APIError(.unauthorized, "session_revoked", "this session was signed out; sign in again")
        case .reused(let uid, let sid):
            markRevoked([sid])
            logger.warning("refresh token reused: session revoked", metadata: ["user.id": "\(uid)", "session.id": "\(sid)"])
            throw APIError(.unauthorized, "refresh_token_reused",
                           "this refresh token was already used, so it may have been copied: the session is now signed out everywhere it was used; sign in again")
        case .rotated(let uid, let sid):
            guard let (user, _) = try await users.byId(uid) else {
                throw APIError(.unauthorized, "invalid_refresh_token", "the user of this session no longer exists")
            }
            let access = try await tokens.accessToken(for: AuthenticatedUser(id: uid, role: user.role, sessionId: sid))
            return TokenPair(accessToken: access, refreshToken: next, expiresIn: Int(tokens.accessLifetime.components.seconds),
                             user: user)
        }
    }

    /// The caller of a bearer token, or nil (Note [Token design]).
    func authenticate(bearer token: String) async -> AuthenticatedUser? {
        guard let claims = await tokens.verify(token), let role = UserRole(rawValue: claims.role) else { return nil }
        if revoked.withLock({ $0.contains(claims.sid) }) { return nil }
        return AuthenticatedUser(id: claims.sub.value, role: role, sessionId: claims.sid)
    }

    func markRevoked(_ sessions: [String]) { revoked.withLock { $0.formUnion(sessions) } }

    func logout(_ user: AuthenticatedUser, everywhere: Bool) async throws -> Int {
        let ids = try await users.revoke(userId: user.id, sessionId: everywhere ? nil : user.sessionId,
                                         reason: everywhere ? "signed out everywhere" : "signed out")
        markRevoked(ids + [user.sessionId])
        return ids.count
    }

    func revokeSession(_ user: AuthenticatedUser, sessionId: String) async throws {
        guard UUID(uuidString: sessionId) != nil else { throw APIError.notFound("session \(sessionId)") }
        let ids = try await users.revoke(userId: user.id, sessionId: sessionId, reason: "revoked by the user")
        guard !ids.isEmpty else { throw APIError.notFound("session \(sessionId)") }
        markRevoked(ids)
    }

    func changePassword(_ user: AuthenticatedUser, current: String, new: String) async throws {
        guard let (_, hash) = try await users.byId(user.id) else { throw APIError.unauthorized }
        guard await checkPassword(current, hash) else {
            throw APIError(.forbidden, "invalid_credentials", "the current password is wrong", details: ["field": "current_password"])
        }
        try UserValidation.password(new, field: "new_password")
        _ = try await users.update(id: user.id, email: nil, name: nil, role: nil, passwordHash: await hashPassword(new))
        // Every other session ends: whoever knew the old password is signed out.
        markRevoked(try await users.revoke(userId: user.id, except: user.sessionId, reason: "password changed"))
    }

    /// Admin changes: a role change signs the user out everywhere (their tokens carry the old role).
    func adminUpdate(id: String, email: String?, name: String?, role: UserRole?, password: String?) async throws -> UserRecord {
        if let email { try UserValidation.email(email) }
        if let name { try UserValidation.name(name) }
        if let password { try UserValidation.password(password) }
        guard let (before, _) = try await users.byId(id) else { throw APIError.notFound("user \(id)") }
        if before.role == .admin, let role, role != .admin, try await users.countAdmins() <= 1 {
            throw APIError(.conflict, "last_admin", "this is the only admin; make another admin first", details: ["field": "role"])
        }
        let hash: String? = if let password { await hashPassword(password) } else { nil }
        guard let after = try await users.update(id: id, email: email, name: name, role: role, passwordHash: hash) else {
            throw APIError.notFound("user \(id)")
        }
        if before.role != after.role || password != nil {
            markRevoked(try await users.revoke(userId: id, reason: "changed by an admin"))
        }
        return after
    }
}
