//! The scalar reference: every op written for clarity, the oracle for every other path.
//!
//! Rules that keep it an oracle: one loop nest per op in the order the math is written, no
//! rayon, no intrinsics, and reductions (sums of squares, dot products, softmax sums) accumulate
//! in `f64`, so its own rounding is far below the tolerances the fast paths are held to. It is
//! deliberately slow; the benches show it as the baseline row.
//!
//! All buffers are contiguous, row-major `f32`; sizes come from slice lengths and the explicit
//! dimensions, and are checked (the same checks as [`super::simd`]) before any work.

use super::check;
use crate::Result;

/// RMS normalisation of each row of `weight.len()` elements:
/// `out = x / sqrt(mean(x²) + eps) * weight`.
pub fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) -> Result<()> {
    check::rms_norm(x.len(), weight.len(), eps, out.len())?;
    let d = weight.len();
    for (x_row, out_row) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        norm_row(x_row, weight, eps, out_row);
    }
    Ok(())
}

/// The residual add fused with the next norm: `sum_out = x + residual`,
/// `norm_out = rms_norm(sum_out)`.
pub fn add_rms_norm(
    x: &[f32],
    residual: &[f32],
    weight: &[f32],
    eps: f32,
    sum_out: &mut [f32],
    norm_out: &mut [f32],
) -> Result<()> {
    check::add_rms_norm(
        x.len(),
        residual.len(),
        weight.len(),
        eps,
        sum_out.len(),
        norm_out.len(),
    )?;
    for ((s, &a), &b) in sum_out.iter_mut().zip(x).zip(residual) {
        *s = a + b;
    }
    let d = weight.len();
    for (s_row, n_row) in sum_out.chunks_exact(d).zip(norm_out.chunks_exact_mut(d)) {
        norm_row(s_row, weight, eps, n_row);
    }
    Ok(())
}

fn norm_row(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let sum_sq: f64 = x.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
    let mean_sq = sum_sq / x.len() as f64;
    let inv_rms = 1.0 / (mean_sq + f64::from(eps)).sqrt();
    for ((o, &v), &w) in out.iter_mut().zip(x).zip(weight) {
        *o = (f64::from(v) * inv_rms * f64::from(w)) as f32;
    }
}

/// `out = x * sigmoid(x)`, elementwise.
pub fn silu(x: &[f32], out: &mut [f32]) -> Result<()> {
    check::same("silu", x.len(), &[("out", out.len())])?;
    for (o, &v) in out.iter_mut().zip(x) {
        *o = silu_f64(f64::from(v)) as f32;
    }
    Ok(())
}

/// The gated MLP activation: `out = silu(gate) * up`, elementwise.
pub fn swiglu(gate: &[f32], up: &[f32], out: &mut [f32]) -> Result<()> {
    check::same(
        "swiglu",
        gate.len(),
        &[("up", up.len()), ("out", out.len())],
    )?;
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        *o = (silu_f64(f64::from(g)) * f64::from(u)) as f32;
    }
    Ok(())
}

fn silu_f64(v: f64) -> f64 {
    v / (1.0 + (-v).exp())
}

/// `out = a + b`, elementwise.
pub fn add(a: &[f32], b: &[f32], out: &mut [f32]) -> Result<()> {
    check::same("add", a.len(), &[("b", b.len()), ("out", out.len())])?;
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        *o = x + y;
    }
    Ok(())
}

/// `out = a * b`, elementwise.
pub fn mul(a: &[f32], b: &[f32], out: &mut [f32]) -> Result<()> {
    check::same("mul", a.len(), &[("b", b.len()), ("out", out.len())])?;
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        *o = x * y;
    }
    Ok(())
}

/// Numerically stable softmax of `x * scale` over rows of `k_len` elements.
///
/// Row `r` holds the scores of query `i = r % q_len` (so `x` is e.g. `[heads, q_len, k_len]`).
/// With `causal`, columns `j > i + (k_len - q_len)` are masked: they get probability 0 and the
/// row is normalised over the visible columns only (the queries are the last `q_len` of
/// `k_len` positions, as in a KV-cached decode). Causal needs `k_len >= q_len`.
pub fn softmax(
    x: &[f32],
    q_len: usize,
    k_len: usize,
    scale: f32,
    causal: bool,
    out: &mut [f32],
) -> Result<()> {
    check::softmax(x.len(), q_len, k_len, causal, out.len())?;
    for (r, (x_row, out_row)) in x
        .chunks_exact(k_len)
        .zip(out.chunks_exact_mut(k_len))
        .enumerate()
    {
        let visible = check::visible_keys(r % q_len, q_len, k_len, causal);
        softmax_row(x_row, scale, visible, out_row);
    }
    Ok(())
}

