import ArgumentParser
import Foundation
import NebulaCommon
import NebulaHTTP

/// Where the CLI reaches the REST API: --http-url, $NEBULA_HTTP_URL or .nebula/cluster.env, with the
/// admin token as bearer (the REST API accepts it for the built-in admin).
struct HTTPOptions: ParsableArguments {
    @Option(help: "REST API base URL (default: $NEBULA_HTTP_URL or .nebula/cluster.env).") var httpURL: String?
    @Option(help: "Admin token (prefer --admin-token-file or $NEBULA_ADMIN_TOKEN).") var adminToken: String?
    @Option(help: "File holding the admin token.") var adminTokenFile: String?

    /// The CA bundle for an https:// API ($NEBULA_TLS_CA or cluster.env), if any.
    func caBundle() -> String? {
        let env = ProcessInfo.processInfo.environment
        return env["NEBULA_TLS_CA"].flatMap { $0.isEmpty ? nil : $0 }
            ?? (EnvFile.findClusterEnv().map(EnvFile.load) ?? [:])["NEBULA_TLS_CA"].flatMap { $0.isEmpty ? nil : $0 }
    }

    func resolve() throws -> (base: String, token: String) {
        let env = ProcessInfo.processInfo.environment
        let file = EnvFile.findClusterEnv().map(EnvFile.load) ?? [:]
        func pick(_ key: String) -> String? { env[key].flatMap { $0.isEmpty ? nil : $0 } ?? file[key].flatMap { $0.isEmpty ? nil : $0 } }
        guard let base = httpURL ?? pick("NEBULA_HTTP_URL") else {
            throw ValidationError("no REST API address: pass --http-url http://HOST:8080, set NEBULA_HTTP_URL, or run where cluster/up wrote .nebula/cluster.env")
        }
        let token: String
        if let adminTokenFile { token = try readSecretFile(adminTokenFile, what: "admin token") }
        else if let t = adminToken ?? pick("NEBULA_ADMIN_TOKEN") { token = t }
        else { throw ValidationError("no admin token: pass --admin-token-file FILE or set NEBULA_ADMIN_TOKEN") }
        return (base.hasSuffix("/") ? String(base.dropLast()) : base, token)
    }
}

/// Calls the REST API; a non-2xx answer becomes an error with the API's message.
func restCall(_ options: HTTPOptions, _ method: HTTPMethod, _ path: String, json: Any? = nil, body: Data? = nil,
              contentType: String? = nil) async throws -> HTTPResponse {
    let (base, token) = try options.resolve()
    guard let url = URL(string: base + path) else { throw ValidationError("bad REST API address \(base)") }
    var headers = HTTPHeaders()
    var payload = body
    if let json {
        payload = try JSONSerialization.data(withJSONObject: json)
        headers.add(name: "Content-Type", value: "application/json")
    } else if let contentType {
        headers.add(name: "Content-Type", value: contentType)
    }
    var config = HTTPClient.Configuration()
    config.requestTimeout = .seconds(600)
    config.caBundlePath = options.caBundle()
    let response: HTTPResponse
    do {
        response = try await HTTPClient(configuration: config).send(
            HTTPRequest(method: method, url: url, headers: headers, body: payload, authorization: .bearer(token)))
    } catch {
        throw CLIError("cannot reach the REST API at \(base): \(error)")
    }
    guard response.isSuccess else {
        let object = (try? JSONSerialization.jsonObject(with: response.body)) as? [String: Any]
        let message = (object?["error"] as? [String: Any])?["message"] as? String ?? response.text
        throw CLIError("error (\(response.status)): \(message)")
    }
    return response
}

struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

