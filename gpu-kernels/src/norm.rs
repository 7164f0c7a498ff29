//! RMSNorm and fused residual-add + RMSNorm.
//!
//! Variants: `rmsnorm_{f32,f16,bf16}` and `add_rmsnorm_{f32,f16,bf16}` (the sum output may be
//! null: then only the norm of the sum is written, as for the final norm before the LM head).
//! Launch ([`row_of_thread`]): `block.x` threads per row — a multiple of 32 giving each thread
//! about [`CACHED_CHUNKS`] 8-element chunks — and `block.y` rows per block (more than one only
//! when `block.x == 32`: one warp per row, shuffles only); `grid.x = ceil(rows / block.y)`;
//! dynamic shared memory [`REDUCE_SMEM_BYTES`](crate::params::REDUCE_SMEM_BYTES). Each thread
//! keeps its chunks in registers between the sum-of-squares pass and the scaling pass, so a row
//! is read from memory once. Math in f32.
//! Test: `cargo test --release --test gpu_vs_cpu -- --include-ignored rms_norm`;
//! bench: `cargo bench --bench gpu_kernels -- --only rmsnorm`.

use crate::elem::{BF16, CHUNK, Elem, F16, aligned16, sum_sq};
use crate::primitives::{block_dim_x, dyn_smem_base, rsqrt_approx, thread_idx_x};
use crate::reduce::{row_of_thread, row_sum};
use crate::unroll::CACHED_CHUNKS;
use crate::{kernel_entries, unroll_cached};

/// `out = x / sqrt(mean(x^2) + eps) * w`, row by row; with `ADD`, first `x = x + residual`,
/// stored to `sum_out` unless it is null (`sum_out` may alias `x`: an in-place residual stream).
///
/// # Safety
/// `x`, `out` (and with `ADD` `residual`, non-null `sum_out`) hold `rows * cols` elements, `w`
/// holds `cols`; launched as the module doc says. `out` must not alias `x` or `sum_out`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn rmsnorm_rows<E: Elem, const ADD: bool>(
    x: *const E,
    residual: *const E,
    w: *const E,
    sum_out: *mut E,
    out: *mut E,
    rows: u32,
    cols: u32,
    eps: f32,
) {
    let row = row_of_thread();
    if row >= rows as usize {
        return; // only in one-warp-per-row blocks, which have no barrier
    }
    let cols = cols as usize;
    let (t, bd) = (thread_idx_x() as usize, block_dim_x() as usize);
    let base = row * cols;
    let scratch = dyn_smem_base();
    let keep_sum = ADD && !sum_out.is_null();
    let vector = cols.is_multiple_of(CHUNK)
        && aligned16(x)
        && aligned16(w)
        && aligned16(out)
        && (!ADD || aligned16(residual))
        && (!keep_sum || aligned16(sum_out));

    // SAFETY (whole body): every index is < rows*cols (row < rows, i < cols), the chunked path
    // runs only on 16-byte aligned rows, and the caller sized the buffers.
    unsafe {
        // The (summed) input at chunk offset i, packed as stored (half the registers of f32 for
        // f16/bf16 — the register cache below is what limits occupancy); `store` writes the sum
        // on the first pass. A sum is rounded to the storage type once, as the GPU stores it.
        let load = |i: usize, store: bool| -> E::Packed {
            let raw = E::load_packed(x, base + i);
            if !ADD {
                return raw;
            }
            let (mut v, r) = (E::unpack(raw), E::load_chunk(residual, base + i));
            for k in 0..CHUNK {
                v[k] += r[k];
            }
            let packed = E::pack(v);
            if store && keep_sum {
                E::store_packed(sum_out, base + i, packed);
            }
            packed
        };
        let load_one = |i: usize| -> f32 {
            let v = (*x.add(base + i)).load();
            if ADD {
                v + (*residual.add(base + i)).load()
            } else {
                v
            }
        };

        // Pass 1: (residual add and) sum of squares.
        let mut ss = 0.0f32;
        let mut cache = [E::pack([0.0; CHUNK]); CACHED_CHUNKS];
        // The weight of the cached chunks, loaded with them: its round trip overlaps the first
        // pass and the reduction instead of following them (decode rows are one short row,
        // where latency is the whole cost).
        let mut w_cache = [E::pack([0.0; CHUNK]); CACHED_CHUNKS];
        if vector {
            let chunks = cols / CHUNK;
            unroll_cached!(k => {
                let c = t + k * bd;
                if c < chunks {
                    cache[k] = load(c * CHUNK, true);
                    w_cache[k] = E::load_packed(w, c * CHUNK);
                    ss += sum_sq(&E::unpack(cache[k]));
                }
            });
            let mut c = t + CACHED_CHUNKS * bd;
            while c < chunks {
                ss += sum_sq(&E::unpack(load(c * CHUNK, true)));
                c += bd;
            }
        } else {
            let mut i = t;
            while i < cols {
                let v = load_one(i);
                if keep_sum {
                    *sum_out.add(base + i) = E::store(v);
                }
                ss += v * v;
                i += bd;
            }
        }
        let inv = rsqrt_approx(row_sum(ss, scratch) / cols as f32 + eps);

        // Pass 2: scale. Rows longer than the register cache load their input again (the sum
        // is recomputed from x and residual, which a non-aliasing sum_out leaves intact).
        if vector {
            let chunks = cols / CHUNK;
            let scale = |i: usize, v: [f32; CHUNK], wv: [f32; CHUNK]| {
                let mut o = [0.0f32; CHUNK];
                for k in 0..CHUNK {
                    o[k] = v[k] * inv * wv[k];
                }
                E::store_chunk(out, base + i, o);
            };
            unroll_cached!(k => {
                let c = t + k * bd;
                if c < chunks {
                    scale(c * CHUNK, E::unpack(cache[k]), E::unpack(w_cache[k]));
                }
            });
            let mut c = t + CACHED_CHUNKS * bd;
            while c < chunks {
                let v = if keep_sum {
                    E::load_chunk(sum_out, base + c * CHUNK)
                } else {
                    E::unpack(load(c * CHUNK, false))
                };
                scale(c * CHUNK, v, E::load_chunk(w, c * CHUNK));
                c += bd;
            }
        } else {
            let mut i = t;
            while i < cols {
                let v = if keep_sum {
                    (*sum_out.add(base + i)).load()
                } else {
                    load_one(i)
                };
                *out.add(base + i) = E::store(v * inv * (*w.add(i)).load());
                i += bd;
            }
        }
    }
}

