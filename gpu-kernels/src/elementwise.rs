//! Elementwise maps (add, mul, dtype casts), embedding gather and strided copy.
//!
//! Variants: `add_{dt}`, `mul_{dt}`, `cast_{src}_{dst}`, `embedding_{dt}`, `copy_strided_{dt}`.
//! Launch (maps, copy): grid-stride, `block.x = ELEMENTWISE_BLOCK`, any grid. The maps move
//! 8-element chunks when every pointer is 16-byte aligned and finish the tail element by element.
//! Embedding: `grid.x = n_ids`, one block per output row.
//! Test: `cargo test --release --test gpu_vs_cpu -- --include-ignored`; bench: `gpu_bench`.

use crate::elem::{BF16, CHUNK, Elem, F16, aligned16};
use crate::kernel_entries;
use crate::params::{MAX_RANK, StridedCopy};
use crate::primitives::{block_dim_x, block_idx_x, grid_dim_x, thread_idx_x};

/// This thread's first index and the grid-wide stride.
#[inline(always)]
fn grid_stride() -> (usize, usize) {
    let bd = block_dim_x() as usize;
    (
        block_idx_x() as usize * bd + thread_idx_x() as usize,
        grid_dim_x() as usize * bd,
    )
}

/// `out[i] = f(a[i], b[i])` for `i < n`, computed in f32; `B` is the output storage type.
///
/// # Safety
/// `a`, `b`, `out` hold `n` elements. `out` may alias `a` or `b` (each element is read before
/// it is written, by the same thread).
#[inline(always)]
pub unsafe fn map2<A: Elem, B: Elem>(
    a: *const A,
    b: *const A,
    out: *mut B,
    n: usize,
    f: impl Fn(f32, f32) -> f32,
) {
    let (first, stride) = grid_stride();
    let chunks = if aligned16(a) && aligned16(b) && aligned16(out) {
        n / CHUNK
    } else {
        0
    };
    // SAFETY: chunk c covers c*CHUNK..(c+1)*CHUNK <= n, aligned because the bases are; the
    // scalar tail stays below n.
    unsafe {
        let mut c = first;
        while c < chunks {
            let (x, y) = (A::load_chunk(a, c * CHUNK), A::load_chunk(b, c * CHUNK));
            let mut o = [0.0f32; CHUNK];
            for k in 0..CHUNK {
                o[k] = f(x[k], y[k]);
            }
            B::store_chunk(out, c * CHUNK, o);
            c += stride;
        }
        let mut i = chunks * CHUNK + first;
        while i < n {
            *out.add(i) = B::store(f((*a.add(i)).load(), (*b.add(i)).load()));
            i += stride;
        }
    }
}

/// `out[i] = f(x[i])`: [`map2`] with the input read once.
///
/// # Safety
/// As [`map2`].
#[inline(always)]
pub unsafe fn map1<A: Elem, B: Elem>(x: *const A, out: *mut B, n: usize, f: impl Fn(f32) -> f32) {
    // SAFETY: forwarded; the second operand is the first and goes unused.
    unsafe { map2(x, x, out, n, |v, _| f(v)) }
}

/// `out = a + b`.
///
/// # Safety
/// As [`map2`].
#[inline(always)]
pub unsafe fn add<E: Elem>(a: *const E, b: *const E, out: *mut E, n: u64) {
    // SAFETY: forwarded contract.
    unsafe { map2(a, b, out, n as usize, |x, y| x + y) }
}

/// `out = a * b`.
///
/// # Safety
/// As [`map2`].
#[inline(always)]
pub unsafe fn mul<E: Elem>(a: *const E, b: *const E, out: *mut E, n: u64) {
    // SAFETY: forwarded contract.
    unsafe { map2(a, b, out, n as usize, |x, y| x * y) }
}

kernel_entries! { add(a: *const E, b: *const E, out: *mut E, n: u64); add_f32 = f32, add_f16 = F16, add_bf16 = BF16 }
kernel_entries! { mul(a: *const E, b: *const E, out: *mut E, n: u64); mul_f32 = f32, mul_f16 = F16, mul_bf16 = BF16 }

/// `out = x` converted from `A` to `B`, rounding to nearest even: the body of the
/// `cast_{src}_{dst}` kernels (f32, f16 and bf16 in every direction). Each symbol comes from
/// `kernel_entries!`: a PTX entry on nvptx64, a plain function of the same name on the host
/// (for the emulator). Casts never alias, so the maps' in-place rule does not apply.
///
/// # Safety
/// `x` and `out` hold `n` elements and do not overlap.
#[inline(always)]
pub unsafe fn cast<A: Elem, B: Elem>(x: *const A, out: *mut B, n: u64) {
    // SAFETY: forwarded contract.
    unsafe { map1(x, out, n as usize, |v| v) }
}

kernel_entries! {
    cast(x: *const A, out: *mut B, n: u64);
    cast_f32_f16 = f32 => F16, cast_f32_bf16 = f32 => BF16,
    cast_f16_f32 = F16 => f32, cast_f16_bf16 = F16 => BF16,
    cast_bf16_f32 = BF16 => f32, cast_bf16_f16 = BF16 => F16,
}

/// Gathers rows of `table` (`[vocab, cols]`): `out[i] = table[ids[i]]`. Block `i` copies row
/// `i`; an id past the vocabulary writes zeros (the host validates ids first).
///
/// # Safety
/// `ids` holds `gridDim.x` ids, `out` `gridDim.x * cols` elements, `table` `vocab * cols`.
#[inline(always)]
pub unsafe fn embedding<E: Elem>(
    ids: *const u32,
    table: *const E,
    out: *mut E,
    cols: u32,
    vocab: u32,
) {
    let row = block_idx_x() as usize;
    let cols = cols as usize;
    // SAFETY: row < gridDim.x = number of ids; every index below stays inside its row.
    unsafe {
        let id = *ids.add(row);
        let src = table.add(id as usize * cols);
        let dst = out.add(row * cols);
        let mut i = thread_idx_x() as usize;
        while i < cols {
            *dst.add(i) = if id < vocab {
                *src.add(i)
            } else {
                E::store(0.0)
            };
            i += block_dim_x() as usize;
        }
    }
}

kernel_entries! {
    embedding(ids: *const u32, table: *const E, out: *mut E, cols: u32, vocab: u32);
    embedding_f32 = f32, embedding_f16 = F16, embedding_bf16 = BF16,
}

/// Copies a strided view element by element (`contiguous()`, writes into a cache slice).
///
/// # Safety
/// Every offset the view reaches lies inside `src` and `dst` as the host computed them.
#[inline(always)]
pub unsafe fn copy_strided<E: Elem>(src: *const E, dst: *mut E, p: StridedCopy) {
    let (first, stride) = grid_stride();
    let mut i = first as u64;
    while i < p.n {
        let (mut rest, mut s, mut d) = (i, p.src_offset, p.dst_offset);
        let mut k = MAX_RANK;
        while k > 0 {
            k -= 1;
            let idx = rest % p.shape[k];
            rest /= p.shape[k];
            s += idx * p.src_strides[k];
            d += idx * p.dst_strides[k];
        }
        // SAFETY: the host checked that the view's extent fits both buffers.
        unsafe { *dst.add(d as usize) = *src.add(s as usize) };
        i += stride as u64;
    }
}

kernel_entries! {
    copy_strided(src: *const E, dst: *mut E, p: StridedCopy);
    copy_strided_f32 = f32, copy_strided_f16 = F16, copy_strided_bf16 = BF16,
}
