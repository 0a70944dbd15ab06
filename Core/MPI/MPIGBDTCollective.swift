import NebulaEngine

/// GBDT's collective over the ranks of an MPI job: `sum` and `max` are in-place `MPI_Allreduce`s of
/// Doubles. Every rank trains on its own rows and ends with the same model a single process trains on
/// all rows (the histogram sums are exact, Note [Exact histogram sums] in the engine).
///
/// Note [Collective failures are fatal]: `GBDTCollective` cannot throw, and a failed allreduce leaves
/// the ranks with different histograms: nothing after it could be trusted, and the other ranks may
/// already wait in the next collective. So an MPI error stops the process (with MPI's message); mpirun
/// then ends the other ranks. Run GBDT training on the MPI thread (`runtime.run { _ in ... }`) to avoid
/// a thread hop per histogram.
public struct MPIGBDTCollective: GBDTCollective, Sendable {
    public let runtime: MPIRuntime

    public init(_ runtime: MPIRuntime) { self.runtime = runtime }

    public func sum(_ buffer: UnsafeMutableBufferPointer<Double>) { reduce(buffer, .sum) }

    public func max(_ buffer: UnsafeMutableBufferPointer<Double>) { reduce(buffer, .max) }

    private func reduce(_ buffer: UnsafeMutableBufferPointer<Double>, _ op: MPIReduceOp) {
        do {
            try runtime.allreduce(buffer, op: op)
        } catch {
            fatalError("GBDT allreduce failed on rank \(runtime.rank): \(error)")
        }
    }
}
