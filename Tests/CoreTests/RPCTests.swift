import Foundation
import Logging
import NebulaModel
import NebulaRPC
import NebulaWire
import Testing

/// A real server over loopback with one method of each kind, plus a slow and an authenticated one.
final class EchoFixture: Sendable {
    let server: RPCServer
    let channel: RPCChannel

    init(tls: (server: RPCTLS, client: RPCTLS)? = nil, token: String? = nil) throws {
        let logger = Logger(label: "test.rpc")
        let methods: [RPCMethod] = [
            .unary("/test.Echo/Unary") { (request: RawMessage, context) in
                RawMessage(request.bytes + Array((context.metadata["x-suffix"] ?? "").utf8))
            },
            .unary("/test.Echo/Fail") { (_: RawMessage, _) -> RawMessage in
                throw RPCStatus(.failedPrecondition, "node is drained: resume it first")
            },
            .unary("/test.Echo/Slow") { (request: RawMessage, _) -> RawMessage in
                try await Task.sleep(for: .seconds(3600))  // only a deadline or a cancellation ends it
                return request
            },
            .serverStreaming("/test.Echo/Count") { (request: RawMessage, _, writer: RPCStreamWriter<RawMessage>) in
                let n = Int(request.bytes.first ?? 0)
                for i in 0..<n { try await writer.write(RawMessage([UInt8(i)])) }
                if request.bytes.count > 1 { throw RPCStatus(.aborted, "stopped after \(n)") }
            },
            .serverStreaming("/test.Echo/Forever") { (_: RawMessage, _, writer: RPCStreamWriter<RawMessage>) in
                while true {
                    try await writer.write(RawMessage([1]))
                    try await Task.sleep(for: .milliseconds(20))
                }
            },
            .clientStreaming("/test.Echo/Sum") { (requests: RPCStreamReader<RawMessage>, _) -> RawMessage in
                var total = 0
                for try await m in requests { total += m.bytes.reduce(0) { $0 + Int($1) } }
                return RawMessage(Array(String(total).utf8))
            },
            .clientStreaming("/test.Echo/RefuseFirst") { (requests: RPCStreamReader<RawMessage>, _) -> RawMessage in
                var iterator = requests.makeAsyncIterator()
                _ = try await iterator.next()
                throw RPCStatus(.invalidArgument, "too large")  // refuses without reading the rest
            },
            .unary(NodeServicePath.leave) { (request: LeaveRequest, _) -> Empty in
                guard request.session > 0 else { throw RPCStatus(.invalidArgument, "session must be set") }
                return Empty()
            },
        ]
        var authorizer: RPCServer.Authorizer?
        if let expected = token {
            authorizer = { @Sendable (_: String, metadata: RPCMetadata) -> RPCStatus? in
                metadata.bearerToken == expected ? nil : RPCStatus(.unauthenticated, "bad token")
            }
        }
        server = RPCServer(configuration: .init(address: "127.0.0.1:0", tls: tls?.server), methods: methods,
                           authorizer: authorizer, logger: logger)
        try server.start()
        channel = try RPCChannel(configuration: .init(target: "127.0.0.1:\(server.port)", tls: tls?.client))
    }

    func close() async {
        channel.close()
        await server.shutdown(grace: .milliseconds(200))
    }
}

@Suite("RPC layer over the gRPC core")
struct RPCTests {
    @Test func unaryRoundTripWithMetadata() async throws {
        let f = try EchoFixture()
        let reply = try await f.channel.unary("/test.Echo/Unary", RawMessage(Array("hello".utf8)), as: RawMessage.self,
                                             metadata: RPCMetadata([("x-suffix", "!")]))
        #expect(String(decoding: reply.bytes, as: UTF8.self) == "hello!")
        let empty = try await f.channel.unary("/test.Echo/Unary", RawMessage([]), as: RawMessage.self)
        #expect(empty.bytes.isEmpty)
        await f.close()
    }

