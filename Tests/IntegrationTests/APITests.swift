import Foundation
import NebulaHTTP
import NebulaStore
import Logging
import NebulaCommon
import Testing

/// The REST API end to end: a real coordinator process with a real PostgreSQL, called over HTTP with
/// the project's libcurl client.
@Suite("REST API", .enabled(if: IntegrationEnvironment.enabled), .serialized)
struct APITests {
    static let data = IntegrationEnvironment.root.appendingPathComponent("Tests/Data")

    /// A cluster whose JWT key the test knows (to forge tokens), plus `flags`.
    func withAPI(_ flags: [String] = [], agents: [String] = [],
                 _ body: (TestCluster, APIClient, [UInt8]) async throws -> Void) async throws {
        let secret = Array("test-jwt-secret-\(UUID().uuidString)-0123456789".utf8)
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("nebula-jwt-\(UUID().uuidString)")
        try Data(secret).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        // Generous limits unless a test sets its own (a later --rate-limit for a group wins).
        let roomy = ["--rate-limit", "auth=6000/min:1000", "--rate-limit", "upload=6000/min:1000"]
        try await withTestCluster(coordinatorFlags: ["--jwt-secret-file", file.path] + roomy + flags, agents: agents) { cluster in
            let api = APIClient(base: cluster.httpBase)
            try await eventually("the HTTP API answers", timeout: .seconds(120)) {
                (try? await api.call(.get, "/healthz"))?.status == 200
            }
            try await body(cluster, api, secret)
        }
    }

