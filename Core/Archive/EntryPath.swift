/// Validation of entry paths before anything is written (pure; no file system access).
public enum EntryPath {
    /// The safe relative components of `raw`, or an error naming the entry.
    ///
    /// Rejected: absolute paths (`/x`, `\x`, `C:...`, `//server`), any `..` component, NUL and other
    /// control characters, paths longer than `maxLength` UTF-8 bytes or deeper than `maxDepth`, and
    /// components longer than 255 bytes. `\` counts as a separator (archives made on Windows), so
    /// `..\x` is traversal too. Empty and `.` components are dropped; an empty result is an error
    /// (except for a directory entry like `./`, whose components are `[]`).
    public static func components(of raw: String, maxLength: Int = 1024, maxDepth: Int = 64) throws -> [String] {
        guard !raw.isEmpty else { throw ArchiveError(code: .invalidPath, entry: raw, message: "empty entry path") }
        guard raw.utf8.count <= maxLength else {
            throw ArchiveError(code: .invalidPath, entry: raw, message: "path longer than \(maxLength) bytes")
        }
        if raw.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
            throw ArchiveError(code: .invalidPath, entry: raw, message: "path contains a control character")
        }
        let normalized = raw.replacingOccurrences(of: "\\", with: "/")
        if normalized.hasPrefix("/") {
            throw ArchiveError(code: .absolutePath, entry: raw, message: "absolute path; entries must be relative")
        }
        let scalars = Array(normalized.unicodeScalars.prefix(2))
        if scalars.count == 2, scalars[1] == ":", (scalars[0].properties.isAlphabetic && scalars[0].isASCII) {
            throw ArchiveError(code: .absolutePath, entry: raw, message: "path starts with a drive letter")
        }
        var result: [String] = []
        for part in normalized.split(separator: "/", omittingEmptySubsequences: true) {
            if part == "." { continue }
            if part == ".." {
                throw ArchiveError(code: .pathTraversal, entry: raw, message: "path contains '..' and could escape the destination")
            }
            guard part.utf8.count <= 255 else {
                throw ArchiveError(code: .invalidPath, entry: raw, message: "a path component is longer than 255 bytes")
            }
            result.append(String(part))
        }
        guard result.count <= maxDepth else {
            throw ArchiveError(code: .invalidPath, entry: raw, message: "path deeper than \(maxDepth) directories")
        }
        return result
    }
}
