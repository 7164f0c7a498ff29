//! CPU twins of the nvptx primitives, on top of the kernel emulator ([`crate::emu`]).
//!
//! Same names and signatures as `nvptx.rs`. Ids come from the calling emulated thread; the
//! barrier, shuffles and votes rendezvous with the other emulated threads; shared memory goes
//! through the block's checked shared memory. Called outside `emu::launch`, they panic.

use core::panic::Location;
use core::sync::atomic::{AtomicU32, Ordering};

use super::Bytes16;
use super::softfloat::{f16_bits_to_f32, f32_to_bf16_bits, f32_to_f16_bits, ftz};
use crate::emu::thread::with;
use crate::emu::{Collective, Payload};

/// `threadIdx.x`.
#[inline(always)]
pub fn thread_idx_x() -> u32 {
    with(|t| t.tid.0)
}

/// `blockIdx.x`.
#[inline(always)]
pub fn block_idx_x() -> u32 {
    with(|t| t.block().idx.0)
}

/// `threadIdx.y`.
#[inline(always)]
pub fn thread_idx_y() -> u32 {
    with(|t| t.tid.1)
}

/// `blockDim.y`.
#[inline(always)]
pub fn block_dim_y() -> u32 {
    with(|t| t.block().dim.1)
}

/// `blockIdx.y`.
#[inline(always)]
pub fn block_idx_y() -> u32 {
    with(|t| t.block().idx.1)
}

/// `blockIdx.z`.
#[inline(always)]
pub fn block_idx_z() -> u32 {
    with(|t| t.block().idx.2)
}

/// `blockDim.x`.
#[inline(always)]
pub fn block_dim_x() -> u32 {
    with(|t| t.block().dim.0)
}

/// `gridDim.x`.
#[inline(always)]
pub fn grid_dim_x() -> u32 {
    with(|t| t.block().grid.0)
}

/// `gridDim.y`.
#[inline(always)]
pub fn grid_dim_y() -> u32 {
    with(|t| t.block().grid.1)
}

/// `__syncthreads()`: every thread of the block must reach it — here, the same call site.
#[inline(always)]
#[track_caller]
pub fn sync_threads() {
    let site = Location::caller();
    with(|t| t.block().barrier(t.linear, site));
}

/// Programmatic dependent launch: the emulator runs launches one after another, so the previous
/// grid is always complete.
#[inline(always)]
pub fn grid_dependency_sync() {}

/// One warp rendezvous carrying a single word per lane; returns every lane's word.
fn exchange(op: Collective, word: u32) -> ([u32; 32], u32) {
    with(|t| {
        let mut p: Payload = [0; 10];
        p[0] = word;
        let all = t.block().collective(t.linear, op, p);
        (core::array::from_fn(|l| all[l][0]), t.linear % 32)
    })
}

/// Butterfly shuffle across the full warp: lane `l` gets `v` of lane `l ^ mask`.
#[inline(always)]
pub fn shfl_xor_f32(v: f32, mask: u32) -> f32 {
    let (all, lane) = exchange(Collective::Shfl, v.to_bits());
    f32::from_bits(all[((lane ^ mask) & 31) as usize])
}

/// Indexed shuffle across the full warp: every lane gets `v` of lane `src & 31`.
#[inline(always)]
pub fn shfl_idx_f32(v: f32, src: u32) -> f32 {
    let (all, _) = exchange(Collective::Shfl, v.to_bits());
    f32::from_bits(all[(src & 31) as usize])
}

/// True when `p` holds on every lane of the warp.
#[inline(always)]
pub fn vote_all(p: bool) -> bool {
    exchange(Collective::VoteAll, p as u32)
        .0
        .iter()
        .all(|&w| w != 0)
}

/// True when `p` holds on some lane of the warp.
#[inline(always)]
pub fn vote_any(p: bool) -> bool {
    exchange(Collective::VoteAny, p as u32)
        .0
        .iter()
        .any(|&w| w != 0)
}

