/// Grows one tree leaf-wise (best-first) from gradients and hessians, like scikit-learn's `TreeGrower`:
/// the splittable leaf with the largest gain is split next, until `maxLeafNodes` leaves, `maxDepth`, or no
/// leaf can be split.
///
/// The grower holds this participant's rows only. Every decision reads reduced values (histograms summed
/// with `collective`, totals taken from them), so all participants grow the same tree and make the same
/// sequence of collective calls; see Note [Histograms are sums over partitions]. Per split, one histogram
/// is built and reduced: the smaller child's (by global row count), the larger one is `parent − smaller`.
struct GBDTGrower {
    let data: GBDTBinnedData
    let mapper: GBDTBinMapper
    let constraints: GBDTSplitConstraints
    let maxLeafNodes: Int?
    let maxDepth: Int?
    let learningRate: Double

    /// Row ids, grouped by node: every node owns the contiguous range `start ..< stop`.
    private(set) var partition: [Int32]
    private var scratch: [Int32]

    /// A leaf's rows in `partition` and its output, for updating predictions after `grow`.
    struct Leaf {
        var start: Int
        var stop: Int
        var value: Double
    }

    private struct Work {
        var node: Int  // index into the tree's nodes
        var start: Int
        var stop: Int
        var gradient: Double
        var hessian: Double
        var count: Int
        var depth: Int
        var histogram: [Double]
        var split: GBDTSplit?
    }

    init(data: GBDTBinnedData, mapper: GBDTBinMapper, constraints: GBDTSplitConstraints, maxLeafNodes: Int?,
         maxDepth: Int?, learningRate: Double) {
        precondition(data.features == mapper.features && data.features > 0, "GBDTGrower: features do not agree")
        precondition(data.rows < Int(Int32.max), "GBDTGrower: row ids are Int32; shard larger data over ranks")
        self.data = data
        self.mapper = mapper
        self.constraints = constraints
        self.maxLeafNodes = maxLeafNodes
        self.maxDepth = maxDepth
        self.learningRate = learningRate
        partition = (0..<Int32(data.rows)).map { $0 }
        scratch = partition
    }

