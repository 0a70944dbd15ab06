import Foundation
@testable import NebulaCLI
import NebulaModel
import Testing

@Suite("CLI formatting")
struct CLIFormattingTests {
    static let now: Int64 = 1_800_000_000_000

    static func node(_ id: String, state: NodeState, drained: Bool = false, reason: String = "", gpus: [GpuSample] = [],
                     lastSeenAgo: Int64 = 2_000) -> NodeInfo {
        let resources = NodeResources(hostname: "h-\(id)", cpuCores: 16, memoryTotalBytes: 64 << 30, diskTotalBytes: 1 << 40,
                                      gpus: gpus.map { GpuInfo(index: $0.index, name: "A100", uuid: "GPU-\($0.index)",
                                                               memoryTotalBytes: $0.memoryTotalBytes) },
                                      os: "Debian", labels: ["rack": "a"])
        let sample = HealthSample(timeUnixMs: now - lastSeenAgo, cpuPercent: 50, load1: 3.25, load5: 2, load15: 1,
                                  memoryUsedBytes: 16 << 30, memoryTotalBytes: 64 << 30, diskFreeBytes: 1 << 39,
                                  netRxBytesPerSec: 1000, netTxBytesPerSec: 2000, gpus: gpus, seq: 9)
        return NodeInfo(nodeId: id, address: "10.0.0.1", state: state, drained: drained, reason: reason,
                        resources: resources, lastSeenUnixMs: now - lastSeenAgo, registeredUnixMs: now - 3_600_000,
                        latest: sample, agentVersion: "0.1.0", session: 42)
    }

    @Test func tableHasSinfoLikeColumnsAndStarsForSilentNodes() {
        let gpus = [GpuSample(index: 0, utilizationPercent: 80, memoryUsedBytes: 1 << 30, memoryTotalBytes: 40 << 30),
                    GpuSample(index: 1, utilizationPercent: 40, memoryUsedBytes: 1 << 30, memoryTotalBytes: 40 << 30)]
        let nodes = [
            Self.node("gpu-1", state: .up, gpus: gpus),
            Self.node("cpu-2", state: .down, reason: "no heartbeat for 10.2 s", lastSeenAgo: 300_000),
            Self.node("cpu-3", state: .up, drained: true, reason: "disk swap"),
            Self.node("cpu-4", state: .suspect, drained: true, reason: "disk swap"),
        ]
        let text = NodesView.table(nodes, now: Self.now).render()
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines[0].split(separator: " ") == ["NODE", "STATE", "CPUS", "CPU_LOAD", "MEMORY", "FREE_MEM", "GPUS",
                                                   "GPU_UTIL", "LAST_SEEN", "REASON"])
        #expect(lines[1].split(separator: " ", omittingEmptySubsequences: true)
                    == ["gpu-1", "up", "16", "3.25", "65536", "49152", "2", "60%", "2s", "ago", "none"])
        #expect(lines[2].contains("down*"))
        #expect(lines[2].contains("5m ago"))
        #expect(lines[2].hasSuffix("no heartbeat for 10.2 s"))
        #expect(lines[3].contains(" drain "))
        #expect(lines[4].contains("drain*"))
        // Columns line up: every STATE cell starts where the header's does.
        let column = lines[0].range(of: "STATE")!.lowerBound.utf16Offset(in: lines[0])
        for l in lines.dropFirst() { #expect(l[l.index(l.startIndex, offsetBy: column)] != " ") }
    }

    @Test func csvQuotesWhatNeedsQuoting() {
        let table = TextTable(header: ["A", "B"], rows: [["plain", "has,comma"], ["say \"hi\"", "line\nbreak"]])
        #expect(table.csv() == "A,B\r\nplain,\"has,comma\"\r\n\"say \"\"hi\"\"\",\"line\nbreak\"\r\n")
    }

    @Test func jsonIsSnakeCaseAndComplete() throws {
        let json = try NodesView.json([Self.node("n1", state: .suspect, reason: "missed 3 heartbeats")], now: Self.now)
        let parsed = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]])
        #expect(parsed.count == 1)
        let n = parsed[0]
        #expect(n["node_id"] as? String == "n1")
        #expect(n["state"] as? String == "suspect")
        #expect(n["responding"] as? Bool == false)
        #expect(n["reason"] as? String == "missed 3 heartbeats")
        #expect(n["cpus"] as? Int == 16)
        #expect(n["last_seen_seconds_ago"] as? Int == 2)
        let latest = try #require(n["latest"] as? [String: Any])
        #expect(latest["cpu_percent"] as? Double == 50)
        #expect((n["labels"] as? [String: String]) == ["rack": "a"])
    }

    @Test(arguments: [(Int64(0), "0s ago"), (59_000, "59s ago"), (125_000, "2m ago"), (7_300_000, "2h ago"),
                      (200_000_000, "2d ago")])
    func relativeTimes(delta: Int64, expected: String) {
        #expect(ago(Self.now - delta, now: Self.now) == expected)
    }

    @Test func neverSeenIsADash() { #expect(ago(0, now: Self.now) == "-") }

    @Test func healthSummaryMentionsTheDatabase() {
        var h = ClusterHealth()
        h.nodesTotal = 3
        h.nodesUp = 2
        h.nodesDown = 1
        h.databaseOK = false
        h.spooledRecords = 12
        h.coordinatorVersion = "0.1.0"
        let text = HealthView.text(h, now: Self.now)
        #expect(text.contains("UNREACHABLE"))
        #expect(text.contains("12 records waiting"))
        #expect(text.contains("3 total: 2 up, 0 suspect, 1 down"))
    }

    @Test func logLinesNameTheirOrigin() {
        let r = LogRecord(timeUnixMs: Self.now, level: .warning, nodeId: "", source: "nebula.coordinator",
                          message: "node state changed", metadata: ["node.id": "n2"], seq: 1)
        #expect(LogsView.line(r).hasSuffix("coordinator WARNING nebula.coordinator: node state changed node.id=n2"))
    }

    /// `nebula build`'s summary: fits of a few milliseconds read as milliseconds, not "0.00s"; the
    /// best model is starred; no line ends in spaces.
    @Test func builderLeaderboard() {
        let run: [String: Any] = [
            "id": "build-1", "state": "completed", "task": "multiclass", "task_reason": "3 classes", "eval_metric": "accuracy",
            "leaderboard": [
                ["model": "GBDT", "score_val": 0.98551, "fit_time": 0.0042, "pred_time_val": 0.0009, "best": true],
                ["model": "NeuralNetMLP", "score_val": 0.9, "fit_time": 3.561, "pred_time_val": 0.25],
            ],
            "best": ["model": "GBDT", "metrics": ["accuracy": 0.98551]], "report_url": "/r",
        ]
        let text = Build.describe(run)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines.contains { $0.hasPrefix("* GBDT") && $0.contains("0.9855") && $0.contains("4.2ms") && $0.contains("0.9ms") }, "\(text)")
        #expect(lines.contains { $0.hasPrefix("  NeuralNetMLP") && $0.contains("3.56s") && $0.contains("0.25s") }, "\(text)")
        #expect(!lines.contains { $0.hasSuffix(" ") }, "\(text)")
        #expect(text.contains("predict: nebula predict --model build-1 FILE.csv"))
        #expect(Build.describe(["id": "build-2", "state": "failed", "error": "no node"]) == "run build-2 failed: no node")
    }
}
