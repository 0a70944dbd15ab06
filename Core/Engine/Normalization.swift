/// Layer normalisation over the last dimension (PyTorch `LayerNorm(features)`): per row,
/// y = (x − mean) / √(var + eps) · weight + bias with the biased variance; weight starts at 1, bias at 0.
public final class LayerNorm: Layer {
    public let features: Int
    public let epsilon: Float
    public let weight: Parameter
    public let bias: Parameter
    private var xhat = Tensor(zeros: [0])
    private var rstd: [Float] = []

    public init(_ features: Int, epsilon: Float = 1e-5, name: String = "layernorm") {
        self.features = features
        self.epsilon = epsilon
        weight = Parameter("\(name).weight", Tensor(shape: [features], repeating: 1))
        bias = Parameter("\(name).bias", Tensor(zeros: [features]))
    }

    public var parameters: [Parameter] { [weight, bias] }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        precondition(x.shape.last == features, "LayerNorm(\(features)) got input of shape \(x.shape)")
        let n = features, rows = x.count / max(1, n)
        var out = Tensor(zeros: x.shape)
        var normalized = training ? Tensor(zeros: x.shape) : Tensor(zeros: [0])
        var inv = [Float](repeating: 0, count: training ? rows : 0)
        let eps = epsilon
        x.storage.withUnsafeBufferPointer { xs in
            out.storage.withUnsafeMutableBufferPointer { ys in
                weight.value.storage.withUnsafeBufferPointer { w in
                    bias.value.storage.withUnsafeBufferPointer { b in
                        normalized.storage.withUnsafeMutableBufferPointer { nh in
                            for r in 0..<rows {
                                let row = xs.baseAddress! + r * n, y = ys.baseAddress! + r * n
                                var mean: Float = 0
                                for j in 0..<n { mean += row[j] }
                                mean /= Float(n)
                                var variance: Float = 0
                                for j in 0..<n { let d = row[j] - mean; variance += d * d }
                                variance /= Float(n)
                                let s = 1 / (variance + eps).squareRoot()
                                for j in 0..<n {
                                    let h = (row[j] - mean) * s
                                    y[j] = h * w[j] + b[j]
                                    if training { nh[r * n + j] = h }
                                }
                                if training { inv[r] = s }
                            }
                        }
                    }
                }
            }
        }
        if training {
            xhat = normalized
            rstd = inv
        }
        return out
    }

    public func backward(_ g: Tensor) -> Tensor {
        precondition(g.shape == xhat.shape, "LayerNorm.backward: gradient shape \(g.shape), expected \(xhat.shape)")
        let n = features, rows = g.count / max(1, n)
        var dx = Tensor(zeros: g.shape)
        // dx̂ = g·w;  dx = rstd · (dx̂ − mean(dx̂) − x̂ · mean(dx̂ ⊙ x̂));  dw += Σ g ⊙ x̂;  db += Σ g.
        g.storage.withUnsafeBufferPointer { gs in
            xhat.storage.withUnsafeBufferPointer { hs in
                weight.value.storage.withUnsafeBufferPointer { w in
                    weight.grad.storage.withUnsafeMutableBufferPointer { dw in
                        bias.grad.storage.withUnsafeMutableBufferPointer { db in
                            dx.storage.withUnsafeMutableBufferPointer { d in
                                for r in 0..<rows {
                                    let o = r * n
                                    var a: Float = 0, c: Float = 0
                                    for j in 0..<n {
                                        let gh = gs[o + j] * w[j]
                                        a += gh
                                        c += gh * hs[o + j]
                                        dw[j] += gs[o + j] * hs[o + j]
                                        db[j] += gs[o + j]
                                    }
                                    a /= Float(n)
                                    c /= Float(n)
                                    let s = rstd[r]
                                    for j in 0..<n { d[o + j] = s * (gs[o + j] * w[j] - a - hs[o + j] * c) }
                                }
                            }
                        }
                    }
                }
            }
        }
        xhat = Tensor(zeros: [0])
        return dx
    }
}

/// Batch normalisation over the batch of a [N, C] input (PyTorch `BatchNorm1d(C)` on 2-D input).
/// Training normalises with the batch mean and biased variance and updates the running statistics
/// with `momentum` (running = (1 − m)·running + m·batch, the variance unbiased as PyTorch does);
/// evaluation normalises with the running statistics. Affine weight starts at 1, bias at 0.
public final class BatchNorm1d: Layer {
    public let features: Int
    public let epsilon: Float
    public let momentum: Float
    public let weight: Parameter
    public let bias: Parameter
    /// Running statistics (buffers, not parameters: the optimizer never sees them; a checkpoint stores them).
    public var runningMean: Tensor
    public var runningVar: Tensor
    public var batchesTracked = 0
    private var xhat = Tensor(zeros: [0])
    private var rstd: [Float] = []

