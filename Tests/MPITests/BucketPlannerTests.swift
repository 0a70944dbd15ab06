import NebulaEngine
import NebulaMPI
import Testing

@Suite("Bucket planner")
struct BucketPlannerTests {
    @Test func reverseModelOrderUnderTheCap() {
        // 4-byte elements, cap 40 bytes = 10 elements.
        let plan = planGradientBuckets(parameterSizes: [4, 3, 2, 6, 1], capBytes: 40)
        #expect(plan.map(\.parameters) == [[4, 3, 2], [1, 0]])
        #expect(plan.map(\.offsets) == [[0, 1, 7], [0, 3]])
        #expect(plan.map(\.elementCount) == [9, 7])
    }

    @Test func parameterLargerThanTheCapTravelsAlone() {
        let plan = planGradientBuckets(parameterSizes: [2, 100, 3, 1], capBytes: 40)
        #expect(plan.map(\.parameters) == [[3, 2], [1], [0]])
        #expect(plan.map(\.elementCount) == [4, 100, 2])
    }

    @Test func everyParameterExactlyOnceAndWithinTheCap() {
        var rng = SeededGenerator(seed: 3)
        for cap in [4, 64, 1000, defaultBucketCapBytes] {
            let sizes = (0..<50).map { _ in Int(rng.next() % 300) }
            let plan = planGradientBuckets(parameterSizes: sizes, capBytes: cap)
            #expect(plan.flatMap(\.parameters) == Array(sizes.indices.reversed()))
            for b in plan {
                #expect(b.elementCount == b.parameters.reduce(0) { $0 + sizes[$1] })
                #expect(b.elementCount * 4 <= cap || b.parameters.filter { sizes[$0] > 0 }.count <= 1, "\(b)")
                #expect(zip(b.offsets, b.offsets.dropFirst()).allSatisfy { $0 <= $1 })
            }
            // Deterministic: what every rank computes from the same sizes.
            #expect(plan == planGradientBuckets(parameterSizes: sizes, capBytes: cap))
        }
    }

    @Test func defaultCapKeepsAnMLPInOneBucket() {
        let model = MLP(inputs: 64, hidden: [256, 256], outputs: 10, seed: 0).build()
        let plan = planGradientBuckets(parameterSizes: model.parameters.map(\.value.count))
        #expect(plan.count == 1)
        #expect(plan[0].parameters == [5, 4, 3, 2, 1, 0])
        #expect(plan[0].elementCount == 64 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10)
    }

    @Test func emptyInputs() {
        #expect(planGradientBuckets(parameterSizes: []).isEmpty)
        #expect(planGradientBuckets(parameterSizes: [0, 0]).map(\.elementCount) == [0])
    }
}
