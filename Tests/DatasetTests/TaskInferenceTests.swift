import Foundation
import NebulaCommon
import NebulaDataset
import Testing

@Suite("Task detection on a dataset")
struct TaskInferenceTests {
    /// A dataset with an id column `x` and the target `y`.
    static func target(_ values: [String], scratch: Scratch, options: CSVIngestOptions = CSVIngestOptions()) throws
        -> ColumnarDataset
    {
        var text = "x,y\n"
        for (i, v) in values.enumerated() { text += "\(i),\(v)\n" }
        return try ingest(text, options: options, scratch: scratch).1
    }

    static func detect(_ values: [String], override: ProblemType? = nil) throws -> TaskDetectionResult {
        let s = Scratch()
        defer { s.remove() }
        return try TaskInference.detect(try target(values, scratch: s), target: "y", override: override)
    }

    static func repeated(_ values: [String], each: Int) -> [String] { values.flatMap { [String](repeating: $0, count: each) } }

    // AutoGluon's own vectors (tests/unittests/utils/test_utils.py, test_infer_problem_type)

    @Test func twoValuesAreBinary() throws {
        let r = try Self.detect(Self.repeated(["-1", "99"], each: 500))
        #expect(r.problemType == .binary && r.classes == 2 && r.modality == .tabular)
    }

    @Test func fewIntegralFloatsAreMulticlass() throws {
        let r = try Self.detect(Self.repeated(["1.0", "2.0", "3.0"], each: 999))
        #expect(r.problemType == .multiclass && r.classes == 3)
        #expect(r.reason.contains("3 distinct"))
    }

    @Test func linspaceFloatsAreRegression() throws {
        let r = try Self.detect((0..<999).map { String(Double($0) / 998) })
        #expect(r.problemType == .regression && r.classes == nil)
    }

    @Test func arangeIntegersAreRegression() throws {
        #expect(try Self.detect((0..<999).map { String($0) }).problemType == .regression)
    }

    @Test func repeatedArangeIsMulticlass() throws {
        let r = try Self.detect(Self.repeated(["0", "1", "2"], each: 999))
        #expect(r.problemType == .multiclass && r.classes == 3)
        #expect(r.reason == "3 distinct integer values (ratio 0.001 <= 0.05)")
    }

    @Test func stringsAreMulticlass() throws {
        let r = try Self.detect([String]((0..<300).map { ["a", "b", "c"][$0 % 3] }))
        #expect(r.problemType == .multiclass && r.classes == 3)
    }

    @Test func booleanIsBinary() throws {
        #expect(try Self.detect((0..<50).map { $0 % 3 == 0 ? "true" : "false" }).problemType == .binary)
    }

    @Test func ratioThresholds() throws {
        // 100 rows: 10 values (ratio 0.1) multiclass, 20 (0.2) regression; 2000 rows: 60 multiclass, 150 regression
        #expect(try Self.detect((0..<100).map { String($0 % 10) }).problemType == .multiclass)
        #expect(try Self.detect((0..<100).map { String($0 % 20) }).problemType == .regression)
        #expect(try Self.detect((0..<2000).map { String($0 % 60) }).problemType == .multiclass)
        #expect(try Self.detect((0..<2000).map { String($0 % 150) }).problemType == .regression)
        // few values, but not integral
        #expect(try Self.detect((0..<100).map { String(Double($0 % 3) + 0.5) }).problemType == .regression)
        // missing values do not count as rows: 10 distinct in 50 present values (0.2), not in 100 rows (0.1)
        #expect(try Self.detect((0..<100).map { $0 % 2 == 0 ? "" : String($0 % 20) }).problemType == .regression)
    }

