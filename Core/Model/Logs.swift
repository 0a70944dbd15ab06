/// Severity of a log record (the same levels as swift-log).
public enum LogLevel: String, Sendable, Hashable, Codable, CaseIterable, Comparable {
    case trace, debug, info, notice, warning, error, critical

    private var rank: Int { Self.allCases.firstIndex(of: self)! }
    public static func < (a: LogLevel, b: LogLevel) -> Bool { a.rank < b.rank }
}

/// One log line of a node agent or of the coordinator.
public struct LogRecord: Sendable, Hashable, Codable {
    public var timeUnixMs: Int64
    public var level: LogLevel
    /// Empty for the coordinator's own records.
    public var nodeId: String
    /// The logger label, e.g. `nebula.node`.
    public var source: String
    public var message: String
    public var metadata: [String: String]
    /// Strictly increasing per node; replays with a seen seq are dropped.
    public var seq: UInt64

    public init(timeUnixMs: Int64, level: LogLevel, nodeId: String, source: String, message: String,
                metadata: [String: String] = [:], seq: UInt64) {
        self.timeUnixMs = timeUnixMs
        self.level = level
        self.nodeId = nodeId
        self.source = source
        self.message = message
        self.metadata = metadata
        self.seq = seq
    }
}
