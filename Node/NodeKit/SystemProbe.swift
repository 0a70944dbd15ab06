import Foundation
import Logging
import NebulaModel
import Synchronization

/// Reads what the node has (`resources`) and how it is doing (`sample`) from `/proc`, `statvfs`,
/// `os-release` and `nvidia-smi`.
///
/// The probe never fails as a whole: a source that cannot be read is logged as a warning and its
/// values are reported as 0 (or empty) for that call, so one broken file does not silence the
/// heartbeat. CPU percent and network rates are differences between consecutive `sample` calls; the
/// probe keeps the previous readings (see `SampleDeltas`), so the first sample reports 0 for them.
public final class SystemProbe: Sendable {
    /// Where the OS name is looked up, in order (os-release(5)).
    public static let defaultOSReleasePaths = ["/etc/os-release", "/usr/lib/os-release"]

    private let diskPath: String
    private let procRoot: String
    private let osReleasePaths: [String]
    private let gpuProbe: GPUProbe
    private let monotonicNow: @Sendable () -> Duration
    private let logger: Logger
    private let deltas = Mutex(SampleDeltas())

    /// - Parameters:
    ///   - diskPath: a path on the file system whose size and free space are reported (the work directory).
    ///   - procRoot: where procfs is mounted; tests point it at a fake tree.
    ///   - osReleasePaths: os-release files to try, in order.
    ///   - gpuProbe: how GPUs are found; by default `nvidia-smi` from the process environment.
    ///   - monotonicNow: a monotonic clock (time since any fixed origin) used for network rates;
    ///     by default `ContinuousClock`. Tests pass a fake one to get exact rates.
    public init(diskPath: String, procRoot: String = "/proc",
                osReleasePaths: [String] = SystemProbe.defaultOSReleasePaths,
                gpuProbe: GPUProbe? = nil,
                monotonicNow: (@Sendable () -> Duration)? = nil,
                logger: Logger) {
        self.diskPath = diskPath
        self.procRoot = procRoot
        self.osReleasePaths = osReleasePaths
        self.gpuProbe = gpuProbe ?? GPUProbe(logger: logger)
        if let monotonicNow {
            self.monotonicNow = monotonicNow
        } else {
            let origin = ContinuousClock.now
            self.monotonicNow = { ContinuousClock.now - origin }
        }
        self.logger = logger
    }

    /// What the node has: host name, online CPUs, memory, size of the disk holding `diskPath`, GPUs and
    /// OS name, with `labels` attached as given.
    public func resources(labels: [String: String]) async -> NodeResources {
        async let gpuReport = gpuProbe.report()
        let hostname = attempt("host name") { () throws(ProbeError) in try HostCall.hostname() } ?? ""
        let cores = attempt("CPU count") { () throws(ProbeError) in try HostCall.onlineCPUs() } ?? 0
        let memory = attempt("memory") { () throws(ProbeError) in
            try MemoryInfo(procMeminfo: try readFile(procPath("meminfo")), path: procPath("meminfo"))
        }
        let disk = attempt("disk") { () throws(ProbeError) in try HostCall.fileSystemSpace(at: diskPath) }
        let os = osName()
        let gpus = await gpuReport.gpus
        return NodeResources(hostname: hostname, cpuCores: cores, memoryTotalBytes: memory?.totalBytes ?? 0,
                             diskTotalBytes: disk?.totalBytes ?? 0, gpus: gpus, os: os, labels: labels)
    }

