import Foundation
import NebulaDataset

/// What a builder run is asked to do.
public struct BuilderRequest: Sendable, Codable, Equatable {
    public var target: String
    /// binary, multiclass or regression; nil: detected.
    public var task: String?
    /// Seconds for all candidates together (each stops early when its share is spent).
    public var timeBudgetSeconds: Double
    /// The metric that ranks the leaderboard; nil: accuracy (classification) or rmse (regression).
    public var metric: String?
    public var seed: UInt64

    public init(target: String, task: String? = nil, timeBudgetSeconds: Double = 600, metric: String? = nil, seed: UInt64 = 0) {
        self.target = target
        self.task = task
        self.timeBudgetSeconds = timeBudgetSeconds
        self.metric = metric
        self.seed = seed
    }
}

/// A refusal with the reason (the API answers these as 4xx).
public struct BuilderError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Kind: String, Sendable { case invalidRequest, invalidInput, badBundle }
    public var kind: Kind
    public var field: String?
    public var message: String
    public var description: String { message }

    public init(_ kind: Kind, _ message: String, field: String? = nil) {
        self.kind = kind
        self.message = message
        self.field = field
    }

    static func notANumber(column: String, row: Int, value: String) -> BuilderError {
        BuilderError(.invalidInput, "column '\(column)' row \(row + 1): '\(value.prefix(40))' is not a number (the model was trained on numbers there)",
                     field: column)
    }
    static func notADate(column: String, row: Int, value: String) -> BuilderError {
        BuilderError(.invalidInput, "column '\(column)' row \(row + 1): '\(value.prefix(40))' is not a date (YYYY-MM-DD)", field: column)
    }
    static func badBundle(_ message: String) -> BuilderError { BuilderError(.badBundle, "the model file is damaged: \(message)") }
}

/// One row of the leaderboard (columns like AutoGluon's).
public struct LeaderboardRow: Codable, Sendable, Equatable {
    public var model: String
    public var scoreVal: Double
    public var evalMetric: String
    /// Seconds to train.
    public var fitTime: Double
    /// Seconds to predict the validation rows.
    public var predTimeVal: Double
    public var params: [String: String]
    /// Every default metric on the validation rows.
    public var metrics: [String: Double]
    public var best: Bool
}

/// A point of a learning curve.
public struct CurvePoint: Codable, Sendable, Equatable {
    public var step: Int
    public var trainLoss: Double?
    public var validation: Double?
}

/// Everything a run found: the report is drawn from it and the API answers it.
public struct BuilderResult: Codable, Sendable {
    public struct ColumnSummary: Codable, Sendable, Equatable {
        public var name: String
        public var type: String
        public var missing: Int
        public var distinct: Int?
    }

    public var target: String
    public var task: String
    public var modality: String
    public var taskReason: String
    public var taskOverridden: Bool
    public var rows: Int
    public var trainRows: Int
    public var validationRows: Int
    public var holdoutFraction: Double
    public var evalMetric: String
    public var columns: [ColumnSummary]
    public var features: Int
    public var skippedColumns: [String]
    public var classes: [String]?
    public var leaderboard: [LeaderboardRow]
    public var bestModel: String
    public var bestMetrics: [String: Double]
    public var curves: [String: [CurvePoint]]
    /// confusion[truth][predicted] of the best model, classes order.
    public var confusionMatrix: [[Int]]?
    /// (false positive rate, true positive rate) of the best model (binary only).
    public var rocCurve: [[Double]]?
    /// (predicted, actual) of the best model on up to 1000 validation rows (regression only).
    public var predictedVsActual: [[Double]]?
    /// Drop of the validation score when a column's values are shuffled (best model), largest first.
    public var permutationImportance: [[String]]
    /// The validation rows (dataset row numbers, 0-based), so predictions can be checked against them.
    public var validationRowNumbers: [Int]
    public var seconds: Double
    public var notes: [String]
    /// Candidate name → the cluster job that trained it (runs whose candidates ran as jobs).
    public var candidateJobs: [String: String]?
    /// Set when the run trained on an image-folder dataset: the model also predicts image files.
    public var imageInput: ImageInput?
}
