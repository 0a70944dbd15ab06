import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import NIOSSL
import Logging
import NebulaCommon
import NebulaStore
import NIOCore
import Synchronization

/// The coordinator's HTTP API: Hummingbird on its own event loops next to the gRPC server, with its
/// own small pool of PostgreSQL connections (so API reads neither queue behind each other nor behind
/// the coordinator's own writes).
final class APIServer: Sendable {
    let configuration: APIConfiguration
    let auth: AuthService
    let table: APIRouteTable
    private let requestLog: RequestLog
    private let runTask: Mutex<Task<Void, any Error>?> = Mutex(nil)
    private let logTask: Mutex<Task<Void, Never>?> = Mutex(nil)
    private let boundPort = Mutex<Int?>(nil)
    private let client: PostgresPool
    private let logger: Logger

    /// The port actually bound (after `start`).
    var port: Int { boundPort.withLock { $0 } ?? 0 }

    static func make(configuration: APIConfiguration, services: APIServices, databaseURL: String, dataDirectory: String,
                     logger: Logger) async throws -> APIServer {
        try configuration.validate()
        let client = PostgresPool(url: databaseURL, size: configuration.databaseConnections, logger: logger)
        let secret = try configuration.jwtSecret ?? loadOrCreateSecret(at: dataDirectory + "/api/jwt.key")
        let tokens = await TokenIssuer(secret: secret, accessLifetime: configuration.accessTokenLifetime)
        let auth = AuthService(users: UserStore(pool: client), tokens: tokens, configuration: configuration, logger: logger)
        try await auth.start()
        return APIServer(configuration: configuration, auth: auth, services: services, client: client, dataDirectory: dataDirectory,
                         logger: logger)
    }

    private init(configuration: APIConfiguration, auth: AuthService, services: APIServices, client: PostgresPool,
                 dataDirectory: String, logger: Logger) {
        self.configuration = configuration
        self.auth = auth
        self.client = client
        self.logger = logger
        requestLog = RequestLog(client: client.client, logger: logger)
        let metrics = APIMetrics()
        let router = Router(context: APIContext.self)
        router.add(middleware: RequestMiddleware(corsOrigins: Set(configuration.corsOrigins),
                                                 https: configuration.tlsCertificate != nil, metrics: metrics,
                                                 requestLog: requestLog))
        table = APIRouteTable(router: router, gate: Gate(auth: auth, limiter: RateLimiter(), limits: configuration.rateLimits,
                                                         adminToken: Array(services.adminToken.utf8)))
        let routes = APIRoutes(table: table, auth: auth, services: services, configuration: configuration, metrics: metrics,
                               pool: client, dataDirectory: dataDirectory, logger: logger)
        routes.register()
    }

    /// Binds and serves; returns once the port is bound (or throws why it could not be).
    func start() async throws {
        guard let listen = configuration.listen else { return }
        let (host, port) = try Self.split(listen)
        let (ready, readyContinuation) = AsyncStream.makeStream(of: Int.self)
        let server = try Self.serverBuilder(configuration)
        let app = Application(router: table.router, server: server,
                              configuration: .init(address: .hostname(host, port: port), serverName: "nebula"),
                              onServerRunning: { channel in
                                  readyContinuation.yield(channel.localAddress?.port ?? 0)
                                  readyContinuation.finish()
                              },
                              logger: logger)
        let task = Task {
            do {
                try await app.run()
            } catch {
                readyContinuation.finish()
                throw error
            }
        }
        runTask.withLock { $0 = task }
        var iterator = ready.makeAsyncIterator()
        guard let bound = await iterator.next() else {
            let reason: String
            do { try await task.value; reason = "it stopped" } catch { reason = "\(error)" }
            throw ConfigurationError("the HTTP API cannot listen on \(listen): \(reason); choose another --http-listen (or 'off')")
        }
        boundPort.withLock { $0 = bound }
        let log = requestLog
        let interval = configuration.requestLogFlushInterval
        let retention = configuration.requestLogRetention
        logTask.withLock { $0 = Task { await log.run(every: interval, retention: retention) } }
        logger.info("HTTP API listening", metadata: ["http.port": "\(bound)", "http.routes": "\(table.specs.count)",
                                                     "http.tls": "\(configuration.tlsCertificate != nil)"])
    }

    func shutdown() async {
        let task = runTask.withLock { $0 }
        task?.cancel()
        _ = try? await task?.value
        let log = logTask.withLock { $0 }
        log?.cancel()
        await log?.value
        await client.close()
    }

    /// Plain HTTP/1.1, or HTTPS with the configured PEM certificate chain and key.
    static func serverBuilder(_ configuration: APIConfiguration) throws -> HTTPServerBuilder {
        guard let certificate = configuration.tlsCertificate, let key = configuration.tlsKey else { return .http1() }
        let chain: [NIOSSLCertificate]
        let privateKey: NIOSSLPrivateKey
        do {
            chain = try NIOSSLCertificate.fromPEMFile(certificate)
        } catch {
            throw ConfigurationError("cannot read the HTTPS certificate \(certificate) (PEM expected): \(error)")
        }
        do {
            privateKey = try NIOSSLPrivateKey(file: key, format: .pem)
        } catch {
            throw ConfigurationError("cannot read the HTTPS private key \(key) (PEM expected): \(error)")
        }
        guard !chain.isEmpty else { throw ConfigurationError("\(certificate) holds no certificate") }
        let tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) },
                                                           privateKey: .privateKey(privateKey))
        return try .tls(.http1(), tlsConfiguration: tls)
    }

    static func split(_ listen: String) throws -> (String, Int) {
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]), (0...65535).contains(port)
        else { throw ConfigurationError("--http-listen '\(listen)' must be HOST:PORT (e.g. 0.0.0.0:8080)") }
        var host = String(listen[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host.isEmpty ? "0.0.0.0" : host, port)
    }

    /// The JWT key kept next to the data (made once, readable by the owner only).
    static func loadOrCreateSecret(at path: String) throws -> [UInt8] {
        if let data = FileManager.default.contents(atPath: path), data.count >= 32 { return Array(data) }
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        var generator = SystemRandomNumberGenerator()
        let secret = (0..<64).map { _ in UInt8.random(in: 0...255, using: &generator) }
        guard FileManager.default.createFile(atPath: path, contents: Data(secret), attributes: [.posixPermissions: 0o600]) else {
            throw ConfigurationError("cannot write the JWT key to \(path); check the data directory's permissions")
        }
        return secret
    }
}
