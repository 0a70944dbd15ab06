import NebulaNode
import Testing

@Suite("/proc/stat")
struct ProcStatTests {
    static let stat = """
        cpu  10132153 290696 3084719 46828483 16683 0 25195 0 175628 0
        cpu0 1393280 32966 572056 13343292 6130 0 17875 0 23933 0
        cpu1 1335023 31961 529693 13398542 3694 0 3208 0 23491 0
        intr 199292311 39 0 0 0 0 0 0 0 1 0 0 0 0 0 0 0
        ctxt 1990473
        btime 1062191376
        processes 2915
        procs_running 1
        procs_blocked 0
        softirq 183433 0 21755 12 39 0 0 1 0 0 0

        """

    @Test func parsesTheAggregateLine() throws {
        let times = try CPUTimes(procStat: Self.stat)
        #expect(times == CPUTimes(user: 10132153, nice: 290696, system: 3084719, idle: 46828483, iowait: 16683,
                                  irq: 0, softirq: 25195, steal: 0))
        #expect(times.busy == 10132153 + 290696 + 3084719 + 25195)
        #expect(times.waiting == 46828483 + 16683)
    }

    @Test func olderKernelsWithFewerColumns() throws {
        let times = try CPUTimes(procStat: "cpu  100 2 30 400\n")
        #expect(times == CPUTimes(user: 100, nice: 2, system: 30, idle: 400))
    }

    @Test("malformed input names the file", arguments: [
        ("", "empty"),
        ("intr 1 2 3\ncpu 1 2 3 4\n", "first line"),
        ("cpu  1 2 3\n", "at least 4"),
        ("cpu  1 2 x 4 5 6 7 8\n", "cpu system"),
        ("cpu  1 2 -3 4\n", "cpu system"),
    ])
    func malformed(text: String, mention: String) {
        let error = #expect(throws: ProbeError.self) { try CPUTimes(procStat: text, path: "/fake/proc/stat") }
        #expect(error?.file == "/fake/proc/stat")
        #expect(error?.code == .malformed)
        #expect(error?.detail.contains(mention) == true, "\(String(describing: error))")
    }

    @Test func busyPercentBetweenSnapshots() {
        let old = CPUTimes(user: 100, nice: 0, system: 50, idle: 800, iowait: 50, irq: 0, softirq: 0, steal: 0)
        // +60 user, +15 system, +5 steal busy; +115 idle, +5 iowait waiting: 80 / 200.
        let new = CPUTimes(user: 160, nice: 0, system: 65, idle: 915, iowait: 55, irq: 0, softirq: 0, steal: 5)
        #expect(CPUTimes.busyPercent(from: old, to: new) == 40)
    }

    @Test func noElapsedTicksIsZero() {
        let times = CPUTimes(user: 5, idle: 5)
        #expect(CPUTimes.busyPercent(from: times, to: times) == 0)
    }

    @Test func countersGoingBackwardsStayInRange() {
        // iowait may decrease on tickless kernels; the result must stay within 0...100.
        let old = CPUTimes(user: 100, idle: 1000, iowait: 500)
        let iowaitDrop = CPUTimes(user: 150, idle: 1010, iowait: 100)
        let percent = CPUTimes.busyPercent(from: old, to: iowaitDrop)
        #expect(percent >= 0 && percent <= 100)
        #expect(CPUTimes.busyPercent(from: iowaitDrop, to: old) == 0)
    }
}

@Suite("/proc/loadavg")
struct LoadAverageTests {
    @Test func parses() throws {
        let load = try LoadAverage(procLoadavg: "0.64 0.22 0.09 1/91 9049\n")
        #expect(load == LoadAverage(load1: 0.64, load5: 0.22, load15: 0.09))
    }

    @Test("malformed input names the file", arguments: ["", "0.5 0.4\n", "0.5 abc 0.3 1/2 3\n", "-1 0 0 1/1 1\n"])
    func malformed(text: String) {
        let error = #expect(throws: ProbeError.self) { try LoadAverage(procLoadavg: text) }
        #expect(error?.file == "/proc/loadavg")
        #expect(error?.code == .malformed)
    }
}

