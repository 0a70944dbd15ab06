/// A failed MPI call: the error class MPI reports, the library's own text (`MPI_Error_string`), and the
/// call that failed. Also used for the few failures Nebula detects itself around MPI (a thread level
/// below what was asked, a second initialisation): those have negative codes.
public struct MPIError: Error, CustomStringConvertible, Sendable, Equatable {
    /// An MPI error class (`MPI_Error_class` of the returned code), or one of Nebula's negative codes.
    /// Extensible: compare with the named constants, never switch exhaustively.
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public var rawValue: Int
        public init(rawValue: Int) { self.rawValue = rawValue }

        // Error classes from the MPI standard (values as mpi.h defines them).
        public static let buffer = Code(rawValue: Int(MPICall.errorBuffer))
        public static let count = Code(rawValue: Int(MPICall.errorCount))
        public static let type = Code(rawValue: Int(MPICall.errorType))
        public static let root = Code(rawValue: Int(MPICall.errorRoot))
        public static let comm = Code(rawValue: Int(MPICall.errorComm))
        public static let op = Code(rawValue: Int(MPICall.errorOp))
        public static let arg = Code(rawValue: Int(MPICall.errorArg))
        public static let request = Code(rawValue: Int(MPICall.errorRequest))
        public static let other = Code(rawValue: Int(MPICall.errorOther))
        public static let intern = Code(rawValue: Int(MPICall.errorIntern))

        // Nebula's own (negative: never an MPI class).
        /// `MPI_Init_thread` gave less than `MPI_THREAD_FUNNELED`.
        public static let threadLevel = Code(rawValue: -1)
        /// MPI was already initialised (or finalised) in this process: it can be initialised once only.
        public static let alreadyInitialized = Code(rawValue: -2)
        /// A size or count that does not fit what the call allows.
        public static let invalidArgument = Code(rawValue: -3)

        public var description: String {
            switch self {
            case .root: "MPI_ERR_ROOT"
            case .count: "MPI_ERR_COUNT"
            case .comm: "MPI_ERR_COMM"
            case .arg: "MPI_ERR_ARG"
            case .threadLevel: "thread level"
            case .alreadyInitialized: "already initialized"
            case .invalidArgument: "invalid argument"
            default: rawValue >= 0 ? "MPI error class \(rawValue)" : "Nebula MPI code \(rawValue)"
            }
        }
    }

    public var code: Code
    /// The library's text for the code (`MPI_Error_string`), or Nebula's own explanation.
    public var message: String
    /// The C function that failed, e.g. `MPI_Bcast`.
    public var call: String

    public init(code: Code, message: String, call: String) {
        self.code = code
        self.message = message
        self.call = call
    }

    public var description: String { "\(call) failed (\(code)): \(message)" }
}
