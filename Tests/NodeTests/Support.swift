import Foundation
import Logging
import Synchronization

/// A directory under the system temporary directory, removed by `remove()`.
struct TemporaryDirectory {
    let path: String

    init() throws {
        path = FileManager.default.temporaryDirectory
            .appendingPathComponent("nebula-node-tests-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    /// Writes `text` at `relative` (creating folders), replacing what was there; returns the full path.
    @discardableResult
    func write(_ relative: String, _ text: String) throws -> String {
        let full = "\(path)/\(relative)"
        try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        try text.write(toFile: full, atomically: true, encoding: .utf8)
        return full
    }

    /// Writes an executable `/bin/sh` script whose body is `body`; returns its path.
    func script(_ name: String, _ body: String) throws -> String {
        let full = try write(name, "#!/bin/sh\n\(body)\n")
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: full)
        return full
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// Log records captured by `CapturingLogHandler`, for checking that warnings were logged.
final class LogRecords: Sendable {
    struct Record: Sendable {
        var level: Logger.Level
        var message: String
        var metadata: Logger.Metadata
    }

    private let records = Mutex<[Record]>([])

    var all: [Record] { records.withLock { $0 } }
    var warnings: [Record] { all.filter { $0.level == .warning } }

    fileprivate func append(_ record: Record) { records.withLock { $0.append(record) } }

    /// A logger whose records land here.
    func logger() -> Logger {
        Logger(label: "nebula.node.tests") { _ in CapturingLogHandler(records: self) }
    }
}

struct CapturingLogHandler: LogHandler {
    let records: LogRecords
    var logLevel: Logger.Level = .trace
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        records.append(.init(level: event.level, message: "\(event.message)",
                             metadata: metadata.merging(event.metadata ?? [:]) { $1 }))
    }
}

/// A monotonic clock that only moves when told to.
final class ManualClock: Sendable {
    private let now = Mutex<Duration>(.seconds(1000))

    func advance(by duration: Duration) { now.withLock { $0 += duration } }

    var read: @Sendable () -> Duration { { self.now.withLock { $0 } } }
}
