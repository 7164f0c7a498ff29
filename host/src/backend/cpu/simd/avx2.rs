//! AVX2 + FMA kernels: 8 `f32` lanes, tails finished with scalar code.
//!
//! Every function is `#[target_feature(enable = "avx2,fma")]`; they are reached only through
//! [`TABLE`], which [`super::kernels::Kernels::for_isa`] hands out after runtime detection.
//! Loads and stores go through [`ld`]/[`st`], which take fixed-size arrays (from `as_chunks`),
//! so the only `unsafe` is there and every access is in bounds by construction.

use std::arch::x86_64::*;

use super::kernels::{Table, exp_poly, strided_rows};
use super::scalar::{self, silu1};

pub(super) static TABLE: Table = Table {
    dot,
    sum_sq,
    add_sum_sq,
    scale_mul,
    add,
    mul,
    silu,
    swiglu,
    max_scaled,
    exp_shift,
    scale,
    axpy,
    weighted_rows,
    rope_half,
    rope_interleaved,
    gemv_t,
};

/// Lanes per register.
const W: usize = 8;

#[inline]
#[target_feature(enable = "avx2,fma")]
fn ld(c: &[f32; W]) -> __m256 {
    // SAFETY: `c` is 8 initialised f32; `loadu` has no alignment requirement.
    unsafe { _mm256_loadu_ps(c.as_ptr()) }
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn st(c: &mut [f32; W], v: __m256) {
    // SAFETY: `c` is 8 writable f32; `storeu` has no alignment requirement.
    unsafe { _mm256_storeu_ps(c.as_mut_ptr(), v) }
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn ld4(c: &[f32; 4]) -> __m128 {
    // SAFETY: `c` is 4 initialised f32; `loadu` has no alignment requirement.
    unsafe { _mm_loadu_ps(c.as_ptr()) }
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps::<0b01>(s, s)))
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn hmax(v: __m256) -> f32 {
    let s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_max_ss(s, _mm_shuffle_ps::<0b01>(s, s)))
}

/// `e^x` per lane; see [`exp_poly`].
#[inline]
#[target_feature(enable = "avx2,fma")]
fn exp(x: __m256) -> __m256 {
    use exp_poly::*;
    let x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(LO)), _mm256_set1_ps(HI));
    let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
        x,
        _mm256_set1_ps(LOG2E),
    ));
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), x);
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
    let mut p = _mm256_set1_ps(P[0]);
    for &c in &P[1..] {
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
    }
    let p = _mm256_fmadd_ps(
        p,
        _mm256_mul_ps(r, r),
        _mm256_add_ps(r, _mm256_set1_ps(1.0)),
    );
    // 2^n built in the exponent field; n is in [-126, 127] thanks to the clamp.
    let biased = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
    _mm256_mul_ps(p, _mm256_castsi256_ps(_mm256_slli_epi32::<23>(biased)))
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn silu8(x: __m256) -> __m256 {
    let e = exp(_mm256_sub_ps(_mm256_setzero_ps(), x));
    _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0), e))
}

/// `out = f(a, b)` lane-wise: `$vec` on whole registers, `$sca` on the scalar tail.
macro_rules! map2 {
    ($a:expr, $b:expr, $out:expr, |$x:ident, $y:ident| $vec:expr, $sca:expr) => {{
        let (ac, at) = $a.as_chunks::<W>();
        let (bc, bt) = $b.as_chunks::<W>();
        let (oc, ot) = $out.as_chunks_mut::<W>();
        for ((o, xa), yb) in oc.iter_mut().zip(ac).zip(bc) {
            let ($x, $y) = (ld(xa), ld(yb));
            st(o, $vec);
        }
        for ((o, &$x), &$y) in ot.iter_mut().zip(at).zip(bt) {
            *o = $sca;
        }
    }};
}

