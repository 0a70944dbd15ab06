import Foundation
import NebulaEngine
import NebulaMPI
import Testing

/// Tests over the real MPI world: they pass at any world size, as a singleton (`swift test`, size 1)
/// and under `mpirun -np N` (Tests/MPITests/run-mpi.sh). Every test here makes collective calls, so the
/// suite is serialized (same order on every rank) and each test starts with `TestWorld.enter()`.
/// Nested suites in the other MPI*Tests files extend it, so that no two MPI tests ever run at once.
@Suite("MPI world", .serialized, .timeLimit(.minutes(5)))
struct MPIWorldTests {
    var mpi: MPIRuntime { TestWorld.mpi }

    @Test func rankAndSize() async throws {
        try await TestWorld.enter()
        #expect(mpi.size >= 1 && (0..<mpi.size).contains(mpi.rank))
        #expect(mpi.threadLevel != "MPI_THREAD_SINGLE")
        let s = Int64(mpi.size)
        #expect(try await mpi.allreduce([1, Int64(mpi.rank)], op: .sum) == [s, s * (s - 1) / 2])
        #expect(try await mpi.allreduce([Int64(mpi.rank)], op: .max) == [s - 1])
        try await mpi.barrier()
    }

    @Test func secondRuntimeIsRefused() async throws {
        try await TestWorld.enter()
        _ = mpi
        #expect(throws: MPIError.self) { _ = try MPIRuntime(logger: .init(label: "second")) }
        do {
            _ = try MPIRuntime(logger: .init(label: "second"))
        } catch {
            #expect(error.code == .alreadyInitialized)
        }
    }

    /// Float sums of sizes 1, odd, and larger than MPI's eager limits; values are small integers, so
    /// the sums are exact whatever the reduction order.
    @Test(arguments: [1, 7, 4099, 1_000_003])
    func floatSumOfManySizes(count: Int) async throws {
        try await TestWorld.enter()
        let rank = mpi.rank, size = mpi.size
        let result = try await mpi.allreduce((0..<count).map { Float((rank + 1) * ($0 % 13)) }, op: .sum)
        let factor = Float(size * (size + 1) / 2)
        #expect(result.count == count)
        #expect(result.enumerated().allSatisfy { $0.element == factor * Float($0.offset % 13) })
    }

    @Test func doubleSumAndMaxAndInt64Sum() async throws {
        try await TestWorld.enter()
        let r = Double(mpi.rank), s = Double(mpi.size)
        #expect(try await mpi.allreduce([0.5 * r, -r, 1e300], op: .max) == [0.5 * (s - 1), 0, 1e300])
        #expect(try await mpi.allreduce([0.25, r], op: .sum) == [0.25 * s, s * (s - 1) / 2])
        let big = Int64(1) << 40
        #expect(try await mpi.allreduce([big + Int64(mpi.rank)], op: .sum) == [big * Int64(mpi.size) + Int64(mpi.size * (mpi.size - 1) / 2)])
    }

    @Test func broadcastBytesFloatsAndDoubles() async throws {
        try await TestWorld.enter()
        let root = mpi.size - 1
        let mine = mpi.rank == root
        #expect(try await mpi.broadcast(mine ? Array("from the last rank".utf8) : [UInt8](repeating: 0, count: 18), root: root)
            == Array("from the last rank".utf8))
        #expect(try await mpi.broadcast(mpi.rank == 0 ? [1.5, -2, 3] : [0, 0, 0] as [Float], root: 0) == [1.5, -2, 3])
        #expect(try await mpi.broadcast(mine ? [Double.pi] : [0], root: root) == [Double.pi])
    }

    /// An invalid root is one of the errors MPI detects locally on every rank (so nobody hangs), and
    /// MPI_ERRORS_RETURN turns it into a thrown error with MPI's own text.
    @Test func invalidRootIsReportedWithMPIsText() async throws {
        try await TestWorld.enter()
        let size = mpi.size
        let error = await #expect(throws: MPIError.self) {
            _ = try await mpi.broadcast([Float(1)], root: size)
        }
        #expect(error?.code == .root)
        #expect(error?.call == "MPI_Bcast")
        #expect(error?.message.lowercased().contains("root") == true, "\(String(describing: error))")
        // The world is still usable afterwards.
        #expect(try await mpi.allreduce([Int64(1)], op: .sum) == [Int64(size)])
    }

    @Test func nonBlockingAllreduceRequest() async throws {
        try await TestWorld.enter()
        let result = try await mpi.run { comm throws(MPIError) -> ([Double], [Double], Int) in
            var a = (0..<1000).map { Double($0 + comm.rank) }
            var b = [Double(comm.rank)]
            var polls = 0
            try a.withUnsafeMutableBufferPointer { pa throws(MPIError) in
                try b.withUnsafeMutableBufferPointer { pb throws(MPIError) in
                    var first = try comm.startAllreduce(pa, op: .sum)
                    let second = try comm.startAllreduce(pb, op: .max)
                    while try !first.test() { polls += 1 }
                    try first.wait()  // already complete: returns at once
                    try second.wait()
                }
            }
            return (a, b, polls)
        }
        let s = Double(mpi.size)
        #expect(result.0 == (0..<1000).map { s * Double($0) + s * (s - 1) / 2 })
        #expect(result.1 == [s - 1])
    }

    /// The synchronous API from a plain thread (a hop to the MPI thread per call).
    @Test func synchronousCallsFromAnotherThread() async throws {
        try await TestWorld.enter()
        let runtime = mpi
        let sums = try await onPlainThread(name: "sync-caller") { () throws -> [Float] in
            var v: [Float] = [1, 2, 3]
            for _ in 0..<10 {
                try v.withUnsafeMutableBufferPointer { try runtime.allreduce($0, op: .sum) }
                for i in v.indices { v[i] /= Float(runtime.size) }
            }
            try runtime.barrier()
            return v
        }
        #expect(sums == [1, 2, 3])
    }
}
