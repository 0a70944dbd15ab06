/// Float32 ↔ Float16 conversion of whole buffers with integer bit manipulation.
///
/// Note [Half conversion without F16C]: Swift's `Float16(x)` and `Float(h)` compile to a call into
/// compiler-rt per element on an x86-64 build for the baseline CPU (no F16C instructions), and the
/// Float16 wire format converts every gradient element three times per step (pack, the MPI sum, unpack):
/// with the library conversions the Float16 path ran at about a tenth of the Float32 path's speed
/// (bench/allreduce.sh, fusion-fp16). These are F. Giesen's `float_to_half_fast3_rtne` and
/// `half_to_float_fast5`: integer operations plus one float add for subnormals, round to nearest even,
/// overflow to ±∞, NaN to a quiet NaN, subnormals both ways; simple loops the compiler can unroll.
/// (A first version on `SIMD8<UInt32>` lanes was slower still: the generic SIMD comparisons and
/// selects did not compile to vector instructions.) They give the same bits as `Float16(x)` /
/// `Float(h)`; the tests compare them over every Float16 and every rounding boundary between
/// neighbouring Float16s.
public enum HalfConversion {
    /// dst[i] = Float16(scale · src[i]) for `count` elements.
    public static func toHalf(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float16>, count: Int, scale: Float = 1) {
        let out = UnsafeMutableRawPointer(dst).assumingMemoryBound(to: UInt16.self)
        for i in 0..<count { out[i] = halfBits(src[i] * scale) }
    }

    /// dst[i] = Float(src[i]) (exact) for `count` elements.
    public static func toFloat(_ src: UnsafePointer<Float16>, _ dst: UnsafeMutablePointer<Float>, count: Int) {
        let input = UnsafeRawPointer(src).assumingMemoryBound(to: UInt16.self)
        for i in 0..<count { dst[i] = float(input[i]) }
    }

    /// inout[i] = Float16(Float(input[i]) + Float(inout[i])): the MPI operator of the Float16 wire
    /// (each sum computed in Float32, rounded to Float16 once).
    public static func addInPlace(_ input: UnsafePointer<Float16>, _ inout_: UnsafeMutablePointer<Float16>, count: Int) {
        let a = UnsafeRawPointer(input).assumingMemoryBound(to: UInt16.self)
        let b = UnsafeMutableRawPointer(inout_).assumingMemoryBound(to: UInt16.self)
        for i in 0..<count { b[i] = halfBits(float(a[i]) + float(b[i])) }
    }

    /// The Float16 bit pattern of `f`, rounded to nearest even (Giesen's float_to_half_fast3_rtne).
    @inline(__always)
    public static func halfBits(_ f: Float) -> UInt16 {
        let bits = f.bitPattern
        let sign = bits & 0x8000_0000
        let a = bits ^ sign
        let o: UInt32
        if a >= 0x4780_0000 {
            // ≥ 65520 (rounds beyond Float16's range): ∞, or a quiet NaN for NaN
            o = a > 0x7F80_0000 ? 0x7E00 : 0x7C00
        } else if a < 0x3880_0000 {
            // below 2⁻¹⁴: Float16 subnormal or zero; adding 0.5 lets the FPU round the mantissa into place
            o = (Float(bitPattern: a) + 0.5).bitPattern &- 0x3F00_0000
        } else {
            // normal: rebias the exponent ((15 − 127) << 23, wrapping), round to nearest even on the 13 dropped bits
            o = (a &+ 0xC800_0FFF &+ ((a >> 13) & 1)) >> 13
        }
        return UInt16(truncatingIfNeeded: o | (sign >> 16))
    }

    /// The Float with Float16 bit pattern `h`, exactly (Giesen's half_to_float_fast5).
    @inline(__always)
    public static func float(_ h: UInt16) -> Float {
        let w = UInt32(h)
        var o = (w & 0x7FFF) << 13
        let exponent = o & 0x0F80_0000
        o &+= 0x3800_0000  // rebias: (127 − 15) << 23
        if exponent == 0x0F80_0000 {
            o &+= 0x3800_0000  // ∞ and NaN: all exponent bits set
        } else if exponent == 0 {
            // zero and subnormals: renormalise through the FPU (subtract 2⁻¹⁴)
            o = (Float(bitPattern: o &+ 0x0080_0000) - 0x1p-14).bitPattern
        }
        return Float(bitPattern: o | (w & 0x8000) << 16)
    }
}
