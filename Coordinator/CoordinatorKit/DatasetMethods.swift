import NebulaModel
import NebulaRPC
import NebulaWire

/// DatasetService: uploads and questions about datasets (admin CLI).
enum DatasetServiceMethods {
    static func make(_ datasets: DatasetService) -> [RPCMethod] {
        [
            .clientStreaming(DatasetServicePath.upload) { (chunks: RPCStreamReader<UploadChunk>, _) -> DatasetInfo in
                try await datasets.upload(chunks)
            },
            .unary(DatasetServicePath.importDataset) { (request: DatasetImportRequest, _) -> DatasetInfo in
                try await datasets.importDataset(request)
            },
            .serverStreaming(DatasetServicePath.watchDataset) {
                (request: DatasetRequest, _, writer: RPCStreamWriter<DatasetProgress>) in
                for await progress in try await datasets.watch(request.datasetId) {
                    try await writer.write(progress)
                }
            },
            .unary(DatasetServicePath.listDatasets) { (request: DatasetListRequest, _) -> DatasetList in
                try await datasets.list(request)
            },
            .unary(DatasetServicePath.getDataset) { (request: DatasetRequest, _) -> DatasetDetail in
                try await datasets.detail(request)
            },
            .unary(DatasetServicePath.deleteDataset) { (request: DatasetRequest, _) -> DatasetInfo in
                try await datasets.delete(request.datasetId)
            },
        ]
    }
}

/// ShardService: shard manifests and shard bytes (node agents, workers, admins).
enum ShardServiceMethods {
    static func make(_ datasets: DatasetService) -> [RPCMethod] {
        [
            .unary(ShardServicePath.getShardManifest) { (request: ShardManifestRequest, _) -> ShardManifest in
                try await datasets.manifest(request)
            },
            .serverStreaming(ShardServicePath.fetchShard) {
                (request: FetchShardRequest, _, writer: RPCStreamWriter<ShardChunk>) in
                try await datasets.fetch(request, to: writer)
            },
        ]
    }
}