struct Build: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the ML system builder on a dataset: detect the task, train candidates, print the leaderboard.",
        discussion: """
            The run happens on the coordinator (POST /api/process/builder). Progress goes to stderr; at the end the \
            leaderboard and the best model's metrics are printed (or the run as JSON with --json: task, leaderboard, \
            best). The report: GET /api/process/builder/ID/report; the model: nebula predict --model ID FILE.csv.

            Interrupting this command leaves the run going on the coordinator: `nebula build --show ID` follows it \
            again, `nebula build --cancel ID` stops it (its candidate jobs are cancelled), `nebula builds` lists runs.
            """)
    @Option(help: "Dataset id (see `nebula dataset list`).") var dataset: String?
    @Option(help: "Target column.") var target: String?
    @Option(help: ArgumentHelp("Cancel this run (queued or running) instead of starting one; waits until it has stopped.",
                               valueName: "run")) var cancel: String?
    @Option(help: ArgumentHelp("Show this run instead of starting one (following its progress while it runs).", valueName: "run"))
    var show: String?
    @Option(help: "binary, multiclass or regression (default: detected).") var task: String?
    @Option(help: "Time for all candidates together, e.g. 90s, 10m.") var timeBudget = "10m"
    @Option(help: "Ranking metric: accuracy, balanced_accuracy, f1_macro, log_loss, roc_auc (binary); rmse, mae, r2.") var metric: String?
    @Flag(help: "Print the run as JSON.") var json = false
    @Flag(help: "Return at once with the run id.") var noWait = false
    @OptionGroup var http: HTTPOptions

    func validate() throws {
        if cancel != nil || show != nil {
            guard cancel == nil || show == nil else { throw ValidationError("choose one of --cancel and --show") }
            guard dataset == nil, target == nil else {
                throw ValidationError("--\(cancel != nil ? "cancel" : "show") takes no --dataset or --target")
            }
        } else {
            guard dataset != nil, target != nil else { throw ValidationError("give --dataset and --target (or --show RUN, --cancel RUN)") }
        }
    }

    static let finalStates: Set<String> = ["completed", "failed", "cancelled"]

    func run() async throws {
        do {
            if let cancel { return try await self.cancel(cancel) }
            let id: String
            if let show {
                id = show
            } else {
                guard let dataset, let target else { return }
                var body: [String: Any] = ["dataset_id": dataset, "target": target, "time_budget": timeBudget]
                if let task { body["task"] = task }
                if let metric { body["metric"] = metric }
                let answer = try await restCall(http, .post, "/api/process/builder", json: body)
                guard let started = Self.runObject(answer)["id"] as? String else {
                    throw CLIError("the REST API answered without a run id: \(answer.text)")
                }
                id = started
            }
            if noWait { print(id); return }
            let run = try await follow(id)
            printRun(run)
            if run["state"] as? String != "completed", show == nil { throw ExitCode(1) }
        } catch let e as CLIError {
            FileHandle.standardError.write(Data("\(e)\n".utf8))
            throw ExitCode(1)
        }
    }

    static func runObject(_ response: HTTPResponse) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: response.body)) as? [String: Any] ?? [:]
    }

    /// Polls a run until it ends, writing each new progress line to stderr; answers the ended run.
    func follow(_ id: String, from first: [String: Any]? = nil) async throws -> [String: Any] {
        var run: [String: Any]
        if let first { run = first } else { run = Self.runObject(try await restCall(http, .get, "/api/process/builder/\(id)")) }
        var last = ""
        while true {
            let progress = run["progress"] as? String ?? ""
            if progress != last, !progress.isEmpty { FileHandle.standardError.write(Data("build \(id): \(progress)\n".utf8)); last = progress }
            if Self.finalStates.contains(run["state"] as? String ?? "") { return run }
            try await Task.sleep(for: .milliseconds(500))
            run = Self.runObject(try await restCall(http, .get, "/api/process/builder/\(id)"))
        }
    }

    func printRun(_ run: [String: Any]) {
        if json {
            print(String(decoding: (try? JSONSerialization.data(withJSONObject: run, options: [.sortedKeys, .prettyPrinted])) ?? Data(),
                         as: UTF8.self))
        } else {
            print(Self.describe(run))
        }
    }

    /// Asks the coordinator to stop a run and waits until it has.
    func cancel(_ id: String) async throws {
        let run = try await follow(id, from: Self.runObject(try await restCall(http, .post, "/api/process/builder/\(id)/cancel")))
        printRun(run)
        let jobs = (run["jobs"] as? [String: String] ?? [:]).sorted { $0.key < $1.key }
        if !json, !jobs.isEmpty {
            print("candidate jobs: " + jobs.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        }
    }

    /// A duration for the leaderboard: milliseconds below 0.1 s (a fit of 4 ms is not "0.00s").
    static func seconds(_ t: Double) -> String {
        t < 0.1 ? String(format: "%.1fms", t * 1000) : String(format: "%.2fs", t)
    }

    static func describe(_ run: [String: Any]) -> String {
        let id = run["id"] as? String ?? "?"
        guard run["state"] as? String == "completed" else { return "run \(id) \(run["state"] ?? "?"): \(run["error"] ?? "")" }
        var lines = ["run \(id): \(run["task"] ?? "?") (\(run["task_reason"] ?? "")); ranked by \(run["eval_metric"] ?? "?")", ""]
        var rows: [[String]] = []
        for row in run["leaderboard"] as? [[String: Any]] ?? [] {
            rows.append([((row["best"] as? Bool) == true ? "* " : "  ") + (row["model"] as? String ?? "?"),
                         String(format: "%.4f", row["score_val"] as? Double ?? .nan),
                         seconds(row["fit_time"] as? Double ?? 0), seconds(row["pred_time_val"] as? Double ?? 0)])
        }
        lines.append(TextTable(header: ["MODEL", "SCORE_VAL", "FIT_TIME", "PRED_TIME_VAL"], rows: rows).render()
            .trimmingCharacters(in: .newlines))
        if let best = run["best"] as? [String: Any], let metrics = best["metrics"] as? [String: Double] {
            lines += ["", "best: \(best["model"] ?? "?") — " + metrics.sorted { $0.key < $1.key }.map { "\($0.key) \(String(format: "%.4f", $0.value))" }.joined(separator: ", ")]
        }
        let input = run["image_input"] is [String: Any] ? "IMAGE.png|IMAGE.jpg|DIR ..." : "FILE.csv"
        lines += ["report: \(run["report_url"] ?? "")", "predict: nebula predict --model \(id) \(input)"]
        return lines.joined(separator: "\n")
    }
}

