import Foundation
import NebulaCommon
import NebulaModel

/// Output formats of every listing.
public enum OutputFormat: String, Sendable, CaseIterable {
    case table, json, csv
}

/// A text table with left-aligned columns, like `sinfo`/`squeue`.
public struct TextTable: Sendable {
    public var header: [String]
    public var rows: [[String]]

    public init(header: [String], rows: [[String]]) {
        self.header = header
        self.rows = rows
    }

    public func render() -> String {
        let all = [header] + rows
        let widths = header.indices.map { i in all.map { $0.indices.contains(i) ? $0[i].count : 0 }.max() ?? 0 }
        return all.map { row in
            row.enumerated().map { i, cell in
                i == row.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0)
            }.joined(separator: " ").trimmingTrailingSpaces()
        }.joined(separator: "\n") + "\n"
    }

    /// RFC 4180 CSV: fields with comma, quote or newline are quoted, quotes doubled.
    public func csv() -> String {
        ([header] + rows).map { $0.map(csvField).joined(separator: ",") }.joined(separator: "\r\n") + "\r\n"
    }
}

func csvField(_ s: String) -> String {
    guard s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return s }
    return "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\""
}

extension String {
    func trimmingTrailingSpaces() -> String {
        var s = self
        while s.last == " " { s.removeLast() }
        return s
    }
}

/// The STATE column: Slurm style, `*` when the node does not respond, `drain` when drained.
public func stateLabel(_ node: NodeInfo) -> String {
    let base = node.drained ? "drain" : node.state.rawValue
    return node.state.isResponding ? base : base + "*"
}

/// "4s ago", "3m ago", "2h ago", "5d ago"; "-" when never.
public func ago(_ unixMs: Int64, now: Int64) -> String {
    guard unixMs > 0 else { return "-" }
    let s = max(0, (now - unixMs) / 1000)
    switch s {
    case ..<120: return "\(s)s ago"
    case ..<7200: return "\(s / 60)m ago"
    case ..<172_800: return "\(s / 3600)h ago"
    default: return "\(s / 86400)d ago"
    }
}

public func mebibytes(_ bytes: UInt64) -> UInt64 { bytes / (1 << 20) }


/// `nebula nodes` as a table (columns in the spirit of `sinfo -N -l`).
public enum NodesView {
    public static let header = ["NODE", "STATE", "CPUS", "CPU_LOAD", "MEMORY", "FREE_MEM", "GPUS", "GPU_UTIL",
                                "LAST_SEEN", "REASON"]

    public static func table(_ nodes: [NodeInfo], now: Int64) -> TextTable {
        TextTable(header: header, rows: nodes.map { n in
            let s = n.latest
            let gpuUtil: String
            if let gpus = s?.gpus, !gpus.isEmpty {
                gpuUtil = String(format: "%.0f%%", gpus.map(\.utilizationPercent).reduce(0, +) / Double(gpus.count))
            } else {
                gpuUtil = "-"
            }
            let memory = s?.memoryTotalBytes ?? n.resources.memoryTotalBytes
            return [
                n.nodeId, stateLabel(n), "\(n.resources.cpuCores)",
                s.map { String(format: "%.2f", $0.load1) } ?? "-",
                "\(mebibytes(memory))",
                s.map { "\(mebibytes($0.memoryTotalBytes &- $0.memoryUsedBytes))" } ?? "-",
                "\(n.resources.gpus.count)", gpuUtil, ago(n.lastSeenUnixMs, now: now),
                n.reason.isEmpty ? "none" : n.reason,
            ]
        })
    }

    public static func json(_ nodes: [NodeInfo], now: Int64) throws -> String {
        try encodeJSON(nodes.map { NodeJSON($0, now: now) })
    }
}

/// The JSON shape of a node in `nebula nodes --json` and `nebula node show --json` (snake_case, stable).
public struct NodeJSON: Codable, Sendable, Hashable {
    public var nodeId: String
    public var state: String
    public var responding: Bool
    public var drained: Bool
    public var reason: String
    public var address: String
    public var hostname: String
    public var os: String
    public var labels: [String: String]
    public var cpus: Int
    public var memoryBytes: UInt64
    public var diskBytes: UInt64
    public var gpus: [GpuInfo]
    public var agentVersion: String
    public var registeredUnixMs: Int64
    public var lastSeenUnixMs: Int64
    public var lastSeenSecondsAgo: Int64
    public var latest: HealthSample?

