/// Feature standardisation stored inside the linear models: z = (x − mean) / scale, with the population
/// standard deviation as scale (scikit-learn's `StandardScaler`) and scale 1 for constant columns.
public struct LinearStandardizer: Sendable, Equatable, Codable {
    public var mean: [Double]
    public var scale: [Double]

    public init(mean: [Double], scale: [Double]) {
        precondition(mean.count == scale.count, "LinearStandardizer: \(mean.count) means vs \(scale.count) scales")
        self.mean = mean
        self.scale = scale
    }

    /// Column means and standard deviations of a 2-D tensor `[n, d]`, accumulated in Double.
    public init(fitting x: Tensor) {
        precondition(x.rank == 2 && x.rows > 0, "LinearStandardizer needs a non-empty [n, d] tensor, got \(x.shape)")
        let n = x.rows, d = x.columns
        var mean = [Double](repeating: 0, count: d)
        var m2 = [Double](repeating: 0, count: d)
        x.storage.withUnsafeBufferPointer { xs in
            mean.withUnsafeMutableBufferPointer { mu in
                for i in 0..<n {
                    let row = xs.baseAddress! + i * d
                    for j in 0..<d { mu[j] += Double(row[j]) }
                }
                for j in 0..<d { mu[j] /= Double(n) }
                m2.withUnsafeMutableBufferPointer { s in
                    for i in 0..<n {
                        let row = xs.baseAddress! + i * d
                        for j in 0..<d {
                            let c = Double(row[j]) - mu[j]
                            s[j] += c * c
                        }
                    }
                }
            }
        }
        self.mean = mean
        self.scale = m2.map { v in
            let s = (v / Double(n)).squareRoot()
            return s > 0 && s.isFinite ? s : 1
        }
    }

    public var features: Int { mean.count }

    /// The standardised features as a row-major Double buffer `[n × d]`.
    public func transformToDouble(_ x: Tensor) -> [Double] {
        precondition(x.rank == 2 && x.columns == features, "expected [n, \(features)] features, got \(x.shape)")
        let n = x.rows, d = features
        var z = [Double](repeating: 0, count: n * d)
        x.storage.withUnsafeBufferPointer { xs in
            mean.withUnsafeBufferPointer { mu in
                scale.withUnsafeBufferPointer { sc in
                    z.withUnsafeMutableBufferPointer { zs in
                        for i in 0..<n {
                            let src = xs.baseAddress! + i * d, dst = zs.baseAddress! + i * d
                            for j in 0..<d { dst[j] = (Double(src[j]) - mu[j]) / sc[j] }
                        }
                    }
                }
            }
        }
        return z
    }

    /// The standardised features as a Float tensor `[n, d]` (for the BLAS path).
    public func transform(_ x: Tensor) -> Tensor {
        let z = transformToDouble(x)
        return Tensor(shape: [x.rows, features], storage: z.map { Float($0) })
    }
}

/// Small dense linear algebra in Double for the linear models.
enum LinearAlgebra {
    /// Solves `A · X = B` for symmetric positive definite `A` (`n × n`, row-major, overwritten with its
    /// Cholesky factor L in the lower triangle) and `B` (`n × k`, row-major, overwritten with X).
    /// Returns false when A is not (numerically) positive definite.
    static func choleskySolve(_ a: inout [Double], _ b: inout [Double], n: Int, k: Int) -> Bool {
        precondition(a.count == n * n && b.count == n * k, "choleskySolve: shapes do not agree")
        return a.withUnsafeMutableBufferPointer { ap in
            b.withUnsafeMutableBufferPointer { bp in
                let a = ap.baseAddress!, b = bp.baseAddress!
                // A = L·Lᵀ, column by column (Cholesky–Banachiewicz).
                for i in 0..<n {
                    for j in 0...i {
                        var s = a[i * n + j]
                        for p in 0..<j { s -= a[i * n + p] * a[j * n + p] }
                        if i == j {
                            guard s > 0, s.isFinite else { return false }
                            a[i * n + i] = s.squareRoot()
                        } else {
                            a[i * n + j] = s / a[j * n + j]
                        }
                    }
                }
                // Forward substitution L·Y = B, then back substitution Lᵀ·X = Y, for all k columns.
                for c in 0..<k {
                    for i in 0..<n {
                        var s = b[i * k + c]
                        for p in 0..<i { s -= a[i * n + p] * b[p * k + c] }
                        b[i * k + c] = s / a[i * n + i]
                    }
                    for i in stride(from: n - 1, through: 0, by: -1) {
                        var s = b[i * k + c]
                        for p in (i + 1)..<n { s -= a[p * n + i] * b[p * k + c] }
                        b[i * k + c] = s / a[i * n + i]
                    }
                }
                return true
            }
        }
    }

    /// Zᵀ·Z (`d × d`) and Zᵀ·y (`d`) for row-major `Z` (`n × d`), accumulated in Double.
    static func normalEquations(_ z: [Double], _ y: [Double], n: Int, d: Int) -> (gram: [Double], rhs: [Double]) {
        var gram = [Double](repeating: 0, count: d * d)
        var rhs = [Double](repeating: 0, count: d)
        z.withUnsafeBufferPointer { zp in
            y.withUnsafeBufferPointer { yp in
                gram.withUnsafeMutableBufferPointer { gp in
                    rhs.withUnsafeMutableBufferPointer { rp in
                        let g = gp.baseAddress!, r = rp.baseAddress!
                        for i in 0..<n {
                            let row = zp.baseAddress! + i * d
                            let yi = yp[i]
                            for a in 0..<d {
                                let za = row[a]
                                r[a] += za * yi
                                let ga = g + a * d
                                for b in a..<d { ga[b] += za * row[b] }
                            }
                        }
                        for a in 0..<d { for b in 0..<a { g[a * d + b] = g[b * d + a] } }
                    }
                }
            }
        }
        return (gram, rhs)
    }
}
