//! GEMV for decode: `y[m, j] = Σ_i x[m, i] · w[j, i]` for a few rows `m` (1..=[`GEMV_MAX_M`])
//! of `x` against a `[n, k]` weight (a Linear layer, PyTorch layout), optionally with SwiGLU in
//! the epilogue.
//!
//! Variants, each in widths `M` = 1, 2, 4, 8 (`m <= M` rows of `x`; a kernel per width so each
//! has its own register count). The set is kept small on purpose: every entry is JIT-compiled
//! when the module loads (f32 activations with quantized weights, and the SwiGLU form in f32,
//! take the unfused or dequantized paths on the host side):
//! - `gemv_m{M}_{f32,f16,bf16}`: plain weights of the activation type;
//! - `gemv_m{M}_{q8_0,q4_0,q4_1}_f16`: quantized weights in the repacked layout of
//!   [`crate::weights`], dequantized in registers, f16 activations;
//! - `gemv_swiglu_m{M}_{f16,bf16,q8_0_f16,q4_0_f16,q4_1_f16}`: the weight is gate and up concatenated (`[2n, k]`, gate rows
//!   first) and `y[m, j] = silu(gate_j · x_m) · (up_j · x_m)` — LlamaMLP's gate+up projection
//!   in one pass, writing `n` outputs per row of `x`.
//!
//! Batch-1 decode reads every weight once per token, so the kernel is about bytes in flight:
//! each block owns [`GEMV_ROWS`] weight rows (gate and up row `j` for SwiGLU); its threads stride
//! over the rows' 16-byte chunks and issue a group of chunk loads per row before any math
//! ([`GEMV_GROUP_PIECES`] pieces of 8 weights: 4 chunks of f16, 2 of Q8_0, 1 of Q4 — up to
//! 8 × 16 B per thread in flight), then reduce with shuffles and, across the block's
//! warps, a little shared memory. Each 8-element piece of `x` is loaded once per block for all
//! its rows; `M` is a compile-time constant so the `GEMV_ROWS · M` accumulators stay in
//! registers. Math in f32.
//! Under a programmatic dependent launch (sm_90) the block may start while the previous kernel
//! still runs. When the host passes `weights_early` (that kernel was handed no address in the
//! weights' buffer) each thread issues its first group of weight loads before
//! [`grid_dependency_sync`], so the weights stream in during the previous kernel's tail instead
//! of after it; `x` and `y` are touched only after the wait.
//! Launch: [`crate::launch_shape::gemv`] — `block.x` a multiple of 32 up to [`GEMV_MAX_THREADS`]
//! (about one group per thread and row), one block per row group, dynamic shared memory
//! [`GEMV_SMEM_BYTES`].
//! Test: `cargo test --release -p nano-infer-host --test emu gemv` (emulator) and
//! `cargo test --release --test gpu_vs_cpu -- --include-ignored gemv`;
//! bench: `cargo bench --bench gpu_kernels -- --only gemv`.

use crate::activation::silu_scalar;
use crate::elem::{BF16, CHUNK, Elem, F16, aligned16};
use crate::params::{GEMV_GROUP_PIECES, GEMV_MAX_M, GEMV_ROWS};
use crate::primitives::{
    block_dim_x, block_idx_x, dyn_smem_base, fma_f32, grid_dependency_sync, smem_load_f32,
    smem_store_f32, sync_threads, thread_idx_x,
};
use crate::reduce::warp_sum;
use crate::weights::{Q4_0, Q4_1, Q8_0, WeightFormat};
use crate::{kernel_entries, unroll2, unroll4, unroll8};

#[allow(unused_imports)] // named by the docs
use crate::params::{GEMV_MAX_THREADS, GEMV_SMEM_BYTES};

const _: () = assert!(GEMV_GROUP_PIECES == 4, "gemv unrolls groups with unroll4!");
const _: () = assert!(GEMV_ROWS == 2, "gemv unrolls rows with unroll2!");
const _: () = assert!(GEMV_ROWS == 2, "the SwiGLU epilogue pairs gate and up rows");

