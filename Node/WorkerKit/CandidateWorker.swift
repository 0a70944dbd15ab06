import Foundation
import Logging
import NebulaBuilder
import NebulaCommon
import NebulaDataset
import NebulaEngine
import NebulaMPI
import NebulaModel
import NebulaRPC
import NebulaWire

/// Data-parallel candidate training over the ranks of a job: DataParallelTrainer on the given backend
/// (Note [Candidates as cluster jobs]). Call it on the MPI thread. With a `counter`, every collective
/// operation (gradient sums, the stop decision, GBDT histogram sums) is numbered for the
/// coordinator's hang watchdog, as for training jobs.
public final class MPICandidateParallelism: CandidateParallelism {
    let backend: any AllreduceBackend
    let runtime: MPIRuntime
    let counter: CollectiveCounter?

    public init(_ runtime: MPIRuntime, counter: CollectiveCounter? = nil) {
        self.runtime = runtime
        self.counter = counter
        backend = TimedBackend(MPIAllreduceBackend(runtime), counter: counter)
    }

    public func gbdtCollective() -> any GBDTCollective {
        guard let counter else { return MPIGBDTCollective(runtime) }
        return CountingCollective(inner: MPIGBDTCollective(runtime), counter: counter)
    }

    public var rank: Int { backend.rank }
    public var size: Int { backend.size }

    public func epochs(model: any Layer, optimizer: any Optimizer, options: TrainingOptions, x: Tensor, labels: [Int]) throws
        -> () throws -> Double
    {
        let trainer = try DataParallelTrainer(model: model, loss: CrossEntropyLoss(), optimizer: optimizer, backend: backend,
                                              options: options)
        return { Double(try trainer.trainEpoch(x, labels).loss) }
    }

    public func epochs(model: any Layer, optimizer: any Optimizer, options: TrainingOptions, x: Tensor, targets: Tensor) throws
        -> () throws -> Double
    {
        let trainer = try DataParallelTrainer(model: model, loss: MSELoss(), optimizer: optimizer, backend: backend, options: options)
        return { Double(try trainer.trainEpoch(x, targets).loss) }
    }

    public func any(_ flag: Bool) throws -> Bool {
        var value: [Float] = [flag ? 1 : 0]
        try value.withUnsafeMutableBufferPointer { try backend.allreduceSum($0) }
        return value[0] > 0
    }
}

/// The ranks of a builder candidate job (model "builder", Note [Candidates as cluster jobs]): every
/// rank reads the whole dataset and prepares the coordinator's run; rank 0 sends the outcome back.
enum CandidateWorker {
    static func run(_ configuration: WorkerConfiguration, plan: JobPlan, datasetPath: String, mpi: MPIRuntime,
                    channel: RPCChannel, logger: Logger) async throws {
        let job = try CandidateJob(json: plan.spec.builder)
        let rank = mpi.rank, size = mpi.size
        logger.info("builder candidate", metadata: ["builder.id": "\(job.runId)", "candidate": "\(job.candidate)",
                                                    "budget_s": "\(Int(job.budgetSeconds))", "mpi.size": "\(size)"])
        let budget = job.effectiveBudget(nowUnixMs: nowUnixMs())
        if budget < job.budgetSeconds {
            logger.notice("the run's deadline is near: this candidate trains for less than its share", metadata: [
                "budget_s": "\(budget)", "share_s": "\(job.budgetSeconds)"])
        }
        let telemetry = LoopTelemetry()
        let outcome = try await Worker.reporting(channel, configuration, rank: rank, telemetry: telemetry, logger: logger) {
            try await mpi.run { _ in
                let clock = ContinuousClock()
                let start = clock.now
                let dataset = try ColumnarDataset(path: datasetPath)
                let prep = try AutoBuilder.prepare(dataset, job.request, preprocessor: job.preprocessor)
                guard prep.fingerprint == job.fingerprint else {
                    throw WorkerError("this node's copy of dataset \(plan.spec.datasetId) gives another training/validation split (\(prep.fingerprint)) than the coordinator's (\(job.fingerprint)): the dataset changed or the nodes run another Nebula version")
                }
                let parallelism = size > 1 ? MPICandidateParallelism(mpi, counter: CollectiveCounter { telemetry.entered($0) }) : nil
                // A progress point per epoch, so `nebula job show` tells how far the candidate got.
                let rows = UInt64(prep.trainRows.count)
                var last = clock.now
                let outcome = try AutoBuilder.train(prep, candidate: job.candidate, budget: budget, parallelism: parallelism) { point in
                    let now = clock.now
                    let seconds = (now - last).seconds
                    last = now
                    telemetry.record(StepMetrics(step: UInt64(point.step), epoch: point.step, loss: point.trainLoss ?? 0,
                                                 samplesPerSecond: seconds > 0 ? Double(rows) / Double(size) / seconds : 0,
                                                 allreduceMs: 0, samples: rows * UInt64(point.step) / UInt64(size),
                                                 timeUnixMs: Int64(Date().timeIntervalSince1970 * 1000)))
                }
                logger.info("candidate trained", metadata: ["seconds": "\((clock.now - start).seconds)", "epochs": "\(outcome.curve.count)"])
                return outcome
            }
        }
        if rank == 0 {
            let metrics = String(decoding: try JSONSerialization.data(withJSONObject: outcome.row.metrics.filter { $0.value.isFinite },
                                                                       options: [.sortedKeys]), as: UTF8.self)
            try await Worker.finish(channel, configuration, model: try outcome.encoded(), step: UInt64(outcome.curve.count),
                                    epoch: outcome.curve.count, worldSize: size, metricsJSON: metrics)
            logger.info("builder candidate finished", metadata: ["candidate": "\(job.candidate)",
                                                                 "score": "\(outcome.row.evalMetric) \(outcome.row.scoreVal)"])
        }
        try await mpi.barrier()
        try mpi.close()
    }
}