    public init(_ features: Int, epsilon: Float = 1e-5, momentum: Float = 0.1, name: String = "batchnorm") {
        self.features = features
        self.epsilon = epsilon
        self.momentum = momentum
        weight = Parameter("\(name).weight", Tensor(shape: [features], repeating: 1))
        bias = Parameter("\(name).bias", Tensor(zeros: [features]))
        runningMean = Tensor(zeros: [features])
        runningVar = Tensor(shape: [features], repeating: 1)
    }

    public var parameters: [Parameter] { [weight, bias] }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        precondition(x.rank == 2 && x.shape[1] == features, "BatchNorm1d(\(features)) expects [N, \(features)], got \(x.shape)")
        let n = x.rows, c = features
        var mean = [Float](repeating: 0, count: c), scale = [Float](repeating: 0, count: c)
        if training {
            precondition(n > 1, "BatchNorm1d needs more than one sample per channel in training")
            x.storage.withUnsafeBufferPointer { xs in
                for r in 0..<n { for j in 0..<c { mean[j] += xs[r * c + j] } }
                for j in 0..<c { mean[j] /= Float(n) }
                var variance = [Float](repeating: 0, count: c)
                for r in 0..<n { for j in 0..<c { let d = xs[r * c + j] - mean[j]; variance[j] += d * d } }
                let m = momentum
                runningMean.storage.withUnsafeMutableBufferPointer { rm in
                    runningVar.storage.withUnsafeMutableBufferPointer { rv in
                        for j in 0..<c {
                            let biased = variance[j] / Float(n)
                            scale[j] = 1 / (biased + epsilon).squareRoot()
                            rm[j] = (1 - m) * rm[j] + m * mean[j]
                            rv[j] = (1 - m) * rv[j] + m * variance[j] / Float(n - 1)
                        }
                    }
                }
            }
            batchesTracked += 1
            rstd = scale
        } else {
            for j in 0..<c {
                mean[j] = runningMean.storage[j]
                scale[j] = 1 / (runningVar.storage[j] + epsilon).squareRoot()
            }
        }
        var out = Tensor(zeros: x.shape)
        var normalized = training ? Tensor(zeros: x.shape) : Tensor(zeros: [0])
        x.storage.withUnsafeBufferPointer { xs in
            out.storage.withUnsafeMutableBufferPointer { ys in
                normalized.storage.withUnsafeMutableBufferPointer { nh in
                    weight.value.storage.withUnsafeBufferPointer { w in
                        bias.value.storage.withUnsafeBufferPointer { b in
                            for r in 0..<n {
                                for j in 0..<c {
                                    let h = (xs[r * c + j] - mean[j]) * scale[j]
                                    ys[r * c + j] = h * w[j] + b[j]
                                    if training { nh[r * c + j] = h }
                                }
                            }
                        }
                    }
                }
            }
        }
        if training { xhat = normalized }
        return out
    }

    public func backward(_ g: Tensor) -> Tensor {
        precondition(g.shape == xhat.shape, "BatchNorm1d.backward: gradient shape \(g.shape), expected \(xhat.shape) (training forward first)")
        let n = g.rows, c = features
        var sumG = [Float](repeating: 0, count: c), sumGH = [Float](repeating: 0, count: c)
        var dx = Tensor(zeros: g.shape)
        // dx = w·rstd/N · (N·g − Σg − x̂·Σ(g ⊙ x̂));  dw += Σ g ⊙ x̂;  db += Σ g.
        g.storage.withUnsafeBufferPointer { gs in
            xhat.storage.withUnsafeBufferPointer { hs in
                for r in 0..<n {
                    for j in 0..<c {
                        sumG[j] += gs[r * c + j]
                        sumGH[j] += gs[r * c + j] * hs[r * c + j]
                    }
                }
                weight.grad.storage.withUnsafeMutableBufferPointer { dw in
                    bias.grad.storage.withUnsafeMutableBufferPointer { db in
                        for j in 0..<c {
                            dw[j] += sumGH[j]
                            db[j] += sumG[j]
                        }
                    }
                }
                weight.value.storage.withUnsafeBufferPointer { w in
                    dx.storage.withUnsafeMutableBufferPointer { d in
                        let fn = Float(n)
                        for r in 0..<n {
                            for j in 0..<c {
                                let k = w[j] * rstd[j] / fn
                                d[r * c + j] = k * (fn * gs[r * c + j] - sumG[j] - hs[r * c + j] * sumGH[j])
                            }
                        }
                    }
                }
            }
        }
        xhat = Tensor(zeros: [0])
        return dx
    }
}
