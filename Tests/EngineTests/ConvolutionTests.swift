import NebulaEngine
import Testing

/// Direct (loop) convolution, the reference for Conv2D's im2col + GEMM path.
private func referenceConv(_ x: Tensor, _ conv: Conv2D) -> Tensor {
    let (n, cin, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let (oh, ow) = conv.outputSize(height: h, width: w)
    let k = conv.kernelSize, s = conv.stride, p = conv.padding, cout = conv.outChannels
    var out = Tensor(zeros: [n, cout, oh, ow])
    for b in 0..<n {
        for co in 0..<cout {
            for r in 0..<oh {
                for c in 0..<ow {
                    var acc = Double(conv.bias.value.storage[co])
                    for ci in 0..<cin {
                        for i in 0..<k {
                            for j in 0..<k {
                                let ih = r * s - p + i, iw = c * s - p + j
                                guard ih >= 0, ih < h, iw >= 0, iw < w else { continue }
                                acc += Double(conv.weight.value.storage[((co * cin + ci) * k + i) * k + j])
                                    * Double(x.storage[((b * cin + ci) * h + ih) * w + iw])
                            }
                        }
                    }
                    out.storage[((b * cout + co) * oh + r) * ow + c] = Float(acc)
                }
            }
        }
    }
    return out
}

private func randomTensor(_ shape: [Int], _ rng: inout SeededGenerator) -> Tensor {
    Tensor(shape: shape, storage: (0..<shape.reduce(1, *)).map { _ in rng.uniform(1) })
}

/// (batch, inChannels, outChannels, height, width, kernel, stride, padding)
private let convCases: [(Int, Int, Int, Int, Int, Int, Int, Int)] = [
    (2, 1, 3, 5, 5, 3, 1, 1),
    (2, 2, 3, 6, 5, 3, 1, 0),
    (1, 2, 2, 7, 6, 3, 2, 1),
    (3, 3, 2, 4, 4, 1, 1, 0),
    (2, 1, 2, 5, 7, 2, 2, 0),
    (1, 2, 2, 4, 5, 3, 2, 2),
    (2, 1, 1, 3, 3, 5, 1, 2),
]

@Suite("Conv2D, MaxPool2D, Flatten")
struct ConvolutionTests {
    @Test(arguments: convCases.indices)
    func convMatchesDirectConvolution(_ caseIndex: Int) {
        let (n, cin, cout, h, w, k, s, p) = convCases[caseIndex]
        var rng = SeededGenerator(seed: UInt64(10 + caseIndex))
        let conv = Conv2D(cin, cout, kernelSize: k, stride: s, padding: p, rng: &rng)
        let x = randomTensor([n, cin, h, w], &rng)
        let expected = referenceConv(x, conv)
        let y = conv.forward(x, training: false)
        #expect(y.shape == expected.shape)
        let diff = zip(y.storage, expected.storage).map { abs($0 - $1) }.max() ?? 0
        #expect(diff < 1e-5, "max difference \(diff)")
        // One image per chunk gives the same result.
        conv.maxColumnElements = 1
        let chunked = conv.forward(x, training: false)
        #expect(zip(chunked.storage, expected.storage).allSatisfy { abs($0 - $1) < 1e-5 })
    }

    @Test(arguments: convCases.indices)
    func convGradients(_ caseIndex: Int) {
        let (n, cin, cout, h, w, k, s, p) = convCases[caseIndex]
        var rng = SeededGenerator(seed: UInt64(20 + caseIndex))
        let conv = Conv2D(cin, cout, kernelSize: k, stride: s, padding: p, rng: &rng)
        let x = randomTensor([n, cin, h, w], &rng)
        let r = GradientCheck.check(conv, input: x)
        #expect(r.maxRelativeError < 1e-2, "\(r)")
        conv.maxColumnElements = 1
        let chunked = GradientCheck.check(conv, input: x)
        #expect(chunked.maxRelativeError < 1e-2, "chunked: \(chunked)")
    }

    @Test func convInitialisationFollowsPyTorch() {
        var rng = SeededGenerator(seed: 3)
        let conv = Conv2D(4, 8, kernelSize: 3, rng: &rng)
        let bound = 1 / Float(4 * 9).squareRoot()
        #expect(conv.weight.value.shape == [8, 4, 3, 3])
        #expect(conv.bias.value.shape == [8])
        #expect(conv.weight.value.maxAbs <= bound && conv.bias.value.maxAbs <= bound)
        #expect(conv.weight.value.maxAbs > bound * 0.8)
        #expect(conv.parameters.map(\.name) == ["conv.weight", "conv.bias"])
        #expect(conv.outputSize(height: 8, width: 8) == (6, 6))
        #expect(Conv2D(1, 1, kernelSize: 3, stride: 2, padding: 1, rng: &rng).outputSize(height: 7, width: 8) == (4, 4))
    }

    @Test func maxPoolForwardAndRouting() {
        let pool = MaxPool2D(kernelSize: 2)
        let x = Tensor(shape: [1, 1, 4, 4], storage: [1, 5, 2, 0,
                                                      3, 4, 8, 7,
                                                      9, 0, 1, 1,
                                                      2, 6, 3, 2.5])
        let y = pool.forward(x, training: true)
        #expect(y.shape == [1, 1, 2, 2])
        #expect(y.storage == [5, 8, 9, 3])
        let dx = pool.backward(Tensor(shape: [1, 1, 2, 2], storage: [1, 2, 3, 4]))
        #expect(dx.storage == [0, 1, 0, 0,
                               0, 0, 2, 0,
                               3, 0, 0, 0,
                               0, 0, 4, 0])
    }

    /// Inputs are a shuffled permutation spaced 0.1 apart, so no window has a tie or a near-tie that the
    /// finite-difference step (0.01) could flip.
    @Test(arguments: [(2, 2), (3, 2), (2, 1), (3, 3)])
    func maxPoolGradients(_ kernel: Int, _ step: Int) {
        var rng = SeededGenerator(seed: UInt64(kernel * 10 + step))
        let shape = [2, 3, 7, 6]
        var values = (0..<shape.reduce(1, *)).map { Float($0) * 0.1 - 10 }
        for i in stride(from: values.count - 1, to: 0, by: -1) { values.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
        let pool = MaxPool2D(kernelSize: kernel, stride: step)
        let r = GradientCheck.check(pool, input: Tensor(shape: shape, storage: values))
        #expect(r.maxRelativeError < 1e-2, "\(r)")
    }

    @Test func flattenShapesAndGradients() {
        var rng = SeededGenerator(seed: 5)
        let flat = Flatten()
        let x = randomTensor([3, 2, 2, 3], &rng)
        let y = flat.forward(x, training: true)
        #expect(y.shape == [3, 12] && y.storage == x.storage)
        #expect(flat.backward(y).shape == [3, 2, 2, 3])
        #expect(GradientCheck.check(flat, input: x).maxRelativeError < 1e-3)
    }

    /// Conv → Conv → Flatten → Dense end to end (no pooling: a max over conv outputs can flip under the
    /// finite-difference step, which the dedicated MaxPool2D check avoids by construction).
    @Test func smallConvNetGradients() {
        var rng = SeededGenerator(seed: 9)
        let net = Sequential([
            Conv2D(1, 2, kernelSize: 3, padding: 1, rng: &rng, name: "c1"),
            Conv2D(2, 3, kernelSize: 3, padding: 1, rng: &rng, name: "c2"),
            Flatten(), Dense(48, 3, rng: &rng),
        ])
        let x = randomTensor([2, 1, 4, 4], &rng)
        let r = GradientCheck.check(net, input: x)
        #expect(r.maxRelativeError < 2e-2, "\(r)")
    }
}

