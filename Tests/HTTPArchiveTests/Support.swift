import Foundation
import NebulaCommon
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A fresh temporary directory, removed by `remove()`.
struct TempDir {
    let path: String
    init(_ label: String = "nebula-http-test") throws {
        path = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("\(label)-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    func file(_ name: String) -> String { path + "/" + name }
    func remove() { try? FileManager.default.removeItem(atPath: path) }
    /// Names in the directory (hidden ones included), sorted.
    func listing(_ sub: String = "") -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: sub.isEmpty ? path : file(sub))) ?? []).sorted()
    }
}

enum TestError: Error, CustomStringConvertible {
    case failed(String)
    var description: String { if case .failed(let s) = self { return s }; return "" }
}

/// Runs a program to completion; throws with its stderr when it fails.
@discardableResult
func runProgram(_ executable: String, _ arguments: [String], cwd: String? = nil) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [executable] + arguments
    if let cwd { process.currentDirectoryURL = URL(fileURLWithPath: cwd) }
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let output = out.fileHandleForReading.readDataToEndOfFile()
    let error = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw TestError.failed("\(executable) \(arguments.joined(separator: " ")) exited \(process.terminationStatus): \(String(decoding: error, as: UTF8.self))")
    }
    return String(decoding: output, as: UTF8.self)
}

func sha256Hex(ofFile path: String) throws -> String {
    let data = try Data(contentsOf: URL(fileURLWithPath: path))
    return SHA256.hash(data).map { String(format: "%02x", $0) }.joined()
}

/// A value shared with @Sendable callbacks.
final class Box<Value: Sendable>: Sendable {
    private let value: Mutex<Value>
    init(_ value: Value) { self.value = Mutex(value) }
    func update<R>(_ body: (inout Value) -> R) -> R { value.withLock { body(&$0) } }
    var get: Value { value.withLock { $0 } }
}

/// The python3 HTTP server the tests talk to over loopback (see `serverScript`). It exits when its
/// standard input closes, so it never outlives the test process.
final class TestServer: @unchecked Sendable {
    let port: Int
    private let process: Process
    private let stdin: Pipe

    var base: URL { URL(string: "http://127.0.0.1:\(port)")! }
    func url(_ path: String) -> URL { URL(string: "http://127.0.0.1:\(port)\(path)")! }

    /// Starts the server serving `zip` as dataset owner/slug for user/key; `tls` is (cert, key) PEM paths.
    init(directory: TempDir, zip: String, user: String = "alice", key: String = "s3cret",
         tls: (cert: String, key: String)? = nil) throws {
        let script = directory.file("server.py")
        try serverScript.write(toFile: script, atomically: true, encoding: .utf8)
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        var arguments = ["python3", "-u", script, zip, user, key]
        if let tls { arguments += [tls.cert, tls.key] }
        process.arguments = arguments
        stdin = Pipe()
        let stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = FileHandle.standardError
        try process.run()
        // The first line is "PORT n".
        var line = Data()
        while !line.contains(UInt8(ascii: "\n")) {
            let chunk = stdout.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            line.append(chunk)
        }
        let text = String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard text.hasPrefix("PORT "), let port = Int(text.dropFirst(5)) else {
            process.terminate()
            throw TestError.failed("test server did not start: '\(text)'")
        }
        self.port = port
    }

    func stop() {
        try? stdin.fileHandleForWriting.close()
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
    }
}

/// A port nothing listens on (bound, then closed).
func closedPort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// Mimics Kaggle's dataset download API and a storage host, plus a few endpoints for client tests.
let serverScript = #"""
import base64, http.server, json, os, socketserver, ssl, sys, threading, time

ZIP, USER, KEY = sys.argv[1], sys.argv[2], sys.argv[3]
EXPECTED = "Basic " + base64.b64encode(f"{USER}:{KEY}".encode()).decode()

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send_json(self, status, obj, extra=()):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def redirect(self, location):
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def echo(self):
        body = self.read_body()
        self.send_json(200, {"method": self.command, "path": self.path,
                             "headers": {k.lower(): v for k, v in self.headers.items()},
                             "body": body.decode("utf-8", "replace")})

    def do_GET(self):
        path, _, query = self.path.partition("?")
        if path.startswith("/api/v1/datasets/download/"):
            parts = path.split("/")[5:]
            if self.headers.get("Authorization") != EXPECTED:
                return self.send_json(401, {"code": 401, "message": "Unauthenticated"},
                                      [("WWW-Authenticate", 'Basic realm="kaggle"')])
            if parts == ["owner", "private"]:
                return self.send_json(403, {"code": 403, "message": "Permission 'datasets.get' was denied"})
            if parts != ["owner", "slug"]:
                return self.send_json(404, {"code": 404, "message": "Not found"})
            # Kaggle redirects to a signed URL on another host (storage.googleapis.com); "localhost"
            # is another host name for the same server.
            return self.redirect("http://localhost:%d/storage/datasets/owner/slug.zip?X-Goog-Signature=0123abcd"
                                 % self.server.server_address[1])
        if path == "/storage/datasets/owner/slug.zip":
            if "X-Goog-Signature" not in query:
                return self.send_json(403, {"message": "missing signature"})
            if "Authorization" in self.headers:
                # As Google Cloud Storage answers a signed URL that also carries credentials.
                return self.send_json(400, {"message": "Only one auth mechanism allowed"})
            data = open(ZIP, "rb").read()
            self.send_response(200)
            self.send_header("Content-Type", "application/zip")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            for i in range(0, len(data), 32768):
                self.wfile.write(data[i:i + 32768])
                self.wfile.flush()
                time.sleep(0.001)
            return
        if path == "/slow-headers":
            time.sleep(3600)  # only the client's timeout ends the request
            return self.send_json(200, {})
        if path == "/stall":
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(10 << 20))
            self.end_headers()
            self.wfile.write(b"x" * 65536)
            self.wfile.flush()
            time.sleep(3600)  # only the client's cancellation ends the transfer
            return
        if path == "/loop":
            return self.redirect("/loop")
        if path == "/hop":
            return self.redirect("http://127.0.0.1:%d/echo?hopped=1" % self.server.server_address[1])
        if path == "/no-length":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            for _ in range(8):
                self.wfile.write(b"y" * 50000)
                self.wfile.flush()
            self.close_connection = True
            return
        if path == "/big":
            data = b"z" * (1 << 20)
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        if path == "/big-error":
            self.send_response(500)
            self.send_header("Content-Length", str(50 << 20))
            self.end_headers()
            for _ in range(50 * 16):
                self.wfile.write(b"e" * 65536)
            return
        if path == "/status":
            code = int(query.split("=")[1]) if "=" in query else 500
            return self.send_json(code, {"message": "status %d" % code})
        if path.startswith("/echo"):
            return self.echo()
        self.send_json(404, {"message": "no route " + path})

    do_POST = do_PUT = do_DELETE = do_PATCH = echo

class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        pass  # clients that time out or cancel reset their connections

server = Server(("127.0.0.1", 0), Handler)
if len(sys.argv) > 5:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(sys.argv[4], sys.argv[5])
    server.socket = context.wrap_socket(server.socket, server_side=True)

def watchdog():
    sys.stdin.read()
    os._exit(0)

threading.Thread(target=watchdog, daemon=True).start()
print("PORT %d" % server.server_address[1], flush=True)
server.serve_forever()
"""#
