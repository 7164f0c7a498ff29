//! Launch constants and parameter structs shared by the kernels and the host launchers, so the
//! two sides cannot disagree.

/// Largest tensor rank the strided-copy kernel handles.
pub const MAX_RANK: usize = 6;

/// Threads per block of the elementwise (grid-stride) kernels.
pub const ELEMENTWISE_BLOCK: u32 = 256;

/// Upper bound on threads per block of the row kernels (RMSNorm, softmax).
pub const ROW_BLOCK_MAX: u32 = 256;

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
    pub cols: u32,
    pub q_len: u32,
    pub scale: f32,
    pub causal: u32,
}
