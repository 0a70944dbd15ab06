import Foundation
import Logging
import NebulaStore
import Testing

/// Settings of the integration tier, from the environment that `cluster/test` prepares.
enum IntegrationEnvironment {
    static let env = ProcessInfo.processInfo.environment
    static let databaseURL = env["NEBULA_TEST_DATABASE_URL"]
    static let required = env["NEBULA_REQUIRE_INTEGRATION"] == "1"
    static var enabled: Bool { databaseURL != nil || required }

    /// The package root (this file is Tests/IntegrationTests/Harness.swift).
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// Where the built executables are: NEBULA_BIN_DIR, else next to the test bundle, else .build/debug.
    static let binDir: URL = {
        if let dir = env["NEBULA_BIN_DIR"] { return URL(fileURLWithPath: dir) }
        let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [beside, beside.deletingLastPathComponent()] {
            if FileManager.default.isExecutableFile(atPath: candidate.appendingPathComponent("nebula-coordinator").path) {
                return candidate
            }
        }
        return root.appendingPathComponent(".build/debug")
    }()

    static func requireDatabase() throws -> String {
        guard let url = databaseURL else {
            throw HarnessError("NEBULA_TEST_DATABASE_URL is not set: run the tests with cluster/test, which starts PostgreSQL")
        }
        return url
    }
}

struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// A fresh database per test, created on the test server and dropped at the end.
struct TestDatabase {
    let url: String
    let name: String
    let admin: PostgresClient

    static func create(serverURL: String? = nil) async throws -> TestDatabase {
        let base = try serverURL ?? IntegrationEnvironment.requireDatabase()
        let name = "nebula_it_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12).lowercased()
        let admin = PostgresClient(url: base, logger: Logger(label: "test.db"))
        _ = try await admin.execute("CREATE DATABASE \(name)")
        return TestDatabase(url: replaceDatabase(in: base, with: name), name: name, admin: admin)
    }

    func client() -> PostgresClient { PostgresClient(url: url, logger: Logger(label: "test.db")) }

    func drop() async {
        _ = try? await admin.execute("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
        await admin.close()
    }

    static func replaceDatabase(in url: String, with name: String) -> String {
        guard var components = URLComponents(string: url) else { return url }
        components.path = "/" + name
        return components.string ?? url
    }
}

/// A child process whose output goes to a log file.
final class ChildProcess: @unchecked Sendable {
    // Thread-safety: used from one test task at a time.
    let process = Process()
    let logPath: String
    let name: String

    init(_ executable: String, _ arguments: [String], logDir: URL, name: String, environment: [String: String] = [:]) throws {
        self.name = name
        logPath = logDir.appendingPathComponent("\(name).log").path
        guard FileManager.default.createFile(atPath: logPath, contents: nil) else {
            throw HarnessError("cannot create \(logPath)")
        }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.executableURL = IntegrationEnvironment.binDir.appendingPathComponent(executable)
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        process.environment = env
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
    }

    var isRunning: Bool { process.isRunning }
    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    func signal(_ sig: Int32) { if process.isRunning { kill(process.processIdentifier, sig) } }

    /// SIGTERM and wait for the exit (SIGKILL after `grace`).
    func stop(grace: Duration = .seconds(15)) async {
        signal(SIGTERM)
        let deadline = ContinuousClock.now + grace
        while process.isRunning, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(50)) }
        if process.isRunning {
            signal(SIGKILL)
            process.waitUntilExit()
        }
    }

    func killHard() {
        signal(SIGKILL)
        process.waitUntilExit()
    }
}

/// Waits for a condition, polling; fails with `what` and the context when it never holds.
func eventually(_ what: String, timeout: Duration = .seconds(60), poll: Duration = .milliseconds(200),
                context: () -> String = { "" }, _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    var lastError: (any Error)?
    while ContinuousClock.now < deadline {
        do {
            if try await condition() { return }
        } catch {
            lastError = error
        }
        try await Task.sleep(for: poll)
    }
    throw HarnessError("timed out waiting for: \(what)\(lastError.map { " (last error: \($0))" } ?? "")\n\(context())")
}

/// A free TCP port on loopback (bound and released; good enough for tests).
func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw HarnessError("socket() failed") }
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = 0
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
    }
    guard bound else { throw HarnessError("bind() failed") }
    return Int(UInt16(bigEndian: addr.sin_port))
}

