//! A caching GPU allocator: freed blocks go back to a per-size free list and are handed out
//! again, so steady-state inference allocates nothing from the driver.
//!
//! Blocks are rounded up (512 B below 1 MiB, 2 MiB above) and reused only for the same rounded
//! size. Everything runs on one stream, so a block freed after a kernel was queued can be
//! reused by a later launch without a sync: the stream orders them. Memory returns to the
//! driver only through [`CachingAllocator::empty_cache`] or when the backend is dropped.
//!
//! A CUDA graph replays its kernels on the addresses it was captured with, long after the
//! buffers of the capture were dropped. So while a [`Reservation`] records (during a capture),
//! every block handed out or freed joins it; freed reserved blocks go back to the reservation,
//! which serves only the allocations it records, and reach the common free lists only when the
//! reservation (the graph) is dropped. Nobody else can be handed memory a graph writes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cudarc::driver::{CudaContext, result, sys::CUdeviceptr};

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
    /// Buffers handed out so far, from the cache or the driver (a flat count means no
    /// allocations at all, e.g. while a CUDA graph replays).
    pub allocations: usize,
}

/// Free blocks by rounded size.
type FreeLists = HashMap<usize, Vec<CUdeviceptr>>;

#[derive(Default)]
struct Pools {
    free: FreeLists,
    stats: MemoryStats,
    /// Blocks held for a live reservation: address → reservation id.
    reserved: HashMap<CUdeviceptr, u64>,
    /// Each live reservation's free blocks (they count as `in_use`: a graph holds them).
    reservations: HashMap<u64, FreeLists>,
    /// The reservation that new allocations and frees join.
    recording: Option<u64>,
    next_reservation: u64,
}

/// The allocator; shared by every buffer of one backend.
pub struct CachingAllocator {
    ctx: Arc<CudaContext>,
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
    pub fn new(ctx: Arc<CudaContext>) -> Arc<Self> {
        Arc::new(CachingAllocator {
            ctx,
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
        pools.stats.allocations += 1;
        let recording = pools.recording;
        // A recording reservation first reuses its own blocks (already counted in use).
        if let Some(id) = recording {
            let own = pools.reservations.get_mut(&id);
            if let Some(p) = own.and_then(|r| r.get_mut(&size)).and_then(|v| v.pop()) {
                return Ok(DeviceBuffer {
                    ptr: p,
                    bytes: size,
                    allocator: self.clone(),
                });
            }
        }
        let reused = pools.free.get_mut(&size).and_then(|v| v.pop());
        let ptr = match reused {
            Some(p) => {
                pools.stats.cached -= size;
                p
            }
            None => {
                self.ctx.bind_to_thread().map_err(|source| Error::Cuda {
                    op: "alloc",
                    source,
                })?;
                // SAFETY: the context is current; the pointer is freed exactly once (empty_cache/Drop).
                let p = match unsafe { result::malloc_sync(size) } {
                    Ok(p) => p,
                    Err(_) => {
                        // Out of memory: give the cached blocks back and try once more.
                        Self::release(&mut pools);
                        // SAFETY: as above.
                        unsafe { result::malloc_sync(size) }.map_err(|source| Error::Cuda {
                            op: "alloc",
                            source,
                        })?
                    }
                };
                pools.stats.driver_allocations += 1;
                p
            }
        };
        pools.stats.in_use += size;
        pools.stats.peak = pools.stats.peak.max(pools.stats.in_use);
        if let Some(id) = recording {
            pools.reserved.insert(ptr, id);
        }
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

    /// Starts recording a reservation: until [`Reservation::stop`], every block allocated or
    /// freed is held for it. Errors if another reservation is recording.
    pub fn reserve(self: &Arc<Self>) -> Result<Reservation> {
        let mut pools = self.pools();
        if pools.recording.is_some() {
            return Err(Error::GraphUnavailable {
                reason: "another CUDA graph capture is recording allocations".into(),
            });
        }
        let id = pools.next_reservation;
        pools.next_reservation += 1;
        pools.recording = Some(id);
        pools.reservations.insert(id, FreeLists::new());
        Ok(Reservation {
            id,
            allocator: self.clone(),
        })
    }

    /// Returns every cached block to the driver.
    pub fn empty_cache(&self) {
        if self.ctx.bind_to_thread().is_ok() {
            Self::release(&mut self.pools());
        }
    }

    fn release(pools: &mut Pools) {
        for (size, ptrs) in pools.free.drain() {
            for p in ptrs {
                // SAFETY: p came from malloc_sync and is in no live buffer; a failure leaks it.
                let _ = unsafe { result::free_sync(p) };
                pools.stats.cached -= size;
            }
        }
    }
}

impl Drop for CachingAllocator {
    fn drop(&mut self) {
        // Queued work may still use cached blocks.
        let _ = self.ctx.synchronize();
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
        // A block freed while recording may have been used by captured work: reserve it too.
        let owner = match (pools.reserved.get(&self.ptr), pools.recording) {
            (Some(&id), _) => Some(id),
            (None, Some(id)) => {
                pools.reserved.insert(self.ptr, id);
                Some(id)
            }
            (None, None) => None,
        };
        match owner.and_then(|id| pools.reservations.get_mut(&id)) {
            Some(own) => own.entry(self.bytes).or_default().push(self.ptr),
            None => {
                pools.stats.in_use -= self.bytes;
                pools.stats.cached += self.bytes;
                pools.free.entry(self.bytes).or_default().push(self.ptr);
            }
        }
    }
}

/// Memory held for one CUDA graph (see the module docs): recording from
/// [`CachingAllocator::reserve`] to [`Reservation::stop`], released when dropped.
pub struct Reservation {
    id: u64,
    allocator: Arc<CachingAllocator>,
}

impl std::fmt::Debug for Reservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Reservation({})", self.id)
    }
}

impl Reservation {
    /// Stops recording: later allocations come from the common pool again.
    pub fn stop(&self) {
        let mut pools = self.allocator.pools();
        if pools.recording == Some(self.id) {
            pools.recording = None;
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.stop();
        let mut pools = self.allocator.pools();
        let id = self.id;
        // Free blocks go to the common lists; live ones will when their buffers drop.
        pools.reserved.retain(|_, owner| *owner != id);
        for (size, ptrs) in pools.reservations.remove(&id).unwrap_or_default() {
            for p in ptrs {
                pools.stats.in_use -= size;
                pools.stats.cached += size;
                pools.free.entry(size).or_default().push(p);
            }
        }
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
