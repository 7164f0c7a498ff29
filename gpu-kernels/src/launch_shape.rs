//! Grid and block shapes of every kernel launch, computed once for both launchers.
//!
//! The CUDA launchers (`host/src/backend/cuda/launch.rs`) and the kernel emulator's tests
//! ([`crate::emu`], host only) both take their launch shapes from here, so the emulator runs the
//! kernels in exactly the shapes the GPU sees: one warp per row with several rows per block for
//! short rows, a multi-warp block per row for long ones, capped grid-stride grids for the maps,
//! the GEMV grid and the split-KV decode-attention plan.
//! Plain integer math: nothing here reaches the PTX.

use crate::params::{
    ARGMAX_BLOCK, CACHED_CHUNKS, DECODE_ALL_KEYS_FRESH, DECODE_BLOCKS_PER_SM,
    DECODE_MAX_HEADS_PER_BLOCK, DECODE_MAX_SPLITS, DECODE_MIN_SPLIT_LEN, DECODE_MMA_HEADS,
    DECODE_SIMT_SMEM_BYTES, DECODE_WARPS, DecodeAttnParams, ELEMENTWISE_BLOCK, FLASH_BLOCK_M,
    FLASH_WARPS, FLASH3_HEAD_DIM, FLASH3_THREADS, GEMV_GROUP_ELEMS, GEMV_MAX_THREADS,
    GEMV_MAX_THREADS_WIDE, GEMV_ROWS, GEMV_SMEM_BYTES, REDUCE_SMEM_BYTES, ROW_BLOCK_MAX,
    WARP_ROWS_PER_BLOCK, decode_smem_bytes, flash_smem_bytes, flash3_smem_bytes,
};

/// A launch configuration: grid and block dimensions (x, y, z) and dynamic shared memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaunchShape {
    pub grid: (u32, u32, u32),
    pub block: (u32, u32, u32),
    pub shared_mem_bytes: u32,
}

/// Threads per row for a row kernel (RMSNorm, softmax): about `CACHED_CHUNKS` 8-element chunks
/// per thread, so each thread has several loads in flight and the row stays in registers.
pub fn row_threads(cols: usize) -> u32 {
    let per_thread = 8 * CACHED_CHUNKS;
    (cols.div_ceil(per_thread).div_ceil(32) * 32).clamp(32, ROW_BLOCK_MAX as usize) as u32
}

/// Launch shape of a row kernel (`rmsnorm_*`, `add_rmsnorm_*`, `softmax_*`): one-warp rows go
/// `WARP_ROWS_PER_BLOCK` to a block. `None` when the rows exceed the grid limit.
pub fn rows(rows: usize, cols: usize) -> Option<LaunchShape> {
    let threads = row_threads(cols);
    let rows_per_block = if threads == 32 {
        WARP_ROWS_PER_BLOCK
    } else {
        1
    };
    let grid = u32::try_from(rows.div_ceil(rows_per_block as usize)).ok()?;
    Some(LaunchShape {
        grid: (grid.max(1), 1, 1),
        block: (threads, rows_per_block, 1),
        shared_mem_bytes: REDUCE_SMEM_BYTES,
    })
}

