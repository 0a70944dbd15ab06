import Foundation

/// Runs blocking work (file conversion, hashing, extraction) on a thread of its own, so it never
/// occupies the cooperative pool, and resumes the caller with its result.
public func runOnThread<T: Sendable>(name: String, _ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
        let thread = Thread { continuation.resume(with: Result { try body() }) }
        thread.name = name
        thread.stackSize = 8 << 20
        thread.start()
    }
}
