import CGRPC
import CGRPCShims
import Foundation
import Logging
import Synchronization

/// What a handler knows about its call.
public struct RPCServerContext: Sendable {
    public let method: String
    public let metadata: RPCMetadata
    public let peer: String
    /// When the client's deadline expires (nil: no deadline). The call is cancelled by then.
    public let deadline: ContinuousClock.Instant?
}

/// One method of a service: its full path (`/nebula.v1.NodeService/Register`) and its handler.
public struct RPCMethod: Sendable {
    enum Handler: Sendable {
        case unary(@Sendable ([UInt8], RPCServerContext) async throws -> [UInt8])
        case serverStreaming(@Sendable ([UInt8], RPCServerContext, RPCServerWriter) async throws -> Void)
        case clientStreaming(@Sendable (RPCServerReader, RPCServerContext) async throws -> [UInt8])
    }
    public let path: String
    let handler: Handler

    public static func unary<Request: RPCMessage, Response: RPCMessage>(
        _ path: String, _ body: @escaping @Sendable (Request, RPCServerContext) async throws -> Response
    ) -> RPCMethod {
        RPCMethod(path: path, handler: .unary { bytes, context in
            try await body(try decodeRequest(Request.self, bytes, path), context).serializedBytes()
        })
    }

    public static func serverStreaming<Request: RPCMessage, Response: RPCMessage>(
        _ path: String,
        _ body: @escaping @Sendable (Request, RPCServerContext, RPCStreamWriter<Response>) async throws -> Void
    ) -> RPCMethod {
        RPCMethod(path: path, handler: .serverStreaming { bytes, context, writer in
            try await body(try decodeRequest(Request.self, bytes, path), context, RPCStreamWriter(raw: writer))
        })
    }

    public static func clientStreaming<Request: RPCMessage, Response: RPCMessage>(
        _ path: String,
        _ body: @escaping @Sendable (RPCStreamReader<Request>, RPCServerContext) async throws -> Response
    ) -> RPCMethod {
        RPCMethod(path: path, handler: .clientStreaming { reader, context in
            try await body(RPCStreamReader(raw: reader, path: path), context).serializedBytes()
        })
    }
}

func decodeRequest<M: RPCMessage>(_ type: M.Type, _ bytes: [UInt8], _ path: String) throws -> M {
    do {
        return try M(serializedBytes: bytes)
    } catch {
        throw RPCStatus(.invalidArgument, "request to \(path) does not decode as \(M.self): \(error)")
    }
}

/// Sends the messages of a server-streaming call. One write at a time (each awaits the previous).
public final class RPCServerWriter: @unchecked Sendable {
    // Thread-safety: `initialMetadataSent` and `busy` are guarded by `lock`; the call pointer is only
    // passed to grpc_call_start_batch, which is thread-safe.
    private let call: OpaquePointer
    private let lock = Mutex<(initialMetadataSent: Bool, busy: Bool)>((false, false))

    init(call: OpaquePointer) { self.call = call }

    var initialMetadataSent: Bool { lock.withLock { $0.initialMetadataSent } }

    public func write(_ bytes: [UInt8]) async throws {
        let sendMetadata = try lock.withLock { s -> Bool in
            if s.busy { throw RPCStatus(.internal, "concurrent writes on one stream") }
            s.busy = true
            defer { s.initialMetadataSent = true }
            return !s.initialMetadataSent
        }
        defer { lock.withLock { $0.busy = false } }
        try Task.checkCancellation()
        let batch = Batch()
        if sendMetadata { batch.sendInitialMetadata() }
        batch.sendMessage(bytes)
        guard await runBatch(call, batch) else { throw RPCStatus(.cancelled, "the client went away") }
    }
}

/// Typed view of an `RPCServerWriter`.
public struct RPCStreamWriter<Message: RPCMessage>: Sendable {
    let raw: RPCServerWriter
    public func write(_ message: Message) async throws { try await raw.write(message.serializedBytes()) }
}

