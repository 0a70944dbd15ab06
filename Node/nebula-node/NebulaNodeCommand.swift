import ArgumentParser
import Foundation
import Logging
import NebulaCommon
import NebulaModel
import NebulaNode
import NebulaRPC
import NebulaSystem
import NebulaWorker

@main
struct NebulaNodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nebula-node",
        abstract: "The Nebula node agent: joins a cluster, reports health, runs work.",
        version: NebulaNodeVersion.string,
        subcommands: [Join.self, WorkerCommand.self, Probe.self, Versions.self])
}

struct Join: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Join a cluster and stay in it (foreground; SIGTERM leaves cleanly).",
        discussion: """
            The join token comes from --token-file, --token or NEBULA_JOIN_TOKEN (prefer the file: command \
            lines are visible to other users). While the coordinator is unreachable the agent keeps its \
            health samples and logs and retries with backoff; it registers again when the coordinator returns.
            """)

    @Option(help: "Coordinator address, host:port (default: $NEBULA_COORDINATOR).") var coordinator: String?
    @Option(help: "File holding the cluster join token.") var tokenFile: String?
    @Option(help: "The cluster join token (prefer --token-file).") var token: String?
    @Option(help: "Node id (default: the hostname).") var name: String?
    @Option(help: "Data directory of this agent.") var dataDir = ".nebula/node"
    @Option(help: "Labels, e.g. rack=a,gpu=a100.") var labels: String?
    @Option(help: "Address other machines reach this node at (default: the hostname).") var advertise: String?
    @Option(help: "CA certificate (PEM) to verify a TLS coordinator.") var tlsCA: String?
    @Option(help: "Expected name in the coordinator's certificate (default: the host of --coordinator).")
    var tlsServerName: String?
    @Option(help: "trace, debug, info, notice, warning, error or critical.") var logLevel = "info"
    @Option(help: "How job ranks start: mpirun, srun, or auto (srun inside a Slurm allocation, else mpirun).")
    var launcher = "auto"

    func run() async throws {
        let env = ProcessInfo.processInfo.environment
        guard let level = Logger.Level(name: logLevel) else { throw ValidationError("unknown --log-level '\(logLevel)'") }
        guard let method = JobLaunchMethod(rawValue: launcher) else {
            throw ValidationError("unknown --launcher '\(launcher)': use mpirun, srun or auto")
        }
        guard let target = coordinator ?? env["NEBULA_COORDINATOR"], !target.isEmpty else {
            throw ValidationError("no coordinator: pass --coordinator HOST:PORT or set NEBULA_COORDINATOR")
        }
        let secret: String
        if let tokenFile {
            secret = try readSecretFile(tokenFile, what: "join token")
        } else if let t = token ?? env["NEBULA_JOIN_TOKEN"], !t.isEmpty {
            secret = t
        } else {
            throw ValidationError("no join token: pass --token-file FILE, --token or set NEBULA_JOIN_TOKEN")
        }
        let host = ProcessInfo.processInfo.hostName
        let nodeId = name ?? host
        let labelMap: [String: String]
        do { labelMap = try parseLabels(labels) } catch { throw ValidationError("\(error)") }

        let buffer = AgentLogBuffer(nodeId: nodeId)
        LoggingSystem.bootstrap { label in
            MultiplexLogHandler([ConsoleLogHandler(label: label, level: level),
                                 ForwardingLogHandler(label: label, level: max(level, .info), sink: buffer)])
        }
        let logger = Logger(label: "nebula.node")

        var config = AgentConfiguration(coordinator: target, token: secret, nodeId: nodeId, dataDirectory: dataDir,
                                        advertiseAddress: advertise ?? host)
        config.labels = labelMap
        config.launcher = method
        if let tlsCA {
            config.tls = try RPCTLS.client(caPath: tlsCA, serverNameOverride: tlsServerName)
            config.tlsCAPath = URL(fileURLWithPath: tlsCA).standardizedFileURL.path
            config.tlsServerName = tlsServerName
        }
        config.dataDirectory = URL(fileURLWithPath: dataDir).standardizedFileURL.path
        let agent = try NodeAgent(configuration: config, logs: buffer, logger: logger)
        let running = Task { await agent.run() }
        let signal = await waitForTerminationSignal()
        logger.info("received signal, leaving", metadata: ["signal": "\(signal)"])
        running.cancel()
        await running.value
    }
}

struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "One rank of a training job (started by mpirun on behalf of a node agent, not by hand).",
        discussion: """
            Joins the job at the coordinator, fetches this rank's shard into the node's cache, runs a preflight \
            allreduce, trains with the other ranks (gradients averaged with MPI allreduce), reports progress and \
            checkpoints, and rank 0 reports the holdout metrics. The join token comes from NEBULA_JOIN_TOKEN.
            """)

    @Option(help: "Coordinator address, host:port.") var coordinator: String
    @Option(help: "Job id.") var job: String
    @Option(help: "Attempt number.") var attempt: Int
    @Option(help: "The job's node ids in rank order, comma-separated.") var nodes: String
    @Option(help: "Ranks per node.") var slots = 1
    @Option(help: "The node's shard cache directory.") var cacheDir: String
    @Option(help: "CA certificate (PEM) of a TLS coordinator.") var tlsCA: String?
    @Option(help: "Expected name in the coordinator's certificate.") var tlsServerName: String?
    @Option(help: "trace, debug, info, notice, warning, error or critical.") var logLevel = "info"

    func run() async throws {
        guard let level = Logger.Level(name: logLevel) else { throw ValidationError("unknown --log-level '\(logLevel)'") }
        guard let token = ProcessInfo.processInfo.environment["NEBULA_JOIN_TOKEN"], !token.isEmpty else {
            throw ValidationError("no join token: the worker reads NEBULA_JOIN_TOKEN (the node agent sets it)")
        }
        LoggingSystem.bootstrap { label in ConsoleLogHandler(label: label, level: level) }
        let logger = Logger(label: "nebula.worker")
        var config = WorkerConfiguration(coordinator: coordinator, token: token, jobId: job, attempt: attempt,
                                         nodeIds: nodes.split(separator: ",").map(String.init), slotsPerNode: slots,
                                         cacheDirectory: cacheDir)
        if let tlsCA { config.tls = try RPCTLS.client(caPath: tlsCA, serverNameOverride: tlsServerName) }
        do {
            try await Worker.run(config, logger: logger)
        } catch {
            logger.error("worker failed", metadata: ["job.id": "\(job)", "error": "\(error)"])
            throw ExitCode(1)
        }
    }
}

struct Probe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print what this machine would report (resources and one health sample) as JSON.")
    @Option(help: "Data directory whose disk is reported.") var dataDir = "."

    func run() async throws {
        let probe = SystemProbe(diskPath: dataDir, logger: Logger(label: "nebula.node.probe"))
        let resources = await probe.resources(labels: [:])
        _ = await probe.sample(seq: 0)
        try await Task.sleep(for: .milliseconds(500))
        let sample = await probe.sample(seq: 1)
        struct Report: Encodable { let resources: NodeResources; let sample: HealthSample }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        print(String(decoding: try encoder.encode(Report(resources: resources, sample: sample)), as: UTF8.self))
    }
}

struct Versions: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the versions of Nebula and the C libraries it links.")
    func run() {
        print("nebula-node \(NebulaNodeVersion.string)")
        for (name, version) in LibraryVersions.all() { print("  \(name): \(version)") }
    }
}
