//! Launch constants and parameter structs shared by the kernels and the host launchers, so the
//! two sides cannot disagree.

/// Largest tensor rank the strided-copy kernel handles.
pub const MAX_RANK: usize = 6;

/// Threads per block of the elementwise (grid-stride) kernels.
pub const ELEMENTWISE_BLOCK: u32 = 256;

/// Upper bound on threads per row of the row kernels (RMSNorm, softmax).
pub const ROW_BLOCK_MAX: u32 = 512;

/// Chunks of 8 elements each thread of a row kernel keeps in registers across its passes. The
/// host gives each row `ceil(chunks / CACHED_CHUNKS)` threads (a multiple of 32), so rows up
/// to `8 * CACHED_CHUNKS * ROW_BLOCK_MAX` elements are read from memory once.
pub const CACHED_CHUNKS: usize = 4;

/// Rows one block of a row kernel handles when a row gets a single warp (short rows): the
/// warp reduces with shuffles alone, no barrier, and the block still has 4 warps.
pub const WARP_ROWS_PER_BLOCK: u32 = 4;

/// Shared-memory bytes of a block reduction (one f32 per warp, 32 warps).
pub const REDUCE_SMEM_BYTES: u32 = 32 * 4;

/// `copy_strided_*`: copies `n` elements of a view of rank `rank` (dims outermost first,
/// padded with size 1) from `src` to `dst`, each with its own strides and offset (in elements).
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct StridedCopy {
    pub shape: [u64; MAX_RANK],
    pub src_strides: [u64; MAX_RANK],
    pub dst_strides: [u64; MAX_RANK],
    pub src_offset: u64,
    pub dst_offset: u64,
    pub n: u64,
}

/// `rope_*`: rotary embedding of `x` laid out `[batch, seq, heads, head_dim]`.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct RopeParams {
    /// `batch * seq * heads`.
    pub rows: u32,
    pub seq: u32,
    pub heads: u32,
    pub head_dim: u32,
    /// Position of token 0 (the decode step's cache length).
    pub pos_offset: u32,
    /// 1: pairs `(x[2i], x[2i+1])` (GGUF); 0: halves `(x[i], x[i + d/2])` (HF).
    pub interleaved: u32,
}

/// `softmax_*`: rows of length `cols`; row `r` is query `r % q_len`; with `causal != 0`,
/// column `j` is masked when `j > r % q_len + cols - q_len`.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct SoftmaxParams {
    pub rows: u32,
    pub cols: u32,
    pub q_len: u32,
    pub scale: f32,
    pub causal: u32,
}

/// Largest number of activation rows the GEMV kernels take; more rows go to cuBLAS. Each
/// block loads a piece of `x` once for its [`GEMV_ROWS`] weight rows, so `x` traffic (from L1)
/// is `M / GEMV_ROWS` times the weight traffic.
pub const GEMV_MAX_M: usize = 8;

/// Weight rows one GEMV block reduces (gate and up row `j` in the SwiGLU variant): the `x`
/// pieces it loads serve all of them.
pub const GEMV_ROWS: usize = 2;

/// 8-element pieces of a row each GEMV thread loads before doing math (a *group*: 4 chunks of
/// f16/bf16, 2 of Q8_0, 1 of Q4; see `weights::WeightFormat::UNROLL`).
pub const GEMV_GROUP_PIECES: usize = 4;

/// Weights of a row per GEMV thread group.
pub const GEMV_GROUP_ELEMS: usize = 8 * GEMV_GROUP_PIECES;

/// Most threads of an M = 1 GEMV block on dense weights. Threads split a row into groups of
/// `GEMV_GROUP_ELEMS` weights, so a 4096-wide row takes 128 threads and an 11008-wide one 352,
/// each with one group of loads: a block is one round of loads, short, so the last blocks of
/// the grid leave little tail (H100, f16 11008x4096, 20 calls back to back: 2.64 TB/s with at
/// most 128 threads, 2.86 with 512). 448 rather than 512: a block must fit the SM's 64K
/// registers, and the M = 1 kernels take up to 131 (the f32 RoPE form); 14 warps leave room
/// for 146.
pub const GEMV_MAX_THREADS: u32 = 448;

