#if arch(x86_64)
import _Builtin_intrinsics.intel
#endif

/// Element-wise math on SIMD vectors that the standard library does not lower to vector instructions.
///
/// Note [Vector square root]: on Linux, `Float.squareRoot()` goes through C's `sqrtf` with errno
/// semantics, so `SIMD8<Float>.squareRoot()` becomes eight scalar `sqrtss` with a branch each (and a
/// libm call for negative lanes). On x86-64 `_mm_sqrt_ps` (SSE, part of the x86-64 baseline) is the
/// same IEEE correctly-rounded square root, four lanes per instruction. Adam's update spent most of
/// its time in the scalar form.
enum SIMDMath {
    @inline(__always)
    static func squareRoot(_ v: SIMD8<Float>) -> SIMD8<Float> {
        #if arch(x86_64)
        SIMD8(lowHalf: _mm_sqrt_ps(v.lowHalf), highHalf: _mm_sqrt_ps(v.highHalf))
        #else
        v.squareRoot()
        #endif
    }
}
