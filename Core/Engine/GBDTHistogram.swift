/// Where each feature's bins sit in a flat histogram buffer.
///
/// A histogram is one `[Double]` of `count` values: for feature f and bin b (b ≤ its missing bin) the triple
/// `(Σ gradient, Σ hessian, number of rows)` at `(offsets[f] + b) · 3`. Flat and feature-compact so that one
/// allreduce (MPI_SUM over MPI_DOUBLE) sums a node's histogram over ranks.
public struct GBDTHistogramLayout: Sendable, Equatable {
    /// Values per bin: Σ gradient, Σ hessian, count.
    public static let stride = 3
    /// `offsets[f] ..< offsets[f + 1]` are the bins of feature f (its missing-value bin last).
    public let offsets: [Int]

    public init(binsPerFeature: [Int]) {
        var offsets = [0]
        for b in binsPerFeature { offsets.append(offsets.last! + b) }
        self.offsets = offsets
    }

    public var features: Int { offsets.count - 1 }
    public var totalBins: Int { offsets.last! }
    /// Doubles in one histogram.
    public var count: Int { totalBins * Self.stride }
}

/// Gradient/hessian histograms of a tree node, and the algebra the grower needs on them.
///
/// // Note [Histograms are sums over partitions]
/// The histogram of a node is Σ over its rows of (g, h, 1) placed in each feature's bin: a plain sum over
/// rows, so the histogram of the node over all data is the sum of the histograms over any partition of the
/// rows (ranks, threads, chunks). Split finding (`GBDTSplitFinder`) reads only a summed histogram, and the
/// node totals come out of it too, so a distributed grower is: each rank `accumulate`s over its own rows of
/// the node, one allreduce-sum, the same split on every rank. The sibling of the node whose histogram was
/// built is `parent − built` (`subtract`), which is also a sum over partitions and needs no communication.
///
/// // Note [Exact histogram sums]
/// Floating-point addition is not associative, so a sum over ranks (in whatever order MPI's reduction tree
/// takes) need not equal the single-process sum bit for bit, and a split whose gain ties to the last bit
/// could come out differently. We make every addition exact instead: before a tree is grown, gradients and
/// hessians are snapped to a power-of-two grid (`GBDTGradientGrid`) fine enough that |value / step| ≤ 2⁵²/N
/// for the N rows of all ranks. Every partial sum is then an integer multiple of `step` below 2⁵³·step in
/// magnitude, which a Double holds exactly, so any order of additions (and `parent − sibling`) gives the
/// same bits. The grid is about 2⁻⁵²·N·max|g| (≈ 1e-10 relative for a million rows): far finer than the
/// float32 gradients scikit-learn and LightGBM use. The grid needs the global max |g| and N: one small
/// allreduce-max per tree, done by the model through `GBDTCollective`.
public enum GBDTHistogram {
    /// Adds `(gradients[i], hessians[i], 1)` of every row `i` in `rows` into `histogram` (which is not cleared
    /// first). `gradients` and `hessians` are indexed by row id; `rows == nil` means all rows in order.
    public static func accumulate(_ data: GBDTBinnedData, layout: GBDTHistogramLayout,
                                  rows: UnsafeBufferPointer<Int32>?,
                                  gradients: UnsafePointer<Double>, hessians: UnsafePointer<Double>,
                                  into histogram: UnsafeMutablePointer<Double>) {
        precondition(layout.features == data.features, "GBDTHistogram: layout for \(layout.features) features, data has \(data.features)")
        let n = data.rows
        let m = rows?.count ?? n
        guard m > 0 else { return }
        // Gather gradients and hessians once into row order ("ordered gradients"), then one pass per feature.
        let ordered = UnsafeMutablePointer<Double>.allocate(capacity: 2 * m)
        defer { ordered.deallocate() }
        let og = ordered, oh = ordered + m
        if let rows {
            for k in 0..<m {
                let i = Int(rows[k])
                og[k] = gradients[i]
                oh[k] = hessians[i]
            }
        } else {
            og.update(from: gradients, count: m)
            oh.update(from: hessians, count: m)
        }
        data.bins.withUnsafeBufferPointer { binsBuffer in
            layout.offsets.withUnsafeBufferPointer { offsets in
                for f in 0..<data.features {
                    let column = binsBuffer.baseAddress! + f * n
                    let h = histogram + offsets[f] * GBDTHistogramLayout.stride
                    if let rows {
                        // Bins first, then the adds: the loads of the next rows do not wait on the stores.
                        var k = 0
                        while k &+ 4 <= m {
                            let b0 = Int(column[Int(rows[k])]) &* 3, b1 = Int(column[Int(rows[k &+ 1])]) &* 3
                            let b2 = Int(column[Int(rows[k &+ 2])]) &* 3, b3 = Int(column[Int(rows[k &+ 3])]) &* 3
                            add(h, b0, og[k], oh[k])
                            add(h, b1, og[k &+ 1], oh[k &+ 1])
                            add(h, b2, og[k &+ 2], oh[k &+ 2])
                            add(h, b3, og[k &+ 3], oh[k &+ 3])
                            k &+= 4
                        }
                        while k < m {
                            add(h, Int(column[Int(rows[k])]) &* 3, og[k], oh[k])
                            k &+= 1
                        }
                    } else {
                        var k = 0
                        while k &+ 4 <= m {
                            let b0 = Int(column[k]) &* 3, b1 = Int(column[k &+ 1]) &* 3
                            let b2 = Int(column[k &+ 2]) &* 3, b3 = Int(column[k &+ 3]) &* 3
                            add(h, b0, og[k], oh[k])
                            add(h, b1, og[k &+ 1], oh[k &+ 1])
                            add(h, b2, og[k &+ 2], oh[k &+ 2])
                            add(h, b3, og[k &+ 3], oh[k &+ 3])
                            k &+= 4
                        }
                        while k < m {
                            add(h, Int(column[k]) &* 3, og[k], oh[k])
                            k &+= 1
                        }
                    }
                }
            }
        }
    }

