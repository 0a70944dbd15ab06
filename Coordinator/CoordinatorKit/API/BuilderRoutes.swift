import Foundation
import HTTPTypes
import Hummingbird
import NebulaBuilder
import NebulaCommon
import NIOCore

extension APIRoutes {
    struct BuilderSubmission: Decodable {
        var datasetId: String
        var target: String
        var task: String?
        /// Seconds, or a duration such as "10m" or "90s".
        var timeBudget: FlexibleDuration?
        var metric: String?
        var name: String?
        var seed: UInt64?
    }

    /// 600, "600", "10m", "90s", "1h".
    struct FlexibleDuration: Decodable {
        var seconds: Double
        init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let n = try? c.decode(Double.self) { seconds = n; return }
            let text = try c.decode(String.self)
            guard let d = Duration.parse(text) else {
                throw DecodingError.dataCorruptedError(in: c, debugDescription: "'\(text)' is not a duration (600, 90s, 10m, 1h)")
            }
            seconds = d.seconds
        }
    }

    static func builderError(_ e: BuilderError) -> APIError {
        var error = APIError(.unprocessableContent, e.kind == .invalidInput ? "invalid_input" : "invalid_request", e.message)
        if let field = e.field { error.details["field"] = field }
        return error
    }

    func registerBuilder() {
        let services = self.services
        let routes = self
        let limit = configuration.maxJSONBytes

        add(RouteSpec(method: .post, path: "/api/process/builder", access: .user, group: "write", tag: "builder",
                      summary: "Start an ML builder run: task detection, candidate models, leaderboard, report, best model",
                      body: .json(schema: "BuilderSubmission", required: ["dataset_id", "target"],
                                  properties: ["dataset_id": "string", "target": "string", "task": "string", "time_budget": "string",
                                               "metric": "string", "name": "string", "seed": "integer"]),
                      success: 202)) { request, context in
            let user = try context.caller()
            var request = request
            let body = try await request.decodeJSON(BuilderSubmission.self, context: context, limit: limit)
            guard let row = try await services.datasets.row(body.datasetId), user.owns(row.owner) else {
                throw APIError(.notFound, "not_found", "dataset \(body.datasetId) not found", details: ["field": "dataset_id"])
            }
            let seconds = body.timeBudget?.seconds ?? 600
            guard seconds >= 1, seconds <= 86_400 else { throw APIError.validation("time_budget", "must be between 1 s and 24 h") }
            do {
                let run = try await services.builder.start(
                    owner: user.id,
                    datasetId: body.datasetId, name: body.name ?? "",
                    request: BuilderRequest(target: body.target, task: body.task, timeBudgetSeconds: seconds, metric: body.metric,
                                            seed: body.seed ?? 0))
                return try jsonObjectResponse(try Self.runObject(run), status: .accepted)
            } catch let e as BuilderError {
                throw Self.builderError(e)
            }
        }

        add(RouteSpec(method: .get, path: "/api/process/builder", access: .user, group: "read", tag: "builder",
                      summary: "Your builder runs, newest first", query: ["limit": "1–1000, default 50", "offset": "default 0"])) {
            request, context in
            let user = try context.caller()
            let (limit, offset) = try Self.page(request)
            let runs = try await services.builder.list(owner: user.role == .admin ? nil : user.id, limit: limit, offset: offset)
            return try jsonObjectResponse(["runs": try runs.map { try Self.runObject($0, withResult: false) }, "limit": limit, "offset": offset])
        }

        add(RouteSpec(method: .get, path: "/api/process/builder/{id}", access: .user, group: "read", tag: "builder",
                      summary: "A run: state, progress, detected task, leaderboard, best model and its metrics")) { _, context in
            try jsonObjectResponse(try Self.runObject(try await routes.ownedRun(context)))
        }

        add(RouteSpec(method: .post, path: "/api/process/builder/{id}/cancel", access: .user, group: "write", tag: "builder",
                      summary: "Cancel a queued or running builder run: its candidate jobs are cancelled and the run ends CANCELLED (a running run stops at its next step)",
                      success: 202)) { _, context in
            let run = try await routes.ownedRun(context)
            do {
                let now = try await services.builder.cancel(run.id, reason: "by \(try context.caller().id)")
                return try jsonObjectResponse(try Self.runObject(now), status: .accepted)
            } catch let refused as BuilderCancelRefused {
                throw APIError(.conflict, "run_finished", "run \(run.id) is already \(refused.state): there is nothing to cancel")
            }
        }

        add(RouteSpec(method: .delete, path: "/api/process/builder/{id}", access: .user, group: "write", tag: "builder",
                      summary: "Delete an ended builder run with its model and report (cancel a queued or running one first)",
                      success: 204)) { _, context in
            let run = try await routes.ownedRun(context)
            do {
                try await services.builder.delete(run.id)
            } catch let refused as BuilderDeleteRefused {
                throw APIError(.conflict, "run_active", "run \(run.id) is \(refused.state): cancel it first (POST /api/process/builder/\(run.id)/cancel)")
            }
            return Response(status: .noContent)
        }

        add(RouteSpec(method: .get, path: "/api/process/builder/{id}/report", access: .user, group: "read", tag: "builder",
                      summary: "The run's report as an HTML page (charts are inline SVG)", produces: "text/html")) { _, context in
            let run = try await routes.completedRun(context)
            guard let html = FileManager.default.contents(atPath: services.builder.reportPath(run.id)) else {
                throw APIError(.notFound, "file_missing", "the report of \(run.id) is missing on the coordinator")
            }
            var headers: HTTPFields = [.contentType: "text/html; charset=utf-8"]
            headers[.contentSecurityPolicy] = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: html)))
        }

        add(RouteSpec(method: .get, path: "/api/download/reports/{id}", access: .user, group: "read", tag: "downloads",
                      summary: "The report of a builder run as a file", produces: "text/html")) { _, context in
            let run = try await routes.completedRun(context)
            return try Self.fileResponse(services.builder.reportPath(run.id), name: "\(run.id)-report.html", sha256: "",
                                         contentType: "text/html; charset=utf-8")
        }

        add(RouteSpec(method: .post, path: "/api/process/models/{id}/predict", access: .user, group: "write", tag: "builder",
                      summary: "Batch predictions: a CSV in (the training columns), the CSV with prediction columns out; models of image-folder datasets also take one image (image/png, image/jpeg; ?name=) or several (multipart/form-data)",
                      query: ["name": "the file name to report for a single image body"],
                      produces: "text/csv")) { request, context in
            let run = try await routes.completedRun(context)
            let type = request.headers[.contentType]?.lowercased() ?? "text/csv"
            func answer(_ out: String, _ rows: Int) -> Response {
                var headers: HTTPFields = [.contentType: "text/csv; charset=utf-8"]
                headers[HTTPField.Name("X-Predicted-Rows")!] = String(rows)
                return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: out)))
            }
            if type.hasPrefix("image/") || type.hasPrefix("multipart/form-data") {
                var files: [(name: String, bytes: [UInt8])] = []
                if type.hasPrefix("image/") {
                    var request = request
                    guard let body = try? await request.collectBody(upTo: 64 << 20) else {
                        throw APIError(.contentTooLarge, "body_too_large", "send at most 64 MiB of image per request")
                    }
                    files = [(request.query("name") ?? "image", Array(body.readableBytesView))]
                } else {
                    let staged = try await routes.receiveMultipart(request, context: context)
                    defer { try? FileManager.default.removeItem(atPath: staged.directory) }
                    let root = URL(fileURLWithPath: staged.directory)
                    let paths = (FileManager.default.enumerator(atPath: staged.directory)?.allObjects as? [String] ?? []).sorted()
                    for path in paths {
                        var isDirectory: ObjCBool = false
                        let full = root.appendingPathComponent(path).path
                        guard FileManager.default.fileExists(atPath: full, isDirectory: &isDirectory), !isDirectory.boolValue,
                              let data = FileManager.default.contents(atPath: full) else { continue }
                        // several files arrive under a folder of the upload's name: report their own paths
                        let folder = staged.header.directory ? staged.header.fileName + "/" : ""
                        let name = path.hasPrefix(folder) ? String(path.dropFirst(folder.count)) : path
                        files.append((name, Array(data)))
                    }
                }
                do {
                    let (out, rows) = try await services.builder.predictImages(run.id, files: files)
                    return answer(out, rows)
                } catch let e as BuilderError {
                    throw Self.builderError(e)
                }
            }
            if !type.hasPrefix("text/csv"), !type.hasPrefix("text/plain") {
                throw APIError(.unsupportedMediaType, "unsupported_media_type", "send the rows as text/csv, or images as image/png, image/jpeg or multipart/form-data (got \(type))")
            }
            var request = request
            let csv: ByteBuffer
            do {
                csv = try await request.collectBody(upTo: 64 << 20)
            } catch {
                throw APIError(.contentTooLarge, "body_too_large", "send at most 64 MiB of CSV per request")
            }
            do {
                let (out, rows) = try await services.builder.predict(run.id, csv: Array(csv.readableBytesView))
                return answer(out, rows)
            } catch let e as BuilderError {
                throw Self.builderError(e)
            }
        }
    }

    func ownedRun(_ context: APIContext) async throws -> BuilderRun {
        let id = try Self.parameter(context, "id")
        guard let run = try await services.builder.get(id), try context.caller().owns(run.owner) else {
            throw APIError.notFound("builder run \(id)")
        }
        return run
    }

    func completedRun(_ context: APIContext) async throws -> BuilderRun {
        let run = try await ownedRun(context)
        guard run.state == "completed" else {
            throw APIError(.conflict, "run_not_completed", run.state == "failed" || run.state == "cancelled"
                ? "run \(run.id) \(run.state): \(run.error)" : "run \(run.id) is \(run.state) (\(run.progress)); wait until it completes")
        }
        return run
    }

    static func runObject(_ run: BuilderRun, withResult: Bool = true) throws -> [String: Any] {
        var object: [String: Any] = [
            "id": run.id, "owner": run.owner, "dataset_id": run.datasetId, "state": run.state, "progress": run.progress,
            "error": run.error, "created_unix_ms": run.createdUnixMs, "finished_unix_ms": run.finishedUnixMs ?? NSNull(),
            "request": try jsonObject(run.request), "jobs": run.candidateJobs,
        ]
        if run.state == "completed" {
            object["model_id"] = run.id
            object["report_url"] = "/api/process/builder/\(run.id)/report"
        }
        guard let result = parsedJSON(run.resultJSON) as? [String: Any] else { return object }
        object["best"] = ["model": result["best_model"] ?? NSNull(), "metrics": result["best_metrics"] ?? NSNull()]
        object["task"] = result["task"]
        object["eval_metric"] = result["eval_metric"]
        guard withResult else { return object }
        for key in ["task", "modality", "task_reason", "eval_metric", "leaderboard", "classes", "rows", "train_rows",
                    "validation_rows", "holdout_fraction", "notes", "permutation_importance", "features", "skipped_columns", "image_input"] {
            object[key] = result[key]
        }
        return object
    }
}
