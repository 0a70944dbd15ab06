import Foundation
import NebulaEngine
import Testing

/// Exposes a `TextClassifier` on fixed texts as a `Layer` for `GradientCheck` (the Float input is
/// ignored; only parameter gradients are checked).
private final class ClassifierProbe: Layer {
    let model: TextClassifier
    let batch: TextBatch

    init(_ model: TextClassifier, _ batch: TextBatch) {
        self.model = model
        self.batch = batch
    }

    func forward(_ x: Tensor, training: Bool) -> Tensor { model.forward(batch, training: training) }

    func backward(_ g: Tensor) -> Tensor {
        model.backward(g)
        return Tensor(zeros: [0])
    }

    var parameters: [Parameter] { model.parameters }
}

@Suite("Text classifier")
struct TextClassifierUnitTests {
    /// With a hidden layer the seed is one whose hidden pre-activations all lie well outside the
    /// finite-difference step around ReLU's kink (checked below), where the loss is not differentiable.
    @Test(arguments: [nil, 5] as [Int?])
    func parameterGradients(_ hidden: Int?) throws {
        var rng = SeededGenerator(seed: hidden == nil ? 11 : 28)
        let model = TextClassifier(.init(features: .init(buckets: 23, characterNGrams: 3...3), dimension: 4,
                                         hidden: hidden, classes: 3, initBound: 4), rng: &rng)
        let batch = model.encode(["A fine film!", hidden == nil ? "" : "fine", "not fine", "film film film"])
        if hidden != nil {
            let dense = try #require(model.head.layers.first as? Dense)
            let pooled = model.embedding.forward(indices: batch.indices, offsets: batch.offsets, training: false)
            let margin = dense.forward(pooled, training: false).storage.map { abs($0) }.min() ?? 0
            try #require(margin > 0.05, "a hidden pre-activation is \(margin) from the kink")
        }
        let r = GradientCheck.check(ClassifierProbe(model, batch), input: Tensor(zeros: [0]))
        #expect(r.maxRelativeError < 1e-2, "\(r)")
        #expect(model.parameters.first?.name == "text.embedding.weight")
        #expect(model.parameters.count == (hidden == nil ? 3 : 5))
    }

    @Test func forwardAndPredictShapes() {
        var rng = SeededGenerator(seed: 12)
        let model = TextClassifier(.init(features: .init(buckets: 64), dimension: 8, classes: 2), rng: &rng)
        let texts = ["good", "bad", "so so"]
        let logits = model.forward(texts: texts, training: false)
        #expect(logits.shape == [3, 2])
        #expect(model.predict(texts: texts).count == 3)
        #expect(model.predict(model.encode(texts)) == model.predict(texts: texts))
        #expect(model.embedding.weight.value.maxAbs <= 1 / 8)
    }
}

/// The classifier on Rotten Tomatoes snippets (`Tests/Data/rotten_tomatoes.csv`: text,label,movie_name;
/// fresh/rotten; 12,752 rows, 57.8% fresh).
///
/// Split: by row, `VisionTextData.seededSplit` with seed 0 (last 20%, 2,551 rows, as test), like the
/// scikit-learn baseline (LogReg on TF-IDF 0.754, MLP 0.766; BASELINES.md). `movie_name` is not a
/// feature. Reviews of one movie fall on both sides of a row split; holding out 20% of the movies
/// instead (seeded, all their rows as test) gives 0.774 against 0.787 by row with the same setup, so the
/// row split is only slightly optimistic.
///
/// Configuration: unigrams + bigrams + char 3–5-grams hashed into 2^15 buckets, dimension 16, no hidden
/// layer, Adam 2e-2, batch 512, 3 epochs, seed 1: 0.784 here. The table is small because the embedding
/// gradient is dense (Note [Dense embedding gradients]) and Adam visits all of it every step. Release
/// runs: seeds 1…3 0.787–0.789; 2^16 buckets 0.791, 2^18 buckets 0.799.
@Suite("Text classifier on Rotten Tomatoes", .serialized)
struct TextClassifierAcceptanceTests {
    static func load() throws -> (texts: [String], labels: [Int]) {
        let records = try VisionTextData.readCSV("rotten_tomatoes.csv")
        try #require(records.first == ["text", "label", "movie_name"])
        var texts: [String] = [], labels: [Int] = []
        for (i, rec) in records.dropFirst().enumerated() {
            try #require(rec.count == 3, "record \(i + 2) has \(rec.count) fields")
            try #require(rec[1] == "fresh" || rec[1] == "rotten", "record \(i + 2): label '\(rec[1])'")
            texts.append(rec[0])
            labels.append(rec[1] == "fresh" ? 1 : 0)
        }
        return (texts, labels)
    }

    @Test(.timeLimit(.minutes(5)))
    func classifierBeatsBaseline() throws {
        let start = Date()
        let (texts, labels) = try Self.load()
        try #require(texts.count == 12_752)
        let split = VisionTextData.seededSplit(count: texts.count, seed: 0)
        #expect(split.test.count == 2551)

        var rng = SeededGenerator(seed: 1)
        let model = TextClassifier(.init(features: .init(buckets: 1 << 15), dimension: 16, classes: 2), rng: &rng)
        let encoded = model.encode(texts)
        let test = encoded.subset(split.test), yTest = split.test.map { labels[$0] }
        let optimizer = Adam(model.parameters, learningRate: 2e-2)
        let loss = CrossEntropyLoss()
        let epochs = 3, batchSize = 512
        var order = split.train
        var grad = Tensor(zeros: [0])
        var epochLoss: [Float] = []
        for _ in 0..<epochs {
            order.withUnsafeMutableBufferPointer { Shuffle.permute($0, using: &rng) }
            var total: Float = 0
            for b in stride(from: 0, to: order.count, by: batchSize) {
                let rows = order[b..<min(b + batchSize, order.count)]
                let logits = model.forward(encoded.subset(rows), training: true)
                total += loss.evaluate(logits, rows.map { labels[$0] }, gradient: &grad) * Float(rows.count)
                optimizer.zeroGrad()
                model.backward(grad)
                optimizer.step()
            }
            epochLoss.append(total / Float(order.count))
        }
        let accuracy = VisionTextData.accuracy(model.predict(test), yTest)
        print("text classifier: train loss \(epochLoss), test accuracy \(accuracy), \(encoded.indices.count) features, \(Date().timeIntervalSince(start)) s")
        #expect(epochLoss.last! < epochLoss.first!)
        #expect(accuracy >= 0.74, "test accuracy \(accuracy) below 0.74")
    }
}
