//! The nvptx primitives: one PTX instruction (or `core::arch::nvptx` intrinsic) each.
//!
//! Everything here is `#[inline(always)]`: with fat LTO the PTX has no calls. `host.rs` holds
//! the CPU twin of every item, with the same signature.

use core::arch::asm;
use core::arch::nvptx;

use super::Bytes16;

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

/// `gridDim.y`.
#[inline(always)]
pub fn grid_dim_y() -> u32 {
    // SAFETY: reading a special register has no side effects.
    unsafe { nvptx::_grid_dim_y() as u32 }
}

/// `__syncthreads()`: every thread of the block must reach it.
#[inline(always)]
pub fn sync_threads() {
    // SAFETY: a block-wide barrier; kernels call it from uniform control flow.
    unsafe { nvptx::_syncthreads() }
}

/// Programmatic dependent launch (sm_90+): waits until the grids this one depends on have
/// finished and their writes are visible (`griddepcontrol.wait`), then lets the next grid on the
/// stream start launching (`griddepcontrol.launch_dependents`), so its blocks are scheduled while
/// this grid's last blocks run. Every entry calls it first (`kernel_entries!`), except `own_sync`
/// ones, whose body calls it before touching memory a neighbouring grid may write (the GEMV
/// issues its first weight loads before it). Without a PDL
/// launch attribute, or on sm_80 builds (where it compiles to nothing), it has no effect.
#[inline(always)]
pub fn grid_dependency_sync() {
    #[cfg(target_feature = "sm_90")]
    // SAFETY: both instructions only order this grid against its neighbours on the stream;
    // the implied memory clobber keeps every access after the wait.
    unsafe {
        core::arch::asm!("griddepcontrol.wait;", "griddepcontrol.launch_dependents;")
    }
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

/// Indexed shuffle across the full warp: every lane gets `v` of lane `src & 31`.
#[inline(always)]
pub fn shfl_idx_f32(v: f32, src: u32) -> f32 {
    let r: f32;
    // SAFETY: all 32 lanes execute it (full member mask); pure register exchange.
    unsafe {
        asm!("shfl.sync.idx.b32 {r}, {v}, {s}, 0x1f, 0xffffffff;",
             r = out(reg32) r, v = in(reg32) v, s = in(reg32) src);
    }
    r
}

/// True when `p` holds on every lane of the warp.
#[inline(always)]
pub fn vote_all(p: bool) -> bool {
    let r: u32;
    // SAFETY: all 32 lanes execute it (full member mask); predicates are scoped to the block.
    unsafe {
        asm!("{{ .reg .pred vp, vq; setp.ne.u32 vp, {v}, 0; vote.sync.all.pred vq, vp, 0xffffffff; selp.u32 {r}, 1, 0, vq; }}",
             v = in(reg32) p as u32, r = out(reg32) r);
    }
    r != 0
}

/// True when `p` holds on some lane of the warp.
#[inline(always)]
pub fn vote_any(p: bool) -> bool {
    let r: u32;
    // SAFETY: as `vote_all`.
    unsafe {
        asm!("{{ .reg .pred vp, vq; setp.ne.u32 vp, {v}, 0; vote.sync.any.pred vq, vp, 0xffffffff; selp.u32 {r}, 1, 0, vq; }}",
             v = in(reg32) p as u32, r = out(reg32) r);
    }
    r != 0
}

/// Bit `l` set when `p` holds on lane `l`.
#[inline(always)]
pub fn vote_ballot(p: bool) -> u32 {
    let r: u32;
    // SAFETY: as `vote_all`.
    unsafe {
        asm!("{{ .reg .pred vp; setp.ne.u32 vp, {v}, 0; vote.sync.ballot.b32 {r}, vp, 0xffffffff; }}",
             v = in(reg32) p as u32, r = out(reg32) r);
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

/// Stores `v` at shared byte address `addr`.
///
/// # Safety
/// As [`smem_store_f32`].
#[inline(always)]
pub unsafe fn smem_store_u32(addr: u32, v: u32) {
    // SAFETY: the caller guarantees the address is in bounds and aligned.
    unsafe { asm!("st.shared.u32 [{a}], {v};", a = in(reg32) addr, v = in(reg32) v) };
}

/// Loads the u32 at shared byte address `addr`.
///
/// # Safety
/// As [`smem_store_f32`].
#[inline(always)]
pub unsafe fn smem_load_u32(addr: u32) -> u32 {
    let v: u32;
    // SAFETY: the caller guarantees the address is in bounds and aligned.
    unsafe { asm!("ld.shared.u32 {v}, [{a}];", v = out(reg32) v, a = in(reg32) addr) };
    v
}

/// Stores 16 bytes at shared byte address `addr` with one 128-bit access.
///
/// # Safety
/// `addr..addr + 16` must lie inside the dynamic shared memory; `addr` 16-byte aligned.
#[inline(always)]
pub unsafe fn smem_store_16b(addr: u32, v: Bytes16) {
    // SAFETY: the caller guarantees an in-bounds, aligned 16-byte range.
    unsafe {
        asm!("st.shared.v4.u32 [{p}], {{{a}, {b}, {c}, {d}}};",
             p = in(reg32) addr,
             a = in(reg32) v.0[0], b = in(reg32) v.0[1], c = in(reg32) v.0[2], d = in(reg32) v.0[3]);
    }
}

/// Loads 16 bytes at shared byte address `addr` with one 128-bit access.
///
/// # Safety
/// As [`smem_store_16b`].
#[inline(always)]
pub unsafe fn smem_load_16b(addr: u32) -> Bytes16 {
    let (a, b, c, d): (u32, u32, u32, u32);
    // SAFETY: the caller guarantees an in-bounds, aligned 16-byte range.
    unsafe {
        asm!("ld.shared.v4.u32 {{{a}, {b}, {c}, {d}}}, [{p}];",
             a = out(reg32) a, b = out(reg32) b, c = out(reg32) c, d = out(reg32) d,
             p = in(reg32) addr);
    }
    Bytes16([a, b, c, d])
}

/// 2^x, approximate (2 ulp), flushing subnormals.
#[inline(always)]
pub fn exp2_approx(x: f32) -> f32 {
    let r: f32;
    // SAFETY: pure arithmetic.
    unsafe { asm!("ex2.approx.ftz.f32 {r}, {x};", r = out(reg32) r, x = in(reg32) x) };
    r
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

/// `a * b + c` with one rounding (`fma.rn.f32`). LLVM emits `mul.rn` + `add.rn` for `a * b + c`,
/// which ptxas may not fuse: dot-product loops call this instead.
#[inline(always)]
pub fn fma_f32(a: f32, b: f32, c: f32) -> f32 {
    let r: f32;
    // SAFETY: pure arithmetic.
    unsafe {
        asm!("fma.rn.f32 {r}, {a}, {b}, {c};", r = out(reg32) r, a = in(reg32) a, b = in(reg32) b,
             c = in(reg32) c)
    };
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

/// Two f32 → one register of two f16 (`lo` in the low half), round to nearest even: the
/// packed operand layout of `mma` (one `cvt.rn.f16x2.f32`).
#[inline(always)]
pub fn f32x2_to_f16x2(lo: f32, hi: f32) -> u32 {
    let r: u32;
    // SAFETY: pure conversion.
    unsafe {
        asm!("cvt.rn.f16x2.f32 {r}, {h}, {l};", r = out(reg32) r, h = in(reg32) hi, l = in(reg32) lo)
    };
    r
}

/// As [`f32x2_to_f16x2`], to two bf16 (sm_80+).
#[inline(always)]
pub fn f32x2_to_bf16x2(lo: f32, hi: f32) -> u32 {
    let r: u32;
    // SAFETY: pure conversion.
    unsafe {
        asm!("cvt.rn.bf16x2.f32 {r}, {h}, {l};", r = out(reg32) r, h = in(reg32) hi, l = in(reg32) lo)
    };
    r
}

/// log2(x), approximate, flushing subnormals.
#[inline(always)]
pub fn log2_approx(x: f32) -> f32 {
    let r: f32;
    // SAFETY: pure arithmetic.
    unsafe { asm!("lg2.approx.ftz.f32 {r}, {x};", r = out(reg32) r, x = in(reg32) x) };
    r
}

/// `x`, unseen by the optimiser: a loop that calls this recomputes what depends on `x` in
/// place, instead of hoisting every loop-invariant address into its own register (LLVM's LICM
/// does that to unrolled tile loops and ptxas then spills). Costs one `mov`.
#[inline(always)]
pub fn opaque_u32(x: u32) -> u32 {
    let r: u32;
    // SAFETY: a register move; not `pure`, so LLVM neither hoists nor merges it.
    unsafe {
        asm!("mov.b32 {r}, {x};", r = out(reg32) r, x = in(reg32) x, options(nomem, nostack))
    };
    r
}

/// As [`opaque_u32`], for a pointer.
#[inline(always)]
pub fn opaque_ptr<T>(p: *const T) -> *const T {
    let r: u64;
    // SAFETY: a register move; not `pure`, so LLVM neither hoists nor merges it.
    unsafe {
        asm!("mov.b64 {r}, {x};", r = out(reg64) r, x = in(reg64) p as u64, options(nomem, nostack))
    };
    r as *const T
}

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

/// `*p += v` atomically in global memory; returns the old value.
///
/// # Safety
/// `p` must be valid for reads and writes of an f32 (4-byte aligned) in global memory.
#[inline(always)]
pub unsafe fn atomic_add_f32(p: *mut f32, v: f32) -> f32 {
    let old: f32;
    // SAFETY: the caller guarantees a valid global f32.
    unsafe {
        asm!("atom.global.add.f32 {o}, [{p}], {v};",
             o = out(reg32) old, p = in(reg64) p, v = in(reg32) v);
    }
    old
}

/// `*p += v` atomically in global memory (relaxed, GPU scope); returns the old value.
///
/// # Safety
/// `p` must be valid for reads and writes of a `u32` (4-byte aligned) in global memory.
#[inline(always)]
pub unsafe fn atomic_add_u32(p: *mut u32, v: u32) -> u32 {
    let old: u32;
    // SAFETY: the caller guarantees a valid global u32.
    unsafe {
        asm!("atom.global.add.u32 {o}, [{p}], {v};",
             o = out(reg32) old, p = in(reg64) p, v = in(reg32) v);
    }
    old
}

/// `__threadfence()`: an acquire-release fence at GPU scope. Before a relaxed atomic it
/// publishes this thread's earlier writes (and, through a preceding barrier, its block's) to
/// whoever observes the atomic and fences; after one, it makes theirs visible here.
#[inline(always)]
pub fn fence_gpu() {
    // SAFETY: a memory fence; no operands.
    unsafe { asm!("fence.acq_rel.gpu;") };
}
