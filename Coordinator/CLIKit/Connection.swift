import ArgumentParser
import Foundation
import NebulaCommon
import NebulaRPC

/// How the CLI finds and authenticates to the coordinator: flags, then the environment, then
/// `.nebula/cluster.env` (written by `cluster/up`) in this directory or a parent.
public struct ConnectionOptions: ParsableArguments {
    @Option(help: "Coordinator address host:port (default: $NEBULA_COORDINATOR or .nebula/cluster.env).")
    public var coordinator: String?
    @Option(help: "Admin token (prefer --admin-token-file or $NEBULA_ADMIN_TOKEN).")
    public var adminToken: String?
    @Option(help: "File holding the admin token.")
    public var adminTokenFile: String?
    @Option(name: .customLong("tls-ca"), help: "CA certificate (PEM) when the coordinator uses TLS.")
    public var tlsCA: String?
    @Option(help: "Name expected in the coordinator's certificate.")
    public var tlsServerName: String?
    @Option(help: "Seconds to wait for an answer.")
    public var timeout: Double = 10

    public init() {}

    public struct Resolved: Sendable {
        public var target: String
        public var token: String
        public var tls: RPCTLS?
        public var timeout: Duration
    }

    public func resolve(environment: [String: String] = ProcessInfo.processInfo.environment,
                        clusterEnvPath: String? = EnvFile.findClusterEnv()) throws -> Resolved {
        let file = clusterEnvPath.map(EnvFile.load) ?? [:]
        func pick(_ key: String) -> String? {
            if let v = environment[key], !v.isEmpty { return v }
            if let v = file[key], !v.isEmpty { return v }
            return nil
        }
        guard let target = coordinator ?? pick("NEBULA_COORDINATOR") else {
            throw ValidationError("""
                no coordinator address: pass --coordinator HOST:PORT, set NEBULA_COORDINATOR, \
                or run inside a checkout where cluster/up wrote .nebula/cluster.env
                """)
        }
        let token: String
        if let adminTokenFile {
            token = try readSecretFile(adminTokenFile, what: "admin token")
        } else if let t = adminToken ?? pick("NEBULA_ADMIN_TOKEN") {
            token = t
        } else {
            throw ValidationError("no admin token: pass --admin-token-file FILE or set NEBULA_ADMIN_TOKEN")
        }
        var tls: RPCTLS?
        if let ca = tlsCA ?? pick("NEBULA_TLS_CA") {
            tls = try RPCTLS.client(caPath: ca, serverNameOverride: tlsServerName ?? pick("NEBULA_TLS_SERVER_NAME"))
        }
        guard timeout > 0 else { throw ValidationError("--timeout must be > 0") }
        return Resolved(target: target, token: token, tls: tls, timeout: .milliseconds(Int64(timeout * 1000)))
    }

    public func channel() throws -> (RPCChannel, Resolved) {
        let r = try resolve()
        let channel = try RPCChannel(configuration: .init(target: r.target, tls: r.tls, metadata: .bearer(r.token)))
        return (channel, r)
    }
}

/// Turns RPC failures into messages an admin can act on.
public func explain(_ error: any Error, target: String) -> String {
    guard let status = error as? RPCStatus else { return "error: \(error)" }
    switch status.code {
    case .unavailable, .deadlineExceeded:
        return "error: cannot reach the coordinator at \(target) (\(status)); is it running? (cluster/status)"
    case .unauthenticated:
        return "error: the coordinator refused the admin token (\(status.message)); check NEBULA_ADMIN_TOKEN or --admin-token-file"
    default:
        return "error: \(status.message.isEmpty ? "\(status.code)" : status.message)"
    }
}
