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
    let half = d / 2;
    let bd = block_dim_x() as usize;
    let first = block_idx_x() as usize * bd + thread_idx_x() as usize;
    let stride = grid_dim_x() as usize * bd;
    let aligned = aligned16(x) && aligned16(out) && aligned16(cos) && aligned16(sin);
    let interleaved = p.interleaved != 0;
    // Elements per work item: halves rotate 8 pairs (16 elements), pairs 4 pairs (8 elements).
    let vector = aligned
        && if interleaved {
            d.is_multiple_of(CHUNK)
        } else {
            half.is_multiple_of(CHUNK)
        };
    let items_per_row = if !vector {
        half
    } else if interleaved {
        d / CHUNK
    } else {
        half / CHUNK
    };
    // Index math in u32 (the host checks that `rows * head_dim` fits): 64-bit division costs
    // tens of instructions per item in a kernel that should only move bytes.
    let items = p.rows * items_per_row as u32;
    let (per_row, heads, seq) = (items_per_row as u32, p.heads, p.seq);
    let mut it = first as u32;
    // SAFETY (loop): row < rows and every index stays inside the row; table index
    // pos * half + j with pos inside the table by the caller's contract; chunked accesses are
    // 16-byte aligned because d, half (and pos * half) are multiples of CHUNK or 4.
    while it < items {
        let row = it / per_row;
        let j = (it - row * per_row) as usize;
        let pos = (p.pos_offset + (row / heads) % seq) as usize;
        let xr = row as usize * d;
        let tab = pos * half;
        unsafe {
            if !vector {
                let (a, b) = if interleaved {
                    (xr + 2 * j, xr + 2 * j + 1)
                } else {
                    (xr + j, xr + j + half)
                };
                let (c, s) = (*cos.add(tab + j), *sin.add(tab + j));
                let (va, vb) = ((*x.add(a)).load(), (*x.add(b)).load());
                *out.add(a) = E::store(va * c - vb * s);
                *out.add(b) = E::store(vb * c + va * s);
            } else if interleaved {
                let v = E::load_chunk(x, xr + j * CHUNK);
                let (c, s) = (load4_f32(cos, tab + j * 4), load4_f32(sin, tab + j * 4));
                let mut o = [0.0f32; CHUNK];
                for k in 0..CHUNK / 2 {
                    let (va, vb) = (v[2 * k], v[2 * k + 1]);
                    o[2 * k] = va * c[k] - vb * s[k];
                    o[2 * k + 1] = vb * c[k] + va * s[k];
                }
                E::store_chunk(out, xr + j * CHUNK, o);
            } else {
                let (ia, ib) = (xr + j * CHUNK, xr + half + j * CHUNK);
                let (va, vb) = (E::load_chunk(x, ia), E::load_chunk(x, ib));
                let (c, s) = (
                    f32::load_chunk(cos, tab + j * CHUNK),
                    f32::load_chunk(sin, tab + j * CHUNK),
                );
                let (mut oa, mut ob) = ([0.0f32; CHUNK], [0.0f32; CHUNK]);
                for k in 0..CHUNK {
                    oa[k] = va[k] * c[k] - vb[k] * s[k];
                    ob[k] = vb[k] * c[k] + va[k] * s[k];
                }
                E::store_chunk(out, ia, oa);
                E::store_chunk(out, ib, ob);
            }
        }
        it += stride as u32;
    }
}

kernel_entries! {
    rope(x: *const E, out: *mut E, cos: *const f32, sin: *const f32, p: RopeParams);
    rope_f32 = f32, rope_f16 = F16, rope_bf16 = BF16,
}
