import CProtobufC
import NebulaModel
import NebulaProtoC
import NebulaRPC

// Messages of DatasetService and ShardService (dataset.proto).

extension DatasetState {
    var wire: Nebula__V1__DatasetState {
        switch self {
        case .uploading: NEBULA__V1__DATASET_STATE__DATASET_STATE_UPLOADING
        case .ingesting: NEBULA__V1__DATASET_STATE__DATASET_STATE_INGESTING
        case .ready: NEBULA__V1__DATASET_STATE__DATASET_STATE_READY
        case .failed: NEBULA__V1__DATASET_STATE__DATASET_STATE_FAILED
        }
    }

    init(wire: Nebula__V1__DatasetState, _ message: String, _ field: String) throws {
        switch wire {
        case NEBULA__V1__DATASET_STATE__DATASET_STATE_UPLOADING: self = .uploading
        case NEBULA__V1__DATASET_STATE__DATASET_STATE_INGESTING: self = .ingesting
        case NEBULA__V1__DATASET_STATE__DATASET_STATE_READY: self = .ready
        case NEBULA__V1__DATASET_STATE__DATASET_STATE_FAILED: self = .failed
        default: throw WireError.badEnum(message: message, field: field, value: wire.rawValue)
        }
    }
}

extension DatasetInfo: RPCMessage {
    init(c: Nebula__V1__DatasetInfo) throws {
        guard let kind = DatasetKind(rawValue: str(c.kind)) else {
            throw WireError.missingField(message: "DatasetInfo", field: "kind")
        }
        self.init(datasetId: try required(str(c.dataset_id), "DatasetInfo", "dataset_id"), name: str(c.name),
                  state: try DatasetState(wire: c.state, "DatasetInfo", "state"), kind: kind, source: str(c.source),
                  sourceBytes: c.source_bytes, storedBytes: c.stored_bytes, rows: c.rows, columns: Int(c.columns),
                  error: str(c.error), createdUnixMs: c.created_unix_ms, updatedUnixMs: c.updated_unix_ms,
                  sha256: str(c.sha256))
    }

    func c(in arena: Arena) -> UnsafeMutablePointer<Nebula__V1__DatasetInfo> {
        let m = arena.message(nebula__v1__dataset_info__init)
        m.pointee.dataset_id = arena.string(datasetId)
        m.pointee.name = arena.string(name)
        m.pointee.state = state.wire
        m.pointee.kind = arena.string(kind.rawValue)
        m.pointee.source = arena.string(source)
        m.pointee.source_bytes = sourceBytes
        m.pointee.stored_bytes = storedBytes
        m.pointee.rows = rows
        m.pointee.columns = UInt32(clamping: columns)
        m.pointee.error = arena.string(error)
        m.pointee.created_unix_ms = createdUnixMs
        m.pointee.updated_unix_ms = updatedUnixMs
        m.pointee.sha256 = arena.string(sha256)
        return m
    }

    public init(serializedBytes bytes: [UInt8]) throws {
        self = try unpack(bytes, "DatasetInfo", unpack: nebula__v1__dataset_info__unpack,
                          free: nebula__v1__dataset_info__free_unpacked) { try DatasetInfo(c: $0) }
    }

    public func serializedBytes() -> [UInt8] {
        let arena = Arena()
        return pack(c(in: arena), size: nebula__v1__dataset_info__get_packed_size, pack: nebula__v1__dataset_info__pack)
    }
}

extension DatasetProgress: RPCMessage {
    public init(serializedBytes bytes: [UInt8]) throws {
        self = try unpack(bytes, "DatasetProgress", unpack: nebula__v1__dataset_progress__unpack,
                          free: nebula__v1__dataset_progress__free_unpacked) { c in
            guard let info = c.info else { throw WireError.missingField(message: "DatasetProgress", field: "info") }
            return DatasetProgress(info: try DatasetInfo(c: info.pointee), phase: str(c.phase), fraction: c.fraction)
        }
    }

