//! The CUDA backend: context and stream ([`CudaBackend`]), the caching allocator, launchers for
//! the Rust kernels, cuBLAS GEMM, and CUDA graph capture ([`CapturedGraph`]). Built on cudarc
//! with dynamic loading, so the same binary runs on machines with and without a GPU.
//! [`CudaBackend::emulated`] is the same backend on the SIMT emulator (`super::emu`), for tests
//! and debugging without a GPU.

mod allocator;
mod blas;
mod context;
mod dispatch;
mod graph;
mod launch;
mod launch_step;
mod storage;
mod timing;

pub(crate) use allocator::DeviceBuffer;
pub use allocator::MemoryStats;
pub(crate) use blas::{CublasGemm, Gemm};
pub use context::{CudaBackend, KernelPtx};
pub(crate) use dispatch::KernelArg;
pub use graph::{CapturedGraph, DeviceU32};
pub(crate) use launch::{GemvFusion, GemvWeight};
pub(crate) use launch_step::BlockConversion;
pub use storage::CudaStorage;
