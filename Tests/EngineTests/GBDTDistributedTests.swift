import Foundation
import NebulaEngine
import Testing

/// Simulated data-parallel GBDT training: one thread per rank, each holding only its rows, reducing through
/// an in-memory allreduce. Every rank must end with the model a single process trains on all rows.
@Suite("GBDT distributed training")
struct GBDTDistributedTests {
    /// An in-memory allreduce for `size` threads: each contribution is stored, the last to arrive reduces
    /// them in rank order and wakes the others, who copy the result out.
    final class AllreduceGroup: @unchecked Sendable {
        // Safe to share: every stored property is read and written only with `condition` locked.
        private let condition = NSCondition()
        private let size: Int
        private var contributions: [[Double]]
        private var arrived = 0
        private var generation = 0
        private var result: [Double] = []

        init(size: Int) {
            self.size = size
            contributions = Array(repeating: [], count: size)
        }

        func reduce(rank: Int, _ buffer: UnsafeMutableBufferPointer<Double>, _ op: (Double, Double) -> Double) {
            condition.lock()
            defer { condition.unlock() }
            contributions[rank] = Array(buffer)
            arrived += 1
            let mine = generation
            if arrived == size {
                var r = contributions[0]
                for other in contributions.dropFirst() {
                    precondition(other.count == r.count, "ranks reduced buffers of different sizes")
                    for i in r.indices { r[i] = op(r[i], other[i]) }
                }
                result = r
                arrived = 0
                generation += 1
                condition.broadcast()
            } else {
                while generation == mine { condition.wait() }
            }
            // The next result needs this rank to arrive again, so `result` is still ours here.
            for i in 0..<buffer.count { buffer[i] = result[i] }
        }
    }

    struct RankCollective: GBDTCollective {
        let group: AllreduceGroup
        let rank: Int
        func sum(_ buffer: UnsafeMutableBufferPointer<Double>) { group.reduce(rank: rank, buffer, +) }
        func max(_ buffer: UnsafeMutableBufferPointer<Double>) { group.reduce(rank: rank, buffer, Swift.max) }
    }

    final class Results: @unchecked Sendable {
        // Safe to share: `models` is only touched with `lock` held.
        private let lock = NSLock()
        private var models: [Int: GBDTModel] = [:]
        func set(_ rank: Int, _ model: GBDTModel) { lock.withLock { models[rank] = model } }
        var all: [GBDTModel] { lock.withLock { models.keys.sorted().map { models[$0]! } } }
    }

    /// Runs `train` on `ranks` threads (each with its own rank's collective) and returns their models.
    static func runRanks(_ ranks: Int, _ train: @escaping @Sendable (Int, RankCollective) -> GBDTModel) -> [GBDTModel] {
        let group = AllreduceGroup(size: ranks)
        let results = Results()
        let done = DispatchSemaphore(value: 0)
        for rank in 0..<ranks {
            let thread = Thread {
                results.set(rank, train(rank, RankCollective(group: group, rank: rank)))
                done.signal()
            }
            thread.stackSize = 16 << 20
            thread.start()
        }
        for _ in 0..<ranks { done.wait() }
        return results.all
    }

    /// Rows of rank `r`: an uneven, interleaved assignment (row i → rank (i·i + i/3) mod ranks).
    static func rows(of rank: Int, ranks: Int, total: Int) -> [Int] {
        (0..<total).filter { ($0 * $0 + $0 / 3) % ranks == rank }
    }

    @Test(arguments: [2, 3])
    func multiclassWithMissingValuesMatchesSingleProcess(ranks: Int) throws {
        let data = try TabularTestData.load("penguins")
        let p = { var p = GBDTParameters(); p.maxIterations = 20; return p }()
        // Note [Distributed bin edges]: rank 0 fits the edges, every rank decodes the broadcast copy.
        let encodedEdges = GBDTBinMapper.fit(data.x).encoded
        let single = GBDTModel.fitClassifier(x: data.x, labels: data.labels, classes: 3, parameters: p)
        let models = Self.runRanks(ranks) { rank, collective in
            let mine = Self.rows(of: rank, ranks: ranks, total: data.rows)
            return GBDTModel.fitClassifier(x: data.x.gatherRows(mine), labels: mine.map { data.labels[$0] }, classes: 3,
                                           parameters: p, binMapper: GBDTBinMapper(encoded: encodedEdges),
                                           collective: collective)
        }
        #expect(models.count == ranks)
        for model in models { #expect(model == single) }
        #expect(single.trees[0][0].nodes[0].count == data.rows)
    }

    @Test func binaryMatchesSingleProcess() throws {
        let data = try TabularTestData.load("penguins")
        let isGentoo = data.labels.map { $0 == 2 ? 1 : 0 }
        let p = { var p = GBDTParameters(); p.maxIterations = 20; p.minSamplesLeaf = 5; return p }()
        let edges = GBDTBinMapper.fit(data.x)
        let single = GBDTModel.fitClassifier(x: data.x, labels: isGentoo, classes: 2, parameters: p)
        let models = Self.runRanks(2) { rank, collective in
            let mine = Self.rows(of: rank, ranks: 2, total: data.rows)
            return GBDTModel.fitClassifier(x: data.x.gatherRows(mine), labels: mine.map { isGentoo[$0] }, classes: 2,
                                           parameters: p, binMapper: edges, collective: collective)
        }
        for model in models { #expect(model == single) }
        #expect(single.loss == .binaryLogLoss)
    }

    @Test func regressionMatchesSingleProcess() throws {
        let data = try TabularTestData.load("sklearn_diabetes")
        let p = { var p = GBDTParameters(); p.maxIterations = 20; return p }()
        let edges = GBDTBinMapper.fit(data.x)
        let single = GBDTModel.fitRegressor(x: data.x, targets: data.targets, parameters: p)
        let models = Self.runRanks(3) { rank, collective in
            let mine = Self.rows(of: rank, ranks: 3, total: data.rows)
            return GBDTModel.fitRegressor(x: data.x.gatherRows(mine), targets: mine.map { data.targets[$0] },
                                          parameters: p, binMapper: edges, collective: collective)
        }
        for model in models { #expect(model == single) }
        #expect(single.predict(data.x) == models[2].predict(data.x))
    }
}