    public func serializedBytes() -> [UInt8] {
        let arena = Arena()
        let m = arena.message(nebula__v1__dataset_progress__init)
        m.pointee.info = info.c(in: arena)
        m.pointee.phase = arena.string(phase)
        m.pointee.fraction = fraction
        return pack(m, size: nebula__v1__dataset_progress__get_packed_size, pack: nebula__v1__dataset_progress__pack)
    }
}

extension DatasetListRequest: RPCMessage {
    public init(serializedBytes bytes: [UInt8]) throws {
        self = try unpack(bytes, "ListDatasetsRequest", unpack: nebula__v1__list_datasets_request__unpack,
                          free: nebula__v1__list_datasets_request__free_unpacked) { c in
            DatasetListRequest(limit: Int(c.limit), offset: Int(c.offset))
        }
    }

    public func serializedBytes() -> [UInt8] {
        let arena = Arena()
        let m = arena.message(nebula__v1__list_datasets_request__init)
        m.pointee.limit = UInt32(clamping: limit)
        m.pointee.offset = UInt32(clamping: offset)
        return pack(m, size: nebula__v1__list_datasets_request__get_packed_size,
                    pack: nebula__v1__list_datasets_request__pack)
    }
}

extension DatasetList: RPCMessage {
    public init(serializedBytes bytes: [UInt8]) throws {
        self = try unpack(bytes, "ListDatasetsResponse", unpack: nebula__v1__list_datasets_response__unpack,
                          free: nebula__v1__list_datasets_response__free_unpacked) { c in
            DatasetList(datasets: try list(c.n_datasets, c.datasets, DatasetInfo.init(c:)), total: c.total)
        }
    }

    public func serializedBytes() -> [UInt8] {
        let arena = Arena()
        let m = arena.message(nebula__v1__list_datasets_response__init)
        let d = datasets.map { $0.c(in: arena) }
        m.pointee.n_datasets = d.count
        m.pointee.datasets = arena.pointers(d)
        m.pointee.total = total
        return pack(m, size: nebula__v1__list_datasets_response__get_packed_size,
                    pack: nebula__v1__list_datasets_response__pack)
    }
}

extension DatasetRequest: RPCMessage {
    public init(serializedBytes bytes: [UInt8]) throws {
        self = try unpack(bytes, "GetDatasetRequest", unpack: nebula__v1__get_dataset_request__unpack,
                          free: nebula__v1__get_dataset_request__free_unpacked) { c in
            DatasetRequest(datasetId: try required(str(c.dataset_id), "GetDatasetRequest", "dataset_id"),
                           target: str(c.target), taskOverride: str(c.task_override))
        }
    }

    public func serializedBytes() -> [UInt8] {
        let arena = Arena()
        let m = arena.message(nebula__v1__get_dataset_request__init)
        m.pointee.dataset_id = arena.string(datasetId)
        m.pointee.target = arena.string(target)
        m.pointee.task_override = arena.string(taskOverride)
        return pack(m, size: nebula__v1__get_dataset_request__get_packed_size, pack: nebula__v1__get_dataset_request__pack)
    }
}

extension DatasetDetail: RPCMessage {
    public init(serializedBytes bytes: [UInt8]) throws {
        self = try unpack(bytes, "DatasetDetail", unpack: nebula__v1__dataset_detail__unpack,
                          free: nebula__v1__dataset_detail__free_unpacked) { c in
            guard let info = c.info else { throw WireError.missingField(message: "DatasetDetail", field: "info") }
            return DatasetDetail(info: try DatasetInfo(c: info.pointee), profileJSON: str(c.profile_json),
                                 reportJSON: str(c.report_json), taskJSON: str(c.task_json),
                                 shardSets: try list(c.n_shard_sets, c.shard_sets, ShardManifest.init(c:)))
        }
    }

