//! RoPE fused with the KV-cache write: the attention block's step between the projections and
//! attention, in one launch instead of two RoPEs and two copies.
//!
//! Variants: `rope_kv_write_{f32,f16,bf16}`. `q` `[seq, heads, head_dim]` is rotated into `q_out`
//! (which may alias it); `k` `[seq, kv_heads, head_dim]` is rotated straight into the key cache
//! and `v` copied into the value cache, at rows `pos .. pos + seq` (see [`RopeKvParams`]). The
//! position may be read from device memory (`pos_dev`), so a CUDA graph's decode step serves
//! every position. Rotation math and layouts are those of [`crate::rope`] (the unfused path,
//! which is its reference test).
//! Launch: grid-stride over [`crate::launch_shape::rope_kv_items`], `block.x = ELEMENTWISE_BLOCK`.
//! Test: `cargo test --release -p nano-infer-host --lib rope_kv` (the emulated device).

use crate::elem::{BF16, CHUNK, Elem, F16, aligned16};
use crate::kernel_entries;
use crate::params::RopeKvParams;
use crate::primitives::{block_dim_x, block_idx_x, grid_dim_x, thread_idx_x};
use crate::rope::Rotation;

/// Rotates `q` and `k` and writes `k`, `v` into the caches at the step's position.
///
/// # Safety
/// `q`/`q_out` hold `seq * heads * head_dim` elements, `k`/`v` `seq * kv_heads * head_dim`, the
/// caches `p.rows` rows of `kv_heads * head_dim`, the tables `p.rows * head_dim / 2` entries;
/// `pos_dev` is null or points at a `u32`; `head_dim` is even; the caches alias nothing else.
/// Tokens at positions `pos + s >= p.rows` (`pos = p.pos_offset + *pos_dev`) are skipped: their
/// `q_out` rows are left as they were and nothing of them reaches the caches.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub unsafe fn rope_kv_write<E: Elem>(
    q: *const E,
    q_out: *mut E,
    k: *const E,
    v: *const E,
    k_cache: *mut E,
    v_cache: *mut E,
    cos: *const f32,
    sin: *const f32,
    pos_dev: *const u32,
    p: RopeKvParams,
) {
    let d = p.head_dim as usize;
    let bd = block_dim_x() as usize;
    let first = block_idx_x() as usize * bd + thread_idx_x() as usize;
    let stride = grid_dim_x() as usize * bd;
    // SAFETY: the caller's contract. Saturating: a position past u32 is past the cache too, not
    // a wrapped-around row inside it.
    let pos = p.pos_offset.saturating_add(if pos_dev.is_null() {
        0
    } else {
        unsafe { *pos_dev }
    });
    let aligned = aligned16(q)
        && aligned16(q_out)
        && aligned16(k)
        && aligned16(v)
        && aligned16(k_cache)
        && aligned16(v_cache)
        && aligned16(cos)
        && aligned16(sin);
    let rot = Rotation::pick(p.interleaved != 0, d, aligned);
    // V moves in 8-element chunks when everything is aligned and rows hold whole chunks.
    let v_chunk = if aligned && d.is_multiple_of(CHUNK) {
        CHUNK
    } else {
        1
    };
    // Work items in u32, as `rope`: q pairs, then k pairs, then v chunks.
    let per_row = rot.items_per_row(d) as u32;
    let v_per_row = (d / v_chunk) as u32;
    let q_items = p.seq * p.heads * per_row;
    let k_items = p.seq * p.kv_heads * per_row;
    let v_items = p.seq * p.kv_heads * v_per_row;
    let kv_row = p.kv_heads as usize * d;
    let mut it = first as u32;
    while it < q_items + k_items + v_items {
        // The item's row of q, k or v (`row`, of `heads` or `kv_heads` per token) and its place
        // in that row (`j`): a pair for q and k, a chunk for v.
        let (part, i, per) = if it < q_items {
            (Part::Q, it, per_row)
        } else if it < q_items + k_items {
            (Part::K, it - q_items, per_row)
        } else {
            (Part::V, it - q_items - k_items, v_per_row)
        };
        let (row, j) = (i / per, (i % per) as usize);
        let heads = if part == Part::Q { p.heads } else { p.kv_heads };
        let at = pos.saturating_add(row / heads);
        // SAFETY (each arm): the row indices stay below seq * heads (q) or seq * kv_heads (k, v);
        // cache and table rows `at < p.rows`; chunked accesses only when every base is aligned
        // and d (and d / 2 for halves) a multiple of CHUNK.
        if at < p.rows {
            let h = (row % heads) as usize;
            let (r, dst, table) = (
                row as usize * d,
                at as usize * kv_row + h * d,
                at as usize * (d / 2),
            );
            unsafe {
                match part {
                    Part::Q => rot.item(q, r, q_out, r, cos, sin, table, j, d),
                    Part::K => rot.item(k, r, k_cache, dst, cos, sin, table, j, d),
                    Part::V => {
                        let c = j * v_chunk;
                        if v_chunk == CHUNK {
                            E::store_packed(v_cache, dst + c, E::load_packed(v, r + c));
                        } else {
                            *v_cache.add(dst + c) = *v.add(r + c);
                        }
                    }
                }
            }
        }
        it += stride as u32;
    }
}

/// Which tensor a work item of [`rope_kv_write`] belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Q,
    K,
    V,
}

kernel_entries! {
    rope_kv_write(
        q: *const E, q_out: *mut E, k: *const E, v: *const E, k_cache: *mut E, v_cache: *mut E,
        cos: *const f32, sin: *const f32, pos_dev: *const u32, p: RopeKvParams,
    );
    rope_kv_write_f32 = f32, rope_kv_write_f16 = F16, rope_kv_write_bf16 = BF16,
}
