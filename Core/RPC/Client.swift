import CGRPC
import CGRPCShims
import Foundation
import Synchronization

/// A client channel to one server over the gRPC C core. Calls from any task; all completions are
/// driven by one process-wide client completion-queue thread.
///
/// Thread-safety: `grpc_channel_create_call` and the call functions used here are thread-safe in the
/// core; the channel pointer is destroyed once, under `closed`.
public final class RPCChannel: @unchecked Sendable {
    public struct Configuration: Sendable {
        /// `host:port`
        public var target: String
        public var tls: RPCTLS?
        public var keepalive: RPCKeepalive?
        public var maxMessageBytes: Int
        /// Sent with every call (e.g. `authorization: Bearer ...`).
        public var metadata: RPCMetadata
        /// Upper bound of the reconnect backoff once the server is gone.
        public var maxReconnectBackoff: Duration

        public init(target: String, tls: RPCTLS? = nil, keepalive: RPCKeepalive? = RPCKeepalive(),
                    maxMessageBytes: Int = 64 << 20, metadata: RPCMetadata = RPCMetadata(),
                    maxReconnectBackoff: Duration = .seconds(2)) {
            self.target = target
            self.tls = tls
            self.keepalive = keepalive
            self.maxMessageBytes = maxMessageBytes
            self.metadata = metadata
            self.maxReconnectBackoff = maxReconnectBackoff
        }
    }

    static let queue = CompletionQueue(name: "nebula-rpc-client")

    public let configuration: Configuration
    private let channel: OpaquePointer
    private let closed = Mutex(false)

    public init(configuration: Configuration) throws {
        GRPCRuntime.ensureInitialised()
        self.configuration = configuration
        let args = ChannelArguments()
        args.add("grpc.max_receive_message_length", configuration.maxMessageBytes)
        args.add("grpc.max_send_message_length", configuration.maxMessageBytes)
        args.add("grpc.primary_user_agent", "nebula/\(NebulaRPCVersion.string)")
        let backoff = Int(configuration.maxReconnectBackoff.milliseconds)
        args.add("grpc.initial_reconnect_backoff_ms", min(200, backoff))
        args.add("grpc.min_reconnect_backoff_ms", min(200, backoff))
        args.add("grpc.max_reconnect_backoff_ms", backoff)
        args.addKeepalive(configuration.keepalive, server: false)
        if let name = configuration.tls?.serverNameOverride { args.add("grpc.ssl_target_name_override", name) }

        let credentials: OpaquePointer?
        if let tls = configuration.tls {
            credentials = tls.rootCertificatesPEM.withOptionalCString { roots in
                grpc_ssl_credentials_create(roots, nil, nil, nil)
            }
        } else {
            credentials = grpc_insecure_credentials_create()
        }
        defer { grpc_channel_credentials_release(credentials) }
        guard let channel = args.withUnsafeArgs({ grpc_channel_create(configuration.target, credentials, $0) }) else {
            throw RPCStatus(.invalidArgument, "cannot create a channel to '\(configuration.target)' (expected host:port)")
        }
        self.channel = channel
    }

    /// Closes the channel; calls still running fail with CANCELLED/UNAVAILABLE.
    public func close() {
        let first = closed.withLock { c -> Bool in
            defer { c = true }
            return !c
        }
        if first { grpc_channel_destroy(channel) }
    }

    deinit { close() }