/// `acc + Σ w[e]·x[e]` over one 8-element piece, with fused multiply-adds.
#[inline(always)]
fn dot8(w: &[f32; CHUNK], x: &[f32; CHUNK], mut acc: f32) -> f32 {
    for e in 0..CHUNK {
        acc = fma_f32(w[e], x[e], acc);
    }
    acc
}

/// One block: `GEMV_ROWS` weight rows against `mr` (`<= M`) rows of `x`. `M` is the compiled
/// width (1, 2, 4 or 8): rows `mr..M` cost some idle registers and predicated-off loads.
///
/// # Safety
/// `w` holds a `[rows, k]` matrix of format `W` (`rows = 2n` with `SWIGLU`, else `n`), `x`
/// `mr * k` elements, `y` `mr * n`; `y` aliases neither input; launched as the module doc says.
#[inline(always)]
unsafe fn gemv_block<W: WeightFormat, E: Elem, const M: usize, const SWIGLU: bool>(
    w: *const u8,
    x: *const E,
    y: *mut E,
    mr: usize,
    n: usize,
    k: usize,
    weights_early: bool,
) {
    // Every other access waits for the grid this one may overlap (programmatic dependent
    // launch): at once, or — when the host vouches that grid does not write `w` — after this
    // thread's first group of weight loads is in flight, so the loads overlap its tail.
    let mut synced = !weights_early;
    if synced {
        grid_dependency_sync();
    }
    let (t, bd, b) = (
        thread_idx_x() as usize,
        block_dim_x() as usize,
        block_idx_x() as usize,
    );
    let w_rows = if SWIGLU { 2 * n } else { n };
    let mut row = [0usize; GEMV_ROWS];
    let mut live = [false; GEMV_ROWS];
    for r in 0..GEMV_ROWS {
        row[r] = if SWIGLU { b + r * n } else { b * GEMV_ROWS + r };
        live[r] = row[r] < w_rows;
    }
    let mut acc = [[0.0f32; M]; GEMV_ROWS];
    // SAFETY (both paths): live rows are < w_rows; chunk and element indices stay inside a row
    // (cu < chunks, i < k); x offsets are < M * k and chunk-aligned on the vector path (k is a
    // multiple of the weight chunk, itself a multiple of CHUNK, and x is 16-byte aligned).
    unsafe {
        if W::vector_ok(w, k) && aligned16(x) {
            let chunks = k / (CHUNK * W::PIECES);
            let mut c = t;
            while c < chunks {
                // Every load of this group is issued before the first one is used.
                let mut raw = [[W::ZERO; GEMV_ROWS]; GEMV_GROUP_PIECES];
                unroll4!(u => {
                    let cu = c + u * bd;
                    unroll2!(r => {
                        if u < W::UNROLL && cu < chunks && live[r] {
                            raw[u][r] = W::load(w, w_rows, k, row[r], cu);
                        }
                    });
                });
                if !synced {
                    grid_dependency_sync();
                    synced = true;
                }
                unroll4!(u => {
                    let cu = c + u * bd;
                    if u < W::UNROLL && cu < chunks {
                        unroll4!(p => {
                            if p < W::PIECES {
                                let w0 = W::piece(&raw[u][0], p);
                                let w1 = W::piece(&raw[u][1], p);
                                let off = (cu * W::PIECES + p) * CHUNK;
                                unroll8!(m => {
                                    if m < M && m < mr {
                                        let xv = E::load_chunk(x, m * k + off);
                                        acc[0][m] = dot8(&w0, &xv, acc[0][m]);
                                        acc[1][m] = dot8(&w1, &xv, acc[1][m]);
                                    }
                                });
                            }
                        });
                    }
                });
                c += W::UNROLL * bd;
            }
        } else {
            let mut i = t;
            if !synced {
                grid_dependency_sync();
                synced = true;
            }
            while i < k {
                unroll2!(r => {
                    if live[r] {
                        let wv = W::element(w, w_rows, k, row[r], i);
                        unroll8!(m => {
                            if m < M && m < mr {
                                let xm = (*x.add(m * k + i)).load();
                                acc[r][m] = fma_f32(wv, xm, acc[r][m]);
                            }
                        });
                    }
                });
                i += bd;
            }
        }
    }

    if !synced {
        // A thread with no chunk: it still must not write `y` before the wait.
        grid_dependency_sync();
    }
    // Reduce: shuffles within each warp, then (several warps) through shared memory.
    unroll2!(r => {
        unroll8!(m => {
            if m < M {
                acc[r][m] = warp_sum(acc[r][m]);
            }
        });
    });
    if bd > 32 {
        let (lane, warp, warps) = (t % 32, t / 32, bd / 32);
        let slot = |warp: usize, r: usize, m: usize| {
            dyn_smem_base() + (4 * ((warp * GEMV_ROWS + r) * GEMV_MAX_M + m)) as u32
        };
        // SAFETY: warp < GEMV_MAX_THREADS / 32, r < GEMV_ROWS, m < GEMV_MAX_M: the slots lie
        // inside the GEMV_SMEM_BYTES the launch gives; the barrier is reached by every thread.
        unsafe {
            if lane == 0 {
                unroll2!(r => {
                    unroll8!(m => {
                        if m < M {
                            smem_store_f32(slot(warp, r, m), acc[r][m]);
                        }
                    });
                });
            }
            sync_threads();
            if t == 0 {
                for v in 1..warps {
                    unroll2!(r => {
                        unroll8!(m => {
                            if m < M {
                                acc[r][m] += smem_load_f32(slot(v, r, m));
                            }
                        });
                    });
                }
            }
        }
    }
    if t != 0 {
        return;
    }
    // SAFETY: outputs y[m * n + j] with m < M and j < n (live rows; b < n for SwiGLU).
    unsafe {
        // Constant indices (`unroll8!`, `m < M`) keep `acc` in registers.
        unroll8!(m => {
            if m < M && m < mr {
                if SWIGLU {
                    *y.add(m * n + b) = E::store(silu_scalar(acc[0][m]) * acc[1][m]);
                } else {
                    unroll2!(r => {
                        if live[r] {
                            *y.add(m * n + row[r]) = E::store(acc[r][m]);
                        }
                    });
                }
            }
        });
    }
}

