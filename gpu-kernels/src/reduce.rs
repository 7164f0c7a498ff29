//! Warp and block reductions (sum, max) built on warp shuffles and a little shared memory.

use crate::primitives::{
    block_dim_x, block_dim_y, block_idx_x, shfl_xor_f32, smem_load_f32, smem_store_f32,
    sync_threads, thread_idx_x, thread_idx_y,
};

/// Sum over the 32 lanes of a warp; every lane gets the result.
#[inline(always)]
pub fn warp_sum(mut v: f32) -> f32 {
    let mut m = 16;
    while m > 0 {
        v += shfl_xor_f32(v, m);
        m >>= 1;
    }
    v
}

/// Maximum over the 32 lanes of a warp; every lane gets the result.
#[inline(always)]
pub fn warp_max(mut v: f32) -> f32 {
    let mut m = 16;
    while m > 0 {
        v = v.max(shfl_xor_f32(v, m));
        m >>= 1;
    }
    v
}

/// Combines one value per thread over the whole block; every thread gets the result.
///
/// # Safety
/// Every thread of the block must call it (it has barriers); `scratch` is a shared byte address
/// with [`REDUCE_SMEM_BYTES`](crate::params::REDUCE_SMEM_BYTES) free bytes; the block has at most 1024 threads.
#[inline(always)]
unsafe fn block_reduce(v: f32, scratch: u32, identity: f32, warp_op: fn(f32) -> f32) -> f32 {
    let lane = thread_idx_x() & 31;
    let warp = thread_idx_x() >> 5;
    let warps = block_dim_x().div_ceil(32);
    let w = warp_op(v);
    // SAFETY: warp < 32, so the address is inside the caller's scratch area.
    unsafe {
        if lane == 0 {
            smem_store_f32(scratch + warp * 4, w);
        }
        sync_threads();
        let t = if lane < warps {
            smem_load_f32(scratch + lane * 4)
        } else {
            identity
        };
        let total = warp_op(t);
        // The scratch area may be reused right after: wait until every warp has read it.
        sync_threads();
        total
    }
}

/// Block-wide sum. See [`block_reduce`] for the contract.
///
/// # Safety
/// As `block_reduce`: all threads call it, `scratch` has [`REDUCE_SMEM_BYTES`](crate::params::REDUCE_SMEM_BYTES) bytes.
#[inline(always)]
pub unsafe fn block_sum(v: f32, scratch: u32) -> f32 {
    // SAFETY: forwarded contract.
    unsafe { block_reduce(v, scratch, 0.0, warp_sum) }
}

/// Block-wide maximum.
///
/// # Safety
/// As [`block_sum`].
#[inline(always)]
pub unsafe fn block_max(v: f32, scratch: u32) -> f32 {
    // SAFETY: forwarded contract.
    unsafe { block_reduce(v, scratch, f32::NEG_INFINITY, warp_max) }
}

/// The row a thread of a row kernel works on: `blockDim.y` rows per block, `blockDim.x`
/// threads per row. The host launches several rows per block only with one warp per row.
#[inline(always)]
pub fn row_of_thread() -> usize {
    block_idx_x() as usize * block_dim_y() as usize + thread_idx_y() as usize
}

/// Sum over the `blockDim.x` threads of one row: shuffles alone for a one-warp row, else a
/// block reduction (then the block holds one row).
///
/// # Safety
/// As [`block_sum`] when `blockDim.x > 32` (every thread calls it).
#[inline(always)]
pub unsafe fn row_sum(v: f32, scratch: u32) -> f32 {
    // SAFETY: forwarded contract; the branch is uniform over the block.
    if block_dim_x() == 32 {
        warp_sum(v)
    } else {
        unsafe { block_sum(v, scratch) }
    }
}

/// Maximum over the threads of one row; see [`row_sum`].
///
/// # Safety
/// As [`row_sum`].
#[inline(always)]
pub unsafe fn row_max(v: f32, scratch: u32) -> f32 {
    // SAFETY: forwarded contract; the branch is uniform over the block.
    if block_dim_x() == 32 {
        warp_max(v)
    } else {
        unsafe { block_max(v, scratch) }
    }
}
