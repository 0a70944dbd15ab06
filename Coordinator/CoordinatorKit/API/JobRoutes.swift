import Foundation
import HTTPTypes
import Hummingbird
import NebulaDataset
import NebulaModel
import NebulaRPC
import NIOCore

extension APIRoutes {
    /// The body of `POST /api/process/jobs`; unset fields take the CLI's defaults.
    struct JobSubmission: Decodable {
        var datasetId: String
        var target: String
        var name: String?
        var model: String?
        var task: String?
        var nodes: Int?
        var minNodes: Int?
        var maxNodes: Int?
        var gpusPerNode: Int?
        var labels: [String: String]?
        var priority: Int?
        var epochs: Int?
        var batchSize: Int?
        var learningRate: Double?
        var seed: UInt64?
        var maxRestarts: Int?
        var checkpointEvery: Int?
        var holdoutFraction: Double?
        var bucketCapMb: Int?
        var fp16Allreduce: Bool?
        var stallTimeoutSeconds: Int?
        var gpuBatchSize: Int?
        var noOverlap: Bool?

        func spec(user: String) -> JobSpec {
            let minimum = minNodes ?? nodes ?? 1
            return JobSpec(name: name ?? "", datasetId: datasetId, target: target, model: model ?? "mlp", minNodes: minimum,
                           maxNodes: maxNodes ?? nodes ?? minimum, gpusPerNode: gpusPerNode ?? 0, labels: labels ?? [:],
                           priority: priority ?? 0, epochs: epochs ?? 10, batchSize: batchSize ?? 64,
                           learningRate: learningRate ?? 0, seed: seed ?? 0, maxRestarts: maxRestarts ?? 3,
                           checkpointEvery: checkpointEvery ?? 0, holdoutFraction: holdoutFraction ?? 0, task: task ?? "",
                           bucketCapMB: bucketCapMb ?? 25, fp16Allreduce: fp16Allreduce ?? false, user: user,
                           stallTimeoutSeconds: stallTimeoutSeconds ?? 120, gpuBatchSize: gpuBatchSize ?? 0,
                           noOverlap: noOverlap ?? false)
        }
    }

    /// The service's messages name CLI flags; the API names JSON fields.
    static let flagFields = [
        "--nodes/--min-nodes": "min_nodes", "--max-nodes": "max_nodes", "--epochs": "epochs", "--batch-size": "batch_size",
        "--lr": "learning_rate", "--holdout": "holdout_fraction", "--max-restarts": "max_restarts",
        "--gpus-per-node": "gpus_per_node", "--task": "task", "--bucket-cap-mb": "bucket_cap_mb", "--model": "model",
        "--target": "target", "--dataset": "dataset_id", "--labels": "labels", "--priority": "priority",
        "--stall-timeout": "stall_timeout_seconds", "--checkpoint-every": "checkpoint_every",
        "--gpu-batch-size": "gpu_batch_size", "--fp16-allreduce": "fp16_allreduce", "--no-overlap": "no_overlap",
    ]

    static func fieldError(_ status: RPCStatus) -> APIError {
        guard status.code == .invalidArgument, let colon = status.message.firstIndex(of: ":"),
              let field = flagFields[String(status.message[..<colon])]
        else { return APIError.from(status) }
        return APIError.validation(field, status.message[status.message.index(after: colon)...].trimmingCharacters(in: .whitespaces))
    }