    @Test func handlerStatusReachesClient() async throws {
        let f = try EchoFixture()
        await #expect(throws: RPCStatus(.failedPrecondition, "node is drained: resume it first")) {
            _ = try await f.channel.unary("/test.Echo/Fail", RawMessage([1]), as: RawMessage.self)
        }
        await f.close()
    }

    @Test func unknownMethodIsUnimplementedAndServerKeepsServing() async throws {
        let f = try EchoFixture()
        do {
            _ = try await f.channel.unary("/test.Echo/Nope", RawMessage([1]), as: RawMessage.self)
            Issue.record("expected UNIMPLEMENTED")
        } catch let status as RPCStatus {
            #expect(status.code == .unimplemented)
            #expect(status.message.contains("/test.Echo/Nope"))
        }
        let reply = try await f.channel.unary("/test.Echo/Unary", RawMessage([7]), as: RawMessage.self)
        #expect(reply.bytes == [7])
        await f.close()
    }

    @Test func garbageBytesAreInvalidArgument() async throws {
        let f = try EchoFixture()
        for garbage: [UInt8] in [[0xff, 0xff, 0xff, 0xff], [0x0a, 0x50, 0x41], Array(repeating: 0x80, count: 12)] {
            do {
                _ = try await f.channel.unary(NodeServicePath.leave, request: garbage)
                Issue.record("expected INVALID_ARGUMENT for \(garbage)")
            } catch let status as RPCStatus {
                #expect(status.code == .invalidArgument, "\(status)")
            }
        }
        // Well-formed but missing a required field is refused the same way.
        do {
            _ = try await f.channel.unary(NodeServicePath.leave, request: [])
            Issue.record("expected INVALID_ARGUMENT for an empty LeaveRequest")
        } catch let status as RPCStatus {
            #expect(status.code == .invalidArgument)
            #expect(status.message.contains("node_id"))
        }
        let ok = try await f.channel.unary(NodeServicePath.leave, LeaveRequest(nodeId: "n1", session: 3, reason: "bye"),
                                           as: Empty.self)
        #expect(ok == Empty())
        await f.close()
    }

    @Test func deadlineExceeded() async throws {
        let f = try EchoFixture()
        do {
            _ = try await f.channel.unary("/test.Echo/Slow", RawMessage([1]), as: RawMessage.self,
                                          timeout: .milliseconds(200))
            Issue.record("expected DEADLINE_EXCEEDED")
        } catch let status as RPCStatus {
            #expect(status.code == .deadlineExceeded)
        }
        await f.close()
    }

    @Test func clientCancellation() async throws {
        let f = try EchoFixture()
        let task = Task {
            try await f.channel.unary("/test.Echo/Slow", RawMessage([1]), as: RawMessage.self)
        }
        try await Task.sleep(for: .milliseconds(100))
        task.cancel()
        do {
            _ = try await task.value
            Issue.record("expected CANCELLED")
        } catch let status as RPCStatus {
            #expect(status.code == .cancelled)
        }
        await f.close()
    }

    @Test func serverStreamingDeliversAllThenStatus() async throws {
        let f = try EchoFixture()
        var got: [UInt8] = []
        for try await m in try f.channel.serverStreaming("/test.Echo/Count", RawMessage([5]), as: RawMessage.self) {
            got += m.bytes
        }
        #expect(got == [0, 1, 2, 3, 4])

        var partial: [UInt8] = []
        do {
            for try await m in try f.channel.serverStreaming("/test.Echo/Count", RawMessage([3, 1]), as: RawMessage.self) {
                partial += m.bytes
            }
            Issue.record("expected ABORTED")
        } catch let status as RPCStatus {
            #expect(status == RPCStatus(.aborted, "stopped after 3"))
        }
        #expect(partial == [0, 1, 2])
        await f.close()
    }

    @Test func cancellingAnEndlessStreamEndsIt() async throws {
        let f = try EchoFixture()
        let stream = try f.channel.serverStreaming("/test.Echo/Forever", RawMessage([0]), as: RawMessage.self)
        var n = 0
        do {
            for try await _ in stream {
                n += 1
                if n == 3 { stream.cancel() }
                if n > 100 { break }
            }
        } catch let status as RPCStatus {
            #expect(status.code == .cancelled)
        }
        #expect(n >= 3 && n < 100)
        // The server released the call: shutdown finishes well before the grace period would force it.
        await f.close()
    }

    @Test func clientStreamingSums() async throws {
        let f = try EchoFixture()
        let call = try f.channel.clientStreaming("/test.Echo/Sum")
        for i in 1...100 { try await call.send(RawMessage([UInt8(i % 256)])) }
        let reply = try await call.finish(as: RawMessage.self)
        #expect(String(decoding: reply.bytes, as: UTF8.self) == "5050")
        await f.close()
    }

    /// The server refuses a client stream part way: the next sends fail with its status, and finish()
    /// answers the same status instead of waiting for a second one that never comes.
    @Test func aRefusedClientStreamEndsWithTheServersStatus() async throws {
        let f = try EchoFixture()
        let call = try f.channel.clientStreaming("/test.Echo/RefuseFirst")
        let chunk = RawMessage([UInt8](repeating: 7, count: 1 << 20))
        var refused: RPCStatus?
        for _ in 0..<64 {
            do { try await call.send(chunk) } catch let status as RPCStatus {
                refused = status
                break
            }
        }
        #expect(refused == RPCStatus(.invalidArgument, "too large"))
        await #expect(throws: RPCStatus(.invalidArgument, "too large")) { _ = try await call.finish() }
        await f.close()
    }

    @Test func tokenIsChecked() async throws {
        let f = try EchoFixture(token: "s3cret")
        await #expect(throws: RPCStatus(.unauthenticated, "bad token")) {
            _ = try await f.channel.unary("/test.Echo/Unary", RawMessage([1]), as: RawMessage.self)
        }
        await #expect(throws: RPCStatus(.unauthenticated, "bad token")) {
            _ = try await f.channel.unary("/test.Echo/Unary", RawMessage([1]), as: RawMessage.self,
                                          metadata: .bearer("wrong"))
        }
        let ok = try await f.channel.unary("/test.Echo/Unary", RawMessage([1]), as: RawMessage.self,
                                           metadata: .bearer("s3cret"))
        #expect(ok.bytes == [1])
        await f.close()
    }

    @Test func unreachableServerIsUnavailable() async throws {
        let channel = try RPCChannel(configuration: .init(target: "127.0.0.1:1"))
        do {
            _ = try await channel.unary("/test.Echo/Unary", RawMessage([1]), as: RawMessage.self, timeout: .seconds(5))
            Issue.record("expected UNAVAILABLE")
        } catch let status as RPCStatus {
            #expect(status.code == .unavailable)
        }
        channel.close()
    }

    @Test func portInUseIsAClearError() async throws {
        let f = try EchoFixture()
        let second = RPCServer(configuration: .init(address: "127.0.0.1:\(f.server.port)"), methods: [],
                               logger: Logger(label: "test"))
        #expect(throws: RPCStatus.self) { try second.start() }
        await f.close()
    }

    @Test func manyConcurrentCalls() async throws {
        let f = try EchoFixture()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<200 {
                group.addTask {
                    let r = try await f.channel.unary("/test.Echo/Unary", RawMessage([UInt8(i % 256)]), as: RawMessage.self)
                    #expect(r.bytes == [UInt8(i % 256)])
                }
            }
            try await group.waitForAll()
        }
        await f.close()
    }

    @Test func tlsWithSelfSignedCertificate() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("nebula-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let key = dir.appendingPathComponent("key.pem").path
        let cert = dir.appendingPathComponent("cert.pem").path
        let openssl = Process()
        openssl.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        openssl.arguments = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                             "-days", "1", "-subj", "/CN=localhost",
                             "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"]
        openssl.standardOutput = FileHandle.nullDevice
        openssl.standardError = FileHandle.nullDevice
        try openssl.run()
        openssl.waitUntilExit()
        try #require(openssl.terminationStatus == 0)

        let f = try EchoFixture(tls: (server: try .server(certificatePath: cert, keyPath: key),
                                      client: try .client(caPath: cert, serverNameOverride: "localhost")))
        let reply = try await f.channel.unary("/test.Echo/Unary", RawMessage([42]), as: RawMessage.self)
        #expect(reply.bytes == [42])

        // A plaintext client cannot talk to the TLS server.
        let plain = try RPCChannel(configuration: .init(target: "127.0.0.1:\(f.server.port)"))
        await #expect(throws: RPCStatus.self) {
            _ = try await plain.unary("/test.Echo/Unary", RawMessage([1]), as: RawMessage.self, timeout: .seconds(5))
        }
        plain.close()
        await f.close()

        #expect(throws: RPCStatus.self) { _ = try RPCTLS.server(certificatePath: dir.path + "/missing.pem", keyPath: key) }
    }
}
