/// The element types Nebula exchanges over MPI (each maps to a predefined MPI datatype).
public enum MPIDatatype: Sendable {
    case float32, float64, int64, byte
}

/// A reduction operator for allreduce.
public enum MPIReduceOp: Sendable {
    case sum, max
}

/// A Swift type that travels over MPI as one predefined datatype.
public protocol MPIScalar: BitwiseCopyable, Sendable {
    static var mpiDatatype: MPIDatatype { get }
}

extension Float: MPIScalar { public static var mpiDatatype: MPIDatatype { .float32 } }
extension Double: MPIScalar { public static var mpiDatatype: MPIDatatype { .float64 } }
extension Int64: MPIScalar { public static var mpiDatatype: MPIDatatype { .int64 } }
extension UInt8: MPIScalar { public static var mpiDatatype: MPIDatatype { .byte } }
