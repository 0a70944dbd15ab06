import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A Kaggle user name and API key. The key is never printed.
///
/// Resolved the way the official `kaggle` client does: the environment (`KAGGLE_USERNAME` and
/// `KAGGLE_KEY`) first, then `kaggle.json` in `$KAGGLE_CONFIG_DIR`, else in `~/.kaggle/`. An explicit
/// file path overrides both.
public struct KaggleCredentials: Sendable, Equatable, CustomStringConvertible {
    public enum Source: Sendable, Equatable {
        case environment
        case file(String)
        case explicit
    }

    public var username: String
    public var key: String
    public var source: Source
    /// Set when the credentials file can be read by other users (the official client warns too).
    public var permissionWarning: String?

    public init(username: String, key: String) {
        self.username = username
        self.key = key
        source = .explicit
    }

    public var description: String {
        switch source {
        case .environment: return "Kaggle user \(username) (from KAGGLE_USERNAME/KAGGLE_KEY)"
        case .file(let path): return "Kaggle user \(username) (from \(path))"
        case .explicit: return "Kaggle user \(username)"
        }
    }

    /// Where the official client looks for kaggle.json: `$KAGGLE_CONFIG_DIR/kaggle.json`, else
    /// `~/.kaggle/kaggle.json`.
    public static func defaultFilePath(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let dir = environment["KAGGLE_CONFIG_DIR"], !dir.isEmpty {
            return URL(fileURLWithPath: dir).appendingPathComponent("kaggle.json").path
        }
        let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
        return URL(fileURLWithPath: home).appendingPathComponent(".kaggle/kaggle.json").path
    }

    /// Resolves the credentials (see the type's documentation); throws `KaggleError` with code
    /// `.missingCredentials` or `.invalidCredentialsFile`.
    public static func resolve(file explicitPath: String? = nil,
                               environment: [String: String] = ProcessInfo.processInfo.environment) throws -> KaggleCredentials {
        if let explicitPath { return try load(file: explicitPath) }
        if let user = environment["KAGGLE_USERNAME"], let key = environment["KAGGLE_KEY"], !user.isEmpty, !key.isEmpty {
            var credentials = KaggleCredentials(username: user, key: key)
            credentials.source = .environment
            return credentials
        }
        let path = defaultFilePath(environment: environment)
        guard FileManager.default.fileExists(atPath: path) else {
            throw KaggleError(code: .missingCredentials, message: missingMessage(path: path))
        }
        return try load(file: path)
    }

    /// Reads a kaggle.json file (`{"username": "...", "key": "..."}`).
    public static func load(file path: String) throws -> KaggleCredentials {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            if !FileManager.default.fileExists(atPath: path) {
                throw KaggleError(code: .missingCredentials, message: missingMessage(path: path))
            }
            throw KaggleError(code: .invalidCredentialsFile, message: "cannot read \(path): \(error.localizedDescription)")
        }
        struct File: Decodable { var username: String?; var key: String? }
        guard let file = try? JSONDecoder().decode(File.self, from: data) else {
            throw KaggleError(code: .invalidCredentialsFile,
                              message: "\(path) is not valid JSON of the form {\"username\": \"...\", \"key\": \"...\"}")
        }
        guard let user = file.username?.trimmingCharacters(in: .whitespacesAndNewlines), !user.isEmpty,
              let key = file.key?.trimmingCharacters(in: .whitespacesAndNewlines), !key.isEmpty else {
            throw KaggleError(code: .invalidCredentialsFile, message: "\(path) lacks a non-empty \"username\" or \"key\"")
        }
        var credentials = KaggleCredentials(username: user, key: key)
        credentials.source = .file(path)
        var info = stat()
        if stat(path, &info) == 0, info.st_mode & 0o077 != 0 {
            credentials.permissionWarning =
                "\(path) is readable by other users on this system; run: chmod 600 \(path)"
        }
        return credentials
    }

    static func missingMessage(path: String) -> String {
        """
        Kaggle credentials not found: \(path) does not exist and KAGGLE_USERNAME/KAGGLE_KEY are not set. \
        Create an API token on https://www.kaggle.com/settings (API, "Create New Token"), save the \
        downloaded kaggle.json as \(path) and make it private with `chmod 600 \(path)` (Kaggle's client \
        expects mode 600); or set KAGGLE_USERNAME and KAGGLE_KEY.
        """
    }
}

/// `owner/slug` of a Kaggle dataset, as in https://www.kaggle.com/datasets/owner/slug.
public struct KaggleDatasetRef: Sendable, Hashable, CustomStringConvertible {
    public let owner: String
    public let slug: String

    public init(owner: String, slug: String) throws {
        for (what, part) in [("owner", owner), ("dataset slug", slug)] {
            guard !part.isEmpty, part.count <= 100, part != ".", part != "..",
                  part.unicodeScalars.allSatisfy({ $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "-_.".unicodeScalars.contains($0)) })
            else {
                throw KaggleError(code: .invalidReference,
                                  message: "invalid Kaggle \(what) '\(part)': expected letters, digits, '-', '_' or '.'")
            }
        }
        self.owner = owner
        self.slug = slug
    }

    /// Parses "owner/slug" (also accepts a dataset page URL).
    public init(_ reference: String) throws {
        var text = reference.trimmingCharacters(in: .whitespaces)
        if let url = URL(string: text), url.host != nil {
            let parts = url.pathComponents.filter { $0 != "/" }
            if parts.count >= 3, parts[0] == "datasets" { text = parts[1] + "/" + parts[2] }
        }
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2 else {
            throw KaggleError(code: .invalidReference, message: "invalid Kaggle dataset '\(reference)': expected owner/dataset-slug")
        }
        try self.init(owner: String(parts[0]), slug: String(parts[1]))
    }

    public var description: String { "\(owner)/\(slug)" }
}

/// Failures of `KaggleClient` and credential resolution.
public struct KaggleError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// No kaggle.json and no KAGGLE_USERNAME/KAGGLE_KEY.
        public static let missingCredentials = Code("missingCredentials")
        /// kaggle.json exists but is unreadable or malformed.
        public static let invalidCredentialsFile = Code("invalidCredentialsFile")
        /// Not an owner/slug reference.
        public static let invalidReference = Code("invalidReference")
        /// HTTP 401: Kaggle rejected the user name or key.
        public static let unauthorized = Code("unauthorized")
        /// HTTP 403: valid credentials without access (rules not accepted, private dataset).
        public static let forbidden = Code("forbidden")
        /// HTTP 404: no such dataset (or version), or private and not shared with this account.
        public static let notFound = Code("notFound")
        /// Anything else: transport failures and other statuses (`underlying` holds the HTTPError).
        public static let transfer = Code("transfer")
    }

    public var code: Code
    public var message: String
    public var status: Int?
    public var underlying: HTTPError?

    public init(code: Code, message: String, status: Int? = nil, underlying: HTTPError? = nil) {
        self.code = code
        self.message = message
        self.status = status
        self.underlying = underlying
    }

    public var description: String { "KaggleError.\(code): \(message)" }
}
