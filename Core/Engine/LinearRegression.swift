/// Ordinary least squares (optionally ridge) on standardised features, y ≈ x·coefficients + intercept.
///
/// The features are standardised inside the model (`LinearStandardizer`, stored for reference) and the
/// coefficients are reported on the original scale, so `predict` takes raw features.
public struct LinearRegression: Sendable, Equatable, Codable {
    /// Coefficients for the original (unstandardised) features.
    public var coefficients: [Double]
    public var intercept: Double
    /// The standardisation used while fitting.
    public var standardizer: LinearStandardizer

    public init(coefficients: [Double], intercept: Double, standardizer: LinearStandardizer) {
        self.coefficients = coefficients
        self.intercept = intercept
        self.standardizer = standardizer
    }

    /// Closed form: minimises ‖y − ȳ − Z·w‖² + α‖w‖² over the standardised features Z (scikit-learn's
    /// `Ridge(alpha: α)` after a `StandardScaler`; α = 0 is ordinary least squares). The normal equations
    /// (ZᵀZ + α'I)·w = Zᵀ(y − ȳ) are built in Double and solved by Cholesky, with α' = max(α, 1e-10·n): a
    /// tiny ridge that keeps constant or collinear columns solvable and changes nothing measurable otherwise
    /// (ZᵀZ has n on its diagonal). Should the factorisation still fail, α' grows ×100 until it succeeds.
    public static func fit(x: Tensor, y: [Double], alpha: Double = 0) -> LinearRegression {
        precondition(x.rank == 2 && x.rows == y.count && x.rows > 0, "LinearRegression.fit: x \(x.shape), y \(y.count)")
        let n = x.rows, d = x.columns
        let standardizer = LinearStandardizer(fitting: x)
        let z = standardizer.transformToDouble(x)
        let yMean = y.reduce(0, +) / Double(n)
        let centred = y.map { $0 - yMean }
        let (gram, rhs) = LinearAlgebra.normalEquations(z, centred, n: n, d: d)
        var ridge = max(alpha, 1e-10 * Double(n))
        var w = rhs
        while true {
            var a = gram
            for j in 0..<d { a[j * d + j] += ridge }
            w = rhs
            if LinearAlgebra.choleskySolve(&a, &w, n: d, k: 1) { break }
            ridge *= 100
        }
        return LinearRegression(standardized: w, bias: 0, yMean: yMean, yScale: 1, standardizer: standardizer)
    }

    /// Minibatch SGD with momentum on the BLAS path (Float), for data too large for the normal equations.
    public struct SGDOptions: Sendable, Equatable {
        public var epochs = 100
        public var batchSize = 32
        public var learningRate: Float = 0.05
        public var momentum: Float = 0.9
        /// Seeds the per-epoch shuffle.
        public var seed: UInt64 = 0
        public init() {}
    }

