import Foundation
import NebulaModel
import NebulaNode
import Testing

@Suite("System probe")
struct SystemProbeTests {
    /// A fake procfs, os-release and nvidia-smi in a temporary directory.
    struct FakeHost {
        let directory: TemporaryDirectory
        var procRoot: String { "\(directory.path)/proc" }
        var osRelease: String { "\(directory.path)/os-release" }
        let nvidiaSMI: String

        init() throws {
            directory = try TemporaryDirectory()
            nvidiaSMI = try fakeNvidiaSMI(in: directory, output: twoGPUOutput)
            try directory.write("os-release", "NAME=\"Ubuntu\"\nPRETTY_NAME=\"Ubuntu 22.04.4 LTS\"\nID=ubuntu\n")
            try directory.write("proc/loadavg", "1.50 0.75 0.25 2/345 6789\n")
            try directory.write("proc/meminfo", """
                MemTotal:       16000000 kB
                MemFree:         2000000 kB
                MemAvailable:   12000000 kB
                Buffers:          100000 kB
                Cached:          3000000 kB

                """)
        }

        func setCPU(user: Int, system: Int, idle: Int, iowait: Int) throws {
            try directory.write("proc/stat", """
                cpu  \(user) 0 \(system) \(idle) \(iowait) 0 0 0 0 0
                cpu0 \(user) 0 \(system) \(idle) \(iowait) 0 0 0 0 0
                ctxt 1990473

                """)
        }

        func setNet(eth0: (rx: Int, tx: Int), lo: Int) throws {
            try directory.write("proc/net/dev", """
                Inter-|   Receive                                                |  Transmit
                 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
                    lo: \(lo)   11307    0    0    0     0          0         0  \(lo)   11307    0    0    0     0       0          0
                  eth0: \(eth0.rx)    2751    0    0    0     0          0         0  \(eth0.tx)    4324    0    0    0     0       0          0
                docker0:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0

                """)
        }

        func probe(clock: ManualClock, logs: LogRecords) -> SystemProbe {
            SystemProbe(diskPath: directory.path, procRoot: procRoot, osReleasePaths: ["/nonexistent/os-release", osRelease],
                        gpuProbe: GPUProbe(environment: [GPUProbe.overrideVariable: nvidiaSMI], logger: logs.logger()),
                        monotonicNow: clock.read, logger: logs.logger())
        }
    }

    @Test func resourcesFromAFakeHost() async throws {
        let host = try FakeHost()
        defer { host.directory.remove() }
        let logs = LogRecords()
        let resources = await host.probe(clock: ManualClock(), logs: logs).resources(labels: ["rack": "r7"])

        #expect(!resources.hostname.isEmpty)
        #expect(resources.cpuCores >= 1)
        #expect(resources.memoryTotalBytes == 16_000_000 * 1024)
        #expect(resources.diskTotalBytes > 0)
        #expect(resources.os == "Ubuntu 22.04.4 LTS")
        #expect(resources.gpus == (try NvidiaSMIReport(csv: twoGPUOutput)).gpus)
        #expect(resources.labels == ["rack": "r7"])
        #expect(logs.warnings.isEmpty)
    }

