//! Matrix products: a hand-written GEMV for decode-sized `m`, the `gemm` crate above it, and
//! attention as two `gemm`s per KV head and block of queries around a softmax.
//!
//! Why two matmul paths: for small `m` the product is bound by reading `b` once from memory.
//! The GEMV here does exactly that, without packing: a task owns a block of output columns,
//! each row of `b` in it is loaded once for up to 4 rows of `a` (the kernel's register block),
//! and further groups of 4 rows find the block still in L2. For large `m` the work becomes
//! compute-bound and wants register tiling and cache blocking, which `gemm` 0.19 does well,
//! but it packs `b` on every call, which small `m` cannot amortise.
//!
//! Measured on the 2-core Zen3 dev VM (AVX2), which other builds were loading, hence ranges.
//! Milliseconds, GEMV / gemm, min-max over 2-3 runs of best-of-5:
//!
//! | `b`, `k x n`     | m = 4             | m = 8             | m = 16            | m = 64       |
//! |------------------|-------------------|-------------------|-------------------|--------------|
//! | `[n,k]` 4096x11008 | 49-70 / 76-128  | 53-97 / 114-142   | 110-137 / 89-168  | -            |
//! | `[n,k]` 1024x1024  | 0.2-0.5 / 1-1.8 | 0.3-0.4 / 0.7-2.9 | 0.7-1.3 / 1.1-2.4 | 4-10 / 2-4   |
//! | `[k,n]` 4096x11008 | 72-127 / 89-162 | 109-180 / 75-304  | 174-276 / 150-316 | -            |
//! | `[k,n]` 1024x1024  | 0.4-1.4 / 0.4-0.9 | 1.4-2.2 / 0.8-4 | 2.8-7.9 / 0.9-3.7 | 11-20 / 4-11 |
//!
//! Hence the GEMV up to [`GEMV_MAX_M`] = 8 rows for Linear weights (`b_transposed`), where it
//! wins everywhere, and up to [`GEMV_N_MAX_M`] = 4 for `b` `[k, n]`, where its axpy form only
//! wins on large weights; `gemm` beyond. The `gemv`/`matmul` bench groups show both paths.

use rayon::prelude::*;

use super::kernels::Kernels;
use super::ops::softmax_in_place;
use super::{PAR_MIN_ELEMS, Simd};
use crate::Result;
use crate::backend::cpu::check;

/// The largest `m` for which [`Simd::matmul`] with `b_transposed` (a Linear weight `[n, k]`)
/// uses its own GEMV; larger `m` go to `gemm`. See the module docs for the measurements.
pub const GEMV_MAX_M: usize = 8;

/// The same bound for `b` stored `[k, n]`.
pub const GEMV_N_MAX_M: usize = 4;

/// Elements of `b` per GEMV task (256 KiB of `f32`): large enough to amortise a rayon task,
/// small enough to give every core several tasks on a 4096-wide weight.
const GEMV_TASK_ELEMS: usize = 64 * 1024;

/// Bounds on the output columns per task of the non-transposed GEMV: runs of 1 to 16 KiB of
/// each `b` row, and `m` partial output rows of that width that stay in L1/L2.
const GEMV_N_MIN_COLS: usize = 256;
const GEMV_N_MAX_COLS: usize = 4096;

impl Simd {
    /// `out [m, n] = a [m, k] · B` with `B = b [k, n]`, or `B = bᵀ` for `b [n, k]` when
    /// `b_transposed`; see [`crate::backend::cpu::reference::matmul`].
    ///
    /// Small `m` (decode: up to [`GEMV_MAX_M`] transposed, [`GEMV_N_MAX_M`] not) runs the
    /// SIMD + rayon GEMV of this module; larger `m` the `gemm` crate (module docs say why).
    #[allow(clippy::too_many_arguments)]
    pub fn matmul(
        &self,
        a: &[f32],
        b: &[f32],
        m: usize,
        k: usize,
        n: usize,
        b_transposed: bool,
        out: &mut [f32],
    ) -> Result<()> {
        check::matmul(a.len(), b.len(), m, k, n, out.len())?;
        if m == 0 || n == 0 {
            return Ok(());
        }
        if k == 0 {
            out.fill(0.0);
            return Ok(());
        }
        if b_transposed && m <= GEMV_MAX_M {
            self.gemv_t(a, b, m, k, n, out);
        } else if !b_transposed && m <= GEMV_N_MAX_M {
            self.gemv_n(a, b, m, k, n, out);
        } else {
            gemm_crate(a, b, m, k, n, b_transposed, out);
        }
        Ok(())
    }