/// Receives the messages of a client-streaming call.
public final class RPCServerReader: @unchecked Sendable {
    // Thread-safety: reads are sequential by contract (AsyncIterator), `finished` guarded by a Mutex.
    private let call: OpaquePointer
    private let finished = Mutex(false)

    init(call: OpaquePointer) { self.call = call }

    /// The next message, or nil at the end of the client's stream.
    public func next() async throws -> [UInt8]? {
        if finished.withLock({ $0 }) { return nil }
        try Task.checkCancellation()
        let batch = Batch()
        batch.receiveMessage()
        guard await runBatch(call, batch) else { throw RPCStatus(.cancelled, "the client went away") }
        guard let message = batch.takeMessage() else {
            finished.withLock { $0 = true }
            return nil
        }
        return message
    }
}

/// Typed view of an `RPCServerReader`, as an async sequence.
public struct RPCStreamReader<Message: RPCMessage>: AsyncSequence, Sendable {
    let raw: RPCServerReader
    let path: String
    public struct AsyncIterator: AsyncIteratorProtocol {
        let raw: RPCServerReader
        let path: String
        public mutating func next() async throws -> Message? {
            guard let bytes = try await raw.next() else { return nil }
            return try decodeRequest(Message.self, bytes, path)
        }
    }
    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(raw: raw, path: path) }
}

/// A gRPC server over the C core: one completion queue, one thread driving it, handlers on Swift tasks.
///
/// Thread-safety: the C server pointer is created in `start()` before any other thread sees it, and
/// afterwards used only with thread-safe core functions; mutable state lives in `state` (a Mutex).
public final class RPCServer: @unchecked Sendable {
    public struct Configuration: Sendable {
        /// `host:port`; port 0 picks a free port (see `port` after `start()`).
        public var address: String
        public var tls: RPCTLS?
        public var keepalive: RPCKeepalive?
        public var maxMessageBytes: Int
        /// How many calls the server accepts ahead (outstanding `grpc_server_request_call`s).
        public var acceptAhead: Int

        public init(address: String, tls: RPCTLS? = nil, keepalive: RPCKeepalive? = RPCKeepalive(),
                    maxMessageBytes: Int = 64 << 20, acceptAhead: Int = 32) {
            self.address = address
            self.tls = tls
            self.keepalive = keepalive
            self.maxMessageBytes = maxMessageBytes
            self.acceptAhead = acceptAhead
        }
    }

    /// Decides whether a call may proceed; answer a status (UNAUTHENTICATED...) to refuse it.
    public typealias Authorizer = @Sendable (_ method: String, _ metadata: RPCMetadata) -> RPCStatus?

    private struct State {
        var server: ServerHandle?
        var queue: CompletionQueue?
        var stopping = false
        var activeCalls = 0
        var idleWaiters: [CheckedContinuation<Void, Never>] = []
    }

    public let configuration: Configuration
    private let methods: [String: RPCMethod]
    private let authorizer: Authorizer?
    private let logger: Logger
    private let state = Mutex(State())
    public private(set) var port: Int = 0

    public init(configuration: Configuration, methods: [RPCMethod], authorizer: Authorizer? = nil, logger: Logger) {
        self.configuration = configuration
        self.methods = Dictionary(methods.map { ($0.path, $0) }, uniquingKeysWith: { _, last in last })
        self.authorizer = authorizer
        self.logger = logger
    }

