/// y = f(x · W + b), W of shape [in, out], with the bias and activation fused into one pass after the
/// GEMM, and every per-batch buffer (output, ∂L/∂z, ∂L/∂x) owned and reused across batches.
/// Initialised like `Dense` (PyTorch's Linear: U(±1/√in), weight then bias from the same generator), so
/// `FusedDense(i, o, activation: .relu)` computes what `Sequential([Dense(i, o), ReLU()])` computes.
///
/// Note [Buffer reuse]: `forward` returns its output buffer and `backward` its input-gradient buffer.
/// They are copy-on-write arrays: while a caller still holds a returned tensor, the next write copies
/// (correct, just slower); in a training loop the holders (the next layer's saved input, the loss
/// gradient) are released by the time the next batch runs, so the writes are in place.
public final class FusedDense: Layer {
    public let weight: Parameter
    public let bias: Parameter
    public let activation: Activation
    private var input: Tensor?
    /// Output f(z), kept for backward when f′ comes from the output (ReLU, tanh, sigmoid).
    private var out = Tensor(zeros: [0, 0])
    /// Pre-activation z, kept only for GELU.
    private var pre = Tensor(zeros: [0, 0])
    private var dz = Tensor(zeros: [0, 0])
    private var dx = Tensor(zeros: [0, 0])

    public init(_ inputs: Int, _ outputs: Int, activation: Activation = .identity, rng: inout SeededGenerator,
                name: String = "dense") {
        let bound = 1 / Float(inputs).squareRoot()
        weight = Parameter("\(name).weight", Tensor(shape: [inputs, outputs],
                                                    storage: (0..<inputs * outputs).map { _ in rng.uniform(bound) }))
        bias = Parameter("\(name).bias", Tensor(shape: [outputs], storage: (0..<outputs).map { _ in rng.uniform(bound) }))
        self.activation = activation
    }

