//! A decode step's projections with their neighbours fused in: the RMSNorm before a projection
//! (each GEMV block sums the input row's squares beside its products and scales its sums), the
//! residual add after one, and for q/k/v the RoPE and KV-cache write. A batch-1 decode step is
//! a chain of short kernels, each paying a launch, a ramp and a tail; folding the norm, the add
//! and the RoPE into the GEMVs takes a Llama block from eight kernels to five.
//!
//! On CUDA, for one row (a batch-1 decode step) and the weight/activation pairs the GEMV kernels
//! take, each is one kernel (`gpu-kernels/src/gemv.rs`); elsewhere it runs the unfused ops, which
//! stay the reference: `rms_norm`, `linear_any` / `linear_swiglu`, `add`, `rope_kv_write`. The
//! fused kernels round the projection's output where the unfused ops store it (before the
//! residual add and RoPE); the normalised input is not rounded to the activation type, since
//! the kernel scales its sums by `1 / rms(x)` at the end instead of scaling `x` (the same math,
//! slightly more precise).

use nano_infer_kernels::params::{GEMV_MAX_M, GemvRopeParams};

use super::decode::{check_dims, check_rope_kv};
use super::quantized::{gemv_operand, launch_rows};
use super::{
    LinearWeight, RopeTable, add, check_same, cuda_ptr, linear_any, linear_swiglu, rms_norm,
    rope_kv_write,
};
use crate::backend::cuda::{DeviceU32, GemvFusion};
use crate::error::{Error, Result};
use crate::tensor::{Device, Tensor};

/// What [`linear_fused`] adds around its product.
#[derive(Clone, Copy, Debug, Default)]
pub struct LinearFusion<'a> {
    /// RMSNorm of the input first: the norm's weight (`[k]`) and epsilon.
    pub norm: Option<(&'a Tensor, f32)>,
    /// Added to the output (the output's shape).
    pub residual: Option<&'a Tensor>,
    /// `w` is `[gate; up]` and the output `silu(x·gateᵀ)·(x·upᵀ)` (as [`linear_swiglu`]).
    pub swiglu: bool,
}

/// `residual + linear(rms_norm(x))` — each part as `fuse` asks — over `x [.., k]` and `w`.
pub fn linear_fused(x: &Tensor, w: &LinearWeight, fuse: LinearFusion<'_>) -> Result<Tensor> {
    const OP: &str = "linear_fused";
    if fuse.swiglu && fuse.residual.is_some() {
        return Err(Error::invalid(OP, "a residual add after SwiGLU"));
    }
    let [rows, k] = w.dims();
    let m = x.elem_count() / x.shape().last_dim().max(1);
    // The M = 1 kernels carry the fusions (decode); a few rows run them unfused.
    let fusing = fuse.norm.is_some() || fuse.residual.is_some();
    let operand =
        gemv_operand(x, w, fuse.swiglu).filter(|_| m == 1 || (m <= GEMV_MAX_M && !fusing));
    let Some(operand) = operand else {
        return linear_unfused(x, w, fuse);
    };
    let norm = fuse
        .norm
        .map(|(g, eps)| norm_operand(OP, x, g, k).map(|g| (g, eps)))
        .transpose()?;
    let residual = fuse.residual.map(Tensor::contiguous).transpose()?;
    let n = if fuse.swiglu { rows / 2 } else { rows };
    if let Some(r) = &residual {
        check_same(OP, &[x, r])?;
        check_rows(OP, r, m, n)?;
    }
    let gemv = GemvFusion {
        norm: norm
            .as_ref()
            .map_or((0, 0.0), |(g, eps)| (cuda_ptr(g), *eps)),
        residual: residual.as_ref().map_or(0, cuda_ptr),
        swiglu: fuse.swiglu,
    };
    launch_rows(OP, x, operand, [rows, k], gemv)
}

/// [`linear_fused`] as separate ops (its reference, and its path where no kernel fits).
fn linear_unfused(x: &Tensor, w: &LinearWeight, fuse: LinearFusion<'_>) -> Result<Tensor> {
    let normed = match fuse.norm {
        Some((g, eps)) => rms_norm(x, g, eps)?,
        None => x.clone(),
    };
    let y = if fuse.swiglu {
        linear_swiglu(&normed, w)?
    } else {
        linear_any(&normed, w)?
    };
    match fuse.residual {
        Some(r) => add(&y, &r.reshape(y.dims().to_vec())?),
        None => Ok(y),
    }
}

