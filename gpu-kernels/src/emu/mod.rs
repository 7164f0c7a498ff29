//! A SIMT emulator: runs the kernels' own Rust source on the CPU (host builds only).
//!
//! CI has no GPU, but the kernels are plain Rust that reach the hardware only through
//! [`crate::primitives`]. On the host those primitives are implemented on top of this module, so
//! `cargo test` can run every kernel, check it against the CPU reference, and catch the bugs a
//! GPU would hide or corrupt silently: shared-memory indices out of bounds, missing barriers
//! (races), barriers or warp collectives in divergent code, deadlocks.
//!
//! # Model
//! - [`launch`] runs the blocks of the grid one after another. Each block's threads are OS
//!   threads (workers from a pool, `pool.rs`), all live at once, so a barrier is a real
//!   rendezvous and a missing one lets threads overtake each other as on a GPU.
//! - `sync_threads` waits until every thread of the block arrives at the same call site.
//!   Exiting while others wait, or waiting at different `sync_threads` calls, is reported
//!   ([`EmuError::BarrierDivergence`]): the CUDA guide requires uniform barriers, while sm_70+
//!   hardware counts arrivals at any `bar.sync 0` and may let such code pass by luck.
//! - Warp collectives (shuffles, votes, `ldmatrix`, `mma`) are a rendezvous of the 32 lanes of
//!   a warp: each lane brings its operand, all get everyone's, each computes its own result.
//!   All 32 lanes must take part (the primitives use the full mask).
//! - Shared memory is per block, `shared_mem_bytes` long, filled with `0xff` (NaN), bounds- and
//!   alignment-checked on every access and race-checked per byte between barriers
//!   (see `shared.rs`: the verdict does not depend on how the host schedules the threads).
//! - Global memory is host memory: kernels get raw pointers into host buffers ([`SyncPtr`]
//!   carries them into the `Sync` launch closure; the kernel table rebuilds them from the
//!   addresses a launcher passes, see [`Param`]).
//! - `ex2`/`rsqrt`/`rcp` are computed exactly (with the PTX flush-to-zero rules); f16/bf16
//!   conversions are bit-exact. Results can differ from the GPU's by the approximate
//!   instructions' error (~2 ulp), well inside the test tolerances.
//! - The first error stops the block (every thread unwinds) and comes back from [`launch`] as
//!   an [`EmuError`] naming the kernel, block and thread. A panic in a kernel thread is an error
//!   too, not a panic in the caller.
//!
//! # Running one kernel
//! ```ignore
//! use nano_infer_kernels::{emu, launch_shape, norm};
//! let (x, w, mut out) = (vec![1.0f32; 3 * 64], vec![1.0f32; 64], vec![0.0f32; 3 * 64]);
//! let (xp, wp, op) = (emu::SyncPtr::of(&x), emu::SyncPtr::of(&w), emu::SyncPtr::of_mut(&mut out));
//! let shape = launch_shape::rows(3, 64).unwrap();
//! emu::launch_shape("rmsnorm_f32", shape, || {
//!     // SAFETY: buffers sized rows * cols and cols, launched with the kernel's shape.
//!     unsafe { norm::rmsnorm_f32(xp.get(), wp.get(), op.get(), 3, 64, 1e-5) }
//! })?;
//! ```
//! Launchers normally go through the kernel table instead: [`find`]`("rmsnorm_f32")` is the
//! entry `kernel_entries!` registered for that PTX symbol, and [`Kernel::launch`] runs it with
//! the launch's arguments as `cuLaunchKernel` would ([`Arg`]: each parameter's bytes, sizes
//! checked). That is how the host's CUDA backend runs on the emulated device
//! (`nano_infer::emu()`, `host/src/backend/emu/`): the same launchers, shapes and arguments as
//! on a GPU. `tests/gpu_vs_cpu.rs` runs every kernel that way against the CPU reference
//! (`cargo test --release --test gpu_vs_cpu emu::`); `host/tests/emu/` tests the emulator itself.
//!
//! # Stepping through a kernel in a debugger
//! Build the test without optimisations so locals survive, then run it under gdb (or lldb)
//! with `NANO_EMU_NAMES=1`, which names every worker after the emulated thread it runs:
//! ```text
//! cargo test --test gpu_vs_cpu --no-run      # prints the executable's path
//! NANO_EMU_NAMES=1 NANO_EMU_BLOCK=0 rust-gdb --args target/debug/deps/gpu_vs_cpu-<hash> \
//!     emu::rms_norm_and_add_rms_norm --exact --test-threads=1
//! (gdb) break nano_infer_kernels::norm::rmsnorm_rows     # or: break norm.rs:108
//! (gdb) run
//! (gdb) info threads           # emulated threads are named b<block>t<thread>
//! (gdb) thread find b0t37      # the gdb number of block 0, thread 37
//! (gdb) thread 42              # switch to it; `bt`, `info locals`, `p cache` as usual
//! (gdb) set scheduler-locking step   # `next`/`step` now move only this thread
//! ```
//! Block and thread numbers are linear (`x + y·dim.x + z·dim.x·dim.y`) because Linux keeps 15
//! bytes of a thread name; a worker is renamed when it starts an emulated thread, so an idle
//! worker keeps the name of the last one it ran (its frame is then in the pool's `recv`). Every thread of a block exists at once, so all of them can be
//! inspected; blocks run one at a time. `NANO_EMU_BLOCK=<linear block id>` runs only that block
//! of every launch (the other blocks' outputs stay untouched, so the test's comparison will
//! fail — that is expected while debugging), which makes a breakpoint hit only there.

