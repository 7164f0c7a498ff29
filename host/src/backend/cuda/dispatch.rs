//! The launch step, the one place a launch differs between a GPU and the emulated device:
//! the launchers (`launch.rs`) compute a kernel's name, launch shape and arguments once, and
//! [`CudaBackend::launch_kernel`] hands them to the driver (`cuLaunchKernelEx`, as a
//! programmatic dependent launch where the module supports it) or to the emulator.

use std::ffi::c_void;
use std::ops::Range;

use cudarc::driver::sys::{
    CUlaunchAttribute, CUlaunchAttributeID, CUlaunchAttributeValue, CUlaunchConfig,
    cuLaunchKernelEx,
};
use cudarc::driver::{DeviceRepr, LaunchConfig};
use nano_infer_kernels::emu::{Arg, Param};

use super::context::{CudaBackend, Driver, Target, cuda_err};
use crate::backend::emu;
use crate::error::Result;

/// A kernel argument, passed by value: a device address (`u64`), a size, or a `#[repr(C)]`
/// parameter struct. The driver takes it as a `DeviceRepr`; the emulator as the bytes of a
/// [`Param`] (plain data), which the kernel's entry reads back as its parameter type.
pub(crate) trait KernelArg {
    /// The address of the argument's value, as the driver's parameter array holds it.
    fn param_ptr(&self) -> *mut c_void;
    /// The argument as a [`Param`]'s bytes: an emulated launch reads it, and [`LastLaunch`]
    /// keeps its words.
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

/// Most argument words [`LastLaunch`] keeps; a launch with more is recorded as unknown.
const LAST_LAUNCH_WORDS: usize = 32;

/// The argument words of the last kernel queued on the stream: every device address it could
/// write through. Under a programmatic dependent launch the next kernel may start before that
/// one ends; a GEMV then reads its weights before waiting only when none of these words points
/// into the weights' buffer (so that kernel cannot be writing them). Unknown at first and after
/// stream work that runs kernels we did not launch (cuBLAS, a graph replay or capture).
#[derive(Debug, Default)]
pub(crate) struct LastLaunch {
    words: [u64; LAST_LAUNCH_WORDS],
    len: usize,
    known: bool,
}

impl LastLaunch {
    fn record(&mut self, args: &[&dyn KernelArg]) {
        self.len = 0;
        self.known = true;
        for arg in args {
            for word in arg.emu_arg().words() {
                if self.len == LAST_LAUNCH_WORDS {
                    self.known = false;
                    return;
                }
                self.words[self.len] = word;
                self.len += 1;
            }
        }
    }

    /// Forgets the last kernel (work we did not launch came after it).
    fn forget(&mut self) {
        self.known = false;
    }

