/// Pure parsers for the Linux files the node agent reads: they take a file's text and return values,
/// and do no I/O, so every format detail is testable with fixture text. Each throws a `ProbeError`
/// naming `path` (the file the text came from) when the text is not what the kernel writes.

// MARK: - /proc/stat

/// Cumulative CPU time of all CPUs together, from the first (`cpu `) line of `/proc/stat`, in the
/// kernel's clock ticks (USER_HZ). Only differences between two snapshots mean anything.
public struct CPUTimes: Sendable, Hashable {
    public var user: UInt64
    public var nice: UInt64
    public var system: UInt64
    public var idle: UInt64
    public var iowait: UInt64
    public var irq: UInt64
    public var softirq: UInt64
    public var steal: UInt64

    public init(user: UInt64 = 0, nice: UInt64 = 0, system: UInt64 = 0, idle: UInt64 = 0, iowait: UInt64 = 0,
                irq: UInt64 = 0, softirq: UInt64 = 0, steal: UInt64 = 0) {
        self.user = user
        self.nice = nice
        self.system = system
        self.idle = idle
        self.iowait = iowait
        self.irq = irq
        self.softirq = softirq
        self.steal = steal
    }

    /// Parses the first line of `/proc/stat`, e.g. `cpu  10132153 290696 3084719 46828483 16683 0 25195 0 0 0`.
    ///
    /// At least user, nice, system and idle must be present; the later columns appeared over kernel
    /// versions and count as 0 when absent. The guest columns that follow steal are ignored: the kernel
    /// already counts guest time inside user and nice.
    public init(procStat text: String, path: String = "/proc/stat") throws(ProbeError) {
        guard let line = text.split(whereSeparator: \.isNewline).first else {
            throw ProbeError(.malformed, file: path, "file is empty")
        }
        let fields = line.split(whereSeparator: \.isWhitespace)
        guard fields.first == "cpu" else {
            throw ProbeError(.malformed, file: path, "first line does not start with 'cpu ': \(line.prefix(80))")
        }
        let names = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"]
        guard fields.count - 1 >= 4 else {
            throw ProbeError(.malformed, file: path, "cpu line has \(fields.count - 1) counters, expected at least 4")
        }
        var values = [UInt64](repeating: 0, count: names.count)
        for (i, name) in names.enumerated() where i + 1 < fields.count {
            values[i] = try parseCounter(fields[i + 1], path: path, what: "cpu \(name)")
        }
        self.init(user: values[0], nice: values[1], system: values[2], idle: values[3], iowait: values[4],
                  irq: values[5], softirq: values[6], steal: values[7])
    }

    /// Ticks spent doing work (everything except idle and iowait).
    public var busy: UInt64 { user &+ nice &+ system &+ irq &+ softirq &+ steal }
    /// Ticks spent waiting (idle and iowait).
    public var waiting: UInt64 { idle &+ iowait }
    /// All ticks.
    public var total: UInt64 { busy &+ waiting }

    /// Percentage of CPU time that was busy between two snapshots: busy delta / total delta × 100.
    ///
    /// 0 when no time passed. See Note [CPU counters going backwards].
    public static func busyPercent(from old: CPUTimes, to new: CPUTimes) -> Double {
        // Note [CPU counters going backwards]: iowait is documented to decrease at times on tickless
        // kernels, and a snapshot taken across a CPU hot-unplug can go backwards as a whole. Busy and
        // waiting deltas are therefore each clamped at 0 and the total is their sum, which keeps the
        // result in 0...100 whatever the counters do.
        let busy = new.busy >= old.busy ? new.busy - old.busy : 0
        let waiting = new.waiting >= old.waiting ? new.waiting - old.waiting : 0
        let total = busy + waiting
        guard total > 0 else { return 0 }
        return Double(busy) / Double(total) * 100
    }
}

// MARK: - /proc/loadavg

/// The 1, 5 and 15 minute load averages.
public struct LoadAverage: Sendable, Hashable {
    public var load1: Double
    public var load5: Double
    public var load15: Double

    public init(load1: Double, load5: Double, load15: Double) {
        self.load1 = load1
        self.load5 = load5
        self.load15 = load15
    }

    /// Parses `/proc/loadavg`, e.g. `0.52 0.58 0.59 1/1234 56789`.
    public init(procLoadavg text: String, path: String = "/proc/loadavg") throws(ProbeError) {
        let fields = text.split(whereSeparator: \.isWhitespace)
        guard fields.count >= 3 else {
            throw ProbeError(.malformed, file: path, "expected at least 3 fields, found \(fields.count)")
        }
        var loads: [Double] = []
        for (field, name) in zip(fields, ["load1", "load5", "load15"]) {
            guard let value = Double(field), value.isFinite, value >= 0 else {
                throw ProbeError(.malformed, file: path, "\(name) is not a non-negative number: '\(field)'")
            }
            loads.append(value)
        }
        self.init(load1: loads[0], load5: loads[1], load15: loads[2])
    }
}

// MARK: - /proc/meminfo

