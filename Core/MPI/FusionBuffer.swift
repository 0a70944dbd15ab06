import NebulaEngine

/// The default segment of `FusionBuffer` (Note [Segmented reduction]).
public let defaultFusionSegmentBytes = 1 << 20

/// What all ranks together contributed to one step: their sample count and their summed loss
/// (Σ over ranks of local mean loss × local samples).
public struct GlobalBatch: Sendable, Equatable {
    public var samples: Int
    public var lossSum: Double
    public init(samples: Int, lossSum: Double) {
        self.samples = samples
        self.lossSum = lossSum
    }
    /// The mean loss over every rank's samples (NaN when there were none).
    public var meanLoss: Float { samples > 0 ? Float(lossSum / Double(samples)) : .nan }
}

/// Horovod's fusion buffer at Swift scale: one staging buffer, reused for every bucket of a
/// `planGradientBuckets` plan. Per bucket segment: copy the parameters' gradients in (scaled by this
/// rank's weight while copying), allreduce once, copy out (scaled by 1 / Σ weights).
///
/// Note [Weighted average]: rank r contributes its gradient g_r (the mean over its n_r samples)
/// weighted by n_r, so the result is Σ_r n_r·g_r / Σ_r n_r: the mean over the global batch, what one
/// process computes over all samples, also when ranks hold different numbers of samples (the last
/// batch of an epoch, uneven shards, a rank with none). n_r is folded in while copying (no extra
/// pass), and Σ_r n_r travels in the same allreduce as the first segment: two extra Float32 elements,
/// [n_r, n_r·loss_r], after the gradients. So one step costs exactly one allreduce per segment, and the
/// global loss comes for free. Counts are exact in Float32 up to 2²⁴ samples per step.
///
/// Note [Segmented reduction]: a bucket is reduced in segments of at most `segmentBytes`, each copied
/// in, reduced and copied out while it is still in cache. On these machines a single allreduce of a
/// buffer far larger than L2 runs at memory bandwidth (16–64 MB: 0.9–1.5 GB/s, against 4.5 GB/s at
/// 1 MB), and the copies in and out would add two more passes over memory; in segments the copies hit
/// cache. Pass `segmentBytes: nil` to reduce each bucket in one call.
///
/// Note [Float16 wire format]: with `wire: .float16` the staged gradients travel as IEEE half
/// precision (half the bytes) and are summed in half precision by a user-defined MPI operator (each
/// addition done in Float32 and rounded to Float16 once; MPI has no Float16 type or sum of its own).
/// Float16 cannot hold the sample counts (integers are exact only up to 2048) nor large products
/// n_r·g_r, so this path first reduces the header [n_r, n_r·loss_r] alone, in Float32 (one tiny extra
/// allreduce per step), and then pre-scales each rank's gradient by its share n_r / Σ n while packing:
/// the Float16 sum is then the global mean itself, of the gradients' own magnitude, and is copied out
/// unscaled. What is lost: every gradient element is rounded to 11 significant bits before sending
/// (relative error ≤ 2⁻¹¹ ≈ 4.9e-4), each of the reduction's additions rounds again (OpenMPI's
/// algorithms add up to size − 1 times along a chain, so the error grows at most linearly in the
/// world size), values below 2⁻¹⁴ ≈ 6.1e-5 keep fewer bits (subnormals), below 2⁻²⁵ ≈ 3e-8 they
/// become zero, and magnitudes above 65504 become ±infinity
/// (as with PyTorch's fp16 compression hook; the step's parameters then become non-finite, so keep it
/// for well-scaled gradients). The counts and the loss stay exact as in Float32. Off by default: on
/// shared memory the conversions cost more than the bytes save (bench/allreduce.sh: at 1 MB the
/// Float16 layer took about 3.5× the Float32 layer's time on these machines, its conversions alone
/// about 6× the Float32 copies, Note [Half conversion without F16C]); it can only pay across hosts,
/// where the wire is the bottleneck.
///
/// Note [Overlapped reduction]: `beginPass` / `gradientsReady` / `finishPass` reduce while the
/// backward pass runs (DDP's reducer). The trainer calls `beginPass` after the loss (the sample count
/// and loss are known then), passes `gradientsReady` as the engine's hook (Note [Gradients-ready hook]),
/// and calls `finishPass` after backward. A segment is packed and its non-blocking allreduce started as
/// soon as every parameter with a piece in it is reported, strictly in plan order (segment k never
/// starts before segment k − 1, so every rank starts the same operations in the same order, even if a
/// model reported out of order). Buckets are planned in reverse parameter order (Note [Bucket order]),
/// so the output layer's bucket starts first, while the earlier layers still compute. Each report also
/// tests the outstanding requests: OpenMPI progresses a non-blocking collective only inside MPI calls on
/// this thread (Note [Non-blocking progress]). `finishPass` starts whatever is left (parameters never
/// reported, or a rank without samples, which runs no backward at all: it must still take part in
/// every non-blocking operation, since MPI never matches a blocking collective with a non-blocking
/// one), waits for all, and copies the averages out. Every segment in flight needs its own staging
/// memory, so an overlapped pass stages the whole model at once (allocated on the first pass; the
/// blocking path keeps using one segment's worth). The weighting is the same as in the blocking path,
/// so both give the same averages up to the order of floating-point additions inside MPI.
///
/// Note [World of one]: with one rank the gradients already are the global mean; nothing is copied
/// (so a world of one is bit-identical to the single-process trainer).
///
/// Single-threaded, like the layers. Frees its buffer in `deinit` (plain memory).
public final class FusionBuffer {
    /// How staged gradients travel (Note [Float16 wire format]).
    public enum WireFormat: String, Sendable, CaseIterable {
        case float32, float16
    }

