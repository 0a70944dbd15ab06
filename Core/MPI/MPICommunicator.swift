import CMPI

/// Direct MPI calls on a communicator, handed to the closures that `MPIRuntime.run` and
/// `MPIRuntime.withCommunicator` run on the MPI thread. Use it only inside such a closure (it is not
/// `Sendable`, so it cannot reach another task or thread by accident; calls assert the thread).
///
/// Every rank must make the same collective calls in the same order with matching counts: MPI cannot
/// detect a mismatch, which hangs the job or mixes unrelated buffers.
public struct MPICommunicator {
    let comm: MPI_Comm
    public let rank: Int
    public let size: Int
    let thread: MPIThread

    init(comm: MPI_Comm, rank: Int, size: Int, thread: MPIThread) {
        self.comm = comm
        self.rank = rank
        self.size = size
        self.thread = thread
    }

    @inline(__always)
    private func assertThread() {
        assert(thread.isCurrent, "MPICommunicator used off the MPI thread (Note [One MPI thread])")
    }

    public func barrier() throws(MPIError) {
        assertThread()
        try MPICall.barrier(comm)
    }

    /// In place: every element becomes its reduction over all ranks. Buffers longer than an MPI count
    /// (2³¹ − 1 elements) go in several calls.
    public func allreduce<T: MPIScalar>(_ buffer: UnsafeMutableBufferPointer<T>, op: MPIReduceOp) throws(MPIError) {
        assertThread()
        let type = MPICall.datatype(T.mpiDatatype), mpiOp = MPICall.op(op)
        var offset = 0
        repeat {
            let n = min(buffer.count - offset, MPICall.maxCount)
            try MPICall.allreduce(buffer.baseAddress.map { UnsafeMutableRawPointer($0 + offset) }, count: n, type, mpiOp, comm)
            offset += n
        } while offset < buffer.count
    }

    /// `root`'s buffer into every rank's buffer (same length on every rank).
    public func broadcast<T: MPIScalar>(_ buffer: UnsafeMutableBufferPointer<T>, root: Int) throws(MPIError) {
        assertThread()
        let type = MPICall.datatype(T.mpiDatatype)
        var offset = 0
        repeat {
            let n = min(buffer.count - offset, MPICall.maxCount)
            try MPICall.broadcast(buffer.baseAddress.map { UnsafeMutableRawPointer($0 + offset) }, count: n, type,
                                  root: root, comm)
            offset += n
        } while offset < buffer.count
    }

    /// `root`'s bytes into every rank's `bytes`.
    public func broadcast(bytes: UnsafeMutableRawBufferPointer, root: Int) throws(MPIError) {
        try broadcast(bytes.bindMemory(to: UInt8.self), root: root)
    }

    /// Starts a non-blocking in-place allreduce (`MPI_Iallreduce`). `buffer` must stay valid and
    /// untouched until the returned request's `wait()` (or a `test()` that returned true).
    /// Note [Non-blocking progress]: OpenMPI progresses the operation only inside MPI calls on this
    /// thread, so poll with `test()` between pieces of other work, or `wait()`.
    public func startAllreduce<T: MPIScalar>(_ buffer: UnsafeMutableBufferPointer<T>, op: MPIReduceOp)
        throws(MPIError) -> MPIRequest
    {
        assertThread()
        guard buffer.count <= MPICall.maxCount else {
            throw MPIError(code: .invalidArgument, message: "\(buffer.count) elements exceed an MPI count",
                           call: "MPI_Iallreduce")
        }
        let request = try MPICall.iallreduce(buffer.baseAddress.map(UnsafeMutableRawPointer.init), count: buffer.count,
                                             MPICall.datatype(T.mpiDatatype), MPICall.op(op), comm)
        return MPIRequest(request)
    }

    /// In place: every Float16 element becomes its sum over all ranks, added in Float16 by a
    /// user-defined operator (Note [Float16 wire format] in FusionBuffer.swift). Buffers longer than an
    /// MPI count go in several calls.
    public func allreduceHalfSum(_ buffer: UnsafeMutableBufferPointer<Float16>) throws(MPIError) {
        assertThread()
        let (type, op) = try MPICall.halfSum()
        var offset = 0
        repeat {
            let n = min(buffer.count - offset, MPICall.maxCount)
            try MPICall.allreduce(buffer.baseAddress.map { UnsafeMutableRawPointer($0 + offset) }, count: n, type, op, comm)
            offset += n
        } while offset < buffer.count
    }

    /// Starts an in-place Float32 sum and returns the raw request (for `MPIPendingAllreduce`).
    func startAllreduceHandle(_ buffer: UnsafeMutableBufferPointer<Float>) throws(MPIError) -> MPI_Request {
        assertThread()
        try Self.checkCount(buffer.count)
        return try MPICall.iallreduce(buffer.baseAddress.map(UnsafeMutableRawPointer.init), count: buffer.count,
                                      MPICall.datatype(.float32), MPICall.op(.sum), comm)
    }

    /// Starts an in-place Float16 sum and returns the raw request (for `MPIPendingAllreduce`).
    func startAllreduceHandle(_ buffer: UnsafeMutableBufferPointer<Float16>) throws(MPIError) -> MPI_Request {
        assertThread()
        try Self.checkCount(buffer.count)
        let (type, op) = try MPICall.halfSum()
        return try MPICall.iallreduce(buffer.baseAddress.map(UnsafeMutableRawPointer.init), count: buffer.count, type, op, comm)
    }

    private static func checkCount(_ count: Int) throws(MPIError) {
        guard count <= MPICall.maxCount else {
            throw MPIError(code: .invalidArgument, message: "\(count) elements exceed an MPI count", call: "MPI_Iallreduce")
        }
    }

    /// Seconds since an arbitrary time in the past (`MPI_Wtime`).
    public func wallTime() -> Double { MPICall.wtime() }
}

/// An outstanding non-blocking MPI operation. Single owner, must complete: `~Copyable`, completed by the
/// consuming `wait()` (or a `test()` that returned true, followed by `wait()`, which then returns at
/// once). Dropping one unfinished is a programming error: `deinit` asserts, and in release builds
/// waits, so that MPI never writes into a buffer that the caller already reuses.
public struct MPIRequest: ~Copyable {
    private var handle: MPI_Request?
    private var completed = false

    init(_ handle: MPI_Request) { self.handle = handle }

    /// Whether the operation completed (progressing it). Call on the MPI thread.
    public mutating func test() throws(MPIError) -> Bool {
        if completed { return true }
        completed = try MPICall.test(&handle)
        return completed
    }

    /// Blocks until the operation completed. Call on the MPI thread.
    public consuming func wait() throws(MPIError) {
        var h = handle
        let done = completed
        discard self
        if !done { try MPICall.wait(&h) }
    }

    deinit {
        guard !completed else { return }
        assertionFailure("MPIRequest dropped without wait()")
        var h = handle
        _ = try? MPICall.wait(&h)
    }
}
