import Foundation
import NebulaEngine
import NebulaMPI
import Testing

extension MPIWorldTests {
    /// Distributed GBDT over MPI: every rank trains on its own rows and must end with the model one
    /// process trains on all rows (exact histogram sums: the models are equal, not just close).
    @Suite("GBDT over MPI")
    struct GBDT {
        var mpi: MPIRuntime { TestWorld.mpi }

        /// Rows of rank r: an uneven, interleaved assignment.
        static func rows(of rank: Int, ranks: Int, total: Int) -> [Int] {
            (0..<total).filter { ($0 * $0 + $0 / 3) % ranks == rank }
        }

        /// 300 rows, 4 features (one with missing values), a nonlinear target.
        static func data() -> (x: Tensor, targets: [Double], labels: [Int]) {
            var rng = SeededGenerator(seed: 21)
            let n = 300, f = 4
            var x = Tensor(shape: [n, f], storage: (0..<n * f).map { _ in rng.uniform(2) })
            for r in stride(from: 0, to: n, by: 7) { x[r, 3] = .nan }
            let targets = (0..<n).map { r in
                Double(sin(3 * x[r, 0]) + x[r, 1] * x[r, 2] + (x[r, 3].isNaN ? 0.5 : x[r, 3])) + Double(rng.uniform(0.1))
            }
            let labels = targets.map { $0 < -0.3 ? 0 : ($0 < 0.6 ? 1 : 2) }
            return (x, targets, labels)
        }

        /// Rank 0 fits the bin edges and broadcasts them (Note [Distributed bin edges] in the engine).
        static func broadcastEdges(_ comm: MPICommunicator, _ x: Tensor) throws(MPIError) -> GBDTBinMapper {
            var encoded = comm.rank == 0 ? GBDTBinMapper.fit(x).encoded : []
            var count = [Int64(encoded.count)]
            try count.withUnsafeMutableBufferPointer { (p) throws(MPIError) in try comm.broadcast(p, root: 0) }
            if comm.rank != 0 { encoded = [Double](repeating: 0, count: Int(count[0])) }
            try encoded.withUnsafeMutableBufferPointer { (p) throws(MPIError) in try comm.broadcast(p, root: 0) }
            return GBDTBinMapper(encoded: encoded)
        }

        @Test func regressionMatchesSingleProcess() async throws {
            try await TestWorld.enter()
            let (x, targets, _) = Self.data()
            let p = { var p = GBDTParameters(); p.maxIterations = 15; return p }()
            let single = GBDTModel.fitRegressor(x: x, targets: targets, parameters: p)
            let distributed = try await mpi.run { comm in
                let edges = try Self.broadcastEdges(comm, x)
                let mine = Self.rows(of: comm.rank, ranks: comm.size, total: x.rows)
                return GBDTModel.fitRegressor(x: x.gatherRows(mine), targets: mine.map { targets[$0] }, parameters: p,
                                              binMapper: edges, collective: MPIGBDTCollective(TestWorld.mpi))
            }
            #expect(distributed == single)
        }

        @Test func multiclassMatchesSingleProcess() async throws {
            try await TestWorld.enter()
            let (x, _, labels) = Self.data()
            let p = { var p = GBDTParameters(); p.maxIterations = 10; return p }()
            let single = GBDTModel.fitClassifier(x: x, labels: labels, classes: 3, parameters: p)
            let distributed = await mpi.run { comm in
                let mine = Self.rows(of: comm.rank, ranks: comm.size, total: x.rows)
                return GBDTModel.fitClassifier(x: x.gatherRows(mine), labels: mine.map { labels[$0] }, classes: 3,
                                               parameters: p, binMapper: GBDTBinMapper.fit(x),
                                               collective: MPIGBDTCollective(TestWorld.mpi))
            }
            #expect(distributed == single)
            #expect(distributed.predictClasses(x) == single.predictClasses(x))
        }

        /// What a restarted GBDT job does (Note [Resuming boosting]): every rank stops after 4
        /// iterations, saves the model (rank 0's bytes, broadcast, stand in for the checkpoint), decodes
        /// it and boosts on to 10 over MPI: the single process's 10-iteration model.
        @Test func resumedFromASavedModelMatchesSingleProcess() async throws {
            try await TestWorld.enter()
            let (x, _, labels) = Self.data()
            let p = { var p = GBDTParameters(); p.maxIterations = 10; return p }()
            let single = GBDTModel.fitClassifier(x: x, labels: labels, classes: 3, parameters: p)
            let resumed = try await mpi.run { comm in
                let mine = Self.rows(of: comm.rank, ranks: comm.size, total: x.rows)
                let edges = try Self.broadcastEdges(comm, x)
                var early = p
                early.maxIterations = 4
                let partial = GBDTModel.fitClassifier(x: x.gatherRows(mine), labels: mine.map { labels[$0] }, classes: 3,
                                                      parameters: early, binMapper: edges,
                                                      collective: MPIGBDTCollective(TestWorld.mpi))
                var bytes = comm.rank == 0 ? partial.encoded() : []
                var count = [Int64(bytes.count)]
                try count.withUnsafeMutableBufferPointer { (b) throws(MPIError) in try comm.broadcast(b, root: 0) }
                if comm.rank != 0 { bytes = [UInt8](repeating: 0, count: Int(count[0])) }
                try bytes.withUnsafeMutableBufferPointer { (b) throws(MPIError) in try comm.broadcast(b, root: 0) }
                let saved = try GBDTModel(decoding: bytes)
                return GBDTModel.fitClassifier(x: x.gatherRows(mine), labels: mine.map { labels[$0] }, classes: 3,
                                               parameters: p, collective: MPIGBDTCollective(TestWorld.mpi), resume: saved)
            }
            #expect(resumed.iterations == 10)
            #expect(resumed == single)
        }
    }
}