    /// `b` is `[n, k]`: each output is a dot product of contiguous rows. Tasks own a block of
    /// output columns (rows of `b`) across all `m` output rows.
    fn gemv_t(&self, a: &[f32], b: &[f32], m: usize, k: usize, n: usize, out: &mut [f32]) {
        let parallel = m * k * n >= PAR_MIN_ELEMS;
        let cols = if parallel {
            (GEMV_TASK_ELEMS / k).clamp(1, n)
        } else {
            n
        };
        // Block-major list of output segments: entries `t*m .. t*m + m` are the `m` row
        // segments of column block `t`, i.e. the `outs` of one kernel call.
        let mut blocks = column_blocks(out, m, n, cols);
        let kern = self.k;
        let run = |(t, outs): (usize, &mut [&mut [f32]])| {
            let j0 = t * cols;
            let width = outs.first().map_or(0, |o| o.len());
            kern.gemv_t(a, k, &b[j0 * k..(j0 + width) * k], k, outs);
        };
        if parallel {
            blocks.par_chunks_mut(m).enumerate().for_each(run);
        } else {
            blocks.chunks_mut(m).enumerate().for_each(run);
        }
    }

    /// `b` is `[k, n]`: each output row is a sum of `b` rows weighted by one row of `a`
    /// (axpy), over blocks of columns so the `m` partial rows stay in cache.
    fn gemv_n(&self, a: &[f32], b: &[f32], m: usize, k: usize, n: usize, out: &mut [f32]) {
        let parallel = m * k * n >= PAR_MIN_ELEMS;
        // Wide column blocks: each task streams `k` runs of `cols` contiguous floats, which
        // the hardware prefetcher follows; narrow blocks (1 KiB runs 4·n bytes apart) thrash
        // it and the TLB. At least four blocks per worker keep the pool balanced.
        let per_worker = n
            .div_ceil(4 * rayon::current_num_threads())
            .next_multiple_of(16);
        let cols = if parallel {
            per_worker.clamp(GEMV_N_MIN_COLS, GEMV_N_MAX_COLS).min(n)
        } else {
            n
        };
        let mut blocks = column_blocks(out, m, n, cols);
        let kern = self.k;
        let run = |(t, outs): (usize, &mut [&mut [f32]])| {
            let j0 = t * cols;
            for o in outs.iter_mut() {
                o.fill(0.0);
            }
            for (p, b_row) in b.chunks_exact(n).enumerate() {
                let b_seg = &b_row[j0..j0 + outs.first().map_or(0, |o| o.len())];
                for (i, o) in outs.iter_mut().enumerate() {
                    kern.axpy(a[i * k + p], b_seg, o);
                }
            }
        };
        if parallel {
            blocks.par_chunks_mut(m).enumerate().for_each(run);
        } else {
            blocks.chunks_mut(m).enumerate().for_each(run);
        }
    }

    /// Grouped-query attention; see [`crate::backend::cpu::reference::attention`].
    ///
    /// One task per KV head and block of up to [`ATTN_Q_BLOCK`] query positions: the block's
    /// queries of that head's group become the rows of one matrix, so the scores are one
    /// `gemm` against the keys (read in place, strided) up to the block's last visible one,
    /// then a softmax per row over its visible keys (the rest set to 0), then one `gemm` with
    /// the values. Per-row dot products and axpys instead ran at a quarter of the FMA rate and
    /// read every key and value row once per query head.
    #[allow(clippy::too_many_arguments)]
    pub fn attention(
        &self,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        q_len: usize,
        k_len: usize,
        num_heads: usize,
        num_kv_heads: usize,
        head_dim: usize,
        scale: f32,
        causal: bool,
        out: &mut [f32],
    ) -> Result<()> {
        check::attention(
            q.len(),
            k.len(),
            v.len(),
            q_len,
            k_len,
            num_heads,
            num_kv_heads,
            head_dim,
            causal,
            out.len(),
        )?;
        if out.is_empty() {
            return Ok(());
        }
        let group = num_heads / num_kv_heads;
        let (kern, hd) = (self.k, head_dim);
        let shape = AttnShape {
            q_len,
            k_len,
            heads: num_heads,
            kv_heads: num_kv_heads,
            hd,
            causal,
        };
        // Block-major segments of `out`: for KV head `g`, the `q_len` segments
        // `out[i, g·group .. (g+1)·group, :]`.
        let mut segments = column_blocks(out, q_len, num_heads * hd, group * hd);
        let task = |scratch: &mut AttnScratch, (g, i0, outs): (usize, usize, &mut [&mut [f32]])| {
            attend_block(kern, &shape, (q, k, v), scale, g, i0, outs, scratch);
        };
        let work = q_len * num_heads * k_len * hd;
        let blocks = segments.chunks_mut(q_len).enumerate().flat_map(|(g, s)| {
            s.chunks_mut(ATTN_Q_BLOCK)
                .enumerate()
                .map(move |(b, s)| (g, b * ATTN_Q_BLOCK, s))
        });
        if work < ATTN_PAR_MIN_WORK {
            let mut scratch = AttnScratch::default();
            blocks.for_each(|b| task(&mut scratch, b));
        } else {
            blocks
                .collect::<Vec<_>>()
                .into_par_iter()
                .with_max_len(1)
                .for_each_init(AttnScratch::default, task);
        }
        Ok(())
    }
}

