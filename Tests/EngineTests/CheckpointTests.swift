import Foundation
import NebulaCommon
import NebulaEngine
import Testing

@Suite("Checkpoint format")
struct CheckpointTests {
    static func sample() -> Checkpoint {
        var rng = SeededGenerator(seed: 5)
        let dense = Dense(3, 2, rng: &rng, name: "fc")
        return Checkpoint(model: .init(kind: "mlp", hyperparameters: ["hidden": "256,256"], featureNames: ["a", "b", "c"],
                                       classes: ["x", "y"]),
                          progress: .init(step: 120, epoch: 2, dataPosition: 512, worldSize: 4, optimizer: "adam",
                                          optimizerStep: 120),
                          parameters: dense.parameters,
                          optimizerState: [.init("fc.weight.m", Tensor(shape: [3, 2], repeating: 0.5))],
                          payload: Array("trees".utf8))
    }

    @Test func roundTrip() throws {
        let c = Self.sample()
        #expect(try Checkpoint(decoding: c.encoded()) == c)
    }

    @Test func fileRoundTripAndLoadIntoAModel() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("ckpt-\(UUID().uuidString)").path
        defer { unlink(path) }
        let c = Self.sample()
        try c.write(to: path)
        let back = try Checkpoint.read(from: path)
        var rng = SeededGenerator(seed: 99)
        let fresh = Dense(3, 2, rng: &rng, name: "fc")
        try back.load(into: fresh.parameters)
        #expect(fresh.weight.value == c.parameters[0].tensor)
        #expect(fresh.bias.value == c.parameters[1].tensor)
        let other = Dense(3, 4, rng: &rng, name: "fc")
        #expect(throws: CheckpointError.self) { try back.load(into: other.parameters) }
    }

    @Test func corruptionIsDetected() throws {
        var bytes = Self.sample().encoded()
        bytes[40] ^= 0x01
        #expect { try Checkpoint(decoding: bytes, source: "x.ckpt") } throws: { "\($0)".contains("corrupt") }
        let truncated = Array(Self.sample().encoded().dropLast(5))
        #expect(throws: CheckpointError.self) { try Checkpoint(decoding: truncated) }
    }

    @Test func foreignFilesAndNewerVersionsAreRefused() throws {
        #expect { try Checkpoint(decoding: Array("PK\u{3}\u{4} a zip file, not ours......................................".utf8)) }
            throws: { "\($0)".contains("not a Nebula checkpoint") }
        var newer = Self.sample().encoded()
        newer[8] = 9
        #expect { try Checkpoint(decoding: newer) } throws: { "\($0)".contains("v9") && "\($0)".contains("newer") }
        #expect { try Checkpoint.read(from: "/nonexistent/model.ckpt") } throws: { "\($0)".contains("no such file") }
    }

    @Test(arguments: [
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
    ])
    func sha256KnownVectors(input: String, hex: String) {
        #expect(SHA256.hex(SHA256.hash(Array(input.utf8))) == hex)
    }

    @Test func sha256StreamingMatchesOneShot() {
        var s = SHA256()
        let chunk = [UInt8](repeating: 0x61, count: 1000)
        for _ in 0..<1000 { s.update(chunk) }
        #expect(SHA256.hex(s.finalize()) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }
}
