/// 2-D convolution over NCHW input `[batch, inChannels, height, width]` with a square `kernelSize`,
/// `stride` and zero `padding`, followed by an optional fused element-wise `activation`; output
/// `[batch, outChannels, outHeight, outWidth]` with `out = (in + 2·padding − kernelSize) / stride + 1`
/// (floor), as PyTorch's `Conv2d` (then the activation).
///
/// The weight is `[outChannels, inChannels, k, k]` (PyTorch's layout), initialised like PyTorch:
/// U(±1/√(inChannels·k·k)) for weight and bias, so `Conv2D(…, activation: .relu)` computes what
/// `Sequential([Conv2D(…), ReLU()])` computes.
///
/// // Note [Conv2D as one GEMM per chunk]
/// Forward lowers a chunk of images to columns, `col[(c·k + i)·k + j, n·P + p]` (P = output pixels per
/// image), and does one `W[out, cin·k·k] · col` sgemm for the whole chunk, then moves each image's
/// `[out, P]` block into NCHW order, adding the bias; the activation follows in one pass over the output.
/// Backward builds `G[out, chunk·P]` from the output gradient the same way (times f′ of the
/// activation): `dW += G · colᵀ`, `db += G · 1`, `dcol = Wᵀ · G`, and col2im scatters `dcol` into the
/// input gradient. A chunk holds at most `maxColumnElements` column values (whole images, at least
/// one), so large batches or images do not allocate unbounded scratch. Forward keeps the input (and
/// the output, for f′). When the batch is one chunk, backward reuses the forward's columns; otherwise
/// it lowers each chunk again (cheap next to the GEMMs) instead of keeping every chunk's columns. Output and input-gradient buffers are reused across batches as in
/// `FusedDense` (Note [Buffer reuse] in FusedDense.swift).
public final class Conv2D: Layer {
    public let inChannels: Int
    public let outChannels: Int
    public let kernelSize: Int
    public let stride: Int
    public let padding: Int
    public let activation: Activation
    /// `[outChannels, inChannels, kernelSize, kernelSize]`.
    public let weight: Parameter
    /// `[outChannels]`.
    public let bias: Parameter
    /// Upper bound on the column scratch buffer, in Float values (default 4 Mi = 16 MiB).
    public var maxColumnElements: Int = 1 << 22

    private var input: Tensor?
    private var out = Tensor(zeros: [0])
    /// Pre-activation, kept only when f′ needs it (GELU).
    private var pre = Tensor(zeros: [0])
    private var dx = Tensor(zeros: [0])
    private let columns = LayerScratchBuffer()
    /// Whether `columns` still holds the lowered input of the last training forward (one chunk only).
    private var columnsHoldInput = false
    private let staging = LayerScratchBuffer()
    private let ones = LayerScratchBuffer()

    public init(_ inChannels: Int, _ outChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
                activation: Activation = .identity, rng: inout SeededGenerator, name: String = "conv") {
        precondition(inChannels > 0 && outChannels > 0 && kernelSize > 0 && stride > 0 && padding >= 0,
                     "Conv2D: invalid configuration")
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernelSize = kernelSize
        self.stride = stride
        self.padding = padding
        self.activation = activation
        let fanIn = inChannels * kernelSize * kernelSize
        let bound = 1 / Float(fanIn).squareRoot()
        weight = Parameter("\(name).weight",
                           Tensor(shape: [outChannels, inChannels, kernelSize, kernelSize],
                                  storage: (0..<outChannels * fanIn).map { _ in rng.uniform(bound) }))
        bias = Parameter("\(name).bias", Tensor(shape: [outChannels],
                                                storage: (0..<outChannels).map { _ in rng.uniform(bound) }))
    }

    public var parameters: [Parameter] { [weight, bias] }

    /// Output height and width for an input of `height × width`.
    public func outputSize(height: Int, width: Int) -> (height: Int, width: Int) {
        let h = (height + 2 * padding - kernelSize) / stride + 1
        let w = (width + 2 * padding - kernelSize) / stride + 1
        return (h, w)
    }

