#if canImport(Glibc)
import Glibc
#endif

/// The boosting losses (scikit-learn's `HalfSquaredError`, `HalfBinomialLoss`, `HalfMultinomialLoss`).
///
/// Raw predictions are `[n × outputs]`, row-major; gradients and hessians are output-major
/// (`g[k * n + i]`) so each tree reads one contiguous array. Targets are values for regression and class
/// indices (as Double) for classification.
public enum GBDTLoss: Sendable, Equatable {
    /// ½(y − f)²: g = f − y, h = 1. Baseline: the mean target.
    case squaredError
    /// Log loss with p = σ(f): g = p − y, h = p(1 − p). Baseline: log-odds of the positive rate.
    case binaryLogLoss
    /// Log loss with p = softmax(f), one tree per class per iteration: g_k = p_k − [y = k],
    /// h_k = p_k(1 − p_k). Baseline: log p̂_k − mean_j log p̂_j from the class frequencies.
    case multinomialLogLoss(classes: Int)

    /// Raw predictions (and trees) per row and iteration.
    public var outputs: Int {
        if case .multinomialLogLoss(let k) = self { return k }
        return 1
    }

    /// The constant raw prediction boosting starts from, over all participants' rows.
    func baseline(_ targets: [Double], collective: some GBDTCollective) -> [Double] {
        let total = collective.totalCount(targets.count)
        precondition(total > 0, "GBDT: no training rows")
        let eps = Double.ulpOfOne
        switch self {
        case .squaredError:
            return [targets.withUnsafeBufferPointer { collective.exactSum($0) } / Double(total)]
        case .binaryLogLoss:
            let positives = collective.totalCount(targets.reduce(0) { $0 + ($1 == 1 ? 1 : 0) })
            let p = min(max(Double(positives) / Double(total), eps), 1 - eps)
            return [log(p / (1 - p))]
        case .multinomialLogLoss(let k):
            var counts = [Double](repeating: 0, count: k)
            for t in targets { counts[Int(t)] += 1 }
            counts.withUnsafeMutableBufferPointer { collective.sum($0) }
            let logs = counts.map { log(min(max($0 / Double(total), eps), 1 - eps)) }
            let mean = logs.reduce(0, +) / Double(k)
            return logs.map { $0 - mean }
        }
    }

    /// Fills `g` and `h` (`[outputs × n]`) from raw predictions `[n × outputs]`.
    func gradients(raw: UnsafePointer<Double>, targets: UnsafePointer<Double>, n: Int,
                   g: UnsafeMutablePointer<Double>, h: UnsafeMutablePointer<Double>) {
        switch self {
        case .squaredError:
            for i in 0..<n {
                g[i] = raw[i] - targets[i]
                h[i] = 1
            }
        case .binaryLogLoss:
            for i in 0..<n {
                let p = linearSigmoid(raw[i])
                g[i] = p - targets[i]
                h[i] = p * (1 - p)
            }
        case .multinomialLogLoss(let k):
            let p = UnsafeMutablePointer<Double>.allocate(capacity: k)
            defer { p.deallocate() }
            for i in 0..<n {
                p.update(from: raw + i * k, count: k)
                linearSoftmaxInPlace(p, k)
                let label = Int(targets[i])
                for c in 0..<k {
                    g[c * n + i] = p[c] - (c == label ? 1 : 0)
                    h[c * n + i] = p[c] * (1 - p[c])
                }
            }
        }
    }

    /// Per-row loss (½ squared error, or −log p of the true class).
    func rowLosses(raw: UnsafePointer<Double>, targets: UnsafePointer<Double>, n: Int) -> [Double] {
        var out = [Double](repeating: 0, count: n)
        switch self {
        case .squaredError:
            for i in 0..<n {
                let d = raw[i] - targets[i]
                out[i] = 0.5 * d * d
            }
        case .binaryLogLoss:
            for i in 0..<n {
                let m = raw[i]
                out[i] = max(m, 0) + log1p(exp(-abs(m))) - targets[i] * m
            }
        case .multinomialLogLoss(let k):
            for i in 0..<n {
                let row = raw + i * k
                var top = row[0]
                for c in 1..<k { top = max(top, row[c]) }
                var total = 0.0
                for c in 0..<k { total += exp(row[c] - top) }
                out[i] = log(total) + top - row[Int(targets[i])]
            }
        }
        return out
    }
}
