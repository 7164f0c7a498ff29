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

/// Most threads of a GEMV block (threads split a row into groups of `GEMV_GROUP_ELEMS`
/// weights, so a 4096-wide row takes 128 threads and one group of loads).
pub const GEMV_MAX_THREADS: u32 = 128;

/// Dynamic shared memory of a GEMV block: one f32 per warp, row and activation row.
pub const GEMV_SMEM_BYTES: u32 = (GEMV_MAX_THREADS / 32) * (GEMV_ROWS * GEMV_MAX_M) as u32 * 4;

/// Query heads one decode-attention block serves at most (its accumulators live in registers).
pub const DECODE_MAX_HEADS_PER_BLOCK: usize = 4;

/// Tokens each decode-attention lane loads before folding them in (bytes in flight).
pub const DECODE_TOKENS_AHEAD: usize = 4;

/// Most splits of the keys per decode step: the combine pass walks them serially.
pub const DECODE_MAX_SPLITS: usize = 64;

/// Fewest keys per split: below this the partial results outweigh the keys.
pub const DECODE_MIN_SPLIT_LEN: usize = 64;

/// `decode_attn_*`: one new token's attention over a KV cache, split along the keys.
/// q is `[heads, head_dim]`; K and V rows of token `t` for KV head `h` start at
/// `t * kv_stride + h * head_dim`. Block `(subgroup, kv_head, split)` handles `heads_per_block`
/// query heads of that KV head over keys `split * split_len ..` and writes unnormalised partial
/// results; `decode_attn_combine_*` merges the splits.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct DecodeAttnParams {
    pub heads: u32,
    pub kv_heads: u32,
    pub head_dim: u32,
    pub kv_len: u32,
    pub kv_stride: u32,
    pub split_len: u32,
    pub splits: u32,
    /// Query heads per block (1..=DECODE_MAX_HEADS_PER_BLOCK, dividing heads / kv_heads).
    pub heads_per_block: u32,
    /// softmax scale times log2(e): scores are kept in the log2 domain.
    pub scale_log2: f32,
}