/// Physical memory: total and available to new work, in bytes.
public struct MemoryInfo: Sendable, Hashable {
    public var totalBytes: UInt64
    public var availableBytes: UInt64

    public init(totalBytes: UInt64, availableBytes: UInt64) {
        self.totalBytes = totalBytes
        self.availableBytes = availableBytes
    }

    /// Memory in use: total − available (0 if available were ever reported above total).
    public var usedBytes: UInt64 { totalBytes >= availableBytes ? totalBytes - availableBytes : 0 }

    /// Parses `/proc/meminfo` (`MemTotal:       16323268 kB` lines).
    ///
    /// Available memory is `MemAvailable`; kernels before 3.14 lack it, and then it is estimated as
    /// MemFree + Buffers + Cached (which overstates it somewhat: not all of the page cache can be dropped).
    public init(procMeminfo text: String, path: String = "/proc/meminfo") throws(ProbeError) {
        let wanted: Set<Substring> = ["MemTotal", "MemAvailable", "MemFree", "Buffers", "Cached"]
        var values: [Substring: UInt64] = [:]
        for (number, line) in text.split(whereSeparator: \.isNewline).enumerated() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let key = line[..<colon]
            guard wanted.contains(key) else { continue }
            let rest = line[line.index(after: colon)...].split(whereSeparator: \.isWhitespace)
            guard let first = rest.first, rest.count <= 2 else {
                throw ProbeError(.malformed, file: path, "line \(number + 1): expected '\(key): <number> kB'")
            }
            let amount = try parseCounter(first, path: path, what: String(key))
            let scale: UInt64
            switch rest.count == 2 ? rest[1] : "" {
            case "kB": scale = 1024
            case "": scale = 1
            default: throw ProbeError(.malformed, file: path, "line \(number + 1): unknown unit '\(rest[1])'")
            }
            let (bytes, overflow) = amount.multipliedReportingOverflow(by: scale)
            guard !overflow else { throw ProbeError(.malformed, file: path, "\(key) overflows 64 bits") }
            values[key] = bytes
        }
        guard let total = values["MemTotal"] else {
            throw ProbeError(.missingField, file: path, "no MemTotal line")
        }
        if let available = values["MemAvailable"] {
            self.init(totalBytes: total, availableBytes: available)
            return
        }
        var estimate: UInt64 = 0
        for key: Substring in ["MemFree", "Buffers", "Cached"] {
            guard let value = values[key] else {
                throw ProbeError(.missingField, file: path, "no MemAvailable line, and no \(key) line to estimate it")
            }
            estimate &+= value
        }
        self.init(totalBytes: total, availableBytes: estimate)
    }
}

// MARK: - /proc/net/dev

/// Cumulative received and transmitted bytes of one interface (or a sum of interfaces).
public struct NetCounters: Sendable, Hashable {
    public var rxBytes: UInt64
    public var txBytes: UInt64

    public init(rxBytes: UInt64, txBytes: UInt64) {
        self.rxBytes = rxBytes
        self.txBytes = txBytes
    }
}

/// Receive and transmit rates in bytes per second.
public struct NetRates: Sendable, Hashable {
    public var rxBytesPerSec: Double
    public var txBytesPerSec: Double

    public init(rxBytesPerSec: Double, txBytesPerSec: Double) {
        self.rxBytesPerSec = rxBytesPerSec
        self.txBytesPerSec = txBytesPerSec
    }

    public static let zero = NetRates(rxBytesPerSec: 0, txBytesPerSec: 0)
}

/// The byte counters of every interface in `/proc/net/dev`.
public struct NetDevSnapshot: Sendable, Hashable {
    /// Interfaces that do not carry the node's traffic and are left out of `total` and of rates.
    public static let excludedInterfaces: Set<String> = ["lo"]

    public var interfaces: [String: NetCounters]

    public init(interfaces: [String: NetCounters]) {
        self.interfaces = interfaces
    }

    /// Parses `/proc/net/dev`: two header lines, then one line per interface of the form
    /// `  eth0: 1215645 2751 0 0 0 0 0 0 1782404 4324 0 0 0 0 0 0` (8 receive then 8 transmit columns;
    /// received bytes are the first, transmitted bytes the ninth). Old kernels print no space after the
    /// colon once the counter is wide (`eth0:1215645`), which is handled.
    public init(procNetDev text: String, path: String = "/proc/net/dev") throws(ProbeError) {
        let lines = text.split(whereSeparator: \.isNewline)
        guard lines.contains(where: { $0.contains("|") }) else {
            throw ProbeError(.malformed, file: path, "no header line (expected 'Inter-|   Receive ...')")
        }
        var interfaces: [String: NetCounters] = [:]
        for (number, line) in lines.enumerated() where !line.contains("|") {
            // The counters contain no colon, so the last one ends the name (alias names such as
            // `eth0:1` contain one themselves).
            guard let colon = line.lastIndex(of: ":") else {
                if line.allSatisfy(\.isWhitespace) { continue }
                throw ProbeError(.malformed, file: path, "line \(number + 1): no ':' after the interface name")
            }
            let name = line[..<colon].trimmingWhitespace()
            let fields = line[line.index(after: colon)...].split(whereSeparator: \.isWhitespace)
            guard !name.isEmpty, fields.count >= 16 else {
                throw ProbeError(.malformed, file: path,
                                 "line \(number + 1): expected an interface name and 16 counters, found \(fields.count)")
            }
            interfaces[String(name)] = NetCounters(
                rxBytes: try parseCounter(fields[0], path: path, what: "\(name) receive bytes"),
                txBytes: try parseCounter(fields[8], path: path, what: "\(name) transmit bytes"))
        }
        self.init(interfaces: interfaces)
    }

