import Foundation
import Logging
import NebulaCommon
import NebulaModel
import NebulaRPC
import NebulaWire
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

// Note [One MPI world per job attempt]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// The coordinator sends a launch command to the first node of a job's placement only. That agent
// runs `mpirun` over the job's hosts; mpirun starts one `nebula-node worker` per rank (on other
// machines through its own launcher, ssh by default, as usual for OpenMPI) and the ranks call back
// into the coordinator. When a rank dies, mpirun ends the whole world and exits non-zero; the agent
// reports that exit, and the coordinator restarts the job. mpirun's flags: --oversubscribe (more
// ranks than cores is fine for tests and small machines), --bind-to none (a rank may use several
// BLAS threads), --allow-run-as-root when the agent runs as root, and on one machine
// `--mca btl self,vader` (shared memory; TCP would bind every interface). The join token reaches the
// ranks through the environment (`-x NEBULA_JOIN_TOKEN`), never the command line.

// Note [Launching under Slurm]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// When the agents run inside a Slurm allocation (SLURM_JOB_ID in the agent's environment, or
// `nebula-node join --launcher srun`), an attempt is a job step: `srun` starts the same
// `nebula-node worker` command line on the job's hosts, one task per slot
// (`--nodes N --ntasks N·slots --ntasks-per-node slots --nodelist h1,h2`), and the ranks' MPI_Init
// wires up through Slurm's PMIx plugin (`--mpi=pmix`, which needs a Slurm built with PMIx and an
// OpenMPI built against it: check `srun --mpi=list`). `--kill-on-bad-exit=1` ends the step when a
// rank dies, as mpirun does, so the agent sees the attempt end and the coordinator restarts it;
// `--export=ALL` passes the join token and OPENBLAS_NUM_THREADS on from the environment (never the
// command line); `--job-name` names the step after the job and attempt for `squeue`/`sacct`. Hosts
// are the placement's node addresses, which must be the Slurm node names of the allocation. Stopping
// an attempt sends SIGTERM to srun, which forwards it to the tasks. Tested as a command line only:
// there is no Slurm on the machines this was written on.

/// How an agent starts the ranks of a job attempt.
public enum JobLaunchMethod: String, Sendable, CaseIterable {
    case auto, mpirun, srun

    /// `.auto` resolved: srun inside a Slurm allocation (SLURM_JOB_ID set), else mpirun.
    public func resolved(environment: [String: String]) -> JobLaunchMethod {
        guard self == .auto else { return self }
        return (environment["SLURM_JOB_ID"] ?? "").isEmpty ? .mpirun : .srun
    }
}