mod args;
mod block;
mod error;
pub mod fragments;
mod pool;
mod registry;
mod shared;
pub(crate) mod thread;
pub mod wgmma;

use std::boxed::Box;
use std::format;
use std::string::String;
use std::sync::Arc;

pub use args::{Arg, Param};
pub use error::{Dim3, EmuError, RaceKind};
#[doc(hidden)]
pub use linkme;
#[doc(hidden)]
pub use registry::Shared;
pub use registry::{KERNELS, Kernel, find};

use crate::launch_shape::LaunchShape;
use block::{Abort, Block};
pub(crate) use block::{Collective, Payload};
use thread::ThreadCtx;

/// The most threads a block may have (every CUDA GPU since sm_20).
pub const MAX_BLOCK_THREADS: u32 = 1024;

/// The most dynamic shared memory per block on sm_90 (227 KiB); sm_80 allows 163 KiB.
pub const MAX_SHARED_BYTES: u32 = 227 * 1024;

/// A raw pointer that may cross into the launch closure, which every emulated thread shares.
///
/// Kernels take raw pointers to global memory; raw pointers are neither `Send` nor `Sync`, so a
/// test wraps its buffers in `SyncPtr` and calls [`SyncPtr::get`] inside the closure. Sharing
/// the pointer is what a GPU launch does; the kernel's own contract keeps the accesses sound.
#[derive(Debug)]
pub struct SyncPtr<T>(*mut T);

impl<T> Clone for SyncPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for SyncPtr<T> {}

// SAFETY: a SyncPtr is only an address; every dereference happens in kernel code under the
// kernel's safety contract, exactly as with a device pointer shared by all GPU threads.
unsafe impl<T> Send for SyncPtr<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for SyncPtr<T> {}

impl<T> SyncPtr<T> {
    /// Wraps any raw pointer (also null, for optional kernel arguments).
    pub fn new(p: *mut T) -> Self {
        SyncPtr(p)
    }

    /// A read-only buffer.
    pub fn of(s: &[T]) -> Self {
        SyncPtr(s.as_ptr() as *mut T)
    }

    /// A buffer the kernel writes.
    pub fn of_mut(s: &mut [T]) -> Self {
        SyncPtr(s.as_mut_ptr())
    }

    /// The pointer, typed as the kernel wants it (`*const U` or `*mut U` of a same-layout `U`).
    pub fn get<U: FromRaw<T>>(self) -> U {
        U::from_raw(self.0)
    }
}

/// Pointer types [`SyncPtr::get`] produces: `*const T`/`*mut T`, or the same address as another
/// element type (a test's `u16` buffer is a kernel's `*const F16`).
pub trait FromRaw<T> {
    fn from_raw(p: *mut T) -> Self;
}
impl<T, U> FromRaw<T> for *const U {
    fn from_raw(p: *mut T) -> Self {
        p as *const U
    }
}
impl<T, U> FromRaw<T> for *mut U {
    fn from_raw(p: *mut T) -> Self {
        p as *mut U
    }
}

