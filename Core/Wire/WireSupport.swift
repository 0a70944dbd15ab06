import CProtobufC
import Foundation
import NebulaRPC

/// Why bytes could not become a domain value.
public enum WireError: Error, CustomStringConvertible, Equatable {
    /// protobuf-c could not parse the bytes at all.
    case malformed(message: String, byteCount: Int)
    /// A field the receiver needs is absent or empty.
    case missingField(message: String, field: String)
    /// An enum field is UNSPECIFIED (0) or a value this version does not know.
    case badEnum(message: String, field: String, value: UInt32)

    public var description: String {
        switch self {
        case .malformed(let m, let n): return "\(n) bytes are not a valid \(m) message"
        case .missingField(let m, let f): return "\(m).\(f) is required but missing"
        case .badEnum(let m, let f, let v): return "\(m).\(f) has unsupported value \(v)"
        }
    }
}

/// Owns the C memory of a message being built for `pack` (strings, nested messages, pointer arrays).
/// Freed when the arena goes, after `pack` has copied everything out.
final class Arena {
    private var allocations: [UnsafeMutableRawPointer] = []

    func string(_ s: String) -> UnsafeMutablePointer<CChar> {
        let p = strdup(s)!
        allocations.append(UnsafeMutableRawPointer(p))
        return p
    }

    /// A C array of C strings (`char **`) for a repeated string field.
    func strings(_ items: [String]) -> UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? {
        guard !items.isEmpty else { return nil }
        let raw = calloc(items.count, MemoryLayout<UnsafeMutablePointer<CChar>?>.stride)!
        allocations.append(raw)
        let p = raw.bindMemory(to: UnsafeMutablePointer<CChar>?.self, capacity: items.count)
        for (i, item) in items.enumerated() { p[i] = string(item) }
        return p
    }

    /// A C copy of bytes for a `bytes` field.
    func bytes(_ b: [UInt8]) -> ProtobufCBinaryData {
        guard !b.isEmpty else { return ProtobufCBinaryData(len: 0, data: nil) }
        let raw = malloc(b.count)!
        allocations.append(raw)
        b.withUnsafeBytes { raw.copyMemory(from: $0.baseAddress!, byteCount: b.count) }
        return ProtobufCBinaryData(len: b.count, data: raw.assumingMemoryBound(to: UInt8.self))
    }

    /// A C copy of scalars for a repeated scalar field.
    func values<T: BitwiseCopyable>(_ items: [T]) -> UnsafeMutablePointer<T>? {
        guard !items.isEmpty else { return nil }
        let raw = calloc(items.count, MemoryLayout<T>.stride)!
        allocations.append(raw)
        let p = raw.bindMemory(to: T.self, capacity: items.count)
        for (i, item) in items.enumerated() { p[i] = item }
        return p
    }

    /// A zeroed C message initialised by its generated `__init`.
    func message<C>(_ initialise: (UnsafeMutablePointer<C>?) -> Void) -> UnsafeMutablePointer<C> {
        let raw = calloc(1, MemoryLayout<C>.stride)!
        allocations.append(raw)
        let p = raw.bindMemory(to: C.self, capacity: 1)
        initialise(p)
        return p
    }

    /// A C array of message pointers (`T **`) for a repeated field.
    func pointers<C>(_ items: [UnsafeMutablePointer<C>]) -> UnsafeMutablePointer<UnsafeMutablePointer<C>?>? {
        guard !items.isEmpty else { return nil }
        let raw = calloc(items.count, MemoryLayout<UnsafeMutablePointer<C>?>.stride)!
        allocations.append(raw)
        let p = raw.bindMemory(to: UnsafeMutablePointer<C>?.self, capacity: items.count)
        for (i, item) in items.enumerated() { p[i] = item }
        return p
    }

    deinit { allocations.forEach { free($0) } }
}

/// Packs a built C message into bytes.
func pack<C>(_ message: UnsafeMutablePointer<C>,
             size: (UnsafePointer<C>?) -> Int,
             pack: (UnsafePointer<C>?, UnsafeMutablePointer<UInt8>?) -> Int) -> [UInt8] {
    let n = size(message)
    if n == 0 { return [] }
    return [UInt8](unsafeUninitializedCapacity: n) { buffer, count in
        count = pack(message, buffer.baseAddress)
    }
}

/// Unpacks bytes with protobuf-c, converts the tree, and frees it exactly once.
func unpack<C, T>(_ bytes: [UInt8], _ name: String,
                  unpack: (UnsafeMutablePointer<ProtobufCAllocator>?, Int, UnsafePointer<UInt8>?) -> UnsafeMutablePointer<C>?,
                  free: (UnsafeMutablePointer<C>?, UnsafeMutablePointer<ProtobufCAllocator>?) -> Void,
                  _ convert: (C) throws -> T) throws -> T {
    let parsed = bytes.withUnsafeBufferPointer { unpack(nil, $0.count, $0.baseAddress) }
    guard let parsed else { throw WireError.malformed(message: name, byteCount: bytes.count) }
    defer { free(parsed, nil) }
    return try convert(parsed.pointee)
}

func str(_ p: UnsafeMutablePointer<CChar>?) -> String { p.map { String(cString: $0) } ?? "" }

func bytes(_ b: ProtobufCBinaryData) -> [UInt8] {
    guard b.len > 0, let data = b.data else { return [] }
    return [UInt8](UnsafeBufferPointer(start: data, count: b.len))
}

func required(_ s: String, _ message: String, _ field: String) throws -> String {
    guard !s.isEmpty else { throw WireError.missingField(message: message, field: field) }
    return s
}

func list<C, T>(_ count: Int, _ items: UnsafeMutablePointer<UnsafeMutablePointer<C>?>?,
                _ convert: (C) throws -> T) rethrows -> [T] {
    guard let items, count > 0 else { return [] }
    var out: [T] = []
    out.reserveCapacity(count)
    for i in 0..<count {
        if let item = items[i] { out.append(try convert(item.pointee)) }
    }
    return out
}
