import Foundation
import Logging
import NebulaArchive
import NebulaCommon
import NebulaDataset
import NebulaHTTP
import NebulaModel
import NebulaRPC

/// Settings of the dataset service.
public struct DatasetConfiguration: Sendable {
    /// Largest upload accepted (all files of one upload together).
    public var maxUploadBytes: UInt64 = 64 << 30
    /// Space that must stay free on the data directory's file system after an upload.
    public var reserveFreeBytes: UInt64 = 1 << 30
    /// CSV parser threads per conversion.
    public var ingestThreads = max(1, ProcessInfo.processInfo.activeProcessorCount)
    /// Limits on archives (size, ratio, entries).
    public var zipLimits = ZIPExtractionLimits()
    /// Kaggle API base URL (tests point it at a local server).
    public var kaggleBaseURL = KaggleClient.defaultBaseURL
    /// kaggle.json to use; nil: KAGGLE_USERNAME/KAGGLE_KEY or ~/.kaggle/kaggle.json.
    public var kaggleCredentialsFile: String?
    /// Bytes per FetchShard message unless the client asks otherwise (at most 4 MiB).
    public var shardChunkBytes = 1 << 20
    /// Most bytes per second one shard stream sends (nil: as fast as the network takes them), so
    /// nodes fetching shards leave the coordinator's link to the rest of the cluster.
    public var shardBytesPerSecond: UInt64?

    public init() {}
}

// Note [Dataset directory]
// ~~~~~~~~~~~~~~~~~~~~~~~~
// Each dataset owns `<data dir>/datasets/<id>/`:
//   upload/      the uploaded file or directory (removed after a table is converted)
//   extracted/   the contents of an uploaded or downloaded ZIP (kept for images: training reads them)
//   table.csv    a CSV Nebula wrote for folder or text datasets (removed after conversion)
//   data.nbds    the columnar file (Note [Dataset file format])
//   shards/c<N>-s<seed>[-<column>]/shard-<i>-of-<N>.nbds
// The row in `datasets` is written before any file and its state tells how far things got; a failed
// upload removes its directory and its row (nothing half-written stays), a failed conversion keeps
// the row as FAILED with the reason and removes the files. Deleting a dataset removes both.

