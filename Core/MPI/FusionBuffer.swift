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
/// Note [No fp16 wire format]: there is no Float16 compression of the staged buffer. MPI has neither a
/// Float16 datatype nor a sum for it; it would take a user-defined `MPI_Op` (run by OpenMPI element by
/// element, outside its vectorised reduction kernels) that sums halves, losing precision at every rank
/// it passes. On shared memory the copies cost more than the bytes (bench/allreduce.sh, layer-only
/// column), so halving the bytes would not pay here; across hosts it might.
///
/// Note [World of one]: with one rank the gradients already are the global mean; nothing is copied
/// (so a world of one is bit-identical to the single-process trainer).
///
/// Single-threaded, like the layers. Frees its buffer in `deinit` (plain memory).
public final class FusionBuffer {
    public let buckets: [GradientBucket]
    public let parameterSizes: [Int]
    /// Elements per allreduce call (at most the largest bucket).
    public let segmentElements: Int
    /// Every allreduce of a pass, in order, with the parameter pieces it carries (computed once).
    private let segments: [Segment]
    private let storage: UnsafeMutableBufferPointer<Float>

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

    public init(parameterSizes: [Int], capBytes: Int = defaultBucketCapBytes,
                segmentBytes: Int? = defaultFusionSegmentBytes) {
        self.parameterSizes = parameterSizes
        buckets = planGradientBuckets(parameterSizes: parameterSizes, capBytes: capBytes)
        let largest = buckets.map(\.elementCount).max() ?? 0
        let segment = segmentBytes.map { max(1, $0 / MemoryLayout<Float>.size) } ?? largest
        segmentElements = max(1, min(largest, segment))
        segments = Self.cut(buckets, parameterSizes, segmentElements)
        let count = segmentElements + Self.headerCount
        // 64-byte aligned: small allreduces are measurably slower from unaligned buffers.
        let raw = UnsafeMutableRawPointer.allocate(byteCount: count * MemoryLayout<Float>.size, alignment: 64)
        storage = UnsafeMutableBufferPointer(start: raw.bindMemory(to: Float.self, capacity: count), count: count)
        storage.initialize(repeating: 0)
    }

    /// A buffer for `parameters` (their current sizes).
    public convenience init(for parameters: [Parameter], capBytes: Int = defaultBucketCapBytes,
                            segmentBytes: Int? = defaultFusionSegmentBytes) {
        self.init(parameterSizes: parameters.map(\.value.count), capBytes: capBytes, segmentBytes: segmentBytes)
    }

    deinit { UnsafeMutableRawPointer(storage.baseAddress!).deallocate() }

    /// The number of allreduce calls per pass (one per bucket segment).
    public var allreducesPerPass: Int { max(1, segments.count) }

    /// Replaces every parameter's gradient by the weighted average over all ranks (Note [Weighted
    /// average]): `samples` is this rank's sample count (its gradients are their mean), `lossSum` its
    /// mean loss × samples. Collective. Returns the global count and loss sum; when no rank had samples,
    /// the gradients become zero.
    @discardableResult
    public func averageGradients(_ parameters: [Parameter], samples: Int, lossSum: Double = 0,
                                 backend: some AllreduceBackend) throws -> GlobalBatch {
        precondition(parameters.count == parameterSizes.count, "FusionBuffer: \(parameters.count) parameters, planned for \(parameterSizes.count)")
        precondition(samples >= 0 && samples < 1 << 24, "FusionBuffer: \(samples) samples per step (0 ..< 2²⁴)")
        if backend.size == 1 { return GlobalBatch(samples: samples, lossSum: lossSum) }  // Note [World of one]
        let weight = Float(samples)
        let buffer = storage.baseAddress!
        var total: GlobalBatch?
        var inverse: Float = 0
        for segment in segments {
            for piece in segment.pieces {
                parameters[piece.parameter].grad.storage.withUnsafeBufferPointer { g in
                    precondition(g.count == parameterSizes[piece.parameter], "FusionBuffer: gradient size changed")
                    Self.copy(g.baseAddress! + piece.from, buffer + piece.to, piece.count, scale: weight)
                }
            }
            if total == nil {
                let t = try reduceFirst(count: segment.count, samples: weight, lossSum: lossSum, backend: backend)
                total = t
                inverse = t.samples > 0 ? 1 / Float(t.samples) : 0
            } else {
                try backend.allreduceSum(UnsafeMutableBufferPointer(start: buffer, count: segment.count))
            }
            for piece in segment.pieces {
                parameters[piece.parameter].grad.storage.withUnsafeMutableBufferPointer { g in
                    Self.copy(buffer + piece.to, g.baseAddress! + piece.from, piece.count, scale: inverse)
                }
            }
        }
        // No gradient elements at all: the counts still have to meet.
        return try total ?? reduceFirst(count: 0, samples: weight, lossSum: lossSum, backend: backend)
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
