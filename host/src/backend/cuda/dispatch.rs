//! The launch step, the one place a launch differs between a GPU and the emulated device:
//! the launchers (`launch.rs`) compute a kernel's name, launch shape and arguments once, and
//! [`CudaBackend::launch_kernel`] hands them to the driver or to the emulator.

use cudarc::driver::{DeviceRepr, LaunchArgs, LaunchConfig, PushKernelArg};
use nano_infer_kernels::emu::{Arg, Param};

use super::context::{CudaBackend, Target, cuda_err};
use crate::backend::emu;
use crate::error::Result;

/// A kernel argument, passed by value: a device address (`u64`), a size, or a `#[repr(C)]`
/// parameter struct. The driver takes it as a `DeviceRepr`; the emulator as the bytes of a
/// [`Param`] (plain data), which the kernel's entry reads back as its parameter type.
pub(crate) trait KernelArg {
    /// Appends the argument to a driver launch.
    fn push_to<'a>(&'a self, launch: &mut LaunchArgs<'a>);
    /// The argument for an emulated launch.
    fn emu_arg(&self) -> Arg<'_>;
}

impl<T: DeviceRepr + Param> KernelArg for T {
    fn push_to<'a>(&'a self, launch: &mut LaunchArgs<'a>) {
        launch.arg(self);
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
                let mut launch = d.stream().launch_builder(&f);
                for a in args {
                    a.push_to(&mut launch);
                }
                // SAFETY: the caller's contract.
                unsafe { launch.launch(cfg) }.map_err(cuda_err("launch"))?;
                Ok(())
            }
            // SAFETY: the caller's contract; this device's addresses are emulated ones.
            Target::Emulator => unsafe { emu::launch::launch(name, cfg, args) },
        }
    }
}
