//! Typed launchers for the kernels of `gpu-kernels/`: grid/block math, symbol names
//! (`{op}_{dtype}`), parameter structs shared with the kernel crate. Shape and dtype checks
//! happen one layer up (`functional`); these take raw device addresses.

use cudarc::driver::{DeviceRepr, LaunchConfig, PushKernelArg};
use nano_infer_kernels::params::{
    CACHED_CHUNKS, DECODE_MAX_HEADS_PER_BLOCK, DECODE_MAX_SPLITS, DECODE_MIN_SPLIT_LEN,
    DecodeAttnParams, ELEMENTWISE_BLOCK, GEMV_BLOCK, MAX_RANK, REDUCE_SMEM_BYTES, ROW_BLOCK_MAX,
    RopeParams, SoftmaxParams, StridedCopy, WARP_ROWS_PER_BLOCK,
};

use super::context::{CudaBackend, cuda_err};
use super::storage::CudaStorage;
use crate::error::{Error, Result};
use crate::tensor::{DType, Layout};

/// A `#[repr(C)]` parameter struct passed by value to a kernel.
#[derive(Clone, Copy)]
#[repr(transparent)]
struct ByValue<T>(T);
// SAFETY: only instantiated with the kernel crate's `#[repr(C)]` plain-data param structs,
// whose layout the kernels share.
unsafe impl<T: Copy> DeviceRepr for ByValue<T> {}

/// Launches kernel `$name` with the listed local variables as arguments, in order.
macro_rules! launch {
    ($be:expr, $name:expr, $cfg:expr, ($($arg:ident),* $(,)?)) => {{
        let f = $be.function(&$name)?;
        let mut builder = $be.stream().launch_builder(&f);
        $( builder.arg(&$arg); )*
        // SAFETY: the launcher computed the grid from the sizes the kernel's contract names and
        // passes addresses of buffers that hold them.
        unsafe { builder.launch($cfg) }.map_err(cuda_err("launch"))?;
    }};
}

/// Threads per row for a row kernel (RMSNorm, softmax): about `CACHED_CHUNKS` 8-element chunks
/// per thread, so each thread has several loads in flight and the row stays in registers.
fn row_threads(cols: usize) -> u32 {
    let per_thread = 8 * CACHED_CHUNKS;
    (cols.div_ceil(per_thread).div_ceil(32) * 32).clamp(32, ROW_BLOCK_MAX as usize) as u32
}

/// Launch shape of a row kernel: one-warp rows go `WARP_ROWS_PER_BLOCK` to a block.
fn rows_config(rows: usize, cols: usize) -> Result<LaunchConfig> {
    let threads = row_threads(cols);
    let rows_per_block = if threads == 32 {
        WARP_ROWS_PER_BLOCK
    } else {
        1
    };
    let grid = u32::try_from(rows.div_ceil(rows_per_block as usize))
        .map_err(|_| Error::invalid("launch", format!("{rows} rows exceed the grid limit")))?;
    Ok(LaunchConfig {
        grid_dim: (grid.max(1), 1, 1),
        block_dim: (threads, rows_per_block, 1),
        shared_mem_bytes: REDUCE_SMEM_BYTES,
    })
}

impl CudaBackend {
    /// A grid-stride launch over `items` work items, capped at full occupancy.
    fn stride_config(&self, items: usize) -> LaunchConfig {
        let blocks = items
            .div_ceil(ELEMENTWISE_BLOCK as usize)
            .clamp(1, self.sm_count() * 8);
        LaunchConfig {
            grid_dim: (blocks as u32, 1, 1),
            block_dim: (ELEMENTWISE_BLOCK, 1, 1),
            shared_mem_bytes: 0,
        }
    }

