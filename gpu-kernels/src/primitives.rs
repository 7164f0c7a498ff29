//! The only place that touches nvptx intrinsics and inline PTX.
//!
//! Kernel files reach thread/block ids, barriers, shared memory, warp shuffles, fast math and
//! f16/bf16 conversions through these small wrappers and never write `asm!` themselves. That
//! keeps every instruction in one reviewed spot and lets a CPU twin of this module (the kernel
//! emulator) run the same kernel source on a host.
//!
//! Everything here is `#[inline(always)]`: with fat LTO the PTX has no calls.

use core::arch::asm;
use core::arch::nvptx;

// The dynamic shared-memory window; its size is the launch's `shared_mem_bytes`.
core::arch::global_asm!(".extern .shared .align 16 .b8 dyn_smem[];");

/// `threadIdx.x`.
#[inline(always)]
pub fn thread_idx_x() -> u32 {
    // SAFETY: reading a special register has no side effects.
    unsafe { nvptx::_thread_idx_x() as u32 }
}

/// `blockIdx.x`.
#[inline(always)]
pub fn block_idx_x() -> u32 {
    // SAFETY: reading a special register has no side effects.
    unsafe { nvptx::_block_idx_x() as u32 }
}

/// `threadIdx.y`.
#[inline(always)]
pub fn thread_idx_y() -> u32 {
    // SAFETY: reading a special register has no side effects.
    unsafe { nvptx::_thread_idx_y() as u32 }
}

/// `blockDim.y`.
#[inline(always)]
pub fn block_dim_y() -> u32 {
    // SAFETY: reading a special register has no side effects.
    unsafe { nvptx::_block_dim_y() as u32 }
}

/// `blockIdx.y`.
#[inline(always)]
pub fn block_idx_y() -> u32 {
    // SAFETY: reading a special register has no side effects.
    unsafe { nvptx::_block_idx_y() as u32 }
}

/// `blockIdx.z`.
#[inline(always)]
pub fn block_idx_z() -> u32 {
    // SAFETY: reading a special register has no side effects.
    unsafe { nvptx::_block_idx_z() as u32 }
}

/// `blockDim.x`.
#[inline(always)]
pub fn block_dim_x() -> u32 {
    // SAFETY: reading a special register has no side effects.
    unsafe { nvptx::_block_dim_x() as u32 }
}

/// `gridDim.x`.
#[inline(always)]
pub fn grid_dim_x() -> u32 {
    // SAFETY: reading a special register has no side effects.
    unsafe { nvptx::_grid_dim_x() as u32 }
}

/// `__syncthreads()`: every thread of the block must reach it.
#[inline(always)]
pub fn sync_threads() {
    // SAFETY: a block-wide barrier; kernels call it from uniform control flow.
    unsafe { nvptx::_syncthreads() }
}

/// Butterfly shuffle across the full warp: lane `l` gets `v` of lane `l ^ mask`.
#[inline(always)]
pub fn shfl_xor_f32(v: f32, mask: u32) -> f32 {
    let r: f32;
    // SAFETY: all 32 lanes execute it (full member mask); pure register exchange.
    unsafe {
        asm!("shfl.sync.bfly.b32 {r}, {v}, {m}, 0x1f, 0xffffffff;",
             r = out(reg32) r, v = in(reg32) v, m = in(reg32) mask);
    }
    r
}

/// Byte address (in the shared state space) of the dynamic shared-memory window.
#[inline(always)]
pub fn dyn_smem_base() -> u32 {
    let base: u32;
    // SAFETY: takes the address of the extern shared symbol; no memory access.
    unsafe { asm!("mov.u32 {a}, dyn_smem;", a = out(reg32) base) };
    base
}

/// Stores `v` at shared byte address `addr`.
///
/// # Safety
/// `addr` must lie inside the launch's dynamic shared memory and be 4-byte aligned.
#[inline(always)]
pub unsafe fn smem_store_f32(addr: u32, v: f32) {
    // SAFETY: the caller guarantees the address is in bounds and aligned.
    unsafe { asm!("st.shared.f32 [{a}], {v};", a = in(reg32) addr, v = in(reg32) v) };
}