/// Bit `l` set when `p` holds on lane `l`.
#[inline(always)]
pub fn vote_ballot(p: bool) -> u32 {
    let (all, _) = exchange(Collective::Ballot, p as u32);
    (0..32).filter(|&l| all[l] != 0).fold(0, |m, l| m | 1 << l)
}

/// Byte address (in the shared state space) of the dynamic shared-memory window: 0, as on a
/// GPU when the kernel declares no static shared memory.
#[inline(always)]
pub fn dyn_smem_base() -> u32 {
    with(|t| t.block().smem_base())
}

/// Stores `v` at shared byte address `addr`.
///
/// # Safety
/// `addr` must lie inside the launch's dynamic shared memory and be 4-byte aligned (the
/// emulator checks both and reports a violation as an error of the launch).
#[inline(always)]
pub unsafe fn smem_store_f32(addr: u32, v: f32) {
    with(|t| t.smem_write(addr, 4, &v.to_le_bytes()));
}

/// Loads the f32 at shared byte address `addr`.
///
/// # Safety
/// As [`smem_store_f32`].
#[inline(always)]
pub unsafe fn smem_load_f32(addr: u32) -> f32 {
    let mut b = [0u8; 4];
    with(|t| t.smem_read(addr, 4, &mut b));
    f32::from_le_bytes(b)
}

/// Stores `v` at shared byte address `addr`.
///
/// # Safety
/// As [`smem_store_f32`].
#[inline(always)]
pub unsafe fn smem_store_u32(addr: u32, v: u32) {
    with(|t| t.smem_write(addr, 4, &v.to_le_bytes()));
}

/// Loads the u32 at shared byte address `addr`.
///
/// # Safety
/// As [`smem_store_f32`].
#[inline(always)]
pub unsafe fn smem_load_u32(addr: u32) -> u32 {
    let mut b = [0u8; 4];
    with(|t| t.smem_read(addr, 4, &mut b));
    u32::from_le_bytes(b)
}

/// Stores 16 bytes at shared byte address `addr` with one 128-bit access.
///
/// # Safety
/// `addr..addr + 16` must lie inside the dynamic shared memory; `addr` 16-byte aligned.
#[inline(always)]
pub unsafe fn smem_store_16b(addr: u32, v: Bytes16) {
    let mut b = [0u8; 16];
    for (chunk, w) in b.chunks_exact_mut(4).zip(v.0) {
        chunk.copy_from_slice(&w.to_le_bytes());
    }
    with(|t| t.smem_write(addr, 16, &b));
}

/// Loads 16 bytes at shared byte address `addr` with one 128-bit access.
///
/// # Safety
/// As [`smem_store_16b`].
#[inline(always)]
pub unsafe fn smem_load_16b(addr: u32) -> Bytes16 {
    let mut b = [0u8; 16];
    with(|t| t.smem_read(addr, 16, &mut b));
    Bytes16(core::array::from_fn(|i| {
        u32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]])
    }))
}

/// 2^x, flushing subnormal inputs and results to zero (`ex2.approx.ftz`); exact on the host.
#[inline(always)]
pub fn exp2_approx(x: f32) -> f32 {
    ftz(ftz(x).exp2())
}

/// 1/sqrt(x) (`rsqrt.approx`); exact on the host.
#[inline(always)]
pub fn rsqrt_approx(x: f32) -> f32 {
    1.0 / x.sqrt()
}

/// 1/x, flushing subnormals (`rcp.approx.ftz`); exact on the host.
#[inline(always)]
pub fn rcp_approx(x: f32) -> f32 {
    ftz(1.0 / ftz(x))
}

/// `a * b + c` with one rounding, as `fma.rn.f32`.
#[inline(always)]
pub fn fma_f32(a: f32, b: f32, c: f32) -> f32 {
    a.mul_add(b, c)
}

/// IEEE f16 bits → f32 (exact).
#[inline(always)]
pub fn f16_to_f32(h: u16) -> f32 {
    f16_bits_to_f32(h)
}

/// f32 → IEEE f16 bits, round to nearest even.
#[inline(always)]
pub fn f32_to_f16(v: f32) -> u16 {
    f32_to_f16_bits(v)
}