    func makeCall(_ path: String, timeout: Duration?) throws -> ClientCall {
        try closed.withLock { isClosed in
            if isClosed { throw RPCStatus(.unavailable, "channel to \(configuration.target) is closed") }
            let deadline: gpr_timespec
            if let timeout {
                deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                        gpr_time_from_millis(max(1, timeout.milliseconds), GPR_TIMESPAN))
            } else {
                deadline = gpr_inf_future(GPR_CLOCK_REALTIME)
            }
            let method = grpc_slice_from_copied_string(path)
            defer { grpc_slice_unref(method) }
            var m = method
            guard let call = grpc_channel_create_call(channel, nil, nebula_grpc_propagate_defaults(), Self.queue.pointer,
                                                      m, nil, deadline, nil) else {
                throw RPCStatus(.internal, "grpc_channel_create_call failed for \(path)")
            }
            _ = withUnsafeMutablePointer(to: &m) { $0 }
            return ClientCall(pointer: call)
        }
    }

    private func metadata(_ extra: RPCMetadata) -> RPCMetadata {
        var all = configuration.metadata
        for e in extra.entries { all.add(e.key, e.value) }
        return all
    }

    // MARK: Raw calls

    /// A unary call; throws `RPCStatus` for any non-OK outcome.
    public func unary(_ path: String, request: [UInt8], metadata extra: RPCMetadata = RPCMetadata(),
                      timeout: Duration? = nil) async throws -> [UInt8] {
        let call = try makeCall(path, timeout: timeout)
        let batch = Batch()
        batch.sendInitialMetadata(metadata(extra))
        batch.sendMessage(request)
        batch.sendCloseFromClient()
        batch.receiveInitialMetadata()
        batch.receiveMessage()
        batch.receiveStatusOnClient()
        let ok = await withTaskCancellationHandler {
            await runBatch(call.pointer, batch)
        } onCancel: {
            call.cancel()
        }
        guard ok else { throw RPCStatus(.internal, "the call to \(path) could not be started") }
        let status = batch.clientStatus
        guard status.code == .ok else { throw status }
        guard let response = batch.takeMessage() else {
            throw RPCStatus(.internal, "\(path) answered OK without a message")
        }
        return response
    }

    /// A server-streaming call: the responses as an async sequence that throws the final non-OK status.
    public func serverStreaming(_ path: String, request: [UInt8], metadata extra: RPCMetadata = RPCMetadata(),
                                timeout: Duration? = nil) throws -> RPCResponseStream {
        let call = try makeCall(path, timeout: timeout)
        let first = Batch()
        first.sendInitialMetadata(metadata(extra))
        first.sendMessage(request)
        first.sendCloseFromClient()
        first.receiveInitialMetadata()
        startBatch(call.pointer, first) { _ in }
        return RPCResponseStream(call: call, path: path)
    }

    /// A client-streaming call: send messages, then `finish()` for the single response.
    public func clientStreaming(_ path: String, metadata extra: RPCMetadata = RPCMetadata(),
                                timeout: Duration? = nil) throws -> RPCRequestStream {
        let call = try makeCall(path, timeout: timeout)
        let first = Batch()
        first.sendInitialMetadata(metadata(extra))
        startBatch(call.pointer, first) { _ in }
        return RPCRequestStream(call: call, path: path)
    }

    // MARK: Typed calls

    public func unary<Request: RPCMessage, Response: RPCMessage>(
        _ path: String, _ request: Request, as: Response.Type = Response.self,
        metadata: RPCMetadata = RPCMetadata(), timeout: Duration? = nil
    ) async throws -> Response {
        let bytes = try await unary(path, request: request.serializedBytes(), metadata: metadata, timeout: timeout)
        return try decodeResponse(Response.self, bytes, path)
    }

    public func serverStreaming<Request: RPCMessage, Response: RPCMessage>(
        _ path: String, _ request: Request, as: Response.Type = Response.self,
        metadata: RPCMetadata = RPCMetadata(), timeout: Duration? = nil
    ) throws -> RPCTypedResponseStream<Response> {
        RPCTypedResponseStream(raw: try serverStreaming(path, request: request.serializedBytes(), metadata: metadata,
                                                        timeout: timeout))
    }
}

func decodeResponse<M: RPCMessage>(_ type: M.Type, _ bytes: [UInt8], _ path: String) throws -> M {
    do {
        return try M(serializedBytes: bytes)
    } catch {
        throw RPCStatus(.internal, "response from \(path) does not decode as \(M.self): \(error)")
    }
}

/// A client call; released when the last reference goes.
///
/// Thread-safety: `grpc_call_cancel` and `grpc_call_unref` are thread-safe; unref happens once, in deinit,
/// after every batch holding a reference (through its tag) has completed.
final class ClientCall: @unchecked Sendable {
    let pointer: OpaquePointer
    init(pointer: OpaquePointer) { self.pointer = pointer }
    func cancel() { grpc_call_cancel(pointer, nil) }
    deinit { grpc_call_unref(pointer) }
}

/// The responses of a server-streaming call.
public final class RPCResponseStream: AsyncSequence, @unchecked Sendable {
    // Thread-safety: iteration is sequential by contract; the status arrives through a OneShot.
    public typealias Element = [UInt8]
    private let call: ClientCall
    private let path: String
    private let status = OneShot<RPCStatus>()
    private let ended = Mutex(false)

    init(call: ClientCall, path: String) {
        self.call = call
        self.path = path
        let batch = Batch()
        batch.receiveStatusOnClient()
        let status = self.status
        let started = startBatch(call.pointer, batch) { [call] _ in
            _ = call
            status.fulfill(batch.clientStatus)
        }
        if !started { status.fulfill(RPCStatus(.internal, "the call to \(path) could not be started")) }
    }

    /// Cancels the call (the server sees CANCELLED).
    public func cancel() { call.cancel() }

