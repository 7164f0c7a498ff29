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

/// The bookkeeping, apart from the driver calls (so it is tested without a GPU).
impl Pools {
    /// A cached block for a request of rounded `size` — the recording reservation's own first —
    /// counted as handed out; `None` when the caller must get one from the driver (then
    /// [`Pools::add_new`]).
    fn take(&mut self, size: usize) -> Option<CUdeviceptr> {
        self.stats.allocations += 1;
        if let Some(id) = self.recording {
            let own = self
                .reservations
                .get_mut(&id)
                .and_then(|r| r.get_mut(&size));
            // Already counted in use: the reservation held it.
            if let Some(p) = own.and_then(Vec::pop) {
                return Some(p);
            }
        }
        let p = self.free.get_mut(&size).and_then(Vec::pop)?;
        self.stats.cached -= size;
        self.hand_out(p, size);
        Some(p)
    }

    /// Counts a block fresh from the driver as handed out.
    fn add_new(&mut self, p: CUdeviceptr, size: usize) {
        self.stats.driver_allocations += 1;
        self.hand_out(p, size);
    }

    fn hand_out(&mut self, p: CUdeviceptr, size: usize) {
        self.stats.in_use += size;
        self.stats.peak = self.stats.peak.max(self.stats.in_use);
        if let Some(id) = self.recording {
            self.reserved.insert(p, id);
        }
    }

    /// Takes back a freed block: to its reservation, or — freed while one records, so captured
    /// work may have used it — to the recording one, else to the common free lists.
    fn give_back(&mut self, p: CUdeviceptr, size: usize) {
        let owner = match (self.reserved.get(&p), self.recording) {
            (Some(&id), _) => Some(id),
            (None, Some(id)) => {
                self.reserved.insert(p, id);
                Some(id)
            }
            (None, None) => None,
        };
        match owner.and_then(|id| self.reservations.get_mut(&id)) {
            Some(own) => own.entry(size).or_default().push(p),
            None => {
                self.stats.in_use -= size;
                self.stats.cached += size;
                self.free.entry(size).or_default().push(p);
            }
        }
    }

    fn begin_reservation(&mut self) -> Result<u64> {
        if self.recording.is_some() {
            return Err(Error::GraphUnavailable {
                reason: "another CUDA graph capture is recording allocations".into(),
            });
        }
        let id = self.next_reservation;
        self.next_reservation += 1;
        self.recording = Some(id);
        self.reservations.insert(id, FreeLists::new());
        Ok(id)
    }

    fn stop_recording(&mut self, id: u64) {
        if self.recording == Some(id) {
            self.recording = None;
        }
    }

    /// Ends reservation `id`: its free blocks go to the common lists, its live ones will when
    /// their buffers drop.
    fn release_reservation(&mut self, id: u64) {
        self.stop_recording(id);
        self.reserved.retain(|_, owner| *owner != id);
        for (size, ptrs) in self.reservations.remove(&id).unwrap_or_default() {
            for p in ptrs {
                self.stats.in_use -= size;
                self.stats.cached += size;
                self.free.entry(size).or_default().push(p);
            }
        }
    }
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
        let ptr = match pools.take(size) {
            Some(p) => p,
            None => {
                let p = match self.memory.malloc(size) {
                    Ok(p) => p,
                    Err(_) => {
                        // Out of memory: give the cached blocks back and try once more.
                        self.release(&mut pools);
                        self.memory.malloc(size)?
                    }
                };
                pools.add_new(p, size);
                p
            }
        };
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
        let id = self.pools().begin_reservation()?;
        Ok(Reservation {
            id,
            allocator: self.clone(),
        })
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

    /// The addresses of the whole block the buffer holds.
    pub fn range(&self) -> std::ops::Range<CUdeviceptr> {
        self.ptr..self.ptr + self.bytes as CUdeviceptr
    }
}

impl Drop for DeviceBuffer {
    fn drop(&mut self) {
        self.allocator.pools().give_back(self.ptr, self.bytes);
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
        self.allocator.pools().stop_recording(self.id);
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.allocator.pools().release_reservation(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::{Pools, round_size};

    #[test]
    fn sizes_round_to_classes() {
        assert_eq!(round_size(0), 512);
        assert_eq!(round_size(1), 512);
        assert_eq!(round_size(513), 1024);
        assert_eq!(round_size(1 << 20), 2 << 20);
        assert_eq!(round_size((2 << 20) + 1), 4 << 20);
    }

    /// A request served by the cache, else "from the driver" at `fresh`.
    fn alloc(p: &mut Pools, size: usize, fresh: u64) -> u64 {
        p.take(size).unwrap_or_else(|| {
            p.add_new(fresh, size);
            fresh
        })
    }

    #[test]
    fn freed_blocks_are_reused_by_size() {
        let mut p = Pools::default();
        let a = alloc(&mut p, 512, 0x1000);
        p.give_back(a, 512);
        assert_eq!(p.take(1024), None, "another size class");
        assert_eq!(alloc(&mut p, 512, 0x2000), 0x1000);
        assert_eq!(p.stats.allocations, 3);
        assert_eq!(p.stats.driver_allocations, 1);
        assert_eq!((p.stats.in_use, p.stats.cached), (512, 0));
    }

    #[test]
    fn a_reservation_keeps_its_blocks_until_released() {
        let mut p = Pools::default();
        let before = alloc(&mut p, 512, 0x1000); // live across the capture
        let cached = alloc(&mut p, 512, 0x2000);
        p.give_back(cached, 512);
        let id = p.begin_reservation().unwrap();
        assert!(p.begin_reservation().is_err(), "one recording at a time");
        // The capture takes the cached block, frees it, takes it again (its own first), and
        // frees a block that was live before it began (captured work may have read it).
        let t1 = alloc(&mut p, 512, 0x3000);
        assert_eq!(t1, 0x2000);
        p.give_back(t1, 512);
        assert_eq!(alloc(&mut p, 512, 0x4000), 0x2000);
        let out = alloc(&mut p, 512, 0x5000); // fresh: outlives the capture (the logits)
        assert_eq!(out, 0x5000);
        p.give_back(0x2000, 512);
        p.give_back(before, 512);
        p.stop_recording(id);
        // Nothing the graph holds is handed to anyone else.
        assert_eq!(alloc(&mut p, 512, 0x6000), 0x6000);
        p.give_back(0x6000, 512);
        assert_eq!(alloc(&mut p, 512, 0x7000), 0x6000);
        p.give_back(out, 512); // freed after the capture: still the graph's
        assert_eq!(p.take(512), None);
        assert_eq!(p.stats.in_use, 4 * 512, "reserved blocks count as in use");
        // Released: the three reserved blocks are free for everyone.
        p.release_reservation(id);
        let mut got: Vec<u64> = (0..3).map(|_| p.take(512).unwrap()).collect();
        got.sort();
        assert_eq!(got, [0x1000, 0x2000, 0x5000]);
        assert_eq!(p.take(512), None);
        assert_eq!(p.stats.in_use, 4 * 512);
    }

    #[test]
    fn blocks_live_at_release_return_to_the_common_lists() {
        let mut p = Pools::default();
        let id = p.begin_reservation().unwrap();
        let out = alloc(&mut p, 1024, 0x1000);
        p.stop_recording(id);
        p.release_reservation(id);
        p.give_back(out, 1024);
        assert_eq!(p.take(1024), Some(0x1000));
        assert!(p.reserved.is_empty() && p.reservations.is_empty());
    }
}
