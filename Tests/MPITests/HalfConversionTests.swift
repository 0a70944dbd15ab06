import NebulaEngine
import NebulaMPI
import Testing

/// Note [Half conversion without F16C]: the SIMD conversions give the bits Swift's own conversions give.
@Suite("Float16 conversion")
struct HalfConversionTests {
    /// Same bits, or both NaN.
    static func same(_ a: Float16, _ b: Float16) -> Bool { a.bitPattern == b.bitPattern || (a.isNaN && b.isNaN) }

    @Test func everyFloat16ConvertsToItsFloatExactly() {
        let halves = (0...UInt16.max).map { Float16(bitPattern: $0) }
        var floats = [Float](repeating: 0, count: halves.count)
        halves.withUnsafeBufferPointer { h in
            floats.withUnsafeMutableBufferPointer { HalfConversion.toFloat(h.baseAddress!, $0.baseAddress!, count: h.count) }
        }
        var wrong = 0
        for (h, f) in zip(halves, floats) where !(Float(h).bitPattern == f.bitPattern || (h.isNaN && f.isNaN)) { wrong += 1 }
        #expect(wrong == 0, "\(wrong) of 65536 halves convert wrongly")
    }

    /// Every Float16, the midpoints between neighbours (ties: round to even), one Float ulp either side
    /// of each midpoint, values beyond the largest Float16, Float subnormals, NaN and ±∞, and seeded
    /// random Floats of every magnitude, each also scaled by 3 on the way.
    @Test func floatsRoundToTheNearestEvenFloat16() {
        var inputs: [Float] = [0, -0, .infinity, -.infinity, .nan, 65504, 65519.99, 65520, 70000, 1e30, -1e30,
                               .leastNonzeroMagnitude, .leastNormalMagnitude, 0x1p-25, 0x1.8p-25, 0x1p-24, 0x1p-26]
        for bits in UInt16(0)..<0x7C00 {
            let lo = Float(Float16(bitPattern: bits)), hi = Float(Float16(bitPattern: bits + 1))
            let mid = (lo + hi) / 2
            for v in [lo, mid, mid.nextDown, mid.nextUp] { inputs += [v, -v] }
        }
        var rng = SeededGenerator(seed: 3)
        for _ in 0..<200_000 { inputs.append(Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()))) }
        for scale: Float in [1, 3] {
            var out = [Float16](repeating: 0, count: inputs.count)
            inputs.withUnsafeBufferPointer { i in
                out.withUnsafeMutableBufferPointer { HalfConversion.toHalf(i.baseAddress!, $0.baseAddress!, count: i.count, scale: scale) }
            }
            var wrong: [Float] = []
            for (x, h) in zip(inputs, out) where !Self.same(Float16(x * scale), h) { wrong.append(x) }
            #expect(wrong.isEmpty, "scale \(scale): \(wrong.count) wrong, e.g. \(wrong.prefix(5))")
        }
    }

    /// The MPI operator's sum: Float16(Float(a) + Float(b)), also for lengths that are not multiples of 8.
    @Test(arguments: [1, 7, 8, 13, 1000])
    func sumInPlaceIsTheRoundedFloatSum(count: Int) {
        var rng = SeededGenerator(seed: UInt64(count))
        let a = (0..<count).map { _ in Float16(rng.uniform(3000)) }
        let b0 = (0..<count).map { _ in Float16(rng.uniform(3000)) }
        var b = b0
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeMutableBufferPointer { HalfConversion.addInPlace(pa.baseAddress!, $0.baseAddress!, count: count) }
        }
        #expect(zip(zip(a, b0), b).allSatisfy { Self.same(Float16(Float($0.0) + Float($0.1)), $1) })
    }
}
