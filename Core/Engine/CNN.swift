/// A small convolutional classifier for NCHW images:
/// `[Conv(k, padding k/2) → ReLU] × channels.count → MaxPool(pool) → Flatten → Dense(hidden) → ReLU → Dense(classes)`.
/// Each ReLU is fused into the layer before it (`Conv2D(activation:)`, `FusedDense`); initialisation
/// is the same as with separate layers.
///
/// The defaults are the 8×8 digits network: Conv(1→32, 3, pad 1) → ReLU → Conv(32→64, 3, pad 1) → ReLU →
/// MaxPool 2 → Flatten (64·4·4 = 1024) → Dense(1024→128) → ReLU → Dense(128→10).
public enum CNN {
    public struct Configuration: Sendable, Equatable, Codable {
        public var inputChannels: Int
        public var height: Int
        public var width: Int
        public var classes: Int
        /// Output channels of each convolution, in order.
        public var channels: [Int]
        /// Odd kernel size; padding kernelSize/2 keeps height and width.
        public var kernelSize: Int
        /// Max-pooling window and stride after the convolutions; 1 for none.
        public var pool: Int
        public var hidden: Int

        public init(inputChannels: Int = 1, height: Int = 8, width: Int = 8, classes: Int = 10,
                    channels: [Int] = [32, 64], kernelSize: Int = 3, pool: Int = 2, hidden: Int = 128) {
            precondition(kernelSize % 2 == 1, "CNN: kernel size must be odd to keep the image size")
            precondition(!channels.isEmpty && pool >= 1 && height >= pool && width >= pool,
                         "CNN: invalid configuration")
            self.inputChannels = inputChannels
            self.height = height
            self.width = width
            self.classes = classes
            self.channels = channels
            self.kernelSize = kernelSize
            self.pool = pool
            self.hidden = hidden
        }

        /// Features entering the first dense layer.
        public var flattenedFeatures: Int { channels.last! * (height / pool) * (width / pool) }
    }

    /// The network as a `Sequential` (parameters: conv1.weight, conv1.bias, …, fc1.*, fc2.*).
    public static func make(_ c: Configuration = Configuration(), rng: inout SeededGenerator) -> Sequential {
        var layers: [any Layer] = []
        var cin = c.inputChannels
        for (i, cout) in c.channels.enumerated() {
            layers.append(Conv2D(cin, cout, kernelSize: c.kernelSize, padding: c.kernelSize / 2, activation: .relu,
                                 rng: &rng, name: "conv\(i + 1)"))
            cin = cout
        }
        if c.pool > 1 { layers.append(MaxPool2D(kernelSize: c.pool)) }
        layers.append(Flatten())
        layers.append(FusedDense(c.flattenedFeatures, c.hidden, activation: .relu, rng: &rng, name: "fc1"))
        layers.append(FusedDense(c.hidden, c.classes, rng: &rng, name: "fc2"))
        return Sequential(layers)
    }
}