/// The compiled widths: `gemv[_swiglu]_m{M}` serves `m` rows of `x` with `m <= M` (the host
/// picks the smallest width, [`crate::launch_shape::gemv_width`]). Each width is its own
/// kernel so that its register count (and so its occupancy) is its own: M = 1 is not held back
/// by the accumulators of M = 8.
macro_rules! gemv_widths {
    ($($body:ident = $m:literal, $swiglu:literal;)*) => {$(
        /// `y = x · wᵀ` (or its SwiGLU form) for `m <= M` rows of `x`; `w` `[n, k]` (`[2n, k]`
        /// for SwiGLU) of format `A`, `x` `[m, k]` and `y` `[m, n]` of type `B`.
        ///
        /// # Safety
        /// See [`gemv_block`].
        #[inline(always)]
        pub unsafe fn $body<A: WeightFormat, B: Elem>(
            w: *const u8,
            x: *const B,
            y: *mut B,
            m: u32,
            n: u32,
            k: u32,
            weights_early: u32,
        ) {
            // SAFETY: forwarded contract (the launcher passes m <= M).
            unsafe {
                gemv_block::<A, B, $m, $swiglu>(
                    w,
                    x,
                    y,
                    m as usize,
                    n as usize,
                    k as usize,
                    weights_early != 0,
                )
            }
        }
    )*};
}

gemv_widths! {
    gemv_m1 = 1, false; gemv_m2 = 2, false; gemv_m4 = 4, false; gemv_m8 = 8, false;
    gemv_swiglu_m1 = 1, true; gemv_swiglu_m2 = 2, true; gemv_swiglu_m4 = 4, true;
    gemv_swiglu_m8 = 8, true;
}
const _: () = assert!(GEMV_MAX_M == 8);

kernel_entries! {
    own_sync gemv_m1(w: *const u8, x: *const B, y: *mut B, m: u32, n: u32, k: u32, weights_early: u32);
    gemv_m1_f32 = f32 => f32,
    gemv_m1_f16 = F16 => F16,
    gemv_m1_bf16 = BF16 => BF16,
    gemv_m1_q8_0_f16 = Q8_0 => F16,
    gemv_m1_q4_0_f16 = Q4_0 => F16,
    gemv_m1_q4_1_f16 = Q4_1 => F16,
}

