import ArgumentParser
import Foundation
import Logging
import NebulaCommon
import NebulaCoordinator
import NebulaRPC
import NebulaSystem

@main
struct NebulaCoordinatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nebula-coordinator",
        abstract: "The Nebula coordinator: node registry, failure detection, admin API, platform services.",
        version: NebulaVersion.string,
        subcommands: [Serve.self, Versions.self],
        defaultSubcommand: Serve.self)
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the cluster (foreground; SIGTERM or Ctrl-C stops it cleanly).",
        discussion: """
            Secrets come from files or the environment, never from logs: --join-token-file / NEBULA_JOIN_TOKEN, \
            --admin-token-file / NEBULA_ADMIN_TOKEN. The database URL comes from --database-url or \
            NEBULA_DATABASE_URL (e.g. postgresql://postgres@127.0.0.1:55432/nebula).

            The REST API (--http-listen, default 0.0.0.0:8080) signs users in with passwords and JWTs. The first \
            admin comes from NEBULA_ADMIN_EMAIL and NEBULA_ADMIN_PASSWORD (or NEBULA_ADMIN_PASSWORD_FILE) when no \
            admin exists yet; the JWT key from --jwt-secret-file or NEBULA_JWT_SECRET (else one is made and kept \
            in the data directory).
            """)

    @Option(help: "gRPC listen address, host:port.") var listen = "0.0.0.0:7070"
    @Option(help: "PostgreSQL URL (default: $NEBULA_DATABASE_URL).") var databaseURL: String?
    @Option(help: "Directory for the spool and data files.") var dataDir = ".nebula/coordinator"
    @Option(help: "File holding the cluster join token (default: $NEBULA_JOIN_TOKEN).") var joinTokenFile: String?
    @Option(help: "File holding the admin token (default: $NEBULA_ADMIN_TOKEN).") var adminTokenFile: String?
    @Option(help: "Expected heartbeat interval of the agents, e.g. 1s or 500ms.") var heartbeatInterval = "1s"
    @Option(help: "Missed heartbeats before a node is SUSPECT.") var suspectAfterMissed = 3
    @Option(help: "Silence after which a node is DOWN, e.g. 10s.") var downAfter = "10s"
    @Option(help: "TLS certificate chain (PEM); enables TLS together with --tls-key.") var tlsCert: String?
    @Option(help: "TLS private key (PEM).") var tlsKey: String?
    @Option(help: "How long to wait for the database at start, e.g. 60s.") var databaseWait = "60s"
    @Option(help: "trace, debug, info, notice, warning, error or critical.") var logLevel = "info"
    @Option(help: "Largest dataset upload accepted, e.g. 500M, 64G.") var maxUpload = "64G"
    @Option(help: "Most bytes per second one shard stream to a node sends, e.g. 100M (default: no limit).") var shardBandwidth: String?
    @Option(help: "CSV parser threads per dataset conversion (default: all cores).") var ingestThreads: Int?
    @Option(help: "Kaggle API base URL (default: https://www.kaggle.com, or $NEBULA_KAGGLE_URL).") var kaggleURL: String?
    @Option(help: "kaggle.json for Kaggle imports (default: $KAGGLE_USERNAME/$KAGGLE_KEY or ~/.kaggle/kaggle.json).")
    var kaggleCredentials: String?
    @Option(help: "REST API listen address host:port, or 'off'.") var httpListen = "0.0.0.0:8080"
    @Option(help: "File holding the JWT signing key, ≥ 32 bytes (default: $NEBULA_JWT_SECRET, else a key kept in the data dir).")
    var jwtSecretFile: String?
    @Option(help: "Access token lifetime, e.g. 15m.") var accessTokenTtl = "15m"
    @Option(help: "Refresh token (session) lifetime, e.g. 30d or 720h.") var refreshTokenTtl = "30d"
    @Option(help: "bcrypt cost for passwords (4–31).") var bcryptCost = 12
    @Option(help: "Allowed CORS origin (repeatable), e.g. https://lab.example.org.") var corsOrigin: [String] = []
    @Option(help: "Rate limit of a route group (repeatable): GROUP=N/min[:BURST] or GROUP=off; groups auth, read, write, upload.")
    var rateLimit: [String] = []
    @Option(help: "PostgreSQL connections of the REST API (1–64).") var httpDbConnections = 4
    @Option(help: "How long API request records are kept, e.g. 30d, 720h.") var requestLogRetention = "30d"
    @Option(help: "HTTPS certificate chain (PEM) of the REST API (default: --tls-cert when given).") var httpTlsCert: String?
    @Option(help: "HTTPS private key (PEM) of the REST API (default: --tls-key when given).") var httpTlsKey: String?
    @Option(help: "Builder runs on datasets with at least this many labelled rows train their networks over several nodes.")
    var builderDistributedRows = 100_000
    @Option(help: "The most nodes one builder candidate takes (1–256).") var builderMaxNodes = 4
    @Option(help: "A builder candidate job that no node took within this long is cancelled, e.g. 10m.") var builderQueueTimeout = "10m"
    @Option(help: "A builder candidate trained over several nodes is stopped when its ranks wait this long on a rank that does not reach the same collective operation, e.g. 2m.") var builderStallTimeout = "2m"
    @Option(help: "Largest side (pixels) of the images of image-folder datasets when the builder trains on them (4–256).")
    var builderImageSide = 32
    @Flag(help: "Only admins create accounts (POST /api/users); POST /api/auth/register is refused.") var closedRegistration = false

    func run() async throws {
        let env = ProcessInfo.processInfo.environment
        guard let level = Logger.Level(name: logLevel) else {
            throw ValidationError("unknown --log-level '\(logLevel)': use trace, debug, info, notice, warning, error or critical")
        }
        // The coordinator's own records are stored like a node's once its store is up; the box forwards
        // to it from then on (records logged before that only reach the console).
        let sinkBox = SinkBox()
        LoggingSystem.bootstrap { label in
            MultiplexLogHandler([ConsoleLogHandler(label: label, level: level),
                                 ForwardingLogHandler(label: label, level: max(level, .info), sink: sinkBox)])
        }
        let logger = Logger(label: "nebula.coordinator")

        func duration(_ text: String, _ flag: String) throws -> Duration {
            guard let d = Duration.parse(text) else { throw ValidationError("\(flag) '\(text)' is not a duration (e.g. 500ms, 1s, 2m)") }
            return d
        }
        func secret(_ file: String?, _ variable: String, _ flag: String) throws -> String {
            if let file { return try readSecretFile(file, what: flag) }
            if let v = env[variable], !v.isEmpty { return v }
            throw ValidationError("no \(flag.replacingOccurrences(of: "-file", with: "")): pass \(flag) FILE or set \(variable)")
        }

        var config = CoordinatorConfiguration(
            databaseURL: databaseURL ?? env["NEBULA_DATABASE_URL"] ?? "", dataDirectory: dataDir,
            joinToken: try secret(joinTokenFile, "NEBULA_JOIN_TOKEN", "--join-token-file"),
            adminToken: try secret(adminTokenFile, "NEBULA_ADMIN_TOKEN", "--admin-token-file"))
        config.listen = listen
        config.detector = .init(heartbeatInterval: try duration(heartbeatInterval, "--heartbeat-interval"),
                                suspectAfterMissed: suspectAfterMissed, downAfter: try duration(downAfter, "--down-after"))
        config.databaseWait = try duration(databaseWait, "--database-wait")
        guard let uploadLimit = parseByteSize(maxUpload), uploadLimit > 0 else {
            throw ValidationError("--max-upload '\(maxUpload)' is not a size (e.g. 500M, 64G)")
        }
        config.datasets.maxUploadBytes = uploadLimit
        if let shardBandwidth {
            guard let rate = parseByteSize(shardBandwidth.replacingOccurrences(of: "/s", with: "")), rate > 0 else {
                throw ValidationError("--shard-bandwidth '\(shardBandwidth)' is not a size per second (e.g. 100M)")
            }
            config.datasets.shardBytesPerSecond = rate
        }
        if let ingestThreads {
            guard ingestThreads >= 1 else { throw ValidationError("--ingest-threads must be at least 1") }
            config.datasets.ingestThreads = ingestThreads
        }
        if let text = kaggleURL ?? env["NEBULA_KAGGLE_URL"] {
            guard let url = URL(string: text), url.scheme == "http" || url.scheme == "https", url.host != nil else {
                throw ValidationError("--kaggle-url '\(text)' is not an http(s) URL")
            }
            config.datasets.kaggleBaseURL = url
        }
        config.datasets.kaggleCredentialsFile = kaggleCredentials
        switch (tlsCert, tlsKey) {
        case (let cert?, let key?): config.tls = try RPCTLS.server(certificatePath: cert, keyPath: key)
        case (nil, nil): break
        default: throw ValidationError("TLS needs both --tls-cert and --tls-key")
        }

        guard builderDistributedRows >= 1 else { throw ValidationError("--builder-distributed-rows must be at least 1") }
        guard (1...256).contains(builderMaxNodes) else { throw ValidationError("--builder-max-nodes must be between 1 and 256") }
        config.builder.distributedRows = builderDistributedRows
        config.builder.maxNodes = builderMaxNodes
        config.builder.queueTimeout = try duration(builderQueueTimeout, "--builder-queue-timeout")
        config.builder.stallTimeout = try duration(builderStallTimeout, "--builder-stall-timeout")
        guard (4...256).contains(builderImageSide) else { throw ValidationError("--builder-image-side must be between 4 and 256") }
        config.builder.imageSide = builderImageSide

        if httpListen == "off" {
            config.api.listen = nil
        } else {
            _ = try Self.validated(httpListen)
            config.api.listen = httpListen
        }
        if let file = jwtSecretFile {
            config.api.jwtSecret = Array(try readSecretFile(file, what: "--jwt-secret-file").utf8)
        } else if let v = env["NEBULA_JWT_SECRET"], !v.isEmpty {
            config.api.jwtSecret = Array(v.utf8)
        }
        config.api.accessTokenLifetime = try duration(accessTokenTtl, "--access-token-ttl")
        config.api.refreshTokenLifetime = try duration(refreshTokenTtl, "--refresh-token-ttl")
        config.api.bcryptCost = bcryptCost
        config.api.databaseConnections = httpDbConnections
        config.api.requestLogRetention = try duration(requestLogRetention, "--request-log-retention")
        // The REST API speaks HTTPS with its own certificate, else with the gRPC one when TLS is on.
        config.api.tlsCertificate = httpTlsCert ?? (httpTlsKey == nil ? tlsCert : nil)
        config.api.tlsKey = httpTlsKey ?? (httpTlsCert == nil ? tlsKey : nil)
        config.api.corsOrigins = corsOrigin
        config.api.openRegistration = !closedRegistration
        for spec in rateLimit { try config.api.rateLimits.set(spec) }
        if let email = env["NEBULA_ADMIN_EMAIL"], !email.isEmpty {
            let password: String
            if let file = env["NEBULA_ADMIN_PASSWORD_FILE"], !file.isEmpty {
                password = try readSecretFile(file, what: "NEBULA_ADMIN_PASSWORD_FILE")
            } else if let p = env["NEBULA_ADMIN_PASSWORD"], !p.isEmpty {
                password = p
            } else {
                throw ValidationError("NEBULA_ADMIN_EMAIL is set but no password: set NEBULA_ADMIN_PASSWORD or NEBULA_ADMIN_PASSWORD_FILE")
            }
            config.api.bootstrapAdmin = (email, password)
        }

        let coordinator: Coordinator
        do {
            coordinator = try await Coordinator.start(config, logger: logger) { sink in sinkBox.sink = sink }
        } catch {
            logger.critical("coordinator failed to start", metadata: ["error": "\(error)"])
            throw ExitCode(1)
        }
        let signal = await waitForTerminationSignal()
        logger.info("received signal, shutting down", metadata: ["signal": "\(signal)"])
        await coordinator.shutdown()
    }
}

