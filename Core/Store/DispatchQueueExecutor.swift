import Dispatch

/// A `SerialExecutor` that runs every job on one private serial `DispatchQueue`.
///
/// Actors that make blocking calls (libpq waits on a socket; `fsync` waits on a disk) use it as
/// their executor so those calls occupy a dispatch thread of their own instead of one of the few
/// threads of Swift's cooperative pool. Linux has no `DispatchSerialQueue` that is itself an
/// executor, hence this adapter.
///
/// Sendable: its only state is an immutable reference to a `DispatchQueue`, which is thread-safe.
/// Serial execution is what `SerialExecutor` demands, and a queue made without `.concurrent` runs
/// one block at a time in FIFO order.
final class DispatchQueueExecutor: SerialExecutor {
    let queue: DispatchQueue

    init(label: String) {
        self.queue = DispatchQueue(label: label)
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedSerialExecutor()
        queue.async {
            job.runSynchronously(on: executor)
        }
    }

    func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }

    /// Lets `assumeIsolated` and the runtime's isolation checks recognise the queue.
    func checkIsolated() {
        dispatchPrecondition(condition: .onQueue(queue))
    }
}