kernel_entries! {
    own_sync gemv_m2(w: *const u8, x: *const B, y: *mut B, m: u32, n: u32, k: u32, weights_early: u32);
    gemv_m2_f32 = f32 => f32,
    gemv_m2_f16 = F16 => F16,
    gemv_m2_bf16 = BF16 => BF16,
    gemv_m2_q8_0_f16 = Q8_0 => F16,
    gemv_m2_q4_0_f16 = Q4_0 => F16,
    gemv_m2_q4_1_f16 = Q4_1 => F16,
}

kernel_entries! {
    own_sync gemv_m4(w: *const u8, x: *const B, y: *mut B, m: u32, n: u32, k: u32, weights_early: u32);
    gemv_m4_f32 = f32 => f32,
    gemv_m4_f16 = F16 => F16,
    gemv_m4_bf16 = BF16 => BF16,
    gemv_m4_q8_0_f16 = Q8_0 => F16,
    gemv_m4_q4_0_f16 = Q4_0 => F16,
    gemv_m4_q4_1_f16 = Q4_1 => F16,
}

kernel_entries! {
    own_sync gemv_m8(w: *const u8, x: *const B, y: *mut B, m: u32, n: u32, k: u32, weights_early: u32);
    gemv_m8_f32 = f32 => f32,
    gemv_m8_f16 = F16 => F16,
    gemv_m8_bf16 = BF16 => BF16,
    gemv_m8_q8_0_f16 = Q8_0 => F16,
    gemv_m8_q4_0_f16 = Q4_0 => F16,
    gemv_m8_q4_1_f16 = Q4_1 => F16,
}

kernel_entries! {
    own_sync gemv_swiglu_m1(w: *const u8, x: *const B, y: *mut B, m: u32, n: u32, k: u32, weights_early: u32);
    gemv_swiglu_m1_f16 = F16 => F16,
    gemv_swiglu_m1_bf16 = BF16 => BF16,
    gemv_swiglu_m1_q8_0_f16 = Q8_0 => F16,
    gemv_swiglu_m1_q4_0_f16 = Q4_0 => F16,
    gemv_swiglu_m1_q4_1_f16 = Q4_1 => F16,
}

kernel_entries! {
    own_sync gemv_swiglu_m2(w: *const u8, x: *const B, y: *mut B, m: u32, n: u32, k: u32, weights_early: u32);
    gemv_swiglu_m2_f16 = F16 => F16,
    gemv_swiglu_m2_bf16 = BF16 => BF16,
    gemv_swiglu_m2_q8_0_f16 = Q8_0 => F16,
    gemv_swiglu_m2_q4_0_f16 = Q4_0 => F16,
    gemv_swiglu_m2_q4_1_f16 = Q4_1 => F16,
}

kernel_entries! {
    own_sync gemv_swiglu_m4(w: *const u8, x: *const B, y: *mut B, m: u32, n: u32, k: u32, weights_early: u32);
    gemv_swiglu_m4_f16 = F16 => F16,
    gemv_swiglu_m4_bf16 = BF16 => BF16,
    gemv_swiglu_m4_q8_0_f16 = Q8_0 => F16,
    gemv_swiglu_m4_q4_0_f16 = Q4_0 => F16,
    gemv_swiglu_m4_q4_1_f16 = Q4_1 => F16,
}

kernel_entries! {
    own_sync gemv_swiglu_m8(w: *const u8, x: *const B, y: *mut B, m: u32, n: u32, k: u32, weights_early: u32);
    gemv_swiglu_m8_f16 = F16 => F16,
    gemv_swiglu_m8_bf16 = BF16 => BF16,
    gemv_swiglu_m8_q8_0_f16 = Q8_0 => F16,
    gemv_swiglu_m8_q4_0_f16 = Q4_0 => F16,
    gemv_swiglu_m8_q4_1_f16 = Q4_1 => F16,
}
