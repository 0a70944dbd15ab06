import Foundation
import Hummingbird
import NebulaModel

extension APIRoutes {
    struct Credentials: Decodable {
        var email: String
        var password: String
        var name: String?
    }

    struct RefreshBody: Decodable {
        var refreshToken: String
    }

    func registerAuth() {
        let auth = self.auth
        let limit = configuration.maxJSONBytes
        let table = self.table
        let authLimit = configuration.rateLimits.limits["auth"]
        let credentialsBody = RouteSpec.RequestBodyKind.json(schema: "Credentials", required: ["email", "password"],
                                                             properties: ["email": "string", "password": "string", "name": "string"])

        add(RouteSpec(method: .post, path: "/api/auth/register", access: .public, group: "auth", tag: "auth",
                      summary: "Create an account (role member) and sign in", body: credentialsBody, success: 201)) { request, context in
            guard auth.configuration.openRegistration else {
                throw APIError.forbidden("registration is closed on this coordinator; ask an admin to create your account")
            }
            var request = request
            let body = try await request.decodeJSON(Credentials.self, context: context, limit: limit)
            let (_, pair) = try await auth.register(email: body.email, password: body.password, name: body.name ?? "",
                                                    userAgent: Self.userAgent(request), ip: context.clientIP)
            return try jsonResponse(pair, status: .created)
        }

        add(RouteSpec(method: .post, path: "/api/auth/login", access: .public, group: "auth", tag: "auth",
                      summary: "Sign in: an access token and a refresh token", body: credentialsBody)) { request, context in
            var request = request
            let body = try await request.decodeJSON(Credentials.self, context: context, limit: limit)
            // Guessing one account's password from many addresses is limited too (Note [Rate limits]).
            if let authLimit {
                _ = try table.gate.check(group: "auth", limit: authLimit, key: "email:" + body.email.lowercased())
            }
            return try jsonResponse(try await auth.login(email: body.email, password: body.password,
                                                         userAgent: Self.userAgent(request), ip: context.clientIP))
        }

        add(RouteSpec(method: .post, path: "/api/auth/refresh", access: .public, group: "auth", tag: "auth",
                      summary: "Exchange a refresh token (once) for a new pair",
                      body: .json(schema: "Refresh", required: ["refresh_token"], properties: ["refresh_token": "string"]))) {
            request, context in
            var request = request
            let body = try await request.decodeJSON(RefreshBody.self, context: context, limit: limit)
            return try jsonResponse(try await auth.refresh(body.refreshToken))
        }

        add(RouteSpec(method: .post, path: "/api/auth/logout", access: .user, group: nil, tag: "auth",
                      summary: "Sign out this session", success: 204)) { _, context in
            _ = try await auth.logout(try context.account(), everywhere: false)
            return Response(status: .noContent)
        }

        add(RouteSpec(method: .post, path: "/api/auth/logout-all", access: .user, group: nil, tag: "auth",
                      summary: "Sign out every session of this user")) { _, context in
            let n = try await auth.logout(try context.account(), everywhere: true)
            return try jsonResponse(["revoked_sessions": n])
        }

        add(RouteSpec(method: .get, path: "/api/auth/sessions", access: .user, group: "read", tag: "auth",
                      summary: "This user's active sessions")) { _, context in
            let user = try context.account()
            var sessions = try await auth.users.sessions(of: user.id)
            for i in sessions.indices { sessions[i].current = sessions[i].id == user.sessionId }
            return try jsonResponse(["sessions": sessions])
        }

        add(RouteSpec(method: .delete, path: "/api/auth/sessions/{id}", access: .user, group: "write", tag: "auth",
                      summary: "Sign out one session", success: 204)) { _, context in
            try await auth.revokeSession(try context.account(), sessionId: try Self.parameter(context, "id"))
            return Response(status: .noContent)
        }
    }

    // MARK: Users

