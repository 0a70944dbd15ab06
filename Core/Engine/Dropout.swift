/// Inverted dropout: in training each element is zeroed with probability `p` and the survivors are
/// scaled by 1/(1 − p), so evaluation is the identity. The mask comes from the layer's own seeded
/// generator: the same seed and the same sequence of batches give the same masks.
public final class Dropout: Layer {
    public let probability: Float
    /// The generator the masks are drawn from (public so that a checkpoint can store and restore it).
    public var generator: SeededGenerator
    /// 0 or 1/(1 − p) per element of the last training forward.
    private var mask: [Float] = []
    private var shape: [Int] = []

    public init(_ probability: Float, seed: UInt64) {
        precondition(probability >= 0 && probability <= 1, "dropout probability \(probability) outside [0, 1]")
        self.probability = probability
        generator = SeededGenerator(seed: seed)
    }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        guard training, probability > 0 else {
            shape = x.shape
            mask = []
            return x
        }
        let n = x.count
        if mask.count != n { mask = [Float](repeating: 0, count: n) }
        shape = x.shape
        let keep: Float = probability >= 1 ? 0 : 1 / (1 - probability)
        // Compare 24-bit uniforms against p scaled to the same range: one draw per element.
        let threshold = UInt64((Double(probability) * Double(1 << 24)).rounded())
        mask.withUnsafeMutableBufferPointer { m in
            for i in 0..<n { m[i] = (generator.next() >> 40) < threshold ? 0 : keep }
        }
        var out = x
        out.storage.withUnsafeMutableBufferPointer { o in
            mask.withUnsafeBufferPointer { m in
                Kernels.multiply(o.baseAddress!, m.baseAddress!, n)
            }
        }
        return out
    }

    public func backward(_ g: Tensor) -> Tensor {
        precondition(g.shape == shape, "Dropout.backward: gradient shape \(g.shape), expected \(shape)")
        guard !mask.isEmpty else { return g }
        var dx = g
        dx.storage.withUnsafeMutableBufferPointer { d in
            mask.withUnsafeBufferPointer { m in Kernels.multiply(d.baseAddress!, m.baseAddress!, d.count) }
        }
        return dx
    }
}

extension Kernels {
    /// x ⊙= m, vectorised.
    @inlinable
    public static func multiply(_ x: UnsafeMutablePointer<Float>, _ m: UnsafePointer<Float>, _ n: Int) {
        var i = 0
        while i + 8 <= n {
            let v = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)
            let w = UnsafeRawPointer(m + i).loadUnaligned(as: SIMD8<Float>.self)
            UnsafeMutableRawPointer(x + i).storeBytes(of: v * w, as: SIMD8<Float>.self)
            i += 8
        }
        while i < n {
            x[i] *= m[i]
            i += 1
        }
    }
}