/// RMSNorm of each row of `x` (`[rows, cols]`) scaled by `w` (`[cols]`).
///
/// # Safety
/// See [`rmsnorm_rows`].
#[inline(always)]
pub unsafe fn rmsnorm<E: Elem>(
    x: *const E,
    w: *const E,
    out: *mut E,
    rows: u32,
    cols: u32,
    eps: f32,
) {
    // SAFETY: forwarded contract; the residual pointers are unused without ADD.
    unsafe { rmsnorm_rows::<E, false>(x, x, w, core::ptr::null_mut(), out, rows, cols, eps) }
}

/// `sum_out = x + residual` (skipped when `sum_out` is null); `out = rmsnorm(x + residual) * w`.
///
/// # Safety
/// See [`rmsnorm_rows`].
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub unsafe fn add_rmsnorm<E: Elem>(
    x: *const E,
    residual: *const E,
    w: *const E,
    sum_out: *mut E,
    out: *mut E,
    rows: u32,
    cols: u32,
    eps: f32,
) {
    // SAFETY: forwarded contract.
    unsafe { rmsnorm_rows::<E, true>(x, residual, w, sum_out, out, rows, cols, eps) }
}

kernel_entries! {
    rmsnorm(x: *const E, w: *const E, out: *mut E, rows: u32, cols: u32, eps: f32);
    rmsnorm_f32 = f32, rmsnorm_f16 = F16, rmsnorm_bf16 = BF16,
}

kernel_entries! {
    add_rmsnorm(x: *const E, residual: *const E, w: *const E, sum_out: *mut E, out: *mut E, rows: u32, cols: u32, eps: f32);
    add_rmsnorm_f32 = f32, add_rmsnorm_f16 = F16, add_rmsnorm_bf16 = BF16,
}
