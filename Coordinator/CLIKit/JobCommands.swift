import ArgumentParser
import Foundation
import NebulaCommon
import NebulaModel
import NebulaRPC
import NebulaWire

struct Submit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Submit a data-parallel training job and print its id.",
        discussion: """
            The coordinator checks the spec, detects the task (or takes --task), fixes the feature encoding from the \
            whole dataset, and queues the job (priority, then FIFO). It runs when --nodes (or between --min-nodes and \
            --max-nodes) matching nodes are free: one MPI world over them, gradients averaged with allreduce, \
            checkpoints every --checkpoint-every steps (default: every epoch), restarts from the last checkpoint when a \
            node or rank fails (at most --max-restarts times). `nebula job show ID` follows it.
            """)
    @Option(help: "Dataset id (see `nebula dataset list`).") var dataset: String
    @Option(help: "Target column.") var target: String
    @Option(help: "Model: mlp or gbdt (histogram GBDT; --epochs is then the number of boosting iterations).")
    var model = "mlp"
    @Option(help: "Nodes (sets --min-nodes and --max-nodes).") var nodes: Int?
    @Option(help: "At least this many nodes.") var minNodes: Int?
    @Option(help: "At most this many nodes.") var maxNodes: Int?
    @Option(help: "GPUs each node must have.") var gpusPerNode = 0
    @Option(help: "Node labels that must match, e.g. rack=a,zone=1.") var labels: String?
    @Option(help: "Higher runs first.") var priority = 0
    @Option(help: "Epochs.") var epochs = 20
    @Option(help: "Batch size per rank (on CPU nodes when --gpu-batch-size is given).") var batchSize = 64
    @Option(help: "Batch size of ranks on nodes with GPUs (mixed placements; default: --batch-size everywhere).")
    var gpuBatchSize: Int?
    @Option(help: "Learning rate (default: 0.001 for mlp with Adam, 0.1 for gbdt).") var lr: Double?
    @Option(help: "Seed (shuffles, initialisation, shards).") var seed: UInt64 = 0
    @Option(help: "Restarts allowed after failures.") var maxRestarts = 3
    @Option(help: "Checkpoint every N steps (0: at every epoch end; gbdt: every N iterations, 0: every 10).")
    var checkpointEvery = 0
    @Option(help: "Holdout fraction (default: AutoGluon's rule for the dataset size).") var holdout: Double?
    @Option(help: "Task instead of the detected one: binary, multiclass or regression.") var task: String?
    @Option(help: "Gradient fusion bucket cap in MB.") var bucketCapMb = 25
    @Option(help: "Abort when a rank has not entered the next collective for this many seconds.") var stallTimeout = 120
    @Flag(help: "Send gradients as Float16 (half the bytes; about 3 significant digits per element).")
    var fp16Allreduce = false
    @Flag(help: "Reduce gradients after the backward pass instead of overlapping the two.") var noOverlap = false
    @Option(help: "Job name.") var name: String?
    @OptionGroup var connection: ConnectionOptions
    @Flag(help: "Print the job as JSON.") var json = false

    func validate() throws {
        if nodes != nil && (minNodes != nil || maxNodes != nil) {
            throw ValidationError("use either --nodes or --min-nodes/--max-nodes")
        }
        for (flag, value) in [("--nodes", nodes), ("--min-nodes", minNodes), ("--max-nodes", maxNodes),
                              ("--gpu-batch-size", gpuBatchSize)] {
            if let value, value < 1 { throw ValidationError("\(flag) must be at least 1, got \(value)") }
        }
    }

    func run() async throws {
        let labelMap: [String: String]
        do { labelMap = try parseLabels(labels) } catch { throw ValidationError("\(error)") }
        let minimum = nodes ?? minNodes ?? 1
        let spec = JobSpec(name: name ?? "", datasetId: dataset, target: target, model: model, minNodes: minimum,
                           maxNodes: nodes ?? maxNodes ?? minimum, gpusPerNode: gpusPerNode, labels: labelMap, priority: priority,
                           epochs: epochs, batchSize: batchSize, learningRate: lr ?? 0, seed: seed, maxRestarts: maxRestarts,
                           checkpointEvery: checkpointEvery, holdoutFraction: holdout ?? 0, task: task ?? "",
                           bucketCapMB: bucketCapMb, fp16Allreduce: fp16Allreduce, stallTimeoutSeconds: stallTimeout,
                           gpuBatchSize: gpuBatchSize ?? 0, noOverlap: noOverlap)
        try await withCoordinator(connection) { channel, _ in
            let info = try await channel.unary(JobServicePath.submitJob, spec, as: JobInfo.self, timeout: .seconds(600))
            if json {
                write(try encodeJSON(info))
            } else {
                write(info.jobId + "\n")
                note("job \(info.jobId) submitted: \(info.task), \(info.state)\(info.reason.isEmpty ? "" : " (\(info.reason))")")
            }
        }
    }
}

