/// Float32 ↔ Float16 conversion of whole buffers, eight lanes at a time with integer SIMD.
///
/// Note [Half conversion without F16C]: Swift's `Float16(x)` and `Float(h)` compile to a call into
/// compiler-rt per element on an x86-64 build for the baseline CPU (no F16C instructions), and the
/// Float16 wire format converts every gradient element three times per step (pack, the MPI sum, unpack):
/// with the scalar conversions it ran at about a tenth of the Float32 path's speed (bench/allreduce.sh,
/// fusion-fp16). These are the branch-free bit manipulations of F. Giesen's `float_to_half_fast3_rtne`
/// and `half_to_float_fast5`, done on `SIMD8<UInt32>` lanes: round to nearest even, overflow to ±∞,
/// NaN to a quiet NaN, subnormals both ways. They give the same bits as `Float16(x)` / `Float(h)`; the
/// tests compare them over every Float16 and every rounding boundary between neighbouring Float16s.
public enum HalfConversion {
    /// dst[i] = Float16(scale · src[i]) for `count` elements.
    public static func toHalf(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float16>, count: Int, scale: Float = 1) {
        let s = SIMD8<Float>(repeating: scale)
        var i = 0
        while i + 8 <= count {
            let v = UnsafeRawPointer(src + i).loadUnaligned(as: SIMD8<Float>.self) * s
            UnsafeMutableRawPointer(dst + i).storeBytes(of: halfBits(v), as: SIMD8<UInt16>.self)
            i += 8
        }
        if i < count { tail(count - i) { $0[$1] = src[i + $1] * scale } store: { dst[i + $1] = Float16(bitPattern: $0[$1]) } }
    }

    /// dst[i] = Float(src[i]) (exact) for `count` elements.
    public static func toFloat(_ src: UnsafePointer<Float16>, _ dst: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        while i + 8 <= count {
            let h = UnsafeRawPointer(src + i).loadUnaligned(as: SIMD8<UInt16>.self)
            UnsafeMutableRawPointer(dst + i).storeBytes(of: floats(h), as: SIMD8<Float>.self)
            i += 8
        }
        while i < count {
            var h = SIMD8<UInt16>(repeating: 0)
            h[0] = src[i].bitPattern
            dst[i] = floats(h)[0]
            i += 1
        }
    }

    /// inout[i] = Float16(Float(input[i]) + Float(inout[i])): the MPI operator of the Float16 wire
    /// (each sum computed in Float32, rounded to Float16 once).
    public static func addInPlace(_ input: UnsafePointer<Float16>, _ inout_: UnsafeMutablePointer<Float16>, count: Int) {
        var i = 0
        while i + 8 <= count {
            let a = floats(UnsafeRawPointer(input + i).loadUnaligned(as: SIMD8<UInt16>.self))
            let b = floats(UnsafeRawPointer(inout_ + i).loadUnaligned(as: SIMD8<UInt16>.self))
            UnsafeMutableRawPointer(inout_ + i).storeBytes(of: halfBits(a + b), as: SIMD8<UInt16>.self)
            i += 8
        }
        while i < count {
            var a = SIMD8<UInt16>(repeating: 0), b = a
            a[0] = input[i].bitPattern
            b[0] = inout_[i].bitPattern
            inout_[i] = Float16(bitPattern: halfBits(floats(a) + floats(b))[0])
            i += 1
        }
    }

    /// The last `n` < 8 elements through one padded vector.
    @inline(__always)
    private static func tail(_ n: Int, _ load: (inout SIMD8<Float>, Int) -> Void, store: (SIMD8<UInt16>, Int) -> Void) {
        var v = SIMD8<Float>(repeating: 0)
        for j in 0..<n { load(&v, j) }
        let h = halfBits(v)
        for j in 0..<n { store(h, j) }
    }

    /// Float16 bit patterns of eight Floats, rounded to nearest even (Giesen's float_to_half_fast3_rtne).
    @inline(__always)
    public static func halfBits(_ f: SIMD8<Float>) -> SIMD8<UInt16> {
        let bits = unsafeBitCast(f, to: SIMD8<UInt32>.self)
        let sign = bits & 0x8000_0000
        let a = bits ^ sign
        // ≥ 2¹⁶ (after rounding, beyond Float16's range): ∞, or a quiet NaN for NaN
        let infOrNaN = SIMD8<UInt32>(repeating: 0x7C00).replacing(with: 0x7E00, where: a .> 0x7F80_0000)
        // below 2⁻¹⁴: Float16 subnormal or zero; adding 0.5 lets the FPU round the mantissa into place
        let shifted = unsafeBitCast(unsafeBitCast(a, to: SIMD8<Float>.self) + 0.5, to: SIMD8<UInt32>.self)
        let subnormal = shifted &- 0x3F00_0000
        // normal: rebias the exponent, round to nearest even on the 13 dropped bits
        let odd = (a &>> 13) & 1
        let normal = (a &+ 0xC800_0FFF &+ odd) &>> 13
        var o = normal
        o.replace(with: subnormal, where: a .< 0x3880_0000)
        o.replace(with: infOrNaN, where: a .>= 0x4780_0000)
        o |= sign &>> 16
        return SIMD8<UInt16>(truncatingIfNeeded: o)
    }

    /// Eight Floats from Float16 bit patterns, exactly (Giesen's half_to_float_fast5).
    @inline(__always)
    public static func floats(_ h: SIMD8<UInt16>) -> SIMD8<Float> {
        let w = SIMD8<UInt32>(truncatingIfNeeded: h)
        var o = (w & 0x7FFF) &<< 13
        let exponent = o & 0x0F80_0000
        o &+= 0x3800_0000  // rebias: (127 − 15) << 23
        // ∞ and NaN: all exponent bits set
        o.replace(with: o &+ 0x3800_0000, where: exponent .== 0x0F80_0000)
        // zero and subnormals: renormalise through the FPU (subtract 2⁻¹⁴)
        let renormalised = unsafeBitCast(unsafeBitCast(o &+ 0x0080_0000, to: SIMD8<Float>.self) - 0x1p-14, to: SIMD8<UInt32>.self)
        o.replace(with: renormalised, where: exponent .== 0)
        o |= (w & 0x8000) &<< 16
        return unsafeBitCast(o, to: SIMD8<Float>.self)
    }
}