    public func serializedBytes() -> [UInt8] {
        let arena = Arena()
        let m = arena.message(nebula__v1__dataset_detail__init)
        m.pointee.info = info.c(in: arena)
        m.pointee.profile_json = arena.string(profileJSON)
        m.pointee.report_json = arena.string(reportJSON)
        m.pointee.task_json = arena.string(taskJSON)
        let s = shardSets.map { $0.c(in: arena) }
        m.pointee.n_shard_sets = s.count
        m.pointee.shard_sets = arena.pointers(s)
        return pack(m, size: nebula__v1__dataset_detail__get_packed_size, pack: nebula__v1__dataset_detail__pack)
    }
}

extension DatasetImportRequest: RPCMessage {
    public init(serializedBytes bytes: [UInt8]) throws {
        self = try unpack(bytes, "ImportDatasetRequest", unpack: nebula__v1__import_dataset_request__unpack,
                          free: nebula__v1__import_dataset_request__free_unpacked) { c in
            DatasetImportRequest(source: try required(str(c.source), "ImportDatasetRequest", "source"), name: str(c.name))
        }
    }

    public func serializedBytes() -> [UInt8] {
        let arena = Arena()
        let m = arena.message(nebula__v1__import_dataset_request__init)
        m.pointee.source = arena.string(source)
        m.pointee.name = arena.string(name)
        return pack(m, size: nebula__v1__import_dataset_request__get_packed_size,
                    pack: nebula__v1__import_dataset_request__pack)
    }
}

extension UploadChunk: RPCMessage {
    public init(serializedBytes bytes: [UInt8]) throws {
        self = try unpack(bytes, "UploadChunk", unpack: nebula__v1__upload_chunk__unpack,
                          free: nebula__v1__upload_chunk__free_unpacked) { c in
            let header = c.header.map { h in
                UploadHeader(name: str(h.pointee.name), fileName: str(h.pointee.file_name), directory: h.pointee.directory != 0,
                             totalBytes: h.pointee.total_bytes, fileCount: Int(h.pointee.file_count),
                             skipBadRows: h.pointee.skip_bad_rows != 0)
            }
            return UploadChunk(header: header, path: str(c.path), offset: c.offset, data: NebulaWire.bytes(c.data))
        }
    }

    public func serializedBytes() -> [UInt8] {
        let arena = Arena()
        let m = arena.message(nebula__v1__upload_chunk__init)
        if let header {
            let h = arena.message(nebula__v1__upload_header__init)
            h.pointee.name = arena.string(header.name)
            h.pointee.file_name = arena.string(header.fileName)
            h.pointee.directory = header.directory ? 1 : 0
            h.pointee.total_bytes = header.totalBytes
            h.pointee.file_count = UInt32(clamping: header.fileCount)
            h.pointee.skip_bad_rows = header.skipBadRows ? 1 : 0
            m.pointee.header = h
        }
        m.pointee.path = arena.string(path)
        m.pointee.offset = offset
        m.pointee.data = arena.bytes(data)
        return pack(m, size: nebula__v1__upload_chunk__get_packed_size, pack: nebula__v1__upload_chunk__pack)
    }
}

extension ShardManifestRequest: RPCMessage {
    public init(serializedBytes bytes: [UInt8]) throws {
        self = try unpack(bytes, "ShardManifestRequest", unpack: nebula__v1__shard_manifest_request__unpack,
                          free: nebula__v1__shard_manifest_request__free_unpacked) { c in
            guard c.count > 0 else { throw WireError.missingField(message: "ShardManifestRequest", field: "count") }
            return ShardManifestRequest(datasetId: try required(str(c.dataset_id), "ShardManifestRequest", "dataset_id"),
                                        count: Int(c.count), seed: c.seed, stratifyBy: str(c.stratify_by))
        }
    }

    public func serializedBytes() -> [UInt8] {
        let arena = Arena()
        let m = arena.message(nebula__v1__shard_manifest_request__init)
        m.pointee.dataset_id = arena.string(datasetId)
        m.pointee.count = UInt32(clamping: count)
        m.pointee.seed = seed
        m.pointee.stratify_by = arena.string(stratifyBy)
        return pack(m, size: nebula__v1__shard_manifest_request__get_packed_size,
                    pack: nebula__v1__shard_manifest_request__pack)
    }
}

