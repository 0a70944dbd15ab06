import CMPI

/// Where the data-parallel layer sends its buffers: a sum over all ranks and a broadcast. The fusion
/// buffer calls it once per bucket segment; every rank calls it in the same order with the same counts.
///
/// Implementations: `MPIAllreduceBackend` (the ranks of an MPI job) and `LocalAllreduceBackend` (one
/// process: world size 1). Used from one thread at a time (the training loop's).
///
/// The non-blocking and Float16 operations have defaults: `startAllreduceSum` sums at once and hands
/// back a finished request (correct for any backend, without overlap), and the Float16 sum throws
/// (a backend has to opt in to a wire format). A wrapper around another backend must forward all of
/// them, or it silently loses the overlap or the Float16 path.
public protocol AllreduceBackend {
    var rank: Int { get }
    var size: Int { get }
    /// Replaces every element by its sum over all ranks.
    func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws
    /// Copies `root`'s buffer into every rank's buffer.
    func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int) throws
    /// Starts replacing every element by its sum over all ranks. `buffer` must stay valid and untouched
    /// until the returned request's `wait()` returned (Note [Overlapped reduction] in FusionBuffer.swift).
    func startAllreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws -> any PendingAllreduce
    /// Replaces every Float16 element by its sum over all ranks, summed in Float16
    /// (Note [Float16 wire format] in FusionBuffer.swift).
    func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float16>) throws
    /// The non-blocking form of the Float16 sum.
    func startAllreduceSum(_ buffer: UnsafeMutableBufferPointer<Float16>) throws -> any PendingAllreduce
}

/// A started non-blocking reduction. `wait()` must be called before its buffer is read or reused.
public protocol PendingAllreduce: AnyObject {
    /// Lets the operation progress; true once it completed (then `wait()` returns at once).
    func test() throws -> Bool
    /// Blocks until the operation completed.
    func wait() throws
}

/// A reduction that completed when it was started.
public final class CompletedAllreduce: PendingAllreduce {
    public init() {}
    public func test() -> Bool { true }
    public func wait() {}
}

/// The backend does not implement a Float16 sum.
public struct UnsupportedWireFormat: Error, CustomStringConvertible {
    public var description: String
}

extension AllreduceBackend {
    public func startAllreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws -> any PendingAllreduce {
        try allreduceSum(buffer)
        return CompletedAllreduce()
    }

    public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float16>) throws {
        guard size == 1 else {
            throw UnsupportedWireFormat(description: "\(type(of: self)) has no Float16 sum: train with the Float32 wire format (drop --fp16-allreduce)")
        }
    }

    public func startAllreduceSum(_ buffer: UnsafeMutableBufferPointer<Float16>) throws -> any PendingAllreduce {
        try allreduceSum(buffer)
        return CompletedAllreduce()
    }
}

/// A single process: rank 0 of 1; sums and broadcasts leave the buffer as it is.
public struct LocalAllreduceBackend: AllreduceBackend, Sendable {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) {}
    public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float16>) {}
    public func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int) {
        precondition(root == 0, "broadcast root \(root) outside a world of size 1")
    }
}

/// The ranks of `MPI_COMM_WORLD`, through an `MPIRuntime`. Each call is a direct MPI call when the
/// training loop runs on the MPI thread, else a blocking hop to it (Note [Training on the MPI thread]).
/// Non-blocking reductions are `MPI_Iallreduce`s; their requests are tested and waited for through the
/// same runtime, so they too touch MPI on the MPI thread only.
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

    public func startAllreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws -> any PendingAllreduce {
        let runtime = self.runtime
        return try runtime.withCommunicator { c throws(MPIError) in
            MPIPendingAllreduce(runtime, try c.startAllreduceHandle(buffer))
        }
    }

    public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float16>) throws {
        try runtime.withCommunicator { c throws(MPIError) in try c.allreduceHalfSum(buffer) }
    }

    public func startAllreduceSum(_ buffer: UnsafeMutableBufferPointer<Float16>) throws -> any PendingAllreduce {
        let runtime = self.runtime
        return try runtime.withCommunicator { c throws(MPIError) in
            MPIPendingAllreduce(runtime, try c.startAllreduceHandle(buffer))
        }
    }
}

/// A started `MPI_Iallreduce` behind the `PendingAllreduce` protocol (the class form of `MPIRequest`,
/// which a protocol cannot hand out: it is `~Copyable`). Each test and wait runs on the MPI thread
/// (directly when the caller is already there). Dropping one unfinished waits for it, so that MPI never
/// writes into a buffer the caller already reuses.
final class MPIPendingAllreduce: PendingAllreduce {
    private let runtime: MPIRuntime
    private var handle: MPI_Request?
    private var completed = false

    init(_ runtime: MPIRuntime, _ handle: MPI_Request) {
        self.runtime = runtime
        self.handle = handle
    }

    func test() throws -> Bool {
        if completed { return true }
        completed = try runtime.withCommunicator { _ throws(MPIError) -> Bool in try MPICall.test(&handle) }
        return completed
    }

    func wait() throws {
        if completed { return }
        try runtime.withCommunicator { _ throws(MPIError) in try MPICall.wait(&handle) }
        completed = true
    }

    deinit {
        if !completed { try? wait() }
    }
}
