//! NanoInfer: a Llama-family inference engine with GPU kernels written in Rust.
//!
//! This crate owns the PTX that `build.rs` compiles from `gpu-kernels/` and re-exports the
//! library (`nano-infer-host`). Users start here:
//!
//! ```no_run
//! use nano_infer::nn::{LlamaMlp, Module};
//! use nano_infer::{DType, Device, Tensor};
//!
//! // Hidden 4096, intermediate 11008 (Llama-2-7B), random weights, on the GPU if there is one.
//! let device = nano_infer::cuda(0).unwrap_or(Device::Cpu);
//! let mlp = LlamaMlp::new(4096, 11008, 0, DType::F16, &device)?;
//! let x = Tensor::randn([1, 128, 4096], 1.0, 1, DType::F16, &device)?;
//! let y = mlp.forward(&x)?;
//! assert_eq!(y.dims(), &[1, 128, 4096]);
//! # Ok::<(), nano_infer::Error>(())
//! ```

pub use nano_infer_host::*;

/// The kernels of `gpu-kernels/`, compiled to PTX by `build.rs` for `sm_80`, for `sm_90` (the
/// same kernels, entered through `griddepcontrol` for programmatic dependent launch) and for
/// `sm_90a` (those plus the `wgmma` FlashAttention-3 kernel).
pub const KERNELS_PTX: backend::cuda::KernelPtx = backend::cuda::KernelPtx {
    sm80: include_str!(concat!(env!("OUT_DIR"), "/kernels.ptx")),
    sm90: include_str!(concat!(env!("OUT_DIR"), "/kernels_sm90.ptx")),
    sm90a: include_str!(concat!(env!("OUT_DIR"), "/kernels_sm90a.ptx")),
};

/// Opens CUDA GPU `ordinal` with NanoInfer's kernels loaded. On a machine without a CUDA driver
/// or GPU this is `Err(Error::CudaUnavailable)`, and the CPU keeps working.
pub fn cuda(ordinal: usize) -> Result<Device> {
    Ok(Device::Cuda(backend::cuda::CudaBackend::new(
        ordinal,
        KERNELS_PTX,
    )?))
}

/// The emulated GPU: NanoInfer's CUDA backend with host memory, running the kernels' own Rust
/// source under the SIMT emulator (cuBLAS GEMMs: a scalar GEMM on the cuBLAS call's arguments).
/// Needs no GPU; slow, for tests and for stepping through a kernel in a debugger (README).
///
/// ```
/// use nano_infer::functional as F;
/// use nano_infer::{DType, Device, Tensor};
///
/// let emu = nano_infer::emu();
/// let x = Tensor::randn([3, 64], 1.0, 1, DType::F16, &emu)?;
/// let w = Tensor::randn([64], 1.0, 2, DType::F16, &emu)?;
/// let y = F::rms_norm(&x, &w, 1e-5)?; // the `rmsnorm_f16` kernel, run by the emulator
/// let cpu = F::rms_norm(&x.to_device(&Device::Cpu)?, &w.to_device(&Device::Cpu)?, 1e-5)?;
/// let (got, want) = (y.to_vec_f32()?, cpu.to_vec_f32()?);
/// assert!(got.iter().zip(&want).all(|(g, w)| (g - w).abs() <= 2e-3 + 2e-3 * w.abs()));
/// # Ok::<(), nano_infer::Error>(())
/// ```
pub fn emu() -> Device {
    Device::Cuda(backend::cuda::CudaBackend::emulated())
}
