//! GEMV for decode: `y[m, j] = Σ_i x[m, i] · w[j, i]` for a few rows `m` (1..=[`GEMV_MAX_M`])
//! of `x` against a `[n, k]` weight (a Linear layer, PyTorch layout), optionally with SwiGLU in
//! the epilogue.
//!
//! Variants, in widths `M` = 1, 2, 4, 8 (`m <= M` rows of `x`; a kernel per width so each has
//! its own register count) unless named `_m1`. The set is kept small on purpose: every entry is
//! JIT-compiled when the module loads (f32 activations with quantized weights, and the SwiGLU
//! form in f32, take the unfused or dequantized paths on the host side):
//! - `gemv_m{M}_{f32,f16,bf16}`: plain weights of the activation type;
//! - `gemv_m{M}_{q8_0,q4_0,q4_1}_f16`: quantized weights in the repacked layout of
//!   [`crate::weights`], dequantized in registers, f16 activations;
//! - `gemv_swiglu_m{M}_{f16,bf16,q8_0_f16,q4_0_f16,q4_1_f16}`: the weight is gate and up
//!   concatenated (`[2n, k]`, gate rows first) and `y[m, j] = silu(gate_j · x_m) · (up_j · x_m)`
//!   — LlamaMLP's gate+up projection in one pass, writing `n` outputs per row of `x`;
//! - `gemv_norm_m1_*`, `gemv_swiglu_norm_m1_*` (the formats above): the RMSNorm of `x` before
//!   the product;
//! - `gemv_rope_kv_m1_{f32,f16,bf16,q8_0_f16,q4_0_f16,q4_1_f16}`: one token's normed q/k/v
//!   projection with RoPE and the KV-cache write in its epilogue (blocks take q/k rows in
//!   rotation pairs).
//!
//! The decode step's neighbours of a projection ride along in the M = 1 kernels, so a Llama
//! block is five kernels, not eight: the norm before q/k/v and gate/up (and the LM head), the
//! residual add after o_proj and down (`residual`, null: none), RoPE and the cache write after
//! q/k/v. A norm costs no pass of its own: each block sums `x²` beside its products and scales
//! its sums at the end (see `gemv_block`); it is a separate kernel (not a flag) because its
//! registers would cost the plain kernel occupancy.
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
//! weights' buffer) each thread issues its first group of weight loads before the
//! grid-dependency wait ([`GridWait`]), so the weights stream in during the previous kernel's
//! tail instead of after it; `x` and `y` are touched only after the wait.
//! Launch: [`crate::launch_shape::gemv`] — `block.x` a multiple of 32 (about one group per
//! thread and row) up to [`GEMV_MAX_THREADS`] (M = 1 on dense weights;
//! [`GEMV_MAX_THREADS_WIDE`] otherwise), one block per row group, dynamic shared memory
//! [`GEMV_SMEM_BYTES`].
//! Test: `cargo test --release -p nano-infer-host --test emu gemv` (emulator) and
//! `cargo test --release --test gpu_vs_cpu -- --include-ignored gemv fused_gemv qkv_rope_kv`
//! (the fused forms against their unfused ops; `decode_graph fused_decode` for a whole step);
//! bench: `cargo bench --bench gpu_kernels -- --only gemv`.

use crate::activation::silu_scalar;
use crate::elem::{BF16, CHUNK, Elem, F16, aligned16};
use crate::params::{GEMV_GROUP_PIECES, GEMV_MAX_M, GEMV_ROWS, GemvRopeParams};
use crate::primitives::{
    GridWait, block_dim_x, block_idx_x, dyn_smem_base, fma_f32, rsqrt_approx, smem_load_f32,
    smem_store_f32, sync_threads, thread_idx_x,
};
use crate::reduce::warp_sum;
use crate::weights::{Q4_0, Q4_1, Q8_0, WeightFormat, dot8, sum8};
use crate::{kernel_entries, unroll2, unroll4, unroll8};

#[allow(unused_imports)] // named by the docs
use crate::params::{GEMV_MAX_THREADS, GEMV_MAX_THREADS_WIDE, GEMV_SMEM_BYTES};