    /// `out = rmsnorm(x) * w` over rows of `cols`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn rms_norm(
        &self,
        x: u64,
        w: u64,
        out: u64,
        rows: usize,
        cols: usize,
        eps: f32,
        dt: DType,
    ) -> Result<()> {
        let (rows_u, cols_u) = (rows as u32, cols as u32);
        let name = format!("rmsnorm_{}", dt.name());
        launch!(
            self,
            name,
            rows_config(rows, cols)?,
            (x, w, out, rows_u, cols_u, eps)
        );
        Ok(())
    }

    /// `sum = x + r; out = rmsnorm(sum) * w` (`sum` may be `x`, or 0 to skip writing it).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn add_rms_norm(
        &self,
        x: u64,
        r: u64,
        w: u64,
        sum: u64,
        out: u64,
        rows: usize,
        cols: usize,
        eps: f32,
        dt: DType,
    ) -> Result<()> {
        let (rows_u, cols_u) = (rows as u32, cols as u32);
        let name = format!("add_rmsnorm_{}", dt.name());
        launch!(
            self,
            name,
            rows_config(rows, cols)?,
            (x, r, w, sum, out, rows_u, cols_u, eps)
        );
        Ok(())
    }

    /// `out = op(x)` for a unary map (`silu`).
    pub(crate) fn unary(&self, op: &str, x: u64, out: u64, n: usize, dt: DType) -> Result<()> {
        let n_u = n as u64;
        launch!(
            self,
            format!("{op}_{}", dt.name()),
            self.stride_config(n.div_ceil(8)),
            (x, out, n_u)
        );
        Ok(())
    }

    /// `out = op(a, b)` for a binary map (`add`, `mul`, `swiglu`).
    pub(crate) fn binary(
        &self,
        op: &str,
        a: u64,
        b: u64,
        out: u64,
        n: usize,
        dt: DType,
    ) -> Result<()> {
        let n_u = n as u64;
        launch!(
            self,
            format!("{op}_{}", dt.name()),
            self.stride_config(n.div_ceil(8)),
            (a, b, out, n_u)
        );
        Ok(())
    }

    /// Rotary embedding (see `RopeParams`).
    pub(crate) fn rope(
        &self,
        x: u64,
        out: u64,
        cos: u64,
        sin: u64,
        p: RopeParams,
        dt: DType,
    ) -> Result<()> {
        let items = p.rows as usize * (p.head_dim as usize / 2).max(1);
        let params = ByValue(p);
        launch!(
            self,
            format!("rope_{}", dt.name()),
            self.stride_config(items.div_ceil(8)),
            (x, out, cos, sin, params)
        );
        Ok(())
    }

    /// Row softmax (see `SoftmaxParams`).
    pub(crate) fn softmax(
        &self,
        x: u64,
        out: u64,
        rows: usize,
        p: SoftmaxParams,
        dt: DType,
    ) -> Result<()> {
        let cfg = rows_config(rows, p.cols as usize)?;
        let params = ByValue(p);
        launch!(
            self,
            format!("softmax_{}", dt.name()),
            cfg,
            (x, out, params)
        );
        Ok(())
    }

    /// Gathers `n_ids` rows of `table` (`[vocab, cols]`) into `out`; `ids` is a device array.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn embedding(
        &self,
        ids: u64,
        table: u64,
        out: u64,
        n_ids: usize,
        cols: usize,
        vocab: usize,
        dt: DType,
    ) -> Result<()> {
        let cfg = LaunchConfig {
            grid_dim: (n_ids as u32, 1, 1),
            block_dim: ((cols.div_ceil(32) * 32).clamp(32, 256) as u32, 1, 1),
            shared_mem_bytes: 0,
        };
        let (cols_u, vocab_u) = (cols as u32, vocab as u32);
        launch!(
            self,
            format!("embedding_{}", dt.name()),
            cfg,
            (ids, table, out, cols_u, vocab_u)
        );
        Ok(())
    }

    /// `y[m, n] = x[m, k] · w[n, k]ᵀ` for `m <= GEMV_MAX_M` (decode-time Linear layers).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn gemv(
        &self,
        w: u64,
        x: u64,
        y: u64,
        m: usize,
        n: usize,
        k: usize,
        dt: DType,
    ) -> Result<()> {
        let warps_per_block = (GEMV_BLOCK / 32) as usize;
        let blocks = n.div_ceil(warps_per_block).clamp(1, self.sm_count() * 16);
        let cfg = LaunchConfig {
            grid_dim: (blocks as u32, 1, 1),
            block_dim: (GEMV_BLOCK, 1, 1),
            shared_mem_bytes: 0,
        };
        let (m_u, n_u, k_u) = (m as u32, n as u32, k as u32);
        launch!(
            self,
            format!("gemv_{}", dt.name()),
            cfg,
            (w, x, y, m_u, n_u, k_u)
        );
        Ok(())
    }

    /// True when the split-KV decode kernel handles this head size (one 16-byte chunk per lane,
    /// `head_dim / 8` lanes per row, a power of two up to 32).
    pub(crate) fn decode_attention_supports(head_dim: usize) -> bool {
        head_dim.is_multiple_of(8) && (head_dim / 8).is_power_of_two() && head_dim / 8 <= 32
    }

    /// One token's attention: `q` `[heads, d]` against `kv_len` rows of K and V (row stride
    /// `kv_heads * d`), into `out` `[heads, d]`. See `gpu-kernels/src/attention_decode.rs`.
    ///
    /// # Safety
    /// The buffers hold those extents, 16-byte aligned; `decode_attention_supports(d)`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) unsafe fn decode_attention(
        &self,
        q: u64,
        k: u64,
        v: u64,
        out: u64,
        heads: usize,
        kv_heads: usize,
        d: usize,
        kv_len: usize,
        scale: f32,
        dt: DType,
    ) -> Result<()> {
        let group = heads / kv_heads;
        let per_block = (1..=DECODE_MAX_HEADS_PER_BLOCK.min(group))
            .rev()
            .find(|g| group.is_multiple_of(*g))
            .unwrap_or(1);
        let subgroups = group / per_block;
        // About one wave of one-warp blocks (32 per SM), within the split limits.
        let wanted = (self.sm_count() * 32).div_ceil(kv_heads * subgroups);
        let most = DECODE_MAX_SPLITS
            .min(kv_len.div_ceil(DECODE_MIN_SPLIT_LEN))
            .max(1);
        let split_len = kv_len.div_ceil(wanted.clamp(1, most));
        let splits = kv_len.div_ceil(split_len);
        let p = DecodeAttnParams {
            heads: heads as u32,
            kv_heads: kv_heads as u32,
            head_dim: d as u32,
            kv_len: kv_len as u32,
            kv_stride: (kv_heads * d) as u32,
            split_len: split_len as u32,
            splits: splits as u32,
            heads_per_block: per_block as u32,
            scale_log2: scale * std::f32::consts::LOG2_E,
        };
        let acc = self.alloc(splits * heads * d, DType::F32)?;
        let ml = self.alloc(splits * heads * 2, DType::F32)?;
        let (acc_p, ml_p, params) = (acc.ptr(), ml.ptr(), ByValue(p));
        let cfg = LaunchConfig {
            grid_dim: (subgroups as u32, kv_heads as u32, splits as u32),
            block_dim: (32, 1, 1),
            shared_mem_bytes: 0,
        };
        launch!(
            self,
            format!("decode_attn_h{per_block}_{}", dt.name()),
            cfg,
            (q, k, v, acc_p, ml_p, params)
        );
        let cfg = LaunchConfig {
            grid_dim: (heads as u32, 1, 1),
            block_dim: (d as u32, 1, 1),
            shared_mem_bytes: 0,
        };
        launch!(
            self,
            format!("decode_attn_combine_{}", dt.name()),
            cfg,
            (acc_p, ml_p, out, params)
        );
        Ok(())
    }

    /// Converts `n` elements at `src` from `from` to `to` into new storage.
    pub(crate) fn cast(&self, src: u64, from: DType, to: DType, n: usize) -> Result<CudaStorage> {
        let out = self.alloc(n, to)?;
        let (dst, n_u) = (out.ptr(), n as u64);
        launch!(
            self,
            format!("cast_{}_{}", from.name(), to.name()),
            self.stride_config(n.div_ceil(8)),
            (src, dst, n_u)
        );
        Ok(out)
    }

    /// Copies the view `src_layout` of the buffer at `src` into the view `dst_layout` at `dst`.
    ///
    /// # Safety
    /// Both layouts must address only elements inside their buffers and have the same shape.
    pub(crate) unsafe fn copy_strided(
        &self,
        src: u64,
        src_layout: &Layout,
        dst: u64,
        dst_layout: &Layout,
        dt: DType,
    ) -> Result<()> {
        let rank = src_layout.shape().rank();
        if rank > MAX_RANK {
            return Err(Error::invalid(
                "copy_strided",
                format!("rank {rank} exceeds {MAX_RANK}"),
            ));
        }
        let mut p = StridedCopy {
            shape: [1; MAX_RANK],
            ..Default::default()
        };
        let pad = MAX_RANK - rank;
        for d in 0..rank {
            p.shape[pad + d] = src_layout.shape().dims()[d] as u64;
            p.src_strides[pad + d] = src_layout.strides()[d] as u64;
            p.dst_strides[pad + d] = dst_layout.strides()[d] as u64;
        }
        p.src_offset = src_layout.offset() as u64;
        p.dst_offset = dst_layout.offset() as u64;
        p.n = src_layout.shape().elem_count() as u64;
        if p.n == 0 {
            return Ok(());
        }
        let params = ByValue(p);
        launch!(
            self,
            format!("copy_strided_{}", dt.name()),
            self.stride_config(p.n as usize),
            (src, dst, params)
        );
        Ok(())
    }
}
