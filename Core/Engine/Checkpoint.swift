import Foundation
import NebulaCommon

/// A training checkpoint: parameters (in the model's stable order), optimizer state, where training
/// stood (step, epoch, data position, world size), the model's description, and free-form bytes for
/// models that are not tensors (trees). Versioned and checksummed.
///
/// File layout (little-endian):
/// ```
/// "NEBULACK"            8 bytes magic
/// format version        u32 (1)
/// header length         u32, then the header as UTF-8 JSON (`Header`)
/// tensor data           Float32 values of each tensor, in header order
/// payload               `payloadBytes` bytes
/// SHA-256               32 bytes over everything before it
/// ```
public struct Checkpoint: Sendable, Equatable {
    public static let formatVersion: UInt32 = 1
    static let magic = Array("NEBULACK".utf8)

    /// What model the tensors belong to, enough to rebuild it before loading.
    public struct ModelDescription: Codable, Sendable, Equatable {
        /// e.g. "mlp", "cnn", "text", "linear", "logistic", "gbdt".
        public var kind: String
        public var hyperparameters: [String: String]
        public var featureNames: [String]
        /// Class labels of a classifier, in output order; empty for regression.
        public var classes: [String]

        public init(kind: String, hyperparameters: [String: String] = [:], featureNames: [String] = [],
                    classes: [String] = []) {
            self.kind = kind
            self.hyperparameters = hyperparameters
            self.featureNames = featureNames
            self.classes = classes
        }
    }

    /// Where training stood.
    public struct Progress: Codable, Sendable, Equatable {
        public var step: Int
        public var epoch: Int
        /// Rows of the current epoch already consumed (to resume mid-epoch).
        public var dataPosition: Int
        public var worldSize: Int
        public var optimizer: String
        public var optimizerStep: Int

        public init(step: Int, epoch: Int, dataPosition: Int, worldSize: Int, optimizer: String, optimizerStep: Int) {
            self.step = step
            self.epoch = epoch
            self.dataPosition = dataPosition
            self.worldSize = worldSize
            self.optimizer = optimizer
            self.optimizerStep = optimizerStep
        }
    }

    public var model: ModelDescription
    public var progress: Progress
    public var parameters: [NamedTensor]
    public var optimizerState: [NamedTensor]
    public var payload: [UInt8]
    public var createdUnixMs: Int64

    public init(model: ModelDescription, progress: Progress, parameters: [NamedTensor], optimizerState: [NamedTensor] = [],
                payload: [UInt8] = [], createdUnixMs: Int64 = nowUnixMs()) {
        self.model = model
        self.progress = progress
        self.parameters = parameters
        self.optimizerState = optimizerState
        self.payload = payload
        self.createdUnixMs = createdUnixMs
    }

    /// A checkpoint of these parameters (names and order as the model exposes them).
    public init(model: ModelDescription, progress: Progress, parameters: [Parameter], optimizerState: [NamedTensor] = [],
                payload: [UInt8] = []) {
        self.init(model: model, progress: progress, parameters: parameters.map { NamedTensor($0.name, $0.value) },
                  optimizerState: optimizerState, payload: payload)
    }

    // MARK: Encoding

    struct TensorEntry: Codable {
        var name: String
        var shape: [Int]
        var group: String  // "parameter" or "optimizer"
    }

    struct Header: Codable {
        var model: ModelDescription
        var progress: Progress
        var tensors: [TensorEntry]
        var payloadBytes: Int
        var createdUnixMs: Int64
    }

    public func encoded() -> [UInt8] {
        let header = Header(model: model, progress: progress,
                            tensors: parameters.map { TensorEntry(name: $0.name, shape: $0.tensor.shape, group: "parameter") }
                                + optimizerState.map { TensorEntry(name: $0.name, shape: $0.tensor.shape, group: "optimizer") },
                            payloadBytes: payload.count, createdUnixMs: createdUnixMs)
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let json = Array((try? encoder.encode(header)) ?? Data())
        var out = Self.magic
        appendLE(&out, Self.formatVersion)
        appendLE(&out, UInt32(json.count))
        out += json
        for t in parameters + optimizerState {
            t.tensor.storage.withUnsafeBufferPointer { buffer in
                for v in buffer { appendLE(&out, v.bitPattern) }
            }
        }
        out += payload
        out += SHA256.hash(out)
        return out
    }

