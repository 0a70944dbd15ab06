import Foundation
import Logging
import Synchronization

/// One formatted line per record on stderr: `2026-11-25T07:55:58.123Z info nebula.node: message key=value`.
public struct ConsoleLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    private let label: String

    public init(label: String, level: Logger.Level = .info) {
        self.label = label
        self.logLevel = level
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let pairs = merged(metadata, event.metadata).sorted(by: { $0.key < $1.key }).map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        let line = "\(isoTimestamp(nowUnixMs())) \(event.level) \(label): \(event.message)\(pairs.isEmpty ? "" : " " + pairs)\n"
        FileHandle.standardError.write(Data(line.utf8))
    }
}

/// Receives every record logged through a `ForwardingLogHandler` (e.g. to ship them to the coordinator).
public protocol LogSink: Sendable {
    func receive(level: Logger.Level, label: String, message: String, metadata: [String: String], timeUnixMs: Int64)
}

/// Hands records at or above its level to a sink; pair with `MultiplexLogHandler` to also print them.
public struct ForwardingLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    private let label: String
    private let sink: any LogSink

    public init(label: String, level: Logger.Level = .info, sink: any LogSink) {
        self.label = label
        self.logLevel = level
        self.sink = sink
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        sink.receive(level: event.level, label: label, message: "\(event.message)",
                     metadata: merged(metadata, event.metadata).mapValues { "\($0)" }, timeUnixMs: nowUnixMs())
    }
}

/// The handler's metadata overlaid with the record's.
func merged(_ base: Logger.Metadata, _ extra: Logger.Metadata?) -> Logger.Metadata {
    guard let extra else { return base }
    return base.merging(extra) { _, new in new }
}

public func isoTimestamp(_ unixMs: Int64) -> String {
    let seconds = time_t(unixMs / 1000)
    var tm = tm()
    var s = seconds
    gmtime_r(&s, &tm)
    return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                  tm.tm_hour, tm.tm_min, tm.tm_sec, Int(unixMs % 1000))
}

extension Logger.Level {
    /// Parses `trace|debug|info|notice|warning|error|critical`.
    public init?(name: String) {
        guard let l = Logger.Level(rawValue: name.lowercased()) else { return nil }
        self = l
    }
}
