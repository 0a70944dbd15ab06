import Foundation
import NebulaModel
import NebulaRPC
import NebulaWire
import Testing

@Suite("Job messages")
struct JobWireTests {
    static let spec = JobSpec(name: "mixed", datasetId: "ds-1", target: "y", model: "mlp", minNodes: 2, maxNodes: 3,
                              gpusPerNode: 0, labels: ["rack": "a"], priority: 4, epochs: 7, batchSize: 32, learningRate: 0.01,
                              seed: 9, maxRestarts: 2, checkpointEvery: 5, holdoutFraction: 0.2, task: "multiclass",
                              bucketCapMB: 4, fp16Allreduce: true, user: "u", stallTimeoutSeconds: 30, gpuBatchSize: 128,
                              noOverlap: true)

    @Test func specAndPlanCarryTheTrainingOptions() throws {
        #expect(try JobSpec(serializedBytes: Self.spec.serializedBytes()) == Self.spec)
        var defaults = Self.spec
        defaults.fp16Allreduce = false
        defaults.gpuBatchSize = 0
        defaults.noOverlap = false
        #expect(try JobSpec(serializedBytes: defaults.serializedBytes()) == defaults)
        let plan = JobPlan(spec: Self.spec, attempt: 2, task: "multiclass", classes: ["a", "b"],
                           shard: ShardEntry(index: 1, rows: 10, bytes: 100, sha256: "ab"), shardCount: 3, schemaJSON: "{}",
                           rankBatchSizes: [128, 32, 32])
        #expect(try JobPlan(serializedBytes: plan.serializedBytes()) == plan)
        var plain = plan
        plain.rankBatchSizes = []
        #expect(try JobPlan(serializedBytes: plain.serializedBytes()) == plain)
    }

    /// Note [Per-rank batch sizes]: GPU nodes' ranks take --gpu-batch-size, the others --batch-size.
    @Test func rankBatchSizesFollowTheNodesGPUs() {
        #expect(Self.spec.rankBatchSizes(gpusPerRank: [1, 0, 2]) == [128, 32, 128])
        var plain = Self.spec
        plain.gpuBatchSize = 0
        #expect(plain.rankBatchSizes(gpusPerRank: [1, 0]) == [])
        #expect(plain.localBatchSize(gpus: 4) == 32)
    }

    /// Specs stored as JSON before the GPU batch size and the overlap switch existed still decode.
    @Test func specsStoredBeforeTheNewFieldsDecode() throws {
        var object = try JSONSerialization.jsonObject(with: JSONEncoder().encode(Self.spec)) as! [String: Any]
        object.removeValue(forKey: "gpuBatchSize")
        object.removeValue(forKey: "noOverlap")
        let old = try JSONDecoder().decode(JobSpec.self, from: JSONSerialization.data(withJSONObject: object))
        var want = Self.spec
        want.gpuBatchSize = 0
        want.noOverlap = false
        #expect(old == want)
        #expect(try JSONDecoder().decode(JobSpec.self, from: JSONEncoder().encode(Self.spec)) == Self.spec)
    }
}
