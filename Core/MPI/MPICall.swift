import CMPI
import CMPIShims

/// Every MPI C function Nebula calls, one wrapper each: the single place that checks return codes and
/// turns a failure into an `MPIError` carrying `MPI_Error_string`'s text, read right after the failing
/// call. Nothing outside this file calls an `MPI_*` function.
///
/// Errors come back as codes (instead of aborting the job) because `MPIRuntime` sets `MPI_ERRORS_RETURN`
/// on `MPI_COMM_WORLD` right after initialisation; errors during `MPI_Init_thread` itself stay fatal
/// (the standard's default handler), which is also what MPI does with them anyway.
///
/// All of these run on the MPI thread only (Note [One MPI thread] in MPIRuntime.swift).
enum MPICall {
    // MARK: Error classes (integer constants import fine)
    static let errorBuffer = MPI_ERR_BUFFER
    static let errorCount = MPI_ERR_COUNT
    static let errorType = MPI_ERR_TYPE
    static let errorRoot = MPI_ERR_ROOT
    static let errorComm = MPI_ERR_COMM
    static let errorOp = MPI_ERR_OP
    static let errorArg = MPI_ERR_ARG
    static let errorRequest = MPI_ERR_REQUEST
    static let errorOther = MPI_ERR_OTHER
    static let errorIntern = MPI_ERR_INTERN

    /// The largest element count one call takes (MPI counts are C `int`).
    static let maxCount = Int(Int32.max)

    @inline(__always)
    private static func check(_ rc: Int32, _ call: StaticString) throws(MPIError) {
        guard rc != MPI_SUCCESS else { return }
        throw error(rc, call)
    }

    /// The error for return code `rc`: its class and the library's text for it.
    static func error(_ rc: Int32, _ call: StaticString) -> MPIError {
        var buffer = [CChar](repeating: 0, count: Int(MPI_MAX_ERROR_STRING) + 1)
        var length: Int32 = 0
        let text: String
        if MPI_Error_string(rc, &buffer, &length) == MPI_SUCCESS {
            text = buffer.withUnsafeBufferPointer { p in
                String(decoding: UnsafeRawBufferPointer(start: p.baseAddress, count: Int(max(length, 0))), as: UTF8.self)
            }
        } else {
            text = "unknown MPI error code \(rc)"
        }
        var errorClass: Int32 = rc
        if MPI_Error_class(rc, &errorClass) != MPI_SUCCESS { errorClass = rc }
        return MPIError(code: .init(rawValue: Int(errorClass)), message: text, call: "\(call)")
    }

    // MARK: Environment

    static func isInitialized() throws(MPIError) -> Bool {
        var flag: Int32 = 0
        try check(MPI_Initialized(&flag), "MPI_Initialized")
        return flag != 0
    }

    static func isFinalized() throws(MPIError) -> Bool {
        var flag: Int32 = 0
        try check(MPI_Finalized(&flag), "MPI_Finalized")
        return flag != 0
    }

    /// `MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided)`; returns whether at least
    /// FUNNELED was provided, and the level as text.
    static func initThreadFunneled() throws(MPIError) -> (funneled: Bool, provided: String) {
        var provided: Int32 = -1
        try check(MPI_Init_thread(nil, nil, Int32(MPI_THREAD_FUNNELED), &provided), "MPI_Init_thread")
        let names = ["MPI_THREAD_SINGLE", "MPI_THREAD_FUNNELED", "MPI_THREAD_SERIALIZED", "MPI_THREAD_MULTIPLE"]
        let name = names.indices.contains(Int(provided)) ? names[Int(provided)] : "level \(provided)"
        return (provided >= Int32(MPI_THREAD_FUNNELED), name)
    }

    static func finalize() throws(MPIError) { try check(MPI_Finalize(), "MPI_Finalize") }

    static func setErrorsReturn(_ comm: MPI_Comm) throws(MPIError) {
        try check(MPI_Comm_set_errhandler(comm, nebula_mpi_errors_return()), "MPI_Comm_set_errhandler")
    }

    static var world: MPI_Comm { nebula_mpi_comm_world() }

    static func rank(_ comm: MPI_Comm) throws(MPIError) -> Int {
        var r: Int32 = 0
        try check(MPI_Comm_rank(comm, &r), "MPI_Comm_rank")
        return Int(r)
    }

    static func size(_ comm: MPI_Comm) throws(MPIError) -> Int {
        var s: Int32 = 0
        try check(MPI_Comm_size(comm, &s), "MPI_Comm_size")
        return Int(s)
    }

