/// A lookup table `weight[count, dimension]`, initialised N(0, 1) like PyTorch's `Embedding`.
///
/// Through the `Layer` protocol the input is a Float tensor of any shape whose values are row indices
/// (rounded to the nearest integer, so exact for indices below 2^24); the output has shape
/// `input.shape + [dimension]`. Indices are not differentiable: backward returns zeros for the input
/// and scatters ∂L/∂output into the rows of `weight.grad` that were looked up (a dense gradient;
/// see Note [Dense embedding gradients]).
public final class Embedding: Layer {
    public let count: Int
    public let dimension: Int
    /// `[count, dimension]`.
    public let weight: Parameter

    private var indices: [Int32] = []
    private var inputShape: [Int] = []

    public init(_ count: Int, _ dimension: Int, rng: inout SeededGenerator, name: String = "embedding") {
        precondition(count > 0 && dimension > 0 && count <= Int(Int32.max), "Embedding: invalid size")
        self.count = count
        self.dimension = dimension
        weight = Parameter("\(name).weight", Tensor(shape: [count, dimension],
                                                    storage: (0..<count * dimension).map { _ in rng.nextNormal() }))
    }

    public var parameters: [Parameter] { [weight] }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        let rows = count
        let idx = x.storage.map { v -> Int32 in
            let i = Int(v.rounded())
            precondition(i >= 0 && i < rows, "Embedding: index \(v) out of range 0..<\(rows)")
            return Int32(i)
        }
        return lookup(idx, shape: x.shape, training: training)
    }

    /// The same lookup with integer indices; the output is `[indices.count, dimension]`.
    public func forward(indices: [Int32], training: Bool) -> Tensor {
        for i in indices { precondition(i >= 0 && Int(i) < count, "Embedding: index \(i) out of range 0..<\(count)") }
        return lookup(indices, shape: [indices.count], training: training)
    }

    private func lookup(_ idx: [Int32], shape: [Int], training: Bool) -> Tensor {
        let d = dimension
        var out = Tensor(zeros: shape + [d])
        out.storage.withUnsafeMutableBufferPointer { ob in
            weight.value.storage.withUnsafeBufferPointer { wb in
                idx.withUnsafeBufferPointer { ib in
                    var i = 0
                    while i < ib.count {
                        (ob.baseAddress! + i * d).update(from: wb.baseAddress! + Int(ib[i]) * d, count: d)
                        i += 1
                    }
                }
            }
        }
        if training {
            indices = idx
            inputShape = shape
        }
        return out
    }

    public func backward(_ g: Tensor) -> Tensor {
        precondition(g.count == indices.count * dimension, "Embedding.backward: gradient shape \(g.shape) does not match the forward output")
        let d = dimension
        weight.grad.storage.withUnsafeMutableBufferPointer { gw in
            g.storage.withUnsafeBufferPointer { gb in
                indices.withUnsafeBufferPointer { ib in
                    var i = 0
                    while i < ib.count {
                        EmbeddingKernels.add(gb.baseAddress! + i * d, into: gw.baseAddress! + Int(ib[i]) * d, d)
                        i += 1
                    }
                }
            }
        }
        return Tensor(zeros: inputShape)
    }
}

/// Sums or means of embedding rows over variable-length bags, with PyTorch `EmbeddingBag` semantics
/// (`include_last_offset = false`): bag `b` holds `indices[offsets[b] ..< offsets[b + 1]]` (the last
/// bag runs to the end of `indices`); `offsets` start at 0 and do not decrease; an empty bag gives a
/// zero row. `perSampleWeights` (one per index) scale the rows and need `mode == .sum`, as in PyTorch.
///
/// Not a `Layer`: its input is integer indices plus offsets, not a Float tensor. It has the same shape
/// of API: `forward(…, training:)`, `backward(_:)`, `parameters`.
///
/// // Note [Dense embedding gradients]
/// `backward` scatters into `weight.grad`, a dense `[count, dimension]` tensor, so any optimizer that
/// takes `[Parameter]` works unchanged. The cost is that zeroing the gradient and the optimizer step
/// touch every row (count × dimension values per step) although a batch touches only a few thousand.
/// A future optimisation is a sparse gradient (touched rows + values) with a lazy optimizer
/// (PyTorch's `sparse=True` + `SparseAdam`); until then keep `count × dimension` moderate when
/// training with Adam, or see `touchedRows`.
public final class EmbeddingBag {
    public enum Mode: Sendable { case sum, mean }

    /// How the table starts: PyTorch's N(0, 1) by default; fastText uses U(±1/dimension).
    public enum Initialization: Sendable {
        case normal(standardDeviation: Float)
        case uniform(Float)
    }

    public let count: Int
    public let dimension: Int
    public let mode: Mode
    /// `[count, dimension]`, initialised N(0, 1) like PyTorch.
    public let weight: Parameter

    private var indices: [Int32] = []
    private var offsets: [Int] = []
    private var perSampleWeights: [Float]?

    public init(_ count: Int, _ dimension: Int, mode: Mode = .mean,
                initialization: Initialization = .normal(standardDeviation: 1), rng: inout SeededGenerator,
                name: String = "embedding_bag") {
        precondition(count > 0 && dimension > 0 && count <= Int(Int32.max), "EmbeddingBag: invalid size")
        self.count = count
        self.dimension = dimension
        self.mode = mode
        var values = [Float](repeating: 0, count: count * dimension)
        values.withUnsafeMutableBufferPointer { v in
            var i = 0
            switch initialization {
            case .normal(let sd):
                while i < v.count {
                    v[i] = sd * rng.nextNormal()
                    i += 1
                }
            case .uniform(let bound):
                while i < v.count {
                    v[i] = rng.uniform(bound)
                    i += 1
                }
            }
        }
        weight = Parameter("\(name).weight", Tensor(shape: [count, dimension], storage: values))
    }

