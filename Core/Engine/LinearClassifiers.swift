#if canImport(Glibc)
import Glibc
#endif

/// Options shared by the linear classifiers.
///
/// // Note [Linear classifier objective]
/// Both classifiers minimise scikit-learn's `LogisticRegression` objective (lbfgs, l2, `C`) over the
/// standardised features z (so the result matches `make_pipeline(StandardScaler(), LogisticRegression(C=…))`):
///
///     f(W, b) = (1/n) Σᵢ −log p(yᵢ | zᵢ) + ‖W‖² / (2·C·n)        (the intercept is not penalised)
///
/// by full-batch L-BFGS in Double (`LinearLBFGS`). The objective is strictly convex, so the optimum is
/// unique and any converged solver lands on the same weights; we converge tighter than scikit-learn's
/// default `tol=1e-4` so the solution does not depend on the iteration path.
public struct LinearClassifierOptions: Sendable, Equatable {
    /// Inverse regularisation strength, as scikit-learn's `C`.
    public var c: Double = 1.0
    public var maxIterations = 1000
    /// Stop when every component of ∇f is at most this in magnitude.
    public var gradientTolerance = 1e-7
    public init() {}
}

/// Binary logistic regression: P(y = 1 | x) = σ(x·coefficients + intercept). Labels are 0 and 1.
public struct LogisticRegression: Sendable, Equatable, Codable {
    /// Coefficients for the original (unstandardised) features.
    public var coefficients: [Double]
    public var intercept: Double
    public var standardizer: LinearStandardizer
    /// L-BFGS iterations used and whether the gradient tolerance was reached.
    public var iterations: Int
    public var converged: Bool

    /// Fits by full-batch L-BFGS; see Note [Linear classifier objective].
    public static func fit(x: Tensor, labels: [Int], options: LinearClassifierOptions = LinearClassifierOptions())
        -> LogisticRegression {
        precondition(x.rank == 2 && x.rows == labels.count && x.rows > 0, "LogisticRegression.fit: x \(x.shape), labels \(labels.count)")
        precondition(labels.allSatisfy { $0 == 0 || $0 == 1 }, "LogisticRegression: labels must be 0 or 1")
        precondition(options.c > 0, "LogisticRegression: C must be positive")
        let n = x.rows, d = x.columns
        let standardizer = LinearStandardizer(fitting: x)
        let z = standardizer.transformToDouble(x)
        let y = labels.map(Double.init)
        let penalty = 1 / (options.c * Double(n))
        let solver = LinearLBFGS(maxIterations: options.maxIterations, gradientTolerance: options.gradientTolerance)
        let result = z.withUnsafeBufferPointer { zp in
            y.withUnsafeBufferPointer { yp in
                solver.minimize(from: [Double](repeating: 0, count: d + 1)) { theta, grad in
                    for j in 0...d { grad[j] = 0 }
                    var loss = 0.0
                    let b = theta[d]
                    for i in 0..<n {
                        let row = zp.baseAddress! + i * d
                        var m = b
                        for j in 0..<d { m += row[j] * theta[j] }
                        // −log p(y|m) = softplus(m) − y·m, evaluated stably.
                        loss += max(m, 0) + log1p(exp(-abs(m))) - yp[i] * m
                        let r = (linearSigmoid(m) - yp[i]) / Double(n)
                        for j in 0..<d { grad[j] += r * row[j] }
                        grad[d] += r
                    }
                    var norm = 0.0
                    for j in 0..<d {
                        norm += theta[j] * theta[j]
                        grad[j] += penalty * theta[j]
                    }
                    return loss / Double(n) + 0.5 * penalty * norm
                }
            }
        }
        var coefficients = [Double](repeating: 0, count: d)
        var intercept = result.x[d]
        for j in 0..<d {
            coefficients[j] = result.x[j] / standardizer.scale[j]
            intercept -= coefficients[j] * standardizer.mean[j]
        }
        return LogisticRegression(coefficients: coefficients, intercept: intercept, standardizer: standardizer,
                                  iterations: result.iterations, converged: result.converged)
    }

    /// x·coefficients + intercept (the log-odds of class 1).
    public func decisionFunction(_ x: Tensor) -> [Double] {
        linearScores(x, weights: coefficients, intercepts: [intercept], outputs: 1)
    }

    /// P(y = 1) per row.
    public func predictProbabilities(_ x: Tensor) -> [Double] { decisionFunction(x).map(linearSigmoid) }

    public func predict(_ x: Tensor) -> [Int] { decisionFunction(x).map { $0 > 0 ? 1 : 0 } }
}

/// Multinomial (softmax) logistic regression over `classes` labels 0..<classes, one weight vector per class
/// (scikit-learn's multinomial `LogisticRegression`, which is over-parameterised and made unique by the L2 term).
public struct SoftmaxRegression: Sendable, Equatable, Codable {
    public var classes: Int
    /// `[features × classes]`, row-major, for the original (unstandardised) features.
    public var coefficients: [Double]
    public var intercepts: [Double]
    public var standardizer: LinearStandardizer
    public var iterations: Int
    public var converged: Bool

