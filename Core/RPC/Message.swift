/// A message that crosses the wire. Implemented by the wire-mapping layer over protobuf-c.
public protocol RPCMessage: Sendable {
    /// Decodes; throws when the bytes are malformed or a required field is missing.
    init(serializedBytes: [UInt8]) throws
    func serializedBytes() -> [UInt8]
}

/// Raw bytes as a message: for tests, benchmarks and proxies.
public struct RawMessage: RPCMessage, Hashable {
    public var bytes: [UInt8]
    public init(_ bytes: [UInt8]) { self.bytes = bytes }
    public init(serializedBytes: [UInt8]) { bytes = serializedBytes }
    public func serializedBytes() -> [UInt8] { bytes }
}