/// A grid-stride launch (maps, casts, RoPE, strided copy) over `items` work items, capped at
/// `8 * sm_count` blocks (full occupancy on the GPU; the emulator passes a small count so its
/// grid-stride loops take several turns).
pub fn grid_stride(items: usize, sm_count: usize) -> LaunchShape {
    let blocks = items
        .div_ceil(ELEMENTWISE_BLOCK as usize)
        .clamp(1, sm_count.max(1) * 8);
    LaunchShape {
        grid: (blocks as u32, 1, 1),
        block: (ELEMENTWISE_BLOCK, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Work items of the maps (`silu`, `swiglu`, `add`, `mul`, casts): one 8-element chunk each.
pub fn map_items(n: usize) -> usize {
    n.div_ceil(8)
}

/// Work items of `rope_*` (before chunking): one rotated pair each, `/ 8` as the maps.
pub fn rope_items(rows: usize, head_dim: usize) -> usize {
    (rows * (head_dim / 2).max(1)).div_ceil(8)
}

/// `embedding_*`: one block per id, a multiple of 32 threads up to 256 along the row.
pub fn embedding(n_ids: usize, cols: usize) -> LaunchShape {
    LaunchShape {
        grid: (n_ids as u32, 1, 1),
        block: ((cols.div_ceil(32) * 32).clamp(32, 256) as u32, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// `gemv_*` of width `m_width` (`M` of `gemv_m{M}_*`; 1 for the fused M = 1 variants): one
/// block per [`GEMV_ROWS`] weight rows (per output `j` for `gemv_swiglu_*`, whose weight has `2n`
/// rows), `block.x` a multiple of 32 giving each thread about one group of [`GEMV_GROUP_ELEMS`]
/// weights per row, at most [`GEMV_MAX_THREADS`] for width 1 on dense weights and
/// [`GEMV_MAX_THREADS_WIDE`] for wider widths and quantized weights. `None` when `n` exceeds
/// the grid limit.
pub fn gemv(
    n: usize,
    k: usize,
    m_width: usize,
    quantized: bool,
    swiglu: bool,
) -> Option<LaunchShape> {
    let max_threads = if m_width == 1 && !quantized {
        GEMV_MAX_THREADS
    } else {
        GEMV_MAX_THREADS_WIDE
    };
    let threads =
        (k.div_ceil(GEMV_GROUP_ELEMS).div_ceil(32) * 32).clamp(32, max_threads as usize) as u32;
    let blocks = if swiglu { n } else { n.div_ceil(GEMV_ROWS) };
    Some(LaunchShape {
        grid: (u32::try_from(blocks.max(1)).ok()?, 1, 1),
        block: (threads, 1, 1),
        shared_mem_bytes: GEMV_SMEM_BYTES,
    })
}

/// The compiled GEMV width (`M` of `gemv_m{M}_*`) that serves `m` (1..=`GEMV_MAX_M`) rows.
pub fn gemv_width(m: usize) -> usize {
    m.next_power_of_two()
}

/// Split-KV decode attention: the kernel's parameters and its launch.
#[derive(Clone, Copy, Debug)]
pub struct DecodeAttnPlan {
    pub params: DecodeAttnParams,
    /// Grid `(subgroups, kv_heads, splits)`: `decode_attn_d{head_dim}_*` (tensor cores,
    /// `DECODE_WARPS` warps) or `decode_attn_h{heads_per_block}_f32` (one warp).
    pub launch: LaunchShape,
}

impl DecodeAttnPlan {
    /// f32 elements of the partial-accumulator scratch (`[splits, heads, head_dim]`).
    pub fn acc_len(&self) -> usize {
        let p = &self.params;
        p.splits as usize * p.heads as usize * p.head_dim as usize
    }

    /// f32 elements of the partial (max, sum) scratch (`[splits, heads, 2]`).
    pub fn ml_len(&self) -> usize {
        self.params.splits as usize * self.params.heads as usize * 2
    }

    /// Split counters the launch uses: one per (subgroup, KV head).
    pub fn counters(&self) -> usize {
        (self.params.heads / self.params.heads_per_block) as usize
    }
}

/// Plans one token's attention over at most `max_keys` cached keys, `kv_len` of them known to
/// the host (the params' `kv_len`; a device-side count adds the rest, see
/// [`DecodeAttnParams`]), for the longest length; each length then uses some of the splits
/// ([`DecodeAttnParams::splits_for`] in the tensor-core kernels,
/// [`DecodeAttnParams::splits_used`] in the f32 one).
///
/// With `tensor_cores` (f16/bf16, head dim 64 or 128): up to `DECODE_MMA_HEADS` query heads of
/// a KV group per block, and as many splits as fill `DECODE_BLOCKS_PER_SM` blocks per SM in
/// one wave (every block streams at once; a partial second wave would double the time).
/// Otherwise (the f32 path): up to `DECODE_MAX_HEADS_PER_BLOCK` heads per one-warp block and
/// about 32 such blocks per SM. Both within the split limits. Every key counts as fresh
/// ([`DECODE_ALL_KEYS_FRESH`]); a caller that knows better narrows `params.fresh_keys`.
#[allow(clippy::too_many_arguments)]
pub fn decode_attention(
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    kv_len: usize,
    max_keys: usize,
    scale: f32,
    sm_count: usize,
    tensor_cores: bool,
) -> DecodeAttnPlan {
    let group = heads / kv_heads;
    let max_per_block = if tensor_cores {
        DECODE_MMA_HEADS
    } else {
        DECODE_MAX_HEADS_PER_BLOCK
    };
    let per_block = (1..=max_per_block.min(group))
        .rev()
        .find(|g| group.is_multiple_of(*g))
        .unwrap_or(1);
    let subgroups = group / per_block;
    let blocks_per_split = kv_heads * subgroups;
    let sms = sm_count.max(1);
    let wanted = if tensor_cores {
        sms * DECODE_BLOCKS_PER_SM / blocks_per_split
    } else {
        (sms * 32).div_ceil(blocks_per_split)
    };
    let splits = wanted
        .min(DECODE_MAX_SPLITS)
        .min(max_keys.max(kv_len).div_ceil(DECODE_MIN_SPLIT_LEN))
        .max(1);
    let (block, smem) = if tensor_cores {
        (DECODE_WARPS as u32 * 32, decode_smem_bytes(head_dim))
    } else {
        (32, DECODE_SIMT_SMEM_BYTES)
    };
    DecodeAttnPlan {
        params: DecodeAttnParams {
            heads: heads as u32,
            kv_heads: kv_heads as u32,
            head_dim: head_dim as u32,
            kv_len: kv_len as u32,
            kv_stride: (kv_heads * head_dim) as u32,
            splits: splits as u32,
            heads_per_block: per_block as u32,
            scale_log2: scale * core::f32::consts::LOG2_E,
            fresh_keys: DECODE_ALL_KEYS_FRESH,
            max_keys: max_keys.max(kv_len) as u32,
        },
        launch: LaunchShape {
            grid: (subgroups as u32, kv_heads as u32, splits as u32),
            block: (block, 1, 1),
            shared_mem_bytes: smem as u32,
        },
    }
}

/// FlashAttention-2 prefill (`flash_attn_d{head_dim}_*`): one block of `FLASH_WARPS` warps per
/// head and `FLASH_BLOCK_M`-row query tile, [`flash_smem_bytes`] of shared memory. `None` when
/// the grid would exceed the driver's limits (more than 65535 query tiles or sequences).
pub fn flash_attention(
    heads: usize,
    q_len: usize,
    batch: usize,
    head_dim: usize,
) -> Option<LaunchShape> {
    let tiles = u16::try_from(q_len.div_ceil(FLASH_BLOCK_M)).ok()?;
    let batch = u16::try_from(batch).ok()?;
    Some(LaunchShape {
        grid: (
            u32::try_from(heads).ok()?,
            tiles.max(1) as u32,
            batch as u32,
        ),
        block: (FLASH_WARPS as u32 * 32, 1, 1),
        shared_mem_bytes: flash_smem_bytes(head_dim) as u32,
    })
}

/// FlashAttention-3 prefill (`flash3_attn_d128_*`, sm_90a): the FlashAttention-2 grid of
/// [`FLASH_BLOCK_M`]-row query tiles, [`FLASH3_THREADS`] threads, [`flash3_smem_bytes`]. `None`
/// as for [`flash_attention`].
pub fn flash3_attention(heads: usize, q_len: usize, batch: usize) -> Option<LaunchShape> {
    let mut shape = flash_attention(heads, q_len, batch, FLASH3_HEAD_DIM)?;
    shape.block = (FLASH3_THREADS as u32, 1, 1);
    shape.shared_mem_bytes = flash3_smem_bytes() as u32;
    Some(shape)
}

/// `argmax_f32`: one block of [`ARGMAX_BLOCK`] threads and a (value, index) pair per warp in
/// shared memory.
pub fn argmax() -> LaunchShape {
    LaunchShape {
        grid: (1, 1, 1),
        block: (ARGMAX_BLOCK, 1, 1),
        shared_mem_bytes: ARGMAX_BLOCK / 32 * 8,
    }
}

/// A single thread (`add_u32`: the decode step's position update).
pub fn single() -> LaunchShape {
    LaunchShape {
        grid: (1, 1, 1),
        block: (1, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Work items of `rope_kv_write_*` (before chunking, as [`rope_items`]): the rotated pairs of
/// `q` and `k` plus the elements of `v`.
pub fn rope_kv_items(seq: usize, heads: usize, kv_heads: usize, head_dim: usize) -> usize {
    rope_items(seq * (heads + kv_heads), head_dim) + map_items(seq * kv_heads * head_dim)
}