    /// Counters summed over all interfaces except `excludedInterfaces`.
    public var total: NetCounters {
        var sum = NetCounters(rxBytes: 0, txBytes: 0)
        for (name, counters) in interfaces where !Self.excludedInterfaces.contains(name) {
            sum.rxBytes &+= counters.rxBytes
            sum.txBytes &+= counters.txBytes
        }
        return sum
    }

    /// Receive and transmit rates between two snapshots taken `elapsedSeconds` apart, summed over the
    /// interfaces present in both (except `excludedInterfaces`).
    ///
    /// An interface whose counter went down (a 32-bit counter wrapped, the driver was reloaded, the
    /// interface was re-created) contributes 0 for that direction: the bytes moved across the reset
    /// are unknown, and a rate is never negative. Interfaces that appeared or vanished in between
    /// contribute nothing. No elapsed time gives zero rates.
    public static func rates(from old: NetDevSnapshot, to new: NetDevSnapshot, elapsedSeconds: Double) -> NetRates {
        guard elapsedSeconds > 0, elapsedSeconds.isFinite else { return .zero }
        var rx: UInt64 = 0
        var tx: UInt64 = 0
        for (name, now) in new.interfaces where !excludedInterfaces.contains(name) {
            guard let before = old.interfaces[name] else { continue }
            if now.rxBytes >= before.rxBytes { rx &+= now.rxBytes - before.rxBytes }
            if now.txBytes >= before.txBytes { tx &+= now.txBytes - before.txBytes }
        }
        return NetRates(rxBytesPerSec: Double(rx) / elapsedSeconds, txBytesPerSec: Double(tx) / elapsedSeconds)
    }
}

// MARK: - /etc/os-release

/// The operating system's name from `os-release(5)`.
public enum OSRelease {
    /// The name to show for the OS: `PRETTY_NAME`, else `NAME`, else "Linux" (the default os-release(5)
    /// gives for PRETTY_NAME). Values may be double-quoted (with `\"`, `\\`, `\$`, `` \` `` escapes),
    /// single-quoted or bare; comment and blank lines are skipped.
    public static func prettyName(osRelease text: String, path: String = "/etc/os-release") throws(ProbeError) -> String {
        var fields: [Substring: String] = [:]
        for (number, line) in text.split(whereSeparator: \.isNewline).enumerated() {
            let trimmed = line.trimmingWhitespace()
            guard !trimmed.isEmpty, !trimmed.hasPrefix("#"), let equals = trimmed.firstIndex(of: "=") else { continue }
            let key = trimmed[..<equals]
            guard key == "PRETTY_NAME" || key == "NAME" else { continue }
            guard let value = unquote(trimmed[trimmed.index(after: equals)...]) else {
                throw ProbeError(.malformed, file: path, "line \(number + 1): unterminated quote in \(key)")
            }
            fields[key] = value
        }
        if let pretty = fields["PRETTY_NAME"], !pretty.isEmpty { return pretty }
        if let name = fields["NAME"], !name.isEmpty { return name }
        return "Linux"
    }

    /// The shell-like value of an os-release assignment, or nil when a quote is not closed.
    private static func unquote(_ raw: Substring) -> String? {
        guard let quote = raw.first, quote == "\"" || quote == "'" else { return String(raw) }
        var result = ""
        var escaped = false
        for character in raw.dropFirst() {
            if escaped {
                if !"\"\\$`".contains(character) { result.append("\\") }
                result.append(character)
                escaped = false
            } else if character == "\\" && quote == "\"" {
                escaped = true
            } else if character == quote {
                return result
            } else {
                result.append(character)
            }
        }
        return nil
    }
}

// MARK: - Helpers

/// A decimal counter field, or an error naming the file and the field.
func parseCounter(_ field: Substring, path: String, what: String) throws(ProbeError) -> UInt64 {
    guard let value = UInt64(field) else {
        throw ProbeError(.malformed, file: path, "\(what) is not a non-negative integer: '\(field.prefix(40))'")
    }
    return value
}

extension Substring {
    /// The substring without leading and trailing whitespace.
    func trimmingWhitespace() -> Substring {
        guard let start = firstIndex(where: { !$0.isWhitespace }),
              let end = lastIndex(where: { !$0.isWhitespace }) else { return self[endIndex...] }
        return self[start...end]
    }
}
