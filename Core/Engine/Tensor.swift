/// A dense Float32 tensor: row-major, contiguous, shape-checked. A value type (copy-on-write storage).
public struct Tensor: Sendable, Equatable, CustomStringConvertible {
    public private(set) var shape: [Int]
    public var storage: [Float]

    public init(shape: [Int], storage: [Float]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        precondition(shape.reduce(1, *) == storage.count,
                     "shape \(shape) needs \(shape.reduce(1, *)) values, got \(storage.count)")
        self.shape = shape
        self.storage = storage
    }

    public init(zeros shape: [Int]) { self.init(shape: shape, storage: [Float](repeating: 0, count: shape.reduce(1, *))) }

    public init(shape: [Int], repeating value: Float) {
        self.init(shape: shape, storage: [Float](repeating: value, count: shape.reduce(1, *)))
    }

    public var count: Int { storage.count }
    public var rank: Int { shape.count }
    /// The first dimension (the batch).
    public var rows: Int { shape.first ?? 1 }
    /// Everything after the first dimension, flattened.
    public var columns: Int { shape.count <= 1 ? 1 : shape.dropFirst().reduce(1, *) }

    /// Same values, another shape with the same number of elements.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        precondition(newShape.reduce(1, *) == count, "cannot reshape \(shape) to \(newShape)")
        return Tensor(shape: newShape, storage: storage)
    }

    public subscript(_ row: Int, _ column: Int) -> Float {
        get { storage[row * columns + column] }
        set { storage[row * columns + column] = newValue }
    }

    /// Rows `indices` of a 2-D (or higher) tensor, in that order (batch gathering).
    public func gatherRows(_ indices: some Collection<Int>) -> Tensor {
        let c = columns
        var out = [Float](repeating: 0, count: indices.count * c)
        out.withUnsafeMutableBufferPointer { dst in
            storage.withUnsafeBufferPointer { src in
                var o = 0
                for i in indices {
                    precondition(i >= 0 && i < rows, "row \(i) out of range 0..<\(rows)")
                    (dst.baseAddress! + o).update(from: src.baseAddress! + i * c, count: c)
                    o += c
                }
            }
        }
        var s = shape
        s[0] = indices.count
        return Tensor(shape: s, storage: out)
    }

    public var description: String { "Tensor(\(shape))" }
}

extension Tensor {
    /// `self · other` for 2-D tensors with optional transposes, on BLAS.
    public func matmul(_ other: Tensor, transposeSelf: Bool = false, transposeOther: Bool = false) -> Tensor {
        precondition(rank == 2 && other.rank == 2, "matmul needs 2-D tensors, got \(shape) and \(other.shape)")
        let (m, k) = transposeSelf ? (shape[1], shape[0]) : (shape[0], shape[1])
        let (k2, n) = transposeOther ? (other.shape[1], other.shape[0]) : (other.shape[0], other.shape[1])
        precondition(k == k2, "matmul shapes do not agree: \(shape)\(transposeSelf ? "ᵀ" : "") · \(other.shape)\(transposeOther ? "ᵀ" : "")")
        var out = Tensor(zeros: [m, n])
        storage.withUnsafeBufferPointer { a in
            other.storage.withUnsafeBufferPointer { b in
                out.storage.withUnsafeMutableBufferPointer { c in
                    BLAS.gemm(transA: transposeSelf, transB: transposeOther, m: m, n: n, k: k, a: a.baseAddress!,
                              lda: shape[1], b: b.baseAddress!, ldb: other.shape[1], c: c.baseAddress!, ldc: n)
                }
            }
        }
        return out
    }

    public static func + (a: Tensor, b: Tensor) -> Tensor {
        precondition(a.shape == b.shape, "shape mismatch \(a.shape) + \(b.shape)")
        var out = a
        out.add(b)
        return out
    }

    /// self += other (same shape), vectorised.
    public mutating func add(_ other: Tensor, scale: Float = 1) {
        precondition(shape == other.shape, "shape mismatch \(shape) += \(other.shape)")
        let n = count
        storage.withUnsafeMutableBufferPointer { d in
            other.storage.withUnsafeBufferPointer { s in Kernels.axpy(scale, s.baseAddress!, d.baseAddress!, n) }
        }
    }

    public mutating func scale(by factor: Float) {
        storage.withUnsafeMutableBufferPointer { Kernels.scale($0.baseAddress!, factor, $0.count) }
    }

    public mutating func fill(_ value: Float) {
        storage.withUnsafeMutableBufferPointer { $0.update(repeating: value) }
    }

    public var sum: Float { storage.reduce(0, +) }
    public var maxAbs: Float { storage.reduce(0) { max($0, abs($1)) } }
}

/// Vectorised element-wise kernels (SIMD8 over Float32 with a scalar tail).
public enum Kernels {
    @inlinable
    public static func axpy(_ a: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        var i = 0
        let va = SIMD8<Float>(repeating: a)
        while i + 8 <= n {
            let vx = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)
            let vy = UnsafeRawPointer(y + i).loadUnaligned(as: SIMD8<Float>.self)
            UnsafeMutableRawPointer(y + i).storeBytes(of: vy + va * vx, as: SIMD8<Float>.self)
            i += 8
        }
        while i < n {
            y[i] += a * x[i]
            i += 1
        }
    }

    @inlinable
    public static func scale(_ x: UnsafeMutablePointer<Float>, _ a: Float, _ n: Int) {
        var i = 0
        let va = SIMD8<Float>(repeating: a)
        while i + 8 <= n {
            let v = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)
            UnsafeMutableRawPointer(x + i).storeBytes(of: v * va, as: SIMD8<Float>.self)
            i += 8
        }
        while i < n {
            x[i] *= a
            i += 1
        }
    }
}
