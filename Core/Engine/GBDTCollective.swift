/// The collective operations distributed GBDT training needs, as an allreduce backend the caller supplies.
///
/// Every participant (rank) calls the same operations in the same order with buffers of the same length —
/// training makes every decision from reduced values only, so the call sequence is identical everywhere.
/// A single process uses `GBDTLocalCollective` (no-ops). An MPI implementation maps `sum` to
/// `MPI_Allreduce(MPI_IN_PLACE, …, MPI_DOUBLE, MPI_SUM)` and `max` to `MPI_MAX`; the values summed are
/// exact (Note [Exact histogram sums]), so the reduction order does not matter.
public protocol GBDTCollective {
    /// Replaces every element by its sum over all participants.
    func sum(_ buffer: UnsafeMutableBufferPointer<Double>)
    /// Replaces every element by its maximum over all participants.
    func max(_ buffer: UnsafeMutableBufferPointer<Double>)
}

/// One process holds all the rows: reductions are the identity.
public struct GBDTLocalCollective: GBDTCollective, Sendable {
    public init() {}
    public func sum(_ buffer: UnsafeMutableBufferPointer<Double>) {}
    public func max(_ buffer: UnsafeMutableBufferPointer<Double>) {}
}

extension GBDTCollective {
    /// Σ over all participants of their `values`, computed exactly (hence independent of how rows are spread
    /// over ranks and of the reduction order): values are snapped to the grid of Note [Exact histogram sums]
    /// for the global count and max magnitude, so the result differs from the real sum by at most N·step/2
    /// (a relative error of about N·2⁻⁵³ for values of similar size).
    func exactSum(_ values: UnsafeBufferPointer<Double>) -> Double {
        var stats = [Double(values.count), GBDTGradientGrid.maxMagnitude(values)]
        stats.withUnsafeMutableBufferPointer { s in
            sum(UnsafeMutableBufferPointer(rebasing: s[0..<1]))
            max(UnsafeMutableBufferPointer(rebasing: s[1..<2]))
        }
        let step = GBDTGradientGrid.step(maxMagnitude: stats[1], totalRows: Int(stats[0]))
        var local = [0.0]
        let inverse = 1 / step
        for v in values { local[0] += (v * inverse).rounded(.toNearestOrEven) * step }
        local.withUnsafeMutableBufferPointer { sum($0) }
        return local[0]
    }

    /// Σ over all participants of one count (exact: integers below 2⁵³).
    func totalCount(_ local: Int) -> Int {
        var v = [Double(local)]
        v.withUnsafeMutableBufferPointer { sum($0) }
        return Int(v[0])
    }
}
