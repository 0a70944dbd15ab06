/// Why reading the host's state failed: a file that could not be read or did not have the expected
/// format, a command that failed, or a system call that returned an error.
///
/// `file` names what the error is about (`/proc/meminfo`, the path of `nvidia-smi`, the disk path given
/// to `statvfs`), so a log line alone says where to look.
public struct ProbeError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of failure this is. Extensible: new codes can be added without breaking callers.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Base: String, Sendable, Hashable {
            case unreadable, malformed, missingField, commandFailed, timedOut, systemCall
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The file could not be read (missing, no permission, not UTF-8).
        public static let unreadable = Code(.unreadable)
        /// The text did not have the expected format.
        public static let malformed = Code(.malformed)
        /// A required field or line was absent.
        public static let missingField = Code(.missingField)
        /// A command could not be started or exited unsuccessfully.
        public static let commandFailed = Code(.commandFailed)
        /// A command ran past its time limit and was killed.
        public static let timedOut = Code(.timedOut)
        /// A system call (`statvfs`, `gethostname`, `sysconf`) failed.
        public static let systemCall = Code(.systemCall)

        public var description: String { base.rawValue }
    }

    public var code: Code
    /// The file, command or path the error is about.
    public var file: String
    /// What was wrong, in words (with the line number or field where that helps).
    public var detail: String

    public init(_ code: Code, file: String, _ detail: String) {
        self.code = code
        self.file = file
        self.detail = detail
    }

    public var description: String { "\(file): \(code): \(detail)" }
}