extension ShardManifest: RPCMessage {
    init(c: Nebula__V1__ShardManifest) throws {
        let shards = try list(c.n_shards, c.shards) { e in
            ShardEntry(index: Int(e.index), rows: e.rows, bytes: e.bytes,
                       sha256: try required(str(e.sha256), "ShardEntry", "sha256"))
        }
        self.init(datasetId: try required(str(c.dataset_id), "ShardManifest", "dataset_id"), count: Int(c.count),
                  seed: c.seed, stratifyBy: str(c.stratify_by), shards: shards)
    }

    func c(in arena: Arena) -> UnsafeMutablePointer<Nebula__V1__ShardManifest> {
        let m = arena.message(nebula__v1__shard_manifest__init)
        m.pointee.dataset_id = arena.string(datasetId)
        m.pointee.count = UInt32(clamping: count)
        m.pointee.seed = seed
        m.pointee.stratify_by = arena.string(stratifyBy)
        let entries = shards.map { s -> UnsafeMutablePointer<Nebula__V1__ShardEntry> in
            let e = arena.message(nebula__v1__shard_entry__init)
            e.pointee.index = UInt32(clamping: s.index)
            e.pointee.rows = s.rows
            e.pointee.bytes = s.bytes
            e.pointee.sha256 = arena.string(s.sha256)
            return e
        }
        m.pointee.n_shards = entries.count
        m.pointee.shards = arena.pointers(entries)
        return m
    }

    public init(serializedBytes bytes: [UInt8]) throws {
        self = try unpack(bytes, "ShardManifest", unpack: nebula__v1__shard_manifest__unpack,
                          free: nebula__v1__shard_manifest__free_unpacked) { try ShardManifest(c: $0) }
    }

    public func serializedBytes() -> [UInt8] {
        let arena = Arena()
        return pack(c(in: arena), size: nebula__v1__shard_manifest__get_packed_size, pack: nebula__v1__shard_manifest__pack)
    }
}

extension FetchShardRequest: RPCMessage {
    public init(serializedBytes bytes: [UInt8]) throws {
        self = try unpack(bytes, "FetchShardRequest", unpack: nebula__v1__fetch_shard_request__unpack,
                          free: nebula__v1__fetch_shard_request__free_unpacked) { c in
            FetchShardRequest(datasetId: try required(str(c.dataset_id), "FetchShardRequest", "dataset_id"),
                              sha256: try required(str(c.sha256), "FetchShardRequest", "sha256"), offset: c.offset,
                              chunkBytes: Int(c.chunk_bytes))
        }
    }

    public func serializedBytes() -> [UInt8] {
        let arena = Arena()
        let m = arena.message(nebula__v1__fetch_shard_request__init)
        m.pointee.dataset_id = arena.string(datasetId)
        m.pointee.sha256 = arena.string(sha256)
        m.pointee.offset = offset
        m.pointee.chunk_bytes = UInt32(clamping: chunkBytes)
        return pack(m, size: nebula__v1__fetch_shard_request__get_packed_size, pack: nebula__v1__fetch_shard_request__pack)
    }
}

extension ShardChunk: RPCMessage {
    public init(serializedBytes bytes: [UInt8]) throws {
        self = try unpack(bytes, "ShardChunk", unpack: nebula__v1__shard_chunk__unpack,
                          free: nebula__v1__shard_chunk__free_unpacked) { c in
            ShardChunk(offset: c.offset, data: NebulaWire.bytes(c.data), totalBytes: c.total_bytes)
        }
    }

    public func serializedBytes() -> [UInt8] {
        let arena = Arena()
        let m = arena.message(nebula__v1__shard_chunk__init)
        m.pointee.offset = offset
        m.pointee.data = arena.bytes(data)
        m.pointee.total_bytes = totalBytes
        return pack(m, size: nebula__v1__shard_chunk__get_packed_size, pack: nebula__v1__shard_chunk__pack)
    }
}
