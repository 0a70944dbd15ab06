import CGRPC
import CGRPCShims

/// The ops of one `grpc_call_start_batch` and all the memory they point at.
///
/// Everything the core reads or writes after `start_batch` returns (messages, metadata, status,
/// `cancelled`) lives in heap storage owned by this object; the completion tag keeps it alive until the
/// batch completes. Thread-safety: built on one thread, then only read after the completion event,
/// which the core orders after its writes.
final class Batch: @unchecked Sendable {
    private(set) var ops: [grpc_op] = []

    private var sentMetadata: UnsafeMutablePointer<grpc_metadata>?
    private var sentMetadataCount = 0
    private var sentBuffer: UnsafeMutablePointer<grpc_byte_buffer>?
    private var sentStatusDetails: UnsafeMutablePointer<grpc_slice>?

    private var receivedMessage: UnsafeMutablePointer<UnsafeMutablePointer<grpc_byte_buffer>?>?
    private var receivedInitialMetadata: UnsafeMutablePointer<grpc_metadata_array>?
    private var receivedTrailingMetadata: UnsafeMutablePointer<grpc_metadata_array>?
    private var receivedStatus: UnsafeMutablePointer<grpc_status_code>?
    private var receivedStatusDetails: UnsafeMutablePointer<grpc_slice>?
    private var receivedErrorString: UnsafeMutablePointer<UnsafePointer<CChar>?>?
    private var cancelledFlag: UnsafeMutablePointer<Int32>?

    init() {}

    private func append(_ type: grpc_op_type, _ fill: (inout grpc_op) -> Void = { _ in }) {
        var op = grpc_op()
        op.op = type
        op.flags = 0
        fill(&op)
        ops.append(op)
    }

    func sendInitialMetadata(_ metadata: RPCMetadata = RPCMetadata()) {
        let count = metadata.entries.count
        if count > 0 {
            let array = UnsafeMutablePointer<grpc_metadata>.allocate(capacity: count)
            for (i, e) in metadata.entries.enumerated() {
                var md = grpc_metadata()
                md.key = grpc_slice_from_copied_string(e.key)
                md.value = grpc_slice_from_copied_string(e.value)
                (array + i).initialize(to: md)
            }
            sentMetadata = array
            sentMetadataCount = count
        }
        let pointer = sentMetadata
        append(GRPC_OP_SEND_INITIAL_METADATA) { op in
            op.data.send_initial_metadata.count = count
            op.data.send_initial_metadata.metadata = pointer
        }
    }

    func sendMessage(_ bytes: [UInt8]) {
        let buffer = bytes.withUnsafeBufferPointer { nebula_grpc_byte_buffer_from_bytes($0.baseAddress, $0.count) }
        sentBuffer = buffer
        append(GRPC_OP_SEND_MESSAGE) { op in op.data.send_message.send_message = buffer }
    }

    func sendCloseFromClient() { append(GRPC_OP_SEND_CLOSE_FROM_CLIENT) }

    func sendStatusFromServer(_ code: RPCCode, _ message: String) {
        let details = UnsafeMutablePointer<grpc_slice>.allocate(capacity: 1)
        details.initialize(to: grpc_slice_from_copied_string(message))
        sentStatusDetails = details
        append(GRPC_OP_SEND_STATUS_FROM_SERVER) { op in
            op.data.send_status_from_server.trailing_metadata_count = 0
            op.data.send_status_from_server.trailing_metadata = nil
            op.data.send_status_from_server.status = grpc_status_code(rawValue: Int32(code.rawValue))
            op.data.send_status_from_server.status_details = details
        }
    }

    func receiveInitialMetadata() {
        let array = UnsafeMutablePointer<grpc_metadata_array>.allocate(capacity: 1)
        array.initialize(to: grpc_metadata_array())
        grpc_metadata_array_init(array)
        receivedInitialMetadata = array
        append(GRPC_OP_RECV_INITIAL_METADATA) { op in op.data.recv_initial_metadata.recv_initial_metadata = array }
    }

    func receiveMessage() {
        let slot = UnsafeMutablePointer<UnsafeMutablePointer<grpc_byte_buffer>?>.allocate(capacity: 1)
        slot.initialize(to: nil)
        receivedMessage = slot
        append(GRPC_OP_RECV_MESSAGE) { op in op.data.recv_message.recv_message = slot }
    }

    func receiveStatusOnClient() {
        let trailing = UnsafeMutablePointer<grpc_metadata_array>.allocate(capacity: 1)
        trailing.initialize(to: grpc_metadata_array())
        grpc_metadata_array_init(trailing)
        let status = UnsafeMutablePointer<grpc_status_code>.allocate(capacity: 1)
        status.initialize(to: GRPC_STATUS_UNKNOWN)
        let details = UnsafeMutablePointer<grpc_slice>.allocate(capacity: 1)
        details.initialize(to: grpc_empty_slice())
        let errorString = UnsafeMutablePointer<UnsafePointer<CChar>?>.allocate(capacity: 1)
        errorString.initialize(to: nil)
        receivedTrailingMetadata = trailing
        receivedStatus = status
        receivedStatusDetails = details
        receivedErrorString = errorString
        append(GRPC_OP_RECV_STATUS_ON_CLIENT) { op in
            op.data.recv_status_on_client.trailing_metadata = trailing
            op.data.recv_status_on_client.status = status
            op.data.recv_status_on_client.status_details = details
            op.data.recv_status_on_client.error_string = errorString
        }
    }

