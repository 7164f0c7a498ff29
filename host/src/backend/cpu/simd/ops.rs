//! Row-wise ops on top of the kernel table: norms, elementwise, activations, softmax, rope.
//!
//! Each op checks shapes (shared with the reference), then hands blocks of whole rows to
//! [`for_row_blocks`], which runs them inline or across rayon's pool. Inside a block, each row
//! is one or two kernel calls.

use super::kernels::Kernels;
use super::{Simd, for_row_blocks};
use crate::Result;
use crate::backend::cpu::check;

/// Softmax of `x * scale` in place: max, `exp(x·scale - max)` with its sum, normalise.
pub(super) fn softmax_in_place(k: Kernels, x: &mut [f32], scale: f32) {
    let max = k.max_scaled(x, scale);
    let sum = k.exp_shift(x, scale, max);
    k.scale(x, 1.0 / sum);
}

/// `out = f(a, b)` elementwise, in parallel blocks when large.
fn binary(
    a: &[f32],
    b: &[f32],
    out: &mut [f32],
    f: impl Fn(&[f32], &[f32], &mut [f32]) + Sync + Send,
) {
    for_row_blocks(out, 1, a.len(), |i0, out| {
        let n = out.len();
        f(&a[i0..i0 + n], &b[i0..i0 + n], out);
    });
}

impl Simd {
    /// RMS norm over rows of `weight.len()`; see [`crate::backend::cpu::reference::rms_norm`].
    pub fn rms_norm(&self, x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) -> Result<()> {
        check::rms_norm(x.len(), weight.len(), eps, out.len())?;
        let (k, d) = (self.k, weight.len());
        for_row_blocks(out, d, x.len(), |row0, out| {
            let x = &x[row0 * d..row0 * d + out.len()];
            for (x_row, out_row) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
                let inv_rms = 1.0 / (k.sum_sq(x_row) / d as f32 + eps).sqrt();
                k.scale_mul(x_row, inv_rms, weight, out_row);
            }
        });
        Ok(())
    }

    /// `sum_out = x + residual`, `norm_out = rms_norm(sum_out)`; one pass for the add and the
    /// sum of squares, one for the scaling.
    pub fn add_rms_norm(
        &self,
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
        let (k, d) = (self.k, weight.len());
        let rows = |row0: usize, sum: &mut [f32], norm: &mut [f32]| {
            let range = row0 * d..row0 * d + sum.len();
            let (x, r) = (&x[range.clone()], &residual[range]);
            let rows = x.chunks_exact(d).zip(r.chunks_exact(d));
            for ((x, r), (s, n)) in rows.zip(sum.chunks_exact_mut(d).zip(norm.chunks_exact_mut(d)))
            {
                let inv_rms = 1.0 / (k.add_sum_sq(x, r, s) / d as f32 + eps).sqrt();
                k.scale_mul(s, inv_rms, weight, n);
            }
        };
        // Two outputs, so the block split of `for_row_blocks` is spelled out here.
        let rows_per_task = (16 * 1024 / d).max(1);
        if x.len() < super::PAR_MIN_ELEMS {
            rows(0, sum_out, norm_out);
        } else {
            use rayon::prelude::*;
            let block = rows_per_task * d;
            sum_out
                .par_chunks_mut(block)
                .zip(norm_out.par_chunks_mut(block))
                .enumerate()
                .for_each(|(t, (s, n))| rows(t * rows_per_task, s, n));
        }
        Ok(())
    }

    /// `out = silu(x)`.
    pub fn silu(&self, x: &[f32], out: &mut [f32]) -> Result<()> {
        check::same("silu", x.len(), &[("out", out.len())])?;
        let k = self.k;
        for_row_blocks(out, 1, x.len(), |i0, out| {
            let n = out.len();
            k.silu(&x[i0..i0 + n], out);
        });
        Ok(())
    }

    /// `out = silu(gate) * up`.
    pub fn swiglu(&self, gate: &[f32], up: &[f32], out: &mut [f32]) -> Result<()> {
        check::same(
            "swiglu",
            gate.len(),
            &[("up", up.len()), ("out", out.len())],
        )?;
        let k = self.k;
        binary(gate, up, out, |g, u, o| k.swiglu(g, u, o));
        Ok(())
    }

    /// `out = a + b`.
    pub fn add(&self, a: &[f32], b: &[f32], out: &mut [f32]) -> Result<()> {
        check::same("add", a.len(), &[("b", b.len()), ("out", out.len())])?;
        let k = self.k;
        binary(a, b, out, |a, b, o| k.add(a, b, o));
        Ok(())
    }

    /// `out = a * b`.
    pub fn mul(&self, a: &[f32], b: &[f32], out: &mut [f32]) -> Result<()> {
        check::same("mul", a.len(), &[("b", b.len()), ("out", out.len())])?;
        let k = self.k;
        binary(a, b, out, |a, b, o| k.mul(a, b, o));
        Ok(())
    }

    /// Scaled, optionally causal softmax over rows of `k_len` (row `r` is query `r % q_len`);
    /// see [`crate::backend::cpu::reference::softmax`].
    pub fn softmax(
        &self,
        x: &[f32],
        q_len: usize,
        k_len: usize,
        scale: f32,
        causal: bool,
        out: &mut [f32],
    ) -> Result<()> {
        check::softmax(x.len(), q_len, k_len, causal, out.len())?;
        let k = self.k;
        for_row_blocks(out, k_len, x.len(), |row0, out| {
            let x = &x[row0 * k_len..row0 * k_len + out.len()];
            for (r, (x_row, out_row)) in x
                .chunks_exact(k_len)
                .zip(out.chunks_exact_mut(k_len))
                .enumerate()
            {
                let visible = check::visible_keys((row0 + r) % q_len, q_len, k_len, causal);
                let (seen, masked) = out_row.split_at_mut(visible);
                // Copy, then work in place: the row is in L1 for the three passes that follow.
                seen.copy_from_slice(&x_row[..visible]);
                softmax_in_place(k, seen, scale);
                masked.fill(0.0);
            }
        });
        Ok(())
    }

    /// Rotary embedding of `x` `[batch, seq, heads, head_dim]`; see
    /// [`crate::backend::cpu::reference::rope`].
    #[allow(clippy::too_many_arguments)]
    pub fn rope(
        &self,
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
        let (k, half) = (self.k, head_dim / 2);
        for_row_blocks(out, head_dim, x.len(), |row0, out| {
            let x = &x[row0 * head_dim..row0 * head_dim + out.len()];
            for (r, (x_row, out_row)) in x
                .chunks_exact(head_dim)
                .zip(out.chunks_exact_mut(head_dim))
                .enumerate()
            {
                let pos = pos_offset + ((row0 + r) / heads) % seq;
                let (c, s) = (
                    &cos[pos * half..(pos + 1) * half],
                    &sin[pos * half..(pos + 1) * half],
                );
                if interleaved {
                    k.rope_interleaved(x_row, c, s, out_row);
                } else {
                    k.rope_half(x_row, c, s, out_row);
                }
            }
        });
        Ok(())
    }
}