@Suite("Conv2D as a first layer")
struct ConvolutionFirstLayerTests {
    @Test func backwardParametersMatchesBackward() {
        var rng = SeededGenerator(seed: 31)
        let a = Conv2D(2, 3, kernelSize: 3, stride: 2, padding: 1, rng: &rng)
        var copy = SeededGenerator(seed: 31)
        let b = Conv2D(2, 3, kernelSize: 3, stride: 2, padding: 1, rng: &copy)
        let x = randomTensor([3, 2, 6, 5], &rng)
        let ya = a.forward(x, training: true), yb = b.forward(x, training: true)
        #expect(ya == yb)
        let g = randomTensor(ya.shape, &rng)
        _ = a.backward(g)
        b.backwardParameters(g)
        #expect(a.weight.grad == b.weight.grad)
        #expect(a.bias.grad == b.bias.grad)
    }
}

@Suite("Conv2D with a fused activation")
struct ConvolutionActivationTests {
    /// Fused and separate layers start from the same generator state, so they hold the same weights.
    @Test(arguments: [Activation.relu, .tanh, .sigmoid, .gelu])
    func fusedMatchesSeparateLayers(_ f: Activation) throws {
        var r1 = SeededGenerator(seed: 40), r2 = SeededGenerator(seed: 40)
        let fused = Conv2D(2, 3, kernelSize: 3, padding: 1, activation: f, rng: &r1)
        let plain = Conv2D(2, 3, kernelSize: 3, padding: 1, rng: &r2)
        let separate = Sequential([plain, try #require(f.makeLayer())])
        let x = randomTensor([2, 2, 5, 4], &r1)
        let a = fused.forward(x, training: true), b = separate.forward(x, training: true)
        #expect(zip(a.storage, b.storage).allSatisfy { abs($0 - $1) <= 1e-6 })
        let g = randomTensor(a.shape, &r1)
        let da = fused.backward(g), db = separate.backward(g)
        #expect(zip(da.storage, db.storage).allSatisfy { abs($0 - $1) <= 1e-5 })
        #expect(zip(fused.weight.grad.storage, plain.weight.grad.storage).allSatisfy { abs($0 - $1) <= 1e-5 })
        #expect(zip(fused.bias.grad.storage, plain.bias.grad.storage).allSatisfy { abs($0 - $1) <= 1e-5 })
    }

    /// Smooth activations only: ReLU's kink is covered by the comparison above.
    @Test(arguments: [Activation.tanh, .sigmoid, .gelu])
    func fusedGradients(_ f: Activation) {
        var rng = SeededGenerator(seed: 41)
        let conv = Conv2D(2, 2, kernelSize: 3, stride: 2, padding: 1, activation: f, rng: &rng)
        let x = randomTensor([2, 2, 5, 6], &rng)
        let r = GradientCheck.check(conv, input: x)
        #expect(r.maxRelativeError < 1e-2, "\(r)")
    }

    /// The layer reuses its output buffer; a tensor the caller still holds must not change.
    @Test func heldOutputsAreNotOverwritten() {
        var rng = SeededGenerator(seed: 42)
        let conv = Conv2D(1, 2, kernelSize: 3, padding: 1, activation: .relu, rng: &rng)
        let x1 = randomTensor([1, 1, 4, 4], &rng), x2 = randomTensor([1, 1, 4, 4], &rng)
        let y1 = conv.forward(x1, training: false)
        let copy = y1.storage
        _ = conv.forward(x2, training: false)
        #expect(y1.storage == copy)
    }
}
