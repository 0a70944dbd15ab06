import Foundation
import Logging
import Synchronization

// Note [One MPI thread]: every MPI call of the process runs on one dedicated thread, the thread that
// called `MPI_Init_thread(FUNNELED)` (STYLE rule 10, Horovod's background thread). MPI is then used the
// way every implementation supports best, and blocking collectives never occupy a thread of Swift's
// cooperative pool (two threads on these machines). Other threads reach it in two ways:
//   * `await runtime.allreduce(...)` / `await runtime.run { comm in ... }`: a job on the MPI thread that
//     resumes a continuation;
//   * the synchronous variants (`try runtime.allreduce(buffer)`, `try runtime.withCommunicator { ... }`)
//     for a plain thread (a training loop on a thread of its own): the caller blocks until its job ran.
// On the MPI thread itself the synchronous variants call MPI directly, without a hop.
//
// Note [Training on the MPI thread]: a hop costs a wake-up of the MPI thread and one of the caller
// (5–10 µs here, more under load: bench/allreduce.sh's fusion-hop), several times what a whole 4 KB
// allreduce takes over shared memory (about 1 µs). A training step that allreduces several buckets therefore runs best *on* the MPI
// thread: `runtime.withCommunicator { _ in trainer.fit(...) }` (or `await runtime.run { ... }`) runs the
// whole loop there, and every backend call inside it is a direct MPI call. FUNNELED allows exactly
// this: MPI is only ever called from the thread that initialised it.

// Note [Singleton without a daemon]: a process that was not started by mpirun initialises MPI as a
// singleton, and OpenMPI 4 then forks an `orted` daemon by default (for MPI_Comm_spawn, which Nebula
// never calls). That daemon inherits every descriptor the process has open at that moment: a child
// process that waits for EOF on a pipe from us (a test server, a converter) then never sees it, and the
// parent hangs in waitUntilExit (seen with the HTTP tests in the same test process). `init` therefore
// sets `OMPI_MCA_ess_singleton_isolated=1` (unless the environment already sets it): the singleton runs
// in-process, without a daemon, and starts faster. Under mpirun or srun another `ess` component is
// selected and the variable has no effect.

/// The process's MPI environment: initialises MPI on its own thread, owns that thread, and finalises
/// MPI in `close()`. One per process (MPI can be initialised once): create it at start-up, pass it on,
/// close it before exit.
///
/// Works under `mpirun` and as a singleton (a plain process: world size 1).
///
/// Thread safety (`@unchecked Sendable`): `rank` and `size` are immutable; `closed` sits in a `Mutex`;
/// every MPI call is a job on `thread` (Note [One MPI thread]), so MPI itself is only touched from
/// one thread; `communicator` is a value of immutable handles, used only on that thread.
public final class MPIRuntime: @unchecked Sendable {
    /// This process's rank in `MPI_COMM_WORLD`.
    public let rank: Int
    /// The number of ranks in `MPI_COMM_WORLD`.
    public let size: Int
    /// The thread level MPI provided (at least `MPI_THREAD_FUNNELED`).
    public let threadLevel: String
    private let thread: MPIThread
    private let communicator: MPICommunicator
    private let closed = Mutex(false)
    private let logger: Logger

    /// Set once the process has initialised MPI (MPI cannot be initialised twice).
    private static let initialised = Mutex(false)

    /// Starts the MPI thread and initialises MPI there with `MPI_THREAD_FUNNELED`, with
    /// `MPI_ERRORS_RETURN` on the world communicator. Throws `.alreadyInitialized` on a second call in
    /// the same process, `.threadLevel` when MPI cannot provide FUNNELED (MPI is finalised again then).
    public init(logger: Logger) throws(MPIError) {
        let first = Self.initialised.withLock { started in
            defer { started = true }
            return !started
        }
        guard first else {
            throw MPIError(code: .alreadyInitialized,
                           message: "MPI can be initialised once per process; pass the existing MPIRuntime on",
                           call: "MPIRuntime.init")
        }
        // Note [Singleton without a daemon].
        setenv("OMPI_MCA_ess_singleton_isolated", "1", 0)
        let thread = MPIThread(name: "nebula.mpi")
        let outcome = Self.onThread(thread) { () throws(MPIError) -> (Int, Int, String) in
            let initialisedBefore = try MPICall.isInitialized()
            let finalisedBefore = try MPICall.isFinalized()
            if initialisedBefore || finalisedBefore {
                throw MPIError(code: .alreadyInitialized, message: "MPI was initialised outside MPIRuntime",
                               call: "MPIRuntime.init")
            }
            let (funneled, provided) = try MPICall.initThreadFunneled()
            do throws(MPIError) {
                guard funneled else {
                    throw MPIError(code: .threadLevel, message: "MPI provided \(provided), Nebula needs MPI_THREAD_FUNNELED",
                                   call: "MPI_Init_thread")
                }
                let world = MPICall.world
                try MPICall.setErrorsReturn(world)
                return (try MPICall.rank(world), try MPICall.size(world), provided)
            } catch {
                // Free what was acquired: MPI is initialised, so finalise it before reporting.
                _ = try? MPICall.finalize()
                throw error
            }
        }
        switch outcome {
        case .success(let (rank, size, level)):
            self.rank = rank
            self.size = size
            self.threadLevel = level
            self.thread = thread
            self.communicator = MPICommunicator(comm: MPICall.world, rank: rank, size: size, thread: thread)
            var logger = logger
            logger[metadataKey: "mpi.rank"] = "\(rank)"
            self.logger = logger
            logger.debug("MPI initialised", metadata: ["mpi.size": "\(size)", "mpi.thread_level": "\(level)"])
        case .failure(let error):
            thread.stopAndJoin()
            throw error
        }
    }

