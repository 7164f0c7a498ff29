//! GEMV for decode: `y[m, n] = Σ_k x[m, k] · w[n, k]` for a few rows `m` (1..=4) of `x`
//! against a `[n, k]` weight (a Linear layer, PyTorch layout).
//!
//! Variants: `gemv_{f32,f16,bf16}`. Batch-1 decode reads every weight once per token, so this
//! kernel is about bytes in flight: each warp owns one output row at a time, its 32 lanes read
//! the row in 16-byte chunks, [`GEMV_UNROLL`] chunks per lane before any math (so a warp has
//! 2 KiB of loads outstanding), and reduce with shuffles at the end — no shared memory, no
//! barrier. `x` (a few KiB) is re-read from L1/L2 for every row. `M` is a compile-time
//! constant so the `M` accumulators stay in registers.
//! Launch: `block.x` a multiple of 32 (warps are independent), any grid; warps stride over rows.
//! Test: `cargo test --release --test gpu_vs_cpu -- --include-ignored gemv`;
//! bench: `cargo bench --bench gpu_kernels -- --only gemv`.

use crate::elem::{BF16, CHUNK, Elem, F16, aligned16};
use crate::params::{GEMV_MAX_M, GEMV_UNROLL};
use crate::{kernel_entries, unroll4};
const _: () = assert!(GEMV_UNROLL == 4, "gemv unrolls with unroll4!");
use crate::primitives::{block_dim_x, block_idx_x, grid_dim_x, thread_idx_x};
use crate::reduce::warp_sum;

/// One warp per output row, `M` rows of `x`.
///
/// # Safety
/// `w` holds `n * k`, `x` `M * k`, `y` `M * n` elements; `y` does not alias the inputs.
#[inline(always)]
unsafe fn gemv_rows<E: Elem, const M: usize>(
    w: *const E,
    x: *const E,
    y: *mut E,
    n: usize,
    k: usize,
) {
    let lane = (thread_idx_x() & 31) as usize;
    let warps_per_block = (block_dim_x() / 32) as usize;
    let warp = block_idx_x() as usize * warps_per_block + (thread_idx_x() / 32) as usize;
    let warps = grid_dim_x() as usize * warps_per_block;
    let vector = k.is_multiple_of(CHUNK) && aligned16(w) && aligned16(x);
    let chunks = k / CHUNK;
    let mut row = warp;
    // SAFETY (loop): row < n, every chunk/element index < k; chunked accesses are aligned since
    // k is a multiple of CHUNK and the bases are aligned.
    while row < n {
        let wr = row * k;
        let mut acc = [0.0f32; M];
        unsafe {
            if vector {
                let mut c = lane;
                // Full groups: GEMV_UNROLL independent loads per lane before the math.
                while c + 32 * (GEMV_UNROLL - 1) < chunks {
                    let mut wv = [[0.0f32; CHUNK]; GEMV_UNROLL];
                    unroll4!(u => {
                        wv[u] = E::load_chunk(w, wr + (c + 32 * u) * CHUNK);
                    });
                    unroll4!(u => {
                        let off = (c + 32 * u) * CHUNK;
                        for r in 0..M {
                            let xv = E::load_chunk(x, r * k + off);
                            for e in 0..CHUNK {
                                acc[r] += wv[u][e] * xv[e];
                            }
                        }
                    });
                    c += 32 * GEMV_UNROLL;
                }
                while c < chunks {
                    let wv = E::load_chunk(w, wr + c * CHUNK);
                    for r in 0..M {
                        let xv = E::load_chunk(x, r * k + c * CHUNK);
                        for e in 0..CHUNK {
                            acc[r] += wv[e] * xv[e];
                        }
                    }
                    c += 32;
                }
            } else {
                let mut i = lane;
                while i < k {
                    let wv = (*w.add(wr + i)).load();
                    for r in 0..M {
                        acc[r] += wv * (*x.add(r * k + i)).load();
                    }
                    i += 32;
                }
            }
            for r in 0..M {
                let s = warp_sum(acc[r]);
                if lane == 0 {
                    *y.add(r * n + row) = E::store(s);
                }
            }
        }
        row += warps;
    }
}

/// `y = x · wᵀ` for `m` (1..=[`GEMV_MAX_M`]) rows of `x`; other `m` write nothing (the host
/// never launches them).
///
/// # Safety
/// See [`gemv_rows`] with `M = m`.
#[inline(always)]
pub unsafe fn gemv<E: Elem>(w: *const E, x: *const E, y: *mut E, m: u32, n: u32, k: u32) {
    let (n, k) = (n as usize, k as usize);
    // SAFETY: forwarded contract for the matching M.
    unsafe {
        match m {
            1 => gemv_rows::<E, 1>(w, x, y, n, k),
            2 => gemv_rows::<E, 2>(w, x, y, n, k),
            3 => gemv_rows::<E, 3>(w, x, y, n, k),
            4 => gemv_rows::<E, 4>(w, x, y, n, k),
            _ => {}
        }
    }
    const _: () = assert!(GEMV_MAX_M == 4);
}

kernel_entries! {
    gemv(w: *const E, x: *const E, y: *mut E, m: u32, n: u32, k: u32);
    gemv_f32 = f32, gemv_f16 = F16, gemv_bf16 = BF16,
}
