//! NanoInfer: a Llama-family inference engine with GPU kernels written in Rust.
//!
//! This crate owns the PTX that `build.rs` compiles from `gpu-kernels/` and re-exports the
//! library (`nano-infer-host`). Users start here:
//!
//! ```no_run
//! use nano_infer::{Device, Tensor};
//! let gpu = nano_infer::cuda(0)?; // Err(CudaUnavailable) on a machine without a GPU
//! # Ok::<(), nano_infer::Error>(())
//! ```

pub use nano_infer_host::*;

/// The kernels of `gpu-kernels/`, compiled to PTX for `sm_80` by `build.rs`.
pub const KERNELS_PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/kernels.ptx"));
