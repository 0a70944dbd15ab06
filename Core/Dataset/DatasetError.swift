/// Errors of CSV ingest and of the columnar dataset format.
public struct DatasetError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What went wrong, extensible.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let raw: String
        public static let io = Code(raw: "io")
        public static let malformedRow = Code(raw: "malformed-row")
        public static let emptyInput = Code(raw: "empty-input")
        public static let notADataset = Code(raw: "not-a-dataset")
        public static let unsupportedVersion = Code(raw: "unsupported-version")
        public static let corrupt = Code(raw: "corrupt")
        public static let invalidArgument = Code(raw: "invalid-argument")
        public static let typeMismatch = Code(raw: "type-mismatch")
        public var description: String { raw }
    }

    public var code: Code
    public var message: String
    /// The file the error is about, when there is one.
    public var path: String?
    /// 1-based physical line and column (UTF-8 characters) for malformed CSV rows.
    public var line: Int?
    public var column: Int?

    public init(_ code: Code, _ message: String, path: String? = nil, line: Int? = nil, column: Int? = nil) {
        self.code = code
        self.message = message
        self.path = path
        self.line = line
        self.column = column
    }

    public var description: String {
        var location = path ?? ""
        if let line { location += ":\(line)" }
        if let column { location += ":\(column)" }
        return location.isEmpty ? message : "\(location): \(message)"
    }
}
