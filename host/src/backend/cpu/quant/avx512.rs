//! AVX-512 quantized kernels for CPUs with VNNI (Ice Lake, Sapphire Rapids, Zen 4): the u8·i8
//! dot is one `vpdpbusd` on 256-bit registers (AVX512-VL), which sums four products straight
//! into i32 lanes. The kernels themselves are in [`super::x86`].

use std::arch::x86_64::*;

#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn dot_u8i8(u: __m256i, s: __m256i) -> __m256i {
    _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s)
}

super::x86::x86_kernels!(
    "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni",
    dot_u8i8
);