    /// Fits by full-batch L-BFGS; see Note [Linear classifier objective].
    public static func fit(x: Tensor, labels: [Int], classes: Int,
                           options: LinearClassifierOptions = LinearClassifierOptions()) -> SoftmaxRegression {
        precondition(x.rank == 2 && x.rows == labels.count && x.rows > 0, "SoftmaxRegression.fit: x \(x.shape), labels \(labels.count)")
        precondition(classes >= 2 && labels.allSatisfy { $0 >= 0 && $0 < classes },
                     "SoftmaxRegression: labels must lie in 0..<\(classes)")
        precondition(options.c > 0, "SoftmaxRegression: C must be positive")
        let n = x.rows, d = x.columns, k = classes
        let standardizer = LinearStandardizer(fitting: x)
        let z = standardizer.transformToDouble(x)
        let penalty = 1 / (options.c * Double(n))
        let solver = LinearLBFGS(maxIterations: options.maxIterations, gradientTolerance: options.gradientTolerance)
        var logits = [Double](repeating: 0, count: k)
        let result = z.withUnsafeBufferPointer { zp in
            logits.withUnsafeMutableBufferPointer { p in
                solver.minimize(from: [Double](repeating: 0, count: (d + 1) * k)) { theta, grad in
                    // theta = [W (d×k, row-major) | b (k)]
                    for j in 0..<grad.count { grad[j] = 0 }
                    let w = theta.baseAddress!, bias = w + d * k
                    let gw = grad.baseAddress!, gb = gw + d * k
                    var loss = 0.0
                    for i in 0..<n {
                        let row = zp.baseAddress! + i * d
                        for c in 0..<k { p[c] = bias[c] }
                        for j in 0..<d {
                            let zj = row[j], wj = w + j * k
                            for c in 0..<k { p[c] += zj * wj[c] }
                        }
                        var top = p[0]
                        for c in 1..<k { top = max(top, p[c]) }
                        var total = 0.0
                        for c in 0..<k {
                            p[c] = exp(p[c] - top)
                            total += p[c]
                        }
                        let label = labels[i]
                        loss += log(total) - log(p[label])
                        let inv = 1 / (total * Double(n))
                        for c in 0..<k { p[c] *= inv }  // (p − onehot) / n
                        p[label] -= 1 / Double(n)
                        for j in 0..<d {
                            let zj = row[j], g = gw + j * k
                            for c in 0..<k { g[c] += zj * p[c] }
                        }
                        for c in 0..<k { gb[c] += p[c] }
                    }
                    var norm = 0.0
                    for j in 0..<(d * k) {
                        norm += w[j] * w[j]
                        gw[j] += penalty * w[j]
                    }
                    return loss / Double(n) + 0.5 * penalty * norm
                }
            }
        }
        var coefficients = [Double](repeating: 0, count: d * k)
        var intercepts = Array(result.x[(d * k)...])
        for j in 0..<d {
            for c in 0..<k {
                coefficients[j * k + c] = result.x[j * k + c] / standardizer.scale[j]
                intercepts[c] -= coefficients[j * k + c] * standardizer.mean[j]
            }
        }
        return SoftmaxRegression(classes: k, coefficients: coefficients, intercepts: intercepts,
                                 standardizer: standardizer, iterations: result.iterations, converged: result.converged)
    }

    /// Logits `[n × classes]`, row-major.
    public func decisionFunction(_ x: Tensor) -> [Double] {
        linearScores(x, weights: coefficients, intercepts: intercepts, outputs: classes)
    }

    /// Class probabilities `[n × classes]`, row-major.
    public func predictProbabilities(_ x: Tensor) -> [Double] {
        var scores = decisionFunction(x)
        scores.withUnsafeMutableBufferPointer { s in
            for i in 0..<x.rows { linearSoftmaxInPlace(s.baseAddress! + i * classes, classes) }
        }
        return scores
    }

    public func predict(_ x: Tensor) -> [Int] {
        let scores = decisionFunction(x)
        return (0..<x.rows).map { i in
            var best = 0
            for c in 1..<classes where scores[i * classes + c] > scores[i * classes + best] { best = c }
            return best
        }
    }
}

// MARK: Shared kernels

@inline(__always)
func linearSigmoid(_ m: Double) -> Double {
    m >= 0 ? 1 / (1 + exp(-m)) : exp(m) / (1 + exp(m))
}

/// Softmax of `count` logits in place (max-shifted).
@inline(__always)
func linearSoftmaxInPlace(_ p: UnsafeMutablePointer<Double>, _ count: Int) {
    var top = p[0]
    for c in 1..<count { top = max(top, p[c]) }
    var total = 0.0
    for c in 0..<count {
        p[c] = exp(p[c] - top)
        total += p[c]
    }
    for c in 0..<count { p[c] /= total }
}

/// x·W + b for raw Float features `[n, d]`, Double weights `[d × outputs]` and intercepts `[outputs]`.
func linearScores(_ x: Tensor, weights: [Double], intercepts: [Double], outputs: Int) -> [Double] {
    let d = weights.count / outputs
    precondition(x.rank == 2 && x.columns == d, "expected [n, \(d)] features, got \(x.shape)")
    let n = x.rows
    var out = [Double](repeating: 0, count: n * outputs)
    x.storage.withUnsafeBufferPointer { xs in
        weights.withUnsafeBufferPointer { w in
            out.withUnsafeMutableBufferPointer { o in
                for i in 0..<n {
                    let row = xs.baseAddress! + i * d, dst = o.baseAddress! + i * outputs
                    for c in 0..<outputs { dst[c] = intercepts[c] }
                    for j in 0..<d {
                        let v = Double(row[j]), wj = w.baseAddress! + j * outputs
                        for c in 0..<outputs { dst[c] += v * wj[c] }
                    }
                }
            }
        }
    }
    return out
}
