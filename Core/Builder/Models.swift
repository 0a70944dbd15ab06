import Foundation
import NebulaEngine

/// What a model predicts for n rows: class probabilities (row-major, n × classes) or values.
public enum Prediction: Sendable {
    case probabilities([Double], classes: Int)
    case values([Double])

    var count: Int {
        switch self {
        case .probabilities(let p, let k): p.count / max(1, k)
        case .values(let v): v.count
        }
    }

    /// The most probable class per row.
    var classes: [Int] {
        guard case .probabilities(let p, let k) = self else { return [] }
        return (0..<count).map { i in (0..<k).max { p[i * k + $0] < p[i * k + $1] }! }
    }
}

/// The inputs of a model: encoded features, and the raw texts for the text model.
struct ModelInput {
    var features: Tensor
    var texts: [String]
}

/// A trained model in a form that can be saved in a bundle and predict again (Note [Model bundle]).
public enum TrainedModel: Codable, Sendable {
    case linear(LinearRegression)
    case logistic(LogisticRegression)
    case softmax(SoftmaxRegression)
    /// A network: its architecture and parameter values in `parameters` order. Regression outputs are
    /// standardised targets (mean, std).
    case mlp(MLP, parameters: [[Float]], targetMean: Double?, targetStd: Double?)
    case cnn(CNN.Configuration, parameters: [[Float]], pixelScale: Float)
    case text(TextClassifier.Configuration, parameters: [[Float]], column: String)
    /// GBDT bytes (Note [GBDT model file]); classes 0 for regression.
    case gbdt(Data, classes: Int)
    /// A weighted average of member models' predictions (by index into the bundle's members).
    case ensemble(members: [Int], weights: [Double])

    func predict(_ input: ModelInput, classes k: Int, members: [TrainedModel] = []) throws -> Prediction {
        let x = input.features
        switch self {
        case .linear(let m):
            return .values(m.predict(x))
        case .logistic(let m):
            return .probabilities(m.predictProbabilities(x).flatMap { [1 - $0, $0] }, classes: 2)
        case .softmax(let m):
            return .probabilities(m.predictProbabilities(x), classes: m.classes)
        case .mlp(let spec, let values, let mean, let std):
            let network = spec.build()
            try load(values, into: network.parameters)
            let out = network.predict(x)
            if let mean, let std { return .values(out.storage.map { Double($0) * std + mean }) }
            return .probabilities(softmaxRows(out), classes: k)
        case .cnn(let config, let values, let scale):
            var rng = SeededGenerator(seed: 0)
            let network = CNN.make(config, rng: &rng)
            try load(values, into: network.parameters)
            var images = Tensor(shape: [x.rows, config.inputChannels, config.height, config.width], storage: x.storage)
            images.scale(by: 1 / scale)
            return .probabilities(softmaxRows(network.predict(images)), classes: k)
        case .text(let config, let values, _):
            var rng = SeededGenerator(seed: 0)
            let model = TextClassifier(config, rng: &rng)
            try load(values, into: model.parameters)
            return .probabilities(softmaxRows(model.forward(model.encode(input.texts), training: false)), classes: k)
        case .gbdt(let bytes, let classes):
            let model = try GBDTModel(decoding: Array(bytes), source: "the model bundle's GBDT")
            return classes == 0 ? .values(model.predict(x)) : .probabilities(model.predictProbabilities(x), classes: classes)
        case .ensemble(let indices, let weights):
            var sum: [Double] = []
            var isValues = false
            for (i, w) in zip(indices, weights) {
                let p = try members[i].predict(input, classes: k, members: members)
                let v: [Double]
                switch p {
                case .probabilities(let probs, _): v = probs
                case .values(let vals): v = vals; isValues = true
                }
                if sum.isEmpty { sum = [Double](repeating: 0, count: v.count) }
                for j in v.indices { sum[j] += w * v[j] }
            }
            return isValues ? .values(sum) : .probabilities(sum, classes: k)
        }
    }

    var kind: String {
        switch self {
        case .linear: "linear"
        case .logistic, .softmax: "logistic"
        case .mlp: "mlp"
        case .cnn: "cnn"
        case .text: "text"
        case .gbdt: "gbdt"
        case .ensemble: "ensemble"
        }
    }
}

func parameterValues(_ parameters: [Parameter]) -> [[Float]] { parameters.map(\.value.storage) }

func load(_ values: [[Float]], into parameters: [Parameter]) throws {
    guard values.count == parameters.count else {
        throw BuilderError.badBundle("the model has \(parameters.count) parameter tensors but the bundle \(values.count)")
    }
    for (p, v) in zip(parameters, values) {
        guard p.value.storage.count == v.count else { throw BuilderError.badBundle("a parameter tensor has the wrong size") }
        p.value.storage = v
    }
}
