import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The thread every MPI call runs on: a FIFO of jobs drained by one long-lived thread.
///
/// Safe to share (`@unchecked Sendable`): `jobs` and `stopping` are read and written only with
/// `condition` locked; `threadID` is written once by the thread before `start()` returns (the semaphore
/// orders that write before every later read) and never again.
final class MPIThread: @unchecked Sendable {
    private let condition = NSCondition()
    private var jobs: [@Sendable () -> Void] = []
    private var stopping = false
    private var threadID = pthread_t()
    private let exited = DispatchSemaphore(value: 0)

    /// Starts the thread; returns once it runs.
    init(name: String) {
        let started = DispatchSemaphore(value: 0)
        let thread = Thread { [self] in
            threadID = pthread_self()
            started.signal()
            loop()
            exited.signal()
        }
        thread.name = name
        // Training loops and GBDT growth run on this thread (Note [Training on the MPI thread]).
        thread.stackSize = 16 << 20
        thread.start()
        started.wait()
    }

    /// Whether the caller is this thread.
    var isCurrent: Bool { pthread_equal(pthread_self(), threadID) != 0 }

    /// Queues `job`; jobs run in submission order.
    func submit(_ job: @escaping @Sendable () -> Void) {
        condition.lock()
        precondition(!stopping, "MPI thread: job submitted after close()")
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }

    /// Lets the thread finish the queued jobs, then exit; waits for that. Not from the thread itself.
    func stopAndJoin() {
        precondition(!isCurrent, "MPI thread: cannot join itself")
        condition.lock()
        stopping = true
        condition.signal()
        condition.unlock()
        exited.wait()
    }

    private func loop() {
        var batch: [@Sendable () -> Void] = []
        while true {
            condition.lock()
            while jobs.isEmpty && !stopping { condition.wait() }
            if jobs.isEmpty {
                condition.unlock()
                return
            }
            swap(&batch, &jobs)
            condition.unlock()
            for job in batch { job() }
            batch.removeAll(keepingCapacity: true)
        }
    }
}