    public func next() async throws -> [UInt8]? {
        if ended.withLock({ $0 }) { return nil }
        let batch = Batch()
        batch.receiveMessage()
        let call = self.call
        let ok = await withTaskCancellationHandler {
            await runBatch(call.pointer, batch)
        } onCancel: {
            call.cancel()
        }
        if ok, let message = batch.takeMessage() { return message }
        ended.withLock { $0 = true }
        let final = await status.wait()
        guard final.code == .ok else { throw final }
        return nil
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let stream: RPCResponseStream
        public mutating func next() async throws -> [UInt8]? { try await stream.next() }
    }
    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(stream: self) }

    deinit { call.cancel() }
}

public struct RPCTypedResponseStream<Message: RPCMessage>: AsyncSequence, Sendable {
    public let raw: RPCResponseStream
    public struct AsyncIterator: AsyncIteratorProtocol {
        let raw: RPCResponseStream
        public mutating func next() async throws -> Message? {
            guard let bytes = try await raw.next() else { return nil }
            return try decodeResponse(Message.self, bytes, "stream")
        }
    }
    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(raw: raw) }
    public func cancel() { raw.cancel() }
}

/// The sending side of a client-streaming call.
///
/// Note [Refusals during a client stream]: the receive side (response, status) is posted when the
/// stream is created, not at `finish()`. A server that refuses part way (a too-large upload) stops
/// reading; the client's next sends would wait for flow-control credit forever. With the receive
/// posted early its completion arrives with the server's status, the call is cancelled, the pending
/// send fails, and `send`/`finish` throw that status.
public final class RPCRequestStream: @unchecked Sendable {
    // Thread-safety: sends are sequential by contract (each awaits the previous); the outcome arrives
    // once through a OneShot from the completion-queue thread.
    private let call: ClientCall
    private let path: String
    private let receive = Batch()
    private let outcome = OneShot<Result<[UInt8], RPCStatus>>()

    init(call: ClientCall, path: String) {
        self.call = call
        self.path = path
        receive.receiveInitialMetadata()
        receive.receiveMessage()
        receive.receiveStatusOnClient()
        let batch = receive, outcome = self.outcome, path = self.path
        let started = startBatch(call.pointer, batch) { [call] ok in
            guard ok else {
                outcome.fulfill(.failure(RPCStatus(.internal, "\(path): the call could not receive")))
                call.cancel()
                return
            }
            let status = batch.clientStatus
            if status.code != .ok {
                outcome.fulfill(.failure(status))
                call.cancel()  // fails a send that waits for credit the server will never give
            } else if let message = batch.takeMessage() {
                outcome.fulfill(.success(message))
            } else {
                outcome.fulfill(.failure(RPCStatus(.internal, "\(path) answered OK without a message")))
            }
        }
        if !started { outcome.fulfill(.failure(RPCStatus(.internal, "the call to \(path) could not be started"))) }
    }

    public func send(_ bytes: [UInt8]) async throws {
        if case .failure(let status)? = outcome.peek { throw status }
        let batch = Batch()
        batch.sendMessage(bytes)
        let call = self.call
        let ok = await withTaskCancellationHandler { await runBatch(call.pointer, batch) } onCancel: { call.cancel() }
        if !ok {
            switch await outcome.wait() {
            case .failure(let status): throw status
            case .success: throw RPCStatus(.failedPrecondition, "\(path): the server answered before the stream ended")
            }
        }
    }

    public func send<M: RPCMessage>(_ message: M) async throws { try await send(message.serializedBytes()) }

    /// Half-closes and waits for the response.
    public func finish() async throws -> [UInt8] {
        if outcome.peek == nil {
            let batch = Batch()
            batch.sendCloseFromClient()
            let call = self.call
            _ = await withTaskCancellationHandler { await runBatch(call.pointer, batch) } onCancel: { call.cancel() }
        }
        let call = self.call
        let result = await withTaskCancellationHandler { await outcome.wait() } onCancel: { call.cancel() }
        return try result.get()
    }

    public func finish<M: RPCMessage>(as: M.Type) async throws -> M {
        try decodeResponse(M.self, try await finish(), path)
    }

    public func cancel() { call.cancel() }
}

public enum NebulaRPCVersion {
    public static let string = "0.1.0"
    /// The gRPC core library version.
    public static var grpcCore: String { String(cString: grpc_version_string()) }
}

extension Optional where Wrapped == String {
    func withOptionalCString<T>(_ body: (UnsafePointer<CChar>?) -> T) -> T {
        switch self {
        case .some(let s): return s.withCString { body($0) }
        case .none: return body(nil)
        }
    }
}