/// Most threads of a wider GEMV block (M > 1), and of any block on quantized weights: 128 keep
/// more blocks per SM (H100, 11008x4096: 512 cost M = 4 a quarter of its bandwidth; Llama-2-7B
/// decode with 512 vs 128: Q8_0 299 vs 309 tokens/s, Q4_1 328 vs 337).
pub const GEMV_MAX_THREADS_WIDE: u32 = 128;

/// Dynamic shared memory of a GEMV block: one f32 per warp, row (and the norm's sum of
/// squares) and activation row.
pub const GEMV_SMEM_BYTES: u32 =
    (GEMV_MAX_THREADS / 32) * ((GEMV_ROWS + 1) * GEMV_MAX_M) as u32 * 4;

/// f32 decode attention (the simple path, `decode_attn_h{1..4}_f32`): query heads one
/// one-warp block serves at most (its accumulators live in registers).
pub const DECODE_MAX_HEADS_PER_BLOCK: usize = 4;

/// f32 decode attention: tokens each lane loads before folding them in (bytes in flight).
pub const DECODE_TOKENS_AHEAD: usize = 4;

/// Tensor-core decode attention (`decode_attn_d{64,128}_{f16,bf16}`): query heads of one KV
/// group a block serves at most. They are the rows of the `mma.m16n8k16` A operand; rows 8..16
/// stay zero, so only the first half of each accumulator fragment is live.
pub const DECODE_MMA_HEADS: usize = 8;

/// Tensor-core decode attention: warps per block; each takes 16 keys of every tile.
pub const DECODE_WARPS: usize = 4;

/// Tensor-core decode attention: keys per K/V tile (16 per warp).
pub const DECODE_BLOCK_N: usize = 16 * DECODE_WARPS;

/// Tensor-core decode attention: K/V tiles in the `cp.async` ring. Two tiles stream in while
/// one is used: 64 KB in flight per block at head dim 128.
pub const DECODE_STAGES: usize = 3;

/// Tensor-core decode attention: blocks planned per SM. The plan fills one wave of these
/// slots and no more (a second, partial wave would double the time). One, not the two that
/// the shared memory allows: half the splits halve the partials that the last block of a
/// head group merges, a serial tail (H100, B1 H32 hd128 f16, back to back: GQA KV8 4096 keys
/// 1.33 -> 1.74 TB/s, 16384 keys 2.05 -> 2.28; MHA 2.34 -> 2.38 and 2.88 -> 2.91). The
/// bytes in flight (two tiles, 64 KB per SM at head dim 128) still cover the DRAM latency.
pub const DECODE_BLOCKS_PER_SM: usize = 1;

/// Dynamic shared memory of a tensor-core decode block: the K/V ring (the end-of-split merge
/// of the warps' results reuses it).
pub const fn decode_smem_bytes(head_dim: usize) -> usize {
    DECODE_STAGES * 2 * DECODE_BLOCK_N * head_dim * 2
}

/// Most splits of the keys per decode step: the last block of each head group merges them all.
pub const DECODE_MAX_SPLITS: usize = 256;

/// Fewest keys per split: below this the partial results and their merge (a chain of L2 round
/// trips after the keys) outweigh the keys. A cache of up to this many keys takes one split,
/// which writes its answer directly (no merge at all): what a short-context decode step wants.
pub const DECODE_MIN_SPLIT_LEN: usize = 256;

/// Words of the decode kernels' split counters (one per (subgroup, KV head), so at most one per
/// query head): the backend allocates them once, zeroed, and every launch leaves them zero.
pub const DECODE_COUNTERS: usize = 1024;

/// Dynamic shared memory of the f32 decode kernel: the word that tells a block it finished
/// last.
pub const DECODE_SIMT_SMEM_BYTES: usize = 16;

