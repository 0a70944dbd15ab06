import Foundation
import NebulaCommon
import NebulaHTTP

/// A small client for the REST API in tests, on the project's own libcurl client.
struct APIClient: Sendable {
    let base: String
    let http = HTTPClient()

    struct Reply: @unchecked Sendable {
        // Thread-safety: JSON values are read by the test that made the call only.
        var status: Int
        var headers: HTTPHeaders
        var body: Data
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] ?? [:] }
        var text: String { String(decoding: body, as: UTF8.self) }
        var errorCode: String? { (json["error"] as? [String: Any])?["code"] as? String }
        var errorMessage: String { (json["error"] as? [String: Any])?["message"] as? String ?? "" }
        var errorField: String? { ((json["error"] as? [String: Any])?["details"] as? [String: Any])?["field"] as? String }
    }

    func call(_ method: HTTPMethod, _ path: String, token: String? = nil, json: Any? = nil, body: Data? = nil,
              headers: [String: String] = [:]) async throws -> Reply {
        var fields = HTTPHeaders()
        for (k, v) in headers { fields.add(name: k, value: v) }
        var payload = body
        if let json {
            payload = try JSONSerialization.data(withJSONObject: json)
            if fields["Content-Type"] == nil { fields.add(name: "Content-Type", value: "application/json") }
        }
        if let token { fields.add(name: "Authorization", value: "Bearer \(token)") }
        let request = HTTPRequest(method: method, url: URL(string: base + path)!, headers: fields, body: payload)
        let response = try await http.send(request)
        return Reply(status: response.status, headers: response.headers, body: response.body)
    }

    /// Signs in; returns the access and refresh tokens.
    func login(_ email: String, _ password: String) async throws -> (access: String, refresh: String) {
        let r = try await call(.post, "/api/auth/login", json: ["email": email, "password": password])
        guard r.status == 200, let a = r.json["access_token"] as? String, let f = r.json["refresh_token"] as? String else {
            throw HarnessError("login of \(email) failed: \(r.status) \(r.text)")
        }
        return (a, f)
    }

    /// Registers a member and returns its access token and user id.
    func register(_ email: String, password: String = "member-password-1") async throws -> (token: String, id: String) {
        let r = try await call(.post, "/api/auth/register", json: ["email": email, "password": password, "name": email])
        guard r.status == 201, let a = r.json["access_token"] as? String, let user = r.json["user"] as? [String: Any],
              let id = user["id"] as? String
        else { throw HarnessError("register of \(email) failed: \(r.status) \(r.text)") }
        return (a, id)
    }

    /// A multipart/form-data body: files (name, bytes) and fields.
    static func multipart(files: [(String, Data)], fields: [String: String] = [:], boundary: String = "nebula-test-boundary")
        -> (body: Data, contentType: String)
    {
        var body = Data()
        for (k, v) in fields {
            body += Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(k)\"\r\n\r\n\(v)\r\n".utf8)
        }
        for (name, data) in files {
            body += Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"\(name)\"\r\nContent-Type: application/octet-stream\r\n\r\n".utf8)
            body += data
            body += Data("\r\n".utf8)
        }
        body += Data("--\(boundary)--\r\n".utf8)
        return (body, "multipart/form-data; boundary=\(boundary)")
    }
}

/// HS256 JWTs made by hand, to present forged, expired and wrongly signed tokens.
enum TestJWT {
    static func base64URL(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func hmacSHA256(key: [UInt8], message: [UInt8]) -> [UInt8] {
        var k = key.count > 64 ? SHA256.hash(key) : key
        k += [UInt8](repeating: 0, count: 64 - k.count)
        let inner = SHA256.hash(k.map { $0 ^ 0x36 } + message)
        return SHA256.hash(k.map { $0 ^ 0x5c } + inner)
    }

    static func make(header: [String: Any], claims: [String: Any], key: [UInt8]?) throws -> String {
        let h = base64URL(try JSONSerialization.data(withJSONObject: header))
        let c = base64URL(try JSONSerialization.data(withJSONObject: claims))
        guard let key else { return "\(h).\(c)." }
        return "\(h).\(c).\(base64URL(Data(hmacSHA256(key: key, message: Array("\(h).\(c)".utf8)))))"
    }

    /// The claims part of a token.
    static func claims(of token: String) -> [String: Any] {
        let parts = token.split(separator: ".")
        guard parts.count >= 2 else { return [:] }
        var s = String(parts[1]).replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while s.count % 4 != 0 { s += "=" }
        return (Data(base64Encoded: s).flatMap { try? JSONSerialization.jsonObject(with: $0) } as? [String: Any]) ?? [:]
    }
}
