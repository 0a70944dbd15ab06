import Foundation
import NebulaDataset
import NebulaEngine
import NebulaImage
import NebulaTraining

// Note [Model bundle]
// ~~~~~~~~~~~~~~~~~~~
// The builder's model is one JSON file: format version, task, target, classes, the fitted
// preprocessing (Note [One preprocessing path]), every trained candidate (an ensemble refers to
// them by index) and which one is the chosen model, with its validation metrics. Networks are their
// architecture plus parameter values; a GBDT is its own binary format (Note [GBDT model file]) in
// base64. Loading rebuilds the models; nothing in the file is executed.

/// How a model trained on an image-folder dataset reads image files (Note [Images as pixel tables]).
public struct ImageInput: Codable, Sendable, Equatable {
    public var side: Int
    public var channels: Int
    /// Name prefix of the pixel columns (px0, px1, …).
    public var columnPrefix: String

    public init(side: Int, channels: Int, columnPrefix: String = "px") {
        self.side = side
        self.channels = channels
        self.columnPrefix = columnPrefix
    }
}

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
    /// Set when the model was trained on an image-folder dataset: it then also predicts image files.
    public var image: ImageInput?

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
        return (outputCSV(header: table.header, rows: table.rowCount, prediction) { r in table.header.indices.map { table.columns[$0][r] } },
                table.rowCount)
    }

    /// Predicts image files (PNG or JPEG) with a model trained on an image-folder dataset: each image is
    /// read as that dataset's images were (Note [Images as pixel tables]). Answers a CSV of `file`,
    /// `prediction` and, for classification, the class probabilities. An unreadable file is an error
    /// naming it.
    public func predictImages(_ files: [(name: String, bytes: [UInt8])]) throws -> (csv: String, rows: Int) {
        guard let image else {
            throw BuilderError(.invalidInput, "this model was trained on a table, not on image files: send a CSV with the columns \(inputColumns.prefix(5).joined(separator: ", "))…")
        }
        guard !files.isEmpty else { throw BuilderError(.invalidInput, "no image to predict", field: "file") }
        let plane = image.side * image.side
        var values: [[String]] = []  // per image, per pixel column
        for file in files {
            let decoded: DecodedImage
            do {
                decoded = try ImageDecoder.decode(file.bytes, source: file.name).converted(to: image.channels).resized(side: image.side)
            } catch let e as ImageError {
                throw BuilderError(.invalidInput, e.message, field: "file")
            }
            var row = [String](repeating: "", count: plane * image.channels)
            for c in 0..<image.channels {
                for i in 0..<plane { row[c * plane + i] = String(decoded.pixels[i * image.channels + c]) }
            }
            values.append(row)
        }
        // The pixel columns in the preprocessor's order (px<i> → index i).
        let indices = try preprocessor.columns.map { column -> Int in
            guard column.name.hasPrefix(image.columnPrefix), let i = Int(column.name.dropFirst(image.columnPrefix.count)), i < plane * image.channels else {
                throw BuilderError.badBundle("column \(column.name) is not one of the image's pixels")
            }
            return i
        }
        let x = try preprocessor.transform(rows: files.count) { c, r in values[r][indices[c]] }
        let prediction = try predict(ModelInput(features: x, texts: []))
        return (outputCSV(header: ["file"], rows: files.count, prediction) { [files[$0].name] }, files.count)
    }

    private func outputCSV(header: [String], rows: Int, _ prediction: Prediction, fields: (Int) -> [String]) -> String {
        var out = (header + ["prediction"] + classes.map { "probability_\($0)" }).map(csvQuoted).joined(separator: ",") + "\n"
        for r in 0..<rows {
            var row = fields(r)
            switch prediction {
            case .probabilities(let p, let k):
                row.append(classes[prediction.classes[r]])
                row += (0..<k).map { String(format: "%.6f", p[r * k + $0]) }
            case .values(let v):
                row.append(String(v[r]))
            }
            out += row.map(csvQuoted).joined(separator: ",") + "\n"
        }
        return out
    }
}
