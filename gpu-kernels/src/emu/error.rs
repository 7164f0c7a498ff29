//! What the emulator reports: one variant per kind of kernel bug, each naming the kernel, the
//! block and the thread (as `(x, y, z)` indices) so a failing test points at the culprit.

use std::fmt;
use std::string::String;

/// `(x, y, z)` of a block or thread index or dimension.
pub type Dim3 = (u32, u32, u32);

/// How two accesses to one shared-memory byte within one barrier interval conflict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RaceKind {
    /// A thread read a byte another thread wrote since the last barrier.
    ReadAfterWrite,
    /// A thread wrote a byte another thread read since the last barrier.
    WriteAfterRead,
    /// Two threads wrote the same byte since the last barrier.
    WriteAfterWrite,
}

/// A kernel bug found by [`launch`](super::launch), or a launch it cannot run.
#[derive(Clone, Debug, PartialEq)]
pub enum EmuError {
    /// A shared-memory access outside `[base, base + shared_mem_bytes)`.
    SharedOutOfBounds {
        kernel: String,
        block: Dim3,
        thread: Dim3,
        /// First byte address of the access (shared state space).
        addr: u32,
        /// Bytes accessed.
        len: u32,
        /// The launch's dynamic shared memory, in bytes.
        size: u32,
    },
    /// A shared-memory access whose address is not a multiple of its size.
    SharedMisaligned {
        kernel: String,
        block: Dim3,
        thread: Dim3,
        addr: u32,
        align: u32,
    },
    /// Two threads touched one shared byte, at least one writing, with no barrier in between.
    Race {
        kernel: String,
        block: Dim3,
        /// The thread whose access revealed the conflict.
        thread: Dim3,
        /// A thread whose earlier access (in the same barrier interval) conflicts.
        other: Dim3,
        addr: u32,
        kind: RaceKind,
    },
    /// `sync_threads` not reached by every thread of the block at the same call site (some
    /// exited, or waited at a different `sync_threads`).
    BarrierDivergence {
        kernel: String,
        block: Dim3,
        thread: Dim3,
        detail: String,
    },
    /// A full-warp collective (shuffle, vote, `ldmatrix`, `mma`) not executed by all 32 lanes,
    /// or lanes executing different collectives.
    WarpDivergence {
        kernel: String,
        block: Dim3,
        thread: Dim3,
        detail: String,
    },
    /// Every live thread of a block waits and none can proceed (e.g. a barrier inside a
    /// warp-divergent branch that also holds a shuffle).
    Deadlock {
        kernel: String,
        block: Dim3,
        thread: Dim3,
        detail: String,
    },
    /// The kernel body panicked (a host-side assertion, an overflow in a debug build, a
    /// misaligned global vector access).
    Panic {
        kernel: String,
        block: Dim3,
        thread: Dim3,
        message: String,
    },
    /// A launch configuration the GPU would refuse (empty grid, more than 1024 threads, too much
    /// shared memory) or the host could not run (thread creation failed).
    InvalidLaunch { kernel: String, detail: String },
}

impl EmuError {
    /// The kernel name given to `launch`.
    pub fn kernel(&self) -> &str {
        match self {
            EmuError::SharedOutOfBounds { kernel, .. }
            | EmuError::SharedMisaligned { kernel, .. }
            | EmuError::Race { kernel, .. }
            | EmuError::BarrierDivergence { kernel, .. }
            | EmuError::WarpDivergence { kernel, .. }
            | EmuError::Deadlock { kernel, .. }
            | EmuError::Panic { kernel, .. }
            | EmuError::InvalidLaunch { kernel, .. } => kernel,
        }
    }
}

impl fmt::Display for EmuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EmuError::SharedOutOfBounds {
                kernel,
                block,
                thread,
                addr,
                len,
                size,
            } => write!(
                f,
                "{kernel}: block {block:?} thread {thread:?}: shared-memory access of {len} bytes \
                 at {addr:#x} is outside the {size} bytes of dynamic shared memory"
            ),
            EmuError::SharedMisaligned {
                kernel,
                block,
                thread,
                addr,
                align,
            } => write!(
                f,
                "{kernel}: block {block:?} thread {thread:?}: shared address {addr:#x} is not \
                 {align}-byte aligned"
            ),
            EmuError::Race {
                kernel,
                block,
                thread,
                other,
                addr,
                kind,
            } => write!(
                f,
                "{kernel}: block {block:?}: shared-memory race ({kind:?}) at {addr:#x} between \
                 thread {thread:?} and thread {other:?} with no sync_threads in between"
            ),
            EmuError::BarrierDivergence {
                kernel,
                block,
                thread,
                detail,
            } => write!(
                f,
                "{kernel}: block {block:?} thread {thread:?}: divergent barrier: {detail}"
            ),
            EmuError::WarpDivergence {
                kernel,
                block,
                thread,
                detail,
            } => write!(
                f,
                "{kernel}: block {block:?} thread {thread:?}: divergent warp collective: {detail}"
            ),
            EmuError::Deadlock {
                kernel,
                block,
                thread,
                detail,
            } => write!(
                f,
                "{kernel}: block {block:?} thread {thread:?}: deadlock: {detail}"
            ),
            EmuError::Panic {
                kernel,
                block,
                thread,
                message,
            } => write!(
                f,
                "{kernel}: block {block:?} thread {thread:?} panicked: {message}"
            ),
            EmuError::InvalidLaunch { kernel, detail } => {
                write!(f, "{kernel}: invalid launch: {detail}")
            }
        }
    }
}

impl std::error::Error for EmuError {}