/// A coordinator, its agents and the CLI, as real processes over loopback.
final class TestCluster: @unchecked Sendable {
    // Thread-safety: used from one test task at a time.
    let dir: URL
    let port: Int
    let databaseURL: String
    let joinToken = "it-join-" + UUID().uuidString
    let adminToken = "it-admin-" + UUID().uuidString
    var coordinator: ChildProcess?
    var agents: [String: ChildProcess] = [:]
    var coordinatorStarts = 0
    let detectorFlags: [String]
    /// Certificate and key (PEM) when the cluster runs with TLS; the certificate is also the clients' CA.
    var tls: (cert: String, key: String)?
    /// More `nebula-coordinator serve` flags (e.g. --max-upload).
    var extraCoordinatorFlags: [String] = []
    /// The REST API's port, and the admin it is bootstrapped with.
    let httpPort: Int
    let adminEmail = "admin@example.org"
    let adminPassword = "it-admin-" + UUID().uuidString.prefix(12)

    init(databaseURL: String, fast: Bool = true) throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("nebula-it-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        port = try freePort()
        httpPort = try freePort()
        self.databaseURL = databaseURL
        try joinToken.write(to: dir.appendingPathComponent("join.token"), atomically: true, encoding: .utf8)
        try adminToken.write(to: dir.appendingPathComponent("admin.token"), atomically: true, encoding: .utf8)
        // Fast enough for tests, tolerant enough that a node starved by parallel test load is not
        // declared dead: SUSPECT after 2 s of silence, DOWN after 5 s.
        detectorFlags = fast ? ["--heartbeat-interval", "250ms", "--suspect-after-missed", "8", "--down-after", "5s"] : []
    }

    var target: String { "127.0.0.1:\(port)" }
    var httpBase: String { "http://127.0.0.1:\(httpPort)" }

    func startCoordinator() throws {
        coordinatorStarts += 1
        coordinator = try ChildProcess("nebula-coordinator", [
            "serve", "--listen", target, "--database-url", databaseURL, "--data-dir", dir.appendingPathComponent("coordinator").path,
            "--join-token-file", dir.appendingPathComponent("join.token").path,
            "--admin-token-file", dir.appendingPathComponent("admin.token").path, "--database-wait", "30s",
            // bcrypt's cost only changes how long a hash takes; tests need many.
            "--http-listen", "127.0.0.1:\(httpPort)", "--bcrypt-cost", "4",
        ] + detectorFlags + extraCoordinatorFlags + (tls.map { ["--tls-cert", $0.cert, "--tls-key", $0.key] } ?? []),
        logDir: dir, name: "coordinator-\(coordinatorStarts)",
        environment: ["NEBULA_ADMIN_EMAIL": adminEmail, "NEBULA_ADMIN_PASSWORD": adminPassword])
    }

    @discardableResult
    func startAgent(_ name: String, token: String? = nil) throws -> ChildProcess {
        let tokenFile = dir.appendingPathComponent("token-\(name)")
        try (token ?? joinToken).write(to: tokenFile, atomically: true, encoding: .utf8)
        let agent = try ChildProcess("nebula-node", [
            "join", "--coordinator", target, "--token-file", tokenFile.path, "--name", name,
            "--data-dir", dir.appendingPathComponent("node-\(name)").path, "--labels", "suite=integration",
        ] + clientTLSFlags, logDir: dir, name: "agent-\(name)")
        agents[name] = agent
        return agent
    }

    var clientTLSFlags: [String] { tls.map { ["--tls-ca", $0.cert, "--tls-server-name", "localhost"] } ?? [] }