    struct ProfileUpdate: Decodable {
        var email: String?
        var name: String?
    }

    struct PasswordChange: Decodable {
        var currentPassword: String
        var newPassword: String
    }

    struct AccountDeletion: Decodable {
        var password: String
    }

    struct AdminUserCreate: Decodable {
        var email: String
        var password: String
        var name: String?
        var role: UserRole
    }

    struct AdminUserUpdate: Decodable {
        var email: String?
        var name: String?
        var role: UserRole?
        var password: String?
    }

    func registerUsers() {
        let auth = self.auth
        let limit = configuration.maxJSONBytes
        let routes = self

        add(RouteSpec(method: .get, path: "/api/users/me", access: .user, group: "read", tag: "users",
                      summary: "The signed-in user's profile")) { _, context in
            guard let (user, _) = try await auth.users.byId(try context.account().id) else { throw APIError.unauthorized }
            return try jsonResponse(user)
        }

        add(RouteSpec(method: .patch, path: "/api/users/me", access: .user, group: "read", tag: "users",
                      summary: "Change name or e-mail",
                      body: .json(schema: "ProfileUpdate", required: [], properties: ["email": "string", "name": "string"]))) {
            request, context in
            var request = request
            let body = try await request.decodeJSON(ProfileUpdate.self, context: context, limit: limit)
            if let email = body.email { try UserValidation.email(email) }
            if let name = body.name { try UserValidation.name(name) }
            guard let user = try await auth.users.update(id: try context.account().id, email: body.email, name: body.name, role: nil,
                                                         passwordHash: nil)
            else { throw APIError.unauthorized }
            return try jsonResponse(user)
        }

        add(RouteSpec(method: .post, path: "/api/users/me/password", access: .user, group: "auth", tag: "users",
                      summary: "Change the password (other sessions are signed out)",
                      body: .json(schema: "PasswordChange", required: ["current_password", "new_password"],
                                  properties: ["current_password": "string", "new_password": "string"]), success: 204)) {
            request, context in
            var request = request
            let body = try await request.decodeJSON(PasswordChange.self, context: context, limit: limit)
            try await auth.changePassword(try context.account(), current: body.currentPassword, new: body.newPassword)
            return Response(status: .noContent)
        }

        add(RouteSpec(method: .delete, path: "/api/users/me", access: .user, group: "auth", tag: "users",
                      summary: "Delete the account with its datasets, jobs and builder runs (needs the password)",
                      body: .json(schema: "AccountDeletion", required: ["password"], properties: ["password": "string"]),
                      success: 204)) { request, context in
            var request = request
            let body = try await request.decodeJSON(AccountDeletion.self, context: context, limit: limit)
            let user = try context.account()
            guard let (_, hash) = try await auth.users.byId(user.id) else { throw APIError.unauthorized }
            guard await auth.checkPassword(body.password, hash) else {
                throw APIError(.forbidden, "invalid_credentials", "the password is wrong", details: ["field": "password"])
            }
            if user.role == .admin, try await auth.users.countAdmins() <= 1 {
                throw APIError(.conflict, "last_admin", "this is the only admin; make another admin before deleting it")
            }
            try await routes.deleteUser(user.id)
            return Response(status: .noContent)
        }

        // Admin user management.
        add(RouteSpec(method: .get, path: "/api/users", access: .admin, group: "read", tag: "users",
                      summary: "All users (admin)", query: ["limit": "1–1000, default 50", "offset": "default 0"])) {
            request, _ in
            let (limit, offset) = try Self.page(request)
            let (users, total) = try await auth.users.list(limit: limit, offset: offset)
            return try jsonObjectResponse(["users": try jsonObject(users), "total": total, "limit": limit, "offset": offset])
        }

        add(RouteSpec(method: .post, path: "/api/users", access: .admin, group: "write", tag: "users",
                      summary: "Create a user with a role (admin)",
                      body: .json(schema: "AdminUserCreate", required: ["email", "password", "role"],
                                  properties: ["email": "string", "password": "string", "name": "string", "role": "string"]),
                      success: 201)) { request, context in
            var request = request
            let body = try await request.decodeJSON(AdminUserCreate.self, context: context, limit: limit)
            let (user, _) = try await auth.register(email: body.email, password: body.password, name: body.name ?? "", role: body.role,
                                                    userAgent: "", ip: context.clientIP, signIn: false)
            return try jsonResponse(user, status: .created)
        }

        add(RouteSpec(method: .get, path: "/api/users/{id}", access: .admin, group: "read", tag: "users",
                      summary: "One user (admin)")) { _, context in
            let id = try Self.parameter(context, "id")
            guard let (user, _) = try await auth.users.byId(id) else { throw APIError.notFound("user \(id)") }
            return try jsonResponse(user)
        }

        add(RouteSpec(method: .patch, path: "/api/users/{id}", access: .admin, group: "write", tag: "users",
                      summary: "Change a user's role, name, e-mail or password (admin)",
                      body: .json(schema: "AdminUserUpdate", required: [],
                                  properties: ["email": "string", "name": "string", "role": "string", "password": "string"]))) {
            request, context in
            var request = request
            let body = try await request.decodeJSON(AdminUserUpdate.self, context: context, limit: limit)
            return try jsonResponse(try await auth.adminUpdate(id: try Self.parameter(context, "id"), email: body.email, name: body.name,
                                                               role: body.role, password: body.password))
        }

        add(RouteSpec(method: .delete, path: "/api/users/{id}", access: .admin, group: "write", tag: "users",
                      summary: "Delete a user with their datasets, jobs and builder runs (admin)", success: 204)) { _, context in
            let id = try Self.parameter(context, "id")
            guard let (user, _) = try await auth.users.byId(id) else { throw APIError.notFound("user \(id)") }
            if user.role == .admin, try await auth.users.countAdmins() <= 1 {
                throw APIError(.conflict, "last_admin", "this is the only admin; make another admin first")
            }
            try await routes.deleteUser(id)
            return Response(status: .noContent)
        }
    }