    public let buckets: [GradientBucket]
    public let parameterSizes: [Int]
    public let wire: WireFormat
    /// Elements per allreduce call (at most the largest bucket).
    public let segmentElements: Int
    /// Every allreduce of a pass, in order, with the parameter pieces it carries (computed once).
    private let segments: [Segment]
    private let storage: UnsafeMutableBufferPointer<Float>
    /// Float16 staging: one segment (blocking) or the whole plan (overlapped); allocated on first use.
    private var halfStorage: UnsafeMutableBufferPointer<Float16>?
    /// Float32 staging of an overlapped pass: every segment (+ the header after segment 0).
    private var wideStorage: UnsafeMutableBufferPointer<Float>?
    /// Where segment k starts in the whole-plan staging (without the header).
    private let segmentStarts: [Int]
    /// The segments each parameter has a piece in.
    private let segmentsOfParameter: [[Int]]
    private var pass: Pass?
    /// Of the last overlapped pass: how many segments started before `finishPass` (during backward).
    public private(set) var segmentsStartedEarly = 0

    /// Elements after the first segment: [samples, loss sum] (Note [Weighted average]).
    static let headerCount = 2

    /// One allreduce: `count` staged elements made of `pieces`.
    struct Segment {
        var count: Int
        var pieces: [Piece]
    }

    /// Elements `from ..< from + count` of parameter `parameter`, staged at `to`.
    struct Piece {
        var parameter: Int
        var from: Int
        var to: Int
        var count: Int
    }

    /// The state of an overlapped pass (Note [Overlapped reduction]).
    private struct Pass {
        var parameters: [Parameter]
        var backend: any AllreduceBackend
        var samples: Int
        var lossSum: Double
        /// Float32: this rank's weight n_r; Float16: its share n_r / Σ n.
        var scale: Float
        /// Float16 only: the totals, reduced at `beginPass`.
        var total: GlobalBatch?
        var ready: [Bool]
        /// Per segment: parameters with a piece in it that were not reported yet.
        var waiting: [Int]
        var next = 0
        var requests: [any PendingAllreduce] = []
        var firstUnfinished = 0
        var error: (any Error)?
        /// A world of one: nothing is reduced (Note [World of one]).
        var local = false
    }

    public init(parameterSizes: [Int], capBytes: Int = defaultBucketCapBytes,
                segmentBytes: Int? = defaultFusionSegmentBytes, wire: WireFormat = .float32) {
        self.parameterSizes = parameterSizes
        self.wire = wire
        buckets = planGradientBuckets(parameterSizes: parameterSizes, capBytes: capBytes)
        let largest = buckets.map(\.elementCount).max() ?? 0
        let segment = segmentBytes.map { max(1, $0 / MemoryLayout<Float>.size) } ?? largest
        segmentElements = max(1, min(largest, segment))
        segments = Self.cut(buckets, parameterSizes, segmentElements)
        var starts: [Int] = [], start = 0
        var owners = [[Int]](repeating: [], count: parameterSizes.count)
        for (k, s) in segments.enumerated() {
            starts.append(start)
            start += s.count
            for piece in s.pieces where owners[piece.parameter].last != k { owners[piece.parameter].append(k) }
        }
        segmentStarts = starts
        segmentsOfParameter = owners
        storage = Self.allocate(Float.self, segmentElements + Self.headerCount)
    }