extension Serve {
    static func validated(_ listen: String) throws -> String {
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]), (0...65535).contains(port) else {
            throw ValidationError("--http-listen '\(listen)' must be HOST:PORT (e.g. 0.0.0.0:8080) or 'off'")
        }
        return listen
    }
}

/// "500M", "64G", "1024" (bytes), with K/M/G/T as powers of 1024.
func parseByteSize(_ text: String) -> UInt64? {
    let t = text.trimmingCharacters(in: .whitespaces).uppercased().replacingOccurrences(of: "IB", with: "")
        .replacingOccurrences(of: "B", with: "")
    let units: [Character: UInt64] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40]
    if let last = t.last, let unit = units[last] {
        guard let n = Double(t.dropLast()), n >= 0 else { return nil }
        return UInt64(n * Double(unit))
    }
    return UInt64(t)
}

struct Versions: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the versions of Nebula and the C libraries it links.")
    func run() {
        print("nebula-coordinator \(NebulaVersion.string)")
        for (name, version) in LibraryVersions.all() { print("  \(name): \(version)") }
    }
}

/// Forwards log records to the coordinator's sink once it exists.
final class SinkBox: LogSink, @unchecked Sendable {
    // Thread-safety: the sink is read and written under `lock`.
    private let lock = NSLock()
    private var value: (any LogSink)?
    var sink: (any LogSink)? {
        get { lock.withLock { value } }
        set { lock.withLock { value = newValue } }
    }

    func receive(level: Logger.Level, label: String, message: String, metadata: [String: String], timeUnixMs: Int64) {
        sink?.receive(level: level, label: label, message: message, metadata: metadata, timeUnixMs: timeUnixMs)
    }
}