    @Test func ratesAcrossSamplesFromAFakeHost() async throws {
        let host = try FakeHost()
        defer { host.directory.remove() }
        let clock = ManualClock()
        let logs = LogRecords()
        let probe = host.probe(clock: clock, logs: logs)

        try host.setCPU(user: 1000, system: 500, idle: 8000, iowait: 500)
        try host.setNet(eth0: (rx: 1_000_000, tx: 200_000), lo: 5_000)
        let before = Int64(Date().timeIntervalSince1970 * 1000)
        let first = await probe.sample(seq: 1)
        let after = Int64(Date().timeIntervalSince1970 * 1000)

        #expect(first.seq == 1)
        #expect((before...after + 1).contains(first.timeUnixMs))
        #expect(first.cpuPercent == 0)
        #expect(first.netRxBytesPerSec == 0 && first.netTxBytesPerSec == 0)
        #expect(first.load1 == 1.5 && first.load5 == 0.75 && first.load15 == 0.25)
        #expect(first.memoryTotalBytes == 16_000_000 * 1024)
        #expect(first.memoryUsedBytes == 4_000_000 * 1024)
        #expect(first.diskFreeBytes > 0)
        #expect(first.gpus == (try NvidiaSMIReport(csv: twoGPUOutput)).samples)

        // 2 s later: +300 busy ticks (+250 user, +50 system) of +1000 (+650 idle, +50 iowait) → 30 %;
        // eth0 +500 000 rx, +100 000 tx; loopback traffic does not count.
        clock.advance(by: .seconds(2))
        try host.setCPU(user: 1250, system: 550, idle: 8650, iowait: 550)
        try host.setNet(eth0: (rx: 1_500_000, tx: 300_000), lo: 900_000)
        let second = await probe.sample(seq: 2)
        #expect(second.seq == 2)
        #expect(second.cpuPercent == 30)
        #expect(second.netRxBytesPerSec == 250_000)
        #expect(second.netTxBytesPerSec == 50_000)

        // The counters restart (interface re-created): zero rates, never negative.
        clock.advance(by: .milliseconds(500))
        try host.setNet(eth0: (rx: 10, tx: 20), lo: 900_000)
        let third = await probe.sample(seq: 3)
        #expect(third.netRxBytesPerSec == 0 && third.netTxBytesPerSec == 0)
        #expect(third.cpuPercent == 0)

        // And count again from the new baseline.
        clock.advance(by: .milliseconds(500))
        try host.setNet(eth0: (rx: 1_010, tx: 520), lo: 900_000)
        let fourth = await probe.sample(seq: 4)
        #expect(fourth.netRxBytesPerSec == 2_000 && fourth.netTxBytesPerSec == 1_000)
        #expect(logs.warnings.isEmpty)
    }

    @Test func unreadableSourcesAreWarningsAndZeros() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try directory.write("proc/meminfo", "garbage\n")
        let logs = LogRecords()
        let probe = SystemProbe(diskPath: "\(directory.path)/no-such-disk", procRoot: "\(directory.path)/proc",
                                osReleasePaths: [], gpuProbe: GPUProbe(environment: [:], logger: logs.logger()),
                                logger: logs.logger())

        let sample = await probe.sample(seq: 7)
        #expect(sample.seq == 7)
        #expect(sample.cpuPercent == 0 && sample.load1 == 0 && sample.memoryTotalBytes == 0 && sample.diskFreeBytes == 0)
        #expect(sample.gpus.isEmpty)
        let files = Set(logs.warnings.compactMap { $0.metadata["probe.file"].map { "\($0)" } })
        #expect(files == ["\(directory.path)/proc/stat", "\(directory.path)/proc/loadavg",
                          "\(directory.path)/proc/meminfo", "\(directory.path)/proc/net/dev",
                          "\(directory.path)/no-such-disk"])

        let resources = await probe.resources(labels: [:])
        #expect(resources.memoryTotalBytes == 0 && resources.diskTotalBytes == 0 && resources.os.isEmpty)
        #expect(resources.cpuCores >= 1)
    }

    @Test func realHostGivesSaneValues() async throws {
        let logs = LogRecords()
        let probe = SystemProbe(diskPath: NSTemporaryDirectory(), logger: logs.logger())

        let resources = await probe.resources(labels: [:])
        #expect(!resources.hostname.isEmpty)
        #expect(resources.cpuCores >= 1)
        #expect(resources.memoryTotalBytes > 0)
        #expect(resources.diskTotalBytes > 0)
        #expect(!resources.os.isEmpty)

        _ = await probe.sample(seq: 1)
        try await Task.sleep(for: .milliseconds(200))
        let sample = await probe.sample(seq: 2)
        #expect((0...100).contains(sample.cpuPercent))
        #expect(sample.memoryTotalBytes == resources.memoryTotalBytes)
        #expect(sample.memoryUsedBytes > 0 && sample.memoryUsedBytes <= sample.memoryTotalBytes)
        #expect(sample.diskFreeBytes > 0 && sample.diskFreeBytes <= resources.diskTotalBytes)
        #expect(sample.load1 >= 0 && sample.load5 >= 0 && sample.load15 >= 0)
        #expect(sample.netRxBytesPerSec >= 0 && sample.netTxBytesPerSec >= 0)
        #expect(logs.warnings.isEmpty, "\(logs.warnings.map(\.message))")
    }
}