/// Runs job attempts with mpirun (or srun, Note [Launching under Slurm]) on behalf of the coordinator
/// and reports how they end.
public actor JobLauncher {
    struct Running {
        let process: Process
        let attempt: Int
        let tail: OutputTail
    }

    private let configuration: AgentConfiguration
    private let channel: RPCChannel
    private let logger: Logger
    private var running: [String: Running] = [:]
    /// The nebula-node executable the ranks run.
    private let executable: String
    /// The program that starts the ranks: mpirun or srun (or a path to one).
    private let mpirun: String
    private let method: JobLaunchMethod

    public init(configuration: AgentConfiguration, channel: RPCChannel, logger: Logger,
                executable: String = JobLauncher.currentExecutable(), launcherProgram: String? = nil) {
        self.configuration = configuration
        self.channel = channel
        self.logger = logger
        self.executable = executable
        method = configuration.launcher.resolved(environment: ProcessInfo.processInfo.environment)
        mpirun = launcherProgram ?? method.rawValue
    }

    public static func currentExecutable() -> String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    /// The mpirun command line of an attempt (pure; tested).
    public static func mpirunArguments(_ launch: LaunchCommand, localHostNames: Set<String>, isRoot: Bool, executable: String,
                                       coordinator: String, cacheDirectory: String, tlsCA: String?,
                                       tlsServerName: String?) -> [String] {
        let slots = max(1, launch.slotsPerNode)
        let local = launch.hosts.allSatisfy { localHostNames.contains($0) }
        var args = ["-np", "\(launch.worldSize)"]
        if local {
            args += ["--host", "localhost:\(launch.worldSize)", "--mca", "btl", "self,vader"]
        } else {
            args += ["--host", launch.hosts.map { "\($0):\(slots)" }.joined(separator: ",")]
        }
        args += ["--oversubscribe", "--bind-to", "none", "-x", "NEBULA_JOIN_TOKEN", "-x", "OPENBLAS_NUM_THREADS"]
        if isRoot { args.append("--allow-run-as-root") }
        return args + workerArguments(launch, executable: executable, coordinator: coordinator, cacheDirectory: cacheDirectory,
                                      tlsCA: tlsCA, tlsServerName: tlsServerName)
    }

    /// The srun command line of an attempt (pure; tested): the same worker command as under mpirun
    /// (Note [Launching under Slurm]).
    public static func srunArguments(_ launch: LaunchCommand, executable: String, coordinator: String, cacheDirectory: String,
                                     tlsCA: String?, tlsServerName: String?) -> [String] {
        let slots = max(1, launch.slotsPerNode)
        let nodes = max(1, launch.hosts.count)
        let args = ["--nodes", "\(nodes)", "--ntasks", "\(launch.worldSize)", "--ntasks-per-node", "\(slots)",
                    "--nodelist", launch.hosts.joined(separator: ","), "--mpi=pmix", "--kill-on-bad-exit=1", "--export=ALL",
                    "--cpu-bind=none", "--job-name", "nebula-\(launch.jobId)-\(launch.attempt)"]
        return args + workerArguments(launch, executable: executable, coordinator: coordinator, cacheDirectory: cacheDirectory,
                                      tlsCA: tlsCA, tlsServerName: tlsServerName)
    }

    /// `nebula-node worker …`, the same for every launcher.
    static func workerArguments(_ launch: LaunchCommand, executable: String, coordinator: String, cacheDirectory: String,
                                tlsCA: String?, tlsServerName: String?) -> [String] {
        var args = [executable, "worker", "--coordinator", coordinator, "--job", launch.jobId, "--attempt", "\(launch.attempt)",
                    "--nodes", launch.nodeIds.joined(separator: ","), "--slots", "\(max(1, launch.slotsPerNode))",
                    "--cache-dir", cacheDirectory]
        if let tlsCA { args += ["--tls-ca", tlsCA] }
        if let tlsServerName { args += ["--tls-server-name", tlsServerName] }
        return args
    }

    /// The agent's environment without what an MPI runtime around the agent left there (an agent
    /// started from inside an MPI job or a process that called MPI_Init has OMPI_*/PMIX_* variables
    /// that make a new mpirun believe it is a rank of that job and fail at once). The run-as-root pair
    /// is kept.
    public static func launchEnvironment(_ environment: [String: String]) -> [String: String] {
        environment.filter { key, _ in
            if key == "OMPI_ALLOW_RUN_AS_ROOT" || key == "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM" { return true }
            return !(key.hasPrefix("OMPI_") || key.hasPrefix("PMIX_") || key.hasPrefix("ORTE_") || key.hasPrefix("OPAL_"))
        }
    }

    static var localHostNames: Set<String> {
        var names: Set<String> = ["localhost", "127.0.0.1", "::1", ProcessInfo.processInfo.hostName]
        if let short = ProcessInfo.processInfo.hostName.split(separator: ".").first { names.insert(String(short)) }
        return names
    }

    public func launch(_ launch: LaunchCommand) {
        if let current = running[launch.jobId] {
            if current.attempt >= launch.attempt { return }  // a repeated command
            stopProcess(current, reason: "superseded by attempt \(launch.attempt)")
        }
        var local = Self.localHostNames
        local.insert(configuration.advertiseAddress)
        let cache = configuration.dataDirectory + "/shards"
        let arguments = method == .srun
            ? Self.srunArguments(launch, executable: executable, coordinator: configuration.coordinator, cacheDirectory: cache,
                                 tlsCA: configuration.tlsCAPath, tlsServerName: configuration.tlsServerName)
            : Self.mpirunArguments(launch, localHostNames: local, isRoot: getuid() == 0, executable: executable,
                                   coordinator: configuration.coordinator, cacheDirectory: cache,
                                   tlsCA: configuration.tlsCAPath, tlsServerName: configuration.tlsServerName)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [mpirun] + arguments
        var env = Self.launchEnvironment(ProcessInfo.processInfo.environment)
        env["NEBULA_JOIN_TOKEN"] = configuration.token
        env["OPENBLAS_NUM_THREADS"] = env["OPENBLAS_NUM_THREADS"] ?? "1"
        env["OMPI_MCA_rmaps_base_oversubscribe"] = "1"
        process.environment = env
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice
        let tail = OutputTail(lines: 40)
        var jobLogger = logger
        jobLogger[metadataKey: "job.id"] = "\(launch.jobId)"
        jobLogger[metadataKey: "job.attempt"] = "\(launch.attempt)"
        let lineLogger = jobLogger
        pipe.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            if data.isEmpty {
                handle.readabilityHandler = nil
                return
            }
            for line in tail.append(data) { lineLogger.info("\(line)", metadata: ["source": "worker"]) }
        }
        let jobId = launch.jobId, attempt = launch.attempt
        process.terminationHandler = { [weak self] p in
            let code = p.terminationReason == .exit ? Int(p.terminationStatus) : -1
            let signal = p.terminationReason == .uncaughtSignal ? Int(p.terminationStatus) : 0
            Task { await self?.ended(jobId: jobId, attempt: attempt, exitCode: code, signal: signal) }
        }
        do {
            try process.run()
        } catch {
            logger.error("could not start \(mpirun)", metadata: ["job.id": "\(jobId)", "error": "\(error)"])
            Task { await ended(jobId: jobId, attempt: attempt, exitCode: 127, signal: 0,
                               output: "could not start \(mpirun): \(error) (\(method == .srun ? "is Slurm's srun on the PATH?" : "is openmpi-bin installed?"))") }
            return
        }
        running[jobId] = Running(process: process, attempt: attempt, tail: tail)
        jobLogger.info("attempt launched", metadata: ["mpi.size": "\(launch.worldSize)", "hosts": "\(launch.hosts)",
                                                     "command": "\(([mpirun] + arguments).joined(separator: " "))"])
    }

    public func stop(jobId: String, attempt: Int, reason: String) {
        guard let current = running[jobId], current.attempt == attempt else { return }
        stopProcess(current, reason: reason)
    }

    /// SIGTERM to mpirun's process group, SIGKILL after a grace period.
    private func stopProcess(_ r: Running, reason: String) {
        let pid = r.process.processIdentifier
        logger.notice("stopping a job attempt", metadata: ["attempt": "\(r.attempt)", "reason": "\(reason)"])
        kill(-pid, SIGTERM)
        kill(pid, SIGTERM)
        let process = r.process
        Task.detached {
            try? await Task.sleep(for: .seconds(5))
            if process.isRunning {
                kill(-pid, SIGKILL)
                kill(pid, SIGKILL)
            }
        }
    }

    private func ended(jobId: String, attempt: Int, exitCode: Int, signal: Int, output: String? = nil) async {
        let tail = running[jobId].map { $0.attempt == attempt ? $0.tail.text : "" } ?? ""
        if running[jobId]?.attempt == attempt { running[jobId] = nil }
        logger.info("attempt ended", metadata: ["job.id": "\(jobId)", "job.attempt": "\(attempt)", "exit.code": "\(exitCode)",
                                                "exit.signal": "\(signal)"])
        let report = AttemptExit(nodeId: configuration.nodeId, jobId: jobId, attempt: attempt, exitCode: exitCode, signal: signal,
                                 outputTail: output ?? tail)
        var backoff = Backoff(base: .milliseconds(200), cap: .seconds(5))
        for _ in 0..<60 {
            do {
                _ = try await channel.unary(NodeServicePath.reportAttemptExit, report, as: Empty.self, timeout: .seconds(10))
                return
            } catch {
                try? await Task.sleep(for: backoff.next())
            }
        }
        logger.error("could not report the end of an attempt to the coordinator", metadata: ["job.id": "\(jobId)"])
    }

    /// Stops everything (the agent is leaving).
    public func stopAll() {
        for r in running.values { stopProcess(r, reason: "the node agent is stopping") }
    }
}

/// The last lines a process printed; splits a byte stream into lines.
final class OutputTail: Sendable {
    private struct State {
        var partial = Data()
        var lines: [String] = []
    }
    private let state = Mutex(State())
    private let keep: Int

    init(lines: Int) { keep = lines }

    /// Appends bytes; returns the complete lines they finished.
    func append(_ data: Data) -> [String] {
        state.withLock { s in
            s.partial.append(data)
            var out: [String] = []
            while let newline = s.partial.firstIndex(of: 0x0A) {
                out.append(String(decoding: s.partial[s.partial.startIndex..<newline], as: UTF8.self))
                s.partial.removeSubrange(s.partial.startIndex...newline)
            }
            s.lines.append(contentsOf: out)
            if s.lines.count > keep { s.lines.removeFirst(s.lines.count - keep) }
            return out
        }
    }

    var text: String { state.withLock { $0.lines.joined(separator: "\n") } }
}
