//! A caching GPU allocator: freed blocks go back to a per-size free list and are handed out
//! again, so steady-state inference allocates nothing from the driver.
//!
//! Blocks are rounded up (512 B below 1 MiB, 2 MiB above) and reused only for the same rounded
//! size. Everything runs on one stream, so a block freed after a kernel was queued can be
//! reused by a later launch without a sync: the stream orders them. Memory returns to the
//! driver only through [`CachingAllocator::empty_cache`] or when the backend is dropped.
//!
//! The emulated device uses the same allocator over host memory ([`Memory::Host`]), so its
//! buffers are reused and counted exactly as a GPU's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cudarc::driver::{CudaContext, result, sys::CUdeviceptr};

use crate::backend::emu;
use crate::error::{Error, Result};

/// Bytes in use and cached, for reports and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// Bytes held by live buffers (rounded sizes).
    pub in_use: usize,
    /// Highest `in_use` seen.
    pub peak: usize,
    /// Bytes in the free lists, ready for reuse.
    pub cached: usize,
    /// Blocks obtained from the driver so far (a flat count means no new allocations).
    pub driver_allocations: usize,
}

#[derive(Default)]
struct Pools {
    free: HashMap<usize, Vec<CUdeviceptr>>,
    stats: MemoryStats,
}

/// Where blocks come from: the GPU's driver, or host memory for the emulated device.
pub enum Memory {
    Driver(Arc<CudaContext>),
    Host,
}

impl Memory {
    /// A new block of `size` bytes.
    fn malloc(&self, size: usize) -> Result<CUdeviceptr> {
        match self {
            Memory::Driver(ctx) => {
                ctx.bind_to_thread().map_err(|source| Error::Cuda {
                    op: "alloc",
                    source,
                })?;
                // SAFETY: the context is current; the pointer is freed exactly once
                // (empty_cache/Drop).
                unsafe { result::malloc_sync(size) }.map_err(|source| Error::Cuda {
                    op: "alloc",
                    source,
                })
            }
            Memory::Host => emu::memory::alloc(size),
        }
    }

    /// Returns a block to where it came from; a failure leaks it.
    ///
    /// # Safety
    /// `ptr` came from `self.malloc(size)` and is in no live buffer.
    unsafe fn free(&self, ptr: CUdeviceptr, size: usize) {
        match self {
            // SAFETY: the caller's contract; the context is current (`release`'s callers).
            Memory::Driver(_) => drop(unsafe { result::free_sync(ptr) }),
            // SAFETY: the caller's contract.
            Memory::Host => unsafe { emu::memory::free(ptr, size) },
        }
    }

    /// Makes the driver context current (nothing to do for host memory).
    fn bind(&self) -> bool {
        match self {
            Memory::Driver(ctx) => ctx.bind_to_thread().is_ok(),
            Memory::Host => true,
        }
    }
}

/// The allocator; shared by every buffer of one backend.
pub struct CachingAllocator {
    memory: Memory,
    pools: Mutex<Pools>,
}

/// A block of device memory that returns to its allocator when dropped.
pub struct DeviceBuffer {
    ptr: CUdeviceptr,
    bytes: usize,
    allocator: Arc<CachingAllocator>,
}

impl std::fmt::Debug for DeviceBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeviceBuffer({:#x}, {} bytes)", self.ptr, self.bytes)
    }
}

/// The size class a request is served from.
fn round_size(bytes: usize) -> usize {
    const SMALL: usize = 512;
    const LARGE: usize = 2 << 20;
    if bytes < (1 << 20) {
        bytes.max(1).div_ceil(SMALL) * SMALL
    } else {
        bytes.div_ceil(LARGE) * LARGE
    }
}

impl CachingAllocator {
    pub fn new(memory: Memory) -> Arc<Self> {
        Arc::new(CachingAllocator {
            memory,
            pools: Mutex::new(Pools::default()),
        })
    }

    fn pools(&self) -> std::sync::MutexGuard<'_, Pools> {
        self.pools.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A buffer of at least `bytes` bytes (contents undefined).
    pub fn alloc(self: &Arc<Self>, bytes: usize) -> Result<DeviceBuffer> {
        let size = round_size(bytes);
        let mut pools = self.pools();
        let reused = pools.free.get_mut(&size).and_then(|v| v.pop());
        let ptr = match reused {
            Some(p) => {
                pools.stats.cached -= size;
                p
            }
            None => {
                let p = match self.memory.malloc(size) {
                    Ok(p) => p,
                    Err(_) => {
                        // Out of memory: give the cached blocks back and try once more.
                        self.release(&mut pools);
                        self.memory.malloc(size)?
                    }
                };
                pools.stats.driver_allocations += 1;
                p
            }
        };
        pools.stats.in_use += size;
        pools.stats.peak = pools.stats.peak.max(pools.stats.in_use);
        Ok(DeviceBuffer {
            ptr,
            bytes: size,
            allocator: self.clone(),
        })
    }

    /// Current statistics.
    pub fn stats(&self) -> MemoryStats {
        self.pools().stats
    }

    /// Returns every cached block to the driver.
    pub fn empty_cache(&self) {
        if self.memory.bind() {
            self.release(&mut self.pools());
        }
    }

    fn release(&self, pools: &mut Pools) {
        for (size, ptrs) in pools.free.drain() {
            for p in ptrs {
                // SAFETY: p came from malloc(size) and is in no live buffer.
                unsafe { self.memory.free(p, size) };
                pools.stats.cached -= size;
            }
        }
    }
}

impl Drop for CachingAllocator {
    fn drop(&mut self) {
        // Queued work may still use cached blocks.
        if let Memory::Driver(ctx) = &self.memory {
            let _ = ctx.synchronize();
        }
        self.empty_cache();
    }
}

impl DeviceBuffer {
    /// The device address.
    pub fn ptr(&self) -> CUdeviceptr {
        self.ptr
    }
}

impl Drop for DeviceBuffer {
    fn drop(&mut self) {
        let mut pools = self.allocator.pools();
        pools.stats.in_use -= self.bytes;
        pools.stats.cached += self.bytes;
        pools.free.entry(self.bytes).or_default().push(self.ptr);
    }
}

#[cfg(test)]
mod tests {
    use super::round_size;

    #[test]
    fn sizes_round_to_classes() {
        assert_eq!(round_size(0), 512);
        assert_eq!(round_size(1), 512);
        assert_eq!(round_size(513), 1024);
        assert_eq!(round_size(1 << 20), 2 << 20);
        assert_eq!(round_size((2 << 20) + 1), 4 << 20);
    }
}
