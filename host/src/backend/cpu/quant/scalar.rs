//! The reference quantized kernels: plain Rust, integer dot products per block, written to be
//! read. Each SIMD kernel must quantize activations to exactly these bytes and compute the same
//! dots up to the order of f32 additions.

use half::f16;

use super::{ActQuad, ActRow, QK, Table};
use crate::loaders::quant::{Q4_0_BLOCK_BYTES, Q4_1_BLOCK_BYTES, Q8_0_BLOCK_BYTES};

pub(super) static TABLE: Table = Table {
    quantize,
    q8_0,
    q4_0,
    q4_1,
    q4_0_x4,
    q4_1_x4,
};

/// The activation scale of a block with largest magnitude `amax`: `(d, 1/d)`, `(0, 0)` for an
/// all-zero block (ggml's `quantize_row_q8_1`).
#[inline]
pub(super) fn block_scale(amax: f32) -> (f32, f32) {
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    (d, id)
}

/// `x` rounded to 8 bits per block of 32: `qs = round_half_even(x / d)` with
/// `d = max|x| / 127`, and `s = d · Σ qs`.
fn quantize(x: &[f32], qs: &mut [i8], d: &mut [f32], s: &mut [f32]) {
    let blocks = x.chunks_exact(QK).zip(qs.chunks_exact_mut(QK));
    for ((x, q), (d, s)) in blocks.zip(d.iter_mut().zip(s.iter_mut())) {
        let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let (scale, inv) = block_scale(amax);
        let mut sum = 0i32;
        for (q, &v) in q.iter_mut().zip(x) {
            *q = (v * inv).round_ties_even().clamp(-127.0, 127.0) as i8;
            sum += *q as i32;
        }
        *d = scale;
        *s = scale * sum as f32;
    }
}

/// The little-endian f16 at `b[at..at + 2]` as f32 (exact).
fn f16_at(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

/// How a weight block reads: `(d_w, m_w, w_j for j in 0..32)`.
type Block = fn(&[u8]) -> (f32, f32, [i32; QK]);

/// `Σ_blocks (d_w·d_a·Σ w_j·a_j + m_w·s_a)` of one weight row `w` and one activation row
/// (values `qs`, block scales `d(b)` and `s(b)`).
fn row_dot(
    w: &[u8],
    (block_bytes, block): (usize, Block),
    qs: &[i8],
    d: impl Fn(usize) -> f32,
    s: impl Fn(usize) -> f32,
) -> f32 {
    let mut sum = 0.0f32;
    for (b, wb) in w.chunks_exact(block_bytes).enumerate() {
        let (dw, mw, q) = block(wb);
        let qa = &qs[b * QK..][..QK];
        let isum: i32 = q.iter().zip(qa).map(|(&x, &y)| x * y as i32).sum();
        sum += dw * d(b) * isum as f32 + mw * s(b);
    }
    sum
}

/// `out[r·N + t]` = [`row_dot`] of weight row `w[r]` and activation row `acts[t]`.
fn dot_with(w: &[&[u8]], format: (usize, Block), acts: &[ActRow<'_>], out: &mut [f32]) {
    let pairs = w.iter().flat_map(|w| acts.iter().map(move |a| (w, a)));
    for (o, (w, a)) in out.iter_mut().zip(pairs) {
        *o = row_dot(w, format, a.qs, |b| a.d[b], |b| a.s[b]);
    }
}

/// `out[r·4 + t]` = [`row_dot`] of weight row `w[r]` and row `t` of the group `acts`.
fn quad_with(w: &[&[u8]], format: (usize, Block), acts: &ActQuad<'_>, out: &mut [f32]) {
    for (w, out) in w.iter().zip(out.chunks_exact_mut(4)) {
        for (t, o) in out.iter_mut().enumerate() {
            *o = row_dot(w, format, acts.qs[t], |b| acts.d[b][t], |b| acts.s[b][t]);
        }
    }
}

/// Q8_0: `w = d · q`, q an i8.
fn q8_0(w: &[&[u8]], acts: &[ActRow<'_>], out: &mut [f32]) {
    let block: Block = |b| {
        (
            f16_at(b, 0),
            0.0,
            std::array::from_fn(|j| b[2 + j] as i8 as i32),
        )
    };
    dot_with(w, (Q8_0_BLOCK_BYTES, block), acts, out);
}

/// The 4-bit values of a Q4 block's 16 bytes: element `j` in the low nibble of `qs[j]`, `j + 16`
/// in the high nibble.
fn nibbles(qs: &[u8]) -> [i32; QK] {
    std::array::from_fn(|j| {
        if j < QK / 2 {
            (qs[j] & 0x0F) as i32
        } else {
            (qs[j - QK / 2] >> 4) as i32
        }
    })
}

/// Q4_0: `w = d · (q − 8)`, taken as `d·q + (−8d)` so that it shares Q4_1's form.
const Q4_0: (usize, Block) = (Q4_0_BLOCK_BYTES, |b| {
    let d = f16_at(b, 0);
    (d, -8.0 * d, nibbles(&b[2..]))
});

/// Q4_1: `w = d · q + m`.
const Q4_1: (usize, Block) = (Q4_1_BLOCK_BYTES, |b| {
    (f16_at(b, 0), f16_at(b, 2), nibbles(&b[4..]))
});

fn q4_0(w: &[&[u8]], acts: &[ActRow<'_>], out: &mut [f32]) {
    dot_with(w, Q4_0, acts, out);
}

fn q4_1(w: &[&[u8]], acts: &[ActRow<'_>], out: &mut [f32]) {
    dot_with(w, Q4_1, acts, out);
}

fn q4_0_x4(w: &[&[u8]], acts: &ActQuad<'_>, out: &mut [f32]) {
    quad_with(w, Q4_0, acts, out);
}

fn q4_1_x4(w: &[&[u8]], acts: &ActQuad<'_>, out: &mut [f32]) {
    quad_with(w, Q4_1, acts, out);
}