    @Test func authLifecycleRotationAndReuse() async throws {
        try await withAPI { _, api, secret in
            // Register, read the profile.
            let reg = try await api.call(.post, "/api/auth/register",
                                         json: ["email": "ada@example.org", "password": "correct-horse-1", "name": "Ada"])
            #expect(reg.status == 201, "\(reg.text)")
            let access = try #require(reg.json["access_token"] as? String)
            let refresh1 = try #require(reg.json["refresh_token"] as? String)
            let me = try await api.call(.get, "/api/users/me", token: access)
            #expect(me.status == 200 && me.json["email"] as? String == "ada@example.org" && me.json["role"] as? String == "member")
            #expect(me.json["password_hash"] == nil)

            // Duplicate e-mail (any case), short password, bad e-mail: clear 4xx naming the field.
            let dup = try await api.call(.post, "/api/auth/register", json: ["email": "ADA@example.org", "password": "another-pass-1"])
            #expect(dup.status == 409 && dup.errorCode == "email_taken" && dup.errorField == "email")
            let short = try await api.call(.post, "/api/auth/register", json: ["email": "b@example.org", "password": "short"])
            #expect(short.status == 422 && short.errorField == "password", "\(short.text)")
            let badMail = try await api.call(.post, "/api/auth/register", json: ["email": "not-an-email", "password": "long-enough-1"])
            #expect(badMail.status == 422 && badMail.errorField == "email")

            // Wrong password and unknown user answer the same.
            let wrong = try await api.call(.post, "/api/auth/login", json: ["email": "ada@example.org", "password": "wrong-password"])
            let unknown = try await api.call(.post, "/api/auth/login", json: ["email": "nobody@example.org", "password": "wrong-password"])
            #expect(wrong.status == 401 && unknown.status == 401 && wrong.errorCode == unknown.errorCode)

            // Rotation: refresh1 → refresh2; using refresh1 again revokes the family, refresh2 too.
            let r2 = try await api.call(.post, "/api/auth/refresh", json: ["refresh_token": refresh1])
            #expect(r2.status == 200, "\(r2.text)")
            let refresh2 = try #require(r2.json["refresh_token"] as? String)
            let access2 = try #require(r2.json["access_token"] as? String)
            #expect(refresh2 != refresh1)
            #expect(try await api.call(.get, "/api/users/me", token: access2).status == 200)
            let reuse = try await api.call(.post, "/api/auth/refresh", json: ["refresh_token": refresh1])
            #expect(reuse.status == 401 && reuse.errorCode == "refresh_token_reused", "\(reuse.text)")
            let after = try await api.call(.post, "/api/auth/refresh", json: ["refresh_token": refresh2])
            #expect(after.status == 401 && after.errorCode == "session_revoked", "\(after.text)")
            #expect(try await api.call(.get, "/api/users/me", token: access2).status == 401, "the family's access tokens die with it")
            let garbage = try await api.call(.post, "/api/auth/refresh", json: ["refresh_token": "not-a-token"])
            #expect(garbage.status == 401 && garbage.errorCode == "invalid_refresh_token")

            // Sessions: two sign-ins, list, revoke one, logout, logout-all.
            let s1 = try await api.login("ada@example.org", "correct-horse-1")
            let s2 = try await api.login("ada@example.org", "correct-horse-1")
            let list = try await api.call(.get, "/api/auth/sessions", token: s1.access)
            let sessions = try #require(list.json["sessions"] as? [[String: Any]])
            #expect(sessions.count == 2 && sessions.filter { $0["current"] as? Bool == true }.count == 1, "\(list.text)")
            let other = try #require(sessions.first { $0["current"] as? Bool != true }?["id"] as? String)
            #expect(try await api.call(.delete, "/api/auth/sessions/\(other)", token: s1.access).status == 204)
            #expect(try await api.call(.get, "/api/users/me", token: s2.access).status == 401, "revoked session's token refused")
            #expect(try await api.call(.post, "/api/auth/logout", token: s1.access).status == 204)
            #expect(try await api.call(.get, "/api/users/me", token: s1.access).status == 401)
            let s3 = try await api.login("ada@example.org", "correct-horse-1")
            let s4 = try await api.login("ada@example.org", "correct-horse-1")
            let all = try await api.call(.post, "/api/auth/logout-all", token: s3.access)
            #expect(all.status == 200 && all.json["revoked_sessions"] as? Int == 2)
            #expect(try await api.call(.get, "/api/users/me", token: s4.access).status == 401)

            // Password change: wrong current refused; other sessions end; the new password works.
            let p1 = try await api.login("ada@example.org", "correct-horse-1")
            let p2 = try await api.login("ada@example.org", "correct-horse-1")
            let bad = try await api.call(.post, "/api/users/me/password", token: p1.access,
                                         json: ["current_password": "nope-nope-nope", "new_password": "battery-staple-2"])
            #expect(bad.status == 403)
            let ok = try await api.call(.post, "/api/users/me/password", token: p1.access,
                                        json: ["current_password": "correct-horse-1", "new_password": "battery-staple-2"])
            #expect(ok.status == 204, "\(ok.text)")
            #expect(try await api.call(.get, "/api/users/me", token: p1.access).status == 200, "the changing session stays")
            #expect(try await api.call(.get, "/api/users/me", token: p2.access).status == 401, "other sessions end")
            _ = try await api.login("ada@example.org", "battery-staple-2")

            // Forged tokens: expired, tampered, alg none, another algorithm, another key, garbage.
            let claims = TestJWT.claims(of: p1.access)
            var expired = claims
            expired["exp"] = Date().timeIntervalSince1970 - 60
            let expiredToken = try TestJWT.make(header: ["alg": "HS256", "typ": "JWT"], claims: expired, key: secret)
            var asAdmin = claims
            asAdmin["role"] = "admin"
            let parts = p1.access.split(separator: ".")
            let tampered = "\(parts[0]).\(TestJWT.base64URL(try JSONSerialization.data(withJSONObject: asAdmin))).\(parts[2])"
            let none = try TestJWT.make(header: ["alg": "none", "typ": "JWT"], claims: asAdmin, key: nil)
            let hs512 = try TestJWT.make(header: ["alg": "HS512", "typ": "JWT"], claims: claims, key: secret)
            let otherKey = try TestJWT.make(header: ["alg": "HS256", "typ": "JWT"], claims: claims, key: Array("another-key-of-enough-length-000000".utf8))
            let control = try TestJWT.make(header: ["alg": "HS256", "typ": "JWT"], claims: claims, key: secret)
            #expect(try await api.call(.get, "/api/users/me", token: control).status == 200, "a correctly signed token passes (control)")
            for (what, token) in [("expired", expiredToken), ("tampered", tampered), ("alg none", none), ("HS512", hs512),
                                  ("other key", otherKey), ("garbage", "abc.def.ghi")] {
                let r = try await api.call(.get, "/api/users/me", token: token)
                #expect(r.status == 401 && r.errorCode == "invalid_token", "\(what): \(r.status) \(r.text)")
            }
            let basic = try await api.call(.get, "/api/users/me", headers: ["Authorization": "Basic YTpi"])
            #expect(basic.status == 401)
            #expect(try await api.call(.get, "/api/users/me").status == 401)

            // Account deletion needs the password and removes the user.
            let del = try await api.call(.delete, "/api/users/me", token: p1.access, json: ["password": "wrong-wrong-wrong"])
            #expect(del.status == 403)
            #expect(try await api.call(.delete, "/api/users/me", token: p1.access, json: ["password": "battery-staple-2"]).status == 204)
            let gone = try await api.call(.post, "/api/auth/login", json: ["email": "ada@example.org", "password": "battery-staple-2"])
            #expect(gone.status == 401)
        }
    }

