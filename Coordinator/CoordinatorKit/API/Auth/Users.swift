import Foundation
import NebulaStore

/// What a user may do (Note [Roles and tenancy]).
public enum UserRole: String, Codable, Sendable, CaseIterable {
    case admin, member, viewer

    /// Members and admins create, change and delete; viewers only read their own objects.
    var canWrite: Bool { self != .viewer }
}

// Note [Roles and tenancy]
// ~~~~~~~~~~~~~~~~~~~~~~~~
// admin: everything, every user's objects, user management, the cluster routes.
// member: creates datasets and jobs and acts on its own.
// viewer: reads its own objects (an admin may create datasets or jobs for it); no writes.
// Objects carry their owner's user id (`datasets.owner`, `jobs.user_name`); objects made through the
// gRPC admin CLI belong to 'admin' and are visible to admins only. Asking for another user's object
// answers 404 exactly as for one that does not exist, so ids cannot be probed.

/// A row of `users` without the password hash.
public struct UserRecord: Codable, Sendable, Equatable {
    public var id: String
    public var email: String
    public var name: String
    public var role: UserRole
    public var createdAt: String
    public var updatedAt: String
}

/// Field checks shared by registration, profile updates, admin user management and bootstrap.
enum UserValidation {
    static func email(_ email: String, field: String = "email") throws {
        let parts = email.split(separator: "@", omittingEmptySubsequences: false)
        guard email.count <= 254, parts.count == 2, !parts[0].isEmpty, parts[1].contains("."), !parts[1].hasPrefix("."),
              !parts[1].hasSuffix("."), !email.contains(where: { $0.isWhitespace })
        else { throw APIError.validation(field, "'\(email)' is not an e-mail address (name@example.org)") }
    }

    static func password(_ password: String, field: String = "password") throws {
        guard password.count >= 10 else { throw APIError.validation(field, "use at least 10 characters") }
        // bcrypt reads at most 72 bytes; longer passwords would be silently cut.
        guard password.utf8.count <= 72 else { throw APIError.validation(field, "use at most 72 bytes (bcrypt's limit)") }
    }

    static func name(_ name: String, field: String = "name") throws {
        guard name.count <= 100 else { throw APIError.validation(field, "use at most 100 characters") }
    }
}

/// `users`, `sessions` and `refresh_tokens`.
struct UserStore: Sendable {
    let pool: PostgresPool
    private var client: PostgresClient { pool.client }

    static let columns = """
        id::text AS id, email, name, role, password_hash,
        to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS created,
        to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS updated
        """

    static func user(_ r: PGRow) throws -> (UserRecord, hash: String) {
        (UserRecord(id: try r.string("id"), email: try r.string("email"), name: try r.string("name"),
                    role: UserRole(rawValue: try r.string("role")) ?? .viewer, createdAt: try r.string("created"),
                    updatedAt: try r.string("updated")),
         try r.string("password_hash"))
    }

    func insert(email: String, name: String, role: UserRole, passwordHash: String) async throws -> UserRecord? {
        try await client.query("""
            INSERT INTO users (id, email, name, role, password_hash) VALUES (gen_random_uuid(), $1, $2, $3, $4)
            ON CONFLICT DO NOTHING RETURNING \(Self.columns)
            """, [.text(email), .text(name), .text(role.rawValue), .text(passwordHash)]).first.map { try Self.user($0).0 }
    }

    func byEmail(_ email: String) async throws -> (UserRecord, hash: String)? {
        try await client.query("SELECT \(Self.columns) FROM users WHERE lower(email) = lower($1)", [.text(email)])
            .first.map(Self.user)
    }

    func byId(_ id: String) async throws -> (UserRecord, hash: String)? {
        guard UUID(uuidString: id) != nil else { return nil }
        return try await client.query("SELECT \(Self.columns) FROM users WHERE id = $1::uuid", [.text(id)]).first.map(Self.user)
    }

    func list(limit: Int, offset: Int) async throws -> (users: [UserRecord], total: Int) {
        let (rows, total) = try await client.withConnection { conn in
            (try conn.query("SELECT \(Self.columns) FROM users ORDER BY created_at, id LIMIT $1 OFFSET $2",
                            [PGValue(limit), PGValue(offset)]),
             try conn.query("SELECT count(*) AS n FROM users"))
        }
        return (try rows.map { try Self.user($0).0 }, try total.first?.int("n") ?? 0)
    }

    func countAdmins() async throws -> Int {
        try await client.query("SELECT count(*) AS n FROM users WHERE role = 'admin'").first?.int("n") ?? 0
    }

    func update(id: String, email: String?, name: String?, role: UserRole?, passwordHash: String?) async throws -> UserRecord? {
        try await client.query("""
            UPDATE users SET email = coalesce($2, email), name = coalesce($3, name), role = coalesce($4, role),
                password_hash = coalesce($5, password_hash), updated_at = now()
            WHERE id = $1::uuid RETURNING \(Self.columns)
            """, [.text(id), PGValue(email), PGValue(name), PGValue(role?.rawValue), PGValue(passwordHash)])
            .first.map { try Self.user($0).0 }
    }

