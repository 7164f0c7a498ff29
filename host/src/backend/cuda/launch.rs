//! Typed launchers for the kernels of `gpu-kernels/`: grid/block math, symbol names
//! (`{op}_{dtype}`), parameter structs shared with the kernel crate. Shape and dtype checks
//! happen one layer up (`functional`); these take raw device addresses. The emulated device
//! runs the same launchers: only the launch step (`dispatch.rs`) differs.

use cudarc::driver::{DeviceRepr, LaunchConfig};
use nano_infer_kernels::emu::Param;
use nano_infer_kernels::launch_shape::{self, LaunchShape};
use nano_infer_kernels::params::{
    DECODE_COUNTERS, DecodeAttnParams, FLASH3_HEAD_DIM, FlashAttnParams, GemvRopeParams, MAX_RANK,
    RopeParams, SoftmaxParams, StridedCopy,
};
use nano_infer_kernels::weights::QuantFormat;

use super::context::{CudaBackend, Target};
use super::dispatch::KernelArg;
use super::storage::CudaStorage;
use crate::error::{Error, Result};
use crate::tensor::{DType, Layout};

/// A `#[repr(C)]` parameter struct passed by value to a kernel.
#[derive(Clone, Copy)]
#[repr(transparent)]
pub(super) struct ByValue<T>(pub(super) T);
// SAFETY: only plain-data param structs (`Param`: the kernel crate's `#[repr(C)]` ones), whose
// layout the kernels share.
unsafe impl<T: Param> DeviceRepr for ByValue<T> {}
// SAFETY: `repr(transparent)` over a `Param`, read as one.
unsafe impl<T: Param> Param for ByValue<T> {
    unsafe fn read(src: *const u8) -> Self {
        // SAFETY: forwarded contract.
        ByValue(unsafe { T::read(src) })
    }
}

/// A GEMV's weight operand: its address, the whole device buffer it lies in (which decides
/// whether the kernel may read it before waiting for the kernel before it,
/// [`CudaBackend::launch_kernel_reading_early`]) and, for repacked blocks, their format.
pub(crate) struct GemvWeight {
    pub ptr: u64,
    pub buffer: std::ops::Range<u64>,
    pub quant: Option<QuantFormat>,
}

impl GemvWeight {
    /// The end of a GEMV kernel's name for this weight and activation type: `{dt}` or
    /// `{format}_{dt}`.
    fn kernel_suffix(&self, dt: DType) -> String {
        match self.quant {
            Some(f) => format!("{}_{}", f.name(), dt.name()),
            None => dt.name().to_string(),
        }
    }
}

/// What a decode GEMV does besides its product (`gpu-kernels/src/gemv.rs`); the default is
/// the plain product.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct GemvFusion {
    /// RMSNorm of each input row first, with this weight (`[k]`, the activation type; 0: none)
    /// and epsilon.
    pub norm: (u64, f32),
    /// Added to the outputs (`[m, n]`, the activation type; 0: none). Not with `swiglu`.
    pub residual: u64,
    /// The weight is `[gate; up]` (`[2n, k]`) and `y[m, j] = silu(gate_j·x_m)·(up_j·x_m)`.
    pub swiglu: bool,
}

/// Launches kernel `$name` with the listed local variables as arguments, in order, on the GPU
/// or the emulator (`CudaBackend::launch_kernel`).
macro_rules! launch {
    ($be:expr, $name:expr, $cfg:expr, ($($arg:ident),* $(,)?)) => {{
        let args: &[&dyn $crate::backend::cuda::KernelArg] = &[$(&$arg),*];
        // SAFETY: the launcher computed the grid from the sizes the kernel's contract names and
        // passes addresses of buffers that hold them.
        unsafe { $be.launch_kernel(&$name, $cfg, args) }?;
    }};
}
pub(super) use launch;

