//! The CUDA backend: context and stream ([`CudaBackend`]), the caching allocator, launchers for
//! the Rust kernels, and cuBLAS GEMM. Built on cudarc with dynamic loading, so the same binary
//! runs on machines with and without a GPU. [`CudaBackend::emulated`] is the same backend on
//! the SIMT emulator (`super::emu`), for tests and debugging without a GPU.

mod allocator;
mod blas;
mod context;
mod dispatch;
mod launch;
mod storage;
mod timing;

pub use allocator::MemoryStats;
pub(crate) use blas::{CublasGemm, Gemm};
pub use context::CudaBackend;
pub(crate) use dispatch::KernelArg;
pub use storage::CudaStorage;
