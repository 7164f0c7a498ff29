//! Quantized matrix products on the CPU: the weights stay in their ggml blocks (as mapped from
//! the GGUF file) and are read packed; the activations are quantized to 8 bits per block of 32.
//!
//! Why: a decode step reads every weight once, so its speed is the weight bytes per token. Q4_1
//! is 5 bits per weight against f32's 32, and an integer dot of 32 4-bit weights with 32 8-bit
//! activations is a handful of instructions (`maddubs` + `madd` on AVX2, `vpdpbusd` with
//! AVX-512 VNNI). This is llama.cpp's scheme: the activation row is rounded once per product to
//! [`Q8Acts`] (ggml's Q8_1: a scale `d`, `s = d·Σq` and 32 × i8 per block), then each weight
//! block contributes `d_w·d_a·Σ q_w·q_a + m_w·s_a` (`m_w` = the Q4_1 min, `−8·d_w` for Q4_0's
//! offset, 0 for Q8_0).
//!
//! - [`QuantKernels`] binds the kernels of one ISA (scalar, AVX2+FMA+F16C, or AVX-512 with
//!   BW/VL/VNNI), chosen at run time; [`QuantKernels::best`] is this CPU's best.
//! - [`QuantKernels::matmul`] is `out [m, n] = x [m, k] · Wᵀ` for `W` `[n, k]` in a block format:
//!   rayon tasks own blocks of weight rows, which the kernels take in tiles of weight rows ×
//!   activation rows ([`DECODE_TILE`], [`PREFILL_TILE`], [`QUAD_TILE`]): prefill unpacks each
//!   weight block once for 4 activation rows (Q4 formats through the quad kernels, which take
//!   a group's block scales side by side, [`ActQuad`], and scale 8 (row, row) sums as one
//!   vector), decode shares each activation block among 4 weight rows. Each task prefetches its
//!   weights [`PREFETCH_BYTES`] ahead. Formats without an integer kernel (Q4_K,
//!   Q6_K) dequantize a row at a time into a buffer and use f32 dots.
//! - [`QuantKernels::matmul_group`] runs several [`QuantWeight`]s that share an input (q/k/v,
//!   gate/up) as one product: one quantization, one pool of tasks, one join.
//! - `scalar` is the reference each SIMD kernel is tested against (`tests`): same quantized
//!   activations bit for bit, dots equal up to f32 rounding order.
//!
//! Tested by `cargo test -p nano-infer-host --release --lib backend::cpu::quant`.

mod acts;
#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod scalar;
#[cfg(test)]
mod tests;
#[cfg(target_arch = "x86_64")]
mod x86;

use std::cell::RefCell;
use std::sync::OnceLock;

use rayon::prelude::*;

pub use acts::Q8Acts;
pub(super) use acts::{ActQuad, ActRow};

use super::simd::{self, Isa};
use crate::loaders::StorageType;
use crate::loaders::quant::dequantize;
use crate::{Error, Result};

/// Elements per activation block (and per Q8_0/Q4_0/Q4_1 weight block).
pub const QK: usize = 32;

/// Weight bytes per rayon task: big enough to amortise a task (~1 µs), small enough that a
/// decode-sized weight (hundreds of KB) still gives every core several tasks.
const TASK_BYTES: usize = 32 * 1024;

/// How far ahead of the tile being multiplied each task prefetches weight bytes. A tile of 4
/// rows is only a few cache lines per row (a SmolLM2 Q4_1 row is 360 bytes), too short a stream
/// for the hardware prefetcher, so without this the kernels wait on memory latency: a decode
/// step took twice the CPU time (1 thread, SmolLM2 Q4_1). 2–6 KB measured alike.
const PREFETCH_BYTES: usize = 2048;

/// `(x, qs, d, s)`: quantizes one row of `x` (a whole number of blocks) into `qs`, `d`, `s`.
type QuantizeRow = unsafe fn(&[f32], &mut [i8], &mut [f32], &mut [f32]);

