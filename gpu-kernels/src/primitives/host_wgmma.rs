//! CPU twins of the warpgroup matrix instructions (`nvptx_wgmma.rs`).
//!
//! The emulator runs a `wgmma` synchronously when it is issued: the warp meets in one collective
//! (all 32 lanes, the same instruction; A fragments exchanged when A is in registers), then each
//! lane reads the shared-memory operands through the descriptors ([`crate::emu::wgmma`], every
//! 16-byte chunk a checked, race-tracked read of that lane) and computes its 64 accumulator
//! elements in f32, k in order. Fence, commit and wait have nothing left to do. A kernel that
//! overwrote an operand between the issue and the wait would pass here and fail on a GPU; the
//! race check still catches a write without a barrier between it and the read.

use super::softfloat::f16_bits_to_f32;
use crate::emu::fragments::a_coord;
use crate::emu::thread::with;
use crate::emu::wgmma::{Major, SmemDesc};
use crate::emu::{Collective, Payload};

/// Where a `wgmma`'s A operand comes from.
#[derive(Clone, Copy)]
enum OperandA {
    Smem(u64),
    Regs([u32; 4]),
}

/// The eight 16-bit elements of a 16-byte chunk, decoded.
fn chunk8(bytes: &[u8; 16], to_f32: fn(u16) -> f32) -> [f32; 8] {
    core::array::from_fn(|e| to_f32(u16::from_le_bytes([bytes[2 * e], bytes[2 * e + 1]])))
}

/// `m64n128k16` with f32 accumulators: `acc` is this lane's 64 elements (layout in
/// [`crate::emu::wgmma`]); B is K-major or MN-major per `b_major`.
fn wgmma_m64n128k16(
    acc: &mut [[f32; 4]; 16],
    a: OperandA,
    b: u64,
    b_major: Major,
    accumulate: bool,
    bf16: bool,
) {
    with(|t| {
        let lane = t.linear % 32;
        let (g, tq) = (lane / 4, lane % 4);
        let warp_row = 16 * ((t.linear / 32) % 4);
        let mut p: Payload = [0; 10];
        if let OperandA::Regs(r) = a {
            p[..4].copy_from_slice(&r);
        }
        let a_regs = matches!(a, OperandA::Regs(_));
        let all = t
            .block()
            .collective(t.linear, Collective::Wgmma { bf16, a_regs }, p);
        let to_f32 = if bf16 {
            super::bf16_to_f32
        } else {
            f16_bits_to_f32
        };
        let desc = |d: u64| SmemDesc::decode(d).unwrap_or_else(|e| panic!("{e}"));
        let read = |addr: u32| {
            let mut bytes = [0u8; 16];
            t.smem_read(addr, 16, &mut bytes);
            chunk8(&bytes, to_f32)
        };

        // This lane's two A rows (g and g + 8 of the warp's 16), all 16 k.
        let mut a_rows = [[0f32; 16]; 2];
        match a {
            OperandA::Smem(d) => {
                let d = desc(d);
                for (h, row) in a_rows.iter_mut().enumerate() {
                    for kc in 0..2 {
                        let mn = warp_row + g + 8 * h as u32;
                        let v = read(d.chunk(Major::K, mn, 8 * kc));
                        row[8 * kc as usize..][..8].copy_from_slice(&v);
                    }
                }
            }
            OperandA::Regs(_) => {
                for (l, w) in (0u32..).zip(&all) {
                    for r in 0..4 {
                        for h in 0..2 {
                            let (i, k) = a_coord(l, r, h);
                            if i % 8 == g {
                                let v = to_f32((w[r as usize] >> (16 * h)) as u16);
                                a_rows[(i / 8) as usize][k as usize] = v;
                            }
                        }
                    }
                }
            }
        }

        // B, 16 x 128.
        let d = desc(b);
        let mut bm = [[0f32; 128]; 16];
        match b_major {
            Major::K => {
                for n in 0..128u32 {
                    for kc in 0..2u32 {
                        let v = read(d.chunk(Major::K, n, 8 * kc));
                        for (e, x) in v.iter().enumerate() {
                            bm[8 * kc as usize + e][n as usize] = *x;
                        }
                    }
                }
            }
            Major::Mn => {
                for (k, row) in (0u32..).zip(bm.iter_mut()) {
                    for nc in 0..16u32 {
                        let v = read(d.chunk(Major::Mn, 8 * nc, k));
                        row[8 * nc as usize..][..8].copy_from_slice(&v);
                    }
                }
            }
        }

        for j in 0..16 {
            for i in 0..4 {
                let col = 8 * j + 2 * tq as usize + i % 2;
                let mut sum = if accumulate { acc[j][i] } else { 0.0 };
                for k in 0..16 {
                    sum += a_rows[i / 2][k] * bm[k][col];
                }
                acc[j][i] = sum;
            }
        }
    })
}

/// Generates the twins of one input type's `m64n128k16` wrappers.
macro_rules! wgmma_m64n128k16 {
    ($ss:ident, $rs:ident, $bf16:literal) => {
        /// Issues `D = A·B (+ D)` for a 64x128x16 tile, A and B K-major in shared memory (see
        /// `nvptx_wgmma.rs`); the emulator computes it at once.
        ///
        /// # Safety
        /// As the nvptx version: valid descriptors, the whole warpgroup, `acc` untouched until
        /// the wait.
        #[inline(always)]
        pub unsafe fn $ss(acc: &mut [[f32; 4]; 16], a: u64, b: u64, accumulate: bool) {
            wgmma_m64n128k16(acc, OperandA::Smem(a), b, Major::K, accumulate, $bf16);
        }

        /// Issues `D = A·B (+ D)` for a 64x128x16 tile, A in registers, B N-major in shared
        /// memory (see `nvptx_wgmma.rs`); the emulator computes it at once.
        ///
        /// # Safety
        /// As the shared-memory A form.
        #[inline(always)]
        pub unsafe fn $rs(acc: &mut [[f32; 4]; 16], a: [u32; 4], b: u64, accumulate: bool) {
            wgmma_m64n128k16(acc, OperandA::Regs(a), b, Major::Mn, accumulate, $bf16);
        }
    };
}

wgmma_m64n128k16!(wgmma_m64n128k16_ss_f16, wgmma_m64n128k16_rs_f16, false);
wgmma_m64n128k16!(wgmma_m64n128k16_ss_bf16, wgmma_m64n128k16_rs_bf16, true);

/// `wgmma.fence` (nothing to order: the emulator's `wgmma` runs when issued).
#[inline(always)]
pub fn wgmma_fence() {
    with(|_| ());
}

/// `wgmma.commit_group` (nothing in flight on the emulator).
#[inline(always)]
pub fn wgmma_commit_group() {
    with(|_| ());
}

/// `wgmma.wait_group N` (nothing in flight on the emulator).
#[inline(always)]
pub fn wgmma_wait_group<const N: u32>() {
    with(|_| ());
}

/// Pins `acc` after a wait (a compiler barrier on the GPU; nothing here).
#[inline(always)]
pub fn wgmma_hold(acc: &mut [[f32; 4]; 16]) {
    let _ = acc;
}

/// Pins register A fragments after a wait (a compiler barrier on the GPU; nothing here).
#[inline(always)]
pub fn wgmma_hold_a(a: &mut [[u32; 4]; 8]) {
    let _ = a;
}

/// `fence.proxy.async.shared::cta` (the emulator has one proxy).
#[inline(always)]
pub fn fence_proxy_async_shared() {
    with(|_| ());
}
