/// Max pooling over NCHW input with a square `kernelSize` window and `stride` (default: the kernel
/// size, no padding): output `[batch, channels, (h − k) / s + 1, (w − k) / s + 1]`, as PyTorch's
/// `MaxPool2d`. Forward keeps each output's argmax (flat index into the input); backward routes the
/// gradient there. On ties the first maximum in row-major window order wins.
public final class MaxPool2D: Layer {
    public let kernelSize: Int
    public let stride: Int

    private var argmax: [Int32] = []
    private var inputShape: [Int] = []

    public init(kernelSize: Int, stride: Int? = nil) {
        precondition(kernelSize > 0 && (stride ?? kernelSize) > 0, "MaxPool2D: invalid configuration")
        self.kernelSize = kernelSize
        self.stride = stride ?? kernelSize
    }

    public func outputSize(height: Int, width: Int) -> (height: Int, width: Int) {
        ((height - kernelSize) / stride + 1, (width - kernelSize) / stride + 1)
    }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        precondition(x.rank == 4, "MaxPool2D expects [batch, channels, height, width], got \(x.shape)")
        precondition(x.count <= Int(Int32.max), "MaxPool2D: input too large for Int32 argmax indices")
        let h = x.shape[2], w = x.shape[3], k = kernelSize, s = stride
        let (oh, ow) = outputSize(height: h, width: w)
        precondition(oh > 0 && ow > 0, "MaxPool2D: input \(x.shape) is smaller than the window")
        let planes = x.shape[0] * x.shape[1]
        var out = Tensor(zeros: [x.shape[0], x.shape[1], oh, ow])
        if training {
            if argmax.count != out.count { argmax = [Int32](repeating: 0, count: out.count) }
            inputShape = x.shape
        }
        x.storage.withUnsafeBufferPointer { xb in
            out.storage.withUnsafeMutableBufferPointer { ob in
                argmax.withUnsafeMutableBufferPointer { ab in
                    let xp = xb.baseAddress!, op = ob.baseAddress!
                    var o = 0, plane = 0
                    while plane < planes {
                        let base = plane * h * w
                        var r = 0
                        while r < oh {
                            var c = 0
                            while c < ow {
                                var best = base + r * s * w + c * s
                                var bestValue = xp[best]
                                var i = 0
                                while i < k {
                                    var idx = base + (r * s + i) * w + c * s
                                    let end = idx + k
                                    while idx < end {
                                        if xp[idx] > bestValue {
                                            bestValue = xp[idx]
                                            best = idx
                                        }
                                        idx += 1
                                    }
                                    i += 1
                                }
                                op[o] = bestValue
                                if training { ab[o] = Int32(best) }
                                o += 1
                                c += 1
                            }
                            r += 1
                        }
                        plane += 1
                    }
                }
            }
        }
        return out
    }

    public func backward(_ g: Tensor) -> Tensor {
        precondition(!inputShape.isEmpty, "MaxPool2D.backward without a training forward")
        precondition(g.count == argmax.count && g.rank == 4 && g.shape[0] == inputShape[0],
                     "MaxPool2D.backward: gradient shape \(g.shape) does not match the forward output")
        var dx = Tensor(zeros: inputShape)
        dx.storage.withUnsafeMutableBufferPointer { db in
            g.storage.withUnsafeBufferPointer { gb in
                argmax.withUnsafeBufferPointer { ab in
                    var i = 0
                    while i < gb.count {
                        db[Int(ab[i])] += gb[i]
                        i += 1
                    }
                }
            }
        }
        return dx
    }
}