/// `(w, acts, out)`: `out[r·N + t] = w_r · act_t` for a tile of weight rows `w` (each whole
/// blocks of the format) and `N = acts.len()` activation rows, at most [`PREFILL_TILE`] or
/// [`DECODE_TILE`] in shape
/// (`out.len() == w.len() · acts.len()`).
type DotTile = unsafe fn(&[&[u8]], &[ActRow<'_>], &mut [f32]);

/// `(w, acts, out)`: `out[r·4 + t] = w_r · act_t` for up to [`QUAD_TILE`]`.0` weight rows
/// against a group of 4 activation rows (`out.len() == 4 · w.len()`).
type QuadTile = unsafe fn(&[&[u8]], &ActQuad<'_>, &mut [f32]);

/// Tile shapes `(weight rows, activation rows)`: decode (one activation row) takes 4 weight rows
/// at a time, sharing each activation block's load among them and keeping 4 independent
/// accumulator chains in flight; prefill takes 2 × 4, reusing each unpacked weight block for 4
/// activation rows and each activation block for 2 weight rows (8 accumulators, half the
/// AVX2 register file). Smaller tiles finish the edges.
pub(super) const DECODE_TILE: (usize, usize) = (4, 1);
pub(super) const PREFILL_TILE: (usize, usize) = (2, 4);
/// Decode with the residual pass: 4 weight rows × (the activation row, its rounding error).
pub(super) const DECODE_RESIDUAL_TILE: (usize, usize) = (4, 2);
/// Prefill of Q4 formats through their [`QuadTile`] kernels: 4 weight rows × a group of 4
/// activation rows (the kernels keep 2 accumulators, so 16 pairs fit the registers).
pub(super) const QUAD_TILE: (usize, usize) = (4, 4);

/// One ISA's kernels. `unsafe fn` because the SIMD ones are `#[target_feature]` functions.
pub(super) struct Table {
    pub quantize: QuantizeRow,
    pub q8_0: DotTile,
    pub q4_0: DotTile,
    pub q4_1: DotTile,
    pub q4_0_x4: QuadTile,
    pub q4_1_x4: QuadTile,
}

/// The quantized kernels of one ISA this CPU supports (holding one is the proof that its
/// `unsafe fn` pointers may be called).
#[derive(Clone, Copy)]
pub struct QuantKernels {
    isa: Isa,
    t: &'static Table,
}

impl std::fmt::Debug for QuantKernels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuantKernels")
            .field("isa", &self.isa)
            .finish()
    }
}

impl QuantKernels {
    /// The kernels of `isa`, or `InvalidArgument` when this CPU lacks what they need (AVX2 also
    /// needs FMA and F16C; AVX-512 needs BW, VL and VNNI beside F).
    pub fn new(isa: Isa) -> Result<QuantKernels> {
        if !supported(isa) {
            return Err(Error::invalid(
                "quant",
                format!(
                    "this CPU lacks the {} quantized kernels' features",
                    isa.name()
                ),
            ));
        }
        let t: &'static Table = match isa {
            Isa::Scalar => &scalar::TABLE,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => &avx2::TABLE,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => &avx512::TABLE,
            #[cfg(not(target_arch = "x86_64"))]
            Isa::Avx2 | Isa::Avx512 => unreachable!("supported() is false off x86_64"),
        };
        Ok(QuantKernels { isa, t })
    }

    /// The best kernels of this CPU, detected once.
    pub fn best() -> &'static QuantKernels {
        static BEST: OnceLock<QuantKernels> = OnceLock::new();
        BEST.get_or_init(|| {
            Isa::ALL
                .into_iter()
                .rev()
                .find_map(|isa| QuantKernels::new(isa).ok())
                .unwrap_or(QuantKernels {
                    isa: Isa::Scalar,
                    t: &scalar::TABLE,
                })
        })
    }

    /// The ISA of these kernels.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Quantizes `x` (`[m, k]`, `k` a multiple of 32) into `acts`, reusing its buffers.
    pub fn quantize(&self, x: &[f32], k: usize, acts: &mut Q8Acts) -> Result<()> {
        if k == 0 || !k.is_multiple_of(QK) || !x.len().is_multiple_of(k) {
            return Err(Error::invalid(
                "quantize_q8",
                format!(
                    "rows of {k} (a multiple of {QK}) cannot hold {} values",
                    x.len()
                ),
            ));
        }
        let m = x.len() / k;
        acts.resize(m, k);
        let nb = k / QK;
        let f = self.t.quantize;
        acts.qs
            .par_chunks_exact_mut(k)
            .zip(acts.d.par_chunks_exact_mut(nb))
            .zip(acts.s.par_chunks_exact_mut(nb))
            .zip(x.par_chunks_exact(k))
            .with_min_len(simd::PAR_MIN_ELEMS / k)
            // SAFETY: `self` exists only for an ISA this CPU supports (see `new`); slices only.
            .for_each(|(((qs, d), s), x)| unsafe { f(x, qs, d, s) });
        if m > 1 {
            acts.interleave_scales();
        }
        Ok(())
    }

    /// `out [m, n] = x [m, k] · Wᵀ` for `w` holding `n` rows of `k` elements in `format`.
    #[allow(clippy::too_many_arguments)]
    pub fn matmul(
        &self,
        format: StorageType,
        w: &[u8],
        n: usize,
        k: usize,
        x: &[f32],
        m: usize,
        out: &mut [f32],
    ) -> Result<()> {
        let w = QuantWeight { format, w, n };
        self.product(k, x, m, &mut [(w, out)], false)
    }

    /// [`QuantKernels::matmul`] for several weights that take the same input (a layer's q, k
    /// and v projections; gate and up): `out_i [m, n_i] = x · W_iᵀ`. The input is quantized once
    /// and the rows of every weight are one pool of parallel tasks, with no join between them.
    pub fn matmul_group(
        &self,
        k: usize,
        x: &[f32],
        m: usize,
        group: &mut [(QuantWeight<'_>, &mut [f32])],
    ) -> Result<()> {
        self.product(k, x, m, group, false)
    }

    /// [`QuantKernels::matmul`] with the activations' rounding error rounded to 8 bits in turn
    /// and multiplied too: `W·q(x) + W·q(x − q(x))`, about 100× closer to `W·x`. The second
    /// activation row rides in the same tile as the first, so the weights are still read once:
    /// a memory-bound product (the LM head, whose outputs are the logits) costs little more.
    #[allow(clippy::too_many_arguments)]
    pub fn matmul_residual(
        &self,
        format: StorageType,
        w: &[u8],
        n: usize,
        k: usize,
        x: &[f32],
        m: usize,
        out: &mut [f32],
    ) -> Result<()> {
        let w = QuantWeight { format, w, n };
        self.product(k, x, m, &mut [(w, out)], true)
    }

    /// The integer dot kernel of `format`, if it has one.
    fn dot(&self, format: StorageType) -> Option<DotTile> {
        match format {
            StorageType::Q8_0 => Some(self.t.q8_0),
            StorageType::Q4_0 => Some(self.t.q4_0),
            StorageType::Q4_1 => Some(self.t.q4_1),
            _ => None,
        }
    }

    /// The prefill kernel of `format` over groups of 4 activation rows, if it has one.
    fn quad(&self, format: StorageType) -> Option<QuadTile> {
        match format {
            StorageType::Q4_0 => Some(self.t.q4_0_x4),
            StorageType::Q4_1 => Some(self.t.q4_1_x4),
            _ => None,
        }
    }

    fn product(
        &self,
        k: usize,
        x: &[f32],
        m: usize,
        group: &mut [(QuantWeight<'_>, &mut [f32])],
        residual: bool,
    ) -> Result<()> {
        for (w, out) in group.iter() {
            w.check(k, x.len(), m, out.len())?;
        }
        if m == 0 {
            return Ok(());
        }
        if group.iter().any(|(w, _)| self.dot(w.format).is_none()) {
            // Formats without an integer kernel go one weight at a time.
            for (w, out) in group.iter_mut() {
                match self.dot(w.format) {
                    Some(_) => self.product(k, x, m, &mut [(*w, &mut **out)], residual)?,
                    None => dequant_matmul(*w, k, x, m, out),
                }
            }
            return Ok(());
        }
        // A product inside a rayon job can be re-entered on the same thread when its wait steals
        // another product's job; that one gets fresh buffers instead of the borrowed ones.
        ACTS.with(|c| match c.try_borrow_mut() {
            Ok(mut bufs) => self.tiles(k, x, m, group, residual, &mut bufs),
            Err(_) => self.tiles(k, x, m, group, residual, &mut Default::default()),
        })
    }

    /// The integer-kernel products of [`QuantKernels::product`] (every weight has a kernel)
    /// with `bufs` for the quantized activations (and their residual).
    fn tiles(
        &self,
        k: usize,
        x: &[f32],
        m: usize,
        group: &mut [(QuantWeight<'_>, &mut [f32])],
        residual: bool,
        [acts, rest]: &mut [Q8Acts; 2],
    ) -> Result<()> {
        self.quantize(x, k, acts)?;
        let passes = if residual {
            let r = acts.residual(x);
            self.quantize(&r, k, rest)?;
            2
        } else {
            1
        };
        let (acts, rest) = (&*acts, &*rest);
        let act = |t: usize, pass: usize| if pass == 0 { acts.row(t) } else { rest.row(t) };
        let run = |qw: QuantWeight<'_>, j0: usize, outs: &mut [&mut [f32]]| {
            let (w, row_bytes) = (qw.w, qw.row_bytes(k));
            let Some(dot) = self.dot(qw.format) else {
                unreachable!("product() sends only formats with a kernel here")
            };
            let quad = self.quad(qw.format).filter(|_| m > 1 && !residual);
            let (tr, tn) = match (m, residual) {
                _ if quad.is_some() => QUAD_TILE,
                (1, false) => DECODE_TILE,
                (1, true) => DECODE_RESIDUAL_TILE,
                _ => PREFILL_TILE,
            };
            // Output rows per tile: each takes `passes` activation rows.
            let per_tile = tn / passes;
            let width = outs[0].len();
            let start = j0 * row_bytes;
            prefetch(&w[start..(start + PREFETCH_BYTES).min(w.len())]);
            let mut arows = [acts.row(0); 4];
            let mut wrows: [&[u8]; 4] = [&[]; 4];
            let mut res = [0.0f32; 16];
            for (g, outs) in outs.chunks_mut(per_tile).enumerate() {
                // A quad kernel always takes (and returns) 4 activation rows.
                let nt = if quad.is_some() {
                    4
                } else {
                    outs.len() * passes
                };
                let acts4 = quad.map(|_| acts.quad(g));
                if acts4.is_none() {
                    for (i, r) in arows.iter_mut().take(nt).enumerate() {
                        *r = act(per_tile * g + i / passes, i % passes);
                    }
                }
                for j in (0..width).step_by(tr) {
                    let nr = tr.min(width - j);
                    for (r, wr) in wrows.iter_mut().take(nr).enumerate() {
                        *wr = &w[(j0 + j + r) * row_bytes..][..row_bytes];
                    }
                    // Later groups of activation rows find the task's weights in cache.
                    let ahead = (j0 + j) * row_bytes + PREFETCH_BYTES;
                    if g == 0 {
                        prefetch(
                            w.get(ahead..)
                                .map_or(&[], |t| &t[..(nr * row_bytes).min(t.len())]),
                        );
                    }
                    // SAFETY: the ISA is supported (see `new`); each weight row is whole
                    // blocks of `format` and each act row has `k` values; the tile is at most
                    // `tr × tn`, as the kernels require.
                    unsafe {
                        match (quad, &acts4) {
                            (Some(f), Some(a)) => f(&wrows[..nr], a, &mut res[..nr * 4]),
                            _ => dot(&wrows[..nr], &arows[..nt], &mut res[..nr * nt]),
                        }
                    };
                    for (t, o) in outs.iter_mut().enumerate() {
                        for r in 0..nr {
                            let at = r * nt + t * passes;
                            o[j + r] = res[at..at + passes].iter().sum();
                        }
                    }
                }
            }
        };
        for_row_blocks(group, k, m, run);
        Ok(())
    }
}

/// Asks the cache for `bytes` ahead of their use (a hint: it never faults nor changes results).
#[inline]
pub(crate) fn prefetch(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    for line in bytes.chunks(64) {
        // SAFETY: a prefetch reads nothing architecturally and never faults; the address is in
        // bounds anyway.
        unsafe {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            _mm_prefetch::<_MM_HINT_T0>(line.as_ptr().cast());
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}

/// A block-quantized weight `[n, k]`: `n` rows of whole `format` blocks, one after another in
/// `w` (as a GGUF file stores them).
#[derive(Clone, Copy, Debug)]
pub struct QuantWeight<'a> {
    pub format: StorageType,
    pub w: &'a [u8],
    pub n: usize,
}

impl QuantWeight<'_> {
    /// Bytes per row of `k` elements (callers have checked `k` with [`QuantWeight::check`]).
    fn row_bytes(&self, k: usize) -> usize {
        self.format.byte_len(k).unwrap_or(0)
    }

    /// Errors unless this weight has rows of `k` in whole blocks, and `x_len` inputs and
    /// `out_len` outputs make `m` rows of it.
    fn check(&self, k: usize, x_len: usize, m: usize, out_len: usize) -> Result<()> {
        let (format, n) = (self.format, self.n);
        let row_bytes = format
            .byte_len(k)
            .filter(|&b| b > 0 && format.is_quantized());
        let row_bytes = row_bytes.ok_or_else(|| {
            Error::invalid(
                "quant::matmul",
                format!("rows of {k} are not whole {} blocks", format.name()),
            )
        })?;
        if self.w.len() != n * row_bytes || x_len != m * k || out_len != m * n {
            return Err(Error::invalid(
                "quant::matmul",
                format!(
                    "W {n}x{k} {} ({} bytes), x {m}x{k}, out {m}x{n}: got {} weight bytes, {} \
                     inputs, {} outputs",
                    format.name(),
                    n * row_bytes,
                    self.w.len(),
                    x_len,
                    out_len
                ),
            ));
        }
        Ok(())
    }
}

thread_local! {
    /// The quantized activations of the current product (and of their rounding error, for
    /// [`QuantKernels::matmul_residual`]), reused across calls (no allocation per token once
    /// warm).
    static ACTS: RefCell<[Q8Acts; 2]> = RefCell::new(Default::default());
}

/// Whether this CPU has what `isa`'s quantized kernels use.
fn supported(isa: Isa) -> bool {
    match isa {
        Isa::Scalar => true,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => {
            is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
                && is_x86_feature_detected!("f16c")
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => {
            supported(Isa::Avx2)
                && is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512vl")
                && is_x86_feature_detected!("avx512vnni")
        }
        #[cfg(not(target_arch = "x86_64"))]
        Isa::Avx2 | Isa::Avx512 => false,
    }
}

/// Calls `run(w, j0, outs)` over blocks of rows `j0..j0 + width` of each weight `w` of `group`,
/// where `outs` are the `m` output-row segments `out[t][j0..j0 + width]`: in parallel, every
/// weight's blocks in one pool of tasks.
fn for_row_blocks<'a, F>(group: &mut [(QuantWeight<'a>, &mut [f32])], k: usize, m: usize, run: F)
where
    F: Fn(QuantWeight<'a>, usize, &mut [&mut [f32]]) + Sync + Send,
{
    let threads = rayon::current_num_threads();
    // At least 4 tasks per thread (balance), at most TASK_BYTES of weights per task.
    let cols = |w: &QuantWeight<'_>| {
        let by_bytes = (TASK_BYTES / w.row_bytes(k).max(1)).max(1);
        let by_threads = w.n.div_ceil(4 * threads).max(1);
        by_bytes.min(by_threads).max(16).min(w.n)
    };
    let one = |(w, out): &mut (QuantWeight<'a>, &mut [f32])| {
        let (w, cols) = (*w, cols(w));
        if w.n == 0 {
            return;
        }
        if m == 1 {
            // Decode: no list of segments to build.
            if cols == w.n {
                return run(w, 0, &mut [out]);
            }
            // One task per block (rayon would otherwise run several as one job): the threads
            // then finish within one block of each other, ~120 times per decode step.
            out.par_chunks_mut(cols)
                .with_max_len(1)
                .enumerate()
                .for_each(|(t, o)| run(w, t * cols, &mut [o]));
            return;
        }
        let mut segments = simd::column_blocks(out, m, w.n, cols);
        segments
            .par_chunks_mut(m)
            .enumerate()
            .for_each(|(t, outs)| run(w, t * cols, outs));
    };
    match group {
        [single] => one(single),
        _ => group.par_iter_mut().for_each(one),
    }
}

/// The fallback for formats without an integer kernel: each task dequantizes one weight row at
/// a time into a buffer and takes f32 dots with every activation row.
fn dequant_matmul(qw: QuantWeight<'_>, k: usize, x: &[f32], m: usize, out: &mut [f32]) {
    let simd = simd::Simd::best();
    let row_bytes = qw.row_bytes(k);
    for_row_blocks(&mut [(qw, out)], k, m, |qw, j0, outs| {
        let mut row = vec![0.0f32; k];
        for j in 0..outs[0].len() {
            let wr = &qw.w[(j0 + j) * row_bytes..][..row_bytes];
            dequantize(qw.format, wr, k, &mut row).expect("row_bytes holds k elements (checked)");
            for (t, o) in outs.iter_mut().enumerate() {
                o[j] = simd.dot(&x[t * k..][..k], &row);
            }
        }
    });
}
