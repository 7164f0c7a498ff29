//! Rotary position embedding, both layouts, with a position offset for decode.
//!
//! Variants: `rope_{f32,f16,bf16}`. `x` is `[batch, seq, heads, head_dim]`; token `s` sits at
//! position `pos_offset + s`; `cos`/`sin` are f32 tables `[max_pos, head_dim / 2]` built by the
//! host in f64 (so large positions keep full accuracy). Layouts ([`RopeParams::interleaved`]):
//! halves `(x[i], x[i + d/2])` as HF Llama, or adjacent pairs `(x[2i], x[2i+1])` as GGUF.
//! Launch: grid-stride, `block.x = ELEMENTWISE_BLOCK`. One work item is 8 rotated elements
//! (halves: 8 from each half; pairs: one 8-element chunk) when aligned, else one pair.
//! Test: `cargo test --release --test gpu_vs_cpu -- --include-ignored rope`; bench: `gpu_bench rope`.

use crate::elem::{BF16, CHUNK, Elem, F16, aligned16, load4_f32};
use crate::kernel_entries;
use crate::params::RopeParams;
use crate::primitives::{block_dim_x, block_idx_x, grid_dim_x, thread_idx_x};

/// How a kernel walks a head's pairs: one pair per work item (unaligned or odd sizes), or 8
/// rotated elements per item — halves `(x[i], x[i + d/2])` 8 pairs at a time, adjacent pairs
/// one 8-element chunk (4 pairs) at a time.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rotation {
    Scalar { interleaved: bool },
    Pairs,
    Halves,
}

impl Rotation {
    /// The widest walk `head_dim` and the pointers' alignment allow.
    #[inline(always)]
    pub(crate) fn pick(interleaved: bool, head_dim: usize, aligned: bool) -> Rotation {
        if aligned && interleaved && head_dim.is_multiple_of(CHUNK) {
            Rotation::Pairs
        } else if aligned && !interleaved && (head_dim / 2).is_multiple_of(CHUNK) {
            Rotation::Halves
        } else {
            Rotation::Scalar { interleaved }
        }
    }

    /// Work items per head row of `head_dim` elements.
    #[inline(always)]
    pub(crate) fn items_per_row(self, head_dim: usize) -> usize {
        match self {
            Rotation::Scalar { .. } => head_dim / 2,
            Rotation::Pairs => head_dim / CHUNK,
            Rotation::Halves => head_dim / 2 / CHUNK,
        }
    }

    /// Rotates work item `j` of the head row at `x + xr` into the row at `out + or`, with the
    /// table row starting at `tab` (`pos * head_dim / 2`).
    ///
    /// # Safety
    /// Both rows hold `d` elements, the tables `tab + d / 2` entries; for the chunked walks the
    /// pointers and `xr`, `or`, `tab` are as aligned as [`Rotation::pick`] was told.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub(crate) unsafe fn item<E: Elem>(
        self,
        x: *const E,
        xr: usize,
        out: *mut E,
        or: usize,
        cos: *const f32,
        sin: *const f32,
        tab: usize,
        j: usize,
        d: usize,
    ) {
        let half = d / 2;
        // SAFETY (all arms): indices stay inside the rows and the table row; chunked accesses
        // are aligned by the caller's contract.
        unsafe {
            match self {
                Rotation::Scalar { interleaved } => {
                    let (a, b) = if interleaved {
                        (2 * j, 2 * j + 1)
                    } else {
                        (j, j + half)
                    };
                    let (c, s) = (*cos.add(tab + j), *sin.add(tab + j));
                    let (va, vb) = ((*x.add(xr + a)).load(), (*x.add(xr + b)).load());
                    *out.add(or + a) = E::store(va * c - vb * s);
                    *out.add(or + b) = E::store(vb * c + va * s);
                }
                Rotation::Pairs => {
                    let v = E::load_chunk(x, xr + j * CHUNK);
                    let (c, s) = (load4_f32(cos, tab + j * 4), load4_f32(sin, tab + j * 4));
                    let mut o = [0.0f32; CHUNK];
                    for k in 0..CHUNK / 2 {
                        let (va, vb) = (v[2 * k], v[2 * k + 1]);
                        o[2 * k] = va * c[k] - vb * s[k];
                        o[2 * k + 1] = vb * c[k] + va * s[k];
                    }
                    E::store_chunk(out, or + j * CHUNK, o);
                }
                Rotation::Halves => {
                    let (ia, ib) = (j * CHUNK, half + j * CHUNK);
                    let (va, vb) = (E::load_chunk(x, xr + ia), E::load_chunk(x, xr + ib));
                    let (c, s) = (
                        f32::load_chunk(cos, tab + j * CHUNK),
                        f32::load_chunk(sin, tab + j * CHUNK),
                    );
                    let (mut oa, mut ob) = ([0.0f32; CHUNK], [0.0f32; CHUNK]);
                    for k in 0..CHUNK {
                        oa[k] = va[k] * c[k] - vb[k] * s[k];
                        ob[k] = vb[k] * c[k] + va[k] * s[k];
                    }
                    E::store_chunk(out, or + ia, oa);
                    E::store_chunk(out, or + ib, ob);
                }
            }
        }
    }
}

/// Rotates `x` into `out` (which may alias `x`).
///
/// # Safety
/// `x`/`out` hold `rows * head_dim` elements; the tables hold every position reached
/// (`pos_offset + seq`) times `head_dim / 2` entries; `head_dim` is even.
#[inline(always)]
pub unsafe fn rope<E: Elem>(
    x: *const E,
    out: *mut E,
    cos: *const f32,
    sin: *const f32,
    p: RopeParams,
) {
    let d = p.head_dim as usize;
    let bd = block_dim_x() as usize;
    let first = block_idx_x() as usize * bd + thread_idx_x() as usize;
    let stride = grid_dim_x() as usize * bd;
    let aligned = aligned16(x) && aligned16(out) && aligned16(cos) && aligned16(sin);
    let rot = Rotation::pick(p.interleaved != 0, d, aligned);
    // Index math in u32 (the host checks that `rows * head_dim` fits): 64-bit division costs
    // tens of instructions per item in a kernel that should only move bytes.
    let per_row = rot.items_per_row(d) as u32;
    let items = p.rows * per_row;
    let (heads, seq) = (p.heads, p.seq);
    let mut it = first as u32;
    while it < items {
        let row = it / per_row;
        let j = (it - row * per_row) as usize;
        let pos = (p.pos_offset + (row / heads) % seq) as usize;
        let xr = row as usize * d;
        // SAFETY: row < rows; the table row pos * d / 2 is inside the table by the caller's
        // contract; chunked walks only with aligned bases and d, d / 2 multiples of CHUNK or 4.
        unsafe { rot.item(x, xr, out, xr, cos, sin, pos * (d / 2), j, d) };
        it += stride as u32;
    }
}

kernel_entries! {
    rope(x: *const E, out: *mut E, cos: *const f32, sin: *const f32, p: RopeParams);
    rope_f32 = f32, rope_f16 = F16, rope_bf16 = BF16,
}