    /// Minimises the half mean squared error over standardised features and a standardised target, one
    /// shuffled minibatch at a time: r = Z_b·w + b − y_b (gemv), ∇w = Z_bᵀ·r / B (gemv), v ← μv + ∇, w ← w − ηv.
    public static func fitSGD(x: Tensor, y: [Double], options: SGDOptions = SGDOptions()) -> LinearRegression {
        precondition(x.rank == 2 && x.rows == y.count && x.rows > 0, "LinearRegression.fitSGD: x \(x.shape), y \(y.count)")
        precondition(options.batchSize > 0 && options.epochs >= 0, "LinearRegression.fitSGD: bad options \(options)")
        let n = x.rows, d = x.columns
        let standardizer = LinearStandardizer(fitting: x)
        let z = standardizer.transform(x)
        let yMean = y.reduce(0, +) / Double(n)
        var yVar = 0.0
        for v in y { yVar += (v - yMean) * (v - yMean) }
        let yScale = yVar > 0 ? (yVar / Double(n)).squareRoot() : 1
        let target = y.map { Float(($0 - yMean) / yScale) }

        var w = [Float](repeating: 0, count: d), velocity = w
        var bias: Float = 0, biasVelocity: Float = 0
        let batch = min(options.batchSize, n)
        var order = Array(0..<n)
        var rng = SeededGenerator(seed: options.seed)
        var zb = [Float](repeating: 0, count: batch * d), yb = [Float](repeating: 0, count: batch)
        var residual = yb, grad = w
        let lr = options.learningRate, mu = options.momentum
        for _ in 0..<options.epochs {
            order.shuffle(using: &rng)
            var start = 0
            while start < n {
                let m = min(batch, n - start)
                z.storage.withUnsafeBufferPointer { zs in
                    zb.withUnsafeMutableBufferPointer { dst in
                        for r in 0..<m {
                            let row = order[start + r]
                            (dst.baseAddress! + r * d).update(from: zs.baseAddress! + row * d, count: d)
                            yb[r] = target[row]
                        }
                    }
                }
                zb.withUnsafeBufferPointer { a in
                    w.withUnsafeBufferPointer { wp in
                        residual.withUnsafeMutableBufferPointer { r in
                            for i in 0..<m { r[i] = bias - yb[i] }
                            BLAS.gemv(trans: false, m: m, n: d, a: a.baseAddress!, lda: d, x: wp.baseAddress!, beta: 1,
                                      y: r.baseAddress!)
                        }
                    }
                    residual.withUnsafeBufferPointer { r in
                        grad.withUnsafeMutableBufferPointer { g in
                            BLAS.gemv(trans: true, m: m, n: d, alpha: 1 / Float(m), a: a.baseAddress!, lda: d,
                                      x: r.baseAddress!, y: g.baseAddress!)
                        }
                    }
                }
                var gb: Float = 0
                for i in 0..<m { gb += residual[i] }
                gb /= Float(m)
                w.withUnsafeMutableBufferPointer { wp in
                    velocity.withUnsafeMutableBufferPointer { v in
                        grad.withUnsafeBufferPointer { g in
                            Kernels.scale(v.baseAddress!, mu, d)
                            Kernels.axpy(1, g.baseAddress!, v.baseAddress!, d)
                            Kernels.axpy(-lr, v.baseAddress!, wp.baseAddress!, d)
                        }
                    }
                }
                biasVelocity = mu * biasVelocity + gb
                bias -= lr * biasVelocity
                start += m
            }
        }
        return LinearRegression(standardized: w.map(Double.init), bias: Double(bias), yMean: yMean, yScale: yScale,
                                standardizer: standardizer)
    }

    /// Maps weights on standardised features (and a standardised target) back to the original scale.
    private init(standardized w: [Double], bias: Double, yMean: Double, yScale: Double, standardizer: LinearStandardizer) {
        var coefficients = [Double](repeating: 0, count: w.count)
        var intercept = yMean + yScale * bias
        for j in w.indices {
            coefficients[j] = yScale * w[j] / standardizer.scale[j]
            intercept -= coefficients[j] * standardizer.mean[j]
        }
        self.init(coefficients: coefficients, intercept: intercept, standardizer: standardizer)
    }

    /// x·coefficients + intercept for raw features `[n, d]`.
    public func predict(_ x: Tensor) -> [Double] {
        precondition(x.rank == 2 && x.columns == coefficients.count,
                     "LinearRegression.predict: expected [n, \(coefficients.count)], got \(x.shape)")
        let n = x.rows, d = coefficients.count
        var out = [Double](repeating: intercept, count: n)
        x.storage.withUnsafeBufferPointer { xs in
            coefficients.withUnsafeBufferPointer { c in
                for i in 0..<n {
                    let row = xs.baseAddress! + i * d
                    var s = intercept
                    for j in 0..<d { s += Double(row[j]) * c[j] }
                    out[i] = s
                }
            }
        }
        return out
    }
}
