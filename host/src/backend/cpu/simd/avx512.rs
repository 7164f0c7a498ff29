//! AVX-512F kernels: 16 `f32` lanes, tails done with masked loads and stores (no scalar loop).
//!
//! Mirrors [`super::avx2`] kernel for kernel; the differences are the width, the masks, and
//! `vscalefps` for the `2^n` of `exp`. Reached only through [`TABLE`] after runtime detection.
//! All `unsafe` is in the four load/store helpers.

use std::arch::x86_64::*;

use super::kernels::{Table, exp_poly, strided_rows};
use super::scalar;

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
const W: usize = 16;

#[inline]
#[target_feature(enable = "avx512f")]
fn ld(c: &[f32; W]) -> __m512 {
    // SAFETY: `c` is 16 initialised f32; `loadu` has no alignment requirement.
    unsafe { _mm512_loadu_ps(c.as_ptr()) }
}

#[inline]
#[target_feature(enable = "avx512f")]
fn st(c: &mut [f32; W], v: __m512) {
    // SAFETY: `c` is 16 writable f32; `storeu` has no alignment requirement.
    unsafe { _mm512_storeu_ps(c.as_mut_ptr(), v) }
}

/// The mask of the first `min(n, 16)` lanes.
#[inline]
fn mask(n: usize) -> __mmask16 {
    if n >= W { u16::MAX } else { (1u16 << n) - 1 }
}

/// Loads `t` (at most 16 values) into the low lanes, zeros above.
#[inline]
#[target_feature(enable = "avx512f")]
fn ld_tail(t: &[f32]) -> __m512 {
    // SAFETY: only the first `min(t.len(), 16)` lanes are enabled, all inside `t`; masked-off
    // lanes are neither read nor able to fault.
    unsafe { _mm512_maskz_loadu_ps(mask(t.len()), t.as_ptr()) }
}

/// Stores the low `min(t.len(), 16)` lanes of `v` into `t`.
#[inline]
#[target_feature(enable = "avx512f")]
fn st_tail(t: &mut [f32], v: __m512) {
    // SAFETY: only the first `min(t.len(), 16)` lanes are written, all inside `t`.
    unsafe { _mm512_mask_storeu_ps(t.as_mut_ptr(), mask(t.len()), v) }
}

/// `e^x` per lane; see [`exp_poly`]. `scalef` multiplies by `2^n` without bit tricks.
#[inline]
#[target_feature(enable = "avx512f")]
fn exp(x: __m512) -> __m512 {
    use exp_poly::*;
    let x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(LO)), _mm512_set1_ps(HI));
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
        _mm512_mul_ps(x, _mm512_set1_ps(LOG2E)),
    );
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), x);
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LO), r);
    let mut p = _mm512_set1_ps(P[0]);
    for &c in &P[1..] {
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
    }
    let p = _mm512_fmadd_ps(
        p,
        _mm512_mul_ps(r, r),
        _mm512_add_ps(r, _mm512_set1_ps(1.0)),
    );
    _mm512_scalef_ps(p, n)
}

#[inline]
#[target_feature(enable = "avx512f")]
fn silu16(x: __m512) -> __m512 {
    let e = exp(_mm512_sub_ps(_mm512_setzero_ps(), x));
    _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0), e))
}

/// `out = f(a, b)` lane-wise on whole registers, then once more on the masked tail.
macro_rules! map2 {
    ($a:expr, $b:expr, $out:expr, |$x:ident, $y:ident| $vec:expr) => {{
        let (ac, at) = $a.as_chunks::<W>();
        let (bc, bt) = $b.as_chunks::<W>();
        let (oc, ot) = $out.as_chunks_mut::<W>();
        for ((o, xa), yb) in oc.iter_mut().zip(ac).zip(bc) {
            let ($x, $y) = (ld(xa), ld(yb));
            st(o, $vec);
        }
        if !ot.is_empty() {
            let ($x, $y) = (ld_tail(at), ld_tail(bt));
            st_tail(ot, $vec);
        }
    }};
}

#[target_feature(enable = "avx512f")]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let (a4, a_rest) = a.as_chunks::<{ 4 * W }>();
    let (b4, b_rest) = b.as_chunks::<{ 4 * W }>();
    let mut acc = [_mm512_setzero_ps(); 4];
    for (x, y) in a4.iter().zip(b4) {
        let (xs, ys) = (x.as_chunks::<W>().0, y.as_chunks::<W>().0);
        for ((acc, x), y) in acc.iter_mut().zip(xs).zip(ys) {
            *acc = _mm512_fmadd_ps(ld(x), ld(y), *acc);
        }
    }
    let (a1, at) = a_rest.as_chunks::<W>();
    let (b1, bt) = b_rest.as_chunks::<W>();
    for (x, y) in a1.iter().zip(b1) {
        acc[0] = _mm512_fmadd_ps(ld(x), ld(y), acc[0]);
    }
    acc[1] = _mm512_fmadd_ps(ld_tail(at), ld_tail(bt), acc[1]);
    let v = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
    _mm512_reduce_add_ps(v)
}