/// The driver's launch configuration for a shape from `nano_infer_kernels::launch_shape` (the
/// grid/block math is shared with the kernel emulator, which runs the same shapes on the CPU).
pub(super) fn config(s: LaunchShape) -> LaunchConfig {
    LaunchConfig {
        grid_dim: s.grid,
        block_dim: s.block,
        shared_mem_bytes: s.shared_mem_bytes,
    }
}

/// Launch shape of a row kernel: one-warp rows go `WARP_ROWS_PER_BLOCK` to a block.
fn rows_config(rows: usize, cols: usize) -> Result<LaunchConfig> {
    launch_shape::rows(rows, cols)
        .map(config)
        .ok_or_else(|| Error::invalid("launch", format!("{rows} rows exceed the grid limit")))
}

impl CudaBackend {
    /// A grid-stride launch over `items` work items, capped at full occupancy.
    pub(super) fn stride_config(&self, items: usize) -> LaunchConfig {
        config(launch_shape::grid_stride(items, self.sm_count()))
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
            self.stride_config(launch_shape::map_items(n)),
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
            self.stride_config(launch_shape::map_items(n)),
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
        let items = launch_shape::rope_items(p.rows as usize, p.head_dim as usize);
        let params = ByValue(p);
        launch!(
            self,
            format!("rope_{}", dt.name()),
            self.stride_config(items),
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
        let cfg = config(launch_shape::embedding(n_ids, cols));
        let (cols_u, vocab_u) = (cols as u32, vocab as u32);
        launch!(
            self,
            format!("embedding_{}", dt.name()),
            cfg,
            (ids, table, out, cols_u, vocab_u)
        );
        Ok(())
    }

    /// `y[m, n] = x[m, k] · w[n, k]ᵀ` for `m <= GEMV_MAX_M` (decode-time Linear layers), with
    /// what `fuse` adds (see [`GemvFusion`]; a norm or residual with `m = 1` only). `w` holds
    /// `dt` values, or with `quant` that format's repacked blocks
    /// (`nano_infer_kernels::weights`). Kernel `gemv_[swiglu_][norm_]m{M}_[{format}_]{dt}`,
    /// `M` = `gemv_width(m)`.
    ///
    /// # Safety
    /// `x`, `y` and `fuse`'s buffers hold the extents above, `y` aliasing none of them.
    pub(crate) unsafe fn gemv(
        &self,
        w: GemvWeight,
        x: u64,
        y: u64,
        (m, n, k): (usize, usize, usize),
        dt: DType,
        fuse: GemvFusion,
    ) -> Result<()> {
        let normed = fuse.norm.0 != 0;
        if m > 1 && (normed || fuse.residual != 0) {
            return Err(Error::invalid(
                "gemv",
                "norm and residual fusions take one row",
            ));
        }
        let width = launch_shape::gemv_width(m);
        let cfg = config(
            launch_shape::gemv(n, k, width, w.quant.is_some(), fuse.swiglu)
                .ok_or_else(|| Error::invalid("gemv", format!("{n} rows exceed the grid")))?,
        );
        let name = format!(
            "gemv_{}{}m{width}_{}",
            if fuse.swiglu { "swiglu_" } else { "" },
            if normed { "norm_" } else { "" },
            w.kernel_suffix(dt)
        );
        let (w_ptr, m_u, n_u, k_u) = (w.ptr, m as u32, n as u32, k as u32);
        let ((norm, eps), residual) = (fuse.norm, fuse.residual);
        let args: &[&dyn KernelArg] = &[&w_ptr, &x, &y, &m_u, &n_u, &k_u, &norm, &residual, &eps];
        // SAFETY: the grid covers the n rows of k weights; w, x, y hold [n, k] weights (2n rows
        // for SwiGLU), [m, k] and [m, n] values, the norm and residual their extents (the
        // caller's contract); `w.buffer` is the buffer w lies in.
        unsafe { self.launch_kernel_reading_early(&name, cfg, args, w.buffer) }
    }

    /// One token's q/k/v projection (`w` `[q_dim + 2 kv_dim, k]`) of `x` (`[1, k]`, RMS-normed
    /// with `norm`'s weight and epsilon) with RoPE and the KV-cache write in its epilogue: q
    /// rotated into `q_out`, k rotated and v written into row `*pos_dev` of `caches`. Kernel
    /// `gemv_rope_kv_m1_[{format}_]{dt}`; its unfused reference is `gemv` then `rope_kv_write`.
    ///
    /// # Safety
    /// `x` holds `k` values, `q_out` `q_dim`, the caches row `*pos_dev` (rows of `kv_dim`) and
    /// the tables `(*pos_dev + 1) * head_dim / 2` entries; the outputs alias nothing else.
    #[allow(clippy::too_many_arguments)]
    pub(crate) unsafe fn gemv_rope_kv(
        &self,
        w: GemvWeight,
        [x, q_out]: [u64; 2],
        k: usize,
        dt: DType,
        (norm, eps): (u64, f32),
        [k_cache, v_cache, cos, sin]: [u64; 4],
        pos_dev: u64,
        p: GemvRopeParams,
    ) -> Result<()> {
        let n = (p.q_dim + 2 * p.kv_dim) as usize;
        let cfg = config(
            launch_shape::gemv(n, k, 1, w.quant.is_some(), false).ok_or_else(|| {
                Error::invalid("gemv_rope_kv", format!("{n} rows exceed the grid"))
            })?,
        );
        let name = format!("gemv_rope_kv_m1_{}", w.kernel_suffix(dt));
        let (w_ptr, k_u, params) = (w.ptr, k as u32, ByValue(p));
        let args: &[&dyn KernelArg] = &[
            &w_ptr, &x, &q_out, &k_u, &norm, &eps, &k_cache, &v_cache, &cos, &sin, &pos_dev,
            &params,
        ];
        // SAFETY: the caller's contract; the grid covers the weight's rows two by two.
        unsafe { self.launch_kernel_reading_early(&name, cfg, args, w.buffer) }
    }

    /// True when the split-KV decode kernels handle this head size: 64 or 128 (tensor cores for
    /// f16/bf16, the one-warp kernel for f32).
    pub(crate) fn decode_attention_supports(head_dim: usize) -> bool {
        matches!(head_dim, 64 | 128)
    }

    /// One token's attention: `q` `[heads, d]` against the first rows of K and V (row stride
    /// `kv_heads * d`), into `out` `[heads, d]`: `kv_len` rows, plus the `u32` at `kv_len_dev`
    /// when it is not 0 (then K and V hold `max_keys` rows, which bounds the grid). The last
    /// `fresh_keys` rows (`DECODE_ALL_KEYS_FRESH`: any) are the only cache memory, and `q`
    /// the only other input, that the kernel queued just before may write; the others may be
    /// read before it finishes. See `gpu-kernels/src/attention_decode.rs`.
    ///
    /// # Safety
    /// The buffers hold those extents, 16-byte aligned; `decode_attention_supports(d)`; unless
    /// `fresh_keys` is `DECODE_ALL_KEYS_FRESH`, the kernel queued just before this one writes
    /// neither `*kv_len_dev` nor the cache rows before the last `fresh_keys`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) unsafe fn decode_attention(
        &self,
        [q, k, v, out]: [u64; 4],
        heads: usize,
        kv_heads: usize,
        d: usize,
        kv_len: usize,
        (kv_len_dev, max_keys): (u64, usize),
        fresh_keys: u32,
        scale: f32,
        dt: DType,
    ) -> Result<()> {
        let tensor_cores = matches!(dt, DType::F16 | DType::BF16);
        let plan = launch_shape::decode_attention(
            heads,
            kv_heads,
            d,
            kv_len,
            max_keys,
            scale,
            self.sm_count(),
            tensor_cores,
        );
        let p = DecodeAttnParams {
            fresh_keys,
            ..plan.params
        };
        if plan.counters() > DECODE_COUNTERS {
            return Err(Error::invalid(
                "decode_attention",
                format!(
                    "{heads} query heads need {} split counters (at most {DECODE_COUNTERS})",
                    plan.counters()
                ),
            ));
        }
        let counters = self.decode_counters();
        // One scratch block: the partial accumulators, then the (max, sum) pairs (16-byte
        // aligned: acc_len is a multiple of d).
        let scratch = self.alloc(plan.acc_len() + plan.ml_len(), DType::F32)?;
        let acc_p = scratch.ptr();
        let (ml_p, params) = (acc_p + 4 * plan.acc_len() as u64, ByValue(p));
        let name = if tensor_cores {
            format!("decode_attn_d{d}_{}", dt.name())
        } else {
            format!("decode_attn_h{}_{}", p.heads_per_block, dt.name())
        };
        self.allow_shared_mem(&name, plan.launch.shared_mem_bytes)?;
        let cfg = config(plan.launch);
        launch!(
            self,
            name,
            cfg,
            (q, k, v, acc_p, ml_p, out, counters, kv_len_dev, params)
        );
        Ok(())
    }

