import Foundation
import NebulaEngine
import NebulaTraining
import Testing

/// `nebula train`'s runner on the real datasets in Tests/Data.
@Suite("Train runner")
struct RunnerTests {
    static let data = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Data")

    static func options(_ file: String, _ target: String, _ model: ModelChoice) -> TrainOptions {
        TrainOptions(dataPath: data.appendingPathComponent(file).path, target: target, model: model)
    }

    @Test func gbdtOnPenguinsWithMissingValuesAndCategoricals() throws {
        var lines: [String] = []
        let r = try TrainRunner.run(Self.options("penguins.csv", "species", .gbdt)) { lines.append($0) }
        #expect(r.task == .multiclass)
        #expect(r.classes == ["Adelie", "Chinstrap", "Gentoo"])
        #expect(r.metrics["accuracy"]! >= 0.95)
        #expect(r.confusionMatrix?.count == 3)
        #expect(r.trainRows + r.testRows == r.rows)
        #expect(lines.first?.contains("multiclass") == true)
    }

    @Test func logisticOnABinaryTargetReportsAUC() throws {
        var o = Self.options("sklearn_iris.csv", "target", .logistic)
        o.testFraction = 0.3
        let r = try TrainRunner.run(o)
        #expect(r.task == .multiclass)
        #expect(r.metrics["accuracy"]! >= 0.9)
        #expect(r.metrics["log_loss"]! > 0)
    }

    @Test func regressionModelsOnDiabetes() throws {
        let linear = try TrainRunner.run(Self.options("sklearn_diabetes.csv", "target", .linear))
        #expect(linear.task == .regression)
        #expect(linear.metrics["rmse"]! < 70)
        #expect(linear.metrics["r2"]! > 0.3)
        var mlp = Self.options("sklearn_diabetes.csv", "target", .mlp)
        mlp.epochs = 20
        let r = try TrainRunner.run(mlp)
        #expect(r.metrics["rmse"]!.isFinite)
        #expect(r.epochs == 20)
    }

    @Test func mlpSavesACheckpointThatReadsBack() throws {
        var o = Self.options("sklearn_wine.csv", "target", .mlp)
        o.epochs = 5
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("wine-\(UUID().uuidString).ckpt").path
        defer { unlink(path) }
        o.savePath = path
        let r = try TrainRunner.run(o)
        #expect(r.checkpoint == path)
        let back = try Checkpoint.read(from: path)
        #expect(back.model.kind == "mlp")
        #expect(back.model.classes == r.classes)
        #expect(back.model.featureNames.count == r.features)
        #expect(back.parameters.map(\.name) == ["fc0.weight", "fc0.bias", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"])
        #expect(back.progress.optimizer == "adam" && back.progress.optimizerStep > 0)
        #expect(!back.optimizerState.isEmpty)
    }

    @Test func badRequestsSayWhatToChange() throws {
        #expect { try TrainRunner.run(Self.options("sklearn_wine.csv", "nope", .gbdt)) } throws: {
            "\($0)".contains("no column named 'nope'")
        }
        #expect { try TrainRunner.run(Self.options("sklearn_wine.csv", "target", .linear)) } throws: {
            "\($0)".contains("use --model logistic")
        }
        #expect { try TrainRunner.run(Self.options("sklearn_diabetes.csv", "target", .logistic)) } throws: {
            "\($0)".contains("regression")
        }
        #expect { try TrainRunner.run(Self.options("sklearn_wine.csv", "target", .text)) } throws: {
            "\($0)".contains("free-text column")
        }
        #expect { try TrainRunner.run(Self.options("sklearn_wine.csv", "target", .cnn)) } throws: {
            "\($0)".contains("square images")
        }
        #expect { try TrainRunner.run(Self.options("missing.csv", "target", .gbdt)) } throws: {
            "\($0)".contains("no such file")
        }
        var o = Self.options("sklearn_wine.csv", "target", .gbdt)
        o.testFraction = 1.5
        #expect { try TrainRunner.run(o) } throws: { "\($0)".contains("--test-fraction") }
    }

    @Test func aSingleValuedTargetIsRefused() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("one-\(UUID().uuidString).csv").path
        defer { unlink(path) }
        try "x,y\n1,a\n2,a\n3,a\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect { try TrainRunner.run(TrainOptions(dataPath: path, target: "y", model: .gbdt)) } throws: {
            "\($0)".contains("single value")
        }
    }
}
