//! The fast CPU path: SIMD row kernels, chosen once at run time, plus rayon across rows.
//!
//! Same functions and signatures as [`super::reference`], same shape checks and errors; only the
//! numbers differ, by the rounding of `f32` accumulation in another order and of a polynomial
//! `exp` (the tests state the tolerances).
//!
//! - [`Isa`] names an instruction set: AVX-512F, AVX2+FMA, or the portable scalar fallback.
//! - [`Simd`] binds the kernels of one supported ISA; its methods are the ops. [`Simd::best`] is
//!   the best ISA of this CPU, detected once and cached; the free functions use it.
//! - Work is split across rayon's pool when a call touches more than [`PAR_MIN_ELEMS`]
//!   elements, in tasks of whole rows; below that, fork/join costs more than it saves.
//!
//! Layout of the code: `kernels` is the per-row primitive table (dot, axpy, exp, rope row, ...),
//! `scalar`/`avx2`/`avx512` implement it, `ops` (norms, activations, softmax, rope) and `linalg`
//! (matmul, attention) write each op once on top of it.
//!
//! ```
//! use nano_infer_host::backend::cpu::simd::{self, Isa, Simd};
//! println!("fastest ISA here: {}", simd::active_isa());
//! let scalar = Simd::new(Isa::Scalar)?; // always available
//! let mut out = [0.0f32; 3];
//! scalar.add(&[1.0, 2.0, 3.0], &[1.0, 1.0, 1.0], &mut out)?;
//! assert_eq!(out, [2.0, 3.0, 4.0]);
//! # Ok::<(), nano_infer_host::Error>(())
//! ```

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod kernels;
mod linalg;
mod ops;
mod scalar;
#[cfg(test)]
mod tests;

use std::sync::OnceLock;

use kernels::Kernels;
pub(crate) use linalg::column_blocks;
pub use linalg::{GEMV_MAX_M, GEMV_N_MAX_M};

use crate::{Error, Result};

/// Calls touching fewer elements than this stay on the calling thread.
pub const PAR_MIN_ELEMS: usize = 32 * 1024;

/// An instruction set the kernels are compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// Portable Rust, vectorised by the compiler for the build's baseline target.
    Scalar,
    /// x86-64 AVX2 with FMA: 8 lanes.
    Avx2,
    /// x86-64 AVX-512 Foundation: 16 lanes, masked tails.
    Avx512,
}

impl Isa {
    /// Every ISA, slowest first.
    pub const ALL: [Isa; 3] = [Isa::Scalar, Isa::Avx2, Isa::Avx512];

    /// A short lowercase name: `scalar`, `avx2`, `avx512`.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    /// Whether the running CPU (and this build's target) supports it.
    pub fn is_supported(self) -> bool {
        match self {
            Isa::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => is_x86_feature_detected!("avx512f"),
            #[cfg(not(target_arch = "x86_64"))]
            Isa::Avx2 | Isa::Avx512 => false,
        }
    }

    /// The ISAs this CPU supports, slowest first (always starts with `Scalar`).
    pub fn supported() -> Vec<Isa> {
        Isa::ALL
            .into_iter()
            .filter(|isa| isa.is_supported())
            .collect()
    }
}

/// The kernels of one supported [`Isa`]; its methods are the ops, with the signatures of the
/// free functions of this module.
#[derive(Clone, Copy)]
pub struct Simd {
    isa: Isa,
    k: Kernels,
}

impl std::fmt::Debug for Simd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simd").field("isa", &self.isa).finish()
    }
}

impl Simd {
    /// The kernels of `isa`, or `InvalidArgument` if this CPU does not support it.
    pub fn new(isa: Isa) -> Result<Simd> {
        let k = Kernels::for_isa(isa).ok_or_else(|| {
            Error::invalid("simd", format!("this CPU does not support {}", isa.name()))
        })?;
        Ok(Simd { isa, k })
    }

