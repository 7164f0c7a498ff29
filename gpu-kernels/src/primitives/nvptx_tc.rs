//! Tensor-core and async-copy instructions (sm_80+): `ldmatrix`, `mma.sync.m16n8k16`,
//! `cp.async` with its group commit/wait. `host_tc.rs` holds the CPU twins.
//!
//! Fragment layouts (which lane holds which matrix element) are those of the PTX ISA,
//! "Matrix fragments for mma.m16n8k16 with floating point type" and "ldmatrix"; the emulator
//! spells them out in `crate::emu::fragments` (host builds).

use core::arch::asm;

/// Generates an `ldmatrix` wrapper for `.x1`/`.x2`/`.x4`, with or without `.trans`.
macro_rules! ldmatrix {
    ($name:ident, $n:literal, $instr:literal, $doc:literal, [$($r:ident),+]) => {
        #[doc = $doc]
        ///
        /// # Safety
        /// Every participating lane's `addr` is a 16-byte aligned shared address of an 8-element
        /// b16 row inside the dynamic shared memory; all 32 lanes execute it (full warp).
        #[inline(always)]
        pub unsafe fn $name(addr: u32) -> [u32; $n] {
            $( let $r: u32; )+
            // SAFETY: the caller guarantees valid row addresses and a converged warp.
            unsafe { asm!($instr, $($r = out(reg32) $r,)+ a = in(reg32) addr) };
            [$($r),+]
        }
    };
}

ldmatrix!(
    ldmatrix_x1,
    1,
    "ldmatrix.sync.aligned.m8n8.x1.shared.b16 {{{r0}}}, [{a}];",
    "One 8x8 b16 matrix from shared memory (rows addressed by lanes 0-7) into the mma fragment layout.",
    [r0]
);
ldmatrix!(
    ldmatrix_x2,
    2,
    "ldmatrix.sync.aligned.m8n8.x2.shared.b16 {{{r0}, {r1}}}, [{a}];",
    "Two 8x8 b16 matrices (rows addressed by lanes 0-15).",
    [r0, r1]
);
ldmatrix!(
    ldmatrix_x4,
    4,
    "ldmatrix.sync.aligned.m8n8.x4.shared.b16 {{{r0}, {r1}, {r2}, {r3}}}, [{a}];",
    "Four 8x8 b16 matrices (rows addressed by lanes 0-31).",
    [r0, r1, r2, r3]
);
ldmatrix!(
    ldmatrix_x1_trans,
    1,
    "ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {{{r0}}}, [{a}];",
    "As [`ldmatrix_x1`], each matrix transposed.",
    [r0]
);
ldmatrix!(
    ldmatrix_x2_trans,
    2,
    "ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {{{r0}, {r1}}}, [{a}];",
    "As [`ldmatrix_x2`], each matrix transposed.",
    [r0, r1]
);
ldmatrix!(
    ldmatrix_x4_trans,
    4,
    "ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {{{r0}, {r1}, {r2}, {r3}}}, [{a}];",
    "As [`ldmatrix_x4`], each matrix transposed.",
    [r0, r1, r2, r3]
);

/// Generates an `mma.sync.m16n8k16` wrapper for one input type, f32 accumulators.
macro_rules! mma_m16n8k16 {
    ($name:ident, $instr:literal, $doc:literal) => {
        #[doc = $doc]
        ///
        /// `a`: four packed pairs of the 16x16 A tile (row-major), `b`: two packed pairs of the
        /// 16x8 B tile (column-major), `c`: four f32 of the 16x8 accumulator; returns D = A·B + C.
        /// Every lane of the warp must execute it (full warp, uniform control flow).
        #[inline(always)]
        pub fn $name(a: [u32; 4], b: [u32; 2], c: [f32; 4]) -> [f32; 4] {
            let (d0, d1, d2, d3): (f32, f32, f32, f32);
            // SAFETY: pure register operation over the converged warp.
            unsafe {
                asm!($instr,
                     d0 = out(reg32) d0, d1 = out(reg32) d1, d2 = out(reg32) d2, d3 = out(reg32) d3,
                     a0 = in(reg32) a[0], a1 = in(reg32) a[1], a2 = in(reg32) a[2], a3 = in(reg32) a[3],
                     b0 = in(reg32) b[0], b1 = in(reg32) b[1],
                     c0 = in(reg32) c[0], c1 = in(reg32) c[1], c2 = in(reg32) c[2], c3 = in(reg32) c[3]);
            }
            [d0, d1, d2, d3]
        }
    };
}

mma_m16n8k16!(
    mma_m16n8k16_f16,
    "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {{{d0}, {d1}, {d2}, {d3}}}, {{{a0}, {a1}, {a2}, {a3}}}, {{{b0}, {b1}}}, {{{c0}, {c1}, {c2}, {c3}}};",
    "Tensor-core D = A·B + C for a 16x8x16 tile of f16 inputs, f32 accumulators."
);
mma_m16n8k16!(
    mma_m16n8k16_bf16,
    "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {{{d0}, {d1}, {d2}, {d3}}}, {{{a0}, {a1}, {a2}, {a3}}}, {{{b0}, {b1}}}, {{{c0}, {c1}, {c2}, {c3}}};",
    "Tensor-core D = A·B + C for a 16x8x16 tile of bf16 inputs, f32 accumulators."
);

/// Starts an asynchronous 16-byte copy global → shared (`cp.async.cg`, bypassing L1). The data
/// is in shared memory only after the copy's group is waited for ([`cp_async_wait_group`]) and,
/// for other threads, after a barrier.
///
/// # Safety
/// `smem` is a 16-byte aligned shared address with 16 bytes inside the dynamic shared memory;
/// `src` is valid for reads of 16 bytes, 16-byte aligned, until the copy completes.
#[inline(always)]
pub unsafe fn cp_async_16(smem: u32, src: *const u8) {
    // SAFETY: the caller guarantees both ranges.
    unsafe {
        asm!("cp.async.cg.shared.global [{s}], [{g}], 16;", s = in(reg32) smem, g = in(reg64) src)
    };
}

/// As [`cp_async_16`], reading only the first `src_bytes` (0..=16) bytes of `src` and filling
/// the rest of the 16 shared bytes with zeros (out-of-range tile rows and columns).
///
/// # Safety
/// As [`cp_async_16`], with `src` valid for `src_bytes` bytes.
#[inline(always)]
pub unsafe fn cp_async_16_zfill(smem: u32, src: *const u8, src_bytes: u32) {
    // SAFETY: the caller guarantees both ranges.
    unsafe {
        asm!("cp.async.cg.shared.global [{s}], [{g}], 16, {n};",
             s = in(reg32) smem, g = in(reg64) src, n = in(reg32) src_bytes);
    }
}

/// Closes the group of this thread's `cp.async` copies issued since the last commit.
#[inline(always)]
pub fn cp_async_commit_group() {
    // SAFETY: only orders this thread's pending copies.
    unsafe { asm!("cp.async.commit_group;") };
}

/// Waits until at most `N` of this thread's committed copy groups are still in flight.
#[inline(always)]
pub fn cp_async_wait_group<const N: u32>() {
    // SAFETY: only waits on this thread's pending copies.
    unsafe { asm!("cp.async.wait_group {n};", n = const N) };
}

/// Waits for all of this thread's copies (committed or not).
#[inline(always)]
pub fn cp_async_wait_all() {
    // SAFETY: only waits on this thread's pending copies.
    unsafe { asm!("cp.async.wait_all;") };
}
