import Foundation
import Hummingbird
import NebulaCommon
import NebulaDataset
import NebulaModel
import NIOCore

extension APIRoutes {
    func registerDatasets() {
        let services = self.services
        let routes = self
        let pool = self.pool

        add(RouteSpec(method: .get, path: "/api/datasets", access: .user, group: "read", tag: "datasets",
                      summary: "Your datasets, newest first (admins: everyone's)",
                      query: ["limit": "1–1000, default 50", "offset": "default 0"])) { request, context in
            let user = try context.caller()
            let (limit, offset) = try Self.page(request)
            // Straight from the API's own connections: listing never waits for the dataset service.
            let (rows, total) = try await DatasetStore(client: pool.client).list(limit: limit, offset: offset,
                                                                                 owner: user.role == .admin ? nil : user.id)
            return try jsonObjectResponse(["datasets": try rows.map { try Self.datasetObject($0, withDocuments: false) },
                                           "total": total, "limit": limit, "offset": offset])
        }

        add(RouteSpec(method: .post, path: "/api/datasets", access: .user, group: "upload", tag: "datasets",
                      summary: "Upload one file (CSV, TSV, text, JSON, ZIP) or many (a folder: images or text per class); converted in the background",
                      body: .multipart, query: ["name": "dataset name (default: the file name)",
                                                "skip_bad_rows": "true: drop malformed CSV rows instead of failing"],
                      success: 201)) { request, context in
            let user = try context.caller()
            let staged = try await routes.receiveMultipart(request, context: context)
            let info = try await services.datasets.adoptUpload(staged: staged.directory, header: staged.header, owner: user.id)
            return try jsonObjectResponse(try Self.datasetObject(info: info), status: .created)
        }

        add(RouteSpec(method: .get, path: "/api/datasets/{id}", access: .user, group: "read", tag: "datasets",
                      summary: "One dataset with its profile and ingest report")) { _, context in
            let row = try await routes.ownedDataset(context)
            return try jsonObjectResponse(try Self.datasetObject(row, withDocuments: true))
        }

        add(RouteSpec(method: .get, path: "/api/datasets/{id}/preview", access: .user, group: "read", tag: "datasets",
                      summary: "Rows of a ready dataset, paginated (values as text, null when missing)",
                      query: ["limit": "1–1000, default 50", "offset": "default 0"])) { request, context in
            let row = try await routes.readyDataset(context)
            let (limit, offset) = try Self.page(request)
            let path = services.datasets.absolute(row.path)
            struct Page: Sendable {
                var columns: [(name: String, type: String)]
                var rows: [[String?]]
                var total: Int
            }
            let page = try await runOnThread(name: "nebula.preview") { () -> Page in
                let dataset = try ColumnarDataset(path: path, verify: .header)
                let end = min(dataset.rowCount, offset + limit)
                let columns = (0..<dataset.columnCount).map { dataset.column(at: $0) }
                let rows = offset < end ? (offset..<end).map { r in columns.map { $0.string(r) } } : []
                return Page(columns: columns.map { ($0.name, "\($0.type)") }, rows: rows, total: dataset.rowCount)
            }
            return try jsonObjectResponse([
                "columns": page.columns.map { ["name": $0.name, "type": $0.type] },
                "rows": page.rows.map { $0.map { $0 as Any? ?? NSNull() } },
                "total": page.total, "offset": offset, "limit": limit,
            ] as [String: Any])
        }

        add(RouteSpec(method: .delete, path: "/api/datasets/{id}", access: .user, group: "write", tag: "datasets",
                      summary: "Delete a dataset with its files and shards", success: 204)) { _, context in
            let row = try await routes.ownedDataset(context)
            _ = try await services.datasets.delete(row.info.datasetId)
            return Response(status: .noContent)
        }
    }

    /// The dataset named by `{id}` if the caller may see it; 404 otherwise (Note [Roles and tenancy]).
    func ownedDataset(_ context: APIContext) async throws -> DatasetStore.Row {
        let id = try Self.parameter(context, "id")
        guard let row = try await services.datasets.row(id), try context.caller().owns(row.owner) else {
            throw APIError.notFound("dataset \(id)")
        }
        return row
    }

    func readyDataset(_ context: APIContext) async throws -> DatasetStore.Row {
        let row = try await ownedDataset(context)
        guard row.info.state == .ready, !row.path.isEmpty else {
            throw APIError(.conflict, "dataset_not_ready", row.info.state == .ready
                ? "dataset \(row.info.datasetId) (\(row.info.kind.rawValue)) has no table"
                : "dataset \(row.info.datasetId) is \(row.info.state.rawValue); wait until it is ready")
        }
        return row
    }

    static func datasetObject(info: DatasetInfo) throws -> [String: Any] {
        guard var object = try jsonObject(info) as? [String: Any] else { return [:] }
        object["id"] = info.datasetId
        object["state"] = info.state.rawValue
        object["kind"] = info.kind.rawValue
        return object
    }

    static func datasetObject(_ row: DatasetStore.Row, withDocuments: Bool) throws -> [String: Any] {
        var object = try datasetObject(info: row.info)
        object["owner"] = row.owner
        if withDocuments {
            object["profile"] = parsedJSON(row.profileJSON)
            object["report"] = parsedJSON(row.reportJSON)
        }
        return object
    }
}