#[target_feature(enable = "avx2,fma")]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Four accumulators hide the FMA latency (4 cycles, 2 per cycle).
    let (a4, a_rest) = a.as_chunks::<{ 4 * W }>();
    let (b4, b_rest) = b.as_chunks::<{ 4 * W }>();
    let mut acc = [_mm256_setzero_ps(); 4];
    for (x, y) in a4.iter().zip(b4) {
        let (xs, ys) = (x.as_chunks::<W>().0, y.as_chunks::<W>().0);
        for ((acc, x), y) in acc.iter_mut().zip(xs).zip(ys) {
            *acc = _mm256_fmadd_ps(ld(x), ld(y), *acc);
        }
    }
    let (a1, at) = a_rest.as_chunks::<W>();
    let (b1, bt) = b_rest.as_chunks::<W>();
    for (x, y) in a1.iter().zip(b1) {
        acc[0] = _mm256_fmadd_ps(ld(x), ld(y), acc[0]);
    }
    let v = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    hsum(v) + at.iter().zip(bt).map(|(x, y)| x * y).sum::<f32>()
}

#[target_feature(enable = "avx2,fma")]
fn sum_sq(x: &[f32]) -> f32 {
    dot(x, x)
}

#[target_feature(enable = "avx2,fma")]
fn add_sum_sq(a: &[f32], b: &[f32], out: &mut [f32]) -> f32 {
    // One pass: the sum is squared while still in a register.
    let (ac, at) = a.as_chunks::<W>();
    let (bc, bt) = b.as_chunks::<W>();
    let (oc, ot) = out.as_chunks_mut::<W>();
    let mut acc = [_mm256_setzero_ps(); 2];
    for (i, ((o, x), y)) in oc.iter_mut().zip(ac).zip(bc).enumerate() {
        let s = _mm256_add_ps(ld(x), ld(y));
        st(o, s);
        acc[i & 1] = _mm256_fmadd_ps(s, s, acc[i & 1]);
    }
    let mut sum = hsum(_mm256_add_ps(acc[0], acc[1]));
    for ((o, &x), &y) in ot.iter_mut().zip(at).zip(bt) {
        *o = x + y;
        sum += *o * *o;
    }
    sum
}

#[target_feature(enable = "avx2,fma")]
fn scale_mul(x: &[f32], s: f32, w: &[f32], out: &mut [f32]) {
    let sv = _mm256_set1_ps(s);
    map2!(
        x,
        w,
        out,
        |v, g| _mm256_mul_ps(_mm256_mul_ps(v, sv), g),
        v * s * g
    );
}

#[target_feature(enable = "avx2,fma")]
fn add(a: &[f32], b: &[f32], out: &mut [f32]) {
    map2!(a, b, out, |x, y| _mm256_add_ps(x, y), x + y);
}

#[target_feature(enable = "avx2,fma")]
fn mul(a: &[f32], b: &[f32], out: &mut [f32]) {
    map2!(a, b, out, |x, y| _mm256_mul_ps(x, y), x * y);
}

#[target_feature(enable = "avx2,fma")]
fn silu(x: &[f32], out: &mut [f32]) {
    // `x` twice: map2 zips two inputs and the second is simply unused.
    map2!(x, x, out, |v, _u| silu8(v), silu1(v));
}

#[target_feature(enable = "avx2,fma")]
fn swiglu(gate: &[f32], up: &[f32], out: &mut [f32]) {
    map2!(
        gate,
        up,
        out,
        |g, u| _mm256_mul_ps(silu8(g), u),
        silu1(g) * u
    );
}

#[target_feature(enable = "avx2,fma")]
fn max_scaled(x: &[f32], scale: f32) -> f32 {
    let (xc, xt) = x.as_chunks::<W>();
    let sv = _mm256_set1_ps(scale);
    let mut acc = _mm256_set1_ps(f32::NEG_INFINITY);
    for c in xc {
        acc = _mm256_max_ps(acc, _mm256_mul_ps(ld(c), sv));
    }
    xt.iter().fold(hmax(acc), |m, &v| m.max(v * scale))
}

#[target_feature(enable = "avx2,fma")]
fn exp_shift(x: &mut [f32], scale: f32, shift: f32) -> f32 {
    let (xc, xt) = x.as_chunks_mut::<W>();
    let (sv, hv) = (_mm256_set1_ps(scale), _mm256_set1_ps(shift));
    let mut acc = _mm256_setzero_ps();
    for c in xc {
        let e = exp(_mm256_fmsub_ps(ld(c), sv, hv));
        st(c, e);
        acc = _mm256_add_ps(acc, e);
    }
    let mut sum = hsum(acc);
    for v in xt {
        *v = (*v * scale - shift).exp();
        sum += *v;
    }
    sum
}