#[target_feature(enable = "avx512f")]
fn sum_sq(x: &[f32]) -> f32 {
    dot(x, x)
}

#[target_feature(enable = "avx512f")]
fn add_sum_sq(a: &[f32], b: &[f32], out: &mut [f32]) -> f32 {
    let mut acc = _mm512_setzero_ps();
    map2!(a, b, out, |x, y| {
        // Zero tail lanes add 0 to the sum of squares.
        let s = _mm512_add_ps(x, y);
        acc = _mm512_fmadd_ps(s, s, acc);
        s
    });
    _mm512_reduce_add_ps(acc)
}

#[target_feature(enable = "avx512f")]
fn scale_mul(x: &[f32], s: f32, w: &[f32], out: &mut [f32]) {
    let sv = _mm512_set1_ps(s);
    map2!(x, w, out, |v, g| _mm512_mul_ps(_mm512_mul_ps(v, sv), g));
}

#[target_feature(enable = "avx512f")]
fn add(a: &[f32], b: &[f32], out: &mut [f32]) {
    map2!(a, b, out, |x, y| _mm512_add_ps(x, y));
}

#[target_feature(enable = "avx512f")]
fn mul(a: &[f32], b: &[f32], out: &mut [f32]) {
    map2!(a, b, out, |x, y| _mm512_mul_ps(x, y));
}

#[target_feature(enable = "avx512f")]
fn silu(x: &[f32], out: &mut [f32]) {
    // `x` twice: map2 zips two inputs and the second is simply unused.
    map2!(x, x, out, |v, _u| silu16(v));
}

#[target_feature(enable = "avx512f")]
fn swiglu(gate: &[f32], up: &[f32], out: &mut [f32]) {
    map2!(gate, up, out, |g, u| _mm512_mul_ps(silu16(g), u));
}

#[target_feature(enable = "avx512f")]
fn max_scaled(x: &[f32], scale: f32) -> f32 {
    let (xc, xt) = x.as_chunks::<W>();
    let sv = _mm512_set1_ps(scale);
    let mut acc = _mm512_set1_ps(f32::NEG_INFINITY);
    for c in xc {
        acc = _mm512_max_ps(acc, _mm512_mul_ps(ld(c), sv));
    }
    // Masked max: lanes past the tail keep `acc` instead of comparing against a padded 0.
    acc = _mm512_mask_max_ps(acc, mask(xt.len()), acc, _mm512_mul_ps(ld_tail(xt), sv));
    _mm512_reduce_max_ps(acc)
}

#[target_feature(enable = "avx512f")]
fn exp_shift(x: &mut [f32], scale: f32, shift: f32) -> f32 {
    let (xc, xt) = x.as_chunks_mut::<W>();
    let (sv, hv) = (_mm512_set1_ps(scale), _mm512_set1_ps(shift));
    let mut acc = _mm512_setzero_ps();
    for c in xc {
        let e = exp(_mm512_fmsub_ps(ld(c), sv, hv));
        st(c, e);
        acc = _mm512_add_ps(acc, e);
    }
    if !xt.is_empty() {
        let e = exp(_mm512_fmsub_ps(ld_tail(xt), sv, hv));
        st_tail(xt, e);
        acc = _mm512_mask_add_ps(acc, mask(xt.len()), acc, e);
    }
    _mm512_reduce_add_ps(acc)
}

#[target_feature(enable = "avx512f")]
fn scale(x: &mut [f32], s: f32) {
    let (xc, xt) = x.as_chunks_mut::<W>();
    let sv = _mm512_set1_ps(s);
    for c in xc {
        st(c, _mm512_mul_ps(ld(c), sv));
    }
    st_tail(xt, _mm512_mul_ps(ld_tail(xt), sv));
}

#[target_feature(enable = "avx512f")]
fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    let (xc, xt) = x.as_chunks::<W>();
    let (yc, yt) = y.as_chunks_mut::<W>();
    let av = _mm512_set1_ps(alpha);
    for (o, c) in yc.iter_mut().zip(xc) {
        st(o, _mm512_fmadd_ps(av, ld(c), ld(o)));
    }
    st_tail(yt, _mm512_fmadd_ps(av, ld_tail(xt), ld_tail(yt)));
}

