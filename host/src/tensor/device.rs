//! Where a tensor lives. Ops look at the device of their inputs and run on that backend.

use crate::backend::cuda::CudaBackend;

/// A compute device: the host CPU or one CUDA GPU (a cheap handle to its backend). The
/// emulated GPU (`CudaBackend::emulated()`, shown as `emu`) is a `Cuda` device too: it runs the
/// same launchers and kernels, on the CPU.
#[derive(Clone)]
pub enum Device {
    Cpu,
    Cuda(CudaBackend),
}

impl Device {
    /// True for [`Device::Cpu`].
    pub fn is_cpu(&self) -> bool {
        matches!(self, Device::Cpu)
    }
    /// The backend of a CUDA device.
    pub fn as_cuda(&self) -> Option<&CudaBackend> {
        match self {
            Device::Cuda(b) => Some(b),
            Device::Cpu => None,
        }
    }
    /// Same device (the same CUDA backend instance for GPUs).
    pub fn same(&self, other: &Device) -> bool {
        match (self, other) {
            (Device::Cpu, Device::Cpu) => true,
            (Device::Cuda(a), Device::Cuda(b)) => a.same(b),
            _ => false,
        }
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
            Device::Cuda(b) => write!(f, "{b}"),
        }
    }
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}
