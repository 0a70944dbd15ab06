/// PyTorch DDP's default bucket size (`bucket_cap_mb = 25`).
public let defaultBucketCapBytes = 25 * 1024 * 1024

/// A group of parameters whose gradients travel in one allreduce: `parameters` are indices into the
/// model's parameter list, in the order their values are packed; `offsets[i]` is where parameter
/// `parameters[i]` starts inside the bucket (in elements), `elementCount` the bucket's total.
public struct GradientBucket: Sendable, Equatable, CustomStringConvertible {
    public var parameters: [Int]
    public var offsets: [Int]
    public var elementCount: Int

    public init(parameters: [Int], offsets: [Int], elementCount: Int) {
        self.parameters = parameters
        self.offsets = offsets
        self.elementCount = elementCount
    }

    public var description: String { "bucket(\(parameters), \(elementCount) elements)" }
}

/// Splits parameters into allreduce buckets: a pure function of the sizes, so every rank computes the
/// same plan from the same model and no negotiation is needed (Horovod negotiates tensor readiness
/// because its tensors arrive in any order; a synchronous trainer knows the order up front).
///
/// Note [Bucket order]: buckets are filled in *reverse* model order, as PyTorch's reducer does: the
/// backward pass produces the last layers' gradients first, so a trainer that overlaps communication
/// with backward can send bucket 0 while earlier layers still compute (`FusionBuffer`'s Note
/// [Overlapped reduction]; the blocking path reduces in the same order after backward).
///
/// Note [Bucket cap]: the cap is hard: a bucket closes before a parameter that would take it past
/// `capBytes`; a parameter larger than the cap travels alone in its own bucket (it is never split
/// across buckets; the fusion buffer may still send it in segments, Note [Segmented reduction]).
/// PyTorch instead closes a bucket once it *reaches* the cap, so its buckets overshoot by up to one
/// tensor. Empty parameters join the current bucket and cost nothing.
///
/// - Parameters:
///   - parameterSizes: element counts in model order (`model.parameters.map(\.value.count)`).
///   - capBytes: the largest bucket, in bytes (default 25 MiB, PyTorch's).
///   - bytesPerElement: 4 for Float32 gradients.
public func planGradientBuckets(parameterSizes: [Int], capBytes: Int = defaultBucketCapBytes,
                                bytesPerElement: Int = MemoryLayout<Float>.size) -> [GradientBucket] {
    precondition(capBytes > 0 && bytesPerElement > 0, "bucket cap and element size must be positive")
    precondition(parameterSizes.allSatisfy { $0 >= 0 }, "negative parameter size")
    let capElements = max(1, capBytes / bytesPerElement)
    var buckets: [GradientBucket] = []
    var current = GradientBucket(parameters: [], offsets: [], elementCount: 0)
    for index in parameterSizes.indices.reversed() {
        let n = parameterSizes[index]
        if current.elementCount > 0 && current.elementCount + n > capElements {
            buckets.append(current)
            current = GradientBucket(parameters: [], offsets: [], elementCount: 0)
        }
        current.parameters.append(index)
        current.offsets.append(current.elementCount)
        current.elementCount += n
    }
    if !current.parameters.isEmpty { buckets.append(current) }
    return buckets
}
