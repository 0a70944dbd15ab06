import NebulaEngine
import Testing

/// Note [GBDT model file]: a decoded model is the trained one, and predicts bit for bit the same.
@Suite("GBDT model file")
struct GBDTSerializationTests {
    static func data(rows: Int, seed: UInt64) -> (x: Tensor, labels: [Int], targets: [Double]) {
        let x = GBDTTests.randomFeatures(rows: rows, features: 4, seed: seed)
        let labels = (0..<rows).map { i -> Int in
            let a = x[i, 0], b = x[i, 2]
            return a + b > 0.3 ? 2 : (a - b > 0 ? 1 : 0)
        }
        let targets = (0..<rows).map { i in Double(x[i, 0]) * 3 - Double(x[i, 3]) + (x[i, 1].isNaN ? 1 : 0) }
        return (x, labels, targets)
    }

    static func models() -> [(String, GBDTModel)] {
        let (x, labels, targets) = data(rows: 600, seed: 21)
        var parameters = GBDTParameters()
        parameters.maxIterations = 12
        var stopping = parameters
        stopping.earlyStopping = GBDTEarlyStopping()
        return [("regression", GBDTModel.fitRegressor(x: x, targets: targets, parameters: parameters)),
                ("binary", GBDTModel.fitClassifier(x: x, labels: labels.map { $0 == 2 ? 1 : 0 }, classes: 2,
                                                   parameters: parameters)),
                ("multinomial with early stopping", GBDTModel.fitClassifier(x: x, labels: labels, classes: 3,
                                                                            parameters: stopping))]
    }

    @Test func roundTripIsTheSameModelWithIdenticalPredictions() throws {
        let (unseen, _, _) = Self.data(rows: 300, seed: 99)  // with missing values in feature 1
        for (name, model) in Self.models() {
            #expect(model.iterations > 0, "\(name)")
            let decoded = try GBDTModel(decoding: model.encoded(), source: name)
            #expect(decoded == model, "\(name)")
            let a = model.rawPredictions(unseen), b = decoded.rawPredictions(unseen)
            #expect(a.map(\.bitPattern) == b.map(\.bitPattern), "\(name): predictions differ after a round trip")
        }
    }

    /// Note [Resuming boosting]: stop after 5 iterations, save, load, continue to 12: the model an
    /// uninterrupted run trains, bit for bit; `onIteration` sees every new iteration.
    @Test(arguments: [false, true])
    func resumingFromASavedModelEqualsAnUninterruptedRun(classifier: Bool) throws {
        let (x, labels, targets) = Self.data(rows: 500, seed: 8)
        var parameters = GBDTParameters()
        parameters.maxIterations = 12
        func fit(_ p: GBDTParameters, resume: GBDTModel? = nil, onIteration: (GBDTModel) -> Void = { _ in }) -> GBDTModel {
            classifier
                ? GBDTModel.fitClassifier(x: x, labels: labels, classes: 3, parameters: p, resume: resume, onIteration: onIteration)
                : GBDTModel.fitRegressor(x: x, targets: targets, parameters: p, resume: resume, onIteration: onIteration)
        }
        let straight = fit(parameters)
        var early = parameters
        early.maxIterations = 5
        var seen: [Int] = []
        let partial = fit(early, onIteration: { seen.append($0.iterations) })
        #expect(seen == Array(1...5))
        let saved = try GBDTModel(decoding: partial.encoded())
        seen = []
        let resumed = fit(parameters, resume: saved, onIteration: { seen.append($0.iterations) })
        #expect(seen == Array(6...12))
        #expect(resumed == straight)
    }

    @Test func damagedFilesAreErrorsNotCrashes() throws {
        let bytes = Self.models()[2].1.encoded()
        #expect(throws: GBDTModelError.self) { try GBDTModel(decoding: Array(bytes.dropLast(3))) }
        #expect(throws: GBDTModelError.self) { try GBDTModel(decoding: bytes + [0]) }
        #expect(throws: GBDTModelError.self) { try GBDTModel(decoding: Array("NEBULACK".utf8) + bytes.dropFirst(8)) }
        var newer = bytes
        newer[8] = 9
        let error = #expect(throws: GBDTModelError.self) { try GBDTModel(decoding: newer, source: "m.gbdt") }
        #expect(error?.description.contains("newer Nebula") == true)
        // Every truncation point is rejected with an error.
        for cut in stride(from: 0, to: bytes.count, by: max(1, bytes.count / 97)) {
            #expect(throws: GBDTModelError.self) { try GBDTModel(decoding: Array(bytes.prefix(cut))) }
        }
    }
}
