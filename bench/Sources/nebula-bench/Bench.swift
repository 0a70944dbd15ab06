import ArgumentParser
import Foundation
import Logging
import NebulaCommon
import NebulaModel
import NebulaRPC
import NebulaStore
import NebulaWire
import Synchronization

@main
struct NebulaBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nebula-bench",
        abstract: "Benchmarks of the cluster backbone (driven by bench/heartbeat-fanin.sh).",
        subcommands: [FanIn.self, EchoServer.self, Unary.self])
}

/// Simulated agents (many per process) heartbeating at a fixed rate against one coordinator.
struct FanIn: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Register N simulated nodes and heartbeat each at --rate Hz; print one JSON line of results.")
    @Option(help: "Coordinator host:port.") var coordinator: String
    @Option(help: "File holding the join token.") var tokenFile: String
    @Option(help: "Simulated nodes.") var nodes = 1000
    @Option(help: "Heartbeats per node per second.") var rate = 1.0
    @Option(help: "Measured seconds (after a warm-up of one period).") var seconds = 20.0
    @Option(help: "Channels to spread the nodes over.") var channels = 4
    @Option(help: "PID of the coordinator, for its CPU time.") var coordinatorPid: Int32?
    @Option(help: "Database URL, for the rows/s written.") var databaseURL: String?

    func run() async throws {
        let token = try readSecretFile(tokenFile, what: "join token")
        let pool = try (0..<max(1, channels)).map { _ in
            try RPCChannel(configuration: .init(target: coordinator, metadata: .bearer(token)))
        }
        let resources = NodeResources(hostname: "sim", cpuCores: 8, memoryTotalBytes: 32 << 30, diskTotalBytes: 1 << 40)
        // Register every node (64 at a time).
        var sessions = [UInt64](repeating: 0, count: nodes)
        try await withThrowingTaskGroup(of: (Int, UInt64).self) { group in
            var next = 0
            func add() {
                let i = next
                next += 1
                group.addTask {
                    let r = try await pool[i % pool.count].unary(
                        NodeServicePath.register,
                        RegisterRequest(nodeId: String(format: "sim-%05d", i), agentVersion: "bench", resources: resources,
                                        address: "sim", startedUnixMs: nowUnixMs()),
                        as: RegisterResponse.self, timeout: .seconds(30))
                    return (i, r.session)
                }
            }
            for _ in 0..<min(64, nodes) { add() }
            while let (i, s) = try await group.next() {
                sessions[i] = s
                if next < nodes { add() }
            }
        }
        let period = Duration.milliseconds(Int64(1000 / rate))
        let clock = ContinuousClock()
        let start = clock.now + period  // warm-up: the first period is not measured
        let end = start + .milliseconds(Int64(seconds * 1000))
        let stats = Stats()

        let cpuBefore = Task {
            try await Task.sleep(until: start, clock: clock)
            return coordinatorPid.map(cpuSeconds)
        }
        let quiet = Logger(label: "bench", factory: { _ in SwiftLogNoOpLogHandler() })
        let db = databaseURL.map { PostgresClient(url: $0, logger: quiet) }
        var rowsAfter = 0
        let rowsBefore = Task {
            try await Task.sleep(until: start, clock: clock)
            return try await db?.query("SELECT count(*) AS n FROM node_health")[0].int("n") ?? 0
        }

        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<nodes {
                let channel = pool[i % pool.count]
                let id = String(format: "sim-%05d", i)
                let session = sessions[i]
                // Spread the nodes evenly over the period.
                let phase = clock.now + period * (Double(i) / Double(nodes))
                group.addTask {
                    var seq: UInt64 = 0
                    var tick = phase
                    while tick < end {
                        try await Task.sleep(until: tick, clock: clock)
                        seq += 1
                        let sample = HealthSample(timeUnixMs: nowUnixMs(), cpuPercent: 12.5, load1: 0.5, load5: 0.4, load15: 0.3,
                                                  memoryUsedBytes: 1 << 30, memoryTotalBytes: 32 << 30, diskFreeBytes: 1 << 39,
                                                  netRxBytesPerSec: 1000, netTxBytesPerSec: 1000, seq: seq)
                        let sent = clock.now
                        do {
                            _ = try await channel.unary(NodeServicePath.heartbeat,
                                                        HeartbeatRequest(nodeId: id, session: session, samples: [sample]),
                                                        as: HeartbeatResponse.self, timeout: .seconds(10))
                            let d = (clock.now - sent).components
                            let ms = Double(d.seconds) * 1000 + Double(d.attoseconds) / 1e15
                            if sent >= start { stats.state.withLock { $0.latencies.append(ms) } }
                        } catch {
                            if sent >= start { stats.state.withLock { $0.errors += 1 } }
                        }
                        tick = tick + period
                    }
                }
            }
            try await group.waitForAll()
        }
        let cpuAfter = coordinatorPid.map(cpuSeconds)  // before the wait for the last batch: CPU of the measured window
        if let db {
            try await Task.sleep(for: .seconds(2))  // let the last batch land
            rowsAfter = try await db.query("SELECT count(*) AS n FROM node_health")[0].int("n")
            await db.close()
        }
        pool.forEach { $0.close() }
        let (latencies, errors) = stats.state.withLock { ($0.latencies.sorted(), $0.errors) }
        func pct(_ p: Double) -> Double { latencies.isEmpty ? 0 : latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))] }
        var result: [String: Any] = [
            "nodes": nodes, "offered_per_s": Double(nodes) * rate, "seconds": seconds,
            "heartbeats_per_s": Double(latencies.count) / seconds, "errors": errors,
            "p50_ms": pct(0.50), "p99_ms": pct(0.99), "max_ms": latencies.last ?? 0,
        ]
        if let b = try await cpuBefore.value, let a = cpuAfter {
            result["coordinator_cpu_percent"] = (a - b) / seconds * 100
        }
        if db != nil { result["postgres_rows_per_s"] = Double(rowsAfter - (try await rowsBefore.value)) / seconds }
        print(String(decoding: try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys]), as: UTF8.self))
    }
}