const _: () = assert!(GEMV_GROUP_PIECES == 4, "gemv unrolls groups with unroll4!");
const _: () = assert!(GEMV_ROWS == 2, "gemv unrolls rows with unroll2!");
const _: () = assert!(GEMV_ROWS == 2, "the SwiGLU epilogue pairs gate and up rows");

/// What a GEMV block does with its row sums (the kernel's const parameter `EPI`).
const PLAIN: u8 = 0;
/// `silu(gate) · up` of its gate and up rows.
const SWIGLU: u8 = 1;
/// RoPE on a q/k row pair, then q to `y`, k and v into the KV cache.
const ROPE_KV: u8 = 2;

/// The outputs of the RoPE + KV-cache epilogue (`gemv_rope_kv_*`; unused by the others).
#[derive(Clone, Copy)]
struct RopeKvOut<E> {
    k_cache: *mut E,
    v_cache: *mut E,
    cos: *const f32,
    sin: *const f32,
    pos_dev: *const u32,
    p: GemvRopeParams,
}

impl<E> RopeKvOut<E> {
    /// For the variants without it.
    const NONE: RopeKvOut<E> = RopeKvOut {
        k_cache: core::ptr::null_mut(),
        v_cache: core::ptr::null_mut(),
        cos: core::ptr::null(),
        sin: core::ptr::null(),
        pos_dev: core::ptr::null(),
        p: GemvRopeParams {
            q_dim: 0,
            kv_dim: 0,
            head_dim: 0,
            interleaved: 0,
            rows: 0,
        },
    };
}

/// The weight rows block `b` reduces. SwiGLU: gate row `b` and up row `b`. RoPE: the rows of
/// q and k come in rotation pairs — `(j, j + head_dim / 2)` of a head, or `(2j, 2j + 1)`
/// interleaved — so one thread holds both halves of each rotation; v rows go two by two.
#[inline(always)]
fn block_rows<const EPI: u8>(b: usize, n: usize, p: &GemvRopeParams) -> [usize; GEMV_ROWS] {
    let (hd, qk) = (p.head_dim as usize, (p.q_dim + p.kv_dim) as usize);
    if EPI == SWIGLU {
        [b, b + n]
    } else if EPI == ROPE_KV && 2 * b < qk {
        let (head, j) = (b / (hd / 2), b % (hd / 2));
        if p.interleaved != 0 {
            [head * hd + 2 * j, head * hd + 2 * j + 1]
        } else {
            [head * hd + j, head * hd + j + hd / 2]
        }
    } else {
        [b * GEMV_ROWS, b * GEMV_ROWS + 1]
    }
}

/// `x` rounded to the activation type, as a stored intermediate would be (so a fused
/// epilogue computes what its unfused kernels would).
#[inline(always)]
fn round<E: Elem>(x: f32) -> f32 {
    E::store(x).load()
}

/// `x` times the norm's weight `g`, piece by piece, adding `x²` to `ss` (the row's sum of
/// squares, of which the block's pieces make the whole row).
#[inline(always)]
fn scale_piece(x: &mut [f32; CHUNK], g: &[f32; CHUNK], ss: &mut f32) {
    for e in 0..CHUNK {
        *ss = fma_f32(x[e], x[e], *ss);
        x[e] *= g[e];
    }
}

/// One block: `GEMV_ROWS` weight rows against `mr` (`<= M`) rows of `x`. `M` is the compiled
/// width (1, 2, 4 or 8): rows `mr..M` cost some idle registers and predicated-off loads.
///
/// With `NORM` each row of `x` is RMS-normalised and scaled by `norm` first. By linearity
/// `w · (x ∘ g / rms(x)) = (w · (x ∘ g)) / rms(x)`, so the block sums `x²` beside its products
/// (it reads the whole row anyway) and scales its sums at the end: no extra pass over `x` and
/// no barrier before the weights are used. With `RESIDUAL` a non-null `residual` is added to
/// the (rounded) outputs, as the unfused add reads them.
///
/// # Safety
/// `w` holds a `[rows, k]` matrix of format `W` (`rows = 2n` with `SWIGLU`, else `n`), `x`
/// `mr * k` elements, `norm` `k` (with `NORM`), `residual` null or `mr * n`, `y` `mr * n`
/// (`q_dim` for `ROPE_KV`, with `mr = 1` and the caches and tables as `gemv_rope_kv` says);
/// `y` aliases no input; launched as the module doc says.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn gemv_block<
    W: WeightFormat,
    E: Elem,
    const M: usize,
    const EPI: u8,
    const NORM: bool,
    const RESIDUAL: bool,
