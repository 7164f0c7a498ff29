//! [`Q8Acts`]: activation rows rounded to 8 bits per block of 32 (ggml's Q8_1), and the views
//! the dot kernels take of them: one row ([`ActRow`]) or a group of 4 with their block scales
//! side by side ([`ActQuad`], for the prefill kernels).

use super::QK;

/// Activation rows quantized to 8 bits per block of [`QK`]: for row `t`, block `b`,
/// `x ≈ d[t·nb + b] · qs[t·k + 32·b + j]` and `s[t·nb + b] = d · Σ_j qs`.
#[derive(Clone, Debug, Default)]
pub struct Q8Acts {
    /// `[m, k]`.
    pub(super) qs: Vec<i8>,
    /// `[m, k / 32]` block scales.
    pub(super) d: Vec<f32>,
    /// `[m, k / 32]`: `d · Σ q` of each block (for the weight blocks' min terms).
    pub(super) s: Vec<f32>,
    /// `[m / 4 (rounded up), k / 32, 4]`: `d` and `s` of each group of 4 rows side by side,
    /// for the prefill kernels, which scale 4 rows' sums as one vector (rows past `m` are 0).
    d4: Vec<[f32; 4]>,
    s4: Vec<[f32; 4]>,
    pub(super) k: usize,
}

/// One quantized activation row, as the dot kernels see it.
#[derive(Clone, Copy)]
pub(in crate::backend::cpu) struct ActRow<'a> {
    pub qs: &'a [i8],
    pub d: &'a [f32],
    pub s: &'a [f32],
}

/// A group of 4 quantized activation rows, as the prefill kernels see it: their values and
/// their block scales side by side (`d[b][t]`, `s[b][t]` for row `t`, block `b`).
#[derive(Clone, Copy)]
pub(in crate::backend::cpu) struct ActQuad<'a> {
    pub qs: [&'a [i8]; 4],
    pub d: &'a [[f32; 4]],
    pub s: &'a [[f32; 4]],
}

impl Q8Acts {
    /// Rows held.
    pub fn rows(&self) -> usize {
        self.d.len() / (self.k / QK).max(1)
    }

    pub(super) fn row(&self, t: usize) -> ActRow<'_> {
        let nb = self.k / QK;
        ActRow {
            qs: &self.qs[t * self.k..][..self.k],
            d: &self.d[t * nb..][..nb],
            s: &self.s[t * nb..][..nb],
        }
    }

    /// Rows `4g..4g + 4` as an [`ActQuad`] (rows past the end repeat the last row's values,
    /// with zero scales). Needs [`Q8Acts::interleave_scales`] after the last quantization.
    pub(super) fn quad(&self, g: usize) -> ActQuad<'_> {
        let (nb, last) = (self.k / QK, self.rows().saturating_sub(1));
        ActQuad {
            qs: std::array::from_fn(|t| self.row((4 * g + t).min(last)).qs),
            d: &self.d4[g * nb..][..nb],
            s: &self.s4[g * nb..][..nb],
        }
    }

    /// Fills `d4`, `s4` from `d`, `s`.
    pub(super) fn interleave_scales(&mut self) {
        let nb = self.k / QK;
        let groups = self.rows().div_ceil(4);
        for (v, v4) in [(&self.d, &mut self.d4), (&self.s, &mut self.s4)] {
            v4.clear();
            v4.resize(groups * nb, [0.0; 4]);
            for (t, row) in v.chunks_exact(nb).enumerate() {
                for (b, &x) in row.iter().enumerate() {
                    v4[(t / 4) * nb + b][t % 4] = x;
                }
            }
        }
    }

    /// `x − dequantized(self)`: what rounding lost (`x` is what was quantized).
    pub(super) fn residual(&self, x: &[f32]) -> Vec<f32> {
        let scales = self.d.iter().flat_map(|&d| std::iter::repeat_n(d, QK));
        x.iter()
            .zip(&self.qs)
            .zip(scales)
            .map(|((&x, &q), d)| x - d * q as f32)
            .collect()
    }

    /// Resizes for `m` rows of `k` (reusing the allocation).
    pub(super) fn resize(&mut self, m: usize, k: usize) {
        self.k = k;
        self.qs.resize(m * k, 0);
        self.d.resize(m * k / QK, 0.0);
        self.s.resize(m * k / QK, 0.0);
    }
}
