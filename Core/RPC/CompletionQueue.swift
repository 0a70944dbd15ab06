import CGRPC
import Foundation
import Synchronization

/// gRPC core must be initialised once per process before anything else.
enum GRPCRuntime {
    private static let initialised: Bool = {
        grpc_init()
        return true
    }()
    static func ensureInitialised() { _ = initialised }
}

/// A completion-queue tag: a class instance passed to the core retained, taken back exactly once.
final class CompletionTag: @unchecked Sendable {
    // Note [Tag ownership]: `passRetained` when handing the tag to the core; the queue thread (or the
    // caller, when the core refuses the operation) balances it with `takeRetainedValue`. `storage`
    // keeps the batch's buffers alive until the core is done writing into them.
    let onComplete: @Sendable (Bool) -> Void
    let storage: AnyObject?

    init(storage: AnyObject?, onComplete: @escaping @Sendable (Bool) -> Void) {
        self.onComplete = onComplete
        self.storage = storage
    }

    func retainedPointer() -> UnsafeMutableRawPointer { Unmanaged.passRetained(self).toOpaque() }

    static func release(_ raw: UnsafeMutableRawPointer) { Unmanaged<CompletionTag>.fromOpaque(raw).release() }
}

/// One `grpc_completion_queue` driven by one dedicated thread.
///
/// Thread-safety: `grpc_completion_queue_next` is only called from the owned thread; the raw pointer
/// is otherwise only passed to core functions that are documented thread-safe. The queue is destroyed
/// only after that thread has observed GRPC_QUEUE_SHUTDOWN.
final class CompletionQueue: @unchecked Sendable {
    let pointer: OpaquePointer
    private let done = DispatchSemaphore(value: 0)
    private let shutdownStarted = Atomic<Bool>(false)

    init(name: String) {
        GRPCRuntime.ensureInitialised()
        pointer = grpc_completion_queue_create_for_next(nil)
        let cq = ServerHandle(pointer: pointer)
        let done = self.done
        let thread = Thread {
            while true {
                let event = grpc_completion_queue_next(cq.pointer, gpr_inf_future(GPR_CLOCK_REALTIME), nil)
                if event.type == GRPC_QUEUE_SHUTDOWN { break }
                guard event.type == GRPC_OP_COMPLETE, let raw = event.tag else { continue }
                let tag = Unmanaged<CompletionTag>.fromOpaque(raw).takeRetainedValue()
                tag.onComplete(event.success != 0)
            }
            done.signal()
        }
        thread.name = name
        thread.start()
    }

    /// Shuts the queue down, waits for its thread to drain every pending tag, and destroys it.
    /// Everything that can post to the queue (server, calls) must be shut down before.
    func shutdownAndWait() {
        guard !shutdownStarted.exchange(true, ordering: .acquiringAndReleasing) else { return }
        grpc_completion_queue_shutdown(pointer)
        done.wait()
        grpc_completion_queue_destroy(pointer)
    }
}

/// Starts a batch on a call; `onComplete` runs on the queue thread. Returns false (without calling
/// `onComplete`) when the core refused the batch.
@discardableResult
func startBatch(_ call: OpaquePointer, _ batch: Batch, onComplete: @escaping @Sendable (Bool) -> Void) -> Bool {
    let tag = CompletionTag(storage: batch, onComplete: onComplete)
    let raw = tag.retainedPointer()
    let error = batch.ops.withUnsafeBufferPointer { ops in
        grpc_call_start_batch(call, ops.baseAddress, ops.count, raw, nil)
    }
    if error != GRPC_CALL_OK {
        CompletionTag.release(raw)
        return false
    }
    return true
}

/// Starts a batch and suspends until it completes; true when every op succeeded.
func runBatch(_ call: OpaquePointer, _ batch: Batch) async -> Bool {
    await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
        let started = startBatch(call, batch) { ok in continuation.resume(returning: ok) }
        if !started { continuation.resume(returning: false) }
    }
}
