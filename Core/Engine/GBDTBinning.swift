/// Maps raw feature values to small integer bins, as scikit-learn's `_BinMapper` does.
///
/// Feature f has `thresholds[f]` (increasing) and `thresholds[f].count + 1` bins for non-missing values;
/// a value x goes to bin #{t ∈ thresholds[f] : t < x}, so `bin ≤ b ⇔ x ≤ thresholds[f][b]` and a split "bin ≤ b"
/// is the split "x ≤ thresholds[f][b]" on raw values. NaN is missing and goes to the extra bin
/// `nonMissingBins(f)` (one past the last non-missing bin). At most 255 non-missing bins: bins fit a `UInt8`.
///
/// Thresholds: with at most `maxBins` distinct non-missing values, the midpoints between consecutive distinct
/// values; otherwise the `maxBins − 1` inner percentiles at 100·k/maxBins with numpy's "midpoint"
/// method, reproduced to the bit (duplicates kept, as scikit-learn does). Above `subsample` rows the thresholds come from a
/// seeded random subsample of that many rows.
///
/// // Note [Distributed bin edges]
/// Every rank must bin with the same thresholds, or the bins of one rank's histogram would not line up with
/// another's and summing them would be meaningless. Thresholds are not a sum over partitions (quantiles
/// are not mergeable exactly), so a distributed fit takes them as an input: rank 0 fits a mapper on a sample
/// (its own rows, or a sample gathered from all ranks — at most `subsample` rows, as here), broadcasts
/// `encoded` (a flat `[Double]`, one `MPI_Bcast`), and every rank rebuilds it with `init(encoded:)` and
/// passes it to `GBDTModel.fit…(binMapper:)`. Identical edges then make every later step a sum over ranks.
public struct GBDTBinMapper: Sendable, Equatable {
    /// The most non-missing bins a feature can have (bins are `UInt8`, one value is the missing bin).
    public static let maxSupportedBins = 255

    public let thresholds: [[Double]]
    /// Where each feature's bins start in a flat histogram.
    public let layout: GBDTHistogramLayout

    public init(thresholds: [[Double]]) {
        precondition(thresholds.allSatisfy { $0.count < Self.maxSupportedBins },
                     "GBDTBinMapper: at most \(Self.maxSupportedBins) non-missing bins per feature")
        self.thresholds = thresholds
        self.layout = GBDTHistogramLayout(binsPerFeature: thresholds.map { $0.count + 2 })
    }

    public var features: Int { thresholds.count }
    /// Bins used by non-missing values of feature f (bins 0 ..< this).
    public func nonMissingBins(_ f: Int) -> Int { thresholds[f].count + 1 }
    /// The bin of missing values (NaN) of feature f.
    public func missingBin(_ f: Int) -> Int { thresholds[f].count + 1 }

    /// Thresholds for each column of `x` (`[n, features]`); NaN entries are ignored.
    public static func fit(_ x: Tensor, maxBins: Int = 255, subsample: Int = 200_000, seed: UInt64 = 0) -> GBDTBinMapper {
        precondition(x.rank == 2, "GBDTBinMapper.fit needs [n, features], got \(x.shape)")
        precondition(maxBins >= 2 && maxBins <= maxSupportedBins, "GBDTBinMapper: maxBins must be in 2...\(maxSupportedBins)")
        let n = x.rows, d = x.columns
        var rows = Array(0..<n)
        if n > subsample {
            var rng = SeededGenerator(seed: seed)
            for i in 0..<subsample { rows.swapAt(i, i + Int(rng.next() % UInt64(n - i))) }
            rows.removeLast(n - subsample)
        }
        var column = [Double]()
        column.reserveCapacity(rows.count)
        var all: [[Double]] = []
        x.storage.withUnsafeBufferPointer { xs in
            for f in 0..<d {
                column.removeAll(keepingCapacity: true)
                for i in rows {
                    let v = xs[i * d + f]
                    if !v.isNaN { column.append(Double(v)) }
                }
                all.append(thresholds(of: &column, maxBins: maxBins))
            }
        }
        return GBDTBinMapper(thresholds: all)
    }