    @inline(__always)
    private static func add(_ h: UnsafeMutablePointer<Double>, _ b: Int, _ g: Double, _ hess: Double) {
        h[b] += g
        h[b &+ 1] += hess
        h[b &+ 2] += 1
    }

    /// The histogram of `rows` (all rows when nil) as a new buffer: `accumulate` into zeros.
    public static func build(_ data: GBDTBinnedData, layout: GBDTHistogramLayout, rows: [Int32]?,
                             gradients: [Double], hessians: [Double]) -> [Double] {
        precondition(gradients.count == data.rows && hessians.count == data.rows,
                     "GBDTHistogram.build: \(gradients.count) gradients, \(hessians.count) hessians for \(data.rows) rows")
        var out = [Double](repeating: 0, count: layout.count)
        gradients.withUnsafeBufferPointer { g in
            hessians.withUnsafeBufferPointer { h in
                out.withUnsafeMutableBufferPointer { o in
                    if let rows {
                        rows.withUnsafeBufferPointer {
                            accumulate(data, layout: layout, rows: $0, gradients: g.baseAddress!, hessians: h.baseAddress!,
                                       into: o.baseAddress!)
                        }
                    } else {
                        accumulate(data, layout: layout, rows: nil, gradients: g.baseAddress!, hessians: h.baseAddress!,
                                   into: o.baseAddress!)
                    }
                }
            }
        }
        return out
    }

    /// `out = parent − sibling`, element-wise (the histogram subtraction trick).
    public static func subtract(_ parent: UnsafePointer<Double>, _ sibling: UnsafePointer<Double>,
                                into out: UnsafeMutablePointer<Double>, count: Int) {
        for i in 0..<count { out[i] = parent[i] - sibling[i] }
    }

    /// `total += part`, element-wise (what an allreduce-sum does across ranks).
    public static func add(_ part: UnsafePointer<Double>, into total: UnsafeMutablePointer<Double>, count: Int) {
        for i in 0..<count { total[i] += part[i] }
    }
}

/// The power-of-two grid of Note [Exact histogram sums].
public enum GBDTGradientGrid {
    /// The smallest power of two `step` with `maxMagnitude · totalRows ≤ 2⁵² · step`; 1 when everything is 0.
    public static func step(maxMagnitude: Double, totalRows: Int) -> Double {
        precondition(maxMagnitude.isFinite, "GBDTGradientGrid: non-finite gradient magnitude \(maxMagnitude)")
        let bound = maxMagnitude * Double(max(totalRows, 1))
        guard bound > 0 else { return 1 }
        // 2^(e+1) > bound ≥ 2^e where e = bound.exponent; step = 2^(e + 1 − 52) ≥ bound / 2⁵².
        return Double(sign: .plus, exponent: bound.exponent + 1 - 52, significand: 1)
    }

    /// Rounds every value to the nearest multiple of `step` (a power of two: the division and the
    /// multiplication are exact, only the rounding changes the value, by at most step / 2).
    public static func snap(_ values: UnsafeMutableBufferPointer<Double>, step: Double) {
        let inverse = 1 / step
        for i in 0..<values.count { values[i] = (values[i] * inverse).rounded(.toNearestOrEven) * step }
    }

    /// max |value|.
    public static func maxMagnitude(_ values: UnsafeBufferPointer<Double>) -> Double {
        var m = 0.0
        for v in values { m = max(m, abs(v)) }
        return m
    }
}
