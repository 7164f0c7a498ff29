//! Launchers of the decode graph's kernels — RoPE fused with the KV-cache write, argmax and the
//! position counter (`gpu-kernels/src/{rope_kv,decode_step}.rs`) — and of what makes weights on
//! the device: the random initialiser (`gpu-kernels/src/init.rs`) and the quantizer
//! (`gpu-kernels/src/quantize.rs`). Raw device addresses, as in `launch.rs`.

use nano_infer_kernels::launch_shape;
use nano_infer_kernels::params::RopeKvParams;
use nano_infer_kernels::weights::{QBLOCK, QuantFormat};

use super::context::CudaBackend;
use super::launch::{ByValue, config, launch};
use crate::error::Result;
use crate::tensor::DType;

impl CudaBackend {
    /// Rotates `q` into `q_out` and `k` into the key cache, copies `v` into the value cache, at
    /// rows `p.pos_offset + *pos_dev ..` (`pos_dev` 0: no device part). See `RopeKvParams`.
    ///
    /// # Safety
    /// `q`, `q_out` hold `seq * heads * head_dim` elements, `k`, `v` `seq * kv_heads * head_dim`,
    /// the caches and the `cos`/`sin` tables every row the position reaches; `pos_dev` is 0 or
    /// the address of a `u32`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) unsafe fn rope_kv_write(
        &self,
        [q, q_out, k, v]: [u64; 4],
        [k_cache, v_cache]: [u64; 2],
        [cos, sin]: [u64; 2],
        pos_dev: u64,
        p: RopeKvParams,
        dt: DType,
    ) -> Result<()> {
        let items = launch_shape::rope_kv_items(
            p.seq as usize,
            p.heads as usize,
            p.kv_heads as usize,
            p.head_dim as usize,
        );
        let params = ByValue(p);
        launch!(
            self,
            format!("rope_kv_write_{}", dt.name()),
            self.stride_config(items),
            (q, q_out, k, v, k_cache, v_cache, cos, sin, pos_dev, params)
        );
        Ok(())
    }

    /// Writes the index of the largest of the `n` f32 at `x` into the `u32` at `out`.
    ///
    /// # Safety
    /// `x` holds `n` f32, `out` is the address of a `u32`.
    pub(crate) unsafe fn argmax(&self, x: u64, n: usize, out: u64) -> Result<()> {
        let n_u = n as u32;
        launch!(
            self,
            "argmax_f32",
            config(launch_shape::argmax()),
            (x, n_u, out)
        );
        Ok(())
    }

    /// Adds `by` to the `u32` at `counter`.
    ///
    /// # Safety
    /// `counter` is the address of a `u32`.
    pub(crate) unsafe fn add_u32(&self, counter: u64, by: u32) -> Result<()> {
        launch!(
            self,
            "add_u32",
            config(launch_shape::single()),
            (counter, by)
        );
        Ok(())
    }

    /// Fills `n` elements at `out` with `nano_infer_kernels::init::uniform(seed, i, std)`.
    ///
    /// # Safety
    /// `out` holds `n` elements of `dt`.
    pub(crate) unsafe fn fill_uniform(
        &self,
        out: u64,
        n: usize,
        seed: u64,
        std: f32,
        dt: DType,
    ) -> Result<()> {
        let n_u = n as u64;
        launch!(
            self,
            format!("fill_uniform_{}", dt.name()),
            self.stride_config(launch_shape::map_items(n)),
            (out, n_u, seed, std)
        );
        Ok(())
    }

    /// Converts the `[n, k]` matrix at `src` into `dst` between `dt` elements and `format`'s
    /// repacked layout: `Quantize` (dense → blocks, one work item per block of 32) or
    /// `Dequantize` (blocks → dense, one per 16-byte chunk of quants).
    ///
    /// # Safety
    /// The dense side holds `n · k` elements and the block side
    /// `QuantLayout { format, n, k }.total_bytes()` bytes, both 16-byte aligned; `k` is a
    /// multiple of 32.
    pub(crate) unsafe fn convert_blocks(
        &self,
        direction: BlockConversion,
        [src, dst]: [u64; 2],
        [n, k]: [usize; 2],
        format: QuantFormat,
        dt: DType,
    ) -> Result<()> {
        let (n_u, k_u) = (n as u32, k as u32);
        let (op, items) = match direction {
            BlockConversion::Quantize => ("quantize", n * k / QBLOCK),
            BlockConversion::Dequantize => {
                ("dequantize", n * k * format.quant_bytes() / QBLOCK / 16)
            }
        };
        launch!(
            self,
            format!("{op}_{}_{}", format.name(), dt.name()),
            self.stride_config(items),
            (src, dst, n_u, k_u)
        );
        Ok(())
    }
}

/// Which way [`CudaBackend::convert_blocks`] goes.
#[derive(Clone, Copy, Debug)]
pub(crate) enum BlockConversion {
    Quantize,
    Dequantize,
}
