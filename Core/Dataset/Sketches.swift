#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NebulaEngine

// Note [Profile sketches]
// ~~~~~~~~~~~~~~~~~~~~~~~
// The profile is computed in the ingest pass itself, chunk by chunk, and every per-chunk summary is
// mergeable so that chunks parsed on different threads combine in file order at commit:
// * Moments: count, mean and M2 per chunk by two passes over the chunk's parsed values (stable, and
//   vectorisable), combined with Chan et al.'s parallel update of Welford's recurrence.
// * Distinct: an exact table of 64-bit keys (the value's bit pattern, or a 64-bit string hash) with
//   counts, up to `exactDistinctLimit` keys; past that a HyperLogLog with 2^14 one-byte registers
//   (Flajolet et al. 2007 with linear counting for small cardinalities; relative standard error
//   1.04/sqrt(16384) = 0.81%). Exact tables that overflow are replayed into the HLL, so the estimate
//   never depends on the order of chunks.
// * Quantiles: exact (numpy's linear interpolation) while a column has at most `exactQuantileLimit`
//   values. Beyond that a KLL-style sketch (Karnin, Lang, Liberty 2016) with equal-capacity
//   compactors of k = 4096 items and random-offset halving, fed by a systematic sample of one value
//   in 2^s per chunk (random start), s chosen from the row estimate so that 2^15..2^16 values per
//   column reach the sketch. Sampling dominates the error: the rank error of a quartile has standard
//   deviation sqrt(q(1-q)/m) for m sampled values, at most 0.28% of the rows (m = 2^15); compaction
//   adds about 1/k. On the 12M-row benchmark file the quartiles of seven columns were off by
//   0.03%-0.33% in rank from the exact ones. The tests check the sketch against exact quartiles
//   within 1% in rank. (More samples cost sorting time: at 2^18 samples per column the sketch's
//   sorts were ~7% of ingest CPU.)
// * Top values: categorical codes are counted exactly (the dictionary is bounded). Text values are
//   counted exactly up to `exactDistinctLimit` distinct values, then by Misra-Gries with 1024
//   counters, whose counts underestimate by at most (values seen)/1025.

@inline(__always)
func mix64(_ x0: UInt64) -> UInt64 {
    var x = x0 &+ 0x9E37_79B9_7F4A_7C15
    x = (x ^ (x >> 30)) &* 0xBF58_476D_1CE4_E5B9
    x = (x ^ (x >> 27)) &* 0x94D0_49BB_1331_11EB
    return x ^ (x >> 31)
}

/// A 64-bit hash of a byte string (multiply-mix over 8-byte words).
@inline(__always)
func hashBytes(_ p: UnsafePointer<UInt8>, _ n: Int) -> UInt64 {
    var h: UInt64 = 0x243F_6A88_85A3_08D3 ^ UInt64(n) &* 0x9E37_79B9_7F4A_7C15
    var i = 0
    let raw = UnsafeRawPointer(p)
    while i + 8 <= n {
        let w = raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)
        h = (h ^ mix64(w)) &* 0x9FB2_1C65_1E98_DF25
        i += 8
    }
    if i < n {
        var w: UInt64 = 0
        var shift: UInt64 = 0
        while i < n {
            w |= UInt64(p[i]) << shift
            shift += 8
            i += 1
        }
        h = (h ^ mix64(w)) &* 0x9FB2_1C65_1E98_DF25
    }
    return mix64(h)
}

/// Key of a numeric value for distinct counting: the Double's bits with -0 folded onto +0.
@inline(__always)
func numericKey(_ v: Double) -> UInt64 { v == 0 ? 0 : v.bitPattern }

/// Count, mean, M2 (sum of squared deviations), min, max.
struct Moments: Sendable {
    var count = 0
    var mean = 0.0
    var m2 = 0.0
    var min = Double.infinity
    var max = -Double.infinity