@Suite("/proc/meminfo")
struct MeminfoTests {
    static let meminfo = """
        MemTotal:       16323268 kB
        MemFree:         1093216 kB
        MemAvailable:    9587632 kB
        Buffers:          563412 kB
        Cached:          7615048 kB
        SwapCached:         1044 kB
        Active:          8405724 kB
        HugePages_Total:       0
        HugePages_Free:        0
        Hugepagesize:       2048 kB
        DirectMap4k:      485280 kB

        """

    @Test func parsesTotalAndAvailable() throws {
        let memory = try MemoryInfo(procMeminfo: Self.meminfo)
        #expect(memory.totalBytes == 16323268 * 1024)
        #expect(memory.availableBytes == 9587632 * 1024)
        #expect(memory.usedBytes == (16323268 - 9587632) * 1024)
    }

    @Test func withoutMemAvailableEstimatesFromFreeBuffersCached() throws {
        let old = Self.meminfo.split(separator: "\n").filter { !$0.hasPrefix("MemAvailable") }.joined(separator: "\n")
        let memory = try MemoryInfo(procMeminfo: old)
        #expect(memory.availableBytes == (1093216 + 563412 + 7615048) * 1024)
        #expect(memory.usedBytes == memory.totalBytes - memory.availableBytes)
    }

    @Test func missingTotalIsAnError() {
        let error = #expect(throws: ProbeError.self) {
            try MemoryInfo(procMeminfo: "MemFree: 10 kB\nMemAvailable: 20 kB\n", path: "/fake/meminfo")
        }
        #expect(error?.code == .missingField)
        #expect(error?.file == "/fake/meminfo")
        #expect(error?.detail.contains("MemTotal") == true)
    }

    @Test func noWayToEstimateAvailableIsAnError() {
        let error = #expect(throws: ProbeError.self) { try MemoryInfo(procMeminfo: "MemTotal: 100 kB\nMemFree: 10 kB\n") }
        #expect(error?.code == .missingField)
        #expect(error?.detail.contains("Buffers") == true)
    }

    @Test("malformed values name the file", arguments: [
        "MemTotal: lots kB\nMemAvailable: 1 kB\n",
        "MemTotal: 100 MB\nMemAvailable: 1 kB\n",
        "MemTotal:\nMemAvailable: 1 kB\n",
    ])
    func malformed(text: String) {
        let error = #expect(throws: ProbeError.self) { try MemoryInfo(procMeminfo: text) }
        #expect(error?.file == "/proc/meminfo")
        #expect(error?.code == .malformed)
    }
}

@Suite("/proc/net/dev")
struct NetDevTests {
    static let netDev = """
        Inter-|   Receive                                                |  Transmit
         face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
            lo: 2776770   11307    0    0    0     0          0         0  2776770   11307    0    0    0     0       0          0
          eth0: 1215645    2751    0    0    0     0          0         0  1782404    4324    0    0    0     0       0          0
          ifb0:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0
        wlan0:4294967000 1234 0 0 0 0 0 0 70000 99 0 0 0 0 0 0

        """

