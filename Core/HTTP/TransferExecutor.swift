import Foundation
import NebulaCommon

/// Note [Blocking transfers off the cooperative pool]: `curl_easy_perform` blocks its thread for the
/// whole transfer, so transfers run on threads of their own, never on the Swift concurrency pool
/// (two threads on a two-core machine). Up to `maxConcurrentTransfers` worker threads are started on
/// demand; a worker that has been idle for `idleThreadTimeout` exits. Easy handles outlive workers in
/// an idle pool, so connections, DNS and TLS sessions are reused from one request to the next.
final class TransferExecutor: @unchecked Sendable {
    // Thread-safety: every `var` below is read and written only while `condition` is locked; the
    // `let`s are immutable. Handles in `idleHandles` are owned by nobody; a worker takes one out
    // under the lock and owns it exclusively until it puts it back.
    private let condition = NSCondition()
    private var queue: [TransferJob] = []
    private var queueHead = 0
    private var idleWorkers = 0
    private var workers = 0
    private var closed = false
    private var idleHandles: [CurlEasyHandle] = []
    private var threadSerial = 0

    private let configuration: HTTPClient.Configuration

    init(configuration: HTTPClient.Configuration) {
        self.configuration = configuration
    }

    /// Queues the job; false when the executor has been closed.
    func submit(_ job: TransferJob) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard !closed else { return false }
        queue.append(job)
        if idleWorkers > 0 {
            condition.signal()
        } else if workers < max(1, configuration.maxConcurrentTransfers) {
            workers += 1
            threadSerial += 1
            let thread = Thread { [self] in workerLoop() }
            thread.name = "nebula.http.\(threadSerial)"
            thread.start()
        }
        return true
    }

    /// Lets the workers finish what is queued, then exit; drops the idle handles.
    func close() {
        condition.lock()
        closed = true
        idleHandles.removeAll()
        condition.broadcast()
        condition.unlock()
    }

    private func workerLoop() {
        while let job = nextJob() {
            let result: Result<HTTPResponse, any Error>
            do {
                let handle = try checkOutHandle()
                result = Result { try TransferRunner.run(job, handle: handle, configuration: configuration) }
                checkIn(handle)
            } catch {
                result = .failure(error)
            }
            job.continuation.resume(with: result)
        }
    }

    /// The next job, or nil when this worker should exit (closed, or idle for too long).
    private func nextJob() -> TransferJob? {
        condition.lock()
        defer { condition.unlock() }
        while queueHead == queue.count {
            if closed {
                workers -= 1
                return nil
            }
            idleWorkers += 1
            let signalled = condition.wait(until: Date(timeIntervalSinceNow: configuration.idleThreadTimeout.seconds))
            idleWorkers -= 1
            if !signalled && queueHead == queue.count {
                workers -= 1
                return nil
            }
        }
        let job = queue[queueHead]
        queueHead += 1
        if queueHead == queue.count {
            queue.removeAll(keepingCapacity: true)
            queueHead = 0
        }
        return job
    }

    private func checkOutHandle() throws -> CurlEasyHandle {
        condition.lock()
        let reused = idleHandles.popLast()
        condition.unlock()
        return try reused ?? CurlEasyHandle()
    }

    private func checkIn(_ handle: CurlEasyHandle) {
        condition.lock()
        if !closed && idleHandles.count < max(1, configuration.maxConcurrentTransfers) { idleHandles.append(handle) }
        condition.unlock()
    }
}

