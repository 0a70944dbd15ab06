import Foundation
import Logging
import NebulaBuilder
import NebulaCommon
import NebulaDataset
import NebulaStore

// Note [Builder service]
// ~~~~~~~~~~~~~~~~~~~~~~
// Runs of the ML system builder (Note [Builder runs]) queue in `builder_runs` and execute one at a
// time on a thread of their own in the coordinator: the dataset's columnar file is read where it
// lies, and the candidates train in this process (not as cluster jobs yet). A run's files live in
// `<data dir>/builder/<id>/`: `model.json` (Note [Model bundle]) and `report.html`; its result (task,
// leaderboard, metrics, report data) is stored as JSON in the row. A run cut short by a restart
// becomes FAILED with that reason.

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
    public var createdUnixMs: Int64
    public var finishedUnixMs: Int64?
}

public actor BuilderService {
    let root: String
    private let client: PostgresClient
    private let datasets: DatasetService
    private let logger: Logger
    private var queue: [String] = []
    private var worker: Task<Void, Never>?
    private var live: [String: String] = [:]

    init(dataDirectory: String, client: PostgresClient, datasets: DatasetService, logger: Logger) throws {
        root = dataDirectory + "/builder"
        self.client = client
        self.datasets = datasets
        self.logger = logger
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }

    func recover() async throws {
        let ids = try await client.query("""
            UPDATE builder_runs SET state = 'failed', finished_at = now(),
                error = 'the coordinator stopped during this run; start it again'
            WHERE state IN ('queued', 'running') RETURNING id
            """).map { try $0.string("id") }
        for id in ids { logger.warning("builder run interrupted by a restart", metadata: ["builder.id": "\(id)"]) }
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
        guard row.info.kind != .imageFolders else {
            throw BuilderError(.invalidRequest, "dataset \(datasetId) is a folder of images: the builder trains on tables and text so far (images given as pixel columns of a CSV work)",
                               field: "dataset_id")
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

    private func execute(_ id: String) async {
        do {
            guard let run = try await get(id), let row = try await datasets.row(run.datasetId) else {
                throw BuilderError(.invalidRequest, "the dataset of this run was deleted")
            }
            try await client.execute("UPDATE builder_runs SET state = 'running', started_at = now() WHERE id = $1", [.text(id)])
            let path = datasets.absolute(row.path)
            let dir = directory(of: id)
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let request = run.request
            let title = "Nebula builder: \(row.info.name) → \(request.target)"
            let log = logger
            let (resultJSON, summary) = try await runOnThread(name: "nebula.builder") { [self] () -> (String, String) in
                let (result, bundle) = try AutoBuilder.run(try ColumnarDataset(path: path), request) { line in
                    log.info("builder: \(line)", metadata: ["builder.id": "\(id)"])
                    Task { await self.setProgress(id, line) }
                }
                try bundle.encoded().write(to: URL(fileURLWithPath: self.modelPath(id)), options: .atomic)
                try BuilderReport.html(result, title: title, runId: id).write(toFile: self.reportPath(id), atomically: true, encoding: .utf8)
                let encoder = JSONEncoder()
                encoder.keyEncodingStrategy = .convertToSnakeCase
                encoder.outputFormatting = .sortedKeys
                return (String(decoding: try encoder.encode(result), as: UTF8.self),
                        "\(result.bestModel) \(result.evalMetric) \(result.leaderboard.first { $0.best }?.scoreVal ?? .nan)")
            }
            try await client.execute("""
                UPDATE builder_runs SET state = 'completed', result = $2::jsonb, finished_at = now(), progress = 'done' WHERE id = $1
                """, [.text(id), .text(resultJSON)])
            logger.info("builder run completed", metadata: ["builder.id": "\(id)", "best": "\(summary)"])
        } catch {
            let message = (error as? BuilderError)?.message ?? "\(error)"
            _ = try? await client.execute("UPDATE builder_runs SET state = 'failed', error = $2, finished_at = now() WHERE id = $1",
                                          [.text(id), .text(message)])
            try? FileManager.default.removeItem(atPath: directory(of: id))
            logger.warning("builder run failed", metadata: ["builder.id": "\(id)", "error": "\(message)"])
        }
        live[id] = nil
    }

    private static let columns = """
        id, owner, dataset_id, state, progress, error, request::text AS request, coalesce(result::text, '') AS result,
        (extract(epoch FROM created_at) * 1000)::bigint AS created_ms,
        (extract(epoch FROM finished_at) * 1000)::bigint AS finished_ms
        """

    private func run(_ r: PGRow) throws -> BuilderRun {
        let id = try r.string("id")
        let stored = try r.string("progress")
        return BuilderRun(id: id, owner: try r.string("owner"), datasetId: try r.string("dataset_id"), state: try r.string("state"),
                          progress: live[id] ?? stored, error: try r.string("error"),
                          request: try JSONDecoder().decode(BuilderRequest.self, from: Data(try r.string("request").utf8)),
                          resultJSON: try r.string("result"), createdUnixMs: try r.int64("created_ms"),
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