    /// A buffer for `parameters` (their current sizes).
    public convenience init(for parameters: [Parameter], capBytes: Int = defaultBucketCapBytes,
                            segmentBytes: Int? = defaultFusionSegmentBytes, wire: WireFormat = .float32) {
        self.init(parameterSizes: parameters.map(\.value.count), capBytes: capBytes, segmentBytes: segmentBytes, wire: wire)
    }

    deinit {
        precondition(pass == nil, "FusionBuffer released during an overlapped pass (finishPass() never ran)")
        UnsafeMutableRawPointer(storage.baseAddress!).deallocate()
        if let h = halfStorage { UnsafeMutableRawPointer(h.baseAddress!).deallocate() }
        if let w = wideStorage { UnsafeMutableRawPointer(w.baseAddress!).deallocate() }
    }

    /// `count` zeroed elements, 64-byte aligned: small allreduces are measurably slower from unaligned buffers.
    private static func allocate<T: BinaryFloatingPoint>(_: T.Type, _ count: Int) -> UnsafeMutableBufferPointer<T> {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(1, count) * MemoryLayout<T>.stride, alignment: 64)
        let buffer = UnsafeMutableBufferPointer(start: raw.bindMemory(to: T.self, capacity: count), count: count)
        buffer.initialize(repeating: 0)
        return buffer
    }

    /// The number of allreduce calls per pass (one per bucket segment, plus the header's own with Float16).
    public var allreducesPerPass: Int { max(1, segments.count) + (wire == .float16 ? 1 : 0) }

    /// The staged elements of one pass (all segments, without the header).
    private var totalElements: Int { (segmentStarts.last ?? 0) + (segments.last?.count ?? 0) }

    private func checkPass(_ parameters: [Parameter], samples: Int) {
        precondition(parameters.count == parameterSizes.count, "FusionBuffer: \(parameters.count) parameters, planned for \(parameterSizes.count)")
        precondition(samples >= 0 && samples < 1 << 24, "FusionBuffer: \(samples) samples per step (0 ..< 2²⁴)")
        precondition(pass == nil, "FusionBuffer: a blocking reduction inside an overlapped pass")
    }

    /// Replaces every parameter's gradient by the weighted average over all ranks (Note [Weighted
    /// average]): `samples` is this rank's sample count (its gradients are their mean), `lossSum` its
    /// mean loss × samples. Collective. Returns the global count and loss sum; when no rank had samples,
    /// the gradients become zero.
    @discardableResult
    public func averageGradients(_ parameters: [Parameter], samples: Int, lossSum: Double = 0,
                                 backend: some AllreduceBackend) throws -> GlobalBatch {
        checkPass(parameters, samples: samples)
        if backend.size == 1 { return GlobalBatch(samples: samples, lossSum: lossSum) }  // Note [World of one]
        if wire == .float16 { return try averageHalf(parameters, samples: samples, lossSum: lossSum, backend: backend) }
        let weight = Float(samples)
        let buffer = storage.baseAddress!
        var total: GlobalBatch?
        var inverse: Float = 0
        for segment in segments {
            pack(segment, parameters, into: buffer, scale: weight)
            if total == nil {
                let t = try reduceFirst(count: segment.count, samples: weight, lossSum: lossSum, backend: backend)
                total = t
                inverse = t.samples > 0 ? 1 / Float(t.samples) : 0
            } else {
                try backend.allreduceSum(UnsafeMutableBufferPointer(start: buffer, count: segment.count))
            }
            unpack(segment, parameters, from: buffer, scale: inverse)
        }
        // No gradient elements at all: the counts still have to meet.
        return try total ?? reduceFirst(count: 0, samples: weight, lossSum: lossSum, backend: backend)
    }

    /// The blocking Float16 path (Note [Float16 wire format]).
    private func averageHalf(_ parameters: [Parameter], samples: Int, lossSum: Double, backend: some AllreduceBackend) throws
        -> GlobalBatch
    {
        let total = try reduceFirst(count: 0, samples: Float(samples), lossSum: lossSum, backend: backend)
        guard total.samples > 0 else {
            for p in parameters { p.grad.fill(0) }
            return total
        }
        let share = Float(samples) / Float(total.samples)
        let half = halfBuffer(count: segmentElements).baseAddress!
        for segment in segments {
            packHalf(segment, parameters, into: half, scale: share)
            try backend.allreduceSum(UnsafeMutableBufferPointer(start: half, count: segment.count))
            unpackHalf(segment, parameters, from: half)
        }
        return total
    }

    // MARK: Overlapped pass (Note [Overlapped reduction])

    /// Starts an overlapped reduction of `parameters`' gradients: call after the loss, before backward.
    /// With Float16 this reduces the header at once (blocking). Collective.
    public func beginPass(_ parameters: [Parameter], samples: Int, lossSum: Double, backend: any AllreduceBackend) throws {
        checkPass(parameters, samples: samples)
        guard backend.size > 1 else {  // Note [World of one]: nothing to reduce
            pass = Pass(parameters: [], backend: backend, samples: samples, lossSum: lossSum, scale: 1, ready: [], waiting: [],
                        next: segments.count, local: true)
            return
        }
        var state = Pass(parameters: parameters, backend: backend, samples: samples, lossSum: lossSum, scale: Float(samples),
                         ready: [Bool](repeating: false, count: parameters.count),
                         waiting: segments.map { s in Set(s.pieces.map(\.parameter)).count })
        if wire == .float16 {
            _ = halfBuffer(count: totalElements)
            let total = try reduceFirst(count: 0, samples: Float(samples), lossSum: lossSum, backend: backend)
            state.total = total
            state.scale = total.samples > 0 ? Float(samples) / Float(total.samples) : 0
        } else if wideStorage == nil {
            wideStorage = Self.allocate(Float.self, totalElements + Self.headerCount)
        }
        pass = state
        indexParameters(parameters)
    }

    /// The engine's hook (Note [Gradients-ready hook]): the gradients of `ready` are final. Starts every
    /// segment that became complete, in plan order, and lets the started ones progress. Parameters that
    /// are not in the pass are ignored. An MPI error is kept and thrown by `finishPass`.
    public func gradientsReady(_ ready: [Parameter]) {
        guard pass != nil, !pass!.local, pass!.error == nil else { return }
        for p in ready {
            guard let i = parameterIndex[ObjectIdentifier(p)] else { continue }
            precondition(!pass!.ready[i], "FusionBuffer: parameter \(p.name) reported twice in one backward pass")
            pass!.ready[i] = true
            for k in segmentsOfParameter[i] { pass!.waiting[k] -= 1 }
        }
        do {
            try startReadySegments()
            try progress()
        } catch {
            pass!.error = error
        }
    }

    /// Starts what is left, waits for every reduction of the pass and writes the averages into the
    /// gradients. Returns the global count and loss sum. Collective.
    @discardableResult
    public func finishPass() throws -> GlobalBatch {
        guard var state = pass else { preconditionFailure("FusionBuffer.finishPass() without beginPass()") }
        if state.local {  // Note [World of one]
            pass = nil
            return GlobalBatch(samples: state.samples, lossSum: state.lossSum)
        }
        segmentsStartedEarly = state.next
        if state.error == nil {
            for i in state.ready.indices where !state.ready[i] {
                state.ready[i] = true
                for k in segmentsOfParameter[i] { state.waiting[k] -= 1 }
            }
            pass = state
            do { try startReadySegments() } catch { pass!.error = error }
            state = pass!
        }
        pass = nil
        if let error = state.error {
            for r in state.requests { try? r.wait() }
            throw error
        }
        precondition(state.next == segments.count, "FusionBuffer: segments left unstarted")
        let parameters = state.parameters
        if wire == .float16 {
            let half = halfStorage!.baseAddress!
            for (k, segment) in segments.enumerated() {
                try state.requests[k].wait()
                unpackHalf(segment, parameters, from: half + segmentStarts[k])
            }
            return state.total!
        }
        let wide = wideStorage!.baseAddress!
        guard !segments.isEmpty else {
            return try reduceFirst(count: 0, samples: state.scale, lossSum: state.lossSum, backend: state.backend)
        }
        var total = GlobalBatch(samples: 0, lossSum: 0)
        var inverse: Float = 0
        for (k, segment) in segments.enumerated() {
            try state.requests[k].wait()
            let start = wide + offset(k)
            if k == 0 {
                total = GlobalBatch(samples: Int(start[segment.count]), lossSum: Double(start[segment.count + 1]))
                inverse = total.samples > 0 ? 1 / Float(total.samples) : 0
            }
            unpack(segment, parameters, from: start, scale: inverse)
        }
        return total
    }

    /// Where segment k starts in the Float32 whole-plan staging (the header follows segment 0).
    private func offset(_ k: Int) -> Int { k == 0 ? 0 : segmentStarts[k] + Self.headerCount }

    private var parameterIndex: [ObjectIdentifier: Int] = [:]
    private var indexed: [ObjectIdentifier] = []

    /// Maps parameter objects to their positions (rebuilt only when the list changes).
    private func indexParameters(_ parameters: [Parameter]) {
        if indexed.count == parameters.count && zip(indexed, parameters).allSatisfy({ $0 == ObjectIdentifier($1) }) { return }
        indexed = parameters.map(ObjectIdentifier.init)
        parameterIndex = Dictionary(indexed.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
    }

    /// Packs and starts, in plan order, every segment whose parameters are all reported.
    private func startReadySegments() throws {
        while let state = pass, state.next < segments.count, state.waiting[state.next] == 0 {
            let k = state.next
            let segment = segments[k]
            let request: any PendingAllreduce
            if wire == .float16 {
                let half = halfStorage!.baseAddress! + segmentStarts[k]
                packHalf(segment, state.parameters, into: half, scale: state.scale)
                request = try state.backend.startAllreduceSum(UnsafeMutableBufferPointer(start: half, count: segment.count))
            } else {
                let start = wideStorage!.baseAddress! + offset(k)
                pack(segment, state.parameters, into: start, scale: state.scale)
                var count = segment.count
                if k == 0 {
                    start[count] = state.scale
                    start[count + 1] = Float(state.lossSum)
                    count += Self.headerCount
                }
                request = try state.backend.startAllreduceSum(UnsafeMutableBufferPointer(start: start, count: count))
            }
            pass!.requests.append(request)
            pass!.next = k + 1
        }
    }

    /// Tests the started requests (in order, skipping those known to be complete).
    private func progress() throws {
        guard let state = pass else { return }
        var i = state.firstUnfinished
        while i < state.requests.count, try state.requests[i].test() { i += 1 }
        pass!.firstUnfinished = i
    }

    // MARK: Packing

    private func pack(_ segment: Segment, _ parameters: [Parameter], into buffer: UnsafeMutablePointer<Float>, scale: Float) {
        for piece in segment.pieces {
            parameters[piece.parameter].grad.storage.withUnsafeBufferPointer { g in
                precondition(g.count == parameterSizes[piece.parameter], "FusionBuffer: gradient size changed")
                Self.copy(g.baseAddress! + piece.from, buffer + piece.to, piece.count, scale: scale)
            }
        }
    }

    private func unpack(_ segment: Segment, _ parameters: [Parameter], from buffer: UnsafeMutablePointer<Float>, scale: Float) {
        for piece in segment.pieces {
            parameters[piece.parameter].grad.storage.withUnsafeMutableBufferPointer { g in
                Self.copy(buffer + piece.to, g.baseAddress! + piece.from, piece.count, scale: scale)
            }
        }
    }

    private func packHalf(_ segment: Segment, _ parameters: [Parameter], into buffer: UnsafeMutablePointer<Float16>,
                          scale: Float) {
        for piece in segment.pieces {
            parameters[piece.parameter].grad.storage.withUnsafeBufferPointer { g in
                precondition(g.count == parameterSizes[piece.parameter], "FusionBuffer: gradient size changed")
                Self.toHalf(g.baseAddress! + piece.from, buffer + piece.to, piece.count, scale: scale)
            }
        }
    }

    private func unpackHalf(_ segment: Segment, _ parameters: [Parameter], from buffer: UnsafeMutablePointer<Float16>) {
        for piece in segment.pieces {
            parameters[piece.parameter].grad.storage.withUnsafeMutableBufferPointer { g in
                Self.fromHalf(buffer + piece.to, g.baseAddress! + piece.from, piece.count)
            }
        }
    }

    /// The Float16 staging, grown to at least `count` elements.
    private func halfBuffer(count: Int) -> UnsafeMutableBufferPointer<Float16> {
        if let h = halfStorage, h.count >= count { return h }
        if let h = halfStorage { UnsafeMutableRawPointer(h.baseAddress!).deallocate() }
        let h = Self.allocate(Float16.self, count)
        halfStorage = h
        return h
    }

    /// Copies `root`'s parameter values to every rank (to start from identical replicas). Collective.
    public func broadcastValues(_ parameters: [Parameter], root: Int, backend: some AllreduceBackend) throws {
        precondition(parameters.count == parameterSizes.count, "FusionBuffer: \(parameters.count) parameters, planned for \(parameterSizes.count)")
        if backend.size == 1 { return }
        let isRoot = backend.rank == root
        let buffer = storage.baseAddress!
        for segment in segments {
            if isRoot {
                for piece in segment.pieces {
                    parameters[piece.parameter].value.storage.withUnsafeBufferPointer { v in
                        precondition(v.count == parameterSizes[piece.parameter], "FusionBuffer: parameter size changed")
                        (buffer + piece.to).update(from: v.baseAddress! + piece.from, count: piece.count)
                    }
                }
            }
            try backend.broadcast(UnsafeMutableBufferPointer(start: buffer, count: segment.count), root: root)
            if !isRoot {
                for piece in segment.pieces {
                    parameters[piece.parameter].value.storage.withUnsafeMutableBufferPointer { v in
                        precondition(v.count == parameterSizes[piece.parameter], "FusionBuffer: parameter size changed")
                        (v.baseAddress! + piece.from).update(from: buffer + piece.to, count: piece.count)
                    }
                }
            }
        }
    }

    /// Reduces the first `count` staged elements together with the header; returns the global totals.
    private func reduceFirst(count: Int, samples: Float, lossSum: Double, backend: some AllreduceBackend) throws
        -> GlobalBatch
    {
        storage[count] = samples
        storage[count + 1] = Float(lossSum)
        try backend.allreduceSum(UnsafeMutableBufferPointer(start: storage.baseAddress!, count: count + Self.headerCount))
        return GlobalBatch(samples: Int(storage[count]), lossSum: Double(storage[count + 1]))
    }

    /// Cuts each bucket into segments of at most `segmentElements` and lists the parameter pieces of
    /// each (bucket coordinates → staging buffer positions).
    static func cut(_ buckets: [GradientBucket], _ sizes: [Int], _ segmentElements: Int) -> [Segment] {
        var segments: [Segment] = []
        for bucket in buckets {
            var start = 0
            while start < bucket.elementCount {
                let end = min(start + segmentElements, bucket.elementCount)
                var pieces: [Piece] = []
                for (i, offset) in bucket.offsets.enumerated() {
                    let lo = max(offset, start), hi = min(offset + sizes[bucket.parameters[i]], end)
                    if lo < hi {
                        pieces.append(Piece(parameter: bucket.parameters[i], from: lo - offset, to: lo - start, count: hi - lo))
                    }
                }
                segments.append(Segment(count: end - start, pieces: pieces))
                start = end
            }
        }
        return segments
    }

    /// dst[i] = Float16(scale · src[i]) (round to nearest even; Note [Half conversion without F16C]).
    static func toHalf(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float16>, _ n: Int, scale: Float) {
        HalfConversion.toHalf(src, dst, count: n, scale: scale)
    }

    /// dst[i] = Float(src[i]) (exact).
    static func fromHalf(_ src: UnsafePointer<Float16>, _ dst: UnsafeMutablePointer<Float>, _ n: Int) {
        HalfConversion.toFloat(src, dst, count: n)
    }

    /// dst[i] = scale · src[i], vectorised (a plain copy when scale is 1).
    @inline(__always)
    static func copy(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, _ n: Int, scale: Float) {
        if scale == 1 {
            dst.update(from: src, count: n)
            return
        }
        typealias V = SIMD8<Float>
        let s = V(repeating: scale)
        var i = 0
        while i + 8 <= n {
            let v = UnsafeRawPointer(src + i).loadUnaligned(as: V.self)
            UnsafeMutableRawPointer(dst + i).storeBytes(of: v * s, as: V.self)
            i += 8
        }
        while i < n {
            dst[i] = src[i] * scale
            i += 1
        }
    }
}