/// Runs `body` as a kernel over `grid` blocks of `block` threads with `shared_mem_bytes` of
/// dynamic shared memory; `kernel` names it in errors (use the PTX symbol, `rmsnorm_f16`).
///
/// Blocks run one after another; the threads of a block run concurrently. Returns the first
/// error of the first failing block (the blocks after it do not run).
pub fn launch(
    grid: Dim3,
    block: Dim3,
    shared_mem_bytes: u32,
    kernel: &str,
    body: impl Fn() + Sync,
) -> Result<(), EmuError> {
    let invalid = |detail: String| EmuError::InvalidLaunch {
        kernel: kernel.into(),
        detail,
    };
    let threads = block.0 as u64 * block.1 as u64 * block.2 as u64;
    if grid.0 == 0 || grid.1 == 0 || grid.2 == 0 || threads == 0 {
        return Err(invalid(format!("empty grid {grid:?} or block {block:?}")));
    }
    if threads > MAX_BLOCK_THREADS as u64 {
        return Err(invalid(format!(
            "block {block:?} has {threads} threads (max {MAX_BLOCK_THREADS})"
        )));
    }
    if shared_mem_bytes > MAX_SHARED_BYTES {
        return Err(invalid(format!(
            "{shared_mem_bytes} bytes of shared memory (max {MAX_SHARED_BYTES})"
        )));
    }
    let only = std::env::var("NANO_EMU_BLOCK")
        .ok()
        .and_then(|v| v.parse::<u64>().ok());
    let mut linear = 0u64;
    for bz in 0..grid.2 {
        for by in 0..grid.1 {
            for bx in 0..grid.0 {
                if only.is_none_or(|b| b == linear) {
                    let b = Block::new(kernel, (bx, by, bz), block, grid, shared_mem_bytes);
                    run_block(&b, linear, &body)?;
                }
                linear += 1;
            }
        }
    }
    Ok(())
}

/// [`launch`] with a shape from [`crate::launch_shape`].
pub fn launch_shape(
    kernel: &str,
    shape: LaunchShape,
    body: impl Fn() + Sync,
) -> Result<(), EmuError> {
    launch(
        shape.grid,
        shape.block,
        shape.shared_mem_bytes,
        kernel,
        body,
    )
}

/// Runs every thread of one block to completion, one pooled worker per thread.
fn run_block(b: &Block, linear: u64, body: &(dyn Fn() + Sync)) -> Result<(), EmuError> {
    let workers = pool::checkout(b.threads as usize).map_err(|e| EmuError::InvalidLaunch {
        kernel: b.kernel.clone(),
        detail: format!("cannot start {} emulated threads: {e}", b.threads),
    })?;
    let latch = Arc::new(pool::Latch::new(b.threads));
    for (t, w) in (0..b.threads).zip(&workers) {
        let done = Arc::clone(&latch);
        let job: Box<dyn FnOnce() + Send + '_> = Box::new(move || {
            pool::name_thread(linear, t);
            // run_thread catches the kernel's panics; this catches the emulator's own, so the
            // latch always counts down and the launch cannot hang on a lost worker.
            let r =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_thread(b, t, body)));
            if r.is_err() {
                b.record(EmuError::Panic {
                    kernel: b.kernel.clone(),
                    block: b.idx,
                    thread: b.thread_dim3(t),
                    message: String::from("the emulator itself panicked (see stderr)"),
                });
            }
            done.count_down();
        });
        // SAFETY: the job borrows `b` and `body`, which outlive it: this function waits on the
        // latch, which the job counts down as the last thing it does with them.
        let job: pool::Job = unsafe { core::mem::transmute(job) };
        assert!(w.run(job), "an emulator worker thread is gone");
    }
    latch.wait();
    pool::give_back(workers);
    b.first_error().map_or(Ok(()), Err)
}

/// One emulated thread: installs its context, runs the kernel body, lands its async copies.
fn run_thread(b: &Block, t: u32, body: &(dyn Fn() + Sync)) {
    let ctx = ThreadCtx::new(b, t);
    ctx.install();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        body();
        ctx.cp_async_drain();
    }));
    ThreadCtx::uninstall();
    if let Err(payload) = result
        && !payload.is::<Abort>()
    {
        b.record(EmuError::Panic {
            kernel: b.kernel.clone(),
            block: b.idx,
            thread: ctx.tid,
            message: panic_message(payload),
        });
    }
    b.exit(t);
}

fn panic_message(payload: Box<dyn core::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(p) => p.downcast_ref::<&str>().map_or_else(
            || String::from("(non-string panic payload)"),
            |s| String::from(*s),
        ),
    }
}
