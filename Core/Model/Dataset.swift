/// Datasets and shards as the coordinator, the node agent and the CLI see them (plain values).

public enum DatasetState: String, Sendable, Hashable, Codable, CaseIterable {
    case uploading, ingesting, ready, failed

    public var isFinal: Bool { self == .ready || self == .failed }
}

/// What a stored dataset is, which decides how it is trained on.
public enum DatasetKind: String, Sendable, Hashable, Codable, CaseIterable {
    /// A CSV/TSV table (also from a ZIP or a Kaggle download holding one).
    case table
    /// Folders named after classes holding images; stored as a table (path, label).
    case imageFolders = "image-folders"
    /// Folders named after classes holding text files; stored as a table (text, label).
    case textFolders = "text-folders"
    /// COCO JSON annotations with images (validated and stored; training is not supported yet).
    case objectDetection = "object-detection"
    /// A plain text file: one document per line, stored as a table (text).
    case text
    /// Not known yet (while uploading).
    case pending
}

public struct DatasetInfo: Sendable, Hashable, Codable {
    public var datasetId: String
    public var name: String
    public var state: DatasetState
    public var kind: DatasetKind
    public var source: String
    public var sourceBytes: UInt64
    public var storedBytes: UInt64
    public var rows: UInt64
    public var columns: Int
    public var error: String
    public var createdUnixMs: Int64
    public var updatedUnixMs: Int64
    public var sha256: String

    public init(datasetId: String, name: String, state: DatasetState, kind: DatasetKind, source: String,
                sourceBytes: UInt64 = 0, storedBytes: UInt64 = 0, rows: UInt64 = 0, columns: Int = 0, error: String = "",
                createdUnixMs: Int64 = 0, updatedUnixMs: Int64 = 0, sha256: String = "") {
        self.datasetId = datasetId
        self.name = name
        self.state = state
        self.kind = kind
        self.source = source
        self.sourceBytes = sourceBytes
        self.storedBytes = storedBytes
        self.rows = rows
        self.columns = columns
        self.error = error
        self.createdUnixMs = createdUnixMs
        self.updatedUnixMs = updatedUnixMs
        self.sha256 = sha256
    }
}

public struct DatasetProgress: Sendable, Hashable, Codable {
    public var info: DatasetInfo
    /// extracting, converting, done, failed
    public var phase: String
    /// 0...1 of the phase; negative when unknown.
    public var fraction: Double

    public init(info: DatasetInfo, phase: String, fraction: Double) {
        self.info = info
        self.phase = phase
        self.fraction = fraction
    }
}

public struct DatasetList: Sendable, Hashable, Codable {
    public var datasets: [DatasetInfo]
    public var total: UInt64
    public init(datasets: [DatasetInfo], total: UInt64) {
        self.datasets = datasets
        self.total = total
    }
}

public struct DatasetListRequest: Sendable, Hashable {
    public var limit: Int
    public var offset: Int
    public init(limit: Int = 0, offset: Int = 0) {
        self.limit = limit
        self.offset = offset
    }
}

/// Names a dataset; `target` asks for task detection on that column.
public struct DatasetRequest: Sendable, Hashable {
    public var datasetId: String
    public var target: String
    public var taskOverride: String
    public init(datasetId: String, target: String = "", taskOverride: String = "") {
        self.datasetId = datasetId
        self.target = target
        self.taskOverride = taskOverride
    }
}

/// A dataset with its documents as JSON text (profile, ingest report or layout, task detection).
public struct DatasetDetail: Sendable, Hashable {
    public var info: DatasetInfo
    public var profileJSON: String
    public var reportJSON: String
    public var taskJSON: String
    public var shardSets: [ShardManifest]

    public init(info: DatasetInfo, profileJSON: String = "", reportJSON: String = "", taskJSON: String = "",
                shardSets: [ShardManifest] = []) {
        self.info = info
        self.profileJSON = profileJSON
        self.reportJSON = reportJSON
        self.taskJSON = taskJSON
        self.shardSets = shardSets
    }
}

public struct DatasetImportRequest: Sendable, Hashable {
    public var source: String
    public var name: String
    public init(source: String, name: String = "") {
        self.source = source
        self.name = name
    }
}

public struct UploadHeader: Sendable, Hashable, Codable {
    public var name: String
    public var fileName: String
    public var directory: Bool
    public var totalBytes: UInt64
    public var fileCount: Int
    public var skipBadRows: Bool

    public init(name: String, fileName: String, directory: Bool = false, totalBytes: UInt64, fileCount: Int = 1,
                skipBadRows: Bool = false) {
        self.name = name
        self.fileName = fileName
        self.directory = directory
        self.totalBytes = totalBytes
        self.fileCount = fileCount
        self.skipBadRows = skipBadRows
    }
}

/// One message of an upload stream.
public struct UploadChunk: Sendable, Hashable {
    public var header: UploadHeader?
    public var path: String
    public var offset: UInt64
    public var data: [UInt8]

    public init(header: UploadHeader? = nil, path: String = "", offset: UInt64 = 0, data: [UInt8] = []) {
        self.header = header
        self.path = path
        self.offset = offset
        self.data = data
    }
}

/// Which shards: a world size, a shuffle seed and an optional stratification column.
public struct ShardManifestRequest: Sendable, Hashable, Codable {
    public var datasetId: String
    public var count: Int
    public var seed: UInt64
    public var stratifyBy: String

    public init(datasetId: String, count: Int, seed: UInt64 = 0, stratifyBy: String = "") {
        self.datasetId = datasetId
        self.count = count
        self.seed = seed
        self.stratifyBy = stratifyBy
    }
}

public struct ShardEntry: Sendable, Hashable, Codable {
    public var index: Int
    public var rows: UInt64
    public var bytes: UInt64
    public var sha256: String

    public init(index: Int, rows: UInt64, bytes: UInt64, sha256: String) {
        self.index = index
        self.rows = rows
        self.bytes = bytes
        self.sha256 = sha256
    }
}

public struct ShardManifest: Sendable, Hashable, Codable {
    public var datasetId: String
    public var count: Int
    public var seed: UInt64
    public var stratifyBy: String
    public var shards: [ShardEntry]

    public init(datasetId: String, count: Int, seed: UInt64, stratifyBy: String, shards: [ShardEntry]) {
        self.datasetId = datasetId
        self.count = count
        self.seed = seed
        self.stratifyBy = stratifyBy
        self.shards = shards
    }
}

public struct FetchShardRequest: Sendable, Hashable {
    public var datasetId: String
    public var sha256: String
    public var offset: UInt64
    public var chunkBytes: Int

    public init(datasetId: String, sha256: String, offset: UInt64 = 0, chunkBytes: Int = 0) {
        self.datasetId = datasetId
        self.sha256 = sha256
        self.offset = offset
        self.chunkBytes = chunkBytes
    }
}

public struct ShardChunk: Sendable, Hashable {
    public var offset: UInt64
    public var data: [UInt8]
    public var totalBytes: UInt64

    public init(offset: UInt64, data: [UInt8], totalBytes: UInt64) {
        self.offset = offset
        self.data = data
        self.totalBytes = totalBytes
    }
}