/// `decode_attn_*`: one new token's attention over a KV cache, split along the keys.
/// q is `[heads, head_dim]`; K and V rows of token `t` for KV head `h` start at
/// `t * kv_stride + h * head_dim`. The number of keys is `kv_len`, plus the `u32` the kernels'
/// `kv_len_dev` argument points at when it is not null (a CUDA graph's decode step keeps the
/// cache length in device memory, so one captured launch serves every length). Block
/// `(subgroup, kv_head, split)` handles `heads_per_block` query heads of that KV head over one
/// split of the keys and writes unnormalised partial results: in the tensor-core kernels the
/// splits in use ([`DecodeAttnParams::splits_for`] the total) take the key tiles round-robin,
/// in the f32 kernel keys `split * split_len ..` ([`DecodeAttnParams::split_len`]). Blocks
/// past the last key exit at once; the last block of each (subgroup, KV head) to finish merges
/// the splits in use into the output, counting them on its word of a
/// [`DECODE_COUNTERS`]-word buffer.
/// [`crate::launch_shape::decode_attention`] makes them (no `Default`: a zero `fresh_keys`
/// would let the kernel read every key before its grid-dependency wait).
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct DecodeAttnParams {
    pub heads: u32,
    pub kv_heads: u32,
    pub head_dim: u32,
    /// Keys known to the host (all of them when `kv_len_dev` is null).
    pub kv_len: u32,
    pub kv_stride: u32,
    /// Splits the grid has (`grid.z`): the most that any length uses.
    pub splits: u32,
    /// Query heads per block, dividing heads / kv_heads: up to [`DECODE_MMA_HEADS`] for the
    /// tensor-core kernels, [`DECODE_MAX_HEADS_PER_BLOCK`] for the f32 one.
    pub heads_per_block: u32,
    /// softmax scale times log2(e): scores are kept in the log2 domain.
    pub scale_log2: f32,
    /// Keys at the end of the cache that the kernel launched just before this one may still be
    /// writing ([`DECODE_ALL_KEYS_FRESH`]: any of them). The tensor-core kernels start loading
    /// the K/V tiles of the other keys before their grid-dependency wait, so under a
    /// programmatic dependent launch those loads overlap the previous kernel's tail; they read
    /// `kv_len_dev` before it too, so with a fresh count below the total, that count must not
    /// be written by the previous kernel either. A decode step appends one key per token, in
    /// the launch just before its attention: 1.
    pub fresh_keys: u32,
    /// Rows K and V hold: the key count is clamped to it, so a device-side count past the
    /// cache (which the host cannot check) reads no row outside it.
    pub max_keys: u32,
}

/// [`DecodeAttnParams::fresh_keys`] when the previous kernel may have written any key (or the
/// device-side count): nothing is read before the grid-dependency wait.
pub const DECODE_ALL_KEYS_FRESH: u32 = u32::MAX;

/// FlashAttention-2 prefill: warps per block.
pub const FLASH_WARPS: usize = 4;

/// FlashAttention-2 prefill: 16-row blocks of queries per warp. Two let every K/V fragment
/// read from shared memory feed two `mma`s, which halves the shared-memory traffic per FLOP.
pub const FLASH_ROW_BLOCKS: usize = 2;

/// FlashAttention-2 prefill: how far (log2 units) a row's scores may pass its running max before
/// the max moves and the accumulators are rescaled (lazy rescaling, as in FlashAttention-4).
/// Until then P = 2^(S - stale max) is below 2^8 = 256, which f16 and bf16 hold with their
/// full relative precision; the sum and the accumulators share the stale max, so the result is
/// the same softmax. Most tiles past the first then skip the D / 4 multiplies per thread.
pub const FLASH_RESCALE_SLACK: f32 = 8.0;

/// FlashAttention-2 prefill: query rows per block.
pub const FLASH_BLOCK_M: usize = FLASH_WARPS * 16 * FLASH_ROW_BLOCKS;

/// FlashAttention-2 prefill: stages of the K/V ring in shared memory (the tiles after the one in
/// use stream in behind its math). Head dim 128 takes 4 (96 KB, two blocks per SM; H100, B1 H32
/// full attention, f16 and bf16 S 2048-8192: 4 stages 4-7% faster than 2, 3 at most 2.5%
/// faster; 5 spill); head dim 64 keeps 2 (48 KB), leaving its blocks per SM to the registers.
pub const fn flash_stages(head_dim: usize) -> usize {
    if head_dim > 64 { 4 } else { 2 }
}