    /// Lets kernel `name` take `bytes` of dynamic shared memory (`Driver::allow_shared_mem`;
    /// a no-op on the emulated device).
    fn allow_shared_mem(&self, name: &str, bytes: u32) -> Result<()> {
        match self.target() {
            Target::Driver(d) => d.allow_shared_mem(name, bytes),
            Target::Emulator => Ok(()),
        }
    }

    /// True when the FlashAttention-2 kernel serves this head dim and dtype (f16/bf16, d 64/128).
    pub(crate) fn flash_attention_supports(head_dim: usize, dt: DType) -> bool {
        matches!(head_dim, 64 | 128) && matches!(dt, DType::F16 | DType::BF16)
    }

    /// FlashAttention prefill of one sequence (`p` names lengths, heads, strides, mask, scale);
    /// `lse` is 0 or `[heads, q_len]` f32. Head dim 128 on a backend [`CudaBackend::flash3`]
    /// runs the FlashAttention-3 kernel (`gpu-kernels/src/attention_flash3.rs`), everything
    /// else FlashAttention-2 (`gpu-kernels/src/attention_flash.rs`).
    ///
    /// # Safety
    /// The buffers hold the extents `p` describes with 16-byte aligned rows and strides that
    /// are multiples of 8; `flash_attention_supports(d, dt)`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) unsafe fn flash_attention(
        &self,
        q: u64,
        k: u64,
        v: u64,
        out: u64,
        lse: u64,
        p: FlashAttnParams,
        d: usize,
        dt: DType,
    ) -> Result<()> {
        let (heads, q_len) = (p.heads as usize, p.q_len as usize);
        let (shape, name) = if self.flash3() && d == FLASH3_HEAD_DIM {
            let shape = launch_shape::flash3_attention(heads, q_len, 1);
            (shape, format!("flash3_attn_d{d}_{}", dt.name()))
        } else {
            let shape = launch_shape::flash_attention(heads, q_len, 1, d);
            (shape, format!("flash_attn_d{d}_{}", dt.name()))
        };
        let shape = shape.ok_or_else(|| {
            Error::invalid(
                "flash_attention",
                format!("{} queries exceed the grid", p.q_len),
            )
        })?;
        let params = ByValue(p);
        self.allow_shared_mem(&name, shape.shared_mem_bytes)?;
        launch!(self, name, config(shape), (q, k, v, out, lse, params));
        Ok(())
    }

    /// Converts `n` elements at `src` from `from` to `to` into new storage.
    pub(crate) fn cast(&self, src: u64, from: DType, to: DType, n: usize) -> Result<CudaStorage> {
        let out = self.alloc(n, to)?;
        let (dst, n_u) = (out.ptr(), n as u64);
        launch!(
            self,
            format!("cast_{}_{}", from.name(), to.name()),
            self.stride_config(launch_shape::map_items(n)),
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