    private func geometry(_ shape: [Int]) -> ConvGeometry {
        precondition(shape.count == 4 && shape[1] == inChannels,
                     "Conv2D expects [batch, \(inChannels), height, width], got \(shape)")
        let (oh, ow) = outputSize(height: shape[2], width: shape[3])
        precondition(oh > 0 && ow > 0, "Conv2D: input \(shape) is smaller than the kernel")
        return ConvGeometry(channels: inChannels, height: shape[2], width: shape[3], kernel: kernelSize,
                            stride: stride, padding: padding, outHeight: oh, outWidth: ow)
    }

    private func chunkSize(_ g: ConvGeometry, batch: Int) -> Int {
        max(1, min(batch, maxColumnElements / max(1, g.columnRows * g.outPixels)))
    }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        let g = geometry(x.shape)
        let batch = x.shape[0], p = g.outPixels, co = outChannels, kk = g.columnRows
        let shape = [batch, co, g.outHeight, g.outWidth]
        if out.shape != shape { out = Tensor(zeros: shape) }
        let f = activation
        let keepPre = training && !f.derivativeFromOutput
        if keepPre && pre.shape != shape { pre = Tensor(zeros: shape) }
        let chunk = chunkSize(g, batch: batch)
        let col = columns.reserve(kk * chunk * p), staged = staging.reserve(co * chunk * p)
        columnsHoldInput = training && chunk == batch
        x.storage.withUnsafeBufferPointer { xb in
            weight.value.storage.withUnsafeBufferPointer { wb in
                var n0 = 0
                while n0 < batch {
                    let nb = min(chunk, batch - n0), np = nb * p
                    g.im2col(xb.baseAddress! + n0 * g.imageSize, images: nb, into: col)
                    BLAS.gemm(transA: false, transB: false, m: co, n: np, k: kk, a: wb.baseAddress!, lda: kk,
                              b: col, ldb: np, c: staged, ldc: np)
                    n0 += nb
                    // [out, nb·P] → nb × [out, P], adding the bias (the activation follows in one pass).
                    out.storage.withUnsafeMutableBufferPointer { ob in
                        bias.value.storage.withUnsafeBufferPointer { bb in
                            var n = 0
                            while n < nb {
                                let dst = ob.baseAddress! + (n0 - nb + n) * co * p
                                var c = 0
                                while c < co {
                                    Conv2D.copyAddingBias(staged + c * np + n * p, bb[c], into: dst + c * p, p)
                                    c += 1
                                }
                                n += 1
                            }
                        }
                    }
                }
            }
        }
        if f != .identity {
            if keepPre { pre.storage = out.storage }
            out.storage.withUnsafeMutableBufferPointer { ob in
                ActivationKernels.forward(f, ob.baseAddress!, ob.baseAddress!, ob.count)
            }
        }
        input = training ? x : nil
        return out
    }

    public func backward(_ gradOutput: Tensor) -> Tensor { backward(gradOutput, inputGradient: true) }

    /// Weight and bias gradients only: skips `dcol = Wᵀ·G` and col2im (the first layer of a model).
    public func backwardParameters(_ gradOutput: Tensor) { _ = backward(gradOutput, inputGradient: false) }

    private func backward(_ gradOutput: Tensor, inputGradient: Bool) -> Tensor {
        guard let x = input else { preconditionFailure("Conv2D.backward without a training forward") }
        let g = geometry(x.shape)
        let batch = x.shape[0], p = g.outPixels, co = outChannels, kk = g.columnRows
        precondition(gradOutput.shape == [batch, co, g.outHeight, g.outWidth] && out.shape == gradOutput.shape,
                     "Conv2D.backward: gradient shape \(gradOutput.shape), expected \([batch, co, g.outHeight, g.outWidth])")
        if inputGradient {
            if dx.shape != x.shape { dx = Tensor(zeros: x.shape) } else { dx.fill(0) }
        }
        let f = activation, fromOutput = f.derivativeFromOutput
        let chunk = chunkSize(g, batch: batch)
        let col = columns.reserve(kk * chunk * p), gm = staging.reserve(co * chunk * p)
        let ones = self.ones.reserve(chunk * p, value: 1)
        x.storage.withUnsafeBufferPointer { xb in
            gradOutput.storage.withUnsafeBufferPointer { gb in
                out.storage.withUnsafeBufferPointer { yb in
                    pre.storage.withUnsafeBufferPointer { zb in
                        weight.value.storage.withUnsafeBufferPointer { wb in
                            weight.grad.storage.withUnsafeMutableBufferPointer { dwb in
                                bias.grad.storage.withUnsafeMutableBufferPointer { dbb in
                                    var n0 = 0
                                    while n0 < batch {
                                        let nb = min(chunk, batch - n0), np = nb * p
                                        // G[out, nb·P] = f′ ⊙ ∂L/∂y, from nb × [out, P].
                                        var n = 0
                                        while n < nb {
                                            let o = (n0 + n) * co * p
                                            var c = 0
                                            while c < co {
                                                let d = gm + c * np + n * p, at = o + c * p
                                                if f == .identity {
                                                    d.update(from: gb.baseAddress! + at, count: p)
                                                } else {
                                                    ActivationKernels.backward(
                                                        f, x: fromOutput ? nil : zb.baseAddress! + at,
                                                        y: fromOutput ? yb.baseAddress! + at : nil,
                                                        gb.baseAddress! + at, d, p)
                                                }
                                                c += 1
                                            }
                                            n += 1
                                        }
                                        BLAS.gemv(trans: false, m: co, n: np, a: gm, lda: np, x: ones, beta: 1,
                                                  y: dbb.baseAddress!)
                                        if !columnsHoldInput {
                                            g.im2col(xb.baseAddress! + n0 * g.imageSize, images: nb, into: col)
                                        }
                                        BLAS.gemm(transA: false, transB: true, m: co, n: kk, k: np, a: gm, lda: np,
                                                  b: col, ldb: np, beta: 1, c: dwb.baseAddress!, ldc: kk)
                                        if inputGradient {
                                            BLAS.gemm(transA: true, transB: false, m: kk, n: np, k: co, a: wb.baseAddress!,
                                                      lda: kk, b: gm, ldb: np, c: col, ldc: np)
                                            dx.storage.withUnsafeMutableBufferPointer { dxb in
                                                g.col2im(col, images: nb, into: dxb.baseAddress! + n0 * g.imageSize)
                                            }
                                        }
                                        n0 += nb
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        input = nil
        columnsHoldInput = false
        pre = Tensor(zeros: [0])
        return inputGradient ? dx : Tensor(zeros: [0])
    }

    /// d[i] = s[i] + b.
    @inline(__always)
    static func copyAddingBias(_ s: UnsafePointer<Float>, _ b: Float, into d: UnsafeMutablePointer<Float>, _ n: Int) {
        var i = 0
        while i < n {
            d[i] = s[i] + b
            i += 1
        }
    }

    @inline(__always)
    static func addInPlace(_ d: UnsafeMutablePointer<Float>, _ s: UnsafePointer<Float>, _ n: Int) {
        var i = 0
        while i < n {
            d[i] += s[i]
            i += 1
        }
    }
}

/// Shapes of one convolution and the im2col / col2im lowering (see Note [Conv2D as one GEMM per chunk]).
struct ConvGeometry {
    let channels: Int, height: Int, width: Int
    let kernel: Int, stride: Int, padding: Int
    let outHeight: Int, outWidth: Int

    var outPixels: Int { outHeight * outWidth }
    var columnRows: Int { channels * kernel * kernel }
    var imageSize: Int { channels * height * width }

    /// Output columns `[lo, hi)` whose input column `ow·stride − padding + kj` lies inside the image.
    @inline(__always)
    func validColumns(_ kj: Int) -> (Int, Int) {
        let shift = padding - kj
        let lo = shift <= 0 ? 0 : (shift + stride - 1) / stride
        let last = width - 1 + shift
        let hi = last < 0 ? 0 : min(outWidth, last / stride + 1)
        return (min(lo, outWidth), max(hi, min(lo, outWidth)))
    }

    /// Rows of a lowered image are short (the output width), where a plain loop beats a memmove call.
    @inline(__always)
    static func copy(_ s: UnsafePointer<Float>, into d: UnsafeMutablePointer<Float>, _ n: Int) {
        if n >= 32 { return d.update(from: s, count: n) }
        var i = 0
        while i < n {
            d[i] = s[i]
            i += 1
        }
    }

    @inline(__always)
    static func zero(_ d: UnsafeMutablePointer<Float>, _ n: Int) {
        if n >= 32 { return d.update(repeating: 0, count: n) }
        var i = 0
        while i < n {
            d[i] = 0
            i += 1
        }
    }

    /// Lowers `images` consecutive NCHW images at `x` into `col[columnRows, images·outPixels]`.
    func im2col(_ x: UnsafePointer<Float>, images: Int, into col: UnsafeMutablePointer<Float>) {
        let pixels = outPixels, np = images * pixels, plane = height * width
        var c = 0
        while c < channels {
            var ki = 0
            while ki < kernel {
                var kj = 0
                while kj < kernel {
                    let row = col + ((c * kernel + ki) * kernel + kj) * np
                    let (lo, hi) = validColumns(kj)
                    var n = 0
                    while n < images {
                        let img = x + (n * channels + c) * plane
                        var oh = 0
                        while oh < outHeight {
                            let dst = row + n * pixels + oh * outWidth
                            let ih = oh * stride - padding + ki
                            if ih < 0 || ih >= height || lo >= hi {
                                ConvGeometry.zero(dst, outWidth)
                            } else {
                                if lo > 0 { ConvGeometry.zero(dst, lo) }
                                let src = img + ih * width + (lo * stride - padding + kj)
                                if stride == 1 {
                                    ConvGeometry.copy(src, into: dst + lo, hi - lo)
                                } else {
                                    var ow = lo, s = 0
                                    while ow < hi {
                                        dst[ow] = src[s]
                                        ow += 1
                                        s += stride
                                    }
                                }
                                if hi < outWidth { ConvGeometry.zero(dst + hi, outWidth - hi) }
                            }
                            oh += 1
                        }
                        n += 1
                    }
                    kj += 1
                }
                ki += 1
            }
            c += 1
        }
    }

    /// Adds `col[columnRows, images·outPixels]` back into `images` NCHW images at `dx` (the adjoint of im2col).
    func col2im(_ col: UnsafePointer<Float>, images: Int, into dx: UnsafeMutablePointer<Float>) {
        let pixels = outPixels, np = images * pixels, plane = height * width
        var c = 0
        while c < channels {
            var ki = 0
            while ki < kernel {
                var kj = 0
                while kj < kernel {
                    let row = col + ((c * kernel + ki) * kernel + kj) * np
                    let (lo, hi) = validColumns(kj)
                    if lo < hi {
                        var n = 0
                        while n < images {
                            let img = dx + (n * channels + c) * plane
                            var oh = 0
                            while oh < outHeight {
                                let ih = oh * stride - padding + ki
                                if ih >= 0 && ih < height {
                                    let src = row + n * pixels + oh * outWidth + lo
                                    let dst = img + ih * width + (lo * stride - padding + kj)
                                    if stride == 1 {
                                        Conv2D.addInPlace(dst, src, hi - lo)
                                    } else {
                                        var i = 0, d = 0
                                        while i < hi - lo {
                                            dst[d] += src[i]
                                            i += 1
                                            d += stride
                                        }
                                    }
                                }
                                oh += 1
                            }
                            n += 1
                        }
                    }
                    kj += 1
                }
                ki += 1
            }
            c += 1
        }
    }
}

/// A growable Float scratch buffer a layer owns and reuses between calls (no per-call allocation once
/// warm). Not thread-safe: like the layer that owns it, it belongs to one training loop.
final class LayerScratchBuffer {
    private var pointer: UnsafeMutablePointer<Float>?
    private var capacity = 0
    private var filledWith: Float?

    init() {}

    /// At least `count` values; contents unspecified unless `value` is given (then all `value`).
    func reserve(_ count: Int, value: Float? = nil) -> UnsafeMutablePointer<Float> {
        if count > capacity || pointer == nil {
            pointer?.deallocate()
            capacity = max(count, 1)
            pointer = .allocate(capacity: capacity)
            filledWith = nil
        }
        if let value, filledWith != value {
            pointer!.initialize(repeating: value, count: capacity)
            filledWith = value
        } else if value == nil {
            filledWith = nil
        }
        return pointer!
    }

    deinit { pointer?.deallocate() }
}