    /// The fastest ISA of this CPU, detected on first use and cached.
    pub fn best() -> &'static Simd {
        static BEST: OnceLock<Simd> = OnceLock::new();
        BEST.get_or_init(|| {
            let fastest = Isa::ALL.into_iter().rev().find(|isa| isa.is_supported());
            fastest.and_then(|isa| Simd::new(isa).ok()).unwrap_or(Simd {
                isa: Isa::Scalar,
                k: Kernels::scalar(),
            })
        })
    }

    /// The ISA these kernels use.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// `Σ a·b` over the common length (one row; the quantized fallback's inner loop).
    pub fn dot(&self, a: &[f32], b: &[f32]) -> f32 {
        self.k.dot(a, b)
    }
}

/// The name of the ISA the free functions use (`"avx512"`, `"avx2"` or `"scalar"`).
pub fn active_isa() -> &'static str {
    Simd::best().isa.name()
}

/// Runs `f(first_row, rows)` over `out` cut into blocks of whole rows of `row_len`: one block on
/// this thread when `work` (elements touched) is under [`PAR_MIN_ELEMS`], else blocks of about
/// 16K elements spread over rayon's pool.
fn for_row_blocks<F>(out: &mut [f32], row_len: usize, work: usize, f: F)
where
    F: Fn(usize, &mut [f32]) + Sync + Send,
{
    use rayon::prelude::*;
    let rows_per_task = (16 * 1024 / row_len.max(1)).max(1);
    let block = rows_per_task * row_len.max(1);
    if work < PAR_MIN_ELEMS || out.len() <= block {
        f(0, out);
    } else {
        out.par_chunks_mut(block)
            .enumerate()
            .for_each(|(t, rows)| f(t * rows_per_task, rows));
    }
}

/// Writes one free function per op that forwards to [`Simd::best`], with its doc line.
macro_rules! forward {
    ($($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?);)*) => {$(
        $(#[$doc])*
        #[allow(clippy::too_many_arguments)]
        pub fn $name($($arg: $ty),*) -> Result<()> {
            Simd::best().$name($($arg),*)
        }
    )*};
}

forward! {
    /// RMS norm over rows of `weight.len()`; see [`super::reference::rms_norm`].
    fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]);
    /// Residual add + RMS norm; see [`super::reference::add_rms_norm`].
    fn add_rms_norm(
        x: &[f32],
        residual: &[f32],
        weight: &[f32],
        eps: f32,
        sum_out: &mut [f32],
        norm_out: &mut [f32],
    );
    /// `out = silu(x)`; see [`super::reference::silu`].
    fn silu(x: &[f32], out: &mut [f32]);
    /// `out = silu(gate) * up`; see [`super::reference::swiglu`].
    fn swiglu(gate: &[f32], up: &[f32], out: &mut [f32]);
    /// `out = a + b`.
    fn add(a: &[f32], b: &[f32], out: &mut [f32]);
    /// `out = a * b`.
    fn mul(a: &[f32], b: &[f32], out: &mut [f32]);
    /// Scaled, optionally causal softmax over rows of `k_len`; see
    /// [`super::reference::softmax`].
    fn softmax(x: &[f32], q_len: usize, k_len: usize, scale: f32, causal: bool, out: &mut [f32]);
    /// Rotary embedding, half or interleaved pairs; see [`super::reference::rope`].
    fn rope(
        x: &[f32],
        seq: usize,
        heads: usize,
        head_dim: usize,
        cos: &[f32],
        sin: &[f32],
        pos_offset: usize,
        interleaved: bool,
        out: &mut [f32],
    );
    /// `out = a · B`; see [`super::reference::matmul`] and [`Simd::matmul`] for the paths.
    fn matmul(
        a: &[f32],
        b: &[f32],
        m: usize,
        k: usize,
        n: usize,
        b_transposed: bool,
        out: &mut [f32],
    );
    /// Grouped-query attention; see [`super::reference::attention`].
    fn attention(
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
    );
}