    func receiveCloseOnServer() {
        let flag = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
        flag.initialize(to: 0)
        cancelledFlag = flag
        append(GRPC_OP_RECV_CLOSE_ON_SERVER) { op in op.data.recv_close_on_server.cancelled = flag }
    }

    // MARK: Results (read after completion)

    /// The received message, or nil at end of stream.
    func takeMessage() -> [UInt8]? {
        guard let slot = receivedMessage, let buffer = slot.pointee else { return nil }
        slot.pointee = nil
        defer { grpc_byte_buffer_destroy(buffer) }
        let length = nebula_grpc_byte_buffer_length(buffer)
        if length == 0 { return [] }
        return [UInt8](unsafeUninitializedCapacity: length) { out, count in
            count = nebula_grpc_byte_buffer_copy(buffer, out.baseAddress, length) != 0 ? length : 0
        }
    }

    /// The status a client received.
    var clientStatus: RPCStatus {
        guard let status = receivedStatus, let details = receivedStatusDetails else {
            return RPCStatus(.internal, "no status was requested")
        }
        let length = nebula_grpc_slice_length(details)
        var message = ""
        if length > 0, let start = nebula_grpc_slice_start(details) {
            message = String(decoding: UnsafeBufferPointer(start: start, count: length), as: UTF8.self)
        }
        return RPCStatus(RPCCode(rawValue: Int(status.pointee.rawValue)), message)
    }

    /// On the server: whether the call ended by cancellation (client gone, deadline, server shutdown).
    var wasCancelled: Bool { (cancelledFlag?.pointee ?? 0) != 0 }

    deinit {
        if let md = sentMetadata {
            for i in 0..<sentMetadataCount {
                grpc_slice_unref(md[i].key)
                grpc_slice_unref(md[i].value)
            }
            md.deallocate()
        }
        if let b = sentBuffer { grpc_byte_buffer_destroy(b) }
        if let d = sentStatusDetails { grpc_slice_unref(d.pointee); d.deallocate() }
        if let slot = receivedMessage {
            if let b = slot.pointee { grpc_byte_buffer_destroy(b) }
            slot.deallocate()
        }
        if let a = receivedInitialMetadata { grpc_metadata_array_destroy(a); a.deallocate() }
        if let a = receivedTrailingMetadata { grpc_metadata_array_destroy(a); a.deallocate() }
        receivedStatus?.deallocate()
        if let d = receivedStatusDetails { grpc_slice_unref(d.pointee); d.deallocate() }
        if let e = receivedErrorString {
            if let s = e.pointee { gpr_free(UnsafeMutableRawPointer(mutating: s)) }
            e.deallocate()
        }
        cancelledFlag?.deallocate()
    }
}

/// Channel/server arguments; keys and string values stay alive as long as this object.
final class ChannelArguments {
    private var args: [grpc_arg] = []
    private var strings: [UnsafeMutablePointer<CChar>] = []

    func add(_ key: String, _ value: Int) {
        let k = strdup(key)!
        strings.append(k)
        var arg = grpc_arg()
        arg.type = GRPC_ARG_INTEGER
        arg.key = k
        arg.value.integer = Int32(clamping: value)
        args.append(arg)
    }

    func add(_ key: String, _ value: String) {
        let k = strdup(key)!
        let v = strdup(value)!
        strings.append(k)
        strings.append(v)
        var arg = grpc_arg()
        arg.type = GRPC_ARG_STRING
        arg.key = k
        arg.value.string = v
        args.append(arg)
    }

    func addKeepalive(_ keepalive: RPCKeepalive?, server: Bool) {
        guard let keepalive else { return }
        add("grpc.keepalive_time_ms", Int(keepalive.interval.milliseconds))
        add("grpc.keepalive_timeout_ms", Int(keepalive.timeout.milliseconds))
        add("grpc.keepalive_permit_without_calls", keepalive.permitWithoutCalls ? 1 : 0)
        add("grpc.http2.max_pings_without_data", 0)
        if server {
            // Accept client pings as often as clients are configured to send them.
            add("grpc.http2.min_ping_interval_without_data_ms", 1000)
            add("grpc.http2.min_time_between_pings_ms", 1000)
        }
    }

    func withUnsafeArgs<T>(_ body: (UnsafePointer<grpc_channel_args>) -> T) -> T {
        args.withUnsafeMutableBufferPointer { buffer in
            var channelArgs = grpc_channel_args(num_args: buffer.count, args: buffer.baseAddress)
            return withUnsafePointer(to: &channelArgs) { body($0) }
        }
    }

    deinit { strings.forEach { free($0) } }
}

/// Reads a grpc_slice into a Swift string.
func string(from slice: grpc_slice) -> String {
    var s = slice
    let length = nebula_grpc_slice_length(&s)
    guard length > 0, let start = nebula_grpc_slice_start(&s) else { return "" }
    return String(decoding: UnsafeBufferPointer(start: start, count: length), as: UTF8.self)
}