    deinit {
        assert(isClosed, "MPIRuntime deinitialised without close(): MPI_Finalize never ran")
    }

    /// Whether `close()` ran.
    public var isClosed: Bool { closed.withLock { $0 } }

    /// Finalises MPI on the MPI thread and ends that thread. Collective: every rank must call it. Call it
    /// once, from any thread but the MPI thread, after the last use; later calls return at once.
    public func close() throws(MPIError) {
        precondition(!thread.isCurrent, "MPIRuntime.close() called on the MPI thread (inside run/withCommunicator)")
        let first = closed.withLock { c in
            defer { c = true }
            return !c
        }
        guard first else { return }
        defer { thread.stopAndJoin() }
        try Self.onThread(thread) { () throws(MPIError) in try MPICall.finalize() }.get()
        logger.debug("MPI finalised")
    }

    /// Runs `job` on `thread` and waits for it (directly when already there).
    private static func onThread<T, E: Error>(_ thread: MPIThread, _ job: () throws(E) -> T) -> Result<T, E> {
        if thread.isCurrent { return Result(catching: job) }
        return withoutActuallyEscaping(job) { escapable in
            let box = UncheckedBox(escapable)
            let done = DispatchSemaphore(value: 0)
            thread.submit {
                box.result = Result(catching: box.job!)
                // Drop the closure before signalling: withoutActuallyEscaping checks that it did not escape.
                box.job = nil
                done.signal()
            }
            done.wait()
            return box.result!
        }
    }

    // MARK: Synchronous API (blocks the calling thread; never call it from the cooperative pool)

    /// Runs `body` on the MPI thread with the world communicator and returns its result; the caller
    /// blocks until then. On the MPI thread itself `body` runs directly. Note [Training on the MPI thread].
    public func withCommunicator<T, E: Error>(_ body: (MPICommunicator) throws(E) -> T) throws(E) -> T {
        precondition(!isClosed, "MPIRuntime used after close()")
        let comm = communicator
        return try Self.onThread(thread) { () throws(E) -> T in try body(comm) }.get()
    }

    public func barrier() throws(MPIError) {
        try withCommunicator { c throws(MPIError) in try c.barrier() }
    }

    /// Replaces every element of `buffer` by its reduction over all ranks.
    public func allreduce<T: MPIScalar>(_ buffer: UnsafeMutableBufferPointer<T>, op: MPIReduceOp) throws(MPIError) {
        try withCommunicator { c throws(MPIError) in try c.allreduce(buffer, op: op) }
    }

    /// Copies `root`'s `buffer` into every other rank's `buffer` (the same length everywhere).
    public func broadcast<T: MPIScalar>(_ buffer: UnsafeMutableBufferPointer<T>, root: Int) throws(MPIError) {
        try withCommunicator { c throws(MPIError) in try c.broadcast(buffer, root: root) }
    }

    // MARK: Async API (the caller's task suspends; the MPI thread resumes it)

    /// Runs `body` on the MPI thread with the world communicator and resumes with its result.
    public func run<T: Sendable, E: Error>(_ body: @escaping @Sendable (MPICommunicator) throws(E) -> T)
        async throws(E) -> T
    {
        precondition(!isClosed, "MPIRuntime used after close()")
        let thread = self.thread, rank = self.rank, size = self.size
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<T, E>, Never>) in
            thread.submit {
                let comm = MPICommunicator(comm: MPICall.world, rank: rank, size: size, thread: thread)
                continuation.resume(returning: Result { () throws(E) -> T in try body(comm) })
            }
        }
        return try result.get()
    }

    public func barrier() async throws(MPIError) {
        try await run { c throws(MPIError) in try c.barrier() }
    }

    /// `values` reduced over all ranks (every rank passes the same count).
    public func allreduce<T: MPIScalar>(_ values: [T], op: MPIReduceOp) async throws(MPIError) -> [T] {
        try await run { c throws(MPIError) -> [T] in
            var v = values
            try v.withUnsafeMutableBufferPointer { (p) throws(MPIError) in try c.allreduce(p, op: op) }
            return v
        }
    }

    /// `root`'s `values` on every rank; the others pass an array of the same count (its contents are ignored).
    public func broadcast<T: MPIScalar>(_ values: [T], root: Int) async throws(MPIError) -> [T] {
        try await run { c throws(MPIError) -> [T] in
            var v = values
            try v.withUnsafeMutableBufferPointer { (p) throws(MPIError) in try c.broadcast(p, root: root) }
            return v
        }
    }
}

/// Carries a non-Sendable closure and its result across to the MPI thread and back.
///
/// Safe (`@unchecked Sendable`) because of how `MPIRuntime.onThread` uses it: the submitting thread
/// blocks on a semaphore from `submit` until the job signalled, so the closure and `result` are only
/// touched by one thread at a time, with the semaphore ordering the hand-overs.
private final class UncheckedBox<T, E: Error>: @unchecked Sendable {
    var job: (() throws(E) -> T)?
    var result: Result<T, E>?
    init(_ job: @escaping () throws(E) -> T) { self.job = job }
}
