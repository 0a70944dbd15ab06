import Foundation
import Logging
import NebulaBuilder
import NebulaCommon
import NebulaDataset
import NebulaModel
import NebulaStore

// Note [Builder service]
// ~~~~~~~~~~~~~~~~~~~~~~
// Runs of the ML system builder (Note [Builder runs]) queue in `builder_runs` and execute one at a
// time. A run is prepared here (task, split, preprocessing, on a thread of its own, from the
// dataset's columnar file where it lies); its candidates train as cluster jobs (Note [Candidates as
// cluster jobs]) — placed by the scheduler like any job, visible in `nebula jobs`, owned by the
// run's owner — and their outcomes come back here for the ensemble, the leaderboard and the report.
// Each candidate gets an equal share of the time budget (so a run keeps to it even when the cluster
// can only take one candidate at a time); networks of a dataset with at least
// `distributedRows` labelled rows may take up to `maxNodes` nodes. A candidate job still pending
// after `queueTimeout` is cancelled (no node could take it); a candidate that fails is named in the
// run's notes and the run goes on with the others. A run's files live in
// `<data dir>/builder/<id>/`: `model.json` (Note [Model bundle]) and `report.html`; its result (task,
// leaderboard, metrics, report data) is stored as JSON in the row, and its candidate jobs in
// `candidate_jobs`. A run cut short by a restart becomes FAILED with that reason, and its candidate
// jobs are cancelled.

// Note [Cancelling a builder run]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// A queued run is taken off the queue and becomes CANCELLED at once. A running run is asked to stop:
// the worker checks between its steps (after the images, after preparing, while submitting and
// every half second while it waits for its candidates, before storing the result) and then cancels
// its candidate jobs that are still pending or running, deletes the run's files and stores
// CANCELLED with the reason. A step in progress (preparing a large table, the permutation
// importance) is not interrupted, so the answer to a cancel is 202 with the run as it is then.

/// Settings of the builder service (Note [Builder service]).
public struct BuilderConfiguration: Sendable {
    /// Datasets with at least this many labelled rows train their networks over several nodes.
    public var distributedRows = 100_000
    /// The most nodes one candidate takes.
    public var maxNodes = 4
    /// A candidate job that no node took within this long is cancelled.
    public var queueTimeout: Duration = .seconds(600)
    /// The largest side of the pixel tables made from image folders (Note [Images as pixel tables]).
    public var imageSide = 32
    /// A candidate trained over several nodes whose ranks wait this long on one that does not reach
    /// the same collective operation is stopped (the job's CollectiveWatchdog, as for training jobs).
    public var stallTimeout: Duration = .seconds(120)
    public init() {}
}

/// One builder run as stored.
public struct BuilderRun: Sendable, Codable {
    public var id: String
    public var owner: String
    public var datasetId: String
    public var state: String
    public var progress: String
    public var error: String
    public var request: BuilderRequest
    public var resultJSON: String
    /// Candidate name → its cluster job (Note [Candidates as cluster jobs]).
    public var candidateJobs: [String: String]
    public var createdUnixMs: Int64
    public var finishedUnixMs: Int64?
}

