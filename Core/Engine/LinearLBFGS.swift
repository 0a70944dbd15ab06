/// Limited-memory BFGS for the smooth, convex objectives of the linear models, in Double.
///
/// Two-loop recursion with the Shanno–Phua initial scaling γ = sᵀy / yᵀy, a backtracking line search with
/// the Armijo condition, and curvature pairs kept only when sᵀy > 0 (always true for a strictly convex
/// objective, checked anyway). Converges when max |∂f/∂xᵢ| ≤ `gradientTolerance` (scipy's `pgtol`, which
/// scikit-learn sets from `tol`) or when the relative decrease falls below 64·ε (scikit-learn's `ftol`);
/// gives up after `maxIterations` or when the line search finds no decrease. Deterministic: no randomness, fixed evaluation order.
struct LinearLBFGS {
    var memory = 10
    var maxIterations = 1000
    var gradientTolerance = 1e-6

    struct Result {
        var x: [Double]
        var value: Double
        var iterations: Int
        var converged: Bool
    }

    /// Minimises `objective(x, gradient) -> f(x)`, which must fill `gradient` with ∇f(x).
    func minimize(from start: [Double],
                  _ objective: (UnsafeBufferPointer<Double>, UnsafeMutableBufferPointer<Double>) -> Double) -> Result {
        let n = start.count
        var x = start, g = [Double](repeating: 0, count: n)
        var xNew = x, gNew = g, d = g
        func evaluate(_ point: [Double], _ grad: inout [Double]) -> Double {
            point.withUnsafeBufferPointer { p in grad.withUnsafeMutableBufferPointer { objective(p, $0) } }
        }
        var f = evaluate(x, &g)
        var s: [[Double]] = [], y: [[Double]] = [], rho: [Double] = []
        var alpha = [Double](repeating: 0, count: memory)
        var iteration = 0
        var converged = maxAbs(g) <= gradientTolerance
        while !converged && iteration < maxIterations {
            iteration += 1
            // d = −H·g by the two-loop recursion.
            for i in 0..<n { d[i] = -g[i] }
            let m = s.count
            if m > 0 {
                for j in stride(from: m - 1, through: 0, by: -1) {
                    alpha[j] = rho[j] * dot(s[j], d)
                    axpy(-alpha[j], y[j], &d)
                }
                let gamma = dot(s[m - 1], y[m - 1]) / dot(y[m - 1], y[m - 1])
                for i in 0..<n { d[i] *= gamma }
                for j in 0..<m {
                    let beta = rho[j] * dot(y[j], d)
                    axpy(alpha[j] - beta, s[j], &d)
                }
            }
            var slope = dot(g, d)
            if !(slope < 0) {  // not a descent direction (numerical trouble): restart from steepest descent
                s.removeAll(); y.removeAll(); rho.removeAll()
                for i in 0..<n { d[i] = -g[i] }
                slope = dot(g, d)
            }
            // First step: a unit-length move along −g; afterwards the quasi-Newton step t = 1.
            var t = s.isEmpty ? min(1, 1 / dot(g, g).squareRoot()) : 1
            var fNew = 0.0
            var accepted = false
            for _ in 0..<60 {
                for i in 0..<n { xNew[i] = x[i] + t * d[i] }
                fNew = evaluate(xNew, &gNew)
                if fNew.isFinite && fNew <= f + 1e-4 * t * slope {
                    accepted = true
                    break
                }
                t *= 0.5
            }
            guard accepted else { break }
            var sk = [Double](repeating: 0, count: n), yk = sk
            for i in 0..<n {
                sk[i] = xNew[i] - x[i]
                yk[i] = gNew[i] - g[i]
            }
            let sy = dot(sk, yk)
            if sy > 1e-12 * dot(yk, yk) && sy > 0 {
                if s.count == memory {
                    s.removeFirst(); y.removeFirst(); rho.removeFirst()
                }
                s.append(sk); y.append(yk); rho.append(1 / sy)
            }
            let decrease = f - fNew
            swap(&x, &xNew)
            swap(&g, &gNew)
            f = fNew
            converged = maxAbs(g) <= gradientTolerance
            if decrease <= 64 * Double.ulpOfOne * max(abs(f), abs(f + decrease), 1) {
                converged = true  // no further progress possible in Double (scipy: REL_REDUCTION_OF_F <= FACTR*EPSMCH)
                break
            }
        }
        return Result(x: x, value: f, iterations: iteration, converged: converged)
    }

    private func dot(_ a: [Double], _ b: [Double]) -> Double {
        a.withUnsafeBufferPointer { ap in
            b.withUnsafeBufferPointer { bp in
                var s = 0.0
                for i in 0..<ap.count { s += ap[i] * bp[i] }
                return s
            }
        }
    }

    private func axpy(_ a: Double, _ x: [Double], _ y: inout [Double]) {
        x.withUnsafeBufferPointer { xp in
            y.withUnsafeMutableBufferPointer { yp in
                for i in 0..<xp.count { yp[i] += a * xp[i] }
            }
        }
    }

    private func maxAbs(_ a: [Double]) -> Double { a.reduce(0) { max($0, abs($1)) } }
}
