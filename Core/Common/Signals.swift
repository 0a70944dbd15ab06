import Dispatch
import Foundation

/// Suspends until SIGTERM or SIGINT arrives; returns the signal number.
public func waitForTerminationSignal() async -> Int32 {
    await withCheckedContinuation { (continuation: CheckedContinuation<Int32, Never>) in
        let once = ResumeOnce(continuation)
        let queue = DispatchQueue(label: "nebula.signals")
        for sig in [SIGTERM, SIGINT] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: queue)
            source.setEventHandler { once.resume(sig) }
            source.resume()
            SignalSources.keep(source)
        }
    }
}

private final class ResumeOnce: @unchecked Sendable {
    // Thread-safety: only touched on the serial signal queue.
    private var continuation: CheckedContinuation<Int32, Never>?
    init(_ c: CheckedContinuation<Int32, Never>) { continuation = c }
    func resume(_ sig: Int32) {
        continuation?.resume(returning: sig)
        continuation = nil
    }
}

private enum SignalSources {
    nonisolated(unsafe) static var sources: [any DispatchSourceSignal] = []
    static let lock = NSLock()
    static func keep(_ s: any DispatchSourceSignal) { lock.withLock { sources.append(s) } }
}
