//! The CUDA backend: context and stream ([`CudaBackend`]), the caching allocator, launchers for
//! the Rust kernels, and cuBLAS GEMM. Built on cudarc with dynamic loading, so the same binary
//! runs on machines with and without a GPU.

mod allocator;
mod blas;
mod context;
mod launch;
mod storage;
mod timing;

pub(crate) use allocator::DeviceBuffer;
pub use allocator::MemoryStats;
pub(crate) use blas::Gemm;
pub use context::CudaBackend;
pub use storage::CudaStorage;