    func delete(id: String) async throws -> Bool {
        try await client.execute("DELETE FROM users WHERE id = $1::uuid", [.text(id)]) > 0
    }

    // MARK: Sessions

    struct Session: Codable, Sendable {
        var id: String
        var createdAt: String
        var lastUsedAt: String
        var expiresAt: String
        var userAgent: String
        var ip: String
        var current: Bool?
    }

    func createSession(userId: String, expiresInSeconds: Int, userAgent: String, ip: String, tokenHash: String) async throws -> String {
        try await client.withConnection { conn in
            try conn.transaction { conn in
                let id = try conn.query("""
                    INSERT INTO sessions (id, user_id, expires_at, user_agent, ip)
                    VALUES (gen_random_uuid(), $1::uuid, now() + make_interval(secs => $2), $3, $4) RETURNING id::text AS id
                    """, [.text(userId), PGValue(expiresInSeconds), .text(String(userAgent.prefix(300))), .text(ip)])
                    .first!.string("id")
                _ = try conn.execute("INSERT INTO refresh_tokens (token_hash, session_id) VALUES ($1, $2::uuid)",
                                     [.text(tokenHash), .text(id)])
                return id
            }
        }
    }

    enum RotateOutcome: Sendable {
        case rotated(userId: String, sessionId: String)
        case unknown
        case expired
        case revoked
        /// A token that was already exchanged: the whole session (token family) is now revoked.
        case reused(userId: String, sessionId: String)
    }

    /// Exchanges a refresh token for `newHash` in one transaction (the old row is locked, so two
    /// concurrent exchanges of one token cannot both succeed: the second is a reuse).
    func rotate(oldHash: String, newHash: String) async throws -> RotateOutcome {
        try await client.withConnection { conn in
            try conn.transaction { conn -> RotateOutcome in
                guard let row = try conn.query("""
                    SELECT t.session_id::text AS sid, t.used_at IS NOT NULL AS used, s.user_id::text AS uid,
                           s.revoked_at IS NOT NULL AS revoked, s.expires_at < now() AS expired
                    FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id
                    WHERE t.token_hash = $1 FOR UPDATE OF t, s
                    """, [.text(oldHash)]).first
                else { return .unknown }
                let sid = try row.string("sid"), uid = try row.string("uid")
                if try row.bool("revoked") { return .revoked }
                if try row.bool("used") {
                    _ = try conn.execute("""
                        UPDATE sessions SET revoked_at = now(), revoked_reason = 'refresh token reused' WHERE id = $1::uuid
                        """, [.text(sid)])
                    return .reused(userId: uid, sessionId: sid)
                }
                if try row.bool("expired") { return .expired }
                _ = try conn.execute("UPDATE refresh_tokens SET used_at = now() WHERE token_hash = $1", [.text(oldHash)])
                _ = try conn.execute("INSERT INTO refresh_tokens (token_hash, session_id) VALUES ($1, $2::uuid)",
                                     [.text(newHash), .text(sid)])
                _ = try conn.execute("UPDATE sessions SET last_used_at = now() WHERE id = $1::uuid", [.text(sid)])
                return .rotated(userId: uid, sessionId: sid)
            }
        }
    }

    func sessions(of userId: String) async throws -> [Session] {
        try await client.query("""
            SELECT id::text AS id, user_agent, ip,
                to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS created,
                to_char(last_used_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS used,
                to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS expires
            FROM sessions WHERE user_id = $1::uuid AND revoked_at IS NULL AND expires_at > now()
            ORDER BY created_at DESC
            """, [.text(userId)]).map {
            Session(id: try $0.string("id"), createdAt: try $0.string("created"), lastUsedAt: try $0.string("used"),
                    expiresAt: try $0.string("expires"), userAgent: try $0.string("user_agent"), ip: try $0.string("ip"))
        }
    }

    /// Revokes sessions of a user: one (`sessionId`), all but one (`except`), or all. Returns their ids.
    func revoke(userId: String, sessionId: String? = nil, except: String? = nil, reason: String) async throws -> [String] {
        try await client.query("""
            UPDATE sessions SET revoked_at = now(), revoked_reason = $4
            WHERE user_id = $1::uuid AND revoked_at IS NULL AND ($2::uuid IS NULL OR id = $2::uuid)
              AND ($3::uuid IS NULL OR id <> $3::uuid)
            RETURNING id::text AS id
            """, [.text(userId), PGValue(sessionId), PGValue(except), .text(reason)]).map { try $0.string("id") }
    }

    /// Sessions revoked recently enough that an access token of theirs may still be unexpired.
    func recentlyRevoked(withinSeconds: Int) async throws -> [String] {
        try await client.query("""
            SELECT id::text AS id FROM sessions WHERE revoked_at > now() - make_interval(secs => $1)
            """, [PGValue(withinSeconds)]).map { try $0.string("id") }
    }
}
