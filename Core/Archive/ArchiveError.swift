/// Every failure of reading or extracting an archive. `entry` names the offending entry when there
/// is one, and `message` says what is wrong with it.
public struct ArchiveError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// The file cannot be opened or read.
        public static let unreadable = Code("unreadable")
        /// Not a ZIP archive, or its structure or data is damaged (CRC mismatch, bad deflate data,
        /// sizes that disagree with the data, overlapping entries).
        public static let corrupt = Code("corrupt")
        /// A feature this reader does not support: encryption, multi-disk archives, compression
        /// methods other than stored and deflate.
        public static let unsupported = Code("unsupported")
        /// An entry path with a `..` component.
        public static let pathTraversal = Code("pathTraversal")
        /// An entry path that is absolute (`/x`, `\x`, `C:x`).
        public static let absolutePath = Code("absolutePath")
        /// An entry path that is empty, too long, too deep or has control characters.
        public static let invalidPath = Code("invalidPath")
        /// A symbolic link entry (never extracted).
        public static let symlink = Code("symlink")
        /// A device, FIFO or socket entry.
        public static let specialFile = Code("specialFile")
        /// Two entries with the same path, or a file where a directory is needed.
        public static let duplicateEntry = Code("duplicateEntry")
        /// More entries than the limit.
        public static let tooManyEntries = Code("tooManyEntries")
        /// One entry larger than the per-entry limit (declared or while inflating).
        public static let entryTooLarge = Code("entryTooLarge")
        /// All entries together larger than the total limit (declared or while inflating).
        public static let totalTooLarge = Code("totalTooLarge")
        /// An entry that expands by more than the ratio limit (declared or while inflating).
        public static let compressionRatio = Code("compressionRatio")
        /// The destination already exists.
        public static let destinationExists = Code("destinationExists")
        /// Creating or writing the extracted files failed.
        public static let io = Code("io")
        /// The extraction was cancelled.
        public static let cancelled = Code("cancelled")
    }

    public var code: Code
    /// The entry's path as stored in the archive.
    public var entry: String?
    public var message: String

    public init(code: Code, entry: String? = nil, message: String) {
        self.code = code
        self.entry = entry
        self.message = message
    }

    public var description: String {
        if let entry { return "ArchiveError.\(code) (entry '\(entry)'): \(message)" }
        return "ArchiveError.\(code): \(message)"
    }
}
