//! Compute backends. Each backend implements the same set of ops on contiguous buffers;
//! `functional` picks one from the tensors' device, so model code never branches on a backend.
//!
//! - [`cpu`]: the scalar reference (the oracle every other path is tested against) and the
//!   SIMD + rayon fast path.
//! - [`cuda`]: the Rust kernels compiled to PTX, cuBLAS, a caching allocator.
//! - [`emu`]: what the emulated CUDA device does differently (host memory, kernels run by the
//!   SIMT emulator, GEMM); it is reached as `Device::Cuda(CudaBackend::emulated())`.

pub mod cpu;
pub mod cuda;
pub mod emu;