/// Query positions per attention task: the scores of a block (`group · 64` rows of up to
/// `k_len` keys) stay in L2 up to a few thousand keys, and a 512-token prompt of a 3-KV-head
/// model still makes 24 tasks.
const ATTN_Q_BLOCK: usize = 64;

/// Blocks of up to this many query rows (a decode step's group of query heads) take GEMV-style
/// kernels ([`Kernels::gemv_t`] over strided key rows, [`Kernels::weighted_rows`] over value
/// rows) instead of `gemm`.
const ATTN_GEMV_MAX_ROWS: usize = 8;

/// Attention calls below this many multiply-adds (`q_len · heads · k_len · head_dim`) run on
/// the calling thread, where splitting a few microseconds of work would cost what it saves;
/// above it (a SmolLM2 decode step past ~60 positions) the KV heads' blocks spread over the
/// pool. A 2-thread SmolLM2 decode measured 2-3% faster with this than with 1 << 20.
const ATTN_PAR_MIN_WORK: usize = 1 << 15;

/// The shape of one attention call (the `q`, `k`, `v` layouts of [`Simd::attention`]).
struct AttnShape {
    q_len: usize,
    k_len: usize,
    heads: usize,
    kv_heads: usize,
    hd: usize,
    causal: bool,
}

/// One task's buffers, reused across the tasks a worker runs.
#[derive(Default)]
struct AttnScratch {
    /// `[rows, head_dim]`: the block's queries, then its outputs.
    q: Vec<f32>,
    /// `[rows, keys]`: scores, then probabilities.
    s: Vec<f32>,
    o: Vec<f32>,
}

/// Attention of KV head `g`'s query heads at positions `i0 .. i0 + outs.len()` (`outs[i]`:
/// that position's `group` output rows, side by side). Rows are (position, head in group).
#[allow(clippy::too_many_arguments)]
fn attend_block(
    kern: Kernels,
    sh: &AttnShape,
    (q, k, v): (&[f32], &[f32], &[f32]),
    scale: f32,
    g: usize,
    i0: usize,
    outs: &mut [&mut [f32]],
    scratch: &mut AttnScratch,
) {
    let (hd, nq) = (sh.hd, outs.len());
    let group = sh.heads / sh.kv_heads;
    let rows = nq * group;
    let visible = |i: usize| check::visible_keys(i, sh.q_len, sh.k_len, sh.causal);
    let keys = visible(i0 + nq - 1);
    if keys == 0 {
        // No keys (non-causal over an empty cache): an empty weighted sum.
        outs.iter_mut().for_each(|o| o.fill(0.0));
        return;
    }
    let AttnScratch { q: qb, s, o } = scratch;
    qb.clear();
    for i in i0..i0 + nq {
        let at = (i * sh.heads + g * group) * hd;
        qb.extend_from_slice(&q[at..at + group * hd]);
    }
    s.resize(rows * keys, 0.0);
    o.resize(rows * hd, 0.0);
    let kv_stride = sh.kv_heads * hd;
    // Key `j`, element `p` of head `g` is at `(j·kv_heads + g)·hd + p`.
    let span = g * hd..g * hd + (keys - 1) * kv_stride + hd;
    let (k, v) = (&k[span.clone()], &v[span]);
    if rows <= ATTN_GEMV_MAX_ROWS {
        // A decode step: `gemm`'s set-up would cost more than these few rows' products.
        let mut score_rows: Vec<&mut [f32]> = s.chunks_exact_mut(keys).collect();
        kern.gemv_t(qb, hd, k, kv_stride, &mut score_rows);
        for (r, row) in score_rows.into_iter().enumerate() {
            softmax_in_place(kern, &mut row[..visible(i0 + r / group)], scale);
        }
        for (r, o) in o.chunks_exact_mut(hd).enumerate() {
            let probs = &s[r * keys..][..visible(i0 + r / group)];
            kern.weighted_rows(probs, v, kv_stride, o);
        }
        for (out, o) in outs.iter_mut().zip(o.chunks_exact(group * hd)) {
            out.copy_from_slice(o);
        }
        return;
    }
    // SAFETY: `check::attention` established the lengths of `q`, `k`, `v` and `out`, so the
    // key and value rows `j < keys <= k_len` of head `g` (`k[(j·kv_heads + g)·hd ..][..hd]`)
    // lie inside `k` and `v`; `qb` is `[rows, hd]`, `s` `[rows, keys]` and `o` `[rows, hd]`,
    // all owned here, so no operand aliases a destination.
    unsafe {
        gemm_strided(
            [rows, keys, hd],
            s.as_mut_ptr(),
            (qb.as_ptr(), [1, hd as isize]),
            (k.as_ptr(), [kv_stride as isize, 1]),
        );
    }
    for (r, row) in s.chunks_exact_mut(keys).enumerate() {
        let seen = visible(i0 + r / group);
        let (on, off) = row.split_at_mut(seen);
        softmax_in_place(kern, on, scale);
        off.fill(0.0);
    }
    // SAFETY: as above; `s` is `[rows, keys]` and value row `j` of head `g` is `v[j·kv_stride
    // ..][..hd]` for `j < keys`.
    unsafe {
        gemm_strided(
            [rows, hd, keys],
            o.as_mut_ptr(),
            (s.as_ptr(), [1, keys as isize]),
            (v.as_ptr(), [1, kv_stride as isize]),
        );
    }
    for (out, o) in outs.iter_mut().zip(o.chunks_exact(group * hd)) {
        out.copy_from_slice(o);
    }
}