    /// Binds and starts serving. Throws when the address cannot be bound or TLS material is unusable.
    public func start() throws {
        GRPCRuntime.ensureInitialised()
        let args = ChannelArguments()
        args.add("grpc.max_receive_message_length", configuration.maxMessageBytes)
        args.add("grpc.max_send_message_length", configuration.maxMessageBytes)
        args.addKeepalive(configuration.keepalive, server: true)
        // gRPC enables SO_REUSEPORT by default: a second server on the same port would then share it
        // silently instead of failing. One port, one server.
        args.add("grpc.so_reuseport", 0)
        guard let server = args.withUnsafeArgs({ grpc_server_create($0, nil) }) else {
            throw RPCStatus(.internal, "grpc_server_create failed")
        }
        let queue = CompletionQueue(name: "nebula-rpc-server")
        grpc_server_register_completion_queue(server, queue.pointer, nil)

        let credentials: OpaquePointer?
        if let tls = configuration.tls {
            guard let chain = tls.certificateChainPEM, let key = tls.privateKeyPEM else {
                grpc_server_destroy(server)
                queue.shutdownAndWait()
                throw RPCStatus(.invalidArgument, "server TLS needs both a certificate chain and a private key")
            }
            credentials = key.withCString { k in
                chain.withCString { c in
                    var pair = grpc_ssl_pem_key_cert_pair(private_key: k, cert_chain: c)
                    return grpc_ssl_server_credentials_create(nil, &pair, 1, 0, nil)
                }
            }
        } else {
            credentials = grpc_insecure_server_credentials_create()
        }
        let bound = grpc_server_add_http2_port(server, configuration.address, credentials)
        grpc_server_credentials_release(credentials)
        guard bound != 0 else {
            grpc_server_destroy(server)
            queue.shutdownAndWait()
            throw RPCStatus(.unavailable,
                            "cannot listen on \(configuration.address): the port is in use, the address is not local, or the TLS material is invalid")
        }
        port = Int(bound)
        grpc_server_start(server)
        state.withLock {
            $0.server = ServerHandle(pointer: server)
            $0.queue = queue
        }
        for _ in 0..<max(1, configuration.acceptAhead) { acceptNext(server: server, queue: queue) }
        logger.info("rpc server listening", metadata: [
            "rpc.address": "\(configuration.address)", "rpc.port": "\(port)",
            "rpc.tls": "\(configuration.tls != nil)",
        ])
    }