/// Loads the f32 at shared byte address `addr`.
///
/// # Safety
/// As [`smem_store_f32`].
#[inline(always)]
pub unsafe fn smem_load_f32(addr: u32) -> f32 {
    let v: f32;
    // SAFETY: the caller guarantees the address is in bounds and aligned.
    unsafe { asm!("ld.shared.f32 {v}, [{a}];", v = out(reg32) v, a = in(reg32) addr) };
    v
}

/// 2^x, approximate (2 ulp), flushing subnormals.
#[inline(always)]
pub fn exp2_approx(x: f32) -> f32 {
    let r: f32;
    // SAFETY: pure arithmetic.
    unsafe { asm!("ex2.approx.ftz.f32 {r}, {x};", r = out(reg32) r, x = in(reg32) x) };
    r
}

/// e^x through `ex2` with a log2(e) prescale.
#[inline(always)]
pub fn exp_approx(x: f32) -> f32 {
    exp2_approx(x * core::f32::consts::LOG2_E)
}

/// 1/sqrt(x), approximate.
#[inline(always)]
pub fn rsqrt_approx(x: f32) -> f32 {
    let r: f32;
    // SAFETY: pure arithmetic.
    unsafe { asm!("rsqrt.approx.f32 {r}, {x};", r = out(reg32) r, x = in(reg32) x) };
    r
}

/// 1/x, approximate (1 ulp) — for normalisers where a full division is wasted precision.
#[inline(always)]
pub fn rcp_approx(x: f32) -> f32 {
    let r: f32;
    // SAFETY: pure arithmetic.
    unsafe { asm!("rcp.approx.ftz.f32 {r}, {x};", r = out(reg32) r, x = in(reg32) x) };
    r
}

/// IEEE f16 bits → f32 (exact).
#[inline(always)]
pub fn f16_to_f32(h: u16) -> f32 {
    let r: f32;
    // SAFETY: pure conversion.
    unsafe { asm!("cvt.f32.f16 {r}, {h};", r = out(reg32) r, h = in(reg16) h) };
    r
}

/// f32 → IEEE f16 bits, round to nearest even.
#[inline(always)]
pub fn f32_to_f16(v: f32) -> u16 {
    let r: u16;
    // SAFETY: pure conversion.
    unsafe { asm!("cvt.rn.f16.f32 {r}, {v};", r = out(reg16) r, v = in(reg32) v) };
    r
}

/// f32 → bf16 bits, round to nearest even (sm_80+).
#[inline(always)]
pub fn f32_to_bf16(v: f32) -> u16 {
    let r: u16;
    // SAFETY: pure conversion.
    unsafe { asm!("cvt.rn.bf16.f32 {r}, {v};", r = out(reg16) r, v = in(reg32) v) };
    r
}

/// bf16 bits → f32 (exact: the high half of an f32).
#[inline(always)]
pub fn bf16_to_f32(b: u16) -> f32 {
    f32::from_bits((b as u32) << 16)
}

/// Sixteen bytes moved as one vector access.
#[derive(Clone, Copy)]
#[repr(C, align(16))]
pub struct Bytes16(pub [u32; 4]);

/// Loads 16 bytes with one 128-bit global load.
///
/// # Safety
/// `p` must be valid for reads of 16 bytes and 16-byte aligned.
#[inline(always)]
pub unsafe fn load_16b(p: *const u8) -> Bytes16 {
    let (a, b, c, d): (u32, u32, u32, u32);
    // SAFETY: the caller guarantees a valid, aligned 16-byte range.
    unsafe {
        asm!("ld.global.v4.u32 {{{a}, {b}, {c}, {d}}}, [{p}];",
             a = out(reg32) a, b = out(reg32) b, c = out(reg32) c, d = out(reg32) d,
             p = in(reg64) p);
    }
    Bytes16([a, b, c, d])
}

/// Stores 16 bytes with one 128-bit global store.
///
/// # Safety
/// `p` must be valid for writes of 16 bytes and 16-byte aligned.
#[inline(always)]
pub unsafe fn store_16b(p: *mut u8, v: Bytes16) {
    // SAFETY: the caller guarantees a valid, aligned 16-byte range.
    unsafe {
        asm!("st.global.v4.u32 [{p}], {{{a}, {b}, {c}, {d}}};",
             p = in(reg64) p,
             a = in(reg32) v.0[0], b = in(reg32) v.0[1], c = in(reg32) v.0[2], d = in(reg32) v.0[3]);
    }
}
