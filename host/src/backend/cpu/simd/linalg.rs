//! Matrix products: a hand-written GEMV for decode-sized `m`, the `gemm` crate above it, and
//! attention built from the dot/axpy kernels.
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
            kern.gemv_t(a, k, &b[j0 * k..(j0 + width) * k], outs);
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
    /// One task per (query, head) output row: dot products with the visible keys into a
    /// scratch row of scores (one per rayon worker, reused), softmax in place, then the
    /// weighted sum of value rows as axpys straight into the output row.
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
        let (kern, group) = (self.k, num_heads / num_kv_heads);
        let task = |scores: &mut Vec<f32>, r: usize, out_row: &mut [f32]| {
            let (i, h) = (r / num_heads, r % num_heads);
            let kv_rows = |t| head_rows(t, head_dim, h / group, num_kv_heads);
            let visible = check::visible_keys(i, q_len, k_len, causal);
            let q_row = &q[r * head_dim..(r + 1) * head_dim];
            scores.clear();
            scores.extend(kv_rows(k).take(visible).map(|k_row| kern.dot(q_row, k_row)));
            softmax_in_place(kern, scores, scale);
            out_row.fill(0.0);
            for (&w, v_row) in scores.iter().zip(kv_rows(v)) {
                kern.axpy(w, v_row, out_row);
            }
        };
        let work = q_len * num_heads * k_len * head_dim;
        if work < PAR_MIN_ELEMS {
            let mut scores = Vec::with_capacity(k_len);
            for (r, out_row) in out.chunks_exact_mut(head_dim).enumerate() {
                task(&mut scores, r, out_row);
            }
        } else {
            let rows_per_task = (16 * 1024 / (k_len * head_dim)).max(1);
            out.par_chunks_exact_mut(head_dim)
                .enumerate()
                .with_min_len(rows_per_task)
                .for_each_init(
                    || Vec::with_capacity(k_len),
                    |scores, (r, out_row)| task(scores, r, out_row),
                );
        }
        Ok(())
    }
}

/// The rows of head `head` in `t` `[len, heads, head_dim]`, in order of position.
fn head_rows(
    t: &[f32],
    head_dim: usize,
    head: usize,
    heads: usize,
) -> impl Iterator<Item = &[f32]> {
    t.chunks_exact(head_dim).skip(head).step_by(heads)
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