/// Takes datasets in (upload, Kaggle), converts them once into the columnar format in the
/// background, answers questions about them, and cuts and serves their shards.
public actor DatasetService {
    let root: String
    let configuration: DatasetConfiguration
    let store: DatasetStore
    let logger: Logger
    private let http: HTTPClient

    /// Live progress of conversions, and who is watching them.
    private var progress: [String: DatasetProgress] = [:]
    private var watchers: [String: [UUID: AsyncStream<DatasetProgress>.Continuation]] = [:]
    /// Shard sets being cut, so concurrent requests for the same set wait for one cut.
    private var cutting: [String: Task<[DatasetStore.StoredShard], any Error>] = [:]
    /// Background conversions (kept so shutdown can wait for them).
    private var conversions: [String: Task<Void, Never>] = [:]

    init(dataDirectory: String, configuration: DatasetConfiguration, store: DatasetStore, logger: Logger) throws {
        root = dataDirectory + "/datasets"
        self.configuration = configuration
        self.store = store
        self.logger = logger
        http = HTTPClient()
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }

    /// After a restart: datasets cut short become FAILED, and their files go.
    func recover() async throws {
        for id in try await store.failInterrupted() {
            logger.warning("dataset conversion was interrupted by a restart", metadata: ["dataset.id": "\(id)"])
            removeFiles(of: id)
        }
    }

    /// Cancels running conversions and waits for them.
    func shutdown() async {
        for task in conversions.values { task.cancel() }
        for task in conversions.values { await task.value }
    }

    nonisolated func directory(of id: String) -> String { root + "/" + id }

    // MARK: Upload

    /// Receives an upload stream onto disk and starts its conversion. On any error the dataset's
    /// directory and row are removed and the error names what was wrong.
    nonisolated func upload(_ chunks: RPCStreamReader<UploadChunk>) async throws -> DatasetInfo {
        var iterator = chunks.makeAsyncIterator()
        guard let first = try await iterator.next() else {
            throw RPCStatus(.invalidArgument, "empty upload: the first message must carry the upload header")
        }
        guard let header = first.header else {
            throw RPCStatus(.invalidArgument, "the first upload message has no header (name, file name, size)")
        }
        try validate(header)
        let id = newDatasetId()
        let name = header.name.isEmpty ? header.fileName : header.name
        var info = DatasetInfo(datasetId: id, name: name, state: .uploading, kind: .pending, source: header.fileName,
                               sourceBytes: header.totalBytes)
        try await store.insert(info)
        let uploadRoot = directory(of: id) + "/upload"
        do {
            try FileManager.default.createDirectory(atPath: uploadRoot, withIntermediateDirectories: true)
            var writer = UploadWriter(root: uploadRoot, header: header)
            try writer.accept(first)
            while let chunk = try await iterator.next() {
                if chunk.header != nil { throw RPCStatus(.invalidArgument, "only the first upload message may carry a header") }
                try writer.accept(chunk)
            }
            try writer.finish()
        } catch {
            try? FileManager.default.removeItem(atPath: directory(of: id))
            _ = try? await store.delete(id)
            logger.notice("upload refused", metadata: ["dataset.id": "\(id)", "error": "\(error)"])
            if let status = error as? RPCStatus { throw status }
            throw RPCStatus(.invalidArgument, "upload of \(header.fileName) failed: \(error)")
        }
        info.state = .ingesting
        try await store.update(info)
        if let stored = try await store.get(id) { info = stored.info }
        await startConversion(id: id, info: info, input: .upload(uploadRoot, header))
        logger.info("dataset uploaded", metadata: ["dataset.id": "\(id)", "dataset.bytes": "\(header.totalBytes)"])
        return info
    }

    /// Takes an upload that another front end (the HTTP API) already wrote to `staged` — a directory
    /// holding the file `header.fileName` (or the directory of that name) — and converts it like a
    /// gRPC upload. The staged directory is moved, not copied (same file system); on error it is removed.
    func adoptUpload(staged: String, header: UploadHeader, owner: String) async throws -> DatasetInfo {
        do {
            try validate(header)
        } catch {
            try? FileManager.default.removeItem(atPath: staged)
            throw error
        }
        let id = newDatasetId()
        let name = header.name.isEmpty ? header.fileName : header.name
        var info = DatasetInfo(datasetId: id, name: name, state: .uploading, kind: .pending, source: header.fileName,
                               sourceBytes: header.totalBytes)
        try await store.insert(info, owner: owner)
        let uploadRoot = directory(of: id) + "/upload"
        do {
            try FileManager.default.createDirectory(atPath: directory(of: id), withIntermediateDirectories: true)
            try FileManager.default.moveItem(atPath: staged, toPath: uploadRoot)
        } catch {
            try? FileManager.default.removeItem(atPath: staged)
            try? FileManager.default.removeItem(atPath: directory(of: id))
            _ = try? await store.delete(id)
            throw error
        }
        info.state = .ingesting
        try await store.update(info)
        if let stored = try await store.get(id) { info = stored.info }
        startConversion(id: id, info: info, input: .upload(uploadRoot, header))
        logger.info("dataset uploaded over HTTP", metadata: ["dataset.id": "\(id)", "dataset.bytes": "\(header.totalBytes)"])
        return info
    }

    /// The stored row (for the HTTP API's ownership checks and answers).
    func row(_ id: String) async throws -> DatasetStore.Row? { try await store.get(id) }

    /// Rows of one owner (nil: everyone's), newest first.
    func rows(limit: Int, offset: Int, owner: String?) async throws -> (rows: [DatasetStore.Row], total: Int) {
        try await store.list(limit: limit, offset: offset, owner: owner)
    }

    nonisolated func validate(_ header: UploadHeader) throws {
        guard !header.fileName.isEmpty, !header.fileName.contains("/"), header.fileName != ".", header.fileName != ".." else {
            throw RPCStatus(.invalidArgument, "upload header: file name '\(header.fileName)' must be a plain file or directory name")
        }
        guard header.name.count <= 200 else { throw RPCStatus(.invalidArgument, "the dataset name is longer than 200 characters") }
        guard header.totalBytes > 0 else { throw RPCStatus(.invalidArgument, "\(header.fileName) is empty: nothing to upload") }
        guard header.totalBytes <= configuration.maxUploadBytes else {
            throw RPCStatus(.invalidArgument, """
                \(header.fileName) is \(humanBytes(header.totalBytes)), more than this coordinator accepts \
                (\(humanBytes(configuration.maxUploadBytes)), --max-upload)
                """)
        }
        if let attributes = try? FileManager.default.attributesOfFileSystem(forPath: root),
           let free = (attributes[.systemFreeSize] as? NSNumber)?.uint64Value,
           free < header.totalBytes.multipliedReportingOverflow(by: 2).partialValue + configuration.reserveFreeBytes {
            throw RPCStatus(.resourceExhausted, """
                not enough disk space on the coordinator for \(header.fileName): \(humanBytes(free)) free, \
                about \(humanBytes(header.totalBytes * 2)) needed (upload + converted copy)
                """)
        }
    }

    // MARK: Kaggle

    func importDataset(_ request: DatasetImportRequest) async throws -> DatasetInfo {
        let source = request.source
        guard source.hasPrefix("kaggle:") else {
            throw RPCStatus(.invalidArgument, "unknown dataset source '\(source)': use kaggle:OWNER/SLUG (or upload a file)")
        }
        var reference = String(source.dropFirst("kaggle:".count))
        var version: Int?
        if let at = reference.lastIndex(of: "@") {
            guard let v = Int(reference[reference.index(after: at)...]), v > 0 else {
                throw RPCStatus(.invalidArgument, "'\(source)': the version after @ must be a positive number")
            }
            version = v
            reference = String(reference[..<at])
        }
        let dataset: KaggleDatasetRef
        do { dataset = try KaggleDatasetRef(reference) } catch {
            throw RPCStatus(.invalidArgument, "'\(source)': \(error)")
        }
        let credentials: KaggleCredentials
        do { credentials = try KaggleCredentials.resolve(file: configuration.kaggleCredentialsFile) } catch {
            throw RPCStatus(.failedPrecondition, "the coordinator has no Kaggle credentials: \(error)")
        }
        let id = newDatasetId()
        var info = DatasetInfo(datasetId: id, name: request.name.isEmpty ? dataset.slug : request.name, state: .ingesting,
                               kind: .pending, source: source)
        try await store.insert(info)
        if let stored = try await store.get(id) { info = stored.info }
        let client = KaggleClient(credentials: credentials, baseURL: configuration.kaggleBaseURL, http: http, logger: logger)
        await startConversion(id: id, info: info, input: .kaggle(client, dataset, version))
        return info
    }

    // MARK: Conversion

    enum Input: Sendable {
        case upload(String, UploadHeader)
        case kaggle(KaggleClient, KaggleDatasetRef, Int?)
    }

    private func startConversion(id: String, info: DatasetInfo, input: Input) {
        publish(DatasetProgress(info: info, phase: "queued", fraction: -1))
        conversions[id] = Task { [weak self] in
            guard let self else { return }
            await self.convert(id: id, info: info, input: input)
            await self.conversionEnded(id)
        }
    }

    private func conversionEnded(_ id: String) {
        conversions[id] = nil
        progress[id] = nil
    }

    private func convert(id: String, info start: DatasetInfo, input: Input) async {
        var info = start
        let dir = directory(of: id)
        do {
            let converter = DatasetConverter(directory: dir, configuration: configuration, logger: logger) { [weak self] phase, fraction in
                guard let self else { return }
                Task { await self.phase(id, phase, fraction) }
            }
            let outcome: DatasetConverter.Outcome
            switch input {
            case .upload(let path, let header):
                outcome = try await converter.convert(upload: path, header: header)
            case .kaggle(let client, let dataset, let version):
                info.sourceBytes = 0
                let archive = dir + "/upload/\(dataset.slug).zip"
                try FileManager.default.createDirectory(atPath: dir + "/upload", withIntermediateDirectories: true)
                phase(id, "downloading", -1)
                let download = try await client.downloadDataset(dataset, version: version, to: archive) { [weak self] done, total in
                    guard let self, let total, total > 0 else { return }
                    Task { await self.phase(id, "downloading", Double(done) / Double(total)) }
                }
                info.sourceBytes = UInt64(max(0, download.bytes))
                outcome = try await converter.convert(upload: archive, header: UploadHeader(
                    name: info.name, fileName: "\(dataset.slug).zip", totalBytes: info.sourceBytes))
            }
            try Task.checkCancellation()
            info.state = .ready
            info.kind = outcome.kind
            info.rows = UInt64(outcome.rows)
            info.columns = outcome.columns
            info.storedBytes = outcome.storedBytes
            info.sha256 = outcome.sha256
            try await store.update(info, path: outcome.columnarPath.map { relative($0) }, profileJSON: outcome.profileJSON,
                                   reportJSON: outcome.reportJSON)
            if let stored = try? await store.get(id) { info = stored.info }  // with the database's timestamps
            logger.info("dataset ready", metadata: ["dataset.id": "\(id)", "dataset.rows": "\(outcome.rows)",
                                                    "dataset.kind": "\(outcome.kind.rawValue)"])
            publish(DatasetProgress(info: info, phase: "done", fraction: 1))
        } catch {
            info.state = .failed
            info.error = describe(error)
            removeFiles(of: id)
            do {
                try await store.update(info)
                if let stored = try await store.get(id) { info = stored.info }
            } catch {
                logger.error("could not record a failed conversion", metadata: ["dataset.id": "\(id)", "error": "\(error)"])
            }
            logger.warning("dataset conversion failed", metadata: ["dataset.id": "\(id)", "error": "\(info.error)"])
            publish(DatasetProgress(info: info, phase: "failed", fraction: 1))
        }
        for continuation in (watchers.removeValue(forKey: id) ?? [:]).values { continuation.finish() }
    }

    private func phase(_ id: String, _ phase: String, _ fraction: Double) {
        guard var p = progress[id], p.info.state == .ingesting || p.info.state == .uploading else { return }
        // a late report of an earlier phase never moves progress backwards
        if p.phase == phase, fraction >= 0, p.fraction > fraction { return }
        p.phase = phase
        p.fraction = fraction
        publish(p)
    }

    private func publish(_ p: DatasetProgress) {
        progress[p.info.datasetId] = p
        for continuation in (watchers[p.info.datasetId] ?? [:]).values { continuation.yield(p) }
    }

    /// Progress until the dataset is READY or FAILED; a finished dataset yields its final state once.
    func watch(_ id: String) async throws -> AsyncStream<DatasetProgress> {
        let (stream, continuation) = AsyncStream.makeStream(of: DatasetProgress.self, bufferingPolicy: .bufferingNewest(64))
        if let current = progress[id] {
            let key = UUID()
            watchers[id, default: [:]][key] = continuation
            continuation.onTermination = { [weak self] _ in Task { await self?.unwatch(id, key) } }
            continuation.yield(current)
            return stream
        }
        guard let row = try await store.get(id) else { throw notFound(id) }
        continuation.yield(DatasetProgress(info: row.info, phase: row.info.state == .ready ? "done" : row.info.state.rawValue,
                                           fraction: row.info.state.isFinal ? 1 : -1))
        continuation.finish()
        return stream
    }

    private func unwatch(_ id: String, _ key: UUID) { watchers[id]?[key] = nil }

    // MARK: Queries

    func list(_ request: DatasetListRequest) async throws -> DatasetList {
        let limit = request.limit > 0 ? min(request.limit, 1000) : 100
        let (rows, total) = try await store.list(limit: limit, offset: max(0, request.offset))
        return DatasetList(datasets: rows.map(\.info), total: UInt64(total))
    }

    func detail(_ request: DatasetRequest) async throws -> DatasetDetail {
        guard let row = try await store.get(request.datasetId) else { throw notFound(request.datasetId) }
        var detail = DatasetDetail(info: row.info, profileJSON: row.profileJSON, reportJSON: row.reportJSON,
                                   shardSets: try await store.shardSets(of: request.datasetId))
        if !request.target.isEmpty || !request.taskOverride.isEmpty {
            detail.taskJSON = try await detectTask(row, target: request.target, override: request.taskOverride)
        }
        return detail
    }

    private func detectTask(_ row: DatasetStore.Row, target requested: String, override: String) async throws -> String {
        guard row.info.state == .ready else {
            throw RPCStatus(.failedPrecondition, "dataset \(row.info.datasetId) is \(row.info.state.rawValue), not ready: its task cannot be detected yet")
        }
        let overrideType: ProblemType? = override.isEmpty ? nil : ProblemType(rawValue: override)
        if !override.isEmpty && overrideType == nil {
            throw RPCStatus(.invalidArgument, "unknown task '\(override)': use binary, multiclass or regression")
        }
        if row.info.kind == .objectDetection {
            let task = TaskJSON(target: requested, task: "object-detection", modality: "image",
                                reason: "a ZIP with COCO JSON annotations (images, annotations, categories)",
                                classes: nil, textColumns: [], overridden: false)
            return try encodeCompactJSON(task)
        }
        let target = requested.isEmpty ? (row.info.kind == .imageFolders || row.info.kind == .textFolders ? "label" : "") : requested
        guard !target.isEmpty else { throw RPCStatus(.invalidArgument, "name the target column (--target COLUMN)") }
        let path = absolute(row.path)
        let kind = row.info.kind
        return try await runOnThread(name: "nebula.task") {
            let dataset = try ColumnarDataset(path: path, verify: .header)
            let result: TaskDetectionResult
            do {
                result = try TaskInference.detect(dataset, target: target, override: overrideType)
            } catch let error as DatasetError {
                throw RPCStatus(.invalidArgument, error.message)
            }
            var task = TaskJSON(target: target, task: result.problemType.rawValue, modality: result.modality.rawValue,
                                reason: result.reason, classes: result.classes, textColumns: result.textColumns,
                                overridden: overrideType != nil)
            if kind == .imageFolders {
                task.modality = "image"
                task.reason = "a ZIP or directory of class-named image folders; \(result.reason)"
            }
            return try encodeCompactJSON(task)
        }
    }

    /// Checks a job's dataset and target and fixes its task, classes and feature schema
    /// (Note [Feature schema from the whole dataset]).
    func prepareJob(datasetId: String, target: String, task override: String, model: String) async throws
        -> (rows: Int, plan: JobPlanDocument)
    {
        guard let row = try await store.get(datasetId) else { throw notFound(datasetId) }
        guard row.info.state == .ready else {
            throw RPCStatus(.failedPrecondition, "dataset \(datasetId) is \(row.info.state.rawValue), not ready")
        }
        guard !row.path.isEmpty, row.info.kind == .table || row.info.kind == .text || row.info.kind == .textFolders else {
            throw RPCStatus(.failedPrecondition, "dataset \(datasetId) is \(row.info.kind.rawValue): cluster jobs train on tables so far")
        }
        let overrideType: ProblemType? = override.isEmpty ? nil : ProblemType(rawValue: override)
        let path = absolute(row.path)
        return try await runOnThread(name: "nebula.prepare") {
            let dataset = try ColumnarDataset(path: path, verify: .header)
            do {
                let task = try TaskInference.detect(dataset, target: target, override: overrideType)
                if model == "builder" {
                    // the candidate's preprocessing travels in its spec (Note [Candidates as cluster jobs])
                    return (dataset.rowCount, JobPlanDocument(task: task.problemType.rawValue, classes: [], schemaJSON: "",
                                                              reason: "builder candidate: \(task.problemType.rawValue) (\(task.reason))"))
                }
                let classification = task.problemType != .regression
                let schema = try FeatureSchema.fit(dataset, target: target, classification: classification)
                let encoder = JSONEncoder()
                encoder.outputFormatting = .sortedKeys
                let schemaJSON = String(decoding: try encoder.encode(schema), as: UTF8.self)
                var reason = "\(task.problemType.rawValue) (\(task.reason))"
                if !schema.skipped.isEmpty { reason += "; left out: \(schema.skipped.joined(separator: "; "))" }
                return (dataset.rowCount, JobPlanDocument(task: task.problemType.rawValue, classes: schema.classes,
                                                          schemaJSON: schemaJSON, reason: reason))
            } catch let error as DatasetError {
                throw RPCStatus(.invalidArgument, error.message)
            }
        }
    }

    func delete(_ id: String) async throws -> DatasetInfo {
        guard let row = try await store.get(id) else { throw notFound(id) }
        guard row.info.state.isFinal else {
            throw RPCStatus(.failedPrecondition, "dataset \(id) is still \(row.info.state.rawValue); delete it once it is ready or failed")
        }
        _ = try await store.delete(id)
        removeFiles(of: id)
        logger.info("dataset deleted", metadata: ["dataset.id": "\(id)"])
        return row.info
    }

    // MARK: Shards

    /// The shard set for (count, seed, column), cut on first request.
    func manifest(_ request: ShardManifestRequest) async throws -> ShardManifest {
        guard let row = try await store.get(request.datasetId) else { throw notFound(request.datasetId) }
        guard row.info.state == .ready, !row.path.isEmpty else {
            throw RPCStatus(.failedPrecondition, row.info.state == .ready
                ? "dataset \(row.info.datasetId) (\(row.info.kind.rawValue)) has no table to shard"
                : "dataset \(row.info.datasetId) is \(row.info.state.rawValue), not ready")
        }
        guard request.count >= 1 else { throw RPCStatus(.invalidArgument, "the shard count must be at least 1") }
        guard UInt64(request.count) <= row.info.rows else {
            throw RPCStatus(.invalidArgument, "cannot cut \(row.info.rows) rows into \(request.count) shards: use at most \(row.info.rows)")
        }
        let existing = try await store.shards(of: request.datasetId, count: request.count, seed: request.seed,
                                              stratifyBy: request.stratifyBy)
        let shards: [DatasetStore.StoredShard]
        if existing.count == request.count, existing.allSatisfy({ FileManager.default.fileExists(atPath: absolute($0.path)) }) {
            shards = existing
        } else {
            let key = "\(request.datasetId)/\(request.count)/\(request.seed)/\(request.stratifyBy)"
            let task: Task<[DatasetStore.StoredShard], any Error>
            if let running = cutting[key] {
                task = running
            } else {
                task = Task { try await self.cut(row, request) }
                cutting[key] = task
            }
            defer { cutting[key] = nil }
            shards = try await task.value
        }
        return ShardManifest(datasetId: request.datasetId, count: request.count, seed: request.seed,
                             stratifyBy: request.stratifyBy, shards: shards.map(\.entry))
    }

    private func cut(_ row: DatasetStore.Row, _ request: ShardManifestRequest) async throws -> [DatasetStore.StoredShard] {
        var name = "c\(request.count)-s\(request.seed)"
        if !request.stratifyBy.isEmpty {
            name += "-" + String(request.stratifyBy.map { $0.isLetter || $0.isNumber ? $0 : "_" }.prefix(40))
                + "-" + SHA256.hex(SHA256.hash(Array(request.stratifyBy.utf8))).prefix(8)
        }
        let directory = directory(of: row.info.datasetId) + "/shards/" + name
        let source = absolute(row.path)
        let spec = ShardSpec(count: request.count, seed: request.seed,
                             stratifyBy: request.stratifyBy.isEmpty ? nil : request.stratifyBy)
        let infos: [ShardInfo]
        do {
            infos = try await runOnThread(name: "nebula.shard") {
                let dataset = try ColumnarDataset(path: source, verify: .header)
                return try DatasetSharder.cut(dataset, spec: spec, directory: directory)
            }
        } catch let error as DatasetError where error.code == .invalidArgument {
            throw RPCStatus(.invalidArgument, error.message)
        }
        let stored = infos.map {
            DatasetStore.StoredShard(entry: ShardEntry(index: $0.index, rows: UInt64($0.rows), bytes: UInt64($0.bytes),
                                                       sha256: $0.sha256),
                                     path: relative($0.path))
        }
        try await store.insertShards(of: row.info.datasetId, count: request.count, seed: request.seed,
                                     stratifyBy: request.stratifyBy, stored)
        logger.info("shards cut", metadata: ["dataset.id": "\(row.info.datasetId)", "shard.count": "\(request.count)",
                                             "shard.seed": "\(request.seed)", "shard.stratify": "\(request.stratifyBy)"])
        return stored
    }

    /// Streams one shard's bytes from `offset`.
    nonisolated func fetch(_ request: FetchShardRequest, to writer: RPCStreamWriter<ShardChunk>) async throws {
        guard let shard = try await store.shard(of: request.datasetId, sha256: request.sha256) else {
            throw RPCStatus(.notFound, "dataset \(request.datasetId) has no shard with checksum \(request.sha256) (ask for the manifest again)")
        }
        let path = absolute(shard.path)
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw RPCStatus(.notFound, "shard \(shard.entry.index) of dataset \(request.datasetId) is missing on the coordinator; ask for the manifest again to recut it")
        }
        defer { try? handle.close() }
        let total = try handle.seekToEnd()
        guard request.offset <= total else {
            throw RPCStatus(.outOfRange, "offset \(request.offset) is past the end of the shard (\(total) bytes)")
        }
        let chunk = request.chunkBytes > 0 ? min(request.chunkBytes, 4 << 20) : configuration.shardChunkBytes
        var offset = request.offset
        try handle.seek(toOffset: offset)
        if offset == total {
            try await writer.write(ShardChunk(offset: offset, data: [], totalBytes: total))
            return
        }
        let clock = ContinuousClock()
        let started = clock.now
        let rate = configuration.shardBytesPerSecond
        while offset < total {
            try Task.checkCancellation()
            guard let data = try handle.read(upToCount: chunk), !data.isEmpty else {
                throw RPCStatus(.dataLoss, "shard \(shard.entry.index) of dataset \(request.datasetId) ended early at \(offset) of \(total) bytes")
            }
            try await writer.write(ShardChunk(offset: offset, data: [UInt8](data), totalBytes: total))
            offset += UInt64(data.count)
            if let rate, rate > 0 {
                // the next chunk leaves when the bytes sent so far are due at this rate
                let due = started + .milliseconds(Int64(Double(offset - request.offset) * 1000 / Double(rate)))
                if due > clock.now { try await Task.sleep(until: due, clock: clock) }
            }
        }
    }

    // MARK: Helpers

    nonisolated func relative(_ path: String) -> String {
        let prefix = root + "/"
        return path.hasPrefix(prefix) ? String(path.dropFirst(prefix.count)) : path
    }

    nonisolated func absolute(_ path: String) -> String { path.hasPrefix("/") ? path : root + "/" + path }

    private func removeFiles(of id: String) {
        try? FileManager.default.removeItem(atPath: directory(of: id))
    }

    nonisolated func notFound(_ id: String) -> RPCStatus {
        RPCStatus(.notFound, "no dataset '\(id)' (see `nebula dataset list`)")
    }
}

