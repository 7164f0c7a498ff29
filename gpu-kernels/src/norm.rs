//! RMSNorm and fused residual-add + RMSNorm.
//!
//! Variants: `rmsnorm_{f32,f16,bf16}` and `add_rmsnorm_{f32,f16,bf16}`.
//! Launch: one block per row (`grid.x = rows`), `block.x` a multiple of 32 up to 1024 (the host
//! picks ~one 8-element chunk per thread, capped at 256), dynamic shared memory
//! [`REDUCE_SMEM_BYTES`](crate::params::REDUCE_SMEM_BYTES). Each thread keeps up to [`CACHED_CHUNKS`] chunks of its row in
//! registers between the sum-of-squares pass and the scaling pass, so the row is read from
//! memory once. Math in f32.
//! Test: `cargo test --release --test gpu_vs_cpu -- --include-ignored rmsnorm`;
//! bench: `gpu_bench rmsnorm`.

use crate::elem::{BF16, CHUNK, Elem, F16, aligned16, sum_sq};
use crate::primitives::{block_dim_x, block_idx_x, dyn_smem_base, rsqrt_approx, thread_idx_x};
use crate::reduce::block_sum;
use crate::unroll::CACHED_CHUNKS;
use crate::{kernel_entries, unroll_cached};

/// `out = x / sqrt(mean(x^2) + eps) * w`, row by row; with `ADD`, first `x = x + residual`,
/// stored to `sum_out` (which may alias `x` for an in-place residual stream).
///
/// # Safety
/// `x`, `out` (and with `ADD` `residual`, `sum_out`) hold `rows * cols` elements, `w` holds
/// `cols`; launched as the module doc says. `out` must not alias `x` or `sum_out`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn rmsnorm_rows<E: Elem, const ADD: bool>(
    x: *const E,
    residual: *const E,
    w: *const E,
    sum_out: *mut E,
    out: *mut E,
    cols: u32,
    eps: f32,
) {
    let row = block_idx_x() as usize;
    let cols = cols as usize;
    let (t, bd) = (thread_idx_x() as usize, block_dim_x() as usize);
    let base = row * cols;
    let scratch = dyn_smem_base();
    let vector = cols % CHUNK == 0
        && aligned16(x)
        && aligned16(w)
        && aligned16(out)
        && (!ADD || (aligned16(residual) && aligned16(sum_out)));

    // SAFETY (whole body): every index is < rows*cols (row < rows from the grid, i < cols), the
    // chunked path runs only on 16-byte aligned rows, and the caller sized the buffers.
    unsafe {
        // Pass 1: (residual add and) sum of squares.
        let load = |i: usize| -> [f32; CHUNK] {
            let mut v = E::load_chunk(x, base + i);
            if ADD {
                let r = E::load_chunk(residual, base + i);
                for k in 0..CHUNK {
                    v[k] += r[k];
                }
                E::store_chunk(sum_out, base + i, v);
            }
            v
        };
        let mut ss = 0.0f32;
        let mut cache = [[0.0f32; CHUNK]; CACHED_CHUNKS];
        if vector {
            let chunks = cols / CHUNK;
            unroll_cached!(k => {
                let c = t + k * bd;
                if c < chunks {
                    cache[k] = load(c * CHUNK);
                    ss += sum_sq(&cache[k]);
                }
            });
            let mut c = t + CACHED_CHUNKS * bd;
            while c < chunks {
                ss += sum_sq(&load(c * CHUNK));
                c += bd;
            }
        } else {
            let mut i = t;
            while i < cols {
                let mut v = (*x.add(base + i)).load();
                if ADD {
                    v += (*residual.add(base + i)).load();
                    *sum_out.add(base + i) = E::store(v);
                }
                ss += v * v;
                i += bd;
            }
        }
        let inv = rsqrt_approx(block_sum(ss, scratch) / cols as f32 + eps);

        // Pass 2: scale. Rows longer than the register cache re-read what pass 1 wrote/read.
        let src: *const E = if ADD { sum_out } else { x };
        if vector {
            let chunks = cols / CHUNK;
            let scale = |i: usize, v: [f32; CHUNK]| {
                let wv = E::load_chunk(w, i);
                let mut o = [0.0f32; CHUNK];
                for k in 0..CHUNK {
                    o[k] = v[k] * inv * wv[k];
                }
                E::store_chunk(out, base + i, o);
            };
            unroll_cached!(k => {
                let c = t + k * bd;
                if c < chunks {
                    scale(c * CHUNK, cache[k]);
                }
            });
            let mut c = t + CACHED_CHUNKS * bd;
            while c < chunks {
                scale(c * CHUNK, E::load_chunk(src, base + c * CHUNK));
                c += bd;
            }
        } else {
            let mut i = t;
            while i < cols {
                let v = (*src.add(base + i)).load();
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
pub unsafe fn rmsnorm<E: Elem>(x: *const E, w: *const E, out: *mut E, cols: u32, eps: f32) {
    // SAFETY: forwarded contract; the residual pointers are unused without ADD.
    unsafe { rmsnorm_rows::<E, false>(x, x, w, out, out, cols, eps) }
}

/// `sum_out = x + residual; out = rmsnorm(sum_out) * w`. `sum_out` may alias `x`.
///
/// # Safety
/// See [`rmsnorm_rows`].
#[inline(always)]
pub unsafe fn add_rmsnorm<E: Elem>(
    x: *const E,
    residual: *const E,
    w: *const E,
    sum_out: *mut E,
    out: *mut E,
    cols: u32,
    eps: f32,
) {
    // SAFETY: forwarded contract.
    unsafe { rmsnorm_rows::<E, true>(x, residual, w, sum_out, out, cols, eps) }
}

kernel_entries! {
    rmsnorm(x: *const E, w: *const E, out: *mut E, cols: u32, eps: f32);
    rmsnorm_f32 = f32, rmsnorm_f16 = F16, rmsnorm_bf16 = BF16,
}

kernel_entries! {
    add_rmsnorm(x: *const E, residual: *const E, w: *const E, sum_out: *mut E, out: *mut E, cols: u32, eps: f32);
    add_rmsnorm_f32 = f32, add_rmsnorm_f16 = F16, add_rmsnorm_bf16 = BF16,
}
