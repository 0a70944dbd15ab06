// Note [GBDT model file]
// ~~~~~~~~~~~~~~~~~~~~~~
// A trained GBDT is its loss, its baseline, its bin edges and its trees; `encoded()` writes exactly
// that, every Double as its IEEE bit pattern, so a decoded model predicts bit for bit what the trained
// one predicts (prediction only reads thresholds, directions and leaf values; the bin edges and the
// per-node statistics come along so that a decoded model is `==` to the original and could continue
// boosting). Layout, little-endian:
//
//     "NEBGBDT1"                    8 bytes magic
//     format version                u32 (1)
//     loss                          u8: 0 squared error, 1 binary log loss, 2 multinomial (+ u32 classes)
//     baseline                      u32 count, f64 each
//     bin edges                     u32 features; per feature: u32 count, f64 each
//     validation losses             u32 count, f64 each
//     trees                         u32 iterations; per iteration and output: u32 nodes, then per node
//                                   f64 value, i64 count, i32 feature, f64 threshold, i32 bin,
//                                   u8 missing-goes-left, i32 left, i32 right, f64 gain
//
// It has no checksum of its own: cluster jobs carry it as the payload of a checkpoint file
// (Checkpoint.swift), which is versioned and SHA-256 checked. Decoding validates every count and
// child index against what is left, so a damaged file is an error, never a crash.

import Foundation

extension GBDTModel {
    public static let fileMagic = Array("NEBGBDT1".utf8)
    public static let fileFormatVersion: UInt32 = 1

    /// The model as bytes (Note [GBDT model file]).
    public func encoded() -> [UInt8] {
        var w = ByteWriter()
        w.bytes(Self.fileMagic)
        w.u32(Self.fileFormatVersion)
        switch loss {
        case .squaredError: w.u8(0)
        case .binaryLogLoss: w.u8(1)
        case .multinomialLogLoss(let k):
            w.u8(2)
            w.u32(UInt32(k))
        }
        w.doubles(baseline)
        w.u32(UInt32(binMapper.features))
        for t in binMapper.thresholds { w.doubles(t) }
        w.doubles(validationLosses)
        w.u32(UInt32(trees.count))
        for iteration in trees {
            precondition(iteration.count == loss.outputs, "GBDT: an iteration without one tree per output")
            for tree in iteration {
                w.u32(UInt32(tree.nodes.count))
                for n in tree.nodes {
                    w.f64(n.value)
                    w.u64(UInt64(bitPattern: Int64(n.count)))
                    w.u32(UInt32(bitPattern: Int32(n.feature)))
                    w.f64(n.threshold)
                    w.u32(UInt32(bitPattern: Int32(n.bin)))
                    w.u8(n.missingGoesLeft ? 1 : 0)
                    w.u32(UInt32(bitPattern: Int32(n.left)))
                    w.u32(UInt32(bitPattern: Int32(n.right)))
                    w.f64(n.gain)
                }
            }
        }
        return w.out
    }

