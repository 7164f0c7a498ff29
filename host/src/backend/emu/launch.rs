//! The emulated launch step: a kernel name resolves to the host twin that `kernel_entries!`
//! registered under it (`nano_infer_kernels::emu::find`) and runs over the launch's grid.

use cudarc::driver::LaunchConfig;
use nano_infer_kernels::emu::{self, Arg};
use nano_infer_kernels::launch_shape::LaunchShape;

use crate::backend::cuda::KernelArg;
use crate::error::{Error, Result};

/// Runs kernel `name` over the grid of `cfg` with `args` under the emulator; returns when it
/// is done.
///
/// # Safety
/// As a driver launch: the arguments satisfy the kernel's contract, and every address among
/// them is an emulated device address (a host pointer into a live block, see `memory.rs`)
/// with the extents the kernel will touch.
pub(crate) unsafe fn launch(name: &str, cfg: LaunchConfig, args: &[&dyn KernelArg]) -> Result<()> {
    let shape = LaunchShape {
        grid: cfg.grid_dim,
        block: cfg.block_dim,
        shared_mem_bytes: cfg.shared_mem_bytes,
    };
    let kernel = emu::find(name).ok_or_else(|| Error::MissingKernel { name: name.into() })?;
    let args: Vec<Arg<'_>> = args.iter().map(|a| a.emu_arg()).collect();
    // SAFETY: the caller's contract; `Kernel::launch` checks the argument sizes.
    unsafe { kernel.launch(shape, &args) }.map_err(|source| Error::Emulator { source })
}
