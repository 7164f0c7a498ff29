//! AVX2 + FMA + F16C quantized kernels (the x86 baseline since Haswell / Zen 1): the u8·i8 dot
//! is `maddubs` (pairs to i16; at most 2·128·127, no saturation for our operands) then `madd`
//! with ones (pairs to i32). The kernels themselves are in [`super::x86`].

use std::arch::x86_64::*;

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_u8i8(u: __m256i, s: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1))
}

super::x86::x86_kernels!("avx2,fma,f16c", dot_u8i8);