    static func wtime() -> Double { MPI_Wtime() }

    // MARK: Collectives

    static func barrier(_ comm: MPI_Comm) throws(MPIError) { try check(MPI_Barrier(comm), "MPI_Barrier") }

    /// In-place allreduce of `count` elements at `buffer` (count ≤ `maxCount`).
    static func allreduce(_ buffer: UnsafeMutableRawPointer?, count: Int, _ type: MPI_Datatype, _ op: MPI_Op,
                          _ comm: MPI_Comm) throws(MPIError) {
        try check(MPI_Allreduce(nebula_mpi_in_place(), buffer, Int32(count), type, op, comm), "MPI_Allreduce")
    }

    static func broadcast(_ buffer: UnsafeMutableRawPointer?, count: Int, _ type: MPI_Datatype, root: Int,
                          _ comm: MPI_Comm) throws(MPIError) {
        try check(MPI_Bcast(buffer, Int32(count), type, Int32(truncatingIfNeeded: root), comm), "MPI_Bcast")
    }

    /// Starts an in-place non-blocking allreduce; the buffer must stay valid until the request completes.
    static func iallreduce(_ buffer: UnsafeMutableRawPointer?, count: Int, _ type: MPI_Datatype, _ op: MPI_Op,
                           _ comm: MPI_Comm) throws(MPIError) -> MPI_Request {
        var request: MPI_Request?
        try check(MPI_Iallreduce(nebula_mpi_in_place(), buffer, Int32(count), type, op, comm, &request),
                  "MPI_Iallreduce")
        guard let request else {
            throw MPIError(code: .intern, message: "MPI_Iallreduce returned no request", call: "MPI_Iallreduce")
        }
        return request
    }

    /// `MPI_Test`: true when the request completed (it is then freed and `request` is null).
    static func test(_ request: inout MPI_Request?) throws(MPIError) -> Bool {
        var flag: Int32 = 0
        try check(MPI_Test(&request, &flag, nebula_mpi_status_ignore()), "MPI_Test")
        return flag != 0
    }

    static func wait(_ request: inout MPI_Request?) throws(MPIError) {
        try check(MPI_Wait(&request, nebula_mpi_status_ignore()), "MPI_Wait")
    }

    // MARK: Float16 sum (Note [Float16 wire format] in FusionBuffer.swift)

    /// The committed 2-byte datatype and the commutative Float16 sum, created on first use. Touched only
    /// on the MPI thread (Note [One MPI thread]), and MPI lives once per process, so one static is
    /// enough; MPI_Finalize frees both.
    nonisolated(unsafe) private static var half: (type: MPI_Datatype, op: MPI_Op)?

    static func halfSum() throws(MPIError) -> (MPI_Datatype, MPI_Op) {
        if let half { return half }
        var type: MPI_Datatype?
        try check(MPI_Type_contiguous(2, nebula_mpi_byte(), &type), "MPI_Type_contiguous")
        try check(MPI_Type_commit(&type), "MPI_Type_commit")
        var op: MPI_Op?
        try check(MPI_Op_create(halfSumFunction, 1, &op), "MPI_Op_create")
        guard let type, let op else {
            throw MPIError(code: .intern, message: "MPI returned no handle for the Float16 sum", call: "MPI_Op_create")
        }
        half = (type, op)
        return (type, op)
    }

    /// inout[i] = Float16(Float(in[i]) + Float(inout[i])): each addition in Float32, rounded to Float16
    /// once (what a Float16 add does, without depending on hardware half arithmetic).
    private static let halfSumFunction: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?,
                                                        UnsafeMutablePointer<Int32>?, UnsafeMutablePointer<MPI_Datatype?>?) -> Void = {
        input, inout_, length, _ in
        guard let input, let inout_, let length else { return }
        HalfConversion.addInPlace(input.assumingMemoryBound(to: Float16.self), inout_.assumingMemoryBound(to: Float16.self),
                                  count: Int(length.pointee))
    }

    // MARK: Handles (macros over global structs in OpenMPI: from the shim)

    static func datatype(_ t: MPIDatatype) -> MPI_Datatype {
        switch t {
        case .float32: nebula_mpi_float()
        case .float64: nebula_mpi_double()
        case .int64: nebula_mpi_int64()
        case .byte: nebula_mpi_byte()
        }
    }

    static func op(_ o: MPIReduceOp) -> MPI_Op {
        switch o {
        case .sum: nebula_mpi_sum()
        case .max: nebula_mpi_max()
        }
    }
}
