//! The CPU backend: two modules with identical function signatures over contiguous row-major
//! `f32` slices.
//!
//! - [`reference`](mod@reference): plain scalar Rust written for clarity, accumulating in
//!   `f64`. It is the oracle for every optimised path (SIMD here, CUDA, the emulator) and is
//!   never made fast.
//! - [`simd`]: the fast path. AVX-512F, AVX2+FMA or a portable scalar fallback, chosen once at
//!   run time, plus rayon across rows when a call is big enough to pay for it.
//!
//! - [`quant`]: products with weights kept in ggml block formats (Q8_0, Q4_0, Q4_1, ...) and
//!   activations rounded to 8 bits, scalar reference + AVX2 + AVX-512 VNNI.
//!
//! Both validate shapes through one shared set of checks, so the same bad call returns the same
//! [`crate::Error`] from either. [`testing`] holds the comparison helper every backend's tests use.
//!
//! Tests and benches:
//! `cargo test -p nano-infer-host --release --lib backend::cpu` and
//! `cargo bench --bench cpu_kernels`.
//!
//! ```
//! use nano_infer_host::backend::cpu::{reference, simd};
//! let x = [3.0f32, 4.0];
//! let mut want = [0.0; 2];
//! let mut got = [0.0; 2];
//! reference::rms_norm(&x, &[1.0, 1.0], 0.0, &mut want)?;
//! simd::rms_norm(&x, &[1.0, 1.0], 0.0, &mut got)?;
//! assert!((want[0] - 3.0 / 12.5f32.sqrt()).abs() < 1e-6);
//! assert!((got[1] - want[1]).abs() < 1e-6);
//! # Ok::<(), nano_infer_host::Error>(())
//! ```

mod check;
pub mod quant;
pub mod reference;
pub mod simd;
pub mod testing;