public actor BuilderService {
    let root: String
    private let client: PostgresClient
    private let datasets: DatasetService
    private let jobs: JobManager
    private let configuration: BuilderConfiguration
    private let logger: Logger
    private var queue: [String] = []
    private var worker: Task<Void, Never>?
    private var live: [String: String] = [:]
    /// Runs asked to stop while they run, with the reason (Note [Cancelling a builder run]).
    private var cancelRequests: [String: String] = [:]

    init(dataDirectory: String, client: PostgresClient, datasets: DatasetService, jobs: JobManager,
         configuration: BuilderConfiguration = BuilderConfiguration(), logger: Logger) throws {
        root = dataDirectory + "/builder"
        self.client = client
        self.datasets = datasets
        self.jobs = jobs
        self.configuration = configuration
        self.logger = logger
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }

    func recover() async throws {
        let rows = try await client.query("""
            UPDATE builder_runs SET state = 'failed', finished_at = now(),
                error = 'the coordinator stopped during this run; start it again'
            WHERE state IN ('queued', 'running') RETURNING id, candidate_jobs::text AS jobs
            """)
        for row in rows {
            let id = try row.string("id")
            logger.warning("builder run interrupted by a restart", metadata: ["builder.id": "\(id)"])
            let candidates = (try? JSONDecoder().decode([String: String].self, from: Data(try row.string("jobs").utf8))) ?? [:]
            for job in candidates.values {
                _ = try? await jobs.cancel(job, reason: "its builder run \(id) was interrupted by a coordinator restart")
            }
        }
    }

    func shutdown() async {
        worker?.cancel()
    }

    nonisolated func directory(of id: String) -> String { root + "/" + id }
    nonisolated func modelPath(_ id: String) -> String { directory(of: id) + "/model.json" }
    nonisolated func reportPath(_ id: String) -> String { directory(of: id) + "/report.html" }

    /// Checks the request against the dataset (so a bad target is refused at once), stores the run
    /// and queues it.
    func start(owner: String, datasetId: String, name: String, request: BuilderRequest) async throws -> BuilderRun {
        guard let row = try await datasets.row(datasetId) else { throw BuilderError(.invalidRequest, "dataset \(datasetId) not found", field: "dataset_id") }
        guard row.info.state == .ready, !row.path.isEmpty else {
            throw BuilderError(.invalidRequest, row.info.kind == .objectDetection
                ? "dataset \(datasetId) holds object-detection annotations (COCO): the builder does not train detectors yet"
                : "dataset \(datasetId) is \(row.info.state.rawValue) (\(row.info.kind.rawValue)); the builder needs a ready table",
                field: "dataset_id")
        }
        if row.info.kind == .imageFolders, request.target == "path" {
            throw BuilderError(.invalidRequest, "'path' names the image files of dataset \(datasetId): its target is 'label'", field: "target")
        }
        let path = datasets.absolute(row.path)
        try await runOnThread(name: "nebula.builder.check") {
            try AutoBuilder.validate(try ColumnarDataset(path: path, verify: .header), request)
        }
        let id = "build-" + String(UInt64.random(in: 0...0xFF_FFFF_FFFF), radix: 16).leftPadded(to: 10)
        let requestJSON = String(decoding: try JSONEncoder().encode(request), as: UTF8.self)
        try await client.execute("""
            INSERT INTO builder_runs (id, owner, dataset_id, name, state, request) VALUES ($1, $2, $3, $4, 'queued', $5::jsonb)
            """, [.text(id), .text(owner), .text(datasetId), .text(name.isEmpty ? row.info.name : name), .text(requestJSON)])
        queue.append(id)
        live[id] = "queued"
        pump()
        logger.info("builder run queued", metadata: ["builder.id": "\(id)", "dataset.id": "\(datasetId)", "target": "\(request.target)"])
        return try await get(id)!
    }

    private func pump() {
        guard worker == nil, !queue.isEmpty else { return }
        let id = queue.removeFirst()
        worker = Task { await self.execute(id); self.finished() }
    }

    private func finished() {
        worker = nil
        pump()
    }

    private func setProgress(_ id: String, _ text: String) { live[id] = text }

    /// Stops a queued or running run (Note [Cancelling a builder run]); answers the run as it is now.
    func cancel(_ id: String, reason: String) async throws -> BuilderRun {
        guard let run = try await get(id) else { throw BuilderError(.invalidRequest, "builder run \(id) not found") }
        let message = "cancelled: \(reason)"
        switch run.state {
        case "queued" where queue.contains(id):
            queue.removeAll { $0 == id }
            live[id] = nil
            try await client.execute("""
                UPDATE builder_runs SET state = 'cancelled', error = $2, finished_at = now() WHERE id = $1 AND state = 'queued'
                """, [.text(id), .text(message)])
            logger.info("builder run cancelled", metadata: ["builder.id": "\(id)", "reason": "\(reason)"])
        case "queued", "running":
            // taken by the worker (a queued run may be starting this very moment)
            cancelRequests[id] = message
            live[id] = "cancelling (\(reason))"
        default:
            throw BuilderCancelRefused(state: run.state)
        }
        return try await get(id) ?? run
    }

    /// Deletes an ended run: its row, model and report.
    func delete(_ id: String) async throws {
        guard let run = try await get(id) else { throw BuilderError(.invalidRequest, "builder run \(id) not found") }
        guard !["queued", "running"].contains(run.state) else { throw BuilderDeleteRefused(state: run.state) }
        try await client.execute("DELETE FROM builder_runs WHERE id = $1", [.text(id)])
        try? FileManager.default.removeItem(atPath: directory(of: id))
        logger.info("builder run deleted", metadata: ["builder.id": "\(id)"])
    }

    /// Every run of a user goes (account deletion): queued ones leave the queue, a running one is
    /// cancelled (its worker stops at its next step and removes its files), then rows and files go.
    /// Answers how many runs there were.
    func deleteRuns(owner: String) async throws -> Int {
        let runs = try await client.query("SELECT id, state FROM builder_runs WHERE owner = $1", [.text(owner)])
        for row in runs {
            let id = try row.string("id")
            if ["queued", "running"].contains(try row.string("state")) {
                _ = try? await cancel(id, reason: "the user's account was deleted")
            }
            try? FileManager.default.removeItem(atPath: directory(of: id))
        }
        try await client.execute("DELETE FROM builder_runs WHERE owner = $1", [.text(owner)])
        return runs.count
    }

    /// Throws when the run was asked to stop.
    private func checkCancelled(_ id: String) throws {
        if let message = cancelRequests[id] { throw RunCancelled(message: message) }
    }

    private func execute(_ id: String) async {
        var submitted: [String: String] = [:]
        do {
            guard let run = try await get(id), let row = try await datasets.row(run.datasetId) else {
                throw BuilderError(.invalidRequest, "the dataset of this run was deleted")
            }
            try await client.execute("UPDATE builder_runs SET state = 'running', started_at = now() WHERE id = $1", [.text(id)])
            try checkCancelled(id)
            let clock = ContinuousClock()
            let started = clock.now
            let deadline = nowUnixMs() + Int64(run.request.timeBudgetSeconds * 1000)
            var path = datasets.absolute(row.path)
            var datasetId = run.datasetId
            var imageNotes: [String] = []
            var imageInput: ImageInput?
            let dir = directory(of: id)
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let request = run.request
            let log = logger
            let progress: @Sendable (String) -> Void = { line in
                log.info("builder: \(line)", metadata: ["builder.id": "\(id)"])
                Task { await self.setProgress(id, line) }
            }
            if row.info.kind == .imageFolders {
                let table = try await pixelTable(run: id, owner: run.owner, row: row, target: request.target, progress: progress)
                (datasetId, path, imageNotes, imageInput) = (table.0, table.1, table.2, table.3)
            }
            try checkCancelled(id)
            let datasetPath = path
            let prepared = try await runOnThread(name: "nebula.builder.prepare") { () -> PreparedRun in
                let dataset = try ColumnarDataset(path: datasetPath)
                return PreparedRun(dataset: dataset, prep: try AutoBuilder.prepare(dataset, request, trainingInputs: false, progress: progress))
            }
            let prep = prepared.prep

            // Every candidate as a cluster job (Note [Candidates as cluster jobs]).
            let names = prep.candidateNames
            let share = max(1, request.timeBudgetSeconds / Double(names.count))
            let large = prep.trainRows.count + prep.validationRows.count >= configuration.distributedRows
            // Networks that may spread over several nodes go first, so they find the nodes free.
            let order = large ? names.filter { prep.isDistributable($0) } + names.filter { !prep.isDistributable($0) } : names
            for name in order {
                try checkCancelled(id)
                let candidate = CandidateJob(runId: id, request: request, candidate: name, budgetSeconds: share,
                                             preprocessor: prep.preprocessor, fingerprint: prep.fingerprint, deadlineUnixMs: deadline)
                let nodes = large && prep.isDistributable(name) ? max(1, configuration.maxNodes) : 1
                let spec = JobSpec(name: "\(id):\(name)", datasetId: datasetId, target: request.target, model: "builder",
                                   minNodes: 1, maxNodes: nodes, seed: request.seed, maxRestarts: 1, task: prep.task.rawValue,
                                   user: run.owner, stallTimeoutSeconds: Int(max(1, configuration.stallTimeout.seconds)), builder: try candidate.encoded())
                let info = try await jobs.submit(spec, builderCandidate: true)
                submitted[name] = info.jobId
                try await client.execute("UPDATE builder_runs SET candidate_jobs = $2::jsonb WHERE id = $1",
                                         [.text(id), .text(String(decoding: try JSONEncoder().encode(submitted), as: UTF8.self))])
            }
            progress("\(names.count) candidate jobs submitted (\(Int(share)) s each): " +
                     names.map { "\($0) \(submitted[$0]!)" }.joined(separator: ", "))

            // Wait for them.
            var ended: [String: JobInfo] = [:]
            var pendingSince: [String: ContinuousClock.Instant] = [:]
            while ended.count < names.count {
                // active jobs are answered from the job manager's memory: polling is cheap
                try await Task.sleep(for: .milliseconds(200))
                try checkCancelled(id)
                var lines: [String] = []
                for name in names where ended[name] == nil {
                    let info = try await jobs.info(of: submitted[name]!)
                    switch info.state {
                    case "completed", "failed", "cancelled":
                        ended[name] = info
                    case "pending":
                        let since = pendingSince[name] ?? clock.now
                        pendingSince[name] = since
                        if clock.now - since > configuration.queueTimeout {
                            _ = try? await jobs.cancel(info.jobId, reason: "no node took this builder candidate within \(configuration.queueTimeout)")
                        }
                        lines.append("\(name) pending (\(info.reason.isEmpty ? "waiting for a node" : info.reason))")
                    default:
                        pendingSince[name] = nil
                        let on = info.nodes.count > 1 ? " on \(info.nodes.count) nodes" : info.nodes.first.map { " on \($0)" } ?? ""
                        lines.append("\(name) \(info.state)\(on)" + (info.step > 0 ? ", epoch \(info.step)" : ""))
                    }
                }
                let done = names.filter { ended[$0] != nil }.map { "\($0) \(ended[$0]!.state)" }
                setProgress(id, (lines + done).joined(separator: "; "))
            }

            // Read the outcomes back and finish the run.
            var outcomes: [CandidateOutcome] = []
            var notes = imageNotes
            for name in names {
                let info = ended[name]!
                guard info.state == "completed" else {
                    notes.append("\(name) (job \(info.jobId)) \(info.state): \(info.reason)")
                    continue
                }
                let file = try await jobs.checkpointFile(info.jobId, "")
                guard let bytes = FileManager.default.contents(atPath: file.path) else {
                    notes.append("\(name) (job \(info.jobId)): its result file is missing")
                    continue
                }
                var outcome = try CandidateOutcome(decoding: Array(bytes), source: "the result of job \(info.jobId)")
                outcome.row.params["job"] = info.jobId
                outcomes.append(outcome)
            }
            let title = "Nebula builder: \(row.info.name) → \(request.target)"
            let finishing = FinishingRun(prepared: prepared, outcomes: outcomes)
            let candidateJobs = submitted
            let finalNotes = notes
            let image = imageInput
            let (resultJSON, summary) = try await runOnThread(name: "nebula.builder.finish") { [self] () -> (String, String) in
                var (result, bundle) = try AutoBuilder.finish(finishing.prepared.dataset, finishing.prepared.prep, outcomes: finishing.outcomes,
                                                              notes: finalNotes, started: { (clock.now - started).seconds }, progress: progress)
                result.candidateJobs = candidateJobs
                bundle.image = image
                result.imageInput = image
                try bundle.encoded().write(to: URL(fileURLWithPath: self.modelPath(id)), options: .atomic)
                try BuilderReport.html(result, title: title, runId: id).write(toFile: self.reportPath(id), atomically: true, encoding: .utf8)
                let encoder = JSONEncoder()
                encoder.keyEncodingStrategy = .convertToSnakeCase
                encoder.outputFormatting = .sortedKeys
                encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
                return (String(decoding: try encoder.encode(result), as: UTF8.self),
                        "\(result.bestModel) \(result.evalMetric) \(result.leaderboard.first { $0.best }?.scoreVal ?? .nan)")
            }
            try checkCancelled(id)
            try await client.execute("""
                UPDATE builder_runs SET state = 'completed', result = $2::jsonb, finished_at = now(), progress = 'done' WHERE id = $1
                """, [.text(id), .text(resultJSON)])
            logger.info("builder run completed", metadata: ["builder.id": "\(id)", "best": "\(summary)"])
        } catch {
            let cancelled = error as? RunCancelled
            for job in submitted.values {
                if let state = try? await jobs.state(of: job), !["completed", "failed", "cancelled"].contains(state) {
                    _ = try? await jobs.cancel(job, reason: "its builder run \(id) \(cancelled == nil ? "failed" : "was cancelled")")
                }
            }
            let message = cancelled?.message ?? (error as? BuilderError)?.message
                ?? (error is CancellationError ? "the coordinator stopped during this run; start it again" : "\(error)")
            _ = try? await client.execute("UPDATE builder_runs SET state = $3, error = $2, finished_at = now() WHERE id = $1",
                                          [.text(id), .text(message), .text(cancelled == nil ? "failed" : "cancelled")])
            try? FileManager.default.removeItem(atPath: directory(of: id))
            if cancelled != nil {
                logger.info("builder run cancelled", metadata: ["builder.id": "\(id)", "reason": "\(message)"])
            } else {
                logger.warning("builder run failed", metadata: ["builder.id": "\(id)", "error": "\(message)"])
            }
        }
        live[id] = nil
        cancelRequests[id] = nil
    }

    /// An image-folder dataset's images as a pixel table, stored as a dataset of the run's owner
    /// (Note [Images as pixel tables]); answers its id, its columnar file and notes for the report.
    private func pixelTable(run id: String, owner: String, row: DatasetStore.Row, target: String,
                            progress: @escaping @Sendable (String) -> Void) async throws -> (String, String, [String], ImageInput) {
        let staging = datasets.root + "/.builder-" + id
        try? FileManager.default.removeItem(atPath: staging)
        try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)
        let csv = staging + "/pixels.csv"
        let table = datasets.absolute(row.path), base = datasets.directory(of: row.info.datasetId)
        let maxSide = configuration.imageSide
        let summary: ImagePixelTable.Summary
        do {
            summary = try await runOnThread(name: "nebula.builder.images") {
                try ImagePixelTable.write(try ColumnarDataset(path: table), target: target, baseDirectory: base, maxSide: maxSide,
                                          to: csv, progress: progress)
            }
        } catch {
            try? FileManager.default.removeItem(atPath: staging)
            throw error
        }
        let bytes = (try? FileManager.default.attributesOfItem(atPath: csv)[.size] as? NSNumber)?.uint64Value ?? 0
        let kind = summary.channels == 3 ? "RGB" : "grey"
        let info = try await datasets.adoptUpload(
            staged: staging,
            header: UploadHeader(name: "\(row.info.name) (\(summary.side)x\(summary.side) \(kind) pixels)", fileName: "pixels.csv",
                                 totalBytes: bytes),
            owner: owner)
        progress("images stored as the pixel table \(info.datasetId); converting it")
        while true {
            try await Task.sleep(for: .milliseconds(200))
            guard let derived = try await datasets.row(info.datasetId) else {
                throw BuilderError(.invalidRequest, "the pixel table \(info.datasetId) was deleted while it was converted")
            }
            if derived.info.state == .ready {
                var notes = ["the \(summary.images) images were decoded to \(summary.side)×\(summary.side) \(kind) pixels, stored as dataset \(info.datasetId) (its candidates train on that table)"]
                if summary.failed > 0 {
                    notes.append("\(summary.failed) images could not be read and were left out: " + summary.failures.prefix(5).joined(separator: "; "))
                }
                return (info.datasetId, datasets.absolute(derived.path), notes, ImageInput(side: summary.side, channels: summary.channels))
            }
            if derived.info.state.isFinal {
                throw BuilderError(.invalidRequest, "the pixel table of the images could not be stored: \(derived.info.error)")
            }
        }
    }

    private static let columns = """
        id, owner, dataset_id, state, progress, error, request::text AS request, coalesce(result::text, '') AS result,
        candidate_jobs::text AS candidate_jobs,
        (extract(epoch FROM created_at) * 1000)::bigint AS created_ms,
        (extract(epoch FROM finished_at) * 1000)::bigint AS finished_ms
        """

    private func run(_ r: PGRow) throws -> BuilderRun {
        let id = try r.string("id")
        let stored = try r.string("progress")
        return BuilderRun(id: id, owner: try r.string("owner"), datasetId: try r.string("dataset_id"), state: try r.string("state"),
                          progress: live[id] ?? stored, error: try r.string("error"),
                          request: try JSONDecoder().decode(BuilderRequest.self, from: Data(try r.string("request").utf8)),
                          resultJSON: try r.string("result"),
                          candidateJobs: (try? JSONDecoder().decode([String: String].self, from: Data(try r.string("candidate_jobs").utf8))) ?? [:],
                          createdUnixMs: try r.int64("created_ms"),
                          finishedUnixMs: try r.optionalInt64("finished_ms"))
    }

    func get(_ id: String) async throws -> BuilderRun? {
        try await client.query("SELECT \(Self.columns) FROM builder_runs WHERE id = $1", [.text(id)]).first.map(run)
    }

    func list(owner: String?, limit: Int, offset: Int) async throws -> [BuilderRun] {
        try await client.query("""
            SELECT \(Self.columns) FROM builder_runs WHERE ($1::text IS NULL OR owner = $1)
            ORDER BY created_at DESC, id LIMIT $2 OFFSET $3
            """, [PGValue(owner), PGValue(limit), PGValue(offset)]).map(run)
    }

    /// Predicts image files with a completed run's model (one trained on an image-folder dataset).
    nonisolated func predictImages(_ id: String, files: [(name: String, bytes: [UInt8])]) async throws -> (csv: String, rows: Int) {
        let path = modelPath(id)
        let box = ImageFiles(files: files)
        return try await runOnThread(name: "nebula.predict") {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw BuilderError(.invalidRequest, "run \(id) has no model file")
            }
            return try ModelBundle(decoding: data).predictImages(box.files)
        }
    }

    /// Predicts a CSV with a completed run's model.
    nonisolated func predict(_ id: String, csv: [UInt8]) async throws -> (csv: String, rows: Int) {
        let path = modelPath(id)
        return try await runOnThread(name: "nebula.predict") {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw BuilderError(.invalidRequest, "run \(id) has no model file")
            }
            return try ModelBundle(decoding: data).predictCSV(csv, source: "the uploaded CSV")
        }
    }
}

/// A run stopped by `cancel` (Note [Cancelling a builder run]).
struct RunCancelled: Error {
    var message: String
}

/// A cancel of a run that has already ended.
struct BuilderCancelRefused: Error {
    var state: String
}

/// A delete of a run that is still queued or running.
struct BuilderDeleteRefused: Error {
    var state: String
}

/// A prepared run handed between the threads of one run (read-only once made).
final class PreparedRun: @unchecked Sendable {
    let dataset: ColumnarDataset
    let prep: BuilderPreparation
    init(dataset: ColumnarDataset, prep: BuilderPreparation) {
        self.dataset = dataset
        self.prep = prep
    }
}

private struct FinishingRun: @unchecked Sendable {
    let prepared: PreparedRun
    let outcomes: [CandidateOutcome]
}

private struct ImageFiles: @unchecked Sendable {
    let files: [(name: String, bytes: [UInt8])]
}