    /// Grows a tree for `gradients`/`hessians` (indexed by local row id, already on the grid of
    /// Note [Exact histogram sums]) and returns it with its leaves' row ranges.
    mutating func grow(gradients: UnsafePointer<Double>, hessians: UnsafePointer<Double>,
                       collective: some GBDTCollective) -> (tree: GBDTTree, leaves: [Leaf]) {
        let layout = mapper.layout
        for i in 0..<partition.count { partition[i] = Int32(i) }
        var nodes: [GBDTTree.Node] = []
        var leaves: [Leaf] = []
        var splittable: [Work] = []

        func finalize(_ w: Work) {
            nodes[w.node].value *= learningRate
            leaves.append(Leaf(start: w.start, stop: w.stop, value: nodes[w.node].value))
        }

        // Root: its histogram over all rows gives the totals and, from the missing bins, which features have
        // missing values anywhere in the training data.
        var rootHistogram = [Double](repeating: 0, count: layout.count)
        rootHistogram.withUnsafeMutableBufferPointer { h in
            GBDTHistogram.accumulate(data, layout: layout, rows: nil, gradients: gradients, hessians: hessians,
                                     into: h.baseAddress!)
            collective.sum(h)
        }
        var g = 0.0, hs = 0.0, c = 0.0
        for b in 0..<(layout.offsets[1]) {
            g += rootHistogram[3 * b]
            hs += rootHistogram[3 * b + 1]
            c += rootHistogram[3 * b + 2]
        }
        let hasMissing = (0..<mapper.features).map { f in
            rootHistogram[(layout.offsets[f] + mapper.missingBin(f)) * 3 + 2] > 0
        }
        let l2 = constraints.l2Regularization
        nodes.append(.leaf(value: GBDTSplitFinder.nodeValue(gradient: g, hessian: hs, l2: l2), count: Int(c)))
        var root = Work(node: 0, start: 0, stop: data.rows, gradient: g, hessian: hs, count: Int(c), depth: 0,
                        histogram: rootHistogram, split: nil)
        rootHistogram = []

        func findSplit(_ w: inout Work) -> Bool {
            w.split = w.histogram.withUnsafeBufferPointer {
                GBDTSplitFinder.bestSplit(histogram: $0, mapper: mapper, hasMissing: hasMissing, gradient: w.gradient,
                                          hessian: w.hessian, count: w.count, constraints: constraints)
            }
            return w.split != nil
        }

        if root.count < 2 * constraints.minSamplesLeaf || root.hessian < constraints.minHessianToSplit
            || maxLeafNodes.map({ $0 < 2 }) == true || maxDepth == 0 || !findSplit(&root) {
            finalize(root)
        } else {
            splittable.append(root)
        }

        while !splittable.isEmpty {
            // Largest gain first; ties go to the node created first.
            var pick = 0
            for i in 1..<splittable.count {
                let a = splittable[i], b = splittable[pick]
                if a.split!.gain > b.split!.gain || (a.split!.gain == b.split!.gain && a.node < b.node) { pick = i }
            }
            let parent = splittable.remove(at: pick)
            let split = parent.split!
            let mid = partitionRows(parent.start, parent.stop, split)
            let depth = parent.depth + 1
            let leftIndex = nodes.count, rightIndex = nodes.count + 1
            nodes.append(.leaf(value: GBDTSplitFinder.nodeValue(gradient: split.gradientLeft, hessian: split.hessianLeft, l2: l2),
                               count: split.countLeft))
            nodes.append(.leaf(value: GBDTSplitFinder.nodeValue(gradient: split.gradientRight, hessian: split.hessianRight, l2: l2),
                               count: split.countRight))
            let thresholds = mapper.thresholds[split.feature]
            nodes[parent.node].feature = split.feature
            nodes[parent.node].bin = split.bin
            nodes[parent.node].threshold = split.bin < thresholds.count ? thresholds[split.bin] : .infinity
            nodes[parent.node].missingGoesLeft = hasMissing[split.feature] ? split.missingGoesLeft
                                                                          : split.countLeft > split.countRight
            nodes[parent.node].left = leftIndex
            nodes[parent.node].right = rightIndex
            nodes[parent.node].gain = split.gain
            nodes[parent.node].value *= learningRate

            var left = Work(node: leftIndex, start: parent.start, stop: mid, gradient: split.gradientLeft,
                            hessian: split.hessianLeft, count: split.countLeft, depth: depth, histogram: [], split: nil)
            var right = Work(node: rightIndex, start: mid, stop: parent.stop, gradient: split.gradientRight,
                             hessian: split.hessianRight, count: split.countRight, depth: depth, histogram: [], split: nil)

            let leafCount = leaves.count + splittable.count + 2
            if let maxLeafNodes, leafCount >= maxLeafNodes {
                finalize(left)
                finalize(right)
                for w in splittable { finalize(w) }
                splittable.removeAll()
                break
            }
            if let maxDepth, depth >= maxDepth {
                finalize(left)
                finalize(right)
                continue
            }
            let splitLeft = left.count >= 2 * constraints.minSamplesLeaf
            let splitRight = right.count >= 2 * constraints.minSamplesLeaf
            if splitLeft || splitRight {
                let leftIsSmaller = left.count < right.count
                var small = [Double](repeating: 0, count: layout.count)
                let range = leftIsSmaller ? (left.start, left.stop) : (right.start, right.stop)
                small.withUnsafeMutableBufferPointer { h in
                    partition.withUnsafeBufferPointer { p in
                        GBDTHistogram.accumulate(data, layout: layout,
                                                 rows: UnsafeBufferPointer(rebasing: p[range.0..<range.1]),
                                                 gradients: gradients, hessians: hessians, into: h.baseAddress!)
                    }
                    collective.sum(h)
                }
                var large = [Double](repeating: 0, count: layout.count)
                parent.histogram.withUnsafeBufferPointer { ph in
                    small.withUnsafeBufferPointer { sh in
                        large.withUnsafeMutableBufferPointer { lh in
                            GBDTHistogram.subtract(ph.baseAddress!, sh.baseAddress!, into: lh.baseAddress!, count: layout.count)
                        }
                    }
                }
                left.histogram = leftIsSmaller ? small : large
                right.histogram = leftIsSmaller ? large : small
            }
            if splitLeft && findSplit(&left) { splittable.append(left) } else { left.histogram = []; finalize(left) }
            if splitRight && findSplit(&right) { splittable.append(right) } else { right.histogram = []; finalize(right) }
        }
        return (GBDTTree(nodes: nodes), leaves)
    }

    /// Stable partition of `partition[start ..< stop]` into the rows going left, then right; returns the
    /// first right position.
    private mutating func partitionRows(_ start: Int, _ stop: Int, _ split: GBDTSplit) -> Int {
        let n = data.rows
        let missingBin = mapper.missingBin(split.feature)
        let threshold = split.bin, missingLeft = split.missingGoesLeft
        return data.bins.withUnsafeBufferPointer { bins in
            partition.withUnsafeMutableBufferPointer { p in
                scratch.withUnsafeMutableBufferPointer { s in
                    let column = bins.baseAddress! + split.feature * n
                    var l = start, r = 0
                    for k in start..<stop {
                        let row = p[k]
                        let b = Int(column[Int(row)])
                        let goLeft = b == missingBin ? missingLeft : b <= threshold
                        if goLeft {
                            p[l] = row
                            l += 1
                        } else {
                            s[r] = row
                            r += 1
                        }
                    }
                    (p.baseAddress! + l).update(from: s.baseAddress!, count: r)
                    return l
                }
            }
        }
    }
}
