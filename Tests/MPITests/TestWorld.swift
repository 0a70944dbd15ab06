import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Logging
import NebulaEngine
import NebulaMPI

/// The process's one MPI runtime for the MPI tests (MPI initialises once per process). Started on first
/// use; finalised by an `atexit` handler, because the test runner has no "after all tests" hook and a rank
/// that exits without `MPI_Finalize` makes mpirun fail the job.
///
/// Under `mpirun -np N` every rank runs the same test binary with the same filter. Every test that makes
/// collective calls lives in the `.serialized` suite `MPIWorldTests` (serialized suites run their tests
/// one at a time, in source order, on every rank) and starts with `TestWorld.enter()`, which stops the
/// job at once if the ranks are not in the same test (rather than letting unrelated collectives match).
enum TestWorld {
    static let mpi: MPIRuntime = {
        let runtime: MPIRuntime
        do {
            runtime = try MPIRuntime(logger: Logger(label: "nebula.mpi.tests"))
        } catch {
            fatalError("MPI initialisation failed: \(error)")
        }
        atexit { TestWorld.closeAtExit() }
        return runtime
    }()

    private static func closeAtExit() {
        do {
            try mpi.close()
        } catch {
            print("MPI_Finalize failed: \(error)")
        }
    }

    /// Checks that all ranks entered the same test (collective).
    static func enter(_ name: String = #function, file: String = #fileID) async throws {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a
        for byte in "\(file):\(name)".utf8 { h = (h ^ UInt64(byte)) &* 0x100_0000_01b3 }
        let mine = Int64(h & ((1 << 40) - 1))
        let sum = try await mpi.allreduce([mine], op: .sum)[0]
        let max = try await mpi.allreduce([mine], op: .max)[0]
        guard sum == mine * Int64(mpi.size) && max == mine else {
            fatalError("rank \(mpi.rank) is in \(file):\(name) but another rank is not: MPI tests out of step")
        }
    }
}

/// Deterministic synthetic rows: `rows × features` uniform in ±1, and 3-class labels from a fixed
/// linear rule (so a small MLP can learn them).
func syntheticClassification(rows: Int, features: Int, classes: Int = 3, seed: UInt64) -> (x: Tensor, y: [Int]) {
    var rng = SeededGenerator(seed: seed)
    let x = Tensor(shape: [rows, features], storage: (0..<rows * features).map { _ in rng.uniform(1) })
    let w = (0..<features * classes).map { _ in rng.uniform(1) }
    let y = (0..<rows).map { r in
        (0..<classes).max { a, b in
            let sa = (0..<features).reduce(Float(0)) { $0 + x[r, $1] * w[$1 * classes + a] }
            let sb = (0..<features).reduce(Float(0)) { $0 + x[r, $1] * w[$1 * classes + b] }
            return sa < sb
        }!
    }
    return (x, y)
}

/// Runs `body` on a thread of its own (a training loop outside the MPI thread, and off the cooperative
/// pool, since the synchronous MPI calls block) and resumes with its result.
func onPlainThread<T: Sendable>(name: String, _ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
        let thread = Thread { continuation.resume(with: Result { try body() }) }
        thread.name = name
        thread.stackSize = 16 << 20
        thread.start()
    }
}