    /// Removes a user and everything they own: builder runs cancelled and deleted with their models and
    /// reports, jobs cancelled and deleted (with their checkpoints), datasets deleted with their files,
    /// sessions revoked.
    func deleteUser(_ id: String) async throws {
        let runs = try await services.builder.deleteRuns(owner: id)
        let jobs = try await services.jobs.owned(by: id)
        for job in jobs where !["completed", "failed", "cancelled"].contains(job.state) {
            _ = try? await services.jobs.cancel(job.id, reason: "the user's account was deleted")
        }
        // Finished jobs go with their events and checkpoints (foreign keys cascade) and files.
        _ = try await pool.client.query("""
            WITH gone AS (DELETE FROM jobs WHERE user_name = $1 AND state IN ('completed', 'failed', 'cancelled') RETURNING id)
            DELETE FROM job_metrics WHERE job_id IN (SELECT id FROM gone)
            """, [.text(id)])
        for job in jobs { try? FileManager.default.removeItem(atPath: dataDirectory + "/jobs/" + job.id) }
        var skipped = 0
        while true {
            let (rows, _) = try await services.datasets.rows(limit: 1000, offset: skipped, owner: id)
            if rows.isEmpty { break }
            for row in rows {
                do { _ = try await services.datasets.delete(row.info.datasetId) } catch { skipped += 1 }
            }
        }
        auth.markRevoked(try await auth.users.revoke(userId: id, reason: "account deleted"))
        _ = try await auth.users.delete(id: id)
        logger.notice("user deleted with their data", metadata: ["user.id": "\(id)", "jobs": "\(jobs.count)", "builder_runs": "\(runs)",
                                                                 "datasets.kept_busy": "\(skipped)"])
    }
}