    func registerJobs() {
        let services = self.services
        let routes = self
        let limit = configuration.maxJSONBytes
        let submissionBody = RouteSpec.RequestBodyKind.json(
            schema: "JobSubmission", required: ["dataset_id", "target"],
            properties: ["dataset_id": "string", "target": "string", "name": "string", "model": "string", "task": "string",
                         "nodes": "integer", "min_nodes": "integer", "max_nodes": "integer", "gpus_per_node": "integer",
                         "labels": "object", "priority": "integer", "epochs": "integer", "batch_size": "integer",
                         "learning_rate": "number", "seed": "integer", "max_restarts": "integer", "checkpoint_every": "integer",
                         "holdout_fraction": "number", "bucket_cap_mb": "integer", "fp16_allreduce": "boolean",
                         "stall_timeout_seconds": "integer", "gpu_batch_size": "integer", "no_overlap": "boolean"])

        add(RouteSpec(method: .post, path: "/api/process/jobs", access: .user, group: "write", tag: "jobs",
                      summary: "Submit a distributed training job on one of your datasets", body: submissionBody, success: 201)) {
            request, context in
            let user = try context.caller()
            var request = request
            let body = try await request.decodeJSON(JobSubmission.self, context: context, limit: limit)
            // The dataset must be the caller's (or the caller an admin) — else it "does not exist".
            guard let row = try await services.datasets.row(body.datasetId), user.owns(row.owner) else {
                throw APIError(.notFound, "not_found", "dataset \(body.datasetId) not found", details: ["field": "dataset_id"])
            }
            do {
                let info = try await services.jobs.submit(body.spec(user: user.id))
                return try jsonObjectResponse(try Self.jobObject(info), status: .created)
            } catch let status as RPCStatus {
                throw Self.fieldError(status)
            }
        }

        add(RouteSpec(method: .get, path: "/api/process/jobs", access: .user, group: "read", tag: "jobs",
                      summary: "Your jobs, newest first (admins: everyone's)",
                      query: ["limit": "1–1000, default 50", "offset": "default 0", "state": "only jobs in this state"])) {
            request, context in
            let user = try context.caller()
            let (limit, offset) = try Self.page(request)
            let state = request.query("state")
            let (page, total) = try await services.jobs.page(owner: user.role == .admin ? nil : user.id, state: state, limit: limit,
                                                             offset: offset)
            return try jsonObjectResponse(["jobs": try page.map(Self.jobObject), "total": total, "limit": limit, "offset": offset])
        }

        add(RouteSpec(method: .get, path: "/api/process/jobs/{id}", access: .user, group: "read", tag: "jobs",
                      summary: "A job's status: state, restarts, ranks, checkpoints, holdout metrics")) { _, context in
            let detail = try await routes.ownedJob(context)
            var object = try Self.jobObject(detail.info)
            object["ranks"] = parsedJSON(detail.ranksJSON)
            object["checkpoints"] = parsedJSON(detail.checkpointsJSON)
            object["metrics"] = parsedJSON(detail.metricsJSON)
            return try jsonObjectResponse(object)
        }

        add(RouteSpec(method: .get, path: "/api/process/jobs/{id}/metrics", access: .user, group: "read", tag: "jobs",
                      summary: "Training progress points and the final holdout metrics")) { _, context in
            let detail = try await routes.ownedJob(context)
            return try jsonObjectResponse(["job_id": detail.info.jobId, "progress": parsedJSON(detail.progressJSON),
                                           "metrics": parsedJSON(detail.metricsJSON), "ranks": parsedJSON(detail.ranksJSON)])
        }

        add(RouteSpec(method: .get, path: "/api/process/jobs/{id}/events", access: .user, group: "read", tag: "jobs",
                      summary: "Every state transition of the job")) { _, context in
            let detail = try await routes.ownedJob(context)
            return try jsonObjectResponse(["job_id": detail.info.jobId, "events": parsedJSON(detail.eventsJSON)])
        }

        add(RouteSpec(method: .post, path: "/api/process/jobs/{id}/cancel", access: .user, group: "write", tag: "jobs",
                      summary: "Cancel a pending or running job")) { _, context in
            let detail = try await routes.ownedJob(context)
            return try jsonObjectResponse(try Self.jobObject(try await services.jobs.cancel(detail.info.jobId,
                                                                                           reason: "by \(try context.caller().id)")))
        }

        add(RouteSpec(method: .get, path: "/api/process/jobs/{id}/stream", access: .user, group: "read", tag: "jobs",
                      summary: "Live progress as Server-Sent Events (event: progress, then event: end)",
                      produces: "text/event-stream")) { _, context in
            let detail = try await routes.ownedJob(context)
            let id = detail.info.jobId
            var headers: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-cache"]
            headers[HTTPField.Name("X-Accel-Buffering")!] = "no"
            return Response(status: .ok, headers: headers, body: ResponseBody { writer in
                var last = ""
                var idle = 0
                while !Task.isCancelled {
                    let now = try await services.jobs.detail(id)
                    let object = try Self.jobObject(now.info)
                    let text = String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
                    if text != last {
                        try await writer.write(ByteBuffer(string: "event: progress\ndata: \(text)\n\n"))
                        last = text
                        idle = 0
                    } else {
                        idle += 1
                        // A comment line every ~15 s keeps proxies from closing an idle stream.
                        if idle % 30 == 0 { try await writer.write(ByteBuffer(string: ": keep-alive\n\n")) }
                    }
                    if ["completed", "failed", "cancelled"].contains(now.info.state) {
                        let end = String(decoding: try JSONSerialization.data(withJSONObject: [
                            "state": now.info.state, "metrics": parsedJSON(now.metricsJSON)], options: [.sortedKeys]), as: UTF8.self)
                        try await writer.write(ByteBuffer(string: "event: end\ndata: \(end)\n\n"))
                        break
                    }
                    try await Task.sleep(for: .milliseconds(500))
                }
                try await writer.finish(nil)
            })
        }
    }

