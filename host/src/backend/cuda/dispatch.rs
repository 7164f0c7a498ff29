//! The launch step, the one place a launch differs between a GPU and the emulated device:
//! the launchers (`launch.rs`) compute a kernel's name, launch shape and arguments once, and
//! [`CudaBackend::launch_kernel`] hands them to the driver (`cuLaunchKernelEx`, as a
//! programmatic dependent launch where the module supports it) or to the emulator.

use std::ffi::c_void;

use cudarc::driver::sys::{
    CUlaunchAttribute, CUlaunchAttributeID, CUlaunchAttributeValue, CUlaunchConfig,
    cuLaunchKernelEx,
};
use cudarc::driver::{DeviceRepr, LaunchConfig};
use nano_infer_kernels::emu::{Arg, Param};

use super::context::{CudaBackend, Target, cuda_err};
use crate::backend::emu;
use crate::error::Result;

/// A kernel argument, passed by value: a device address (`u64`), a size, or a `#[repr(C)]`
/// parameter struct. The driver takes it as a `DeviceRepr`; the emulator as the bytes of a
/// [`Param`] (plain data), which the kernel's entry reads back as its parameter type.
pub(crate) trait KernelArg {
    /// The address of the argument's value, as the driver's parameter array holds it.
    fn param_ptr(&self) -> *mut c_void;
    /// The argument for an emulated launch.
    fn emu_arg(&self) -> Arg<'_>;
}

impl<T: DeviceRepr + Param> KernelArg for T {
    fn param_ptr(&self) -> *mut c_void {
        self as *const T as *mut c_void
    }
    fn emu_arg(&self) -> Arg<'_> {
        Arg::new(self)
    }
}

impl CudaBackend {
    /// Launches kernel `name` with `cfg` and `args` (the kernel's parameters, in order).
    ///
    /// # Safety
    /// The arguments satisfy the kernel's contract: addresses of this device's buffers that
    /// hold the extents the other arguments name.
    pub(crate) unsafe fn launch_kernel(
        &self,
        name: &str,
        cfg: LaunchConfig,
        args: &[&dyn KernelArg],
    ) -> Result<()> {
        match self.target() {
            Target::Driver(d) => {
                let f = d.function(name)?;
                let mut params: Vec<*mut c_void> = args.iter().map(|a| a.param_ptr()).collect();
                let mut pdl = CUlaunchAttribute {
                    id: CUlaunchAttributeID::CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION,
                    pad: [0; 4],
                    value: CUlaunchAttributeValue {
                        programmaticStreamSerializationAllowed: 1,
                    },
                };
                let config = CUlaunchConfig {
                    gridDimX: cfg.grid_dim.0,
                    gridDimY: cfg.grid_dim.1,
                    gridDimZ: cfg.grid_dim.2,
                    blockDimX: cfg.block_dim.0,
                    blockDimY: cfg.block_dim.1,
                    blockDimZ: cfg.block_dim.2,
                    sharedMemBytes: cfg.shared_mem_bytes,
                    hStream: d.stream().cu_stream(),
                    attrs: &mut pdl,
                    numAttrs: u32::from(d.pdl()),
                };
                d.bind()?;
                // SAFETY: the caller's contract for the arguments; `params` points at `args`'
                // values, which outlive the call (the driver copies them at launch); the
                // function belongs to this context's module and the stream to this context.
                unsafe {
                    cuLaunchKernelEx(
                        &config,
                        f.cu_function(),
                        params.as_mut_ptr(),
                        std::ptr::null_mut(),
                    )
                }
                .result()
                .map_err(cuda_err("launch"))?;
                Ok(())
            }
            // SAFETY: the caller's contract; this device's addresses are emulated ones.
            Target::Emulator => unsafe { emu::launch::launch(name, cfg, args) },
        }
    }
}
