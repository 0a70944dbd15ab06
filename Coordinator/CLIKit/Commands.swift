import ArgumentParser
import Foundation
import NebulaCommon
import NebulaModel
import NebulaRPC
import NebulaWire

/// `nebula`: the admin CLI.
public struct NebulaCLI: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "nebula",
        abstract: "Administer a Nebula cluster (node health, drains, logs), manage datasets and train models.",
        discussion: """
            The coordinator address and admin token come from flags, NEBULA_COORDINATOR / NEBULA_ADMIN_TOKEN, \
            or .nebula/cluster.env written by cluster/up. Every listing takes --json or --csv.
            """,
        version: "0.1.0",
        subcommands: [Nodes.self, Node.self, Health.self, Logs.self, Dataset.self, Submit.self, Jobs.self, Job.self, Train.self,
                      Build.self, Builds.self, Predict.self])

    public init() {}
}

struct FormatOptions: ParsableArguments {
    @Flag(help: "Print JSON.") var json = false
    @Flag(help: "Print CSV.") var csv = false

    func format() throws -> OutputFormat {
        if json && csv { throw ValidationError("choose one of --json and --csv") }
        return json ? .json : csv ? .csv : .table
    }
}

/// Runs one CLI action with a channel, turning failures into one clear line and exit code 1.
func withCoordinator(_ options: ConnectionOptions,
                     _ body: (RPCChannel, ConnectionOptions.Resolved) async throws -> Void) async throws {
    let (channel, resolved) = try options.channel()
    defer { channel.close() }
    do {
        try await body(channel, resolved)
    } catch let error as RPCStatus {
        FileHandle.standardError.write(Data((explain(error, target: resolved.target) + "\n").utf8))
        throw ExitCode(error.code == .notFound || error.code == .invalidArgument ? 2 : 1)
    }
}

func write(_ text: String) { FileHandle.standardOutput.write(Data(text.utf8)) }

struct Nodes: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the nodes (STATE gets a * when the node does not respond).")
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: FormatOptions

    func run() async throws {
        let format = try output.format()
        try await withCoordinator(connection) { channel, r in
            let list = try await channel.unary(AdminServicePath.listNodes, Empty(), as: NodeList.self, timeout: r.timeout)
            let now = nowUnixMs()
            switch format {
            case .table: write(NodesView.table(list.nodes, now: now).render())
            case .csv: write(NodesView.table(list.nodes, now: now).csv())
            case .json: write(try NodesView.json(list.nodes, now: now))
            }
        }
    }
}

struct Node: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show, drain or resume one node.", subcommands: [Show.self, Drain.self, Resume.self])

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Details, recent health and events of a node.")
        @Argument(help: "Node id (see `nebula nodes`).") var id: String
        @Option(help: "How many events to show.") var events = 20
        @Option(help: "How many health samples to show.") var samples = 10
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var output: FormatOptions

        func run() async throws {
            let format = try output.format()
            guard events > 0, samples > 0 else { throw ValidationError("--events and --samples must be > 0") }
            try await withCoordinator(connection) { channel, r in
                let d = try await channel.unary(AdminServicePath.getNode,
                                                GetNodeRequest(nodeId: id, eventsLimit: events, samplesLimit: samples),
                                                as: NodeDetail.self, timeout: r.timeout)
                let now = nowUnixMs()
                switch format {
                case .table: write(NodeDetailView.text(d, now: now))
                case .csv: write(NodesView.table([d.node], now: now).csv())
                case .json: write(try NodeDetailView.json(d, now: now))
                }
            }
        }
    }

    struct Drain: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Stop placing new work on a node (running work continues).")
        @Argument(help: "Node id.") var id: String
        @Option(help: "Why (shown in the REASON column).") var reason: String
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var output: FormatOptions

        func run() async throws {
            let format = try output.format()
            try await withCoordinator(connection) { channel, r in
                let n = try await channel.unary(AdminServicePath.drainNode, DrainRequest(nodeId: id, reason: reason),
                                                as: NodeInfo.self, timeout: r.timeout)
                printNode(n, format, verb: "drained")
            }
        }
    }

    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Undo a drain.")
        @Argument(help: "Node id.") var id: String
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var output: FormatOptions

        func run() async throws {
            let format = try output.format()
            try await withCoordinator(connection) { channel, r in
                let n = try await channel.unary(AdminServicePath.resumeNode, ResumeRequest(nodeId: id), as: NodeInfo.self,
                                                timeout: r.timeout)
                printNode(n, format, verb: "resumed")
            }
        }
    }
}

func printNode(_ n: NodeInfo, _ format: OutputFormat, verb: String) {
    let now = nowUnixMs()
    switch format {
    case .table: write("\(n.nodeId) \(verb): state \(stateLabel(n))\(n.reason.isEmpty ? "" : ", reason: \(n.reason)")\n")
    case .csv: write(NodesView.table([n], now: now).csv())
    case .json: write((try? encodeJSON(NodeJSON(n, now: now))) ?? "{}\n")
    }
}

struct Health: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Cluster summary: nodes by state, capacity, database.")
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: FormatOptions

    func run() async throws {
        let format = try output.format()
        try await withCoordinator(connection) { channel, r in
            let h = try await channel.unary(AdminServicePath.clusterHealth, Empty(), as: ClusterHealth.self, timeout: r.timeout)
            switch format {
            case .table: write(HealthView.text(h, now: nowUnixMs()))
            case .csv: write(HealthView.table(h).csv())
            case .json: write(try encodeJSON(h))
            }
        }
    }
}

struct Logs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the newest log records of the nodes and the coordinator; --follow keeps streaming.")
    @Option(help: "Only this node's records.") var node: String?
    @Flag(name: .shortAndLong, help: "Keep the stream open and print new records as they arrive.") var follow = false
    @Option(name: .shortAndLong, help: "How many of the newest records to show first.") var limit = 50
    @Option(help: "Minimum level: trace, debug, info, notice, warning, error, critical.") var level: String?
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: FormatOptions

    func run() async throws {
        let format = try output.format()
        guard limit > 0 else { throw ValidationError("--limit must be > 0") }
        var minLevel: LogLevel?
        if let level {
            guard let l = LogLevel(rawValue: level.lowercased()) else {
                throw ValidationError("unknown --level '\(level)': use one of \(LogLevel.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            minLevel = l
        }
        try await withCoordinator(connection) { channel, r in
            let request = TailLogsRequest(nodeId: node ?? "", limit: limit, follow: follow, minLevel: minLevel)
            let stream = try channel.serverStreaming(AdminServicePath.tailLogs, request, as: LogRecord.self,
                                                     timeout: follow ? nil : r.timeout)
            if format == .csv { write(TextTable(header: LogsView.csvHeader, rows: []).csv()) }
            let encoder = JSONEncoder()
            encoder.outputFormatting = .sortedKeys
            encoder.keyEncodingStrategy = .convertToSnakeCase
            for try await record in stream {
                switch format {
                case .table: write(LogsView.line(record) + "\n")
                case .csv: write(LogsView.csvRow(record).map(csvField).joined(separator: ",") + "\r\n")
                case .json: write(String(decoding: try encoder.encode(record), as: UTF8.self) + "\n")
                }
            }
        }
    }
}