#[target_feature(enable = "avx2,fma")]
fn scale(x: &mut [f32], s: f32) {
    let (xc, xt) = x.as_chunks_mut::<W>();
    let sv = _mm256_set1_ps(s);
    for c in xc {
        st(c, _mm256_mul_ps(ld(c), sv));
    }
    for v in xt {
        *v *= s;
    }
}

#[target_feature(enable = "avx2,fma")]
fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    let (xc, xt) = x.as_chunks::<W>();
    let (yc, yt) = y.as_chunks_mut::<W>();
    let av = _mm256_set1_ps(alpha);
    for (o, c) in yc.iter_mut().zip(xc) {
        st(o, _mm256_fmadd_ps(av, ld(c), ld(o)));
    }
    for (o, &v) in yt.iter_mut().zip(xt) {
        *o += alpha * v;
    }
}

/// `out = Σ_j w_j · b_j` over the rows `b_j` of `b_rows` at `stride`: 4 registers of `out`
/// stay in accumulators across all the rows, then the next 4.
#[target_feature(enable = "avx2,fma")]
fn weighted_rows(w: &[f32], b_rows: &[f32], stride: usize, out: &mut [f32]) {
    let k = out.len();
    let (oc, ot) = out.as_chunks_mut::<{ 4 * W }>();
    for (c, o) in oc.iter_mut().enumerate() {
        let mut acc: [__m256; 4] = [_mm256_setzero_ps(); 4];
        for (&wj, b) in w.iter().zip(strided_rows(b_rows, k, stride)) {
            let Some(bc) = b[c * 4 * W..].first_chunk::<{ 4 * W }>() else {
                break;
            };
            let wv = _mm256_set1_ps(wj);
            for (acc, bv) in acc.iter_mut().zip(bc.as_chunks::<W>().0) {
                *acc = _mm256_fmadd_ps(wv, ld(bv), *acc);
            }
        }
        for (o, acc) in o.as_chunks_mut::<W>().0.iter_mut().zip(acc) {
            st(o, acc);
        }
    }
    // The last columns: the same rows from column `done` on.
    let done = k - ot.len();
    scalar::weighted_rows(w, b_rows.get(done..).unwrap_or(&[]), stride, ot);
}

#[target_feature(enable = "avx2,fma")]
fn rope_half(x: &[f32], cos: &[f32], sin: &[f32], out: &mut [f32]) {
    let half = x.len() / 2;
    let (x_lo, x_hi) = x.split_at(half);
    let (o_lo, o_hi) = out.split_at_mut(half.min(out.len()));
    let lanes = x_lo.as_chunks::<W>().0.iter().zip(x_hi.as_chunks::<W>().0);
    let tables = cos.as_chunks::<W>().0.iter().zip(sin.as_chunks::<W>().0);
    let outs = o_lo
        .as_chunks_mut::<W>()
        .0
        .iter_mut()
        .zip(o_hi.as_chunks_mut::<W>().0);
    let mut done = 0;
    for (((a, b), (c, s)), (oa, ob)) in lanes.zip(tables).zip(outs) {
        let (a, b, c, s) = (ld(a), ld(b), ld(c), ld(s));
        st(oa, _mm256_fmsub_ps(a, c, _mm256_mul_ps(b, s)));
        st(ob, _mm256_fmadd_ps(b, c, _mm256_mul_ps(a, s)));
        done += W;
    }
    let tail = done..half
        .min(cos.len())
        .min(sin.len())
        .min(o_lo.len())
        .min(o_hi.len());
    for i in tail {
        let (a, b, c, s) = (x_lo[i], x_hi[i], cos[i], sin[i]);
        o_lo[i] = a * c - b * s;
        o_hi[i] = b * c + a * s;
    }
}