struct Builds: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List builder runs, newest first: RUN STATE DATASET TARGET TASK BEST SCORE CREATED (yours; an admin sees all).",
        discussion: "`nebula build --show RUN` prints one with its leaderboard; `nebula build --cancel RUN` stops one.")
    @Option(help: "How many (1–1000).") var limit = 50
    @OptionGroup var output: FormatOptions
    @OptionGroup var http: HTTPOptions

    func run() async throws {
        do {
            let format = try output.format()
            let r = try await restCall(http, .get, "/api/process/builder?limit=\(limit)")
            let runs = ((try? JSONSerialization.jsonObject(with: r.body)) as? [String: Any])?["runs"] as? [[String: Any]] ?? []
            if format == .json {
                print(String(decoding: try JSONSerialization.data(withJSONObject: runs, options: [.sortedKeys, .prettyPrinted]), as: UTF8.self))
                return
            }
            let table = Self.table(runs, now: nowUnixMs())
            FileHandle.standardOutput.write(Data((format == .csv ? table.csv() : table.render()).utf8))
        } catch let e as CLIError {
            FileHandle.standardError.write(Data("\(e)\n".utf8))
            throw ExitCode(1)
        }
    }

    static func table(_ runs: [[String: Any]], now: Int64) -> TextTable {
        TextTable(header: ["RUN", "STATE", "DATASET", "TARGET", "TASK", "BEST", "SCORE", "CREATED"], rows: runs.map { run in
            let best = run["best"] as? [String: Any]
            let metric = run["eval_metric"] as? String ?? ""
            let score = (best?["metrics"] as? [String: Any])?[metric] as? Double
            return [run["id"] as? String ?? "?", run["state"] as? String ?? "?", run["dataset_id"] as? String ?? "",
                    (run["request"] as? [String: Any])?["target"] as? String ?? "", run["task"] as? String ?? "-",
                    best?["model"] as? String ?? "-", score.map { "\(metric) \(String(format: "%.4f", $0))" } ?? "-",
                    (run["created_unix_ms"] as? Int64 ?? (run["created_unix_ms"] as? NSNumber)?.int64Value).map { ago($0, now: now) } ?? "-"]
        })
    }
}