    /// One health observation. CPU percent and network rates cover the time since the previous call
    /// (0 on the first); `seq` is passed through.
    public func sample(seq: UInt64) async -> HealthSample {
        let wallMs = Int64((Date().timeIntervalSince1970 * 1000).rounded())
        async let gpuReport = gpuProbe.report()

        let cpu = attempt("CPU times") { () throws(ProbeError) in
            try CPUTimes(procStat: try readFile(procPath("stat")), path: procPath("stat"))
        }
        let load = attempt("load average") { () throws(ProbeError) in
            try LoadAverage(procLoadavg: try readFile(procPath("loadavg")), path: procPath("loadavg"))
        }
        let memory = attempt("memory") { () throws(ProbeError) in
            try MemoryInfo(procMeminfo: try readFile(procPath("meminfo")), path: procPath("meminfo"))
        }
        let now = monotonicNow()
        let net = attempt("network counters") { () throws(ProbeError) in
            try NetDevSnapshot(procNetDev: try readFile(procPath("net/dev")), path: procPath("net/dev"))
        }
        let disk = attempt("disk") { () throws(ProbeError) in try HostCall.fileSystemSpace(at: diskPath) }
        let (cpuPercent, rates) = deltas.withLock { state in
            (state.cpuPercent(cpu), state.netRates(net, at: now))
        }
        let gpus = await gpuReport.samples

        return HealthSample(
            timeUnixMs: wallMs, cpuPercent: cpuPercent,
            load1: load?.load1 ?? 0, load5: load?.load5 ?? 0, load15: load?.load15 ?? 0,
            memoryUsedBytes: memory?.usedBytes ?? 0, memoryTotalBytes: memory?.totalBytes ?? 0,
            diskFreeBytes: disk?.availableBytes ?? 0,
            netRxBytesPerSec: rates.rxBytesPerSec, netTxBytesPerSec: rates.txBytesPerSec,
            gpus: gpus, seq: seq)
    }

    // MARK: - Sources

    private func procPath(_ name: String) -> String {
        procRoot.hasSuffix("/") ? procRoot + name : "\(procRoot)/\(name)"
    }

    /// The first readable os-release's name, or "" when none can be read.
    private func osName() -> String {
        var failures: [String] = []
        for path in osReleasePaths {
            do {
                return try OSRelease.prettyName(osRelease: try readFile(path), path: path)
            } catch {
                failures.append("\(error)")
            }
        }
        logger.warning("Cannot determine the OS name", metadata: ["probe.error": "\(failures.joined(separator: "; "))"])
        return ""
    }

    /// Runs `body`, logging a failure as a warning and returning nil for it.
    private func attempt<T>(_ what: String, _ body: () throws(ProbeError) -> T) -> T? {
        do {
            return try body()
        } catch {
            logger.warning("Cannot read \(what); reporting 0", metadata: ["probe.file": "\(error.file)", "probe.error": "\(error)"])
            return nil
        }
    }
}

/// Reads a small text file whole (procfs files report size 0, so this reads until end of file).
func readFile(_ path: String) throws(ProbeError) -> String {
    guard let handle = FileHandle(forReadingAtPath: path) else {
        throw ProbeError(.unreadable, file: path, "cannot open")
    }
    defer { try? handle.close() }
    let data: Data
    do {
        data = try handle.readToEnd() ?? Data()
    } catch {
        throw ProbeError(.unreadable, file: path, "read failed: \(error)")
    }
    guard let text = String(data: data, encoding: .utf8) else {
        throw ProbeError(.unreadable, file: path, "not UTF-8 text")
    }
    return text
}

/// The previous readings that CPU percent and network rates are differences against: a pure state
/// machine, fed each sample's readings and its monotonic time.
///
/// A reading that failed (nil) yields 0 and keeps the older baseline, so the next good reading is
/// compared against the last good one.
struct SampleDeltas: Sendable {
    private var lastCPU: CPUTimes?
    private var lastNet: (snapshot: NetDevSnapshot, at: Duration)?

    mutating func cpuPercent(_ now: CPUTimes?) -> Double {
        guard let now else { return 0 }
        defer { lastCPU = now }
        guard let lastCPU else { return 0 }
        return CPUTimes.busyPercent(from: lastCPU, to: now)
    }

    mutating func netRates(_ now: NetDevSnapshot?, at time: Duration) -> NetRates {
        guard let now else { return .zero }
        defer { lastNet = (now, time) }
        guard let lastNet else { return .zero }
        let elapsed = time - lastNet.at
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        return NetDevSnapshot.rates(from: lastNet.snapshot, to: now, elapsedSeconds: seconds)
    }
}
