//! One block's dynamic shared memory: bytes, bounds and alignment checks, and a race detector.
//!
//! Race detection is per byte and per barrier interval ("epoch"). Every byte keeps a shadow
//! entry: the epoch it was last touched in, the thread that wrote it in that epoch and up to two
//! distinct threads that read it. Within one epoch a read of a byte another thread wrote, a
//! write of a byte another thread read, and two writers are each a race. The verdict depends
//! only on the *set* of accesses between two barriers, not on the order the host threads happen
//! to run them in: whichever of two conflicting accesses comes second sees the first in the
//! shadow. So a missing `sync_threads` is reported on every run.
//!
//! Memory starts filled with `0xff` bytes (NaN as f32, f16 and bf16), so reading a location
//! nobody wrote shows up as NaN rather than as a plausible zero.

use std::vec;
use std::vec::Vec;

use super::error::RaceKind;

/// Marks "no thread" in a shadow entry (blocks have at most 1024 threads).
const NONE: u16 = u16::MAX;

#[derive(Clone, Copy)]
struct Shadow {
    epoch: u32,
    writer: u16,
    reader: u16,
    reader2: u16,
}

const FRESH: Shadow = Shadow {
    epoch: 0,
    writer: NONE,
    reader: NONE,
    reader2: NONE,
};

/// Why an access was refused (the block turns it into an [`EmuError`](super::EmuError)).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Violation {
    OutOfBounds {
        addr: u32,
        len: u32,
    },
    Misaligned {
        addr: u32,
        align: u32,
    },
    Race {
        addr: u32,
        other: u16,
        kind: RaceKind,
    },
}

/// Shared memory of one block; every access goes through the block's mutex around it.
pub(crate) struct SharedMem {
    /// Shared-space address of byte 0 (what `dyn_smem_base` returns).
    pub base: u32,
    data: Vec<u8>,
    shadow: Vec<Shadow>,
    /// Barrier interval; bumped by every completed `sync_threads`. Starts at 1 so that the
    /// `FRESH` entries (epoch 0) are stale.
    epoch: u32,
}

impl SharedMem {
    pub fn new(base: u32, bytes: u32) -> Self {
        SharedMem {
            base,
            data: vec![0xff; bytes as usize],
            shadow: vec![FRESH; bytes as usize],
            epoch: 1,
        }
    }

    /// Bytes of dynamic shared memory.
    pub fn size(&self) -> u32 {
        self.data.len() as u32
    }

    /// Starts a new barrier interval: earlier accesses no longer conflict.
    pub fn next_epoch(&mut self) {
        self.epoch += 1;
    }

    /// Checks bounds and alignment; returns the offset into `data`.
    pub fn check(&self, addr: u32, len: u32, align: u32) -> Result<usize, Violation> {
        let end = addr as u64 + len as u64;
        if addr < self.base || end > self.base as u64 + self.data.len() as u64 {
            return Err(Violation::OutOfBounds { addr, len });
        }
        if !addr.is_multiple_of(align) {
            return Err(Violation::Misaligned { addr, align });
        }
        Ok((addr - self.base) as usize)
    }

    /// Reads `out.len()` bytes at `addr` on behalf of thread `t` (linear index).
    pub fn read(&mut self, t: u16, addr: u32, align: u32, out: &mut [u8]) -> Result<(), Violation> {
        let off = self.check(addr, out.len() as u32, align)?;
        for i in 0..out.len() {
            let s = self.entry(off + i);
            if s.writer != NONE && s.writer != t {
                return Err(Violation::Race {
                    addr: addr + i as u32,
                    other: s.writer,
                    kind: RaceKind::ReadAfterWrite,
                });
            }
            if s.reader == NONE {
                s.reader = t;
            } else if s.reader != t && s.reader2 == NONE {
                s.reader2 = t;
            }
        }
        out.copy_from_slice(&self.data[off..off + out.len()]);
        Ok(())
    }

    /// Writes `bytes` at `addr` on behalf of thread `t`.
    pub fn write(&mut self, t: u16, addr: u32, align: u32, bytes: &[u8]) -> Result<(), Violation> {
        let off = self.check(addr, bytes.len() as u32, align)?;
        for i in 0..bytes.len() {
            let s = self.entry(off + i);
            let conflict = if s.writer != NONE && s.writer != t {
                Some((s.writer, RaceKind::WriteAfterWrite))
            } else if s.reader != NONE && s.reader != t {
                Some((s.reader, RaceKind::WriteAfterRead))
            } else if s.reader2 != NONE && s.reader2 != t {
                Some((s.reader2, RaceKind::WriteAfterRead))
            } else {
                None
            };
            if let Some((other, kind)) = conflict {
                return Err(Violation::Race {
                    addr: addr + i as u32,
                    other,
                    kind,
                });
            }
            s.writer = t;
        }
        self.data[off..off + bytes.len()].copy_from_slice(bytes);
        Ok(())
    }

    /// The shadow entry of byte `i`, reset if it belongs to an earlier epoch.
    fn entry(&mut self, i: usize) -> &mut Shadow {
        let epoch = self.epoch;
        let s = &mut self.shadow[i];
        if s.epoch != epoch {
            *s = Shadow { epoch, ..FRESH };
        }
        s
    }
}
