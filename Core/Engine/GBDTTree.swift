/// One regression tree of a boosted ensemble, as a flat node array (root at 0, children after parents).
public struct GBDTTree: Sendable, Equatable {
    public struct Node: Sendable, Equatable {
        /// Leaves: the tree's output for rows reaching it (learning rate applied). Internal nodes: the value
        /// the node would have as a leaf, for inspection.
        public var value: Double
        /// Training rows (all partitions) that reached the node.
        public var count: Int
        /// Split feature, −1 for a leaf.
        public var feature: Int
        /// Non-missing values `x ≤ threshold` go left; `+∞` for the "missing vs the rest" split.
        public var threshold: Double
        /// The same test on binned values: `bin ≤ self.bin` goes left.
        public var bin: Int
        /// Where missing values (NaN) go: learned when training had missing values for the feature, otherwise
        /// the child that received more training rows (scikit-learn's rule).
        public var missingGoesLeft: Bool
        public var left: Int
        public var right: Int
        public var gain: Double

        public var isLeaf: Bool { left < 0 }

        static func leaf(value: Double, count: Int) -> Node {
            Node(value: value, count: count, feature: -1, threshold: 0, bin: 0, missingGoesLeft: false, left: -1,
                 right: -1, gain: 0)
        }
    }

    public var nodes: [Node]

    public init(nodes: [Node]) { self.nodes = nodes }

    public var leafCount: Int { nodes.reduce(0) { $0 + ($1.isLeaf ? 1 : 0) } }

    /// Edges on the longest root-to-leaf path.
    public var depth: Int {
        var deepest = 0
        var stack = [(0, 0)]
        while let (i, d) = stack.popLast() {
            let node = nodes[i]
            if node.isLeaf { deepest = max(deepest, d) } else { stack += [(node.left, d + 1), (node.right, d + 1)] }
        }
        return deepest
    }

    /// The output for one row of raw features.
    @inline(__always)
    func predict(row: UnsafePointer<Float>, nodes: UnsafeBufferPointer<Node>) -> Double {
        var i = 0
        while true {
            let node = nodes[i]
            if node.left < 0 { return node.value }
            let v = row[node.feature]
            let goLeft = v.isNaN ? node.missingGoesLeft : Double(v) <= node.threshold
            i = goLeft ? node.left : node.right
        }
    }

    /// The output for row `row` of binned data (`missingBins[f]` is feature f's missing bin).
    @inline(__always)
    func predictBinned(_ bins: UnsafePointer<UInt8>, rows: Int, row: Int, missingBins: UnsafePointer<Int>,
                       nodes: UnsafeBufferPointer<Node>) -> Double {
        var i = 0
        while true {
            let node = nodes[i]
            if node.left < 0 { return node.value }
            let b = Int(bins[node.feature * rows + row])
            let goLeft = b == missingBins[node.feature] ? node.missingGoesLeft : b <= node.bin
            i = goLeft ? node.left : node.right
        }
    }
}