/// A norm's weight `g` as a kernel operand: `[k]`, contiguous, on `x`'s device.
fn norm_operand(op: &'static str, x: &Tensor, g: &Tensor, k: usize) -> Result<Tensor> {
    check_same(op, &[x, g])?;
    check_dims(op, g, &[k])?;
    g.contiguous()
}

/// Errors unless `t` holds `m` rows of `n` (`[.., n]`, as the output of `m` input rows).
fn check_rows(op: &'static str, t: &Tensor, m: usize, n: usize) -> Result<()> {
    if t.rank() > 0 && t.elem_count() == m * n && t.shape().last_dim() == n {
        Ok(())
    } else {
        Err(Error::ShapeMismatch {
            op,
            expected: format!("{m} rows of {n}"),
            got: t.shape().to_string(),
        })
    }
}

/// The q/k/v projection of one token with RoPE and the KV-cache write (the first half of a
/// decode step's attention block): `x` (`[1, hidden]`, RMS-normed first with `norm`'s weight
/// and epsilon; one kernel on CUDA when there is a norm) against `w`
/// (`[(heads + 2 kv_heads) · head_dim, hidden]`: q, k then v rows); rotated k and v go to row
/// `*pos` of the caches (`[capacity, kv_heads, head_dim]`). Returns
/// the rotated q, `[1, heads, head_dim]`. The caller keeps `*pos` below the capacity and the
/// table's length (the kernel cannot check a device-side value).
#[allow(clippy::too_many_arguments)]
pub fn qkv_rope_kv_write(
    x: &Tensor,
    norm: Option<(&Tensor, f32)>,
    w: &LinearWeight,
    (heads, kv_heads): (usize, usize),
    table: &RopeTable,
    (k_cache, v_cache): (&Tensor, &Tensor),
    pos: &DeviceU32,
    interleaved: bool,
) -> Result<Tensor> {
    const OP: &str = "qkv_rope_kv_write";
    let [rows, k] = w.dims();
    let d = k_cache.dims().last().copied().unwrap_or(0);
    if d == 0 || rows != (heads + 2 * kv_heads) * d || x.dims() != [1, k] {
        return Err(Error::ShapeMismatch {
            op: OP,
            expected: format!("x [1, {k}] and a weight of (heads + 2 kv_heads) · {d} rows"),
            got: format!("x {}, weight [{rows}, {k}]", x.shape()),
        });
    }
    let fused = gemv_operand(x, w, false).filter(|_| d.is_multiple_of(2));
    let (Some(operand), Some((g, eps))) = (fused, norm) else {
        let fuse = LinearFusion {
            norm,
            ..Default::default()
        };
        let qkv = linear_fused(x, w, fuse)?;
        let part = |at: usize, h: usize| qkv.narrow(1, at * d, h * d)?.reshape([1, h, d]);
        let (q, kk, v) = (
            part(0, heads)?,
            part(heads, kv_heads)?,
            part(heads + kv_heads, kv_heads)?,
        );
        return rope_kv_write(&q, &kk, &v, table, k_cache, v_cache, pos, interleaved);
    };
    let Device::Cuda(be) = x.device() else {
        unreachable!("a GEMV operand is on CUDA")
    };
    let rows = check_rope_kv(OP, x, (k_cache, v_cache), (kv_heads, d), table, pos)?;
    let g = norm_operand(OP, x, g, k)?;
    let x = x.contiguous()?;
    let q = Tensor::uninit([1, heads, d], x.dtype(), x.device())?;
    let (cos, sin) = table.tables();
    let p = GemvRopeParams {
        q_dim: (heads * d) as u32,
        kv_dim: (kv_heads * d) as u32,
        head_dim: d as u32,
        interleaved: interleaved as u32,
        rows,
    };
    // SAFETY: x is [1, k], q a fresh [heads, d], the weight [rows, k] (its operand's contract);
    // caches and tables checked by `check_rope_kv`, the kernel writes no row past `rows`.
    unsafe {
        be.gemv_rope_kv(
            operand,
            [cuda_ptr(&x), cuda_ptr(&q)],
            k,
            x.dtype(),
            (cuda_ptr(&g), eps),
            [
                cuda_ptr(k_cache),
                cuda_ptr(v_cache),
                cuda_ptr(cos),
                cuda_ptr(sin),
            ],
            pos.ptr(),
            p,
        )?
    };
    Ok(q)
}