    /// Two passes over `values` where `valid` (if given) is non-zero.
    static func of(_ values: UnsafePointer<Double>, count n: Int, valid: UnsafePointer<UInt8>?) -> Moments {
        var m = Moments()
        if n == 0 { return m }
        var sum = 0.0
        var lo = Double.infinity
        var hi = -Double.infinity
        var c = 0
        if let valid {
            for i in 0..<n where valid[i] != 0 {
                let v = values[i]
                sum += v
                lo = Swift.min(lo, v)
                hi = Swift.max(hi, v)
                c += 1
            }
        } else {
            for i in 0..<n {
                let v = values[i]
                sum += v
                lo = Swift.min(lo, v)
                hi = Swift.max(hi, v)
            }
            c = n
        }
        if c == 0 { return m }
        let mean = sum / Double(c)
        var m2 = 0.0
        if let valid {
            for i in 0..<n where valid[i] != 0 {
                let d = values[i] - mean
                m2 += d * d
            }
        } else {
            for i in 0..<n {
                let d = values[i] - mean
                m2 += d * d
            }
        }
        m.count = c
        m.mean = mean
        m.m2 = m2
        m.min = lo
        m.max = hi
        return m
    }

    mutating func merge(_ o: Moments) {
        if o.count == 0 { return }
        if count == 0 {
            self = o
            return
        }
        let n = count + o.count
        let delta = o.mean - mean
        mean += delta * Double(o.count) / Double(n)
        m2 += o.m2 + delta * delta * Double(count) * Double(o.count) / Double(n)
        count = n
        min = Swift.min(min, o.min)
        max = Swift.max(max, o.max)
    }

    /// Sample standard deviation (ddof = 1), as pandas' describe.
    var sampleStd: Double? { count > 1 ? (m2 / Double(count - 1)).squareRoot() : nil }
}

/// HyperLogLog with 2^14 registers.
struct HyperLogLog: Sendable {
    static let precision = 14
    static let registerCount = 1 << precision
    var registers: [UInt8]

    init() { registers = [UInt8](repeating: 0, count: Self.registerCount) }

    @inline(__always)
    mutating func add(hash: UInt64) {
        let index = Int(hash >> UInt64(64 - Self.precision))
        let rest = (hash << UInt64(Self.precision)) | (1 << UInt64(Self.precision - 1))
        let rank = UInt8(rest.leadingZeroBitCount + 1)
        registers.withUnsafeMutableBufferPointer { r in
            if r[index] < rank { r[index] = rank }
        }
    }

    /// Adds mix64(key) of each key (the batch form keeps the register access out of the loop).
    mutating func add(mixing keys: UnsafePointer<UInt64>, count n: Int) {
        let shift = UInt64(64 - Self.precision)
        let low = UInt64(Self.precision)
        registers.withUnsafeMutableBufferPointer { r in
            let base = r.baseAddress!
            for i in 0..<n {
                let hash = mix64(keys[i])
                let index = Int(hash >> shift)
                let rank = UInt8(((hash << low) | (1 << (low - 1))).leadingZeroBitCount + 1)
                if base[index] < rank { base[index] = rank }
            }
        }
    }

    mutating func merge(_ o: HyperLogLog) {
        registers.withUnsafeMutableBufferPointer { r in
            o.registers.withUnsafeBufferPointer { s in
                for i in 0..<Self.registerCount where s[i] > r[i] { r[i] = s[i] }
            }
        }
    }

    var estimate: Double {
        let m = Double(Self.registerCount)
        var sum = 0.0
        var zeros = 0
        for r in registers {
            sum += 1 / Double(UInt64(1) << UInt64(r))
            if r == 0 { zeros += 1 }
        }
        let alpha = 0.7213 / (1 + 1.079 / m)
        let raw = alpha * m * m / sum
        if raw <= 2.5 * m, zeros > 0 { return m * log(m / Double(zeros)) }
        return raw
    }
}

/// Open-addressing table of 64-bit keys with counts; `payload` indexes a side table (strings).
struct ExactCounts: Sendable {
    private(set) var keys: [UInt64]
    private(set) var counts: [Int]
    private(set) var used: [Bool]
    private(set) var count = 0
    private var mask: Int

    init(capacity: Int = 64) {
        var c = 16
        while c < capacity * 2 { c <<= 1 }
        keys = [UInt64](repeating: 0, count: c)
        counts = [Int](repeating: 0, count: c)
        used = [Bool](repeating: false, count: c)
        mask = c - 1
    }

    /// Adds `n` to the key's count; returns true when the key is new.
    @inline(__always)
    @discardableResult
    mutating func add(_ key: UInt64, _ n: Int = 1) -> Bool {
        if count * 2 >= keys.count { grow() }
        var i = Int(truncatingIfNeeded: mix64(key)) & mask
        while used[i] {
            if keys[i] == key {
                counts[i] += n
                return false
            }
            i = (i + 1) & mask
        }
        used[i] = true
        keys[i] = key
        counts[i] = n
        count += 1
        return true
    }