struct Jobs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List jobs like squeue: JOBID NAME USER ST TIME NODES NODELIST(REASON) SAMPLES/S.")
    @Flag(help: "Include jobs that ended more than an hour ago.") var all = false
    @Option(help: "How many.") var limit = 100
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: FormatOptions

    func run() async throws {
        let format = try output.format()
        try await withCoordinator(connection) { channel, r in
            let list = try await channel.unary(JobServicePath.listJobs, JobListRequest(limit: limit, all: all), as: JobList.self,
                                               timeout: r.timeout)
            switch format {
            case .table: write(JobsView.table(list.jobs, now: nowUnixMs()).render())
            case .csv: write(JobsView.table(list.jobs, now: nowUnixMs()).csv())
            case .json: write(try encodeJSON(list.jobs))
            }
        }
    }
}

struct Job: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show, cancel, follow the logs of, or download the model of a job.",
        subcommands: [Show.self, Cancel.self, Logs.self, Download.self])

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Progress, per-rank throughput (slowest first), events, checkpoints and holdout metrics of a job.")
        @Argument(help: "Job id.") var id: String
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var output: FormatOptions

        func run() async throws {
            let format = try output.format()
            try await withCoordinator(connection) { channel, r in
                let detail = try await channel.unary(JobServicePath.getJob, JobRequest(jobId: id), as: JobDetail.self,
                                                     timeout: r.timeout)
                switch format {
                case .table: write(JobsView.text(detail, now: nowUnixMs()))
                case .csv: write(JobsView.table([detail.info], now: nowUnixMs()).csv())
                case .json: write(try JobsView.json(detail))
                }
            }
        }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Cancel a job (a running attempt is stopped).")
        @Argument(help: "Job id.") var id: String
        @Option(help: "Why (stored with the event).") var reason = ""
        @OptionGroup var connection: ConnectionOptions
        @Flag(help: "Print the job as JSON.") var json = false

        func run() async throws {
            try await withCoordinator(connection) { channel, r in
                let info = try await channel.unary(JobServicePath.cancelJob, CancelJobRequest(jobId: id, reason: reason),
                                                   as: JobInfo.self, timeout: r.timeout)
                if json { write(try encodeJSON(info)) } else { write("\(info.jobId): \(info.state)\n") }
            }
        }
    }

    struct Logs: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The log lines of a job's ranks; --follow streams until it ends.")
        @Argument(help: "Job id.") var id: String
        @Flag(name: .shortAndLong, help: "Keep streaming until the job ends.") var follow = false
        @Option(name: .shortAndLong, help: "How many of the newest lines first.") var limit = 200
        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            try await withCoordinator(connection) { channel, r in
                let stream = try channel.serverStreaming(JobServicePath.tailJobLogs,
                                                         TailJobLogsRequest(jobId: id, limit: limit, follow: follow),
                                                         as: LogRecord.self, timeout: follow ? nil : r.timeout)
                for try await record in stream { write(LogsView.line(record) + "\n") }
            }
        }
    }

    struct Download: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Download a job's final model (or a checkpoint) to a file.")
        @Argument(help: "Job id.") var id: String
        @Option(help: "A checkpoint id instead of the final model.") var checkpoint: String?
        @Option(name: .shortAndLong, help: "Output file (default: the name the coordinator gives).") var output: String?
        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            try await withCoordinator(connection) { channel, _ in
                var handle: FileHandle?
                var path = output ?? ""
                var sha = ""
                var hasher = SHA256()
                var received: UInt64 = 0
                for try await chunk in try channel.serverStreaming(JobServicePath.downloadArtifact,
                                                                   DownloadArtifactRequest(jobId: id, checkpointId: checkpoint ?? ""),
                                                                   as: ArtifactChunk.self, timeout: .seconds(3600)) {
                    if handle == nil {
                        if path.isEmpty { path = chunk.fileName }
                        sha = chunk.sha256
                        guard FileManager.default.createFile(atPath: path + ".partial", contents: nil),
                              let h = FileHandle(forWritingAtPath: path + ".partial") else {
                            throw ValidationError("cannot write \(path)")
                        }
                        handle = h
                    }
                    try handle?.write(contentsOf: chunk.data)
                    hasher.update(chunk.data)
                    received += UInt64(chunk.data.count)
                }
                try handle?.close()
                guard handle != nil, SHA256.hex(hasher.finalize()) == sha else {
                    try? FileManager.default.removeItem(atPath: path + ".partial")
                    throw ValidationError("the download did not match its SHA-256; nothing was written")
                }
                try? FileManager.default.removeItem(atPath: path)
                try FileManager.default.moveItem(atPath: path + ".partial", toPath: path)
                write("\(path)\n")
                note("wrote \(received) bytes, sha256 \(sha)")
            }
        }
    }
}

/// `nebula jobs` and `nebula job show`.
public enum JobsView {
    static let stateCodes = ["pending": "PD", "running": "R", "completing": "CG", "completed": "CD", "failed": "F",
                             "cancelled": "CA", "node_fail": "NF", "restarting": "RS"]

    static func elapsed(_ info: JobInfo, now: Int64) -> String {
        guard info.startedUnixMs > 0 else { return "0:00" }
        let end = info.finishedUnixMs > 0 ? info.finishedUnixMs : now
        let s = max(0, (end - info.startedUnixMs) / 1000)
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, (s / 60) % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }

    public static func table(_ jobs: [JobInfo], now: Int64) -> TextTable {
        TextTable(header: ["JOBID", "NAME", "USER", "ST", "TIME", "NODES", "NODELIST(REASON)", "SAMPLES/S"], rows: jobs.map { j in
            // like squeue: the nodes once placed, the reason while waiting or after a failure
            let placement = ["running", "completing", "completed"].contains(j.state) && !j.nodes.isEmpty
                ? j.nodes.joined(separator: ",") : "(\(j.reason.prefix(60)))"
            return [j.jobId, j.name, j.spec.user, stateCodes[j.state] ?? j.state, elapsed(j, now: now),
                    "\(j.nodes.isEmpty ? j.spec.minNodes : j.nodes.count)", placement,
                    j.samplesPerSecond > 0 ? String(Int(j.samplesPerSecond.rounded())) : "-"]
        })
    }

    static func array(_ json: String) -> [[String: Any]] {
        (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [[String: Any]] ?? []
    }

    public static func text(_ d: JobDetail, now: Int64) -> String {
        var out = ""
        func line(_ k: String, _ v: String) { out += k.padding(toLength: 12, withPad: " ", startingAt: 0) + v + "\n" }
        let i = d.info
        line("JOB", "\(i.jobId) (\(i.name))")
        line("STATE", i.state + (i.reason.isEmpty ? "" : ": \(i.reason)"))
        line("TASK", "\(i.task) on dataset \(i.spec.datasetId), target \(i.spec.target), model \(i.spec.model)")
        line("NODES", i.nodes.isEmpty ? "-" : i.nodes.joined(separator: ",") + " (attempt \(i.attempt), \(i.restarts) restarts)")
        line("PROGRESS", "step \(i.step), loss \(String(format: "%.4f", i.loss)), \(Int(i.samplesPerSecond.rounded())) samples/s, time \(elapsed(i, now: now))")
        if let metrics = try? JSONSerialization.jsonObject(with: Data(d.metricsJSON.utf8)) as? [String: Any], !metrics.isEmpty {
            line("HOLDOUT", metrics.keys.sorted().map { k in
                let v = (metrics[k] as? NSNumber)?.doubleValue ?? 0
                return "\(k) \(v == v.rounded() ? String(Int(v)) : String(format: "%.4f", v))"
            }.joined(separator: ", "))
        }
        let ranks = array(d.ranksJSON).sorted {
            (($0["samples_per_second"] as? Double) ?? 0) < (($1["samples_per_second"] as? Double) ?? 0)
        }
        if !ranks.isEmpty {
            out += "\nRANKS (slowest first)\n"
            out += TextTable(header: ["RANK", "NODE", "PID", "STEP", "SAMPLES/S", "ALLREDUCE_MS", "COLLECTIVE"], rows: ranks.map { r in
                ["\(r["rank"] ?? "")", "\(r["node"] ?? "")", "\(r["pid"] ?? "")", "\(r["step"] ?? "")",
                 String(format: "%.0f", (r["samples_per_second"] as? Double) ?? 0),
                 String(format: "%.2f", (r["allreduce_ms"] as? Double) ?? 0), "\(r["collective_seq"] ?? "-")"]
            }).render()
        }
        let events = array(d.eventsJSON)
        if !events.isEmpty {
            out += "\nEVENTS\n"
            out += TextTable(header: ["TIME", "ATTEMPT", "FROM", "TO", "REASON"], rows: events.map { e in
                [isoTime((e["time_unix_ms"] as? NSNumber)?.int64Value ?? 0), "\(e["attempt"] ?? "")", "\(e["from"] ?? "-")",
                 "\(e["to"] ?? "")", "\(e["reason"] ?? "")"]
            }).render()
        }
        let checkpoints = array(d.checkpointsJSON)
        if !checkpoints.isEmpty {
            out += "\nCHECKPOINTS\n"
            out += TextTable(header: ["ID", "ATTEMPT", "STEP", "EPOCH", "WORLD", "BYTES", "FINAL"], rows: checkpoints.map { c in
                ["\(c["id"] ?? "")", "\(c["attempt"] ?? "")", "\(c["step"] ?? "")", "\(c["epoch"] ?? "")", "\(c["world_size"] ?? "")",
                 "\(c["bytes"] ?? "")", ((c["final"] as? Bool) ?? false) ? "yes" : ""]
            }).render()
        }
        return out
    }

    public static func json(_ d: JobDetail) throws -> String {
        var object = (try JSONSerialization.jsonObject(with: Data(try encodeJSON(d.info).utf8))) as? [String: Any] ?? [:]
        object["events"] = array(d.eventsJSON)
        object["ranks"] = array(d.ranksJSON)
        object["checkpoints"] = array(d.checkpointsJSON)
        object["metrics"] = (try? JSONSerialization.jsonObject(with: Data(d.metricsJSON.utf8))) ?? [:]
        object["progress"] = array(d.progressJSON)
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        return String(decoding: data, as: UTF8.self) + "\n"
    }
}