    /// Stops accepting calls, lets running calls finish for `grace`, cancels the rest, and frees everything.
    public func shutdown(grace: Duration = .seconds(2)) async {
        let taken: (OpaquePointer, CompletionQueue)? = state.withLock { s in
            guard let server = s.server, let queue = s.queue, !s.stopping else { return nil }
            s.stopping = true
            return (server.pointer, queue)
        }
        guard let (server, queue) = taken else { return }
        let notified = OneShot<Void>()
        let tag = CompletionTag(storage: nil) { _ in notified.fulfill(()) }
        grpc_server_shutdown_and_notify(server, queue.pointer, tag.retainedPointer())
        let handle = ServerHandle(pointer: server)
        let canceller = Task {
            try? await Task.sleep(for: grace)
            if !Task.isCancelled { grpc_server_cancel_all_calls(handle.pointer) }
        }
        await notified.wait()
        canceller.cancel()
        // Calls may still be unwinding on their tasks: wait until each has released its call.
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let idle = state.withLock { s -> Bool in
                if s.activeCalls == 0 { return true }
                s.idleWaiters.append(continuation)
                return false
            }
            if idle { continuation.resume() }
        }
        grpc_server_destroy(server)
        queue.shutdownAndWait()
        state.withLock {
            $0.server = nil
            $0.queue = nil
        }
        logger.info("rpc server stopped", metadata: ["rpc.port": "\(port)"])
    }

    // MARK: Accepting calls

    private func acceptNext(server: OpaquePointer, queue: CompletionQueue) {
        let request = PendingCall()
        let serverHandle = ServerHandle(pointer: server)
        let tag = CompletionTag(storage: request) { [self] ok in
            guard ok, let call = request.call.pointee else { return }  // server shutting down
            let stopping = state.withLock { s -> Bool in
                if !s.stopping { s.activeCalls += 1 }
                return s.stopping
            }
            if stopping {
                grpc_call_cancel_with_status(call, GRPC_STATUS_UNAVAILABLE, "server is shutting down", nil)
                grpc_call_unref(call)
                return
            }
            acceptNext(server: serverHandle.pointer, queue: queue)
            begin(call: call, request: request)
        }
        let raw = tag.retainedPointer()
        let error = grpc_server_request_call(server, request.call, request.details, request.metadata,
                                             queue.pointer, queue.pointer, raw)
        if error != GRPC_CALL_OK {
            CompletionTag.release(raw)
            logger.error("grpc_server_request_call failed", metadata: ["rpc.error": "\(error.rawValue)"])
        }
    }

    /// Runs on the queue thread: reads the call's details, arms the close notification, starts the task.
    private func begin(call: OpaquePointer, request: PendingCall) {
        let method = string(from: request.details.pointee.method)
        var metadata = RPCMetadata()
        let array = request.metadata.pointee
        for i in 0..<array.count {
            metadata.add(string(from: array.metadata[i].key), string(from: array.metadata[i].value))
        }
        let deadline = Self.deadline(from: request.details.pointee.deadline)
        var peer = ""
        if let p = grpc_call_get_peer(call) {
            peer = String(cString: p)
            gpr_free(p)
        }
        let context = RPCServerContext(method: method, metadata: metadata, peer: peer, deadline: deadline)
        let lifecycle = CallLifecycle()
        let closeBatch = Batch()
        closeBatch.receiveCloseOnServer()
        let armed = startBatch(call, closeBatch) { _ in lifecycle.closed(cancelled: closeBatch.wasCancelled) }
        if !armed { lifecycle.closed(cancelled: true) }
        let handle = CallHandle(pointer: call)
        let task = Task { [self] in
            await serve(call: handle, context: context)
            await lifecycle.waitClosed()
            grpc_call_unref(handle.pointer)
            _ = request  // the details and metadata arrays live until the call is released
            callFinished()
        }
        lifecycle.attach(task)
    }

    private func callFinished() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.activeCalls -= 1
            guard s.activeCalls == 0 else { return [] }
            defer { s.idleWaiters = [] }
            return s.idleWaiters
        }
        waiters.forEach { $0.resume() }
    }

    private static func deadline(from spec: gpr_timespec) -> ContinuousClock.Instant? {
        if spec.tv_sec == Int64.max { return nil }
        let remaining = gpr_time_sub(gpr_convert_clock_type(spec, GPR_CLOCK_MONOTONIC), gpr_now(GPR_CLOCK_MONOTONIC))
        let duration = Duration.seconds(remaining.tv_sec) + Duration.nanoseconds(Int64(remaining.tv_nsec))
        return ContinuousClock.now.advanced(by: duration)
    }

    // MARK: Serving one call

    private func serve(call: CallHandle, context: RPCServerContext) async {
        let pointer = call.pointer
        if let refusal = authorizer?(context.method, context.metadata) {
            logger.notice("rpc refused", metadata: ["rpc.method": "\(context.method)", "rpc.peer": "\(context.peer)",
                                                     "rpc.status": "\(refusal.code)"])
            await finish(pointer, status: refusal, metadataSent: false)
            return
        }
        guard let method = methods[context.method] else {
            await finish(pointer, status: RPCStatus(.unimplemented, "unknown method \(context.method)"),
                         metadataSent: false)
            return
        }
        switch method.handler {
        case .unary(let body):
            guard let request = await receiveOne(pointer, path: context.method) else { return }
            do {
                let response = try await body(request.get(), context)
                let batch = Batch()
                batch.sendInitialMetadata()
                batch.sendMessage(response)
                batch.sendStatusFromServer(.ok, "")
                _ = await runBatch(pointer, batch)
            } catch {
                await finish(pointer, status: status(for: error, context), metadataSent: false)
            }
        case .serverStreaming(let body):
            guard let request = await receiveOne(pointer, path: context.method) else { return }
            let writer = RPCServerWriter(call: pointer)
            var outcome = RPCStatus(.ok, "")
            do {
                try await body(request.get(), context, writer)
            } catch {
                outcome = status(for: error, context)
            }
            await finish(pointer, status: outcome, metadataSent: writer.initialMetadataSent)
        case .clientStreaming(let body):
            do {
                let response = try await body(RPCServerReader(call: pointer), context)
                let batch = Batch()
                batch.sendInitialMetadata()
                batch.sendMessage(response)
                batch.sendStatusFromServer(.ok, "")
                _ = await runBatch(pointer, batch)
            } catch {
                // the client may still be sending: Note [Refusals during a client stream] (Client.swift)
                await finish(pointer, status: status(for: error, context), metadataSent: false)
            }
        }
    }

    /// Receives the single request message of a unary or server-streaming call; answers the error itself.
    private func receiveOne(_ call: OpaquePointer, path: String) async -> Result<[UInt8], RPCStatus>? {
        let batch = Batch()
        batch.receiveMessage()
        guard await runBatch(call, batch) else {
            await finish(call, status: RPCStatus(.cancelled, "call ended before its request arrived"), metadataSent: false)
            return nil
        }
        guard let bytes = batch.takeMessage() else {
            await finish(call, status: RPCStatus(.invalidArgument, "\(path) expects one request message, got none"),
                         metadataSent: false)
            return nil
        }
        return .success(bytes)
    }

    private func finish(_ call: OpaquePointer, status: RPCStatus, metadataSent: Bool) async {
        let batch = Batch()
        if !metadataSent { batch.sendInitialMetadata() }
        batch.sendStatusFromServer(status.code, status.message)
        _ = await runBatch(call, batch)
    }

    private func status(for error: any Error, _ context: RPCServerContext) -> RPCStatus {
        switch error {
        case let status as RPCStatus:
            return status
        case is CancellationError:
            return RPCStatus(.cancelled, "the call was cancelled")
        default:
            logger.error("rpc handler failed", metadata: ["rpc.method": "\(context.method)", "error": "\(error)"])
            return RPCStatus(.internal, "\(error)")
        }
    }
}

