import CCurl
import CGRPC
import CMPI
import COpenBLAS
import CPostgres
import CProtobufC

/// The versions of the six C libraries this build links, read from the libraries themselves
/// (`--version` output and bug reports).
public enum LibraryVersions {
    public static func all() -> [(name: String, version: String)] {
        [
            ("gRPC core", String(cString: grpc_version_string())),
            ("protobuf-c", String(cString: protobuf_c_version())),
            ("OpenMPI", mpiVersion()),
            ("OpenBLAS", openblasConfig()),
            ("libpq", pqVersion()),
            ("libcurl", String(cString: curl_version())),
        ]
    }

    static func mpiVersion() -> String {
        // MPI_Get_library_version may be called before MPI_Init.
        var buffer = [CChar](repeating: 0, count: Int(MPI_MAX_LIBRARY_VERSION_STRING))
        var length: Int32 = 0
        guard MPI_Get_library_version(&buffer, &length) == MPI_SUCCESS else { return "unknown" }
        let text = String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return text.split(separator: ",").first.map(String.init) ?? text
    }

    static func openblasConfig() -> String {
        guard let config = openblas_get_config() else { return "unknown" }
        return String(cString: config).trimmingCharacters(in: .whitespaces)
    }

    static func pqVersion() -> String {
        let v = PQlibVersion()
        return "\(v / 10000).\(v % 10000)"
    }
}

extension String {
    fileprivate func trimmingCharacters(in set: Set<Character>) -> String {
        String(drop(while: { set.contains($0) }).reversed().drop(while: { set.contains($0) }).reversed())
    }
}

extension Set where Element == Character {
    fileprivate static let whitespaces: Set<Character> = [" ", "\t", "\n"]
}
