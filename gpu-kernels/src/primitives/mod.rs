//! The only place that touches nvptx intrinsics and inline PTX — and its CPU twin.
//!
//! Kernel files reach thread/block ids, barriers, shared memory, warp collectives, tensor-core
//! instructions, async copies, fast math and f16/bf16 conversions through these small wrappers
//! and never write `asm!` themselves. That keeps every instruction in one reviewed spot and lets
//! the same kernel source run on a CPU:
//!
//! - `nvptx.rs`, `nvptx_tc.rs` (target `nvptx64`): each primitive is one PTX instruction in `asm!` or an
//!   `core::arch::nvptx` intrinsic, `#[inline(always)]` so the PTX has no calls (fat LTO).
//! - `host.rs`, `host_tc.rs` (every other target): the same signatures, implemented on top of the kernel
//!   emulator ([`crate::emu`]): ids come from the emulated thread, barriers and warp collectives
//!   rendezvous with the other emulated threads, shared memory is bounds- and race-checked, and
//!   `mma`/`ldmatrix` follow the PTX ISA's fragment layouts in scalar code
//!   ([`crate::emu::fragments`]). Outside [`crate::emu::launch`] they panic.
//!
//! The twins' contract: same name, same argument and result types, same `unsafe`-ness and the
//! same numerical result up to the documented accuracy of the approximate instructions (the host
//! computes `ex2`/`rsqrt`/`rcp` exactly, with the same flush-to-zero behaviour, and the f16/bf16
//! conversions bit-exactly).
//!
//! | group | primitives |
//! |---|---|
//! | ids | [`thread_idx_x`], [`thread_idx_y`], [`block_idx_x`], [`block_idx_y`], [`block_idx_z`], [`block_dim_x`], [`block_dim_y`], [`grid_dim_x`], [`grid_dim_y`] |
//! | barrier | [`sync_threads`], [`grid_dependency_sync`] (programmatic dependent launch; [`GridWait`] does it once) |
//! | warp | [`shfl_xor_f32`], [`shfl_idx_f32`], [`vote_all`], [`vote_any`], [`vote_ballot`] |
//! | shared memory | [`dyn_smem_base`], [`smem_load_f32`], [`smem_store_f32`], [`smem_load_u32`], [`smem_store_u32`], [`smem_load_16b`], [`smem_store_16b`] |
//! | global memory | [`load_16b`], [`store_16b`], [`atomic_add_f32`], [`atomic_add_u32`], [`fence_gpu`] |
//! | tensor cores | [`ldmatrix_x1`], [`ldmatrix_x2`], [`ldmatrix_x4`] (and `_trans`), [`mma_m16n8k16_f16`], [`mma_m16n8k16_bf16`] |
//! | warpgroup matrix (sm_90a PTX only) | [`wgmma_desc_sw128`], `wgmma_m64n128k16_{ss,rs}_{f16,bf16}`, `wgmma_fence`, `wgmma_commit_group`, `wgmma_wait_group`, `wgmma_hold`, `wgmma_hold_a`, `fence_proxy_async_shared` |
//! | async copy | [`cp_async_16`], [`cp_async_16_zfill`], [`cp_async_commit_group`], [`cp_async_wait_group`], [`cp_async_wait_all`] |
//! | math | [`exp2_approx`], [`exp_approx`], [`log2_approx`], [`rsqrt_approx`], [`rcp_approx`], [`fma_f32`] |
//! | optimiser | [`opaque_u32`], [`opaque_ptr`] |
//! | conversions | [`f16_to_f32`], [`f32_to_f16`], [`f32_to_bf16`], [`bf16_to_f32`], [`f32x2_to_f16x2`], [`f32x2_to_bf16x2`] |

#[cfg(target_arch = "nvptx64")]
mod nvptx;
#[cfg(target_arch = "nvptx64")]
mod nvptx_tc;
#[cfg(target_arch = "nvptx64")]
pub use {nvptx::*, nvptx_tc::*};
#[cfg(all(target_arch = "nvptx64", target_feature = "sm_90a"))]
mod nvptx_wgmma;
#[cfg(all(target_arch = "nvptx64", target_feature = "sm_90a"))]
pub use nvptx_wgmma::*;

#[cfg(not(target_arch = "nvptx64"))]
mod host;
#[cfg(not(target_arch = "nvptx64"))]
mod host_tc;
#[cfg(not(target_arch = "nvptx64"))]
mod host_wgmma;
#[cfg(not(target_arch = "nvptx64"))]
pub mod softfloat;
#[cfg(not(target_arch = "nvptx64"))]
pub use {host::*, host_tc::*, host_wgmma::*};

/// A thread's [`grid_dependency_sync`], done once: kernels that issue some loads before it (of
/// memory the grid they may overlap does not write) call [`GridWait::once`] on every path
/// before their first access to anything else.
#[derive(Default)]
pub struct GridWait {
    done: bool,
}

impl GridWait {
    /// [`grid_dependency_sync`], unless this thread has waited already.
    #[inline(always)]
    pub fn once(&mut self) {
        if !self.done {
            grid_dependency_sync();
            self.done = true;
        }
    }
}

/// e^x through `ex2` with a log2(e) prescale.
#[inline(always)]
pub fn exp_approx(x: f32) -> f32 {
    exp2_approx(x * core::f32::consts::LOG2_E)
}

/// bf16 bits → f32 (exact: the high half of an f32).
#[inline(always)]
pub fn bf16_to_f32(b: u16) -> f32 {
    f32::from_bits((b as u32) << 16)
}

/// A `wgmma` shared-memory matrix descriptor for an operand in the 128-byte swizzle layout
/// (`crate::emu::wgmma` on host builds has the layout): start address `addr` (1024-byte aligned
/// atoms, so base offset 0), leading and stride byte offsets `lbo`, `sbo`; all multiples of 16.
#[inline(always)]
pub fn wgmma_desc_sw128(addr: u32, lbo: u32, sbo: u32) -> u64 {
    const SWIZZLE_128B: u64 = 1 << 62;
    let field = |bytes: u32| ((bytes >> 4) & 0x3fff) as u64;
    field(addr) | (field(lbo) << 16) | (field(sbo) << 32) | SWIZZLE_128B
}

/// Sixteen bytes moved as one vector access.
#[derive(Clone, Copy)]
#[repr(C, align(16))]
pub struct Bytes16(pub [u32; 4]);
