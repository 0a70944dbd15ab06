/// A candidate split of a node: rows with `bin ≤ bin` go left, missing values go left iff `missingGoesLeft`.
public struct GBDTSplit: Sendable, Equatable {
    /// Decrease of the second-order loss approximation (scikit-learn's `_split_gain`).
    public var gain: Double
    public var feature: Int
    public var bin: Int
    public var missingGoesLeft: Bool
    public var gradientLeft: Double
    public var hessianLeft: Double
    public var countLeft: Int
    public var gradientRight: Double
    public var hessianRight: Double
    public var countRight: Int
}

/// Limits on splits (scikit-learn's `HistGradientBoosting*` names in brackets).
public struct GBDTSplitConstraints: Sendable, Equatable {
    /// Rows each child must keep [`min_samples_leaf`].
    public var minSamplesLeaf = 20
    /// Σ hessian each child must keep [`min_hessian_to_split`, fixed at 1e-3 there].
    public var minHessianToSplit = 1e-3
    /// L2 penalty on leaf values [`l2_regularization`].
    public var l2Regularization = 0.0
    /// A split must gain strictly more than this [`min_gain_to_split`, 0].
    public var minGainToSplit = 0.0
    public init() {}
}

/// Finds the best split of a node from its (summed) histogram alone.
public enum GBDTSplitFinder {
    /// Newton value of a node: −G / (H + λ), with scikit-learn's 1e-15 guard.
    @inline(__always)
    public static func nodeValue(gradient: Double, hessian: Double, l2: Double) -> Double {
        -gradient / (hessian + l2 + 1e-15)
    }

    /// The best split over all features, or nil when no split satisfies the constraints with positive gain.
    ///
    /// For each feature (in order; a later feature wins only with a strictly larger gain): a left-to-right
    /// scan with missing values sent right — which, when the feature has missing values, includes "every
    /// non-missing bin left, missing right" — and, when the feature has missing values, a right-to-left scan
    /// with missing values sent left. This is scikit-learn's `Splitter.find_node_split` for numerical
    /// features, including its tie-breaking. Gains are G·v − G_L·v_L − G_R·v_R with v the Newton values.
    ///
    /// - Parameters:
    ///   - histogram: the node's histogram (`layout.count` values), summed over all partitions.
    ///   - hasMissing: per feature, whether the training data has missing values (from the root histogram).
    ///   - gradient, hessian, count: the node totals (all partitions).
    public static func bestSplit(histogram: UnsafeBufferPointer<Double>, mapper: GBDTBinMapper, hasMissing: [Bool],
                                 gradient: Double, hessian: Double, count: Int,
                                 constraints: GBDTSplitConstraints) -> GBDTSplit? {
        let layout = mapper.layout
        precondition(histogram.count == layout.count, "GBDTSplitFinder: histogram of \(histogram.count) values, layout needs \(layout.count)")
        let l2 = constraints.l2Regularization
        let minLeaf = Double(constraints.minSamplesLeaf)
        let minHessian = constraints.minHessianToSplit
        let nodeLoss = gradient * nodeValue(gradient: gradient, hessian: hessian, l2: l2)
        let total = Double(count)

        @inline(__always) func gainOf(_ gl: Double, _ hl: Double, _ gr: Double, _ hr: Double) -> Double {
            nodeLoss - gl * nodeValue(gradient: gl, hessian: hl, l2: l2) - gr * nodeValue(gradient: gr, hessian: hr, l2: l2)
        }

        var best: GBDTSplit?
        var bestGain = -1.0  // across features: a feature's best must beat the previous features' best
        let h = histogram.baseAddress!
        for f in 0..<layout.features {
            let bins = h + layout.offsets[f] * GBDTHistogramLayout.stride
            let nonMissing = mapper.nonMissingBins(f)
            let missing = hasMissing[f]
            var featureBest = -1.0
            var found: (bin: Int, left: Bool, gl: Double, hl: Double, cl: Double)?

            // Left to right, missing values to the right.
            var gl = 0.0, hl = 0.0, cl = 0.0
            let end = nonMissing - 1 + (missing ? 1 : 0)
            var b = 0
            while b < end {
                gl += bins[3 * b]
                hl += bins[3 * b + 1]
                cl += bins[3 * b + 2]
                b += 1
                let cr = total - cl, hr = hessian - hl
                if cl < minLeaf || hl < minHessian { continue }
                if cr < minLeaf || hr < minHessian { break }
                let g = gainOf(gl, hl, gradient - gl, hr)
                if g > featureBest && g > constraints.minGainToSplit {
                    featureBest = g
                    found = (b - 1, false, gl, hl, cl)
                }
            }
            // Right to left, missing values to the left.
            if missing {
                var gr = 0.0, hr = 0.0, cr = 0.0
                var b = nonMissing - 2
                while b >= 0 {
                    gr += bins[3 * (b + 1)]
                    hr += bins[3 * (b + 1) + 1]
                    cr += bins[3 * (b + 1) + 2]
                    let cl = total - cr, hl = hessian - hr
                    if cr < minLeaf || hr < minHessian {
                        b -= 1
                        continue
                    }
                    if cl < minLeaf || hl < minHessian { break }
                    let g = gainOf(gradient - gr, hl, gr, hr)
                    if g > featureBest && g > constraints.minGainToSplit {
                        featureBest = g
                        found = (b, true, gradient - gr, hl, cl)
                    }
                    b -= 1
                }
            }
            if let found, featureBest > bestGain {
                bestGain = featureBest
                best = GBDTSplit(gain: featureBest, feature: f, bin: found.bin, missingGoesLeft: found.left,
                                 gradientLeft: found.gl, hessianLeft: found.hl, countLeft: Int(found.cl),
                                 gradientRight: gradient - found.gl, hessianRight: hessian - found.hl,
                                 countRight: count - Int(found.cl))
            }
        }
        return best
    }
}