/// f32 → bf16 bits, round to nearest even.
#[inline(always)]
pub fn f32_to_bf16(v: f32) -> u16 {
    f32_to_bf16_bits(v)
}

/// Two f32 → two packed f16 bits (`lo` in the low half), round to nearest even.
#[inline(always)]
pub fn f32x2_to_f16x2(lo: f32, hi: f32) -> u32 {
    f32_to_f16_bits(lo) as u32 | (f32_to_f16_bits(hi) as u32) << 16
}

/// Two f32 → two packed bf16 bits (`lo` in the low half), round to nearest even.
#[inline(always)]
pub fn f32x2_to_bf16x2(lo: f32, hi: f32) -> u32 {
    f32_to_bf16_bits(lo) as u32 | (f32_to_bf16_bits(hi) as u32) << 16
}

/// log2(x) (`lg2.approx.ftz`); exact on the host, with the same flush of subnormal inputs.
#[inline(always)]
pub fn log2_approx(x: f32) -> f32 {
    ftz(x).log2()
}

/// `x`; on the GPU a move the optimiser cannot see through (see the nvptx twin).
#[inline(always)]
pub fn opaque_u32(x: u32) -> u32 {
    x
}

/// `p`; on the GPU a move the optimiser cannot see through (see the nvptx twin).
#[inline(always)]
pub fn opaque_ptr<T>(p: *const T) -> *const T {
    p
}

/// Loads 16 bytes with one 128-bit global load.
///
/// # Safety
/// `p` must be valid for reads of 16 bytes and 16-byte aligned (the emulator panics — an
/// error of the launch — on a misaligned address, where the GPU would fault).
#[inline(always)]
pub unsafe fn load_16b(p: *const u8) -> Bytes16 {
    assert!(
        (p as usize).is_multiple_of(16),
        "load_16b: global address {p:p} is not 16-byte aligned"
    );
    // SAFETY: the caller guarantees a valid, aligned 16-byte range.
    unsafe { core::ptr::read(p as *const Bytes16) }
}

/// Stores 16 bytes with one 128-bit global store.
///
/// # Safety
/// `p` must be valid for writes of 16 bytes and 16-byte aligned.
#[inline(always)]
pub unsafe fn store_16b(p: *mut u8, v: Bytes16) {
    assert!(
        (p as usize).is_multiple_of(16),
        "store_16b: global address {p:p} is not 16-byte aligned"
    );
    // SAFETY: the caller guarantees a valid, aligned 16-byte range.
    unsafe { core::ptr::write(p as *mut Bytes16, v) }
}

/// `*p += v` atomically in global memory; returns the old value.
///
/// # Safety
/// `p` must be valid for reads and writes of an f32 (4-byte aligned) in global memory.
#[inline(always)]
pub unsafe fn atomic_add_f32(p: *mut f32, v: f32) -> f32 {
    // SAFETY: the caller guarantees a valid, aligned f32; all concurrent accesses to it from
    // kernel threads are atomic (the kernel's contract), as `AtomicU32::from_ptr` requires.
    let a = unsafe { AtomicU32::from_ptr(p as *mut u32) };
    let old = a
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |w| {
            Some((f32::from_bits(w) + v).to_bits())
        })
        .expect("the update closure always returns Some");
    f32::from_bits(old)
}

/// `*p += v` atomically in global memory; returns the old value.
///
/// # Safety
/// `p` must be valid for reads and writes of a `u32` (4-byte aligned) in global memory.
#[inline(always)]
pub unsafe fn atomic_add_u32(p: *mut u32, v: u32) -> u32 {
    // SAFETY: the caller guarantees a valid, aligned u32; all concurrent accesses to it from
    // kernel threads are atomic (the kernel's contract), as `AtomicU32::from_ptr` requires.
    unsafe { AtomicU32::from_ptr(p) }.fetch_add(v, Ordering::SeqCst)
}

/// `__threadfence()`: a sequentially consistent fence (at least as strong as the GPU's).
#[inline(always)]
pub fn fence_gpu() {
    core::sync::atomic::fence(Ordering::SeqCst);
}