final class Stats: Sendable {
    let state = Mutex((latencies: [Double](), errors: 0))
}

/// utime + stime of a process, in seconds.
func cpuSeconds(_ pid: Int32) -> Double {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = text.lastIndex(of: ")") else { return 0 }
    let fields = text[text.index(after: close)...].split(separator: " ")
    // After the command name: state is field 3, utime 14, stime 15 (1-based) => indices 11, 12 here.
    guard fields.count > 12, let u = Double(fields[11]), let s = Double(fields[12]) else { return 0 }
    return (u + s) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// An echo server on the RPC layer: `/bench.Echo/Echo` answers its request bytes.
struct EchoServer: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Serve /bench.Echo/Echo until SIGTERM.")
    @Option(help: "Listen address.") var listen = "127.0.0.1:0"

    func run() async throws {
        let server = RPCServer(configuration: .init(address: listen),
                               methods: [.unary("/bench.Echo/Echo") { (m: RawMessage, _) in m }],
                               logger: Logger(label: "bench.echo"))
        try server.start()
        FileHandle.standardOutput.write(Data("listening \(server.port)\n".utf8))
        _ = await waitForTerminationSignal()
        await server.shutdown()
    }
}

/// Sequential unary round trips with a payload, like the grpcio client in bench/grpc_unary.py.
struct Unary: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Sequential unary calls; prints calls/s as JSON.")
    @Option(help: "Server host:port.") var target: String
    @Option(help: "Payload bytes.") var bytes = 1024
    @Option(help: "Measured seconds.") var seconds = 5.0

    func run() async throws {
        let channel = try RPCChannel(configuration: .init(target: target))
        let payload = RawMessage([UInt8](repeating: 7, count: bytes))
        for _ in 0..<200 { _ = try await channel.unary("/bench.Echo/Echo", payload, as: RawMessage.self) }
        let clock = ContinuousClock()
        let end = clock.now + .milliseconds(Int64(seconds * 1000))
        var calls = 0
        let start = clock.now
        while clock.now < end {
            let r = try await channel.unary("/bench.Echo/Echo", payload, as: RawMessage.self)
            guard r.bytes.count == bytes else { throw ValidationError("echo returned \(r.bytes.count) bytes") }
            calls += 1
        }
        let elapsed = Double((clock.now - start).wholeMilliseconds) / 1000
        channel.close()
        print("{\"client\":\"swift\",\"calls_per_s\":\(Double(calls) / elapsed)}")
    }
}
