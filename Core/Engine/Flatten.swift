/// `[batch, d1, d2, …]` → `[batch, d1·d2·…]`; backward restores the shape.
public final class Flatten: Layer {
    private var inputShape: [Int] = []

    public init() {}

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        if training { inputShape = x.shape }
        return x.reshaped([x.rows, x.columns])
    }

    public func backward(_ g: Tensor) -> Tensor {
        precondition(!inputShape.isEmpty, "Flatten.backward without a training forward")
        return g.reshaped(inputShape)
    }
}
