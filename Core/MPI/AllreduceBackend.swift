/// Where the data-parallel layer sends its buffers: a sum over all ranks and a broadcast. The fusion
/// buffer calls it once per bucket segment; every rank calls it in the same order with the same counts.
///
/// Implementations: `MPIAllreduceBackend` (the ranks of an MPI job) and `LocalAllreduceBackend` (one
/// process: world size 1). Used from one thread at a time (the training loop's).
public protocol AllreduceBackend {
    var rank: Int { get }
    var size: Int { get }
    /// Replaces every element by its sum over all ranks.
    func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws
    /// Copies `root`'s buffer into every rank's buffer.
    func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int) throws
}

/// A single process: rank 0 of 1; sums and broadcasts leave the buffer as it is.
public struct LocalAllreduceBackend: AllreduceBackend, Sendable {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) {}
    public func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int) {
        precondition(root == 0, "broadcast root \(root) outside a world of size 1")
    }
}

/// The ranks of `MPI_COMM_WORLD`, through an `MPIRuntime`. Each call is a direct MPI call when the
/// training loop runs on the MPI thread, else a blocking hop to it (Note [Training on the MPI thread]).
public struct MPIAllreduceBackend: AllreduceBackend, Sendable {
    public let runtime: MPIRuntime

    public init(_ runtime: MPIRuntime) { self.runtime = runtime }

    public var rank: Int { runtime.rank }
    public var size: Int { runtime.size }

    public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
        try runtime.allreduce(buffer, op: .sum)
    }

    public func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int) throws {
        try runtime.broadcast(buffer, root: root)
    }
}
