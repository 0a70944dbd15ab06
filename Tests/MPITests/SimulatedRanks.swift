import Foundation
import NebulaMPI

/// An in-memory `AllreduceBackend` group for `size` threads (one per simulated rank), to test the
/// data-parallel layer at several world sizes without MPI. Sums in rank order, like a deterministic
/// reduction would.
final class SimulatedGroup: @unchecked Sendable {
    // Safe to share: every stored property is read and written only with `condition` locked.
    private let condition = NSCondition()
    let size: Int
    private var contributions: [[Float]]
    private var arrived = 0
    private var generation = 0
    private var result: [Float] = []

    init(size: Int) {
        self.size = size
        contributions = Array(repeating: [], count: size)
    }

    /// Every rank passes its buffer; `combine` turns the contributions (in rank order) into the result.
    func exchange(rank: Int, _ buffer: UnsafeMutableBufferPointer<Float>, _ combine: ([[Float]]) -> [Float]) {
        condition.lock()
        defer { condition.unlock() }
        contributions[rank] = Array(buffer)
        arrived += 1
        let mine = generation
        if arrived == size {
            precondition(Set(contributions.map(\.count)).count == 1, "simulated ranks passed different counts")
            result = combine(contributions)
            arrived = 0
            generation += 1
            condition.broadcast()
        } else {
            while generation == mine { condition.wait() }
        }
        for i in 0..<buffer.count { buffer[i] = result[i] }
    }

    /// Runs `body(rank, backend)` on `size` threads and returns the results in rank order.
    func run<T: Sendable>(_ body: @escaping @Sendable (Int, SimulatedBackend) throws -> T) throws -> [T] {
        let results = Results<T>()
        let done = DispatchSemaphore(value: 0)
        for rank in 0..<size {
            let thread = Thread {
                results.set(rank, Result { try body(rank, SimulatedBackend(group: self, rank: rank)) })
                done.signal()
            }
            thread.stackSize = 16 << 20
            thread.start()
        }
        for _ in 0..<size { done.wait() }
        return try results.all.map { try $0.get() }
    }
}

struct SimulatedBackend: AllreduceBackend {
    let group: SimulatedGroup
    let rank: Int
    var size: Int { group.size }

    func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) {
        group.exchange(rank: rank, buffer) { all in
            var r = all[0]
            for other in all.dropFirst() { for i in r.indices { r[i] += other[i] } }
            return r
        }
    }

    func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int) {
        group.exchange(rank: rank, buffer) { $0[root] }
    }

    /// Float16 sum in rank order, each addition rounded to Float16 (as the MPI operator does).
    func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float16>) {
        var wide = buffer.map { Float($0) }
        wide.withUnsafeMutableBufferPointer { w in
            group.exchange(rank: rank, w) { all in
                var r = all[0]
                for other in all.dropFirst() { for i in r.indices { r[i] = Float(Float16(r[i] + other[i])) } }
                return r
            }
        }
        for i in buffer.indices { buffer[i] = Float16(wide[i]) }
    }
}

final class Results<T>: @unchecked Sendable {
    // Safe to share: `values` is only touched with `lock` held.
    private let lock = NSLock()
    private var values: [Int: Result<T, any Error>] = [:]
    func set(_ rank: Int, _ value: Result<T, any Error>) { lock.withLock { values[rank] = value } }
    var all: [Result<T, any Error>] { lock.withLock { values.keys.sorted().map { values[$0]! } } }
}
