//! CPU twins of the tensor-core and async-copy primitives (`nvptx_tc.rs`).
//!
//! `ldmatrix`: each participating lane reads its own 16-byte row from shared memory (checked
//! and race-tracked as that lane's read), the warp exchanges the rows, and each lane assembles
//! its registers with [`crate::emu::fragments::ldmatrix_reg`]. `mma`: the warp exchanges all
//! fragments and each lane computes its four outputs with
//! [`crate::emu::fragments::mma_m16n8k16`]. `cp.async`: a per-thread queue; copies land when a
//! wait retires their group.

use super::softfloat::f16_bits_to_f32;
use crate::emu::fragments::{MmaFragments, ldmatrix_reg, mma_m16n8k16};
use crate::emu::thread::with;
use crate::emu::{Collective, Payload};

/// `ldmatrix` of `NUM` 8x8 matrices: lanes `0..8·NUM` supply row addresses.
fn ldmatrix<const NUM: usize>(addr: u32, trans: bool) -> [u32; NUM] {
    with(|t| {
        let lane = t.linear % 32;
        let mut p: Payload = [0; 10];
        if (lane as usize) < 8 * NUM {
            let mut row = [0u8; 16];
            t.smem_read(addr, 16, &mut row);
            for (w, bytes) in p.iter_mut().zip(row.chunks_exact(4)) {
                *w = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
            }
        }
        let op = Collective::Ldmatrix {
            num: NUM as u32,
            trans,
        };
        let all = t.block().collective(t.linear, op, p);
        core::array::from_fn(|m| {
            let rows = core::array::from_fn(|i| {
                let w = &all[8 * m + i];
                [w[0], w[1], w[2], w[3]]
            });
            ldmatrix_reg(&rows, lane, trans)
        })
    })
}

/// One 8x8 b16 matrix from shared memory (rows addressed by lanes 0-7) into the mma fragment layout.
///
/// # Safety
/// Every participating lane's `addr` is a 16-byte aligned shared address of an 8-element b16
/// row inside the dynamic shared memory; all 32 lanes execute it (full warp).
#[inline(always)]
pub unsafe fn ldmatrix_x1(addr: u32) -> [u32; 1] {
    ldmatrix::<1>(addr, false)
}

/// Two 8x8 b16 matrices (rows addressed by lanes 0-15).
///
/// # Safety
/// As [`ldmatrix_x1`].
#[inline(always)]
pub unsafe fn ldmatrix_x2(addr: u32) -> [u32; 2] {
    ldmatrix::<2>(addr, false)
}

/// Four 8x8 b16 matrices (rows addressed by lanes 0-31).
///
/// # Safety
/// As [`ldmatrix_x1`].
#[inline(always)]
pub unsafe fn ldmatrix_x4(addr: u32) -> [u32; 4] {
    ldmatrix::<4>(addr, false)
}

/// As [`ldmatrix_x1`], each matrix transposed.
///
/// # Safety
/// As [`ldmatrix_x1`].
#[inline(always)]
pub unsafe fn ldmatrix_x1_trans(addr: u32) -> [u32; 1] {
    ldmatrix::<1>(addr, true)
}

/// As [`ldmatrix_x2`], each matrix transposed.
///
/// # Safety
/// As [`ldmatrix_x1`].
#[inline(always)]
pub unsafe fn ldmatrix_x2_trans(addr: u32) -> [u32; 2] {
    ldmatrix::<2>(addr, true)
}

/// As [`ldmatrix_x4`], each matrix transposed.
///
/// # Safety
/// As [`ldmatrix_x1`].
#[inline(always)]
pub unsafe fn ldmatrix_x4_trans(addr: u32) -> [u32; 4] {
    ldmatrix::<4>(addr, true)
}

/// The warp exchange and scalar product behind both `mma` twins.
fn mma(a: [u32; 4], b: [u32; 2], c: [f32; 4], bf16: bool) -> [f32; 4] {
    with(|t| {
        let mut p: Payload = [0; 10];
        p[..4].copy_from_slice(&a);
        p[4..6].copy_from_slice(&b);
        for i in 0..4 {
            p[6 + i] = c[i].to_bits();
        }
        let all = t.block().collective(t.linear, Collective::Mma { bf16 }, p);
        let frags: [MmaFragments; 32] = core::array::from_fn(|l| {
            let w = &all[l];
            MmaFragments {
                a: [w[0], w[1], w[2], w[3]],
                b: [w[4], w[5]],
                c: core::array::from_fn(|i| f32::from_bits(w[6 + i])),
            }
        });
        let decode = if bf16 {
            super::bf16_to_f32
        } else {
            f16_bits_to_f32
        };
        mma_m16n8k16(&frags, t.linear % 32, decode)
    })
}

/// Tensor-core D = A·B + C for a 16x8x16 tile of f16 inputs, f32 accumulators.
///
/// `a`: four packed pairs of the 16x16 A tile (row-major), `b`: two packed pairs of the 16x8 B
/// tile (column-major), `c`: four f32 of the 16x8 accumulator; returns D = A·B + C. Every lane
/// of the warp must execute it (full warp, uniform control flow).
#[inline(always)]
pub fn mma_m16n8k16_f16(a: [u32; 4], b: [u32; 2], c: [f32; 4]) -> [f32; 4] {
    mma(a, b, c, false)
}

/// Tensor-core D = A·B + C for a 16x8x16 tile of bf16 inputs, f32 accumulators.
///
/// Operands as [`mma_m16n8k16_f16`].
#[inline(always)]
pub fn mma_m16n8k16_bf16(a: [u32; 4], b: [u32; 2], c: [f32; 4]) -> [f32; 4] {
    mma(a, b, c, true)
}

/// Starts an asynchronous 16-byte copy global → shared. The data is in shared memory only
/// after the copy's group is waited for ([`cp_async_wait_group`]) and, for other threads, after
/// a barrier.
///
/// # Safety
/// `smem` is a 16-byte aligned shared address with 16 bytes inside the dynamic shared memory;
/// `src` is valid for reads of 16 bytes, 16-byte aligned, until the copy completes.
#[inline(always)]
pub unsafe fn cp_async_16(smem: u32, src: *const u8) {
    with(|t| t.cp_async(smem, src, 16));
}

/// As [`cp_async_16`], reading only the first `src_bytes` (0..=16) bytes of `src` and filling
/// the rest of the 16 shared bytes with zeros.
///
/// # Safety
/// As [`cp_async_16`], with `src` valid for `src_bytes` bytes.
#[inline(always)]
pub unsafe fn cp_async_16_zfill(smem: u32, src: *const u8, src_bytes: u32) {
    with(|t| t.cp_async(smem, src, src_bytes));
}

/// Closes the group of this thread's `cp.async` copies issued since the last commit.
#[inline(always)]
pub fn cp_async_commit_group() {
    with(|t| t.cp_async_commit());
}

/// Waits until at most `N` of this thread's committed copy groups are still in flight.
#[inline(always)]
pub fn cp_async_wait_group<const N: u32>() {
    with(|t| t.cp_async_wait(N as usize));
}

/// Waits for all of this thread's copies (committed or not).
#[inline(always)]
pub fn cp_async_wait_all() {
    with(|t| t.cp_async_drain());
}