/// FlashAttention-2 prefill: dynamic shared memory, the Q tile and [`flash_stages`] stages of K
/// and V tiles (past the 48 KB default at head dim 128: an opt-in per kernel).
pub const fn flash_smem_bytes(head_dim: usize) -> usize {
    (FLASH_BLOCK_M + 2 * flash_stages(head_dim) * flash_block_n(head_dim)) * head_dim * 2
}

/// FlashAttention-2 prefill: keys per K/V tile streamed through shared memory. Head dim 128
/// takes 32: with 32 query rows per warp, 64-key score tiles next to the 128 f32 output
/// accumulators per thread exceed the 255 registers (ptxas spills).
pub const fn flash_block_n(head_dim: usize) -> usize {
    if head_dim > 64 { 32 } else { 64 }
}

/// FlashAttention-3 prefill (`flash3_attn_d128_*`, sm_90a `wgmma`): keys per K/V tile, the N of
/// each warpgroup's 64x128 score tile.
pub const FLASH3_BLOCK_N: usize = 128;

/// FlashAttention-3 prefill: threads per block, two warpgroups of 64 query rows each
/// ([`FLASH_BLOCK_M`] rows, the FlashAttention-2 grid).
pub const FLASH3_THREADS: usize = 256;

/// FlashAttention-3 prefill: stages of the K/V ring: the tile in use, the one loading, and the
/// one before, whose P·V may still be running.
pub const FLASH3_STAGES: usize = 3;

/// FlashAttention-3 prefill: the head dim it serves.
pub const FLASH3_HEAD_DIM: usize = 128;

/// FlashAttention-3 prefill: dynamic shared memory, the Q tile and [`FLASH3_STAGES`] K/V stages
/// (b16, head dim 128), plus 1 KB to align them to the 1024-byte swizzle atoms.
pub const fn flash3_smem_bytes() -> usize {
    1024 + (FLASH_BLOCK_M + 2 * FLASH3_STAGES * FLASH3_BLOCK_N) * FLASH3_HEAD_DIM * 2
}

/// `flash_attn_d{64,128}_*`: causal or full attention of `q_len` queries over `kv_len` keys.
/// Element strides (all multiples of 8, base pointers 16-byte aligned): the row of token `t`,
/// head `h`, sequence `b` of q starts at `b * q_batch_stride + t * q_row_stride + h * q_head_stride`,
/// and likewise for K/V (KV head `h / (heads / kv_heads)`) and the output. With `causal`, query
/// `i` sees keys `j <= i + kv_len - q_len` (bottom-right aligned, as a prefill after cached
/// tokens needs). Grid `(heads, ceil(q_len / FLASH_BLOCK_M), batch)`, `FLASH_WARPS * 32`
/// threads, [`flash_smem_bytes`] of shared memory.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct FlashAttnParams {
    pub q_len: u32,
    pub kv_len: u32,
    pub heads: u32,
    pub kv_heads: u32,
    pub q_row_stride: u32,
    pub q_head_stride: u32,
    pub kv_row_stride: u32,
    pub kv_head_stride: u32,
    pub o_row_stride: u32,
    pub o_head_stride: u32,
    pub q_batch_stride: u64,
    pub kv_batch_stride: u64,
    pub o_batch_stride: u64,
    /// 1: causal mask; 0: every query sees every key.
    pub causal: u32,
    /// softmax scale times log2(e): scores are exponentiated in the log2 domain.
    pub scale_log2: f32,
}
impl DecodeAttnParams {
    /// Splits in use for `kv_len` keys: as many as the grid has, but none with fewer than
    /// [`DECODE_MIN_SPLIT_LEN`] keys on average (the host plan and the kernels call this, so
    /// they agree), at least one.
    #[inline(always)]
    pub fn splits_for(&self, kv_len: u32) -> u32 {
        self.splits
            .min(kv_len.div_ceil(DECODE_MIN_SPLIT_LEN as u32))
            .max(1)
    }