    public init(_ n: NodeInfo, now: Int64) {
        nodeId = n.nodeId
        state = n.state.rawValue
        responding = n.state.isResponding
        drained = n.drained
        reason = n.reason
        address = n.address
        hostname = n.resources.hostname
        os = n.resources.os
        labels = n.resources.labels
        cpus = n.resources.cpuCores
        memoryBytes = n.resources.memoryTotalBytes
        diskBytes = n.resources.diskTotalBytes
        gpus = n.resources.gpus
        agentVersion = n.agentVersion
        registeredUnixMs = n.registeredUnixMs
        lastSeenUnixMs = n.lastSeenUnixMs
        lastSeenSecondsAgo = max(0, (now - n.lastSeenUnixMs) / 1000)
        latest = n.latest
    }
}

public func encodeJSON<T: Encodable>(_ value: T) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    encoder.keyEncodingStrategy = .convertToSnakeCase
    return String(decoding: try encoder.encode(value), as: UTF8.self) + "\n"
}

/// `nebula node show`.
public enum NodeDetailView {
    public static func text(_ d: NodeDetail, now: Int64) -> String {
        let n = d.node
        var out = ""
        func line(_ k: String, _ v: String) { out += k.padding(toLength: 14, withPad: " ", startingAt: 0) + v + "\n" }
        line("Node", n.nodeId)
        line("State", stateLabel(n) + (n.reason.isEmpty ? "" : " (\(n.reason))"))
        line("Address", n.address)
        line("Host", "\(n.resources.hostname), \(n.resources.os)")
        line("CPUs", "\(n.resources.cpuCores)")
        line("Memory", humanBytes(n.resources.memoryTotalBytes))
        line("Disk", humanBytes(n.resources.diskTotalBytes))
        line("GPUs", n.resources.gpus.isEmpty ? "none"
             : n.resources.gpus.map { "#\($0.index) \($0.name) (\(humanBytes($0.memoryTotalBytes)))" }.joined(separator: ", "))
        if !n.resources.labels.isEmpty {
            line("Labels", n.resources.labels.sorted(by: { $0.key < $1.key }).map { "\($0.key)=\($0.value)" }
                .joined(separator: ","))
        }
        line("Agent", "\(n.agentVersion) (session \(n.session))")
        line("Registered", ago(n.registeredUnixMs, now: now))
        line("Last seen", ago(n.lastSeenUnixMs, now: now))
        if let s = n.latest {
            line("CPU", String(format: "%.1f%%, load %.2f %.2f %.2f", s.cpuPercent, s.load1, s.load5, s.load15))
            line("Memory used", "\(humanBytes(s.memoryUsedBytes)) of \(humanBytes(s.memoryTotalBytes))")
            line("Disk free", humanBytes(s.diskFreeBytes))
            line("Network", "rx \(humanBytes(UInt64(max(0, s.netRxBytesPerSec))))/s, tx \(humanBytes(UInt64(max(0, s.netTxBytesPerSec))))/s")
            for g in s.gpus {
                line("GPU \(g.index)", String(format: "%.0f%% util, ", g.utilizationPercent)
                     + "\(humanBytes(g.memoryUsedBytes)) of \(humanBytes(g.memoryTotalBytes))")
            }
        }
        if !d.events.isEmpty {
            out += "\nEvents (newest first)\n"
            out += TextTable(header: ["TIME", "KIND", "FROM", "TO", "REASON"], rows: d.events.map { e in
                [isoTime(e.timeUnixMs), e.kind.rawValue, e.from?.rawValue ?? "-", e.to.rawValue, e.reason]
            }).render()
        }
        if !d.recent.isEmpty {
            out += "\nRecent health (newest first)\n"
            out += TextTable(header: ["TIME", "CPU%", "LOAD1", "MEM_USED", "DISK_FREE", "RX/s", "TX/s"], rows: d.recent.map { s in
                [isoTime(s.timeUnixMs), String(format: "%.1f", s.cpuPercent), String(format: "%.2f", s.load1),
                 humanBytes(s.memoryUsedBytes), humanBytes(s.diskFreeBytes),
                 humanBytes(UInt64(max(0, s.netRxBytesPerSec))), humanBytes(UInt64(max(0, s.netTxBytesPerSec)))]
            }).render()
        }
        return out
    }

