import Foundation
import NebulaCommon
import NebulaDataset
import NebulaEngine

// Note [Candidates as cluster jobs]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// The coordinator prepares a run (task, labels, holdout split, preprocessing fitted on the training
// rows) and submits every candidate as a cluster job of model "builder": the job spec carries a
// `CandidateJob` (the request, the candidate's name, its share of the time budget, the fitted
// preprocessing and the split's fingerprint). The job's ranks read the whole dataset (the one-shard
// cut, rows in dataset order), prepare the same run with the coordinator's preprocessing, check that
// their split has the coordinator's fingerprint, train the candidate and — rank 0 — upload a
// `CandidateOutcome` (the trained model, its validation predictions, learning curve and leaderboard
// row) as the job's final model. The coordinator reads the outcomes back, forms the ensemble and
// the leaderboard, and draws the report.
//
// Networks (the MLP and the CNN) of a large dataset run over several nodes: every rank holds all
// training rows and takes its slice of each global batch; gradients are averaged over the ranks by
// MPI allreduce (DataParallelTrainer), so the replicas stay identical. Every rank scores the
// validation rows itself and the decision to stop (patience or budget) is taken together (true on
// one rank, true on all), so every rank runs the same number of epochs and collectives. The GBDT
// runs over several nodes too: every rank fits the same bin edges on all training rows, grows trees
// on every size-th row from its rank on, and the ranks sum their gradient histograms (Note
// [Distributed GBDT jobs]), so all of them grow the same trees.

/// What the ranks of a candidate job need besides the dataset (travels in the job spec as JSON).
public struct CandidateJob: Codable, Sendable, Equatable {
    public var runId: String
    public var request: BuilderRequest
    public var candidate: String
    /// Seconds this candidate may train.
    public var budgetSeconds: Double
    public var preprocessor: Preprocessor
    /// The split the coordinator prepared (`BuilderPreparation.fingerprint`).
    public var fingerprint: String
    /// When the whole run's time budget ends (Unix ms, the coordinator's clock; Note [Candidate
    /// budgets and the run's deadline]). Absent in documents of older coordinators.
    public var deadlineUnixMs: Int64?

    public init(runId: String, request: BuilderRequest, candidate: String, budgetSeconds: Double, preprocessor: Preprocessor,
                fingerprint: String, deadlineUnixMs: Int64? = nil) {
        self.runId = runId
        self.request = request
        self.candidate = candidate
        self.budgetSeconds = budgetSeconds
        self.preprocessor = preprocessor
        self.fingerprint = fingerprint
        self.deadlineUnixMs = deadlineUnixMs
    }

    // Note [Candidate budgets and the run's deadline]
    // ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
    // Every candidate gets an equal share of the run's time budget, and all are submitted at once.
    // On a busy cluster a candidate may wait in the queue for a long time; trained for its whole
    // share after that, it would carry the run far past its budget. So a candidate that starts late
    // trains for what is left until the run's deadline, but never less than a floor (a tenth of its
    // share, at least a second) so that it still gives a model; the run overshoots by at most the
    // floors. The deadline is in the coordinator's clock and compared with the node's: clocks of a
    // cluster are assumed to agree within a second or so (NTP). Ranks of one candidate may compute
    // slightly different budgets; their stop decision is collective, so they still agree.

    /// The seconds this candidate may train when it starts at `nowUnixMs` (Note [Candidate budgets
    /// and the run's deadline]).
    public func effectiveBudget(nowUnixMs: Int64) -> Double {
        guard let deadlineUnixMs else { return budgetSeconds }
        let floor = min(budgetSeconds, max(1, budgetSeconds / 10))
        let left = Double(deadlineUnixMs - nowUnixMs) / 1000
        return min(budgetSeconds, max(floor, left))
    }

    public func encoded() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    public init(json: String) throws {
        do {
            self = try JSONDecoder().decode(CandidateJob.self, from: Data(json.utf8))
        } catch {
            throw BuilderError(.invalidRequest, "the job's builder candidate document is not readable: \(error)")
        }
    }
}

/// A prepared run (Note [Builder runs]): everything candidates train on.
public struct BuilderPreparation {
    public let request: BuilderRequest
    let detection: TaskDetectionResult
    let overridden: Bool
    public let classes: [String]
    let metric: AutoBuilder.Metric
    public let holdoutFraction: Double
    /// Dataset row numbers (0-based) of the training and validation rows.
    public let trainRows: [Int]
    public let validationRows: [Int]
    public let preprocessor: Preprocessor
    let context: TrainContext
    let plans: [CandidatePlan]

