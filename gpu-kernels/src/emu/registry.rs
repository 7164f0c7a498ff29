//! The emulator's kernel table: every entry point `kernel_entries!` makes, by PTX symbol name,
//! so a launcher that knows only a name (`rmsnorm_f16`) and its arguments can run the kernel's
//! host twin under [`super::launch`] — what `cuModuleGetFunction` + `cuLaunchKernel` do with the
//! PTX module.
//!
//! Each `kernel_entries!` expansion adds its symbols to [`KERNELS`], a `linkme` distributed
//! slice gathered by the linker, so a new kernel file needs no registration line anywhere.

use std::format;

use super::EmuError;
use super::args::Arg;
use crate::launch_shape::LaunchShape;

/// One kernel's host entry point, as `kernel_entries!` registers it.
pub struct Kernel {
    /// The PTX symbol (`rmsnorm_f16`).
    pub name: &'static str,
    /// Size in bytes of each parameter, in order.
    pub params: &'static [usize],
    /// Reads the arguments as the parameter types and runs the kernel under the emulator.
    /// Called only through [`Kernel::launch`], which checks the arguments' sizes first.
    #[doc(hidden)]
    pub run: unsafe fn(LaunchShape, &[Arg<'_>]) -> Result<(), EmuError>,
}

/// Every registered kernel (filled by `kernel_entries!` expansions, in no particular order).
#[linkme::distributed_slice]
pub static KERNELS: [Kernel];

/// The kernel whose PTX symbol is `name`. A linear scan: ~60 entries, noise next to a launch.
pub fn find(name: &str) -> Option<&'static Kernel> {
    KERNELS.iter().find(|k| k.name == name)
}

impl Kernel {
    /// Runs the kernel over `shape` with `args` (one per parameter, in order).
    ///
    /// An argument count or size that differs from the kernel's signature is an
    /// [`EmuError::InvalidLaunch`] (on a GPU the kernel would read garbage).
    ///
    /// # Safety
    /// The arguments satisfy the kernel's contract (its `# Safety` section): pointers address
    /// live memory of the sizes the other arguments name, shared with no one but the kernel
    /// for the duration of the launch.
    pub unsafe fn launch(&self, shape: LaunchShape, args: &[Arg<'_>]) -> Result<(), EmuError> {
        let sizes_match = args.len() == self.params.len()
            && args.iter().zip(self.params).all(|(a, &p)| a.size() == p);
        if !sizes_match {
            let got: std::vec::Vec<usize> = args.iter().map(Arg::size).collect();
            return Err(EmuError::InvalidLaunch {
                kernel: self.name.into(),
                detail: format!(
                    "arguments of {got:?} bytes, the kernel's parameters have {:?}",
                    self.params
                ),
            });
        }
        // SAFETY: sizes checked above; the contract is forwarded.
        unsafe { (self.run)(shape, args) }
    }
}

/// Shares a kernel's argument tuple with every emulated thread of the launch closure.
///
/// The tuple holds raw pointers, which are not `Sync`; every GPU thread receives the same
/// arguments, and the kernel's contract governs what it does through them.
#[doc(hidden)]
pub struct Shared<T>(pub T);

// SAFETY: see the type's docs: the values are read-only copies of the launch arguments, and
// all access through pointers among them is under the kernel's contract, as on a GPU.
unsafe impl<T> Sync for Shared<T> {}

impl<T: Copy> Shared<T> {
    /// The arguments (a method, so a closure captures the whole `Shared`, not the tuple).
    pub fn get(&self) -> T {
        self.0
    }
}
