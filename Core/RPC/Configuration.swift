import Foundation

/// PEM material for TLS. Server: certificate chain + private key. Client: the root certificates to trust.
public struct RPCTLS: Sendable, Hashable {
    public var certificateChainPEM: String?
    public var privateKeyPEM: String?
    public var rootCertificatesPEM: String?
    /// Client only: the name to check the server certificate against (instead of the target host).
    public var serverNameOverride: String?

    public init(certificateChainPEM: String? = nil, privateKeyPEM: String? = nil,
                rootCertificatesPEM: String? = nil, serverNameOverride: String? = nil) {
        self.certificateChainPEM = certificateChainPEM
        self.privateKeyPEM = privateKeyPEM
        self.rootCertificatesPEM = rootCertificatesPEM
        self.serverNameOverride = serverNameOverride
    }

    /// Server TLS from a certificate chain file and a key file.
    public static func server(certificatePath: String, keyPath: String) throws -> RPCTLS {
        RPCTLS(certificateChainPEM: try readPEM(certificatePath, what: "TLS certificate"),
               privateKeyPEM: try readPEM(keyPath, what: "TLS private key"))
    }

    /// Client TLS trusting the certificates in a CA file.
    public static func client(caPath: String, serverNameOverride: String? = nil) throws -> RPCTLS {
        RPCTLS(rootCertificatesPEM: try readPEM(caPath, what: "TLS CA certificate"), serverNameOverride: serverNameOverride)
    }

    static func readPEM(_ path: String, what: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw RPCStatus(.invalidArgument, "cannot read \(what) at \(path): check the path and permissions")
        }
        guard text.contains("-----BEGIN ") else {
            throw RPCStatus(.invalidArgument, "\(what) at \(path) is not PEM (no '-----BEGIN' line)")
        }
        return text
    }
}

/// HTTP/2 keepalive pings, so dead peers are noticed even on idle connections.
public struct RPCKeepalive: Sendable, Hashable {
    public var interval: Duration
    public var timeout: Duration
    public var permitWithoutCalls: Bool

    public init(interval: Duration = .seconds(20), timeout: Duration = .seconds(10), permitWithoutCalls: Bool = true) {
        self.interval = interval
        self.timeout = timeout
        self.permitWithoutCalls = permitWithoutCalls
    }
}

extension Duration {
    var milliseconds: Int64 {
        let (s, atto) = components
        return s * 1000 + atto / 1_000_000_000_000_000
    }
}