    public var parameters: [Parameter] { [weight] }
    public func zeroGrad() { weight.zeroGrad() }

    /// The distinct rows the last training forward looked up, ascending: the rows whose gradient the
    /// next `backward` can make non-zero.
    public var touchedRows: [Int32] { Array(Set(indices)).sorted() }

    /// `[offsets.count, dimension]`: one pooled row per bag.
    public func forward(indices: [Int32], offsets: [Int], perSampleWeights: [Float]? = nil,
                        training: Bool) -> Tensor {
        validate(indices: indices, offsets: offsets, perSampleWeights: perSampleWeights)
        let d = dimension, bags = offsets.count
        var out = Tensor(zeros: [bags, d])
        out.storage.withUnsafeMutableBufferPointer { ob in
            weight.value.storage.withUnsafeBufferPointer { wb in
                indices.withUnsafeBufferPointer { ib in
                    withOptionalBuffer(perSampleWeights) { psw in
                        var b = 0
                        while b < bags {
                            let lo = offsets[b], hi = b + 1 < bags ? offsets[b + 1] : ib.count
                            let row = ob.baseAddress! + b * d
                            var i = lo
                            while i < hi {
                                let src = wb.baseAddress! + Int(ib[i]) * d
                                if let psw {
                                    EmbeddingKernels.add(src, scaledBy: psw[i], into: row, d)
                                } else {
                                    EmbeddingKernels.add(src, into: row, d)
                                }
                                i += 1
                            }
                            if mode == .mean && hi > lo { EmbeddingKernels.scale(row, by: 1 / Float(hi - lo), d) }
                            b += 1
                        }
                    }
                }
            }
        }
        if training {
            self.indices = indices
            self.offsets = offsets
            self.perSampleWeights = perSampleWeights
        }
        return out
    }

    /// Adds ∂L/∂weight into `weight.grad` (rows of the bags, scaled by 1/bag size in mean mode and by
    /// the per-sample weights when given). Returns ∂L/∂perSampleWeights when the forward had them.
    @discardableResult
    public func backward(_ g: Tensor) -> [Float]? {
        let d = dimension, bags = offsets.count
        precondition(g.shape == [bags, d], "EmbeddingBag.backward: gradient shape \(g.shape), expected [\(bags), \(d)]")
        var gradWeights: [Float]? = perSampleWeights.map { [Float](repeating: 0, count: $0.count) }
        weight.grad.storage.withUnsafeMutableBufferPointer { gw in
            weight.value.storage.withUnsafeBufferPointer { wb in
                g.storage.withUnsafeBufferPointer { gb in
                    indices.withUnsafeBufferPointer { ib in
                        withOptionalBuffer(perSampleWeights) { psw in
                            var b = 0
                            while b < bags {
                                let lo = offsets[b], hi = b + 1 < bags ? offsets[b + 1] : ib.count
                                let gRow = gb.baseAddress! + b * d
                                let meanScale: Float = mode == .mean && hi > lo ? 1 / Float(hi - lo) : 1
                                var i = lo
                                while i < hi {
                                    let r = Int(ib[i]) * d
                                    if let psw {
                                        EmbeddingKernels.add(gRow, scaledBy: psw[i], into: gw.baseAddress! + r, d)
                                        gradWeights![i] = EmbeddingKernels.dot(gRow, wb.baseAddress! + r, d)
                                    } else {
                                        EmbeddingKernels.add(gRow, scaledBy: meanScale, into: gw.baseAddress! + r, d)
                                    }
                                    i += 1
                                }
                                b += 1
                            }
                        }
                    }
                }
            }
        }
        return gradWeights
    }

    private func validate(indices: [Int32], offsets: [Int], perSampleWeights: [Float]?) {
        precondition(offsets.first.map { $0 == 0 } ?? indices.isEmpty, "EmbeddingBag: offsets must start at 0")
        var previous = 0
        for o in offsets {
            precondition(o >= previous && o <= indices.count, "EmbeddingBag: offsets must be non-decreasing and ≤ indices.count")
            previous = o
        }
        for i in indices { precondition(i >= 0 && Int(i) < count, "EmbeddingBag: index \(i) out of range 0..<\(count)") }
        if let perSampleWeights {
            precondition(mode == .sum, "EmbeddingBag: per-sample weights need mode .sum (as in PyTorch)")
            precondition(perSampleWeights.count == indices.count, "EmbeddingBag: one per-sample weight per index")
        }
    }
}

@inline(__always)
private func withOptionalBuffer<R>(_ a: [Float]?, _ body: (UnsafeBufferPointer<Float>?) -> R) -> R {
    if let a { return a.withUnsafeBufferPointer { body($0) } }
    return body(nil)
}

/// Short-vector loops for embedding rows (dimensions are small: tens to a few hundred).
enum EmbeddingKernels {
    @inline(__always)
    static func add(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, _ n: Int) {
        var i = 0
        while i < n {
            y[i] += x[i]
            i += 1
        }
    }

    @inline(__always)
    static func add(_ x: UnsafePointer<Float>, scaledBy a: Float, into y: UnsafeMutablePointer<Float>, _ n: Int) {
        var i = 0
        while i < n {
            y[i] += a * x[i]
            i += 1
        }
    }

    @inline(__always)
    static func scale(_ x: UnsafeMutablePointer<Float>, by a: Float, _ n: Int) {
        var i = 0
        while i < n {
            x[i] *= a
            i += 1
        }
    }

    @inline(__always)
    static func dot(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ n: Int) -> Float {
        var s: Float = 0
        var i = 0
        while i < n {
            s += x[i] * y[i]
            i += 1
        }
        return s
    }
}