/// The task detected for a target, as `nebula dataset show --target` prints it.
struct TaskJSON: Codable, Sendable {
    var target: String
    var task: String
    var modality: String
    var reason: String
    var classes: Int?
    var textColumns: [String]
    var overridden: Bool
}

func encodeCompactJSON<T: Encodable>(_ value: T) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    return String(decoding: try encoder.encode(value), as: UTF8.self)
}

func newDatasetId() -> String {
    var rng = SystemRandomNumberGenerator()
    return "ds-" + String(rng.next() & 0xFFFF_FFFF_FFFF, radix: 16).leftPadded(to: 12)
}

extension String {
    func leftPadded(to width: Int, with pad: Character = "0") -> String {
        count >= width ? self : String(repeating: pad, count: width - count) + self
    }
}


/// One line for a user: the message of our own errors, without type names.
func describe(_ error: any Error) -> String {
    switch error {
    case let e as DatasetError: return e.description
    case let e as ArchiveError: return e.description
    case let e as RPCStatus: return e.message
    case is CancellationError: return "cancelled (the coordinator stopped)"
    default: return "\(error)"
    }
}

/// Writes the files of an upload stream in order, checking paths, offsets and sizes.
struct UploadWriter {
    let root: String
    let header: UploadHeader
    private var current: (path: String, handle: FileHandle, written: UInt64)?
    private var seen: Set<String> = []
    private(set) var total: UInt64 = 0