    /// The job named by `{id}` if the caller may see it; 404 otherwise (Note [Roles and tenancy]).
    func ownedJob(_ context: APIContext, parameter: String = "id") async throws -> JobDetail {
        let id = try Self.parameter(context, parameter)
        let detail: JobDetail
        do {
            detail = try await services.jobs.detail(id)
        } catch let s as RPCStatus where s.code == .notFound {
            throw APIError.notFound("job \(id)")
        }
        guard try context.caller().owns(detail.info.spec.user) else { throw APIError.notFound("job \(id)") }
        return detail
    }

    static func jobObject(_ info: JobInfo) throws -> [String: Any] {
        guard var object = try jsonObject(info) as? [String: Any] else { return [:] }
        object["id"] = info.jobId
        object["owner"] = info.spec.user
        // Label keys are data: keep them as given (the encoder would re-case them).
        if var spec = object["spec"] as? [String: Any] {
            spec["labels"] = info.spec.labels
            object["spec"] = spec
        }
        return object
    }

    // MARK: Downloads

    func registerDownloads() {
        let services = self.services
        let routes = self

        add(RouteSpec(method: .get, path: "/api/download/models/{id}", access: .user, group: "read", tag: "downloads",
                      summary: "A model: the final checkpoint of a completed job (job-…), or a builder run's model file with its preprocessing (build-…)",
                      produces: "application/octet-stream")) {
            _, context in
            if try Self.parameter(context, "id").hasPrefix("build-") {
                let run = try await routes.completedRun(context)
                return try Self.fileResponse(services.builder.modelPath(run.id), name: "\(run.id)-model.json", sha256: "",
                                             contentType: "application/json")
            }
            let detail = try await routes.ownedJob(context)
            let (path, record) = try await services.jobs.checkpointFile(detail.info.jobId, "")
            return try Self.fileResponse(path, name: "\(detail.info.jobId)-model.ckpt", sha256: record.sha256)
        }

        add(RouteSpec(method: .get, path: "/api/download/checkpoints/{id}/{checkpoint}", access: .user, group: "read",
                      tag: "downloads", summary: "One checkpoint of a job", produces: "application/octet-stream")) { _, context in
            let detail = try await routes.ownedJob(context)
            let checkpoint = try Self.parameter(context, "checkpoint")
            let (path, record) = try await services.jobs.checkpointFile(detail.info.jobId, checkpoint)
            return try Self.fileResponse(path, name: "\(detail.info.jobId)-\(record.id).ckpt", sha256: record.sha256)
        }

        add(RouteSpec(method: .get, path: "/api/download/datasets/{id}", access: .user, group: "read", tag: "downloads",
                      summary: "A ready dataset as CSV (as stored after conversion)", produces: "text/csv")) { _, context in
            let row = try await routes.readyDataset(context)
            let path = services.datasets.absolute(row.path)
            var headers: HTTPFields = [.contentType: "text/csv; charset=utf-8"]
            headers[.contentDisposition] = Self.attachment("\(Self.folderName(row.info.name)).csv")
            return Response(status: .ok, headers: headers, body: ResponseBody { writer in
                let dataset = try ColumnarCSVExporter(path: path)
                var start = 0
                while let chunk = dataset.csv(from: start, rows: 2000) {
                    try await writer.write(ByteBuffer(string: chunk))
                    start += 2000
                }
                try await writer.finish(nil)
            })
        }
    }

    static func attachment(_ name: String) -> String {
        let safe = name.map { $0.isASCII && $0 != "\"" && $0 != "\\" && !$0.isNewline ? $0 : "_" }
        return "attachment; filename=\"\(String(safe))\""
    }

    /// A stored file streamed in 1 MiB pieces, with its name and checksum.
    static func fileResponse(_ path: String, name: String, sha256: String, contentType: String = "application/octet-stream") throws -> Response {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
              let size = (attributes[.size] as? NSNumber)?.intValue
        else { throw APIError(.notFound, "file_missing", "\(name) is missing on the coordinator") }
        var headers: HTTPFields = [.contentType: contentType, .contentLength: String(size)]
        headers[.contentDisposition] = attachment(name)
        if !sha256.isEmpty { headers[HTTPField.Name("X-Checksum-SHA256")!] = sha256 }
        return Response(status: .ok, headers: headers, body: ResponseBody(contentLength: size) { writer in
            guard let handle = FileHandle(forReadingAtPath: path) else { throw APIError(.notFound, "file_missing", "\(name) is gone") }
            defer { try? handle.close() }
            while let data = try handle.read(upToCount: 1 << 20), !data.isEmpty {
                try await writer.write(ByteBuffer(bytes: data))
            }
            try await writer.finish(nil)
        })
    }
}
