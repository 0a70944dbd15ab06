import Foundation
import Logging
import NebulaCommon
import NebulaModel
import NebulaRPC
import NebulaWire
import Synchronization

public enum NebulaNodeVersion {
    public static let string = "0.1.0"
}

/// Everything `nebula-node join` needs. The token is never logged.
public struct AgentConfiguration: Sendable {
    /// Coordinator address, `host:port`.
    public var coordinator: String
    public var token: String
    /// Stable node id (the hostname by default).
    public var nodeId: String
    /// Where the agent keeps its files (shard cache later); its disk is the one reported.
    public var dataDirectory: String
    public var labels: [String: String] = [:]
    public var tls: RPCTLS?
    /// The CA file and server name behind `tls`, passed on to the job ranks this agent launches.
    public var tlsCAPath: String?
    public var tlsServerName: String?
    /// The address other machines reach this node at (informational; the hostname by default).
    public var advertiseAddress: String
    /// Health samples kept while the coordinator is unreachable (oldest dropped beyond this).
    public var maxBufferedSamples = 3600
    /// Log records kept while the coordinator is unreachable.
    public var maxBufferedLogs = 20_000
    public var logShipInterval: Duration = .seconds(1)
    /// How job attempts start their ranks (Note [Launching under Slurm]); `.auto` picks srun when the
    /// agent runs inside a Slurm allocation.
    public var launcher: JobLaunchMethod = .auto

    public init(coordinator: String, token: String, nodeId: String, dataDirectory: String, advertiseAddress: String) {
        self.coordinator = coordinator
        self.token = token
        self.nodeId = nodeId
        self.dataDirectory = dataDirectory
        self.advertiseAddress = advertiseAddress
    }
}

/// Buffers the agent's own log records until they are shipped.
public final class AgentLogBuffer: LogSink {
    private struct State {
        var records: [LogRecord] = []
        var seq: UInt64 = 0
        var dropped = 0
    }
    private let state = Mutex(State())
    private let nodeId: String
    private let capacity: Int

    public init(nodeId: String, capacity: Int = 20_000) {
        self.nodeId = nodeId
        self.capacity = capacity
    }

    public func receive(level: Logger.Level, label: String, message: String, metadata: [String: String], timeUnixMs: Int64) {
        state.withLock { s in
            s.seq += 1
            s.records.append(LogRecord(timeUnixMs: timeUnixMs, level: LogLevel(rawValue: level.rawValue) ?? .info,
                                       nodeId: nodeId, source: label, message: message, metadata: metadata, seq: s.seq))
            if s.records.count > capacity {
                s.dropped += s.records.count - capacity
                s.records.removeFirst(s.records.count - capacity)
            }
        }
    }

    /// Up to `max` records, oldest first, without removing them.
    func peek(max: Int) -> [LogRecord] { state.withLock { Array($0.records.prefix(max)) } }

    /// Removes records up to and including `seq` (after they were shipped).
    func acknowledge(through seq: UInt64) { state.withLock { $0.records.removeAll { $0.seq <= seq } } }

    public var pending: Int { state.withLock { $0.records.count } }
}