    init(root: String, header: UploadHeader) {
        self.root = root
        self.header = header
    }

    mutating func accept(_ chunk: UploadChunk) throws {
        let relative: String
        if header.directory {
            guard !chunk.path.isEmpty else {
                throw RPCStatus(.invalidArgument, "directory upload: a message at offset \(chunk.offset) names no file path")
            }
            let components: [String]
            do { components = try EntryPath.components(of: chunk.path) } catch {
                throw RPCStatus(.invalidArgument, "directory upload: unsafe path '\(chunk.path)': \(error)")
            }
            relative = components.joined(separator: "/")
        } else {
            guard chunk.path.isEmpty || chunk.path == header.fileName else {
                throw RPCStatus(.invalidArgument, "single-file upload of \(header.fileName) got data for another file '\(chunk.path)'")
            }
            relative = header.fileName
        }
        if chunk.data.isEmpty && chunk.header == nil && current?.path == relative { return }
        if current?.path != relative {
            try closeCurrent()
            guard !seen.contains(relative) else {
                throw RPCStatus(.invalidArgument, "upload: '\(relative)' was already complete; files must be sent one after another")
            }
            guard seen.count < max(1, header.fileCount) else {
                throw RPCStatus(.invalidArgument, "upload: more files than the \(header.fileCount) announced in the header")
            }
            seen.insert(relative)
            let path = root + "/" + relative
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                    withIntermediateDirectories: true)
            guard FileManager.default.createFile(atPath: path, contents: nil),
                  let handle = FileHandle(forWritingAtPath: path) else {
                throw RPCStatus(.internal, "the coordinator cannot write \(relative) into its data directory")
            }
            current = (relative, handle, 0)
        }
        guard chunk.offset == current!.written else {
            throw RPCStatus(.invalidArgument, "upload: data for '\(relative)' at offset \(chunk.offset), expected \(current!.written) (chunks must arrive in order)")
        }
        total += UInt64(chunk.data.count)
        guard total <= header.totalBytes else {
            throw RPCStatus(.invalidArgument, "upload: more than the \(header.totalBytes) bytes announced in the header")
        }
        if !chunk.data.isEmpty {
            try current!.handle.write(contentsOf: chunk.data)
            current!.written += UInt64(chunk.data.count)
        }
    }

    mutating func finish() throws {
        try closeCurrent()
        guard total == header.totalBytes else {
            throw RPCStatus(.invalidArgument, "upload incomplete: received \(total) of \(header.totalBytes) bytes; nothing was kept, upload again")
        }
    }

    private mutating func closeCurrent() throws {
        if let c = current {
            try c.handle.close()
            current = nil
        }
    }
}
