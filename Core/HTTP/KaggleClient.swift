import Foundation
import Logging

/// Downloads Kaggle datasets through the public REST API the official `kaggle` client uses:
/// `GET {base}/api/v1/datasets/download/{owner}/{slug}[?datasetVersionNumber=N]` with HTTP Basic
/// authentication (user name, API key). Kaggle answers with a redirect to a signed storage URL that
/// serves the dataset as one ZIP archive; the credentials are not sent to that other host.
public struct KaggleClient: Sendable {
    public static let defaultBaseURL = URL(string: "https://www.kaggle.com")!

    public let credentials: KaggleCredentials
    public let baseURL: URL
    private let http: HTTPClient
    private let logger: Logger

    /// - Parameters:
    ///   - baseURL: scheme, host and port of the API (tests use a local server).
    ///   - http: shared client; by default one of its own.
    public init(credentials: KaggleCredentials, baseURL: URL = KaggleClient.defaultBaseURL,
                http: HTTPClient = HTTPClient(), logger: Logger) {
        self.credentials = credentials
        self.baseURL = baseURL
        self.http = http
        self.logger = logger
        if let warning = credentials.permissionWarning { logger.warning("\(warning)") }
    }

    /// The result of a dataset download.
    public struct Download: Sendable {
        public var dataset: KaggleDatasetRef
        /// The ZIP file written.
        public var path: String
        public var bytes: Int64
        /// Where the archive finally came from (the storage URL after Kaggle's redirect).
        public var sourceURL: URL
    }

    /// The API URL of a dataset's archive.
    public func downloadURL(for dataset: KaggleDatasetRef, version: Int? = nil) -> URL {
        var url = baseURL.appendingPathComponent("api/v1/datasets/download")
            .appendingPathComponent(dataset.owner).appendingPathComponent(dataset.slug)
        if let version, var components = URLComponents(url: url, resolvingAgainstBaseURL: false) {
            components.queryItems = [URLQueryItem(name: "datasetVersionNumber", value: String(version))]
            url = components.url ?? url
        }
        return url
    }

    /// Downloads the dataset's ZIP archive to `path` (replaced only when the download is complete).
    /// - Parameters:
    ///   - version: a dataset version number; nil for the latest.
    ///   - progress: bytes written so far and the archive size when known.
    /// - Throws: `KaggleError` (`.unauthorized`, `.forbidden`, `.notFound`, `.transfer`), or
    ///   `CancellationError` when the task is cancelled.
    @discardableResult
    public func downloadDataset(_ dataset: KaggleDatasetRef, version: Int? = nil, to path: String,
                                progress: @escaping HTTPProgressHandler = { _, _ in }) async throws -> Download {
        let url = downloadURL(for: dataset, version: version)
        let request = HTTPRequest(url: url, headers: ["Accept": "application/zip, application/octet-stream, */*"],
                                  authorization: .basic(username: credentials.username, password: credentials.key))
        var log = logger
        log[metadataKey: "kaggle.dataset"] = "\(dataset)"
        log.info("downloading Kaggle dataset", metadata: ["kaggle.url": "\(url)", "file.path": "\(path)"])
        let response: HTTPResponse
        do {
            response = try await http.download(request, to: path, progress: progress)
        } catch let error as HTTPError {
            throw translate(error, dataset: dataset, version: version)
        }
        log.info("downloaded Kaggle dataset", metadata: ["file.bytes": "\(response.receivedBytes)",
                                                           "http.redirects": "\(response.redirectCount)"])
        return Download(dataset: dataset, path: path, bytes: response.receivedBytes, sourceURL: response.url)
    }

    private func translate(_ error: HTTPError, dataset: KaggleDatasetRef, version: Int?) -> KaggleError {
        guard error.code == .httpStatus, let status = error.status else {
            return KaggleError(code: .transfer, message: "downloading \(dataset) failed: \(error.message)", underlying: error)
        }
        let detail = Self.serverMessage(error.responseBody).map { " Kaggle said: \($0)" } ?? ""
        let what = version.map { "dataset \(dataset) version \($0)" } ?? "dataset \(dataset)"
        switch status {
        case 401:
            return KaggleError(code: .unauthorized, message: """
                Kaggle rejected the credentials of user '\(credentials.username)' (HTTP 401) for \(what). \
                Check the username and key in \(credentialsLocation) or create a new token on \
                https://www.kaggle.com/settings (API, "Create New Token").\(detail)
                """, status: status, underlying: error)
        case 403:
            return KaggleError(code: .forbidden, message: """
                Kaggle refused access to \(what) for user '\(credentials.username)' (HTTP 403): the credentials \
                were accepted but this account may not download it; open \
                https://www.kaggle.com/datasets/\(dataset.owner)/\(dataset.slug) and accept its terms, or check \
                that it is shared with you.\(detail)
                """, status: status, underlying: error)
        case 404:
            return KaggleError(code: .notFound, message: """
                Kaggle has no \(what) (HTTP 404); check the owner and slug in \
                https://www.kaggle.com/datasets/\(dataset.owner)/\(dataset.slug) (a private dataset not shared with \
                '\(credentials.username)' also answers 404).\(detail)
                """, status: status, underlying: error)
        default:
            return KaggleError(code: .transfer, message: "downloading \(what) failed: HTTP \(status).\(detail)",
                               status: status, underlying: error)
        }
    }

    private var credentialsLocation: String {
        switch credentials.source {
        case .file(let path): return path
        case .environment: return "KAGGLE_USERNAME/KAGGLE_KEY"
        case .explicit: return "the credentials given"
        }
    }

    /// `message` of Kaggle's JSON error body (`{"code": 404, "message": "Not found"}`), if any.
    static func serverMessage(_ body: Data?) -> String? {
        guard let body, !body.isEmpty,
              let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any],
              let message = object["message"] as? String, !message.isEmpty else { return nil }
        return String(message.prefix(300))
    }
}