    /// Adds keys until the table holds more than `limit` keys; returns how many were consumed.
    /// (The batch form probes through unsafe buffers: the per-key `add` was ~25 ns a value.)
    mutating func add(keys: UnsafePointer<UInt64>, count n: Int, limit: Int) -> Int {
        var i = 0
        while i < n {
            if count * 2 >= self.keys.count { grow() }
            // room for this many inserts before the next growth check
            let room = self.keys.count / 2 - count
            let end = min(n, i + max(1, room))
            var added = 0
            let m = mask
            self.keys.withUnsafeMutableBufferPointer { kb in
                counts.withUnsafeMutableBufferPointer { cb in
                    used.withUnsafeMutableBufferPointer { ub in
                        while i < end {
                            let key = keys[i]
                            var s = Int(truncatingIfNeeded: mix64(key)) & m
                            while ub[s] && kb[s] != key { s = (s + 1) & m }
                            if ub[s] {
                                cb[s] += 1
                            } else {
                                ub[s] = true
                                kb[s] = key
                                cb[s] = 1
                                added += 1
                            }
                            i += 1
                            if count + added > limit { break }
                        }
                    }
                }
            }
            count += added
            if count > limit { return i }
        }
        return i
    }

    private mutating func grow() {
        var bigger = ExactCounts(capacity: keys.count)
        for i in 0..<keys.count where used[i] { bigger.add(keys[i], counts[i]) }
        self = bigger
    }

    func forEach(_ body: (UInt64, Int) -> Void) {
        for i in 0..<keys.count where used[i] { body(keys[i], counts[i]) }
    }

    /// The `n` most frequent keys (ties broken by key order for determinism).
    func top(_ n: Int) -> [(key: UInt64, count: Int)] {
        var all: [(key: UInt64, count: Int)] = []
        all.reserveCapacity(count)
        forEach { all.append(($0, $1)) }
        all.sort { $0.count != $1.count ? $0.count > $1.count : $0.key < $1.key }
        return Array(all.prefix(n))
    }
}

/// Distinct counting of numeric keys: exact up to a limit, then HyperLogLog.
struct DistinctCounter: Sendable {
    enum State: Sendable {
        case exact(ExactCounts)
        case approximate(HyperLogLog)
    }
    var state: State
    let limit: Int

    init(limit: Int, exact: Bool = true) {
        self.limit = limit
        state = exact ? .exact(ExactCounts()) : .approximate(HyperLogLog())
    }

    var isExact: Bool {
        if case .exact = state { return true }
        return false
    }

    /// Adds a batch of keys (hot loop kept in one place).
    mutating func add(keys: UnsafePointer<UInt64>, count n: Int) {
        var i = 0
        if case .exact(var table) = state {
            state = .exact(ExactCounts(capacity: 1))  // drop the reference to `table` while it is mutated
            i = table.add(keys: keys, count: n, limit: limit)
            if table.count <= limit {
                state = .exact(table)
                return
            }
            var hll = HyperLogLog()
            table.forEach { key, _ in hll.add(hash: mix64(key)) }
            state = .approximate(hll)
        }
        guard case .approximate(var hll) = state else { return }
        state = .exact(ExactCounts(capacity: 1))
        hll.add(mixing: keys + i, count: n - i)
        state = .approximate(hll)
    }

    mutating func merge(_ o: DistinctCounter) {
        switch (state, o.state) {
        case (.exact(var a), .exact(let b)):
            b.forEach { k, c in a.add(k, c) }
            if a.count <= limit {
                state = .exact(a)
            } else {
                var hll = HyperLogLog()
                a.forEach { k, _ in hll.add(hash: mix64(k)) }
                state = .approximate(hll)
            }
        case (.exact(let a), .approximate(let h)):
            var hll = h
            a.forEach { k, _ in hll.add(hash: mix64(k)) }
            state = .approximate(hll)
        case (.approximate(var hll), .exact(let b)):
            b.forEach { k, _ in hll.add(hash: mix64(k)) }
            state = .approximate(hll)
        case (.approximate(var hll), .approximate(let h)):
            hll.merge(h)
            state = .approximate(hll)
        }
    }

    var estimate: Int {
        switch state {
        case .exact(let t): return t.count
        case .approximate(let h): return Int(h.estimate.rounded())
        }
    }

