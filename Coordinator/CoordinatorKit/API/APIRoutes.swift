import Foundation
import Hummingbird
import Logging
import NebulaStore

/// What the API routes call: the same services the gRPC methods use.
struct APIServices: Sendable {
    let datasets: DatasetService
    let jobs: JobManager
    let builder: BuilderService
    let registry: NodeRegistry
    let store: CoordinatorStore
    let startedUnixMs: Int64
    let version: String
    /// The cluster's admin token: also accepted as a bearer token for the built-in admin (the CLI).
    let adminToken: String
}

/// Registers every route (one file per area: auth and users, datasets, jobs and downloads, cluster
/// and operations).
struct APIRoutes: Sendable {
    let table: APIRouteTable
    let auth: AuthService
    let services: APIServices
    let configuration: APIConfiguration
    let metrics: APIMetrics
    let pool: PostgresPool
    let dataDirectory: String
    var uploadDirectory: String { dataDirectory + "/api/uploads" }
    let logger: Logger

    func register() {
        registerOperations()
        registerAuth()
        registerUsers()
        registerDatasets()
        registerJobs()
        registerBuilder()
        registerDownloads()
        registerCluster()
    }

    func add(_ spec: RouteSpec, _ handler: @escaping RouteHandler) { table.add(spec, handler) }

    /// The route's `{name}` parameter.
    static func parameter(_ context: APIContext, _ name: String) throws -> String {
        guard let value = context.parameters.get(name), !value.isEmpty else { throw APIError.badRequest("missing path parameter \(name)") }
        return value
    }

    /// Limit and offset query parameters with their bounds.
    static func page(_ request: Request, defaultLimit: Int = 50) throws -> (limit: Int, offset: Int) {
        (try request.intQuery("limit", default: defaultLimit, range: 1...1000),
         try request.intQuery("offset", default: 0, range: 0...Int(Int32.max)))
    }

    static func userAgent(_ request: Request) -> String { request.headers[.userAgent] ?? "" }
}