    public var inputs: Int { weight.value.shape[0] }
    public var outputs: Int { weight.value.shape[1] }
    public var parameters: [Parameter] { [weight, bias] }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        let flat = x.rank == 2 ? x : x.reshaped([x.rows, x.columns])
        let m = flat.rows, k = inputs, n = outputs
        precondition(flat.columns == k, "FusedDense expects \(k) input features, got \(flat.columns)")
        if out.shape != [m, n] { out = Tensor(zeros: [m, n]) }
        let f = activation
        let keepPre = training && !f.derivativeFromOutput
        if keepPre && pre.shape != [m, n] { pre = Tensor(zeros: [m, n]) }
        flat.storage.withUnsafeBufferPointer { a in
            weight.value.storage.withUnsafeBufferPointer { w in
                out.storage.withUnsafeMutableBufferPointer { c in
                    BLAS.gemm(transA: false, transB: false, m: m, n: n, k: k, a: a.baseAddress!, lda: k,
                              b: w.baseAddress!, ldb: n, beta: 0, c: c.baseAddress!, ldc: n)
                }
            }
        }
        bias.value.storage.withUnsafeBufferPointer { b in
            out.storage.withUnsafeMutableBufferPointer { c in
                if keepPre {
                    pre.storage.withUnsafeMutableBufferPointer { z in
                        FusedDense.biasActivation(f, c.baseAddress!, b.baseAddress!, m, n, pre: z.baseAddress!)
                    }
                } else {
                    FusedDense.biasActivation(f, c.baseAddress!, b.baseAddress!, m, n, pre: nil)
                }
            }
        }
        input = training ? flat : nil
        return out
    }

    public func backward(_ g: Tensor) -> Tensor {
        backward(g, inputGradient: true)
        return dx
    }

    /// Skips the ∂L/∂x GEMM (a first layer's input is data).
    public func backwardParameters(_ g: Tensor) { backward(g, inputGradient: false) }

    private func backward(_ g: Tensor, inputGradient: Bool) {
        guard let x = input else { preconditionFailure("FusedDense.backward without a training forward") }
        let m = x.rows, k = inputs, n = outputs
        precondition(g.shape == [m, n], "FusedDense.backward: gradient shape \(g.shape), expected [\(m), \(n)]")
        if activation == .identity {
            // ∂L/∂z is g itself: no copy.
            accumulate(x: x, dz: g, m: m, k: k, n: n, inputGradient: inputGradient)
        } else {
            if dz.shape != [m, n] { dz = Tensor(zeros: [m, n]) }
            let f = activation
            g.storage.withUnsafeBufferPointer { gp in
                dz.storage.withUnsafeMutableBufferPointer { d in
                    bias.grad.storage.withUnsafeMutableBufferPointer { db in
                        if f.derivativeFromOutput {
                            out.storage.withUnsafeBufferPointer { y in
                                FusedDense.activationBackward(f, x: nil, y: y.baseAddress!, gp.baseAddress!, d.baseAddress!,
                                                              db.baseAddress!, m, n)
                            }
                        } else {
                            pre.storage.withUnsafeBufferPointer { z in
                                FusedDense.activationBackward(f, x: z.baseAddress!, y: nil, gp.baseAddress!, d.baseAddress!,
                                                              db.baseAddress!, m, n)
                            }
                        }
                    }
                }
            }
            let dzValue = dz
            accumulate(x: x, dz: dzValue, m: m, k: k, n: n, inputGradient: inputGradient, biasDone: true)
        }
        input = nil
    }

    /// dW += xᵀ·dz; db += Σ_rows dz (unless fused already); dx = dz·Wᵀ when asked.
    private func accumulate(x: Tensor, dz: Tensor, m: Int, k: Int, n: Int, inputGradient: Bool, biasDone: Bool = false) {
        x.storage.withUnsafeBufferPointer { a in
            dz.storage.withUnsafeBufferPointer { gp in
                weight.grad.storage.withUnsafeMutableBufferPointer { dw in
                    BLAS.gemm(transA: true, transB: false, m: k, n: n, k: m, a: a.baseAddress!, lda: k,
                              b: gp.baseAddress!, ldb: n, beta: 1, c: dw.baseAddress!, ldc: n)
                }
                if !biasDone {
                    bias.grad.storage.withUnsafeMutableBufferPointer { db in
                        for r in 0..<m { Kernels.axpy(1, gp.baseAddress! + r * n, db.baseAddress!, n) }
                    }
                }
            }
        }
        guard inputGradient else { return }
        if dx.shape != [m, k] { dx = Tensor(zeros: [m, k]) }
        dz.storage.withUnsafeBufferPointer { gp in
            weight.value.storage.withUnsafeBufferPointer { w in
                dx.storage.withUnsafeMutableBufferPointer { d in
                    BLAS.gemm(transA: false, transB: true, m: m, n: k, k: n, a: gp.baseAddress!, lda: n,
                              b: w.baseAddress!, ldb: n, c: d.baseAddress!, ldc: k)
                }
            }
        }
    }

    /// c[r, :] = f(c[r, :] + b), one pass; `pre` receives c + b when given (GELU's backward needs it).
    static func biasActivation(_ f: Activation, _ c: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>,
                               _ m: Int, _ n: Int, pre: UnsafeMutablePointer<Float>?) {
        typealias V = SIMD8<Float>
        let zero = V(repeating: 0)
        for r in 0..<m {
            let row = c + r * n
            var j = 0
            if f == .relu {
                while j + 8 <= n {
                    let v = UnsafeRawPointer(row + j).loadUnaligned(as: V.self) + UnsafeRawPointer(b + j).loadUnaligned(as: V.self)
                    UnsafeMutableRawPointer(row + j).storeBytes(of: v.replacing(with: zero, where: v .< zero), as: V.self)
                    j += 8
                }
                while j < n { row[j] = max(row[j] + b[j], 0); j += 1 }
                continue
            }
            while j + 8 <= n {
                let v = UnsafeRawPointer(row + j).loadUnaligned(as: V.self) + UnsafeRawPointer(b + j).loadUnaligned(as: V.self)
                UnsafeMutableRawPointer(row + j).storeBytes(of: v, as: V.self)
                j += 8
            }
            while j < n { row[j] += b[j]; j += 1 }
            if let pre { (pre + r * n).update(from: row, count: n) }
            if f != .identity { ActivationKernels.forward(f, row, row, n) }
        }
    }

    /// dz = dy ⊙ f′ row by row, adding Σ_rows dz into db in the same pass.
    static func activationBackward(_ f: Activation, x: UnsafePointer<Float>?, y: UnsafePointer<Float>?,
                                   _ dy: UnsafePointer<Float>, _ dz: UnsafeMutablePointer<Float>,
                                   _ db: UnsafeMutablePointer<Float>, _ m: Int, _ n: Int) {
        typealias V = SIMD8<Float>
        let zero = V(repeating: 0)
        for r in 0..<m {
            let o = r * n
            if f == .relu, let y {
                var j = 0
                while j + 8 <= n {
                    let vy = UnsafeRawPointer(y + o + j).loadUnaligned(as: V.self)
                    let vg = UnsafeRawPointer(dy + o + j).loadUnaligned(as: V.self)
                    let d = vg.replacing(with: zero, where: vy .<= zero)
                    UnsafeMutableRawPointer(dz + o + j).storeBytes(of: d, as: V.self)
                    let acc = UnsafeRawPointer(db + j).loadUnaligned(as: V.self)
                    UnsafeMutableRawPointer(db + j).storeBytes(of: acc + d, as: V.self)
                    j += 8
                }
                while j < n {
                    let d = y[o + j] > 0 ? dy[o + j] : 0
                    dz[o + j] = d
                    db[j] += d
                    j += 1
                }
            } else {
                ActivationKernels.backward(f, x: x.map { $0 + o }, y: y.map { $0 + o }, dy + o, dz + o, n)
                Kernels.axpy(1, dz + o, db, n)
            }
        }
    }
}
