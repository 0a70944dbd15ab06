import NebulaModel
import NebulaRPC
import NebulaWire
import Testing

@Suite("Dataset and shard messages")
struct DatasetWireTests {
    static let info = DatasetInfo(datasetId: "ds-0123456789ab", name: "iris ✓", state: .ready, kind: .imageFolders,
                                  source: "kaggle:owner/slug", sourceBytes: 1 << 40, storedBytes: 7, rows: 150, columns: 5,
                                  error: "", createdUnixMs: 1_795_000_000_000, updatedUnixMs: 1_795_000_000_001,
                                  sha256: String(repeating: "a", count: 64))
    static let manifest = ShardManifest(datasetId: "ds-1", count: 3, seed: .max, stratifyBy: "label",
                                        shards: (0..<3).map { ShardEntry(index: $0, rows: 50, bytes: 4096, sha256: "f\($0)") })

    func roundTrip<M: RPCMessage & Equatable>(_ m: M) throws {
        #expect(try M(serializedBytes: m.serializedBytes()) == m)
    }

    @Test func roundTrips() throws {
        for state in DatasetState.allCases {
            var i = Self.info
            i.state = state
            try roundTrip(i)
        }
        for kind in DatasetKind.allCases {
            var i = Self.info
            i.kind = kind
            try roundTrip(i)
        }
        try roundTrip(DatasetProgress(info: Self.info, phase: "converting", fraction: 0.25))
        try roundTrip(DatasetList(datasets: [Self.info, Self.info], total: 9))
        try roundTrip(DatasetList(datasets: [], total: 0))
        try roundTrip(DatasetListRequest(limit: 10, offset: 20))
        try roundTrip(DatasetRequest(datasetId: "ds-1", target: "y", taskOverride: "binary"))
        try roundTrip(DatasetDetail(info: Self.info, profileJSON: #"{"rows":1}"#, reportJSON: "{}", taskJSON: "",
                                    shardSets: [Self.manifest, Self.manifest]))
        try roundTrip(DatasetImportRequest(source: "kaggle:a/b", name: "b"))
        try roundTrip(UploadChunk(header: UploadHeader(name: "n", fileName: "f.csv", directory: true, totalBytes: 5,
                                                       fileCount: 2, skipBadRows: true),
                                  path: "a/b.csv", offset: 0, data: [0, 1, 2, 255]))
        try roundTrip(UploadChunk(header: nil, path: "", offset: 1 << 33, data: []))
        try roundTrip(ShardManifestRequest(datasetId: "ds-1", count: 4, seed: 7, stratifyBy: ""))
        try roundTrip(Self.manifest)
        try roundTrip(FetchShardRequest(datasetId: "ds-1", sha256: "abc", offset: 12, chunkBytes: 65536))
        try roundTrip(ShardChunk(offset: 3, data: Array(repeating: 7, count: 100_000), totalBytes: 100_003))
    }

    @Test func missingAndUnspecifiedFieldsAreRefused() throws {
        // no dataset id
        #expect(throws: WireError.self) { try DatasetRequest(serializedBytes: DatasetRequest(datasetId: "").serializedBytes()) }
        // a shard count of 0 means the field is missing
        #expect(throws: WireError.self) {
            try ShardManifestRequest(serializedBytes: ShardManifestRequest(datasetId: "d", count: 0).serializedBytes())
        }
        #expect(throws: WireError.self) {
            try FetchShardRequest(serializedBytes: FetchShardRequest(datasetId: "d", sha256: "").serializedBytes())
        }
        // DatasetInfo with state UNSPECIFIED (field 3 absent) is refused
        #expect(throws: WireError.self) { try DatasetInfo(serializedBytes: [0x0A, 0x01, 0x78]) }  // id "x" only
        // garbage
        #expect(throws: WireError.self) { try UploadChunk(serializedBytes: [0xFF, 0xFF, 0xFF, 0x0F]) }
        #expect(throws: WireError.self) { try ShardChunk(serializedBytes: [0x12, 0x7F, 0x01]) }
    }
}