/// Storage for one `grpc_server_request_call`.
final class PendingCall: @unchecked Sendable {
    // Thread-safety: written by the core before the tag completes, read afterwards on one task.
    let call = UnsafeMutablePointer<OpaquePointer?>.allocate(capacity: 1)
    let details = UnsafeMutablePointer<grpc_call_details>.allocate(capacity: 1)
    let metadata = UnsafeMutablePointer<grpc_metadata_array>.allocate(capacity: 1)

    init() {
        call.initialize(to: nil)
        details.initialize(to: grpc_call_details())
        grpc_call_details_init(details)
        metadata.initialize(to: grpc_metadata_array())
        grpc_metadata_array_init(metadata)
    }

    deinit {
        grpc_call_details_destroy(details)
        grpc_metadata_array_destroy(metadata)
        details.deallocate()
        metadata.deallocate()
        call.deallocate()
    }
}

/// A `grpc_call*` that crosses into a task. Core call functions are thread-safe.
struct CallHandle: @unchecked Sendable { let pointer: OpaquePointer }
/// A core server or completion-queue pointer that crosses threads (used only with thread-safe functions).
struct ServerHandle: @unchecked Sendable { let pointer: OpaquePointer }

/// Joins the RECV_CLOSE_ON_SERVER completion with the task serving the call: a cancelled call
/// (client gone, deadline passed, server shutting down) cancels the task.
final class CallLifecycle: Sendable {
    private struct State {
        var task: Task<Void, Never>?
        var cancelled = false
    }
    private let state = Mutex(State())
    private let done = OneShot<Void>()

    func attach(_ task: Task<Void, Never>) {
        let cancelNow = state.withLock { s -> Bool in
            s.task = task
            return s.cancelled
        }
        if cancelNow { task.cancel() }
    }

    func closed(cancelled: Bool) {
        let task = state.withLock { s -> Task<Void, Never>? in
            s.cancelled = cancelled
            return cancelled ? s.task : nil
        }
        task?.cancel()
        done.fulfill(())
    }

    func waitClosed() async { await done.wait() }
}