    @Test func parsesEveryInterface() throws {
        let snapshot = try NetDevSnapshot(procNetDev: Self.netDev)
        #expect(snapshot.interfaces == [
            "lo": NetCounters(rxBytes: 2776770, txBytes: 2776770),
            "eth0": NetCounters(rxBytes: 1215645, txBytes: 1782404),
            "ifb0": NetCounters(rxBytes: 0, txBytes: 0),
            "wlan0": NetCounters(rxBytes: 4294967000, txBytes: 70000),
        ])
    }

    @Test func totalLeavesOutLoopback() throws {
        let total = try NetDevSnapshot(procNetDev: Self.netDev).total
        #expect(total == NetCounters(rxBytes: 1215645 + 4294967000, txBytes: 1782404 + 70000))
    }

    @Test func ratesBetweenSnapshots() {
        let old = NetDevSnapshot(interfaces: [
            "lo": NetCounters(rxBytes: 1000, txBytes: 1000),
            "eth0": NetCounters(rxBytes: 10_000, txBytes: 5_000),
            "ifb0": NetCounters(rxBytes: 0, txBytes: 0),
        ])
        let new = NetDevSnapshot(interfaces: [
            "lo": NetCounters(rxBytes: 9_000_000, txBytes: 9_000_000),
            "eth0": NetCounters(rxBytes: 30_000, txBytes: 9_000),
            "ifb0": NetCounters(rxBytes: 0, txBytes: 0),
        ])
        #expect(NetDevSnapshot.rates(from: old, to: new, elapsedSeconds: 4)
                == NetRates(rxBytesPerSec: 5_000, txBytesPerSec: 1_000))
    }

    @Test func counterResetContributesZeroNotNegative() {
        let old = NetDevSnapshot(interfaces: [
            "eth0": NetCounters(rxBytes: 4_294_967_000, txBytes: 800),
            "eth1": NetCounters(rxBytes: 100, txBytes: 100),
        ])
        // eth0's 32-bit receive counter wrapped; eth1 was re-created and restarted from 0.
        let new = NetDevSnapshot(interfaces: [
            "eth0": NetCounters(rxBytes: 200, txBytes: 1_800),
            "eth1": NetCounters(rxBytes: 0, txBytes: 50),
        ])
        #expect(NetDevSnapshot.rates(from: old, to: new, elapsedSeconds: 2)
                == NetRates(rxBytesPerSec: 0, txBytesPerSec: 500))
    }

    @Test func interfacesThatAppearOrVanishCountNothing() {
        let old = NetDevSnapshot(interfaces: ["eth0": NetCounters(rxBytes: 0, txBytes: 0),
                                              "veth1": NetCounters(rxBytes: 5_000, txBytes: 5_000)])
        let new = NetDevSnapshot(interfaces: ["eth0": NetCounters(rxBytes: 10, txBytes: 20),
                                              "veth2": NetCounters(rxBytes: 9_999, txBytes: 9_999)])
        #expect(NetDevSnapshot.rates(from: old, to: new, elapsedSeconds: 1) == NetRates(rxBytesPerSec: 10, txBytesPerSec: 20))
    }

    @Test(arguments: [0.0, -1.0, Double.nan])
    func noElapsedTimeIsZero(elapsed: Double) {
        let old = NetDevSnapshot(interfaces: ["eth0": NetCounters(rxBytes: 0, txBytes: 0)])
        let new = NetDevSnapshot(interfaces: ["eth0": NetCounters(rxBytes: 10, txBytes: 10)])
        #expect(NetDevSnapshot.rates(from: old, to: new, elapsedSeconds: elapsed) == .zero)
    }

    @Test("malformed input names the file", arguments: [
        "",
        "  eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n",
        "Inter-|\n face |\n  eth0 1 2 3\n",
        "Inter-|\n face |\n  eth0: 1 2 3 4 5 6 7 8\n",
        "Inter-|\n face |\n  eth0: 1 2 3 4 5 6 7 8 x 10 11 12 13 14 15 16\n",
    ])
    func malformed(text: String) {
        let error = #expect(throws: ProbeError.self) { try NetDevSnapshot(procNetDev: text, path: "/x/net/dev") }
        #expect(error?.file == "/x/net/dev")
        #expect(error?.code == .malformed)
    }
}

@Suite("os-release")
struct OSReleaseTests {
    @Test func prettyName() throws {
        let debian = """
            PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
            NAME="Debian GNU/Linux"
            VERSION_ID="12"
            ID=debian
            HOME_URL="https://www.debian.org/"

            """
        #expect(try OSRelease.prettyName(osRelease: debian) == "Debian GNU/Linux 12 (bookworm)")
    }

    @Test(arguments: [
        ("PRETTY_NAME='Rocky Linux 9.3 (Blue Onyx)'\n", "Rocky Linux 9.3 (Blue Onyx)"),
        ("# comment\nPRETTY_NAME=Alpine\n", "Alpine"),
        ("PRETTY_NAME=\"Say \\\"hi\\\" \\$HOME\"\n", "Say \"hi\" $HOME"),
        ("NAME=\"Fedora Linux\"\nID=fedora\n", "Fedora Linux"),
        ("ID=unknown\n", "Linux"),
    ])
    func quotingAndFallbacks(text: String, expected: String) throws {
        #expect(try OSRelease.prettyName(osRelease: text) == expected)
    }

    @Test func unterminatedQuoteIsAnError() {
        let error = #expect(throws: ProbeError.self) {
            try OSRelease.prettyName(osRelease: "PRETTY_NAME=\"Ubuntu 24.04\n", path: "/usr/lib/os-release")
        }
        #expect(error?.file == "/usr/lib/os-release")
        #expect(error?.code == .malformed)
    }
}
