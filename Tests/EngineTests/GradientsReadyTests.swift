import NebulaEngine
import Testing

/// Note [Gradients-ready hook]: the backward pass reports each layer's parameters once, last layer
/// first, and the gradients it reports are already the final ones.
@Suite("Gradients-ready hook")
struct GradientsReadyTests {
    private static func tensor(_ shape: [Int], seed: UInt64) -> Tensor {
        var rng = SeededGenerator(seed: seed)
        return Tensor(shape: shape, storage: (0..<shape.reduce(1, *)).map { _ in rng.uniform(1) })
    }

    /// A nested Sequential with parameterless layers in between: every parameter is reported exactly
    /// once, in reverse layer order, and the gradients equal those of the plain backward pass.
    @Test(arguments: [false, true])
    func reportsEachLayerOnceInBackwardOrderWithFinalGradients(firstLayerInputGradient: Bool) {
        func build() -> Sequential {
            var rng = SeededGenerator(seed: 3)
            return Sequential([FusedDense(5, 7, activation: .relu, rng: &rng, name: "a"),
                               Sequential([Dense(7, 6, rng: &rng), ReLU(), LayerNorm(6)]),
                               FusedDense(6, 4, rng: &rng, name: "c")])
        }
        let hooked = build(), plain = build()
        let x = Self.tensor([9, 5], seed: 4), g = Self.tensor([9, 4], seed: 5)
        _ = hooked.forward(x, training: true)
        _ = plain.forward(x, training: true)
        var reports: [[String]] = []
        var snapshots: [String: [Float]] = [:]
        let record: GradientsReady = { ready in
            reports.append(ready.map(\.name))
            for p in ready { snapshots[p.name] = p.grad.storage }
        }
        let dx: Tensor?
        if firstLayerInputGradient {
            dx = hooked.backward(g, gradientsReady: record)
        } else {
            hooked.backwardParameters(g, gradientsReady: record)
            dx = nil
        }
        let dxPlain = firstLayerInputGradient ? plain.backward(g) : nil
        if !firstLayerInputGradient { plain.backwardParameters(g) }
        let names = hooked.layers.reversed().flatMap { layer -> [[String]] in
            if let inner = layer as? Sequential {
                return inner.layers.reversed().map { $0.parameters.map(\.name) }.filter { !$0.isEmpty }
            }
            return [layer.parameters.map(\.name)]
        }
        #expect(reports == names)
        #expect(Set(reports.joined()).count == hooked.parameters.count)
        // What was reported is final: the values seen inside the hook are the pass's end values, and
        // they equal the hook-free pass.
        for (p, q) in zip(hooked.parameters, plain.parameters) {
            #expect(snapshots[p.name] == p.grad.storage, "\(p.name) changed after it was reported")
            #expect(p.grad.storage == q.grad.storage, "\(p.name)")
        }
        if let dx, let dxPlain { #expect(dx.storage == dxPlain.storage) }
    }
}