    @Test func rolesTenancyAndDatasets() async throws {
        try await withAPI { cluster, api, _ in
            let admin = try await api.login(cluster.adminEmail, cluster.adminPassword)
            let alice = try await api.register("alice@example.org")
            let bob = try await api.register("bob@example.org")

            // Alice uploads digits; it becomes ready.
            let csv = try Data(contentsOf: Self.data.appendingPathComponent("sklearn_iris.csv"))
            let (body, type) = APIClient.multipart(files: [("iris.csv", csv)], fields: ["name": "iris"])
            let up = try await api.call(.post, "/api/datasets", token: alice.token, body: body, headers: ["Content-Type": type])
            #expect(up.status == 201, "\(up.text)")
            let id = try #require(up.json["id"] as? String)
            try await eventually("the dataset is ready", timeout: .seconds(60)) {
                (try await api.call(.get, "/api/datasets/\(id)", token: alice.token)).json["state"] as? String == "ready"
            }
            let detail = try await api.call(.get, "/api/datasets/\(id)", token: alice.token)
            #expect(detail.json["rows"] as? Int == 150 && detail.json["profile"] is [String: Any], "\(detail.text.prefix(300))")

            // Preview pages.
            let page = try await api.call(.get, "/api/datasets/\(id)/preview?offset=148&limit=5", token: alice.token)
            #expect(page.status == 200 && (page.json["rows"] as? [[Any]])?.count == 2 && page.json["total"] as? Int == 150)
            let badPage = try await api.call(.get, "/api/datasets/\(id)/preview?limit=0", token: alice.token)
            #expect(badPage.status == 422 && badPage.errorField == "limit")

            // Download as CSV: same rows back.
            let csvBack = try await api.call(.get, "/api/download/datasets/\(id)", token: alice.token)
            #expect(csvBack.status == 200 && csvBack.headers["Content-Disposition"]?.contains("attachment") == true)
            #expect(csvBack.text.split(separator: "\n").count == 151, "header + 150 rows")

            // Bob sees nothing of Alice's: 404 everywhere, empty list.
            for path in ["/api/datasets/\(id)", "/api/datasets/\(id)/preview", "/api/download/datasets/\(id)"] {
                let r = try await api.call(.get, path, token: bob.token)
                #expect(r.status == 404 && r.errorCode == "not_found", "\(path): \(r.status)")
            }
            #expect(try await api.call(.delete, "/api/datasets/\(id)", token: bob.token).status == 404)
            #expect((try await api.call(.get, "/api/datasets", token: bob.token)).json["total"] as? Int == 0)
            let bobJob = try await api.call(.post, "/api/process/jobs", token: bob.token, json: ["dataset_id": id, "target": "target"])
            #expect(bobJob.status == 404, "a job on someone else's dataset: \(bobJob.text)")
            // A dataset that does not exist answers exactly the same.
            let missing = try await api.call(.get, "/api/datasets/ds-000000000000", token: bob.token)
            #expect(missing.status == 404 && missing.errorCode == "not_found")

            // Admin sees it.
            #expect((try await api.call(.get, "/api/datasets", token: admin.access)).json["total"] as? Int == 1)
            #expect(try await api.call(.get, "/api/datasets/\(id)", token: admin.access).status == 200)

            // Jobs: Alice submits (no nodes: it waits), Bob cannot see or cancel it, Alice can.
            let badJob = try await api.call(.post, "/api/process/jobs", token: alice.token,
                                            json: ["dataset_id": id, "target": "target", "epochs": 0])
            #expect(badJob.status == 422 && badJob.errorField == "epochs", "\(badJob.text)")
            let badTarget = try await api.call(.post, "/api/process/jobs", token: alice.token,
                                               json: ["dataset_id": id, "target": "no_such_column"])
            #expect(badTarget.status == 422, "\(badTarget.text)")
            let job = try await api.call(.post, "/api/process/jobs", token: alice.token,
                                         json: ["dataset_id": id, "target": "target", "epochs": 2, "labels": ["Zone": "A"]])
            #expect(job.status == 201, "\(job.text)")
            let jobId = try #require(job.json["id"] as? String)
            #expect(((job.json["spec"] as? [String: Any])?["labels"] as? [String: String]) == ["Zone": "A"], "label keys as given")
            #expect(try await api.call(.get, "/api/process/jobs/\(jobId)", token: bob.token).status == 404)
            #expect(try await api.call(.post, "/api/process/jobs/\(jobId)/cancel", token: bob.token).status == 404)
            #expect((try await api.call(.get, "/api/process/jobs", token: bob.token)).json["total"] as? Int == 0)
            #expect((try await api.call(.get, "/api/process/jobs", token: alice.token)).json["total"] as? Int == 1)
            let events = try await api.call(.get, "/api/process/jobs/\(jobId)/events", token: alice.token)
            #expect((events.json["events"] as? [Any])?.isEmpty == false, "\(events.text)")

            // Live progress over SSE ends when the job is cancelled.
            let stream = Task { try await api.call(.get, "/api/process/jobs/\(jobId)/stream", token: alice.token) }
            try await Task.sleep(for: .seconds(1))
            let cancel = try await api.call(.post, "/api/process/jobs/\(jobId)/cancel", token: alice.token)
            #expect(cancel.status == 200 && cancel.json["state"] as? String == "cancelled", "\(cancel.text)")
            let sse = try await stream.value
            #expect(sse.status == 200 && sse.headers["Content-Type"]?.hasPrefix("text/event-stream") == true)
            #expect(sse.text.contains("event: progress") && sse.text.contains("event: end") && sse.text.contains("cancelled"),
                    "\(sse.text.suffix(400))")
            let model = try await api.call(.get, "/api/download/models/\(jobId)", token: alice.token)
            #expect(model.status == 409, "a cancelled job has no model: \(model.text)")

            // Viewers read but do not write; members are not admins.
            let viewerCreate = try await api.call(.post, "/api/users", token: admin.access,
                                                  json: ["email": "vic@example.org", "password": "viewer-password-1", "role": "viewer"])
            #expect(viewerCreate.status == 201, "\(viewerCreate.text)")
            let vic = try await api.login("vic@example.org", "viewer-password-1")
            #expect(try await api.call(.get, "/api/datasets", token: vic.access).status == 200)
            let vicUp = try await api.call(.post, "/api/datasets", token: vic.access, body: body, headers: ["Content-Type": type])
            #expect(vicUp.status == 403, "\(vicUp.text)")
            for path in ["/api/cluster/nodes", "/api/cluster/health", "/api/users"] {
                #expect(try await api.call(.get, path, token: alice.token).status == 403, "\(path)")
                #expect(try await api.call(.get, path, token: admin.access).status == 200, "\(path)")
            }
            // Promoting a user signs them out (their tokens carry the old role).
            let promote = try await api.call(.patch, "/api/users/\(bob.id)", token: admin.access, json: ["role": "admin"])
            #expect(promote.status == 200 && promote.json["role"] as? String == "admin")
            #expect(try await api.call(.get, "/api/users/me", token: bob.token).status == 401)
            let badRole = try await api.call(.patch, "/api/users/\(bob.id)", token: admin.access, json: ["role": "superuser"])
            #expect(badRole.status == 400, "\(badRole.text)")

            // Deleting Alice deletes her dataset and job.
            #expect(try await api.call(.delete, "/api/users/\(alice.id)", token: admin.access).status == 204)
            #expect(try await api.call(.get, "/api/datasets/\(id)", token: admin.access).status == 404)
            #expect(try await api.call(.get, "/api/process/jobs/\(jobId)", token: admin.access).status == 404)
            #expect(try await api.call(.get, "/api/users/me", token: alice.token).status == 401)
        }
    }

    @Test func uploadsRefusedCleanly() async throws {
        try await withAPI(["--max-upload", "8K"]) { cluster, api, _ in
            let user = try await api.register("up@example.org")
            let uploads = URL(fileURLWithPath: cluster.dir.appendingPathComponent("coordinator/api/uploads").path)
            func leftovers() -> [String] { (try? FileManager.default.contentsOfDirectory(atPath: uploads.path)) ?? [] }
            func datasets() async throws -> Int { (try await api.call(.get, "/api/datasets", token: user.token)).json["total"] as? Int ?? -1 }

            // Oversize: 413, nothing stored.
            let big = Data(repeating: UInt8(ascii: "1"), count: 20_000).map { $0 }
            var rows = Data("a,b\n".utf8)
            for i in 0..<2000 { rows += Data("\(i),\(big[i])\n".utf8) }
            let (body, type) = APIClient.multipart(files: [("big.csv", rows)])
            let r = try await api.call(.post, "/api/datasets", token: user.token, body: body, headers: ["Content-Type": type])
            #expect(r.status == 413 && r.errorCode == "upload_too_large", "\(r.status) \(r.text)")

            // Binary data named .csv: 415 naming the file.
            let (bin, binType) = APIClient.multipart(files: [("data.csv", Data([0x7F, 0x45, 0x4C, 0x46, 0, 0, 1, 2]))])
            let b = try await api.call(.post, "/api/datasets", token: user.token, body: bin, headers: ["Content-Type": binType])
            #expect(b.status == 415 && b.errorMessage.contains("data.csv"), "\(b.text)")

            // Malformed multipart: truncated body, wrong boundary, no boundary, no file part, traversal name.
            let (good, goodType) = APIClient.multipart(files: [("ok.csv", Data("a,b\n1,2\n".utf8))])
            let truncated = try await api.call(.post, "/api/datasets", token: user.token, body: good.prefix(good.count - 30),
                                               headers: ["Content-Type": goodType])
            #expect((400..<500).contains(truncated.status) && truncated.errorCode != nil, "\(truncated.status) \(truncated.text)")
            let wrongBoundary = try await api.call(.post, "/api/datasets", token: user.token, body: good,
                                                   headers: ["Content-Type": "multipart/form-data; boundary=other"])
            #expect((400..<500).contains(wrongBoundary.status), "\(wrongBoundary.status) \(wrongBoundary.text)")
            let noBoundary = try await api.call(.post, "/api/datasets", token: user.token, body: good,
                                                headers: ["Content-Type": "multipart/form-data"])
            #expect(noBoundary.status == 415)
            let (fieldsOnly, fieldsType) = APIClient.multipart(files: [], fields: ["name": "x"])
            let noFile = try await api.call(.post, "/api/datasets", token: user.token, body: fieldsOnly, headers: ["Content-Type": fieldsType])
            #expect(noFile.status == 422 && noFile.errorField == "file", "\(noFile.text)")
            let (evil, evilType) = APIClient.multipart(files: [("../../etc/passwd.csv", Data("a\n1\n".utf8))])
            let traversal = try await api.call(.post, "/api/datasets", token: user.token, body: evil, headers: ["Content-Type": evilType])
            #expect(traversal.status == 422, "\(traversal.text)")

            #expect(try await datasets() == 0, "no dataset row from any refused upload")
            #expect(leftovers().isEmpty, "no staged files left: \(leftovers())")

            // A folder of text files per class (relative names) is accepted.
            let files: [(String, Data)] = (0..<4).flatMap { i in
                [("pos/\(i).txt", Data("a great and lovely film \(i)".utf8)), ("neg/\(i).txt", Data("a dull and boring film \(i)".utf8))]
            }
            let (folder, folderType) = APIClient.multipart(files: files, fields: ["name": "reviews"])
            let ok = try await api.call(.post, "/api/datasets", token: user.token, body: folder, headers: ["Content-Type": folderType])
            #expect(ok.status == 201, "\(ok.text)")
            let id = try #require(ok.json["id"] as? String)
            try await eventually("the folder dataset is converted", timeout: .seconds(60)) {
                let s = (try await api.call(.get, "/api/datasets/\(id)", token: user.token)).json
                return s["state"] as? String == "ready" && s["kind"] as? String == "text-folders" && s["rows"] as? Int == 8
            }
            #expect(leftovers().isEmpty)
        }
    }

    @Test func rateLimitsErrorsMetricsAndOpenAPI() async throws {
        // Refill slowly (one token per 10 minutes), so a slow machine cannot refill a bucket mid-test.
        try await withAPI(["--rate-limit", "read=0.1/min:3", "--rate-limit", "auth=0.1/min:4",
                           "--cors-origin", "https://lab.example.org", "--request-log-retention", "20s"]) { cluster, api, _ in
            let user = try await api.register("rl@example.org")  // auth token 1 of 4
            let fresh = try await api.register("openapi@example.org", password: "openapi-password-1")  // 2 of 4
            var remaining: [String] = []
            for _ in 0..<3 {
                let r = try await api.call(.get, "/api/datasets", token: user.token)
                #expect(r.status == 200)
                remaining.append(r.headers["RateLimit-Remaining"] ?? "?")
                #expect(r.headers["RateLimit-Limit"] == "3")
            }
            #expect(remaining == ["2", "1", "0"])
            let limited = try await api.call(.get, "/api/datasets", token: user.token)
            #expect(limited.status == 429 && limited.errorCode == "rate_limited", "\(limited.text)")
            #expect(Int(limited.headers["Retry-After"] ?? "") ?? 0 >= 1)
            #expect(limited.headers["RateLimit-Remaining"] == "0" && limited.headers["RateLimit-Reset"] != nil)
            // Another user is not limited by the first one's bucket.
            let other = try await api.register("rl2@example.org")  // 3 of 4
            #expect(try await api.call(.get, "/api/datasets", token: other.token).status == 200)
            // Login attempts: the auth group runs out (per address and per e-mail).
            var statuses: [Int] = []
            for _ in 0..<3 {
                statuses.append(try await api.call(.post, "/api/auth/login", json: ["email": "rl@example.org", "password": "wrong-password-x"]).status)
            }
            #expect(statuses == [401, 429, 429], "\(statuses)")

            // One error shape: bad JSON, missing field, wrong type, wrong media type, unknown route, oversize.
            let admin = cluster.adminEmail
            let notJSON = try await api.call(.post, "/api/process/jobs", token: other.token, body: Data("{nope".utf8),
                                             headers: ["Content-Type": "application/json"])
            #expect(notJSON.status == 400 && notJSON.errorCode == "bad_request", "\(notJSON.text)")
            let missing = try await api.call(.post, "/api/process/jobs", token: other.token, json: ["target": "x"])
            #expect(missing.status == 400 && missing.errorMessage.contains("dataset_id"), "\(missing.text)")
            let wrongType = try await api.call(.post, "/api/process/jobs", token: other.token, json: ["dataset_id": 5, "target": "x"])
            #expect(wrongType.status == 400 && wrongType.errorMessage.contains("dataset_id"), "\(wrongType.text)")
            let media = try await api.call(.post, "/api/process/jobs", token: other.token, body: Data("a=b".utf8),
                                           headers: ["Content-Type": "application/x-www-form-urlencoded"])
            #expect(media.status == 415)
            let route = try await api.call(.get, "/api/no/such/route")
            #expect(route.status == 404 && route.errorCode == "route_not_found")
            let huge = try await api.call(.post, "/api/process/jobs", token: other.token,
                                          json: ["dataset_id": String(repeating: "x", count: 2 << 20), "target": "x"])
            #expect(huge.status == 413 && huge.errorCode == "body_too_large", "\(huge.status) \(huge.text.prefix(200))")
            for r in [notJSON, missing, media, route, huge] {
                #expect(r.headers["Content-Type"]?.hasPrefix("application/json") == true && r.headers["X-Request-Id"] != nil)
                #expect(!r.text.contains("SELECT") && !r.text.contains(".swift"), "no internals leak: \(r.text)")
            }
            _ = admin

            // Security headers and CORS: an unknown origin gets no CORS headers, the allowed one does.
            let h = try await api.call(.get, "/healthz", headers: ["Origin": "https://evil.example"])
            #expect(h.headers["X-Content-Type-Options"] == "nosniff" && h.headers["Access-Control-Allow-Origin"] == nil)
            let allowed = try await api.call(.get, "/healthz", headers: ["Origin": "https://lab.example.org"])
            #expect(allowed.headers["Access-Control-Allow-Origin"] == "https://lab.example.org")
            let preflight = try await api.call(HTTPMethod(rawValue: "OPTIONS"), "/api/datasets", headers: [
                "Origin": "https://lab.example.org", "Access-Control-Request-Method": "POST"])
            #expect(preflight.status == 204 && preflight.headers["Access-Control-Allow-Methods"]?.contains("POST") == true)
            let badPreflight = try await api.call(HTTPMethod(rawValue: "OPTIONS"), "/api/datasets", headers: [
                "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"])
            #expect(badPreflight.headers["Access-Control-Allow-Origin"] == nil)
            let readiness = try await api.call(.get, "/readyz")
            #expect(readiness.status == 200 && readiness.json["status"] as? String == "ready")

            // Metrics.
            let metrics = try await api.call(.get, "/metrics")
            #expect(metrics.status == 200)
            #expect(metrics.text.contains("nebula_http_requests_total{") && metrics.text.contains("route=\"/api/datasets\""))
            #expect(metrics.text.contains("nebula_http_request_duration_seconds_bucket"))
            #expect(metrics.text.contains("nebula_jobs{state=\"pending\"}") && metrics.text.contains("nebula_nodes{state=\"up\"}"),
                    "\(metrics.text.prefix(2000))")

            // Request records reach PostgreSQL in batches.
            let db = PostgresClient(url: cluster.databaseURL, logger: Logger(label: "test.api"))
            try await eventually("request records are stored", timeout: .seconds(120)) {
                let rows = try await db.query("SELECT count(*) AS n FROM api_requests WHERE route = '/api/datasets' AND status = 429")
                return try rows.first?.int("n") ?? 0 >= 1
            }
            // Records older than the retention (20 s here) are removed; newer ones stay.
            _ = try await db.execute("""
                INSERT INTO api_requests (time, request_id, method, route, status, duration_ms)
                VALUES (now() - interval '1 hour', 'old-record', 'GET', '/old', 200, 1)
                """)
            try await eventually("the old record is pruned", timeout: .seconds(120)) {
                try await db.query("SELECT 1 FROM api_requests WHERE request_id = 'old-record'").isEmpty
            }
            #expect(try await db.query("SELECT count(*) AS n FROM api_requests").first?.int("n") ?? 0 > 0)
            await db.close()

            // OpenAPI: every documented route is served (never "route_not_found"), operation ids are unique.
            let doc = try await api.call(.get, "/api/openapi.json")
            #expect(doc.json["openapi"] as? String == "3.1.0")
            let paths = try #require(doc.json["paths"] as? [String: [String: Any]])
            #expect(paths.count >= 25, "\(paths.keys.sorted())")
            var ids = Set<String>()
            for (path, operations) in paths {
                for (method, op) in operations {
                    let opId = try #require((op as? [String: Any])?["operationId"] as? String)
                    #expect(ids.insert(opId).inserted, "duplicate operationId \(opId)")
                    let concrete = path.replacingOccurrences(of: "{id}", with: "x").replacingOccurrences(of: "{checkpoint}", with: "y")
                    // Without a body or a token a route answers 4xx of its own (or 200) — never "no such route".
                    if path.hasPrefix("/api/auth/logout") || path.contains("/password") || method == "delete" { continue }
                    let r = try await api.call(HTTPMethod(rawValue: method.uppercased()), concrete,
                                               token: path.hasPrefix("/api/auth") ? nil : fresh.token)
                    #expect(r.errorCode != "route_not_found" && r.status != 405, "\(method) \(path) → \(r.status) \(r.text.prefix(200))")
                }
            }
        }
    }

    @Test func aJobSubmittedOverHTTPTrainsStreamsAndItsModelDownloads() async throws {
        try await withAPI(agents: ["node-a", "node-b"]) { cluster, api, _ in
            let user = try await api.register("trainer@example.org")
            let csv = try Data(contentsOf: Self.data.appendingPathComponent("sklearn_digits_8x8.csv"))
            let (body, type) = APIClient.multipart(files: [("digits.csv", csv)])
            let up = try await api.call(.post, "/api/datasets", token: user.token, body: body, headers: ["Content-Type": type])
            let id = try #require(up.json["id"] as? String, "\(up.text)")
            try await eventually("digits is ready", timeout: .seconds(60)) {
                (try await api.call(.get, "/api/datasets/\(id)", token: user.token)).json["state"] as? String == "ready"
            }
            let job = try await api.call(.post, "/api/process/jobs", token: user.token,
                                         json: ["dataset_id": id, "target": "label", "nodes": 2, "epochs": 8, "batch_size": 32])
            #expect(job.status == 201, "\(job.text)")
            let jobId = try #require(job.json["id"] as? String)

            // The event stream follows the job to its end.
            let sse = try await api.call(.get, "/api/process/jobs/\(jobId)/stream", token: user.token)
            let events = sse.text.components(separatedBy: "\n\n").filter { !$0.isEmpty }
            #expect(events.filter { $0.hasPrefix("event: progress") }.count >= 2, "\(sse.text.prefix(600))")
            let end = try #require(events.last { $0.hasPrefix("event: end") }, "\(sse.text.suffix(400))")
            #expect(end.contains("\"completed\""), "\(end)")

            let status = try await api.call(.get, "/api/process/jobs/\(jobId)", token: user.token)
            #expect(status.json["state"] as? String == "completed")
            let accuracy = ((status.json["metrics"] as? [String: Any])?["accuracy"] as? Double) ?? 0
            #expect(accuracy >= 0.9, "holdout accuracy \(accuracy): \(status.text.prefix(400))")
            let metrics = try await api.call(.get, "/api/process/jobs/\(jobId)/metrics", token: user.token)
            #expect((metrics.json["progress"] as? [Any])?.isEmpty == false, "\(metrics.text.prefix(300))")

            // The final model downloads with its checksum; another user gets 404.
            let model = try await api.call(.get, "/api/download/models/\(jobId)", token: user.token)
            #expect(model.status == 200 && model.body.count > 1000, "\(model.status)")
            #expect(model.headers["Content-Disposition"]?.contains("\(jobId)-model.ckpt") == true)
            let digest = SHA256.hex(SHA256.hash(Array(model.body)))
            #expect(model.headers["X-Checksum-SHA256"] == digest)
            let other = try await api.register("snoop@example.org")
            #expect(try await api.call(.get, "/api/download/models/\(jobId)", token: other.token).status == 404)
        }
    }

    @Test func httpsWhenCertificatesAreConfigured() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("nebula-https-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let cert = dir.appendingPathComponent("cert.pem").path, key = dir.appendingPathComponent("key.pem").path
        let made = try runCaptured(URL(fileURLWithPath: "/usr/bin/openssl"), [
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        try #require(made.status == 0, "openssl: \(made.stderr)")
        try await withTestCluster(coordinatorFlags: ["--http-tls-cert", cert, "--http-tls-key", key]) { cluster in
            var config = HTTPClient.Configuration()
            config.caBundlePath = cert
            let https = HTTPClient(configuration: config)
            let url = URL(string: "https://127.0.0.1:\(cluster.httpPort)/healthz")!
            var answer: HTTPResponse?
            try await eventually("the HTTPS API answers", timeout: .seconds(120)) {
                answer = try? await https.send(HTTPRequest(url: url))
                return answer?.status == 200
            }
            #expect(answer?.headers["Strict-Transport-Security"] != nil)
            // Plain HTTP on the HTTPS port gets no API answer.
            let plain = try? await HTTPClient().send(HTTPRequest(url: URL(string: "http://127.0.0.1:\(cluster.httpPort)/healthz")!))
            #expect(plain == nil || plain?.status != 200)
            // A client that does not trust the certificate is refused by its own TLS check.
            let untrusted = try? await HTTPClient().send(HTTPRequest(url: url))
            #expect(untrusted == nil)
        }
    }
}
