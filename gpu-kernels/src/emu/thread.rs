//! The emulated thread: its ids (a thread-local pointer to [`ThreadCtx`]), its view of shared
//! memory and its queue of in-flight `cp.async` copies.

use core::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::vec::Vec;

use super::block::{Block, lock};
use super::error::Dim3;

/// One 16-byte `cp.async` copy waiting to land in shared memory.
#[derive(Clone, Copy)]
struct PendingCopy {
    smem: u32,
    src: *const u8,
    src_bytes: u32,
}

/// This thread's async copies: the open (uncommitted) group and the committed groups, oldest
/// first. A copy lands — reads global memory and writes shared memory, race-checked as this
/// thread's write — only when a wait retires its group, so a kernel that reads the tile before
/// waiting sees the old bytes, as it could on the GPU.
#[derive(Default)]
struct CpAsync {
    open: Vec<PendingCopy>,
    committed: VecDeque<Vec<PendingCopy>>,
}

/// Per-thread state, on the thread's own stack while the kernel body runs.
pub(crate) struct ThreadCtx {
    block: *const Block,
    pub tid: Dim3,
    /// `x + y * blockDim.x + z * blockDim.x * blockDim.y`.
    pub linear: u32,
    cp_async: RefCell<CpAsync>,
}

std::thread_local! {
    static CURRENT: Cell<*const ThreadCtx> = const { Cell::new(core::ptr::null()) };
}

impl ThreadCtx {
    pub fn new(block: &Block, linear: u32) -> Self {
        ThreadCtx {
            block,
            tid: block.thread_dim3(linear),
            linear,
            cp_async: RefCell::new(CpAsync::default()),
        }
    }

    /// The block this thread belongs to.
    pub fn block(&self) -> &Block {
        // SAFETY: `launch` keeps the block alive until every one of its threads has joined,
        // and a ThreadCtx never outlives its thread.
        unsafe { &*self.block }
    }

    /// Makes `self` the calling thread's context until [`ThreadCtx::uninstall`].
    pub fn install(&self) {
        CURRENT.with(|c| c.set(self));
    }

    pub fn uninstall() {
        CURRENT.with(|c| c.set(core::ptr::null()));
    }

    /// Reads shared bytes at `addr` (bounds-, alignment- and race-checked).
    pub fn smem_read(&self, addr: u32, align: u32, out: &mut [u8]) {
        let b = self.block();
        b.check_abort();
        let r = lock(&b.smem).read(self.linear as u16, addr, align, out);
        if let Err(v) = r {
            b.smem_violation(self.linear, v);
        }
    }

    /// Writes shared bytes at `addr` (bounds-, alignment- and race-checked).
    pub fn smem_write(&self, addr: u32, align: u32, bytes: &[u8]) {
        let b = self.block();
        b.check_abort();
        let r = lock(&b.smem).write(self.linear as u16, addr, align, bytes);
        if let Err(v) = r {
            b.smem_violation(self.linear, v);
        }
    }

    /// Queues a `cp.async` of `src_bytes` (the rest zero-filled) into 16 shared bytes at
    /// `smem`; the destination is checked now, so a bad address points at the issuing line.
    pub fn cp_async(&self, smem: u32, src: *const u8, src_bytes: u32) {
        let b = self.block();
        b.check_abort();
        let r = lock(&b.smem).check(smem, 16, 16);
        if let Err(v) = r {
            b.smem_violation(self.linear, v);
        }
        assert!(
            (src as usize).is_multiple_of(16),
            "cp.async source {src:p} is not 16-byte aligned"
        );
        assert!(src_bytes <= 16, "cp.async src-size {src_bytes} exceeds 16");
        self.cp_async.borrow_mut().open.push(PendingCopy {
            smem,
            src,
            src_bytes,
        });
    }

    /// `cp.async.commit_group`.
    pub fn cp_async_commit(&self) {
        let mut q = self.cp_async.borrow_mut();
        let group = core::mem::take(&mut q.open);
        q.committed.push_back(group);
    }

    /// `cp.async.wait_group n`: lands the oldest committed groups until `n` remain.
    pub fn cp_async_wait(&self, n: usize) {
        loop {
            let group = {
                let mut q = self.cp_async.borrow_mut();
                if q.committed.len() <= n {
                    return;
                }
                q.committed.pop_front().expect("len > n >= 0")
            };
            for c in group {
                self.land(c);
            }
        }
    }

    /// Lands every copy still in flight (`cp.async.wait_all`, and at thread exit).
    pub fn cp_async_drain(&self) {
        self.cp_async_commit();
        self.cp_async_wait(0);
    }

    fn land(&self, c: PendingCopy) {
        let mut bytes = [0u8; 16];
        // SAFETY: the kernel's contract for `cp_async_16[_zfill]` makes `src` valid for
        // `src_bytes` reads until the copy completes, which is now.
        unsafe { core::ptr::copy_nonoverlapping(c.src, bytes.as_mut_ptr(), c.src_bytes as usize) };
        self.smem_write(c.smem, 16, &bytes);
    }
}

/// Runs `f` with the calling emulated thread's context.
///
/// # Panics
/// Outside [`launch`](super::launch): a kernel primitive needs an emulated thread.
pub(crate) fn with<R>(f: impl FnOnce(&ThreadCtx) -> R) -> R {
    let p = CURRENT.with(|c| c.get());
    assert!(
        !p.is_null(),
        "a GPU kernel primitive was called outside nano_infer_kernels::emu::launch"
    );
    // SAFETY: `install` stored a pointer to a ThreadCtx that lives on this thread's stack
    // until `uninstall`, which runs before it is dropped.
    f(unsafe { &*p })
}