    @Test func emptyTargetIsAnError() throws {
        #expect {
            try Self.detect([String](repeating: "", count: 20))
        } throws: { error in
            let e = error as? DatasetError
            return e?.code == .invalidArgument && e!.message.contains("'y'") && e!.message.contains("no values")
        }
    }

    @Test func singleValueIsAnError() throws {
        #expect {
            try Self.detect([String](repeating: "7", count: 20) + ["", ""])
        } throws: { error in
            let e = error as? DatasetError
            return e?.code == .invalidArgument && e!.message.contains("single value ('7')")
        }
    }

    @Test func unknownColumnNamesItAndTheColumns() throws {
        let s = Scratch()
        defer { s.remove() }
        let d = try Self.target(["1", "2", "1"], scratch: s)
        #expect {
            try TaskInference.detect(d, target: "label")
        } throws: { error in
            let e = error as? DatasetError
            return e?.code == .invalidArgument && e!.message.contains("'label'") && e!.message.contains("'x', 'y'")
        }
    }

    @Test func overrides() throws {
        let s = Scratch()
        defer { s.remove() }
        let numbers = try Self.target((0..<999).map { String($0 % 5) }, scratch: s)
        let forced = try TaskInference.detect(numbers, target: "y", override: .regression)
        #expect(forced.problemType == .regression && forced.classes == nil)
        #expect(forced.reason.contains("requested") && forced.reason.contains("multiclass"))
        #expect(try TaskInference.detect(numbers, target: "y", override: .multiclass).problemType == .multiclass)
        #expect(throws: DatasetError.self) { try TaskInference.detect(numbers, target: "y", override: .binary) }
        let labels = try Self.target((0..<30).map { ["a", "b", "c"][$0 % 3] }, scratch: s)
        #expect { try TaskInference.detect(labels, target: "y", override: .regression) } throws: {
            "\($0)".contains("cannot be a regression target")
        }
    }

    @Test func freeTextFeatureMakesTextModality() throws {
        let s = Scratch()
        defer { s.remove() }
        var text = "review,score,code\n"
        let words = ["good", "bad", "plot", "acting", "long", "short", "music", "ending"]
        for i in 0..<400 {
            let review = (0..<(3 + i % 5)).map { words[($0 * 7 + i) % words.count] }.joined(separator: " ") + " \(i)"
            text += "\(review),\(i % 2),c\(i % 9)\n"
        }
        let d = try ingest(text, scratch: s).1
        let r = try TaskInference.detect(d, target: "score")
        #expect(r.problemType == .binary && r.modality == .text && r.textColumns == ["review"])
        // the same words as a categorical column (forced) are free text too; short codes are not
        var o = CSVIngestOptions()
        o.columnTypes = ["review": .categorical]
        let c = try ingest(text, options: o, scratch: s).1
        #expect(try c.column("review").type == .categorical)
        #expect(try TaskInference.detect(c, target: "score").textColumns == ["review"])
    }

    // The shared data files (Tests/Data, targets from MANIFEST.json)

    static func file(_ name: String, scratch: Scratch) throws -> ColumnarDataset {
        let out = scratch.path(name + ".nbds")
        _ = try CSVIngest.ingest(csv: dataDirectory + "/" + name + ".csv", to: out)
        return try ColumnarDataset(path: out)
    }

    @Test func irisIsMulticlass() throws {
        let s = Scratch()
        defer { s.remove() }
        let r = try TaskInference.detect(try Self.file("sklearn_iris", scratch: s), target: "target")
        #expect(r.problemType == .multiclass && r.classes == 3 && r.modality == .tabular && r.textColumns.isEmpty)
        #expect(r.reason == "3 distinct integer values (ratio 0.020 <= 0.1)")
    }

    @Test func diabetesIsRegression() throws {
        let s = Scratch()
        defer { s.remove() }
        let r = try TaskInference.detect(try Self.file("sklearn_diabetes", scratch: s), target: "target")
        #expect(r.problemType == .regression && r.modality == .tabular && r.classes == nil)
    }

    @Test func rottenTomatoesIsBinaryText() throws {
        let s = Scratch()
        defer { s.remove() }
        let r = try TaskInference.detect(try Self.file("rotten_tomatoes", scratch: s), target: "label")
        #expect(r.problemType == .binary && r.classes == 2)
        #expect(r.modality == .text && r.textColumns == ["text"])
    }

    @Test func seattleWeatherIsMulticlass() throws {
        let s = Scratch()
        defer { s.remove() }
        let r = try TaskInference.detect(try Self.file("vega_seattle_weather", scratch: s), target: "weather")
        #expect(r.problemType == .multiclass && r.classes == 5 && r.modality == .tabular)
    }

    @Test func penguinsSpeciesIsMulticlass() throws {
        let s = Scratch()
        defer { s.remove() }
        let r = try TaskInference.detect(try Self.file("penguins", scratch: s), target: "species")
        #expect(r.problemType == .multiclass && r.classes == 3 && r.modality == .tabular)
    }

    @Test func shardsDetectLikeTheirSource() throws {
        let s = Scratch()
        defer { s.remove() }
        let d = try Self.file("rotten_tomatoes", scratch: s)
        let infos = try DatasetSharder.cut(d, spec: ShardSpec(count: 3, seed: 1, stratifyBy: "label"), directory: s.path("shards"))
        for info in infos {
            let r = try TaskInference.detect(try ColumnarDataset(path: info.path), target: "label")
            #expect(r.problemType == .binary && r.modality == .text && r.textColumns == ["text"])
        }
    }
}

@Suite("Problem type rule")
struct ProblemTypeRuleTests {
    @Test func outcomes() {
        #expect(ProblemTypeRule.infer(present: 0, distinct: 0, numeric: true, integral: true) == .noValues)
        #expect(ProblemTypeRule.infer(present: 5, distinct: 1, numeric: false, integral: false) == .singleValue)
        #expect(ProblemTypeRule.infer(present: 5, distinct: 2, numeric: true, integral: false) == .detected(.binary, reason: "2 distinct values"))
        // the 1000-value cap applies even when the ratio is small
        guard case .detected(.regression, let reason) = ProblemTypeRule.infer(present: 100_000, distinct: 1001, numeric: true, integral: true)
        else { Issue.record("expected regression"); return }
        #expect(reason.contains("more than 1000"))
        guard case .detected(.multiclass, _) = ProblemTypeRule.infer(present: 100_000, distinct: 1000, numeric: true, integral: true)
        else { Issue.record("expected multiclass"); return }
    }
}

@Suite("Task inference messages")
struct TaskInferenceMessageTests {
    /// With many columns the message shows both ends, where targets usually are.
    @Test func anUnknownTargetAmongManyColumnsNamesTheLastOnes() throws {
        let s = Scratch()
        defer { s.remove() }
        let header = (0..<64).map { "p\($0)" } + ["label"]
        let rows = (0..<5).map { r in (0..<65).map { String(($0 + r) % 3) }.joined(separator: ",") }
        let (_, dataset) = try ingest(([header.joined(separator: ",")] + rows).joined(separator: "\n") + "\n", scratch: s)
        let error = try #require(throws: DatasetError.self) { try TaskInference.detect(dataset, target: "digit") }
        #expect(error.message.contains("'label'"), "\(error.message)")
        #expect(error.message.contains("'p0'"))
        #expect(error.message.contains("more"))
    }
}
