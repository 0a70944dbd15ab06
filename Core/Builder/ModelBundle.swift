import Foundation
import NebulaDataset
import NebulaEngine
import NebulaTraining

// Note [Model bundle]
// ~~~~~~~~~~~~~~~~~~~
// The builder's model is one JSON file: format version, task, target, classes, the fitted
// preprocessing (Note [One preprocessing path]), every trained candidate (an ensemble refers to
// them by index) and which one is the chosen model, with its validation metrics. Networks are their
// architecture plus parameter values; a GBDT is its own binary format (Note [GBDT model file]) in
// base64. Loading rebuilds the models; nothing in the file is executed.

public struct ModelBundle: Codable, Sendable {
    public static let formatVersion = 1
    public var format = "nebula-model"
    public var version = ModelBundle.formatVersion
    public var task: String
    public var target: String
    public var classes: [String]
    public var preprocessor: Preprocessor
    public var textColumn: String?
    public var members: [TrainedModel]
    public var best: Int
    public var modelName: String
    public var metrics: [String: Double]

    public init(task: String, target: String, classes: [String], preprocessor: Preprocessor, textColumn: String?,
                members: [TrainedModel], best: Int, modelName: String, metrics: [String: Double]) {
        self.task = task
        self.target = target
        self.classes = classes
        self.preprocessor = preprocessor
        self.textColumn = textColumn
        self.members = members
        self.best = best
        self.modelName = modelName
        self.metrics = metrics
    }

    func predict(_ input: ModelInput) throws -> Prediction {
        try members[best].predict(input, classes: classes.count, members: members)
    }

    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return try encoder.encode(self)
    }

    public init(decoding data: Data) throws {
        let decoded: ModelBundle
        do {
            decoded = try JSONDecoder().decode(ModelBundle.self, from: data)
        } catch {
            throw BuilderError.badBundle("not a Nebula model file (\(error))")
        }
        guard decoded.format == "nebula-model", decoded.version == Self.formatVersion else {
            throw BuilderError.badBundle("format \(decoded.format) v\(decoded.version); this build reads nebula-model v\(Self.formatVersion)")
        }
        guard decoded.members.indices.contains(decoded.best) else { throw BuilderError.badBundle("no chosen model") }
        self = decoded
    }

    /// The input columns a prediction CSV must have.
    public var inputColumns: [String] { preprocessor.columns.map(\.name) + (textColumn.map { [$0] } ?? []) }

    /// Predicts every row of a CSV (header line first): the input columns plus `prediction` and, for
    /// classification, one `probability_<class>` column per class. Missing or mistyped columns are
    /// errors that name them.
    public func predictCSV(_ csv: [UInt8], source: String = "input") throws -> (csv: String, rows: Int) {
        let table: CSVTable
        do {
            table = try CSVTable.parse(csv, source: source)
        } catch {
            throw BuilderError(.invalidInput, "\(source) is not a readable CSV: \(error)")
        }
        let missing = inputColumns.filter { !table.header.contains($0) }
        guard missing.isEmpty else {
            throw BuilderError(.invalidInput, "\(source) lacks the column\(missing.count == 1 ? "" : "s") \(missing.map { "'\($0)'" }.joined(separator: ", ")) the model was trained on (it needs \(inputColumns.joined(separator: ", ")))",
                               field: missing[0])
        }
        let indices = try preprocessor.columns.map { try table.column(named: $0.name) }
        let x = try preprocessor.transform(rows: table.rowCount) { c, r in table.columns[indices[c]][r] }
        var texts: [String] = []
        if let textColumn { texts = table.columns[try table.column(named: textColumn)] }
        let prediction = try predict(ModelInput(features: x, texts: texts))
        var out = (table.header + ["prediction"] + classes.map { "probability_\($0)" }).map(csvQuoted).joined(separator: ",") + "\n"
        for r in 0..<table.rowCount {
            var fields = table.header.indices.map { table.columns[$0][r] }
            switch prediction {
            case .probabilities(let p, let k):
                fields.append(classes[prediction.classes[r]])
                fields += (0..<k).map { String(format: "%.6f", p[r * k + $0]) }
            case .values(let v):
                fields.append(String(v[r]))
            }
            out += fields.map(csvQuoted).joined(separator: ",") + "\n"
        }
        return (out, table.rowCount)
    }
}