    /// Decodes and verifies; `source` names the file in errors.
    public init(decoding bytes: [UInt8], source: String = "checkpoint") throws {
        guard bytes.count >= 16 + 32, Array(bytes[0..<8]) == Self.magic else {
            throw CheckpointError("\(source) is not a Nebula checkpoint (no NEBULACK header): check the path")
        }
        let version = readLE(bytes, 8)
        guard version == Self.formatVersion else {
            throw CheckpointError("\(source) has checkpoint format v\(version); this build reads v\(Self.formatVersion)"
                + (version > Self.formatVersion ? " (written by a newer Nebula: upgrade)" : ""))
        }
        let body = bytes[0..<(bytes.count - 32)]
        let expected = Array(bytes[(bytes.count - 32)...])
        let actual = SHA256.hash(body)
        guard actual == expected else {
            throw CheckpointError("\(source) is corrupt: its SHA-256 is \(SHA256.hex(actual)) but it records \(SHA256.hex(expected)) (truncated or modified file)")
        }
        let headerLength = Int(readLE(bytes, 12))
        guard 16 + headerLength <= body.count else { throw CheckpointError("\(source) is corrupt: header runs past the end") }
        let header: Header
        do {
            header = try JSONDecoder().decode(Header.self, from: Data(bytes[16..<(16 + headerLength)]))
        } catch {
            throw CheckpointError("\(source) has an unreadable header: \(error)")
        }
        var offset = 16 + headerLength
        var params: [NamedTensor] = []
        var optimizer: [NamedTensor] = []
        for entry in header.tensors {
            guard entry.shape.allSatisfy({ $0 >= 0 }) else { throw CheckpointError("\(source): tensor \(entry.name) has a negative dimension") }
            let n = entry.shape.reduce(1, *)
            guard offset + n * 4 <= body.count - header.payloadBytes else {
                throw CheckpointError("\(source) is corrupt: tensor \(entry.name) runs past the end")
            }
            var values = [Float](repeating: 0, count: n)
            for i in 0..<n { values[i] = Float(bitPattern: readLE(bytes, offset + i * 4)) }
            offset += n * 4
            let t = NamedTensor(entry.name, Tensor(shape: entry.shape, storage: values))
            if entry.group == "optimizer" { optimizer.append(t) } else { params.append(t) }
        }
        guard offset + header.payloadBytes == body.count else {
            throw CheckpointError("\(source) is corrupt: \(body.count - offset) bytes left for a payload of \(header.payloadBytes)")
        }
        self.init(model: header.model, progress: header.progress, parameters: params, optimizerState: optimizer,
                  payload: Array(bytes[offset..<body.count]), createdUnixMs: header.createdUnixMs)
    }

    /// Writes atomically (temporary file, then rename).
    public func write(to path: String) throws {
        let tmp = path + ".tmp-\(getpid())"
        guard FileManager.default.createFile(atPath: tmp, contents: Data(encoded())) else {
            throw CheckpointError("cannot write \(tmp): check the directory exists and is writable")
        }
        if rename(tmp, path) != 0 {
            unlink(tmp)
            throw CheckpointError("cannot move the checkpoint into place at \(path) (errno \(errno))")
        }
    }

    public static func read(from path: String) throws -> Checkpoint {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CheckpointError("cannot read checkpoint \(path): no such file or no permission")
        }
        return try Checkpoint(decoding: Array(data), source: path)
    }

    /// Copies the stored parameters into a freshly built model's parameters, checking names and shapes.
    public func load(into target: [Parameter]) throws {
        guard target.count == parameters.count else {
            throw CheckpointError("the checkpoint holds \(parameters.count) parameters, the model has \(target.count): it belongs to another model (\(model.kind))")
        }
        for (p, stored) in zip(target, parameters) {
            guard p.name == stored.name, p.value.shape == stored.tensor.shape else {
                throw CheckpointError("parameter \(p.name) \(p.value.shape) does not match the checkpoint's \(stored.name) \(stored.tensor.shape)")
            }
        }
        for (p, stored) in zip(target, parameters) { p.value = stored.tensor }
    }
}

public struct CheckpointError: Error, CustomStringConvertible, Equatable {
    public var description: String
    init(_ d: String) { description = d }
}

private func appendLE(_ out: inout [UInt8], _ v: UInt32) {
    out += [UInt8(truncatingIfNeeded: v), UInt8(truncatingIfNeeded: v >> 8), UInt8(truncatingIfNeeded: v >> 16),
            UInt8(truncatingIfNeeded: v >> 24)]
}

private func readLE(_ b: [UInt8], _ at: Int) -> UInt32 {
    UInt32(b[at]) | UInt32(b[at + 1]) << 8 | UInt32(b[at + 2]) << 16 | UInt32(b[at + 3]) << 24
}