    /// True when the last kernel is known and was given no address inside `buffer`.
    fn spares(&self, buffer: &Range<u64>) -> bool {
        self.known && !self.words[..self.len].iter().any(|w| buffer.contains(w))
    }
}

impl CudaBackend {
    /// Queues `work`, stream work that may run kernels we did not launch (cuBLAS, a graph
    /// replay, a capture's start or end), and marks the last kernel unknown: the next one
    /// follows `work`.
    pub(crate) fn queue_foreign<T>(&self, work: impl FnOnce() -> T) -> T {
        match self.target() {
            Target::Driver(d) => {
                let mut last = d.last_launch();
                let out = work();
                last.forget();
                out
            }
            Target::Emulator => work(),
        }
    }

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
                let mut last = d.last_launch();
                // SAFETY: the caller's contract.
                unsafe { launch_on_driver(d, &mut last, name, cfg, args) }
            }
            // SAFETY: the caller's contract; this device's addresses are emulated ones.
            Target::Emulator => unsafe { emu::launch::launch(name, cfg, args) },
        }
    }

    /// As [`CudaBackend::launch_kernel`] for a kernel whose last parameter, appended here, is
    /// `weights_early: u32`: 1 lets it read `weights` (a whole buffer's address range) before
    /// its grid-dependency wait, given when the kernel it may overlap was handed no address in
    /// that range ([`LastLaunch`]); always on the emulator, which runs launches one at a time.
    ///
    /// # Safety
    /// As [`CudaBackend::launch_kernel`]; `weights` covers the whole buffer the kernel reads
    /// early (any address a writer of it would be given).
    pub(crate) unsafe fn launch_kernel_reading_early(
        &self,
        name: &str,
        cfg: LaunchConfig,
        args: &[&dyn KernelArg],
        weights: Range<u64>,
    ) -> Result<()> {
        match self.target() {
            Target::Driver(d) => {
                let mut last = d.last_launch();
                let early = u32::from(last.spares(&weights));
                let mut all = args.to_vec();
                all.push(&early);
                // SAFETY: the caller's contract; the flag is 1 only when the grid this one may
                // overlap cannot write `weights`.
                unsafe { launch_on_driver(d, &mut last, name, cfg, &all) }
            }
            Target::Emulator => {
                let early = 1u32;
                let mut all = args.to_vec();
                all.push(&early);
                // SAFETY: the caller's contract; this device's addresses are emulated ones.
                unsafe { emu::launch::launch(name, cfg, &all) }
            }
        }
    }
}

/// `cuLaunchKernelEx` on the driver's stream (as a programmatic dependent launch where the
/// module supports it), recording the arguments in `last` (held locked across the launch so
/// the record matches the stream's order).
///
/// # Safety
/// As [`CudaBackend::launch_kernel`].
unsafe fn launch_on_driver(
    d: &Driver,
    last: &mut LastLaunch,
    name: &str,
    cfg: LaunchConfig,
    args: &[&dyn KernelArg],
) -> Result<()> {
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
    // SAFETY: the caller's contract for the arguments; `params` points at `args`' values, which
    // outlive the call (the driver copies them at launch); the function belongs to this
    // context's module and the stream to this context.
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
    last.record(args);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(args: &[&dyn KernelArg]) -> LastLaunch {
        let mut last = LastLaunch::default();
        last.record(args);
        last
    }

    #[test]
    fn a_kernel_given_an_address_in_the_weights_buffer_blocks_early_reads() {
        let weights = 0x1000u64..0x2000;
        // Nothing launched yet: unknown, so no early reads.
        assert!(!LastLaunch::default().spares(&weights));
        let (out, inside, n) = (0x8000u64, 0x1800u64, 7u32);
        assert!(recorded(&[&out, &n]).spares(&weights));
        assert!(!recorded(&[&inside, &n]).spares(&weights));
        assert!(!recorded(&[&out, &weights.start]).spares(&weights));
        assert!(
            recorded(&[&weights.end]).spares(&weights),
            "the end is past the buffer"
        );
        // Addresses inside a parameter struct count too.
        let params = ByValueWords([out, out + 64, inside]);
        assert!(!recorded(&[&params]).spares(&weights));
        // Work we did not launch came after: unknown again.
        let mut last = recorded(&[&out]);
        last.forget();
        assert!(!last.spares(&weights));
    }

    #[test]
    fn a_launch_with_more_words_than_kept_is_recorded_unknown() {
        let words = [0x9000u64; LAST_LAUNCH_WORDS + 1];
        let args: Vec<&dyn KernelArg> = words.iter().map(|w| w as &dyn KernelArg).collect();
        assert!(!recorded(&args).spares(&(0x1000..0x2000)));
        assert!(recorded(&args[..LAST_LAUNCH_WORDS]).spares(&(0x1000..0x2000)));
    }

    /// A parameter struct of three addresses.
    #[derive(Clone, Copy)]
    #[repr(C)]
    struct ByValueWords([u64; 3]);
    // SAFETY: three u64s: no padding, every bit pattern valid.
    unsafe impl Param for ByValueWords {}
    // SAFETY: plain data.
    unsafe impl DeviceRepr for ByValueWords {}
}
