/// Request metadata (HTTP/2 headers) as seen by a handler. Keys are lower-case.
public struct RPCMetadata: Sendable, Hashable {
    public private(set) var entries: [(key: String, value: String)] = []

    public init(_ entries: [(String, String)] = []) {
        for (k, v) in entries { add(k, v) }
    }

    public mutating func add(_ key: String, _ value: String) { entries.append((key.lowercased(), value)) }

    public subscript(_ key: String) -> String? {
        let k = key.lowercased()
        return entries.first(where: { $0.key == k })?.value
    }

    /// The bearer token of an `authorization: Bearer ...` entry.
    public var bearerToken: String? {
        guard let v = self["authorization"] else { return nil }
        let prefix = "Bearer "
        return v.hasPrefix(prefix) ? String(v.dropFirst(prefix.count)) : nil
    }

    public static func bearer(_ token: String) -> RPCMetadata { RPCMetadata([("authorization", "Bearer \(token)")]) }

    public static func == (a: RPCMetadata, b: RPCMetadata) -> Bool {
        a.entries.elementsEqual(b.entries) { $0.key == $1.key && $0.value == $1.value }
    }
    public func hash(into h: inout Hasher) {
        for e in entries { h.combine(e.key); h.combine(e.value) }
    }
}
