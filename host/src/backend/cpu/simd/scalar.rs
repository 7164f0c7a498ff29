//! Portable kernels: the fallback on CPUs without AVX2+FMA and on other architectures.
//!
//! Plain Rust, but shaped so the compiler can vectorise it with the baseline ISA (SSE2 on
//! x86-64, NEON on aarch64): reductions keep 8 independent partial sums, so they do not form one
//! serial dependency chain. Unlike [`super::super::reference`] they accumulate in `f32`.

use super::kernels::{Table, strided_rows};

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

/// Lanes of partial sums; 8 matches one AVX register and lets LLVM vectorise.
const L: usize = 8;

fn dot(a: &[f32], b: &[f32]) -> f32 {
    let (ac, at) = a.as_chunks::<L>();
    let (bc, bt) = b.as_chunks::<L>();
    let mut acc = [0.0f32; L];
    for (x, y) in ac.iter().zip(bc) {
        for l in 0..L {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + at.iter().zip(bt).map(|(x, y)| x * y).sum::<f32>()
}

fn sum_sq(x: &[f32]) -> f32 {
    dot(x, x)
}

fn add_sum_sq(a: &[f32], b: &[f32], out: &mut [f32]) -> f32 {
    add(a, b, out);
    sum_sq(out)
}

fn scale_mul(x: &[f32], s: f32, w: &[f32], out: &mut [f32]) {
    for ((o, &v), &g) in out.iter_mut().zip(x).zip(w) {
        *o = v * s * g;
    }
}

fn add(a: &[f32], b: &[f32], out: &mut [f32]) {
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        *o = x + y;
    }
}

fn mul(a: &[f32], b: &[f32], out: &mut [f32]) {
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        *o = x * y;
    }
}

/// `silu(v) = v / (1 + e^-v)`; shared with the SIMD modules for their tails.
pub(super) fn silu1(v: f32) -> f32 {
    v / (1.0 + (-v).exp())
}

fn silu(x: &[f32], out: &mut [f32]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = silu1(v);
    }
}

fn swiglu(gate: &[f32], up: &[f32], out: &mut [f32]) {
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        *o = silu1(g) * u;
    }
}

fn max_scaled(x: &[f32], scale: f32) -> f32 {
    x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v * scale))
}

fn exp_shift(x: &mut [f32], scale: f32, shift: f32) -> f32 {
    let mut sum = 0.0;
    for v in x.iter_mut() {
        *v = (*v * scale - shift).exp();
        sum += *v;
    }
    sum
}

fn scale(x: &mut [f32], s: f32) {
    for v in x.iter_mut() {
        *v *= s;
    }
}

fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    for (o, &v) in y.iter_mut().zip(x) {
        *o += alpha * v;
    }
}

/// Also the SIMD kernels' tail: their last columns, with `b_rows` starting at the first one.
pub(super) fn weighted_rows(w: &[f32], b_rows: &[f32], stride: usize, out: &mut [f32]) {
    let k = out.len();
    out.fill(0.0);
    for (&wj, b) in w.iter().zip(strided_rows(b_rows, k, stride)) {
        for (o, &x) in out.iter_mut().zip(b) {
            *o += wj * x;
        }
    }
}

fn rope_half(x: &[f32], cos: &[f32], sin: &[f32], out: &mut [f32]) {
    let half = x.len() / 2;
    let (x_lo, x_hi) = x.split_at(half);
    let (o_lo, o_hi) = out.split_at_mut(half.min(out.len()));
    for i in 0..half
        .min(cos.len())
        .min(sin.len())
        .min(o_lo.len())
        .min(o_hi.len())
    {
        let (a, b, c, s) = (x_lo[i], x_hi[i], cos[i], sin[i]);
        o_lo[i] = a * c - b * s;
        o_hi[i] = b * c + a * s;
    }
}

fn rope_interleaved(x: &[f32], cos: &[f32], sin: &[f32], out: &mut [f32]) {
    let pairs = x.chunks_exact(2).zip(out.chunks_exact_mut(2));
    for ((p, o), (&c, &s)) in pairs.zip(cos.iter().zip(sin)) {
        o[0] = p[0] * c - p[1] * s;
        o[1] = p[1] * c + p[0] * s;
    }
}

fn gemv_t(a: &[f32], k: usize, b_rows: &[f32], stride: usize, outs: &mut [&mut [f32]]) {
    for (a_row, out) in a.chunks_exact(k).zip(outs.iter_mut()) {
        for (o, b_row) in out.iter_mut().zip(strided_rows(b_rows, k, stride)) {
            *o = dot(a_row, b_row);
        }
    }
}