    /// Makes a self-signed certificate for localhost/127.0.0.1 and runs the cluster with TLS.
    func enableTLS() throws {
        let key = dir.appendingPathComponent("key.pem").path
        let cert = dir.appendingPathComponent("cert.pem").path
        let openssl = Process()
        openssl.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        openssl.arguments = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1",
                             "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"]
        openssl.standardOutput = FileHandle.nullDevice
        openssl.standardError = FileHandle.nullDevice
        try openssl.run()
        openssl.waitUntilExit()
        guard openssl.terminationStatus == 0 else { throw HarnessError("openssl could not make a test certificate") }
        tls = (cert, key)
    }

    func cli(_ arguments: [String], adminToken token: String? = nil, plainText: Bool = false) throws -> CLIResult {
        var env = ProcessInfo.processInfo.environment
        env["NEBULA_COORDINATOR"] = target
        env["NEBULA_ADMIN_TOKEN"] = token ?? adminToken
        env["NEBULA_HTTP_URL"] = httpBase
        return try runCaptured(IntegrationEnvironment.binDir.appendingPathComponent("nebula"),
                               arguments + (plainText ? [] : clientTLSFlags), environment: env, directory: dir)
    }

    /// `nebula nodes --json`, keyed by node id.
    func nodes() throws -> [String: [String: Any]] {
        let r = try cli(["nodes", "--json"])
        guard r.status == 0 else { throw HarnessError("nebula nodes failed (\(r.status)): \(r.stderr)") }
        guard let list = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]] else {
            throw HarnessError("nebula nodes --json is not a JSON array: \(r.stdout)")
        }
        return Dictionary(uniqueKeysWithValues: list.map { ($0["node_id"] as? String ?? "?", $0) })
    }

    func state(of node: String) throws -> String? { try nodes()[node]?["state"] as? String }

    func waitForState(_ node: String, _ state: String, timeout: Duration = .seconds(60)) async throws {
        try await eventually("node \(node) in state \(state)", timeout: timeout, context: { self.logs() }) {
            try self.state(of: node) == state
        }
    }

    func logs() -> String {
        ([coordinator].compactMap { $0 } + agents.values).map { "--- \($0.name)\n\($0.log.suffix(3000))" }
            .joined(separator: "\n")
    }

    func shutdown() async {
        for a in agents.values { await a.stop() }
        await coordinator?.stop()
        try? FileManager.default.removeItem(at: dir)
    }
}

struct CLIResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs a program to its end and captures both outputs (stderr through a file, so a full pipe
/// cannot stall the program while stdout is being read).
func runCaptured(_ executable: URL, _ arguments: [String], environment: [String: String]? = nil,
                 directory: URL? = nil) throws -> CLIResult {
    let p = Process()
    p.executableURL = executable
    p.arguments = arguments
    if let environment { p.environment = environment }
    if let directory { p.currentDirectoryURL = directory }
    let errPath = FileManager.default.temporaryDirectory.appendingPathComponent("nebula-stderr-\(UUID().uuidString)")
    guard FileManager.default.createFile(atPath: errPath.path, contents: nil) else {
        throw HarnessError("cannot create \(errPath.path)")
    }
    defer { try? FileManager.default.removeItem(at: errPath) }
    let out = Pipe()
    p.standardOutput = out
    p.standardError = try FileHandle(forWritingTo: errPath)
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    // Foundation on Linux learns that a child exited when an internal socket closes in every process
    // holding it; a process another test started at the same moment can hold it for its whole life, and
    // waitUntilExit() then waits as long (seen: a finished CLI waited on a test's coordinator). The exit
    // status comes straight from waitpid instead; Foundation's own later waitpid finds nothing to reap.
    var raw: Int32 = 0
    var reaped: pid_t
    repeat { reaped = waitpid(p.processIdentifier, &raw, 0) } while reaped == -1 && errno == EINTR
    let status: Int32
    if reaped == p.processIdentifier {
        status = (raw & 0x7f) == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
    } else {
        p.waitUntilExit()
        status = p.terminationStatus
    }
    let e = (try? Data(contentsOf: errPath)) ?? Data()
    return CLIResult(status: status, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
}

/// Runs a script of the repository (cluster/lib/pgctl) and returns its stdout.
@discardableResult
func runScript(_ path: String, _ arguments: [String]) throws -> String {
    let r = try runCaptured(IntegrationEnvironment.root.appendingPathComponent(path), arguments)
    guard r.status == 0 else { throw HarnessError("\(path) \(arguments.joined(separator: " ")) failed: \(r.stderr)") }
    return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
}

/// Runs `body` with a coordinator (and `agents`) up on a database of its own; prints the processes'
/// logs when it throws, and removes everything afterwards.
func withTestCluster(coordinatorFlags: [String] = [], agents: [String] = [],
                     _ body: (TestCluster) async throws -> Void) async throws {
    let db = try await TestDatabase.create()
    let cluster = try TestCluster(databaseURL: db.url)
    cluster.extraCoordinatorFlags = coordinatorFlags
    do {
        try cluster.startCoordinator()
        try await eventually("the coordinator answers", timeout: .seconds(60), context: { cluster.logs() }) {
            try cluster.cli(["health", "--json"]).status == 0
        }
        for name in agents { try cluster.startAgent(name) }
        for name in agents { try await cluster.waitForState(name, "up") }
        try await body(cluster)
    } catch {
        Issue.record("cluster logs:\n\(cluster.logs())")
        await cluster.shutdown()
        await db.drop()
        throw error
    }
    await cluster.shutdown()
    await db.drop()
}