struct Predict: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Batch predictions with a builder model: CSV in, CSV with prediction columns out.",
        discussion: """
            A CSV needs the columns the model was trained on (the target may be absent). A model trained on an \
            image-folder dataset also predicts image files: give PNG/JPEG files or directories of them (read \
            recursively); the output then has one row per image (file, prediction, probabilities). Output goes \
            to stdout or -o FILE.
            """)
    @Option(help: "Model id (a builder run id, build-…).") var model: String
    @Argument(help: "A CSV file with the input rows, or image files and directories of images.") var files: [String]
    @Option(name: .shortAndLong, help: "Write the predictions here instead of stdout.") var output: String?
    @OptionGroup var http: HTTPOptions

    func run() async throws {
        func fail(_ message: String) -> ExitCode {
            FileHandle.standardError.write(Data("error: \(message)\n".utf8))
            return ExitCode(1)
        }
        guard !files.isEmpty else { throw fail("give a CSV file, or image files or directories") }
        do {
            let r: HTTPResponse
            if files.count == 1, !isImage(files[0]), !isDirectory(files[0]) {
                guard let data = FileManager.default.contents(atPath: files[0]) else { throw fail("cannot read \(files[0])") }
                r = try await restCall(http, .post, "/api/process/models/\(model)/predict", body: data, contentType: "text/csv")
            } else {
                var images: [(name: String, data: Data)] = []
                for path in files {
                    if isDirectory(path) {
                        let entries = (FileManager.default.enumerator(atPath: path)?.allObjects as? [String] ?? []).sorted()
                        for entry in entries where isImage(path + "/" + entry) {
                            guard let data = FileManager.default.contents(atPath: path + "/" + entry) else { throw fail("cannot read \(path)/\(entry)") }
                            images.append((URL(fileURLWithPath: path).lastPathComponent + "/" + entry, data))
                        }
                    } else {
                        guard isImage(path) else { throw fail("\(path) is not a PNG or JPEG image (a CSV goes alone)") }
                        guard let data = FileManager.default.contents(atPath: path) else { throw fail("cannot read \(path)") }
                        images.append((URL(fileURLWithPath: path).lastPathComponent, data))
                    }
                }
                guard !images.isEmpty else { throw fail("no PNG or JPEG images in \(files.joined(separator: ", "))") }
                let boundary = "nebula-" + UUID().uuidString
                var body = Data()
                for image in images {
                    let name = image.name.replacingOccurrences(of: "\"", with: "_")
                    body.append(Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"\(name)\"\r\nContent-Type: application/octet-stream\r\n\r\n".utf8))
                    body.append(image.data)
                    body.append(Data("\r\n".utf8))
                }
                body.append(Data("--\(boundary)--\r\n".utf8))
                FileHandle.standardError.write(Data("predicting \(images.count) image\(images.count == 1 ? "" : "s")\n".utf8))
                r = try await restCall(http, .post, "/api/process/models/\(model)/predict", body: body,
                                       contentType: "multipart/form-data; boundary=\(boundary)")
            }
            if let output {
                try r.body.write(to: URL(fileURLWithPath: output))
                FileHandle.standardError.write(Data("\(r.headers["X-Predicted-Rows"] ?? "?") rows predicted into \(output)\n".utf8))
            } else {
                FileHandle.standardOutput.write(r.body)
            }
        } catch let e as CLIError {
            FileHandle.standardError.write(Data("\(e)\n".utf8))
            throw ExitCode(1)
        }
    }

    private func isDirectory(_ path: String) -> Bool {
        var directory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &directory) && directory.boolValue
    }

    private func isImage(_ path: String) -> Bool {
        guard !isDirectory(path), let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        guard let data = try? handle.read(upToCount: 8) else { return false }
        let head = [UInt8](data)
        return head.starts(with: [0x89, 0x50, 0x4E, 0x47]) || head.starts(with: [0xFF, 0xD8, 0xFF])
    }
}

