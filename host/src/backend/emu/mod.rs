//! The emulated CUDA device ([`CudaBackend::emulated`](crate::backend::cuda::CudaBackend::emulated)):
//! the CUDA backend with host memory, whose launches run the kernels' own Rust source under the
//! SIMT emulator of `gpu-kernels` (`nano_infer_kernels::emu`).
//!
//! Everything above the launch step is the CUDA backend's: the `functional` ops, the launchers
//! of `backend/cuda/launch.rs` with their launch shapes (`nano_infer_kernels::launch_shape`),
//! symbol names and parameter structs, the caching allocator. What differs lives here:
//! - [`memory`]: device memory is host memory; a device address (`u64`) is a host pointer.
//! - [`launch`]: a kernel name resolves to the host twin `kernel_entries!` registered under
//!   that name, run over the launch's grid by `emu::Kernel::launch` (sizes of the arguments
//!   checked against the kernel's parameters).
//! - [`gemm`]: where the GPU calls cuBLAS, the emulated device runs a scalar GEMM on exactly
//!   the arguments of that cuBLAS call (column-major, strided batches, f32 accumulation), so
//!   the row-major → column-major mapping of `backend/cuda/blas.rs` is tested too.
//!
//! Launches run synchronously and one at a time; a kernel bug the emulator detects (shared
//! memory out of bounds, a race, a divergent barrier) comes back as [`Error::Emulator`]
//! naming the kernel, block and thread.
//!
//! [`Error::Emulator`]: crate::Error::Emulator

pub(crate) mod gemm;
pub(crate) mod launch;
pub(crate) mod memory;

/// SMs the emulated device reports: grid-stride launches get at most `8 * SM_COUNT` blocks and
/// the decode-attention plan few splits, so grids stay small (every block of an emulated launch
/// costs thread rendezvous) and grid-stride loops take several turns on test shapes.
pub(crate) const SM_COUNT: usize = 2;

#[cfg(test)]
mod decode_step_tests;
#[cfg(test)]
mod tests;