    /// Decodes a model written by `encoded()`; `source` names it in errors.
    public init(decoding bytes: [UInt8], source: String = "GBDT model") throws {
        var r = ByteReader(bytes: bytes, source: source)
        guard bytes.count >= 12, Array(bytes[0..<8]) == Self.fileMagic else {
            throw GBDTModelError("\(source) is not a Nebula GBDT model (no NEBGBDT1 header)")
        }
        r.offset = 8
        let version = try r.u32()
        guard version == Self.fileFormatVersion else {
            throw GBDTModelError("\(source) has GBDT format v\(version); this build reads v\(Self.fileFormatVersion)"
                + (version > Self.fileFormatVersion ? " (written by a newer Nebula: upgrade)" : ""))
        }
        let loss: GBDTLoss
        switch try r.u8() {
        case 0: loss = .squaredError
        case 1: loss = .binaryLogLoss
        case 2:
            let k = Int(try r.u32())
            guard k >= 2 && k <= 1 << 20 else { throw GBDTModelError("\(source): a multinomial model with \(k) classes") }
            loss = .multinomialLogLoss(classes: k)
        case let other: throw GBDTModelError("\(source): unknown loss code \(other)")
        }
        let baseline = try r.doubles()
        guard baseline.count == loss.outputs else {
            throw GBDTModelError("\(source): \(baseline.count) baseline values for \(loss.outputs) outputs")
        }
        let features = try r.count(elementBytes: 4)
        var thresholds: [[Double]] = []
        thresholds.reserveCapacity(features)
        for f in 0..<features {
            let t = try r.doubles()
            guard t.count < GBDTBinMapper.maxSupportedBins else {
                throw GBDTModelError("\(source): feature \(f) has \(t.count) bin edges (at most \(GBDTBinMapper.maxSupportedBins - 1))")
            }
            thresholds.append(t)
        }
        let validationLosses = try r.doubles()
        let iterations = try r.count(elementBytes: 4 * loss.outputs)
        var trees: [[GBDTTree]] = []
        trees.reserveCapacity(iterations)
        for i in 0..<iterations {
            var iteration: [GBDTTree] = []
            for c in 0..<loss.outputs {
                let count = try r.count(elementBytes: 45)
                guard count >= 1 else { throw GBDTModelError("\(source): tree \(i).\(c) has no nodes") }
                var nodes: [GBDTTree.Node] = []
                nodes.reserveCapacity(count)
                for j in 0..<count {
                    let node = GBDTTree.Node(value: try r.f64(), count: Int(Int64(bitPattern: try r.u64())),
                                             feature: Int(Int32(bitPattern: try r.u32())), threshold: try r.f64(),
                                             bin: Int(Int32(bitPattern: try r.u32())), missingGoesLeft: try r.u8() != 0,
                                             left: Int(Int32(bitPattern: try r.u32())), right: Int(Int32(bitPattern: try r.u32())),
                                             gain: try r.f64())
                    if node.left >= 0 {
                        // children after their parent (so prediction always ends), features that exist
                        guard node.left > j, node.left < count, node.right > j, node.right < count,
                              node.feature >= 0, node.feature < features else {
                            throw GBDTModelError("\(source): tree \(i).\(c) node \(j) has an invalid split (feature \(node.feature), children \(node.left), \(node.right))")
                        }
                    }
                    nodes.append(node)
                }
                iteration.append(GBDTTree(nodes: nodes))
            }
            trees.append(iteration)
        }
        guard r.offset == bytes.count else {
            throw GBDTModelError("\(source): \(bytes.count - r.offset) bytes after the last tree (damaged file)")
        }
        self.init(loss: loss, binMapper: GBDTBinMapper(thresholds: thresholds), baseline: baseline, trees: trees,
                  validationLosses: validationLosses)
    }
}

public struct GBDTModelError: Error, CustomStringConvertible, Equatable {
    public var description: String
    init(_ d: String) { description = d }
}

private struct ByteWriter {
    var out: [UInt8] = []
    mutating func bytes(_ b: [UInt8]) { out += b }
    mutating func u8(_ v: UInt8) { out.append(v) }
    mutating func u32(_ v: UInt32) { for s in stride(from: 0, to: 32, by: 8) { out.append(UInt8(truncatingIfNeeded: v >> UInt32(s))) } }
    mutating func u64(_ v: UInt64) { for s in stride(from: 0, to: 64, by: 8) { out.append(UInt8(truncatingIfNeeded: v >> UInt64(s))) } }
    mutating func f64(_ v: Double) { u64(v.bitPattern) }
    mutating func doubles(_ v: [Double]) {
        u32(UInt32(v.count))
        for x in v { f64(x) }
    }
}

private struct ByteReader {
    let bytes: [UInt8]
    let source: String
    var offset = 0

    init(bytes: [UInt8], source: String) {
        self.bytes = bytes
        self.source = source
    }

    private mutating func take(_ n: Int) throws -> ArraySlice<UInt8> {
        guard n <= bytes.count - offset else {
            throw GBDTModelError("\(source) ends early at byte \(offset) (truncated file)")
        }
        defer { offset += n }
        return bytes[offset..<(offset + n)]
    }

    mutating func u8() throws -> UInt8 { try take(1).first! }
    mutating func u32() throws -> UInt32 { try take(4).reversed().reduce(0) { $0 << 8 | UInt32($1) } }
    mutating func u64() throws -> UInt64 { try take(8).reversed().reduce(0) { $0 << 8 | UInt64($1) } }
    mutating func f64() throws -> Double { Double(bitPattern: try u64()) }

    /// A u32 count whose elements (at least `elementBytes` each) must fit in what is left.
    mutating func count(elementBytes: Int) throws -> Int {
        let n = Int(try u32())
        guard n * max(1, elementBytes) <= bytes.count - offset else {
            throw GBDTModelError("\(source): a count of \(n) at byte \(offset - 4) runs past the end (damaged file)")
        }
        return n
    }

    mutating func doubles() throws -> [Double] {
        let n = try count(elementBytes: 8)
        return try (0..<n).map { _ in try f64() }
    }
}
