import Foundation
import NebulaBuilder
import NebulaDataset
import NebulaEngine
import NebulaMPI
import NebulaWorker
import Testing

extension MPIWorldTests {
    /// Builder candidates trained data-parallel over the ranks (Note [Candidates as cluster jobs]): every
    /// rank prepares the same run, trains with `MPICandidateParallelism`, and the replicas must end
    /// identical, after the same number of epochs, with a sound validation score. At world size 1 the
    /// same code trains as one process.
    @Suite("Builder candidates over MPI")
    struct BuilderCandidates {
        var mpi: MPIRuntime { TestWorld.mpi }
        static let data = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Data")

        struct Case: Sendable, CustomTestStringConvertible {
            var file: String
            var target: String
            var candidate: String
            var budget: Double
            /// The least acceptable validation score (accuracy), or the most (RMSE).
            var bound: Double
            var testDescription: String { "\(candidate) on \(file), budget \(budget) s" }
        }

        static let cases: [Case] = [
            Case(file: "sklearn_wine.csv", target: "target", candidate: "NeuralNetMLP", budget: 60, bound: 0.9),
            // the budget, not patience, ends this one: each rank's clock says when, the ranks must agree
            Case(file: "sklearn_diabetes.csv", target: "target", candidate: "NeuralNetMLP", budget: 0.3, bound: 120),
            Case(file: "sklearn_digits_8x8.csv", target: "label", candidate: "CNN", budget: 8, bound: 0.8),
            // trees grown on every other row, histograms summed: the same trees on every rank
            Case(file: "sklearn_digits_8x8.csv", target: "label", candidate: "GBDT", budget: 30, bound: 0.9),
            Case(file: "sklearn_diabetes.csv", target: "target", candidate: "GBDT", budget: 30, bound: 75),
        ]

        @Test(arguments: cases)
        func replicasAgree(_ c: Case) async throws {
            try await TestWorld.enter()
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("nebula-mpi-builder-\(getpid())-\(mpi.rank)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: dir) }
            let path = dir.appendingPathComponent("data.nbds").path
            _ = try CSVIngest.ingest(csv: Self.data.appendingPathComponent(c.file).path, to: path)
            let request = BuilderRequest(target: c.target, timeBudgetSeconds: 60)
            let mpi = self.mpi
            let counter = CollectiveCounter { _ in }
            let (outcome, checksum) = try await mpi.run { _ in
                let prep = try AutoBuilder.prepare(try ColumnarDataset(path: path), request)
                let outcome = try AutoBuilder.train(prep, candidate: c.candidate, budget: c.budget,
                                                    parallelism: MPICandidateParallelism(mpi, counter: counter))
                let parameters: [[Float]]
                switch outcome.model {
                case .mlp(_, let p, _, _), .cnn(_, let p, _): parameters = p
                case .gbdt(let bytes, _): parameters = [bytes.map { Float($0) }]
                default: parameters = []
                }
                let checksum = parameters.joined().enumerated().reduce(0.0) { $0 + Double($1.element) * Double($1.offset % 97 + 1) }
                return (outcome, checksum)
            }
            #expect((!outcome.curve.isEmpty || c.candidate == "GBDT") && checksum != 0)
            if mpi.size > 1 {
                #expect(outcome.row.params["ranks"] == "\(mpi.size) (data-parallel)")
            }
            // Same epochs, bit-identical parameters and the same number of collective operations (what
            // the hang watchdog compares) on every rank: max(x) == x and max(−x) == −x.
            let operations = Double(counter.count)
            if mpi.size > 1 { #expect(operations > 0, "the collectives were counted") }
            let mine = [Double(outcome.curve.count), -Double(outcome.curve.count), checksum, -checksum, operations, -operations]
            let most = try await mpi.allreduce(mine, op: .max)
            #expect(most == mine, "rank \(mpi.rank): \(mine) vs the ranks' maxima \(most)")
            let score = outcome.row.scoreVal
            if outcome.row.evalMetric == "rmse" {
                #expect(score <= c.bound, "\(c.candidate) RMSE \(score)")
            } else {
                #expect(score >= c.bound, "\(c.candidate) \(outcome.row.evalMetric) \(score)")
            }
        }
    }
}
