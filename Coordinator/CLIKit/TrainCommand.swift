import ArgumentParser
import Foundation
import NebulaTraining

/// `nebula train`: trains one model on this machine, no cluster needed.
struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a model on a CSV file on this machine and print its holdout metrics.",
        discussion: """
            The task is detected from the target column (AutoGluon's rules: 2 values → binary, text or few \
            integer values → multiclass, otherwise regression) and shown with the reason. Rows are split \
            with a seeded shuffle (stratified for classification); the last --test-fraction is the holdout. \
            Models: linear (regression, closed form), logistic (binary/multiclass, L-BFGS), mlp (256-256, Adam), \
            cnn (square images of pixel columns), text (hashed word and character n-grams, fastText style), \
            gbdt (histogram gradient-boosted trees). Progress goes to stderr; --json prints one JSON object.
            """)

    @Option(help: "CSV file with a header row.") var data: String
    @Option(help: "The column to predict.") var target: String
    @Option(help: "linear, logistic, mlp, cnn, text or gbdt.") var model: String = "mlp"
    @Option(help: "Epochs (boosting iterations for gbdt). Default depends on the model.") var epochs: Int?
    @Option(help: "Mini-batch size.") var batchSize = 256
    @Option(help: "Learning rate. Default depends on the model.") var lr: Float?
    @Option(help: "Seed for the split, initialisation and shuffles.") var seed: UInt64 = 0
    @Option(help: "Share of rows held out for evaluation.") var testFraction = 0.2
    @Option(help: "BLAS threads (default: all cores).") var threads: Int?
    @Option(help: "Write the trained model to this checkpoint file (mlp and cnn).") var save: String?
    @Flag(help: "Print the report as JSON.") var json = false

    func run() throws {
        guard let choice = ModelChoice(rawValue: model.lowercased()) else {
            throw ValidationError("unknown --model '\(model)': use one of \(ModelChoice.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        var options = TrainOptions(dataPath: data, target: target, model: choice)
        options.epochs = epochs
        options.batchSize = batchSize
        options.learningRate = lr
        options.seed = seed
        options.testFraction = testFraction
        options.threads = threads
        options.savePath = save
        let report: TrainReport
        do {
            report = try TrainRunner.run(options) { line in
                FileHandle.standardError.write(Data((line + "\n").utf8))
            }
        } catch let error as TrainingError {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode(2)
        }
        if json {
            write(try encodeJSON(report))
        } else {
            write(TrainView.text(report))
        }
    }
}

enum TrainView {
    static func text(_ r: TrainReport) -> String {
        var out = "\(r.model.rawValue) on \(r.data): \(r.task.rawValue) target '\(r.target)' (\(r.taskReason))\n"
        out += "trained on \(r.trainRows) rows, held out \(r.testRows), \(r.features) features, "
            + String(format: "%.1f s", r.trainSeconds) + "\n\n"
        out += TextTable(header: ["METRIC", "VALUE"], rows: r.metrics.sorted(by: { $0.key < $1.key }).map {
            [$0.key, String(format: "%.4f", $0.value)]
        }).render()
        if let classes = r.classes, let confusion = r.confusionMatrix, classes.count <= 20 {
            out += "\nconfusion matrix (rows: truth, columns: predicted)\n"
            out += TextTable(header: [""] + classes, rows: zip(classes, confusion).map { [$0] + $1.map(String.init) }).render()
        }
        if let path = r.checkpoint { out += "\nmodel saved to \(path)\n" }
        return out
    }
}
