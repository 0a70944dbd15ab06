import Foundation
import Hummingbird
import NebulaModel
import NIOCore

extension APIRoutes {
    func registerOperations() {
        let services = self.services
        let pool = self.pool
        let metrics = self.metrics
        let table = self.table
        let dataDirectory = self.dataDirectory

        add(RouteSpec(method: .get, path: "/healthz", access: .public, group: nil, tag: "operations",
                      summary: "Liveness: the process answers")) { _, _ in
            try jsonResponse(["status": "ok"])
        }

        add(RouteSpec(method: .get, path: "/readyz", access: .public, group: nil, tag: "operations",
                      summary: "Readiness: PostgreSQL answers and the data directory is writable (503 otherwise)")) { _, _ in
            var checks: [String: String] = [:]
            do {
                _ = try await pool.client.query("SELECT 1")
                checks["database"] = "ok"
            } catch {
                checks["database"] = "unreachable"
            }
            checks["data_directory"] = FileManager.default.isWritableFile(atPath: dataDirectory) ? "ok" : "not writable"
            let ready = checks.values.allSatisfy { $0 == "ok" }
            return try jsonObjectResponse(["status": ready ? "ready" : "not ready", "checks": checks],
                                          status: ready ? .ok : .serviceUnavailable)
        }

        add(RouteSpec(method: .get, path: "/metrics", access: .public, group: nil, tag: "operations",
                      summary: "Prometheus text format: requests and latencies by route, jobs by state, nodes by state",
                      produces: "text/plain; version=0.0.4")) { _, _ in
            var jobs: [String: Int] = Dictionary(uniqueKeysWithValues: ["pending", "running", "completing", "completed", "failed",
                                                                        "cancelled", "node_fail", "restarting"].map { ($0, 0) })
            for (state, n) in try await services.jobs.countsByState() { jobs[state] = n }
            var nodes: [String: Int] = Dictionary(uniqueKeysWithValues: NodeState.allCases.map { ($0.rawValue, 0) })
            for node in await services.registry.list() { nodes[node.state.rawValue, default: 0] += 1 }
            metrics.set("jobs", help: "Jobs by state", label: "state", values: jobs)
            metrics.set("nodes", help: "Nodes by state", label: "state", values: nodes)
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(bytes: metrics.registry.emitToBuffer())))
        }

        add(RouteSpec(method: .get, path: "/api/openapi.json", access: .public, group: nil, tag: "operations",
                      summary: "This API as an OpenAPI 3.1 document")) { _, _ in
            try jsonObjectResponse(OpenAPIDocument.make(table.specs, version: services.version))
        }
    }

    func registerCluster() {
        let services = self.services

        add(RouteSpec(method: .get, path: "/api/cluster/nodes", access: .admin, group: "read", tag: "cluster",
                      summary: "Every node with its state, resources and latest health sample (admin)")) { _, _ in
            let nodes = await services.registry.list()
            return try jsonObjectResponse(["nodes": try nodes.map { node -> Any in
                guard var object = try jsonObject(node) as? [String: Any] else { return [:] }
                object["state"] = node.state.rawValue
                object["labels"] = node.resources.labels
                return object
            }])
        }

        add(RouteSpec(method: .get, path: "/api/cluster/health", access: .admin, group: "read", tag: "cluster",
                      summary: "Cluster summary: nodes by state, database, coordinator version and uptime (admin)")) { _, _ in
            var health = await services.registry.health()
            health.databaseOK = services.store.client.isAvailable
            health.spooledRecords = UInt64(await services.store.writer.spooledCount)
            health.coordinatorStartedUnixMs = services.startedUnixMs
            health.coordinatorVersion = services.version
            return try jsonResponse(health)
        }
    }
}
