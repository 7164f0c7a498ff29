//! Shared-memory operands of Hopper's `wgmma` (PTX ISA, "Asynchronous Warpgroup Level Matrix
//! Multiply": "Matrix Descriptor" and "Shared Memory Matrix Layout"), as the emulator reads them.
//!
//! A descriptor packs the operand's start address and two byte offsets (all `>> 4`) and the
//! swizzle mode; the emulator supports the one layout family the kernels use, the 128-byte
//! swizzle: the operand is made of 1024-byte atoms of 8 rows of 128 bytes, and the 16-byte chunk
//! `c` of row `r` of an atom sits at chunk `c ^ r` — the XOR takes address bits 4-6 with bits
//! 7-9, so atoms must be 1024-byte aligned (base offset 0).
//!
//! Element `(mn, k)` sits, before the swizzle, at
//! - K-major (k contiguous; `k < 64` past the start): `start + (mn / 8)·SBO + (mn % 8)·128 + 2k`;
//! - MN-major (mn contiguous, in 64-element panels):
//!   `start + (mn / 64)·LBO + (k / 8)·SBO + (k % 8)·128 + 2·(mn % 64)`.
//!
//! So SBO steps over 8 rows of the strided dimension, and an MN-major operand wider than 64
//! elements steps from panel to panel by LBO (a K-major operand's LBO is unused: one
//! instruction's 16 k stay inside a row). The accumulator of `m64nNk16` is `N / 8` `mma`
//! accumulator tiles side by side over each warp's 16 rows: warp `w % 4` of the warpgroup holds
//! rows `16·(w % 4)..`, and element `[j][i]` of a lane is row `g + 8·(i / 2)`, column
//! `8j + 2t + i % 2` (`g = lane / 4`, `t = lane % 4`). A from registers has the `mma.m16n8k16`
//! A layout over the warp's 16 rows ([`super::fragments::a_coord`]).

use std::format;
use std::string::String;

/// Whether the contiguous dimension of a shared-memory operand is K or M/N.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Major {
    K,
    Mn,
}

/// A decoded shared-memory matrix descriptor (byte values, not `>> 4`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SmemDesc {
    pub start: u32,
    pub lbo: u32,
    pub sbo: u32,
}

/// Swizzle-mode field of the 128-byte swizzle (bits 62-63).
const SWIZZLE_128B: u64 = 1;

impl SmemDesc {
    /// Decodes `desc`; only the 128-byte swizzle with base offset 0 is supported.
    pub fn decode(desc: u64) -> Result<SmemDesc, String> {
        let field = |lo: u32| ((desc >> lo) & 0x3fff) as u32 * 16;
        let (base_offset, swizzle) = ((desc >> 49) & 7, desc >> 62);
        if swizzle != SWIZZLE_128B || base_offset != 0 {
            return Err(format!(
                "wgmma descriptor {desc:#018x}: swizzle mode {swizzle}, base offset {base_offset} \
                 (the emulator supports the 128-byte swizzle with base offset 0)"
            ));
        }
        Ok(SmemDesc {
            start: field(0),
            lbo: field(16),
            sbo: field(32),
        })
    }

    /// The shared address of the 16-byte chunk that starts at element `(mn, k)`: eight elements
    /// along the contiguous dimension (`k % 8 == 0` for K-major, `mn % 8 == 0` for MN-major).
    pub fn chunk(&self, major: Major, mn: u32, k: u32) -> u32 {
        let plain = match major {
            Major::K => self.start + (mn / 8) * self.sbo + (mn % 8) * 128 + 2 * k,
            Major::Mn => {
                self.start
                    + (mn / 64) * self.lbo
                    + (k / 8) * self.sbo
                    + (k % 8) * 128
                    + 2 * (mn % 64)
            }
        };
        plain ^ (((plain >> 7) & 7) << 4)
    }
}