>(
    w: *const u8,
    x: *const E,
    y: *mut E,
    (mr, n, k): (usize, usize, usize),
    weights_early: bool,
    (norm, residual, eps): (*const E, *const E, f32),
    rope: RopeKvOut<E>,
) {
    // Every other access waits for the grid this one may overlap (programmatic dependent
    // launch): at once, or — when the host vouches that grid does not write `w` — after this
    // thread's first group of weight loads is in flight, so the loads overlap its tail.
    let mut wait = GridWait::default();
    if !weights_early {
        wait.once();
    }
    let (t, bd, b) = (
        thread_idx_x() as usize,
        block_dim_x() as usize,
        block_idx_x() as usize,
    );
    let w_rows = if EPI == SWIGLU { 2 * n } else { n };
    let row = block_rows::<EPI>(b, n, &rope.p);
    let mut live = [false; GEMV_ROWS];
    for r in 0..GEMV_ROWS {
        live[r] = row[r] < w_rows;
    }
    let mut acc = [[0.0f32; M]; GEMV_ROWS];
    let mut ss = [0.0f32; M];
    // SAFETY (both paths): live rows are < w_rows; chunk and element indices stay inside a row
    // (cu < chunks, i < k); x and norm offsets are < M * k and chunk-aligned on the vector
    // path (k is a multiple of the weight chunk, itself a multiple of CHUNK, and x and norm
    // are 16-byte aligned).
    unsafe {
        if W::vector_ok(w, k) && aligned16(x) && (!NORM || aligned16(norm)) {
            let chunks = k / (CHUNK * W::PIECES);
            // Scale (and offset) applied per piece and row of x (`WeightFormat::dot_factors`)
            // or per weight, once for all rows of x (`piece`). Per piece of two weight rows:
            // factored 18·M instructions plus 7·M for x's sums where the format has an offset,
            // per weight 16 + 16·M (Q8_0) or 32 + 16·M (Q4): with an offset, factoring wins up
            // to M = 2 and loses from 4 (H100: Q4 M = 4 GEMVs up to 11% slower factored).
            let factored = M <= 2 || !W::WANTS_X_SUM;
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
                wait.once();
                unroll4!(u => {
                    let cu = c + u * bd;
                    if u < W::UNROLL && cu < chunks {
                        unroll4!(p => {
                            if p < W::PIECES {
                                let f0 = if factored {
                                    W::piece_factors(&raw[u][0], p)
                                } else {
                                    W::piece(&raw[u][0], p)
                                };
                                let f1 = if factored {
                                    W::piece_factors(&raw[u][1], p)
                                } else {
                                    W::piece(&raw[u][1], p)
                                };
                                let off = (cu * W::PIECES + p) * CHUNK;
                                let g = if NORM { E::load_chunk(norm, off) } else { [1.0; CHUNK] };
                                unroll8!(m => {
                                    if m < M && m < mr {
                                        let mut xv = E::load_chunk(x, m * k + off);
                                        if NORM {
                                            scale_piece(&mut xv, &g, &mut ss[m]);
                                        }
                                        if factored {
                                            let xs = if W::WANTS_X_SUM { sum8(&xv) } else { 0.0 };
                                            acc[0][m] =
                                                W::dot_factors(&raw[u][0], &f0, &xv, xs, acc[0][m]);
                                            acc[1][m] =
                                                W::dot_factors(&raw[u][1], &f1, &xv, xs, acc[1][m]);
                                        } else {
                                            acc[0][m] = dot8(&f0, &xv, acc[0][m]);
                                            acc[1][m] = dot8(&f1, &xv, acc[1][m]);
                                        }
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
            wait.once();
            while i < k {
                let g = if NORM { (*norm.add(i)).load() } else { 1.0 };
                let mut wv = [0.0f32; GEMV_ROWS];
                unroll2!(r => {
                    if live[r] {
                        wv[r] = W::element(w, w_rows, k, row[r], i);
                    }
                });
                unroll8!(m => {
                    if m < M && m < mr {
                        let mut xm = (*x.add(m * k + i)).load();
                        if NORM {
                            ss[m] = fma_f32(xm, xm, ss[m]);
                            xm *= g;
                        }
                        acc[0][m] = fma_f32(wv[0], xm, acc[0][m]);
                        acc[1][m] = fma_f32(wv[1], xm, acc[1][m]);
                    }
                });
                i += bd;
            }
        }
    }

    // A thread with no chunk: it still must not write `y` before the wait.
    wait.once();
    // Reduce: shuffles within each warp, then (several warps) through shared memory; the sums
    // of squares ride along as a third row.
    unroll2!(r => {
        unroll8!(m => {
            if m < M {
                acc[r][m] = warp_sum(acc[r][m]);
            }
        });
    });
    unroll8!(m => {
        if NORM && m < M {
            ss[m] = warp_sum(ss[m]);
        }
    });
    if bd > 32 {
        let (lane, warp, warps) = (t % 32, t / 32, bd / 32);
        let slot = |warp: usize, r: usize, m: usize| {
            dyn_smem_base() + (4 * ((warp * (GEMV_ROWS + 1) + r) * GEMV_MAX_M + m)) as u32
        };
        // SAFETY: warp < GEMV_MAX_THREADS / 32, r <= GEMV_ROWS, m < GEMV_MAX_M: the slots lie
        // inside the GEMV_SMEM_BYTES the launch gives; the barrier is reached by every thread.
        unsafe {
            if lane == 0 {
                unroll8!(m => {
                    if m < M {
                        unroll2!(r => {
                            smem_store_f32(slot(warp, r, m), acc[r][m]);
                        });
                        if NORM {
                            smem_store_f32(slot(warp, GEMV_ROWS, m), ss[m]);
                        }
                    }
                });
            }
            sync_threads();
            if t == 0 {
                for v in 1..warps {
                    unroll8!(m => {
                        if m < M {
                            unroll2!(r => {
                                acc[r][m] += smem_load_f32(slot(v, r, m));
                            });
                            if NORM {
                                ss[m] += smem_load_f32(slot(v, GEMV_ROWS, m));
                            }
                        }
                    });
                }
            }
        }
    }
    if t != 0 {
        return;
    }
    unroll8!(m => {
        if NORM && m < M {
            let inv = rsqrt_approx(ss[m] / k as f32 + eps);
            unroll2!(r => {
                acc[r][m] *= inv;
            });
        }
    });
    // SAFETY: outputs y[m * n + j] with m < M and j < n (live rows; b < n for SwiGLU); the
    // RoPE epilogue's as `rope_kv_store` says.
    unsafe {
        if EPI == ROPE_KV {
            rope_kv_store(y, b, row, [acc[0][0], acc[1][0]], &rope);
            return;
        }
        // Constant indices (`unroll8!`, `m < M`) keep `acc` in registers.
        unroll8!(m => {
            if m < M && m < mr {
                if EPI == SWIGLU {
                    *y.add(m * n + b) = E::store(silu_scalar(acc[0][m]) * acc[1][m]);
                } else {
                    unroll2!(r => {
                        if live[r] {
                            let at = m * n + row[r];
                            let mut v = acc[r][m];
                            if RESIDUAL && !residual.is_null() {
                                v = round::<E>(v) + (*residual.add(at)).load();
                            }
                            *y.add(at) = E::store(v);
                        }
                    });
                }
            }
        });
    }
}

/// The RoPE + KV-cache epilogue of block `b` (rows `row`, sums `sums`): both halves of a q or k
/// rotation pair are rounded (as the projection's output would be), rotated at position
/// `*pos_dev` as `rope` does, and stored — q into `y`, k into the key cache; a v pair is
/// stored into the value cache. Cache rows hold `kv_dim` elements. At a position at or past
/// `p.rows` it stores nothing.
///
/// # Safety
/// `y` holds `q_dim` elements, the caches `p.rows` rows, the tables `p.rows * head_dim / 2`
/// entries.
#[inline(always)]
unsafe fn rope_kv_store<E: Elem>(
    y: *mut E,
    b: usize,
    row: [usize; GEMV_ROWS],
    sums: [f32; GEMV_ROWS],
    o: &RopeKvOut<E>,
) {
    let p = &o.p;
    let (q_dim, kv_dim, half) = (p.q_dim as usize, p.kv_dim as usize, p.head_dim as usize / 2);
    let [a, c] = [round::<E>(sums[0]), round::<E>(sums[1])];
    // SAFETY: the caller's contract; rows < q_dim + 2 kv_dim, so cache offsets stay in row
    // pos < p.rows.
    unsafe {
        let pos = *o.pos_dev as usize;
        if pos >= p.rows as usize {
            return;
        }
        if row[0] >= q_dim + kv_dim {
            let at = pos * kv_dim + row[0] - q_dim - kv_dim;
            *o.v_cache.add(at) = E::store(a);
            *o.v_cache.add(at + 1) = E::store(c);
            return;
        }
        let tab = pos * half + b % half;
        let (cs, sn) = (*o.cos.add(tab), *o.sin.add(tab));
        let (ra, rc) = (E::store(a * cs - c * sn), E::store(c * cs + a * sn));
        if row[0] < q_dim {
            *y.add(row[0]) = ra;
            *y.add(row[1]) = rc;
        } else {
            let at = pos * kv_dim + row[0] - q_dim;
            *o.k_cache.add(at) = ra;
            *o.k_cache.add(at + row[1] - row[0]) = rc;
        }
    }
}

/// The compiled widths: `gemv[_swiglu]_m{M}` serves `m` rows of `x` with `m <= M` (the host
/// picks the smallest width, [`crate::launch_shape::gemv_width`]). Each width is its own
/// kernel so that its register count (and so its occupancy) is its own: M = 1 is not held back
/// by the accumulators of M = 8.
macro_rules! gemv_widths {
    ($($body:ident = $m:literal, $epi:ident, $norm:literal, $residual:literal;)*) => {$(
        /// `y = x · wᵀ` (or its SwiGLU form) for `m <= M` rows of `x`; `w` `[n, k]` (`[2n, k]`
        /// for SwiGLU) of format `A`, `x` `[m, k]` and `y` `[m, n]` of type `B`; in the `norm`
        /// kernels `norm` (`[k]`) normalises `x` first, in the plain M = 1 ones `residual`
        /// (null or `[m, n]`) is added to `y` (the others ignore them).
        ///
        /// # Safety
        /// See [`gemv_block`].
        #[allow(clippy::too_many_arguments)]
        #[inline(always)]
        pub unsafe fn $body<A: WeightFormat, B: Elem>(
            w: *const u8,
            x: *const B,
            y: *mut B,
            m: u32,
            n: u32,
            k: u32,
            norm: *const B,
            residual: *const B,
            eps: f32,
            weights_early: u32,
        ) {
            // SAFETY: forwarded contract (the launcher passes m <= M).
            unsafe {
                gemv_block::<A, B, $m, $epi, $norm, $residual>(
                    w,
                    x,
                    y,
                    (m as usize, n as usize, k as usize),
                    weights_early != 0,
                    (norm, residual, eps),
                    RopeKvOut::NONE,
                )
            }
        }
    )*};
}

gemv_widths! {
    gemv_m1 = 1, PLAIN, false, true; gemv_norm_m1 = 1, PLAIN, true, true;
    gemv_m2 = 2, PLAIN, false, false; gemv_m4 = 4, PLAIN, false, false;
    gemv_m8 = 8, PLAIN, false, false;
    gemv_swiglu_m1 = 1, SWIGLU, false, false; gemv_swiglu_norm_m1 = 1, SWIGLU, true, false;
    gemv_swiglu_m2 = 2, SWIGLU, false, false; gemv_swiglu_m4 = 4, SWIGLU, false, false;
    gemv_swiglu_m8 = 8, SWIGLU, false, false;
}
const _: () = assert!(GEMV_MAX_M == 8);

/// One token's q/k/v projection (`w` `[q_dim + 2 kv_dim, k]`, q rows then k then v) of `x`
/// (`[1, k]`) RMS-normalised with `norm`, with RoPE and the KV-cache write in its epilogue: q
/// rotated into `y` (`[q_dim]`), k rotated and v into row `*pos_dev` of the caches (rows of
/// `kv_dim`), with the tables of `rope` (`[positions, head_dim / 2]`). The unfused reference is
/// `rmsnorm`, `gemv_m1` and `rope_kv_write`.
///
/// # Safety
/// As [`gemv_block`] with `n = q_dim + 2 kv_dim` and `m = 1`; `q_dim` and `kv_dim` are
/// multiples of the even `head_dim`; the caches hold `p.rows` rows and the tables their
/// entries (a `*pos_dev` at or past `p.rows` writes nothing); the caches alias nothing else.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub unsafe fn gemv_rope_kv_m1<A: WeightFormat, B: Elem>(
    w: *const u8,
    x: *const B,
    y: *mut B,
    k: u32,
    norm: *const B,
    eps: f32,
    k_cache: *mut B,
    v_cache: *mut B,
    cos: *const f32,
    sin: *const f32,
    pos_dev: *const u32,
    p: GemvRopeParams,
    weights_early: u32,
) {
    let n = (p.q_dim + 2 * p.kv_dim) as usize;
    let rope = RopeKvOut {
        k_cache,
        v_cache,
        cos,
        sin,
        pos_dev,
        p,
    };
    // SAFETY: forwarded contract.
    unsafe {
        gemv_block::<A, B, 1, ROPE_KV, true, false>(
            w,
            x,
            y,
            (1, n, k as usize),
            weights_early != 0,
            (norm, core::ptr::null(), eps),
            rope,
        )
    }
}

kernel_entries! {
    own_sync gemv_rope_kv_m1(
        w: *const u8, x: *const B, y: *mut B, k: u32, norm: *const B, eps: f32, k_cache: *mut B,
        v_cache: *mut B, cos: *const f32, sin: *const f32, pos_dev: *const u32, p: GemvRopeParams,
        weights_early: u32,
    );
    gemv_rope_kv_m1_f32 = f32 => f32,
    gemv_rope_kv_m1_f16 = F16 => F16,
    gemv_rope_kv_m1_bf16 = BF16 => BF16,
    gemv_rope_kv_m1_q8_0_f16 = Q8_0 => F16,
    gemv_rope_kv_m1_q4_0_f16 = Q4_0 => F16,
    gemv_rope_kv_m1_q4_1_f16 = Q4_1 => F16,
}

/// The entries of the GEMV bodies of `gemv_widths!`, which share one parameter list: each body
/// once per format, as `{body}_{format}` with the format's weight and activation types.
macro_rules! gemv_entries {
    ($($body:ident),+; $formats:tt) => {$(
        gemv_entries!(@body $body $formats);
    )+};
    (@body $body:ident [$($format:ident = $src:ty => $dst:ty),+ $(,)?]) => {
        kernel_entries! {
            own_sync $body(
                w: *const u8, x: *const B, y: *mut B, m: u32, n: u32, k: u32, norm: *const B,
                residual: *const B, eps: f32, weights_early: u32,
            );
            $(${concat($body, _, $format)} = $src => $dst),+
        }
    };
}

gemv_entries! {
    gemv_m1, gemv_norm_m1, gemv_m2, gemv_m4, gemv_m8,
    gemv_swiglu_m1, gemv_swiglu_norm_m1, gemv_swiglu_m2, gemv_swiglu_m4, gemv_swiglu_m8;
    [
        f16 = F16 => F16,
        bf16 = BF16 => BF16,
        q8_0_f16 = Q8_0 => F16,
        q4_0_f16 = Q4_0 => F16,
        q4_1_f16 = Q4_1 => F16,
    ]
}

// f32 for the plain bodies only: SwiGLU in f32 takes the unfused path on the host (module docs).
gemv_entries! {
    gemv_m1, gemv_norm_m1, gemv_m2, gemv_m4, gemv_m8;
    [f32 = f32 => f32]
}