    public var task: ProblemType { detection.problemType }
    public var candidateNames: [String] { plans.map(\.name) }

    /// Whether a candidate can train data-parallel over several ranks (the networks).
    public func isDistributable(_ candidate: String) -> Bool {
        plans.contains { p in
            guard p.name == candidate else { return false }
            switch p { case .mlp, .cnn, .gbdt: return true; default: return false }
        }
    }

    /// Identifies the split and the labels: two preparations with the same fingerprint train and score
    /// on the same rows with the same classes.
    public var fingerprint: String {
        var h = SHA256()
        for r in trainRows { withUnsafeBytes(of: UInt64(r).littleEndian) { h.update($0) } }
        h.update([0xFF])
        for r in validationRows { withUnsafeBytes(of: UInt64(r).littleEndian) { h.update($0) } }
        h.update(Array(classes.joined(separator: "\u{1F}").utf8))
        return "\(trainRows.count)+\(validationRows.count):" + SHA256.hex(h.finalize()).prefix(16)
    }
}

/// One trained candidate: its leaderboard row, the model, its validation predictions and learning
/// curve (what a candidate job sends back to the coordinator).
public struct CandidateOutcome: Codable, Sendable {
    public var row: LeaderboardRow
    public var model: TrainedModel
    var prediction: Prediction
    public var curve: [CurvePoint]
    public var fingerprint: String

    init(row: LeaderboardRow, model: TrainedModel, prediction: Prediction, curve: [CurvePoint], fingerprint: String) {
        self.row = row
        self.model = model
        self.prediction = prediction
        self.curve = curve
        self.fingerprint = fingerprint
    }

    enum CodingKeys: String, CodingKey { case row, model, values, classes, curve, fingerprint }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        row = try c.decode(LeaderboardRow.self, forKey: .row)
        model = try c.decode(TrainedModel.self, forKey: .model)
        let values = try c.decode([Double].self, forKey: .values)
        let k = try c.decode(Int.self, forKey: .classes)
        prediction = k == 0 ? .values(values) : .probabilities(values, classes: k)
        curve = try c.decode([CurvePoint].self, forKey: .curve)
        fingerprint = try c.decode(String.self, forKey: .fingerprint)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(row, forKey: .row)
        try c.encode(model, forKey: .model)
        switch prediction {
        case .values(let v):
            try c.encode(v, forKey: .values)
            try c.encode(0, forKey: .classes)
        case .probabilities(let p, let k):
            try c.encode(p, forKey: .values)
            try c.encode(k, forKey: .classes)
        }
        try c.encode(curve, forKey: .curve)
        try c.encode(fingerprint, forKey: .fingerprint)
    }

    // Scores can be NaN (R² of a constant column, say), which plain JSON cannot hold.
    static let nonFinite = (positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")

    public func encoded() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: Self.nonFinite.positiveInfinity,
                                                                      negativeInfinity: Self.nonFinite.negativeInfinity, nan: Self.nonFinite.nan)
        return Array(try encoder.encode(self))
    }

    public init(decoding bytes: [UInt8], source: String) throws {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: Self.nonFinite.positiveInfinity,
                                                                        negativeInfinity: Self.nonFinite.negativeInfinity, nan: Self.nonFinite.nan)
        do {
            self = try decoder.decode(CandidateOutcome.self, from: Data(bytes))
        } catch {
            throw BuilderError(.badBundle, "\(source) is not a builder candidate's result: \(error)")
        }
    }
}

/// Data-parallel training over the ranks of a candidate job (Note [Candidates as cluster jobs]).
/// Every method is collective: every rank calls it, in the same order.
public protocol CandidateParallelism: AnyObject {
    var rank: Int { get }
    var size: Int { get }
    /// An epoch runner for a classifier over the full training set every rank holds: each call runs one
    /// synchronous data-parallel epoch and answers the global mean loss.
    func epochs(model: any Layer, optimizer: any Optimizer, options: TrainingOptions, x: Tensor, labels: [Int]) throws
        -> () throws -> Double
    /// The same for a regressor (targets n × 1).
    func epochs(model: any Layer, optimizer: any Optimizer, options: TrainingOptions, x: Tensor, targets: Tensor) throws
        -> () throws -> Double
    /// true on every rank when `flag` is true on any.
    func any(_ flag: Bool) throws -> Bool
    /// Sums and maxima of GBDT histograms over the ranks (each rank growing trees on its own rows).
    func gbdtCollective() -> any GBDTCollective
}