/// `dst [m, n] = A [m, k] · B [k, n]` (row-major `dst`) on this thread, with `A` and `B` given
/// as `(pointer, [column stride, row stride])` in elements.
///
/// # Safety
/// Every `A[i][p]` (`i < m`, `p < k`) and `B[p][j]` at those strides must lie in one live
/// allocation, `dst` must hold `m · n` writable values, and `dst` must not overlap `A` or `B`.
unsafe fn gemm_strided(
    [m, n, k]: [usize; 3],
    dst: *mut f32,
    (a, [a_cs, a_rs]): (*const f32, [isize; 2]),
    (b, [b_cs, b_rs]): (*const f32, [isize; 2]),
) {
    // SAFETY: the caller's contract; `read_dst = false`, so `dst` is only written.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            n as isize,
            false,
            a,
            a_cs,
            a_rs,
            b,
            b_cs,
            b_rs,
            0.0f32,
            1.0f32,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Cuts the `m` rows of `out [m, n]` into column blocks of `cols` and lists the segments
/// block-major: `m` consecutive entries per block (the last block may be narrower).
pub(crate) fn column_blocks(out: &mut [f32], m: usize, n: usize, cols: usize) -> Vec<&mut [f32]> {
    let blocks = n.div_ceil(cols);
    let mut rows: Vec<_> = out
        .chunks_exact_mut(n)
        .map(|row| row.chunks_mut(cols))
        .collect();
    let mut segments = Vec::with_capacity(blocks * m);
    for _ in 0..blocks {
        segments.extend(rows.iter_mut().filter_map(Iterator::next));
    }
    segments
}

/// `out = a · B` through `gemm` 0.19 (packed, register-tiled, rayon-parallel when large).
fn gemm_crate(
    a: &[f32],
    b: &[f32],
    m: usize,
    k: usize,
    n: usize,
    b_transposed: bool,
    out: &mut [f32],
) {
    // Strides in elements; `B[p][j]` is `b[p*n + j]`, or `b[j*k + p]` when transposed.
    let (rhs_cs, rhs_rs) = if b_transposed {
        (k as isize, 1)
    } else {
        (1, n as isize)
    };
    let parallelism = if m * k * n >= PAR_MIN_ELEMS * 8 {
        gemm::Parallelism::Rayon(rayon::current_num_threads())
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: `check::matmul` established `a.len() == m*k`, `b.len() == k*n` and
    // `out.len() == m*n`, all without overflow. With the strides above every element gemm
    // addresses (`i*rs + j*cs` for `i < rows`, `j < cols`) lies inside its buffer. `out` is a
    // `&mut` borrow, so it aliases neither input. `read_dst = false` means `out` is only written
    // (`dst = 1.0 * a·B`; gemm's `alpha` scales the old `dst` and is unused).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            rhs_cs,
            rhs_rs,
            0.0f32,
            1.0f32,
            false,
            false,
            false,
            parallelism,
        );
    }
}