#[target_feature(enable = "avx2,fma")]
fn rope_interleaved(x: &[f32], cos: &[f32], sin: &[f32], out: &mut [f32]) {
    // 8 lanes hold 4 pairs (a0 b0 a1 b1 ..), rotated by 4 angles each duplicated to both lanes
    // of its pair. With `swapped = (b0 a0 b1 a1 ..)`, fmaddsub gives
    // even lanes a·c - b·s and odd lanes b·c + a·s in one instruction.
    let dup = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
    let (xc, xt) = x.as_chunks::<W>();
    let (oc, ot) = out.as_chunks_mut::<W>();
    let cc = cos.as_chunks::<4>().0;
    let sc = sin.as_chunks::<4>().0;
    let mut pairs_done = 0;
    for ((xv, o), (c, s)) in xc.iter().zip(oc).zip(cc.iter().zip(sc)) {
        let c = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(ld4(c)), dup);
        let s = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(ld4(s)), dup);
        let v = ld(xv);
        let swapped = _mm256_permute_ps::<0b10_11_00_01>(v);
        st(o, _mm256_fmaddsub_ps(v, c, _mm256_mul_ps(swapped, s)));
        pairs_done += W / 2;
    }
    // Tail: the pairs left in `x` (fewer than 4) against the angles that follow.
    let angles = cos.iter().zip(sin).skip(pairs_done);
    for ((p, o), (&c, &s)) in xt.chunks_exact(2).zip(ot.chunks_exact_mut(2)).zip(angles) {
        o[0] = p[0] * c - p[1] * s;
        o[1] = p[1] * c + p[0] * s;
    }
}

/// `[a_0 · b, .., a_{M-1} · b]`: `b` is loaded once for all `M` rows.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn dot_m<const M: usize>(a: &[&[f32]; M], b: &[f32]) -> [f32; M] {
    let bc = b.as_chunks::<{ 2 * W }>().0;
    // Every row cut to the same whole chunks, so the hot loop indexes without bounds checks.
    let mut n = bc.len();
    let mut a_chunks: [&[[f32; 2 * W]]; M] = [&[]; M];
    for (ac, row) in a_chunks.iter_mut().zip(a) {
        *ac = row.as_chunks::<{ 2 * W }>().0;
        n = n.min(ac.len());
    }
    for ac in a_chunks.iter_mut() {
        *ac = &ac[..n];
    }
    let mut acc = [[_mm256_setzero_ps(); 2]; M];
    for (c, bv) in bc[..n].iter().enumerate() {
        let bh = bv.as_chunks::<W>().0;
        let (b0, b1) = (ld(&bh[0]), ld(&bh[1]));
        for (acc, ac) in acc.iter_mut().zip(&a_chunks) {
            let ah = ac[c].as_chunks::<W>().0;
            acc[0] = _mm256_fmadd_ps(ld(&ah[0]), b0, acc[0]);
            acc[1] = _mm256_fmadd_ps(ld(&ah[1]), b1, acc[1]);
        }
    }
    let done = n * 2 * W;
    let bt = b.get(done..).unwrap_or(&[]);
    let mut res = [0.0f32; M];
    for ((r, acc), row) in res.iter_mut().zip(&acc).zip(a) {
        let tail: f32 = row
            .get(done..)
            .unwrap_or(&[])
            .iter()
            .zip(bt)
            .map(|(x, y)| x * y)
            .sum();
        *r = hsum(_mm256_add_ps(acc[0], acc[1])) + tail;
    }
    res
}

/// `outs[i][j] = a_i · b_j` for the `M` rows in `a`.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn gemv_block<const M: usize>(
    a: &[f32],
    k: usize,
    b_rows: &[f32],
    stride: usize,
    outs: &mut [&mut [f32]],
) {
    let mut rows: [&[f32]; M] = [&[]; M];
    for (r, s) in rows.iter_mut().zip(a.chunks_exact(k)) {
        *r = s;
    }
    for (j, b) in strided_rows(b_rows, k, stride).enumerate() {
        let d = dot_m::<M>(&rows, b);
        for (out, &v) in outs.iter_mut().zip(&d) {
            if let Some(o) = out.get_mut(j) {
                *o = v;
            }
        }
    }
}

#[target_feature(enable = "avx2,fma")]
fn gemv_t(a: &[f32], k: usize, b_rows: &[f32], stride: usize, outs: &mut [&mut [f32]]) {
    if k == 0 {
        return;
    }
    for (a4, o4) in a.chunks(4 * k).zip(outs.chunks_mut(4)) {
        match o4.len() {
            1 => {
                // One row: the 4-accumulator dot keeps more FMAs in flight.
                for (o, b) in o4[0].iter_mut().zip(strided_rows(b_rows, k, stride)) {
                    *o = dot(a4, b);
                }
            }
            2 => gemv_block::<2>(a4, k, b_rows, stride, o4),
            3 => gemv_block::<3>(a4, k, b_rows, stride, o4),
            _ => gemv_block::<4>(a4, k, b_rows, stride, o4),
        }
    }
}