/// `out = Σ_j w_j · b_j` over the rows `b_j` of `b_rows` at `stride`: 4 registers of `out`
/// stay in accumulators across all the rows, then the next 4.
#[target_feature(enable = "avx512f")]
fn weighted_rows(w: &[f32], b_rows: &[f32], stride: usize, out: &mut [f32]) {
    let k = out.len();
    let (oc, ot) = out.as_chunks_mut::<{ 4 * W }>();
    for (c, o) in oc.iter_mut().enumerate() {
        let mut acc: [__m512; 4] = [_mm512_setzero_ps(); 4];
        for (&wj, b) in w.iter().zip(strided_rows(b_rows, k, stride)) {
            let Some(bc) = b[c * 4 * W..].first_chunk::<{ 4 * W }>() else {
                break;
            };
            let wv = _mm512_set1_ps(wj);
            for (acc, bv) in acc.iter_mut().zip(bc.as_chunks::<W>().0) {
                *acc = _mm512_fmadd_ps(wv, ld(bv), *acc);
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

#[target_feature(enable = "avx512f")]
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
        st(oa, _mm512_fmsub_ps(a, c, _mm512_mul_ps(b, s)));
        st(ob, _mm512_fmadd_ps(b, c, _mm512_mul_ps(a, s)));
        done += W;
    }
    let end = half
        .min(cos.len())
        .min(sin.len())
        .min(o_lo.len())
        .min(o_hi.len());
    for i in done..end {
        let (a, b, c, s) = (x_lo[i], x_hi[i], cos[i], sin[i]);
        o_lo[i] = a * c - b * s;
        o_hi[i] = b * c + a * s;
    }
}

#[target_feature(enable = "avx512f")]
fn rope_interleaved(x: &[f32], cos: &[f32], sin: &[f32], out: &mut [f32]) {
    // As in avx2: 16 lanes hold 8 pairs; each angle duplicated to both lanes of its pair, and
    // fmaddsub(x, c, swapped·s) gives a·c - b·s (even) and b·c + a·s (odd).
    let dup = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    let (xc, xt) = x.as_chunks::<W>();
    let (oc, ot) = out.as_chunks_mut::<W>();
    let cc = cos.as_chunks::<{ W / 2 }>().0;
    let sc = sin.as_chunks::<{ W / 2 }>().0;
    let mut pairs_done = 0;
    for ((xv, o), (c, s)) in xc.iter().zip(oc).zip(cc.iter().zip(sc)) {
        // Half-width tables widened by zero-padding, then duplicated lane by lane.
        let c = _mm512_permutexvar_ps(dup, ld_tail(c));
        let s = _mm512_permutexvar_ps(dup, ld_tail(s));
        let v = ld(xv);
        let swapped = _mm512_permute_ps::<0b10_11_00_01>(v);
        st(o, _mm512_fmaddsub_ps(v, c, _mm512_mul_ps(swapped, s)));
        pairs_done += W / 2;
    }
    let angles = cos.iter().zip(sin).skip(pairs_done);
    for ((p, o), (&c, &s)) in xt.chunks_exact(2).zip(ot.chunks_exact_mut(2)).zip(angles) {
        o[0] = p[0] * c - p[1] * s;
        o[1] = p[1] * c + p[0] * s;
    }
}

/// `[a_0 · b, .., a_{M-1} · b]`: `b` is loaded once for all `M` rows.
#[inline]
#[target_feature(enable = "avx512f")]
fn dot_m<const M: usize>(a: &[&[f32]; M], b: &[f32]) -> [f32; M] {
    let bc = b.as_chunks::<W>().0;
    // Every row cut to the same whole chunks, so the hot loop indexes without bounds checks.
    let mut n = bc.len();
    let mut a_chunks: [&[[f32; W]]; M] = [&[]; M];
    for (ac, row) in a_chunks.iter_mut().zip(a) {
        *ac = row.as_chunks::<W>().0;
        n = n.min(ac.len());
    }
    for ac in a_chunks.iter_mut() {
        *ac = &ac[..n];
    }
    let mut acc = [_mm512_setzero_ps(); M];
    for (c, bv) in bc[..n].iter().enumerate() {
        let bv = ld(bv);
        for (acc, ac) in acc.iter_mut().zip(&a_chunks) {
            *acc = _mm512_fmadd_ps(ld(&ac[c]), bv, *acc);
        }
    }
    let done = n * W;
    let bt = ld_tail(b.get(done..).unwrap_or(&[]));
    let mut res = [0.0f32; M];
    for ((r, acc), row) in res.iter_mut().zip(&acc).zip(a) {
        // Rows of equal length (the contract) leave fewer than 16 values: one masked FMA.
        let tail = ld_tail(row.get(done..).unwrap_or(&[]));
        *r = _mm512_reduce_add_ps(_mm512_fmadd_ps(tail, bt, *acc));
    }
    res
}

/// `outs[i][j] = a_i · b_j` for the `M` rows in `a`.
#[inline]
#[target_feature(enable = "avx512f")]
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

#[target_feature(enable = "avx512f")]
fn gemv_t(a: &[f32], k: usize, b_rows: &[f32], stride: usize, outs: &mut [&mut [f32]]) {
    if k == 0 {
        return;
    }
    for (a4, o4) in a.chunks(4 * k).zip(outs.chunks_mut(4)) {
        match o4.len() {
            1 => {
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
