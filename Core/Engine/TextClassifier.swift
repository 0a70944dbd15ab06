/// A fastText-style text classifier: hashed features (`TextFeaturizer`) → `EmbeddingBag` (mean) →
/// optional `Dense` + `ReLU` → `Dense` → logits `[texts, classes]`. Train it with any `Loss` on the
/// logits (softmax cross-entropy) and any optimizer over `parameters`.
///
/// Encode a data set once with `encode` (tokenising and hashing are the slow part) and feed batches of
/// the encoded `TextBatch` to `forward`; `forward(texts:)` does both for ad-hoc use.
///
/// The defaults (2^18 buckets × 32) are sized for dense gradients (Note [Dense embedding gradients]):
/// every optimizer step touches the whole table, so buckets × dimension sets the cost of a step. The
/// featurizer's own default of 2^20 buckets (fastText's scale) wants sparse updates.
public final class TextClassifier {
    public struct Configuration: Sendable, Equatable, Codable {
        public var features: TextFeaturizer.Configuration
        /// Width of the embedding (fastText's `-dim`).
        public var dimension: Int
        /// Width of the optional hidden layer; nil: the embedding goes straight to the output layer.
        public var hidden: Int?
        public var classes: Int
        /// Embedding initialisation bound: U(±initBound/dimension), fastText's U(±1/dim) at 1.
        public var initBound: Float

        public init(features: TextFeaturizer.Configuration = .init(buckets: 1 << 18), dimension: Int = 32, hidden: Int? = nil,
                    classes: Int, initBound: Float = 1) {
            precondition(dimension > 0 && classes > 1 && (hidden ?? 1) > 0, "TextClassifier: invalid configuration")
            self.features = features
            self.dimension = dimension
            self.hidden = hidden
            self.classes = classes
            self.initBound = initBound
        }
    }

    public let configuration: Configuration
    public let featurizer: TextFeaturizer
    public let embedding: EmbeddingBag
    /// The layers after the pooled embedding.
    public let head: Sequential

    public init(_ configuration: Configuration, rng: inout SeededGenerator) {
        self.configuration = configuration
        featurizer = TextFeaturizer(configuration.features)
        let d = configuration.dimension
        embedding = EmbeddingBag(configuration.features.buckets, d, mode: .mean,
                                 initialization: .uniform(configuration.initBound / Float(d)), rng: &rng,
                                 name: "text.embedding")
        if let h = configuration.hidden {
            head = Sequential([Dense(d, h, rng: &rng, name: "text.hidden"), ReLU(),
                               Dense(h, configuration.classes, rng: &rng, name: "text.output")])
        } else {
            head = Sequential([Dense(d, configuration.classes, rng: &rng, name: "text.output")])
        }
    }

    /// Embedding table first, then the head's parameters in layer order.
    public var parameters: [Parameter] { embedding.parameters + head.parameters }

    public func zeroGrad() { parameters.forEach { $0.zeroGrad() } }

    public func encode(_ texts: some Sequence<String>) -> TextBatch { featurizer.encode(texts) }

    /// Logits `[batch.count, classes]`.
    public func forward(_ batch: TextBatch, training: Bool) -> Tensor {
        let pooled = embedding.forward(indices: batch.indices, offsets: batch.offsets, training: training)
        return head.forward(pooled, training: training)
    }

    public func forward(texts: some Sequence<String>, training: Bool) -> Tensor {
        forward(encode(texts), training: training)
    }

    /// Adds ∂L/∂parameters for ∂L/∂logits of the last training forward.
    public func backward(_ gradLogits: Tensor) {
        embedding.backward(head.backward(gradLogits))
    }

    /// The arg-max class of each text.
    public func predict(_ batch: TextBatch) -> [Int] {
        let logits = forward(batch, training: false)
        let c = configuration.classes
        return (0..<logits.rows).map { r in
            var best = 0
            for j in 1..<c where logits.storage[r * c + j] > logits.storage[r * c + best] { best = j }
            return best
        }
    }

    public func predict(texts: some Sequence<String>) -> [Int] { predict(encode(texts)) }
}