/// The node agent: registers, heartbeats health samples, follows its command stream, ships its logs,
/// retries with backoff while the coordinator is away, and leaves cleanly when stopped.
public actor NodeAgent {
    public let configuration: AgentConfiguration
    private let probe: SystemProbe
    private let channel: RPCChannel
    private let logs: AgentLogBuffer
    private let logger: Logger
    private var session: UInt64 = 0
    private var heartbeatInterval: Duration = .seconds(1)
    private var pendingSamples: [HealthSample] = []
    private var seq: UInt64 = 0
    private var drained = false
    private let startedUnixMs = nowUnixMs()
    private let launcher: JobLauncher

    public init(configuration: AgentConfiguration, logs: AgentLogBuffer, logger: Logger) throws {
        self.configuration = configuration
        self.logs = logs
        self.logger = logger
        try FileManager.default.createDirectory(atPath: configuration.dataDirectory, withIntermediateDirectories: true)
        self.probe = SystemProbe(diskPath: configuration.dataDirectory, logger: logger)
        self.channel = try RPCChannel(configuration: .init(target: configuration.coordinator, tls: configuration.tls,
                                                           metadata: .bearer(configuration.token)))
        self.launcher = JobLauncher(configuration: configuration, channel: channel, logger: logger)
    }

    /// Runs until the task is cancelled, then leaves the cluster.
    public func run() async {
        let resources = await probe.resources(labels: configuration.labels)
        logger.info("node agent starting", metadata: [
            "node.id": "\(configuration.nodeId)", "coordinator": "\(configuration.coordinator)",
            "node.cpus": "\(resources.cpuCores)", "node.gpus": "\(resources.gpus.count)",
            "node.memory_bytes": "\(resources.memoryTotalBytes)",
        ])
        let shipper = Task { await shipLogsLoop() }
        while !Task.isCancelled {
            guard await registerWithRetry(resources) else { break }
            let commands = Task { await followCommands(session: session) }
            await heartbeatLoop()
            commands.cancel()
        }
        shipper.cancel()
        await launcher.stopAll()
        // This task is cancelled by now, which would cancel the goodbye calls at once: make them in a
        // task of their own.
        await Task { await self.leave() }.value
        channel.close()
    }

    // MARK: Registration

    private func registerWithRetry(_ resources: NodeResources) async -> Bool {
        var backoff = Backoff(base: .milliseconds(200), cap: .seconds(5))
        var failures = 0
        while !Task.isCancelled {
            let request = RegisterRequest(nodeId: configuration.nodeId, agentVersion: NebulaNodeVersion.string,
                                          resources: resources, address: configuration.advertiseAddress,
                                          startedUnixMs: startedUnixMs)
            do {
                let response = try await channel.unary(NodeServicePath.register, request, as: RegisterResponse.self,
                                                       timeout: .seconds(10))
                session = response.session
                heartbeatInterval = .milliseconds(max(50, response.heartbeatIntervalMs))
                drained = response.drained
                logger.info("registered with the coordinator", metadata: [
                    "node.session": "\(session)", "heartbeat.interval_ms": "\(response.heartbeatIntervalMs)",
                    "node.drained": "\(response.drained)",
                ])
                return true
            } catch let status as RPCStatus where status.code == .unauthenticated || status.code == .invalidArgument {
                // Retrying cannot fix a wrong token or a bad node id: say so loudly, keep trying slowly.
                logger.error("the coordinator refused the registration", metadata: ["error": "\(status)"])
                try? await Task.sleep(for: .seconds(5))
            } catch {
                failures += 1
                let delay = backoff.next()
                if failures == 1 || failures % 10 == 0 {
                    logger.warning("coordinator unreachable; retrying", metadata: [
                        "error": "\(error)", "retry.in": "\(delay)", "attempts": "\(failures)",
                    ])
                }
                try? await Task.sleep(for: delay)
            }
        }
        return false
    }

    // MARK: Heartbeats

    /// Returns when the coordinator asks for a new registration, or on cancellation.
    private func heartbeatLoop() async {
        var failures = 0
        let clock = ContinuousClock()
        var next = clock.now
        while !Task.isCancelled {
            seq += 1
            pendingSamples.append(await probe.sample(seq: seq))
            if pendingSamples.count > configuration.maxBufferedSamples {
                pendingSamples.removeFirst(pendingSamples.count - configuration.maxBufferedSamples)
            }
            let batch = Array(pendingSamples.prefix(500))
            do {
                let response = try await channel.unary(
                    NodeServicePath.heartbeat, HeartbeatRequest(nodeId: configuration.nodeId, session: session, samples: batch),
                    as: HeartbeatResponse.self, timeout: max(heartbeatInterval * 3, .seconds(2)))
                pendingSamples.removeFirst(min(batch.count, pendingSamples.count))
                if failures > 0 {
                    logger.info("coordinator reachable again", metadata: ["missed.heartbeats": "\(failures)"])
                    failures = 0
                }
                if response.reregister {
                    logger.notice("the coordinator asked for a new registration")
                    return
                }
                drained = response.drained
            } catch {
                failures += 1
                if failures == 1 || failures % 30 == 0 {
                    logger.warning("heartbeat failed; samples are kept until the coordinator is back", metadata: [
                        "error": "\(error)", "samples.pending": "\(pendingSamples.count)",
                    ])
                }
            }
            next = next.advanced(by: heartbeatInterval)
            if next < clock.now { next = clock.now }
            try? await Task.sleep(until: next, clock: clock)
        }
    }

    // MARK: Commands

    private func followCommands(session: UInt64) async {
        var backoff = Backoff(base: .milliseconds(200), cap: .seconds(5))
        while !Task.isCancelled, session == self.session {
            do {
                let stream = try channel.serverStreaming(NodeServicePath.assignments,
                                                         NodeSessionRef(nodeId: configuration.nodeId, session: session),
                                                         as: NodeCommand.self)
                for try await command in stream {
                    backoff.reset()
                    handle(command)
                }
            } catch let status as RPCStatus where status.code == .failedPrecondition {
                return  // the session is no longer current; the heartbeat loop will re-register
            } catch {
                if Task.isCancelled { return }
                logger.debug("command stream ended", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: backoff.next())
        }
    }

    private func handle(_ command: NodeCommand) {
        switch command.kind {
        case .drain(let reason):
            drained = true
            logger.notice("node drained by the coordinator: no new work will be placed here",
                          metadata: ["reason": "\(reason)", "command.id": "\(command.id)"])
        case .resume:
            drained = false
            logger.notice("node resumed by the coordinator", metadata: ["command.id": "\(command.id)"])
        case .launch(let launch):
            let launcher = self.launcher
            Task { await launcher.launch(launch) }
        case .stop(let jobId, let attempt, let reason):
            let launcher = self.launcher
            Task { await launcher.stop(jobId: jobId, attempt: attempt, reason: reason) }
        }
    }

    // MARK: Logs

    private func shipLogsLoop() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: configuration.logShipInterval)
            await shipLogs()
        }
    }

    /// Ships what is buffered; records stay buffered when the coordinator cannot take them.
    private func shipLogs() async {
        let session = self.session
        guard session != 0 else { return }
        while true {
            let records = logs.peek(max: 1000)
            guard let last = records.last else { return }
            do {
                let call = try channel.clientStreaming(NodeServicePath.shipLogs, timeout: .seconds(10))
                try await call.send(LogBatch(nodeId: configuration.nodeId, session: session, records: records))
                _ = try await call.finish(as: ShipLogsResponse.self)
                logs.acknowledge(through: last.seq)
            } catch {
                return
            }
            if records.count < 1000 { return }
        }
    }

    // MARK: Leaving

    private func leave() async {
        guard session != 0 else { return }
        logger.info("leaving the cluster")
        await shipLogs()
        do {
            _ = try await channel.unary(NodeServicePath.leave,
                                        LeaveRequest(nodeId: configuration.nodeId, session: session,
                                                     reason: "agent stopped (SIGTERM)"),
                                        as: Empty.self, timeout: .seconds(3))
        } catch {
            logger.warning("could not say goodbye to the coordinator", metadata: ["error": "\(error)"])
        }
    }
}
