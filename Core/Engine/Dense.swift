/// y = x · W + b, with W of shape [in, out]. Initialised like PyTorch's Linear: U(±1/√in).
public final class Dense: Layer {
    public let weight: Parameter
    public let bias: Parameter
    private var input: Tensor?

    public init(_ inputs: Int, _ outputs: Int, rng: inout SeededGenerator, name: String = "dense") {
        let bound = 1 / Float(inputs).squareRoot()
        weight = Parameter("\(name).weight", Tensor(shape: [inputs, outputs],
                                                    storage: (0..<inputs * outputs).map { _ in rng.uniform(bound) }))
        bias = Parameter("\(name).bias", Tensor(shape: [outputs], storage: (0..<outputs).map { _ in rng.uniform(bound) }))
    }

    public var parameters: [Parameter] { [weight, bias] }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        let flat = x.rank == 2 ? x : x.reshaped([x.rows, x.columns])
        precondition(flat.columns == weight.value.shape[0],
                     "Dense expects \(weight.value.shape[0]) input features, got \(flat.columns)")
        input = training ? flat : nil
        let m = flat.rows, n = weight.value.shape[1], k = weight.value.shape[0]
        // Start from the bias broadcast over the rows, then accumulate x·W with beta = 1.
        var out = Tensor(zeros: [m, n])
        out.storage.withUnsafeMutableBufferPointer { c in
            bias.value.storage.withUnsafeBufferPointer { b in
                for r in 0..<m { (c.baseAddress! + r * n).update(from: b.baseAddress!, count: n) }
            }
            flat.storage.withUnsafeBufferPointer { a in
                weight.value.storage.withUnsafeBufferPointer { w in
                    BLAS.gemm(transA: false, transB: false, m: m, n: n, k: k, a: a.baseAddress!, lda: k,
                              b: w.baseAddress!, ldb: n, beta: 1, c: c.baseAddress!, ldc: n)
                }
            }
        }
        return out
    }

    public func backward(_ g: Tensor) -> Tensor {
        guard let x = input else { preconditionFailure("Dense.backward without a training forward") }
        let m = x.rows, k = weight.value.shape[0], n = weight.value.shape[1]
        precondition(g.shape == [m, n], "Dense.backward: gradient shape \(g.shape), expected [\(m), \(n)]")
        // dW += xᵀ·g ; db += Σ_rows g ; dx = g·Wᵀ
        x.storage.withUnsafeBufferPointer { a in
            g.storage.withUnsafeBufferPointer { gp in
                weight.grad.storage.withUnsafeMutableBufferPointer { dw in
                    BLAS.gemm(transA: true, transB: false, m: k, n: n, k: m, a: a.baseAddress!, lda: k,
                              b: gp.baseAddress!, ldb: n, beta: 1, c: dw.baseAddress!, ldc: n)
                }
                bias.grad.storage.withUnsafeMutableBufferPointer { db in
                    for r in 0..<m { Kernels.axpy(1, gp.baseAddress! + r * n, db.baseAddress!, n) }
                }
            }
        }
        var dx = Tensor(zeros: [m, k])
        g.storage.withUnsafeBufferPointer { gp in
            weight.value.storage.withUnsafeBufferPointer { w in
                dx.storage.withUnsafeMutableBufferPointer { d in
                    BLAS.gemm(transA: false, transB: true, m: m, n: k, k: n, a: gp.baseAddress!, lda: n,
                              b: w.baseAddress!, ldb: n, c: d.baseAddress!, ldc: k)
                }
            }
        }
        input = nil
        return dx
    }
}

/// max(0, x).
public final class ReLU: Layer {
    private var mask: [Bool] = []
    private var shape: [Int] = []

    public init() {}

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        var out = x
        out.storage.withUnsafeMutableBufferPointer { p in
            for i in 0..<p.count where p[i] < 0 { p[i] = 0 }
        }
        if training {
            mask = out.storage.map { $0 > 0 }
            shape = x.shape
        }
        return out
    }

    public func backward(_ g: Tensor) -> Tensor {
        precondition(g.shape == shape, "ReLU.backward: gradient shape \(g.shape), expected \(shape)")
        var dx = g
        dx.storage.withUnsafeMutableBufferPointer { p in
            for i in 0..<p.count where !mask[i] { p[i] = 0 }
        }
        return dx
    }
}