    var exactTable: ExactCounts? {
        if case .exact(let t) = state { return t }
        return nil
    }
}

/// Mergeable quantile sketch: exact below a size limit, KLL-style compactors above
/// (Note [Profile sketches]).
struct QuantileSketch: Sendable {
    /// levels[h] holds items of weight 2^h.
    var levels: [[Double]] = [[]]
    /// Sum of the weights (≈ values represented).
    var weight = 0
    var approximate = false
    let k: Int
    let exactLimit: Int
    var rng: SeededGenerator

    init(k: Int = 4096, exactLimit: Int, seed: UInt64) {
        self.k = k
        self.exactLimit = exactLimit
        rng = SeededGenerator(seed: seed)
    }

    @inline(__always)
    mutating func insert(_ v: Double, level: Int) {
        while levels.count <= level { levels.append([]) }
        levels[level].append(v)
        weight += 1 << level
        if level > 0 { approximate = true }
    }

    mutating func merge(_ o: QuantileSketch) {
        while levels.count < o.levels.count { levels.append([]) }
        for h in 0..<o.levels.count { levels[h].append(contentsOf: o.levels[h]) }
        weight += o.weight
        approximate = approximate || o.approximate
        compress()
    }

    mutating func compress() {
        var h = 0
        while h < levels.count {
            let capacity = h == 0 ? exactLimit : k
            if levels[h].count > capacity {
                approximate = true
                var items = levels[h]
                items.sort()
                var leftover: [Double] = []
                if items.count % 2 == 1 { leftover.append(items.removeLast()) }
                let offset = Int(rng.next() & 1)
                if levels.count == h + 1 { levels.append([]) }
                var i = offset
                while i < items.count {
                    levels[h + 1].append(items[i])
                    i += 2
                }
                levels[h] = leftover
            }
            h += 1
        }
    }

    var isExact: Bool { !approximate }

    /// Quantiles with numpy's default (linear) interpolation when exact; weighted ranks otherwise.
    func quantiles(_ qs: [Double]) -> [Double]? {
        if weight == 0 { return nil }
        if !approximate {
            let sorted = levels[0].sorted()
            let n = sorted.count
            return qs.map { q in
                let h = Double(n - 1) * q
                let lo = Int(h.rounded(.down))
                let hi = Swift.min(lo + 1, n - 1)
                return sorted[lo] + (h - Double(lo)) * (sorted[hi] - sorted[lo])
            }
        }
        var items: [(Double, Int)] = []
        for (h, level) in levels.enumerated() { for v in level { items.append((v, 1 << h)) } }
        items.sort { $0.0 < $1.0 }
        let total = Double(items.reduce(0) { $0 + $1.1 })
        return qs.map { q in
            let target = q * total
            var cumulative = 0.0
            for (v, w) in items {
                cumulative += Double(w)
                if cumulative >= target { return v }
            }
            return items.last!.0
        }
    }
}

/// Frequent text values: exact counts up to a limit, Misra-Gries summary beyond.
struct FrequentStrings: Sendable {
    var counts: [String: Int] = [:]
    var exact = true
    /// Misra-Gries: total subtracted from every counter so far (the undercount bound).
    var undercount = 0
    let exactLimit: Int
    let summarySize: Int

    static let defaultSummarySize = 1024

    init(exactLimit: Int, summarySize: Int = FrequentStrings.defaultSummarySize) {
        self.exactLimit = exactLimit
        self.summarySize = summarySize
    }

    /// Adds a chunk's counts: exact ones, or a Misra-Gries summary whose counts are low by at most
    /// `undercount`.
    mutating func merge(_ chunk: [String: Int], exact chunkExact: Bool = true, undercount chunkUndercount: Int = 0) {
        for (k, v) in chunk { counts[k, default: 0] += v }
        if !chunkExact {
            exact = false
            undercount += chunkUndercount
        }
        if exact, counts.count <= exactLimit { return }
        exact = false
        prune()
    }

    private mutating func prune() {
        guard counts.count > summarySize else { return }
        let sorted = counts.values.sorted(by: >)
        let cut = sorted[summarySize]
        undercount += cut
        counts = counts.compactMapValues { $0 > cut ? $0 - cut : nil }
    }

    func top(_ n: Int) -> [(String, Int)] {
        counts.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.prefix(n).map { ($0.key, $0.value) }
    }
}