/// Softmax of `x[..visible] * scale` into `out[..visible]`; zeros after.
fn softmax_row(x: &[f32], scale: f32, visible: usize, out: &mut [f32]) {
    let scaled: Vec<f64> = x[..visible]
        .iter()
        .map(|&v| f64::from(v) * f64::from(scale))
        .collect();
    let max = scaled.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exps: Vec<f64> = scaled.iter().map(|&s| (s - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    for (o, e) in out.iter_mut().zip(&exps) {
        *o = (e / sum) as f32;
    }
    out[visible..].fill(0.0);
}

/// The rotary tables `(cos, sin)`, each `[max_pos, head_dim / 2]`, computed in `f64`:
/// angle `(p, i) = p * theta^(-2i / head_dim)`.
///
/// Shared by every backend so that they all rotate by bit-identical angles. An odd `head_dim`
/// (which `rope` rejects) uses its floor half.
pub fn rope_table(max_pos: usize, head_dim: usize, theta: f32) -> (Vec<f32>, Vec<f32>) {
    let half = head_dim / 2;
    let inv_freq: Vec<f64> = (0..half)
        .map(|i| f64::from(theta).powf(-2.0 * i as f64 / head_dim as f64))
        .collect();
    let mut cos = Vec::with_capacity(max_pos * half);
    let mut sin = Vec::with_capacity(max_pos * half);
    for p in 0..max_pos {
        for &f in &inv_freq {
            let angle = p as f64 * f;
            cos.push(angle.cos() as f32);
            sin.push(angle.sin() as f32);
        }
    }
    (cos, sin)
}

/// Rotary position embedding of `x` `[batch, seq, heads, head_dim]`; token `s` sits at position
/// `pos_offset + s`, and `cos`/`sin` are [`rope_table`]s `[max_pos, head_dim / 2]`.
///
/// Pair `i < head_dim / 2` with angle `(c, s)` is rotated `(a, b) -> (a·c - b·s, b·c + a·s)`,
/// where the pair is `(x[i], x[i + head_dim/2])` in the half layout (Hugging Face) and
/// `(x[2i], x[2i + 1])` when `interleaved` (GGUF / llama.cpp).
#[allow(clippy::too_many_arguments)]
pub fn rope(
    x: &[f32],
    seq: usize,
    heads: usize,
    head_dim: usize,
    cos: &[f32],
    sin: &[f32],
    pos_offset: usize,
    interleaved: bool,
    out: &mut [f32],
) -> Result<()> {
    check::rope(
        x.len(),
        seq,
        heads,
        head_dim,
        cos.len(),
        sin.len(),
        pos_offset,
        out.len(),
    )?;
    let half = head_dim / 2;
    for (r, (x_row, out_row)) in x
        .chunks_exact(head_dim)
        .zip(out.chunks_exact_mut(head_dim))
        .enumerate()
    {
        let pos = pos_offset + (r / heads) % seq;
        let c = &cos[pos * half..(pos + 1) * half];
        let s = &sin[pos * half..(pos + 1) * half];
        for i in 0..half {
            let (ia, ib) = if interleaved {
                (2 * i, 2 * i + 1)
            } else {
                (i, i + half)
            };
            let (a, b) = (f64::from(x_row[ia]), f64::from(x_row[ib]));
            let (c, s) = (f64::from(c[i]), f64::from(s[i]));
            out_row[ia] = (a * c - b * s) as f32;
            out_row[ib] = (b * c + a * s) as f32;
        }
    }
    Ok(())
}

/// `out [m, n] = a [m, k] · B`, where `B` is `b` read as `[k, n]`, or, with `b_transposed`, `b`
/// is `[n, k]` (the layout of a Linear weight) and `B = bᵀ`.
pub fn matmul(
    a: &[f32],
    b: &[f32],
    m: usize,
    k: usize,
    n: usize,
    b_transposed: bool,
    out: &mut [f32],
) -> Result<()> {
    check::matmul(a.len(), b.len(), m, k, n, out.len())?;
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0.0f64;
            for p in 0..k {
                let b_pj = if b_transposed {
                    b[j * k + p]
                } else {
                    b[p * n + j]
                };
                acc += f64::from(a[i * k + p]) * f64::from(b_pj);
            }
            out[i * n + j] = acc as f32;
        }
    }
    Ok(())
}

/// Scaled dot-product attention with grouped KV heads.
///
/// `q`/`out` are `[q_len, num_heads, head_dim]`, `k`/`v` `[k_len, num_kv_heads, head_dim]`;
/// query head `h` reads KV head `h / (num_heads / num_kv_heads)`. For query `i`:
/// `out = softmax(q·kᵀ * scale) · v`, where under `causal` it sees keys
/// `j <= i + k_len - q_len`.
#[allow(clippy::too_many_arguments)]
pub fn attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    q_len: usize,
    k_len: usize,
    num_heads: usize,
    num_kv_heads: usize,
    head_dim: usize,
    scale: f32,
    causal: bool,
    out: &mut [f32],
) -> Result<()> {
    check::attention(
        q.len(),
        k.len(),
        v.len(),
        q_len,
        k_len,
        num_heads,
        num_kv_heads,
        head_dim,
        causal,
        out.len(),
    )?;
    let group = num_heads / num_kv_heads;
    let row = |t: usize, h: usize, heads: usize| {
        (t * heads + h) * head_dim..(t * heads + h + 1) * head_dim
    };
    for i in 0..q_len {
        let visible = check::visible_keys(i, q_len, k_len, causal);
        for h in 0..num_heads {
            let kv_h = h / group;
            let q_row = &q[row(i, h, num_heads)];
            // Scores, softmax, weighted sum: the textbook three steps.
            let scores: Vec<f64> = (0..visible)
                .map(|j| {
                    let k_row = &k[row(j, kv_h, num_kv_heads)];
                    let dot: f64 = q_row
                        .iter()
                        .zip(k_row)
                        .map(|(&a, &b)| f64::from(a) * f64::from(b))
                        .sum();
                    dot * f64::from(scale)
                })
                .collect();
            let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let weights: Vec<f64> = scores.iter().map(|&s| (s - max).exp()).collect();
            let sum: f64 = weights.iter().sum();
            let out_row = &mut out[row(i, h, num_heads)];
            for (d, o) in out_row.iter_mut().enumerate() {
                let acc: f64 = weights
                    .iter()
                    .enumerate()
                    .map(|(j, &w)| w * f64::from(v[row(j, kv_h, num_kv_heads)][d]))
                    .sum();
                *o = (acc / sum) as f32;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