    /// Keys per split for `kv_len` keys in the f32 kernel, whose splits are contiguous ranges.
    #[inline(always)]
    pub fn split_len(&self, kv_len: u32) -> u32 {
        kv_len.div_ceil(self.splits_for(kv_len)).max(1)
    }

    /// Splits of the f32 kernel that hold at least one of `kv_len` keys.
    #[inline(always)]
    pub fn splits_used(&self, kv_len: u32) -> u32 {
        kv_len.div_ceil(self.split_len(kv_len))
    }

    /// Of the tiles of split `split` of `splits` in the tensor-core kernel (tiles of `tile_len`
    /// keys, dealt round-robin: `split`, `split + splits`, ... of `kv_len.div_ceil(tile_len)`),
    /// how many of the first `at_most` hold only keys that are not fresh
    /// ([`Self::fresh_keys`]): the ones a block may load before its grid-dependency wait.
    /// Fresh keys are the last ones, so these tiles are a prefix.
    #[inline(always)]
    pub fn settled_tiles(
        &self,
        kv_len: usize,
        (split, splits): (usize, usize),
        tile_len: usize,
        at_most: usize,
    ) -> usize {
        let settled = kv_len.saturating_sub(self.fresh_keys as usize);
        // Tiles 0..whole hold settled keys only (a short last tile too, when every key is).
        let whole = if settled >= kv_len {
            kv_len.div_ceil(tile_len)
        } else {
            settled / tile_len
        };
        whole
            .saturating_sub(split)
            .div_ceil(splits.max(1))
            .min(at_most)
    }
}

impl FlashAttnParams {
    /// One sequence with contiguous `q`/`out` `[q_len, heads, head_dim]` and K/V
    /// `[kv_len, kv_heads, head_dim]` (the layout of the model and its KV cache).
    #[allow(clippy::too_many_arguments)]
    pub fn contiguous(
        q_len: u32,
        kv_len: u32,
        heads: u32,
        kv_heads: u32,
        head_dim: u32,
        causal: bool,
        scale: f32,
    ) -> FlashAttnParams {
        FlashAttnParams {
            q_len,
            kv_len,
            heads,
            kv_heads,
            q_row_stride: heads * head_dim,
            q_head_stride: head_dim,
            kv_row_stride: kv_heads * head_dim,
            kv_head_stride: head_dim,
            o_row_stride: heads * head_dim,
            o_head_stride: head_dim,
            causal: causal as u32,
            scale_log2: scale * core::f32::consts::LOG2_E,
            ..Default::default()
        }
    }
}

/// `rope_kv_write_*`: RoPE on `q` and `k` (`[seq, heads | kv_heads, head_dim]`) fused with the
/// KV-cache write: rotated `k` rows and `v` rows go to cache rows `pos .. pos + seq` (rows of
/// `kv_heads * head_dim` elements), where `pos = pos_offset` plus the `u32` the kernel's
/// `pos_dev` argument points at when it is not null.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct RopeKvParams {
    pub seq: u32,
    pub heads: u32,
    pub kv_heads: u32,
    pub head_dim: u32,
    pub pos_offset: u32,
    /// As [`RopeParams::interleaved`].
    pub interleaved: u32,
    /// Positions the caches and the RoPE tables both hold ([`GemvRopeParams::rows`]): a token
    /// at or past it is neither rotated nor written.
    pub rows: u32,
}

/// `gemv_rope_kv_m1_*`: the q/k/v projection with RoPE and the KV-cache write in its
/// epilogue. The weight's rows are q (`q_dim`), k then v (`kv_dim` each), heads of `head_dim`
/// rows; `interleaved` as [`RopeParams::interleaved`].
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct GemvRopeParams {
    pub q_dim: u32,
    pub kv_dim: u32,
    pub head_dim: u32,
    pub interleaved: u32,
    /// Positions the caches and the RoPE tables both hold: at a device-side position at or past
    /// it (which the host cannot check) the epilogue writes nothing, so no store or table read
    /// leaves them.
    pub rows: u32,
}

/// Threads of the one-block `argmax_f32` kernel.
pub const ARGMAX_BLOCK: u32 = 1024;