    /// The thresholds of one feature from its non-missing values (sorted in place).
    public static func thresholds(of values: inout [Double], maxBins: Int = 255) -> [Double] {
        values.sort()
        var distinct: [Double] = []
        for v in values where distinct.last != v { distinct.append(v) }
        var out: [Double] = []
        if distinct.count <= maxBins {
            for i in 0..<max(0, distinct.count - 1) { out.append((distinct[i] + distinct[i + 1]) * 0.5) }
        } else {
            // numpy.percentile(values, numpy.linspace(0, 100, maxBins + 1)[1:-1], method="midpoint"), evaluated
            // the way numpy does (same floating-point steps, so the same bits): position (n−1)·q, the value
            // there when it is whole, else the upper neighbour minus half the gap (numpy's `_lerp` at t = ½).
            let n = values.count
            let step = 100.0 / Double(maxBins)
            for k in 1..<maxBins {
                let position = Double(n - 1) * ((Double(k) * step) / 100)
                let lo = Int(position.rounded(.down)), hi = Int(position.rounded(.up))
                out.append(lo == hi ? values[lo] : values[hi] - (values[hi] - values[lo]) * 0.5)
            }
        }
        // +inf thresholds are reserved for the "all non-missing vs missing" split (scikit-learn's ALMOST_INF).
        return out.map { min($0, 1e300) }
    }

    /// Bins every value of `x` (`[n, features]`).
    public func bin(_ x: Tensor) -> GBDTBinnedData {
        precondition(x.rank == 2 && x.columns == features, "GBDTBinMapper.bin: expected [n, \(features)], got \(x.shape)")
        let n = x.rows, d = features
        var bins = [UInt8](repeating: 0, count: n * d)
        x.storage.withUnsafeBufferPointer { xs in
            bins.withUnsafeMutableBufferPointer { out in
                for f in 0..<d {
                    thresholds[f].withUnsafeBufferPointer { t in
                        let missing = UInt8(t.count + 1)
                        let column = out.baseAddress! + f * n
                        for i in 0..<n {
                            let v = xs[i * d + f]
                            column[i] = v.isNaN ? missing : UInt8(Self.binIndex(Double(v), t))
                        }
                    }
                }
            }
        }
        return GBDTBinnedData(rows: n, features: d, bins: bins)
    }

    /// #{t : t < value} by binary search.
    @inline(__always)
    static func binIndex(_ value: Double, _ t: UnsafeBufferPointer<Double>) -> Int {
        var lo = 0, hi = t.count
        while lo < hi {
            let mid = (lo + hi) >> 1
            if value <= t[mid] { hi = mid } else { lo = mid + 1 }
        }
        return lo
    }

    /// A flat encoding for broadcasting: `[features, count₀, thresholds₀…, count₁, thresholds₁…, …]`.
    public var encoded: [Double] {
        var out = [Double(features)]
        for t in thresholds {
            out.append(Double(t.count))
            out.append(contentsOf: t)
        }
        return out
    }

    public init(encoded: [Double]) {
        precondition(!encoded.isEmpty, "GBDTBinMapper(encoded:) needs at least the feature count")
        var thresholds: [[Double]] = []
        var i = 1
        for _ in 0..<Int(encoded[0]) {
            let count = Int(encoded[i])
            thresholds.append(Array(encoded[(i + 1)..<(i + 1 + count)]))
            i += 1 + count
        }
        precondition(i == encoded.count, "GBDTBinMapper(encoded:): \(encoded.count - i) trailing values")
        self.init(thresholds: thresholds)
    }
}

/// Binned features, feature-major (`bins[f * rows + i]`) so a histogram pass reads one column at a time.
public struct GBDTBinnedData: Sendable, Equatable {
    public let rows: Int
    public let features: Int
    public var bins: [UInt8]

    public init(rows: Int, features: Int, bins: [UInt8]) {
        precondition(bins.count == rows * features, "GBDTBinnedData: \(bins.count) bins for \(rows)×\(features)")
        self.rows = rows
        self.features = features
        self.bins = bins
    }

    /// The rows `indices`, in that order.
    public func gatherRows(_ indices: [Int]) -> GBDTBinnedData {
        var out = [UInt8](repeating: 0, count: indices.count * features)
        bins.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for f in 0..<features {
                    let s = src.baseAddress! + f * rows, t = dst.baseAddress! + f * indices.count
                    for (k, i) in indices.enumerated() { t[k] = s[i] }
                }
            }
        }
        return GBDTBinnedData(rows: indices.count, features: features, bins: out)
    }
}