    public struct JSON: Codable, Sendable {
        public var node: NodeJSON
        public var events: [NodeEvent]
        public var recent: [HealthSample]
    }

    public static func json(_ d: NodeDetail, now: Int64) throws -> String {
        try encodeJSON(JSON(node: NodeJSON(d.node, now: now), events: d.events, recent: d.recent))
    }
}

/// `nebula health`.
public enum HealthView {
    public static func text(_ h: ClusterHealth, now: Int64) -> String {
        var out = ""
        func line(_ k: String, _ v: String) { out += k.padding(toLength: 14, withPad: " ", startingAt: 0) + v + "\n" }
        line("Coordinator", "\(h.coordinatorVersion), up since \(ago(h.coordinatorStartedUnixMs, now: now))")
        line("Database", h.databaseOK ? "ok" : "UNREACHABLE (records are spooled to disk and replayed)")
        if h.spooledRecords > 0 { line("Spooled", "\(h.spooledRecords) records waiting for the database") }
        line("Nodes", "\(h.nodesTotal) total: \(h.nodesUp) up, \(h.nodesSuspect) suspect, \(h.nodesDown) down, "
             + "\(h.nodesLeft) left, \(h.nodesDrained) drained")
        line("CPUs", "\(h.cpusTotal) (avg busy \(String(format: "%.1f", h.cpuPercentAvg))%)")
        line("GPUs", "\(h.gpusTotal)")
        line("Memory", "\(humanBytes(h.memoryUsedBytes)) used of \(humanBytes(h.memoryTotalBytes))")
        return out
    }

    public static func table(_ h: ClusterHealth) -> TextTable {
        TextTable(header: ["NODES", "UP", "SUSPECT", "DOWN", "LEFT", "DRAINED", "CPUS", "GPUS", "MEM_TOTAL", "MEM_USED",
                           "CPU_AVG", "DB_OK", "SPOOLED"],
                  rows: [["\(h.nodesTotal)", "\(h.nodesUp)", "\(h.nodesSuspect)", "\(h.nodesDown)", "\(h.nodesLeft)",
                          "\(h.nodesDrained)", "\(h.cpusTotal)", "\(h.gpusTotal)", "\(h.memoryTotalBytes)",
                          "\(h.memoryUsedBytes)", String(format: "%.1f", h.cpuPercentAvg), "\(h.databaseOK)",
                          "\(h.spooledRecords)"]])
    }
}

/// `nebula logs`.
public enum LogsView {
    public static func line(_ r: LogRecord) -> String {
        let origin = r.nodeId.isEmpty ? "coordinator" : r.nodeId
        let meta = r.metadata.sorted(by: { $0.key < $1.key }).map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        return "\(isoTime(r.timeUnixMs)) \(origin) \(r.level.rawValue.uppercased()) \(r.source): \(r.message)"
            + (meta.isEmpty ? "" : " " + meta)
    }

    public static let csvHeader = ["time", "node", "level", "source", "message", "metadata"]

    public static func csvRow(_ r: LogRecord) -> [String] {
        [isoTime(r.timeUnixMs), r.nodeId, r.level.rawValue, r.source, r.message,
         r.metadata.sorted(by: { $0.key < $1.key }).map { "\($0.key)=\($0.value)" }.joined(separator: " ")]
    }
}

public func isoTime(_ unixMs: Int64) -> String {
    let date = Date(timeIntervalSince1970: Double(unixMs) / 1000)
    let f = ISO8601DateFormatter()
    f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    return f.string(from: date)
}
