//! The functional API: `rms_norm`, `add_rms_norm`, `silu`, `swiglu`, `rope`, `softmax`, `matmul`, `linear`,
//! `linear_any` / `linear_quantized` / `linear_swiglu` (dense or quantized weights: the CPU's
//! quantized kernels, the CUDA decode GEMV),
//! `add`, ... Each op checks shapes, dtypes and devices once, then dispatches on the device of
//! its inputs — the only place that does — to the CPU fast path (SIMD + rayon, computing in f32)
//! or to the CUDA kernels. Inputs may be any view; ops make them contiguous first.

mod attention;
mod decode;
mod fused_gemv;
mod matmul;
mod quantized;
mod rope;

pub use attention::attention;
pub use decode::{argmax_into, decode_attention, embedding_at, rope_kv_write};
pub use fused_gemv::{LinearFusion, linear_fused, qkv_rope_kv_write};
pub use matmul::{linear, matmul};
/// Rows up to which a CUDA linear layer runs the GEMV kernels (decode); more run cuBLAS.
pub use nano_infer_kernels::params::GEMV_MAX_M;
pub(crate) use quantized::quantized_activations;
pub use quantized::{LinearWeight, linear_any, linear_group, linear_quantized, linear_swiglu};
pub use rope::{RopeTable, rope};

use nano_infer_kernels::params::SoftmaxParams;

use crate::backend::cpu::simd;
use crate::backend::cuda::GemvWeight;
use crate::error::{Error, Result};
use crate::tensor::{CpuStorage, DType, Device, Shape, Storage, Tensor, check_same_device};

/// Contiguous device address of a CUDA tensor's first element (the caller keeps `t` alive).
pub(crate) fn cuda_ptr(t: &Tensor) -> u64 {
    debug_assert!(t.is_contiguous());
    let guard = t.storage();
    let Storage::Cuda(s) = &*guard else {
        unreachable!("cuda_ptr of a CUDA tensor")
    };
    s.ptr() + (t.layout().offset() * t.dtype().size_in_bytes()) as u64
}

/// A contiguous dense CUDA weight as a GEMV operand: its address and its whole buffer.
pub(crate) fn dense_gemv_weight(w: &Tensor) -> GemvWeight {
    let guard = w.storage();
    let Storage::Cuda(s) = &*guard else {
        unreachable!("dense_gemv_weight of a CUDA tensor")
    };
    GemvWeight {
        ptr: cuda_ptr(w),
        buffer: s.buffer_range(),
        quant: None,
    }
}

/// Runs `f` on a CPU tensor's elements as one contiguous f32 slice: borrowed without a copy for
/// contiguous f32 tensors (weights, activations of the f32 path), converted otherwise.
pub(crate) fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
    if t.dtype() == DType::F32 && t.is_contiguous() {
        let guard = t.storage();
        if let Storage::Cpu(CpuStorage::F32(v)) = &*guard {
            let start = t.layout().offset();
            return f(&v[start..start + t.elem_count()]);
        }
    }
    f(&t.to_vec_f32()?)
}

/// The output of a CPU op as a tensor of `dtype`.
pub(crate) fn cpu_result(
    values: Vec<f32>,
    shape: impl Into<Shape>,
    dtype: DType,
) -> Result<Tensor> {
    Tensor::from_f32(values, shape, dtype, &Device::Cpu)
}

/// Checks that all tensors share dtype and device with the first.
pub(crate) fn check_same(op: &'static str, tensors: &[&Tensor]) -> Result<()> {
    let first = tensors[0];
    for t in &tensors[1..] {
        check_same_device(op, first, t)?;
        if t.dtype() != first.dtype() {
            return Err(Error::DTypeMismatch {
                op,
                expected: first.dtype(),
                got: t.dtype(),
            });
        }
    }
    Ok(())
}

/// Checks that `t` has exactly `shape`.
pub(crate) fn check_shape(op: &'static str, t: &Tensor, shape: &Shape) -> Result<()> {
    if t.shape() == shape {
        Ok(())
    } else {
        Err(Error::ShapeMismatch {
            op,
            expected: shape.to_string(),
            got: t.shape().to_string(),
        })
    }
}

/// Checks that `w` is a vector as long as the last dimension of `x` (a norm weight).
fn check_row_weight(op: &'static str, x: &Tensor, w: &Tensor) -> Result<usize> {
    let cols = x.shape().last_dim();
    if w.dims() != [cols] {
        return Err(Error::ShapeMismatch {
            op,
            expected: format!("[{cols}]"),
            got: w.shape().to_string(),
        });
    }
    if x.rank() == 0 || cols == 0 {
        return Err(Error::invalid(
            op,
            "the input needs a non-empty last dimension",
        ));
    }
    Ok(cols)
}

/// RMSNorm over the last dimension: `x / sqrt(mean(x²) + eps) * weight`.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f32) -> Result<Tensor> {
    const OP: &str = "rms_norm";
    check_same(OP, &[x, weight])?;
    let cols = check_row_weight(OP, x, weight)?;
    let (x, w) = (x.contiguous()?, weight.contiguous()?);
    match x.device() {
        Device::Cpu => {
            let mut out = vec![0.0; x.elem_count()];
            with_f32(&x, |xv| {
                with_f32(&w, |wv| simd::rms_norm(xv, wv, eps, &mut out))
            })?;
            cpu_result(out, x.shape().clone(), x.dtype())
        }
        Device::Cuda(b) => {
            let out = Tensor::uninit(x.shape().clone(), x.dtype(), x.device())?;
            b.rms_norm(
                cuda_ptr(&x),
                cuda_ptr(&w),
                cuda_ptr(&out),
                x.elem_count() / cols,
                cols,
                eps,
                x.dtype(),
            )?;
            Ok(out)
        }
    }
}

/// Fused residual add + RMSNorm: returns `(x + residual, rms_norm(x + residual) * weight)`.
pub fn add_rms_norm(
    x: &Tensor,
    residual: &Tensor,
    weight: &Tensor,
    eps: f32,
) -> Result<(Tensor, Tensor)> {
    const OP: &str = "add_rms_norm";
    check_same(OP, &[x, residual, weight])?;
    check_shape(OP, residual, x.shape())?;
    let cols = check_row_weight(OP, x, weight)?;
    let (x, r, w) = (
        x.contiguous()?,
        residual.contiguous()?,
        weight.contiguous()?,
    );
    match x.device() {
        Device::Cpu => {
            let (mut sum, mut out) = (vec![0.0; x.elem_count()], vec![0.0; x.elem_count()]);
            with_f32(&x, |xv| {
                with_f32(&r, |rv| {
                    with_f32(&w, |wv| {
                        simd::add_rms_norm(xv, rv, wv, eps, &mut sum, &mut out)
                    })
                })
            })?;
            Ok((
                cpu_result(sum, x.shape().clone(), x.dtype())?,
                cpu_result(out, x.shape().clone(), x.dtype())?,
            ))
        }
        Device::Cuda(b) => {
            let sum = Tensor::uninit(x.shape().clone(), x.dtype(), x.device())?;
            let out = Tensor::uninit(x.shape().clone(), x.dtype(), x.device())?;
            let rows = x.elem_count() / cols;
            let (xp, rp, wp, sp, op) = (
                cuda_ptr(&x),
                cuda_ptr(&r),
                cuda_ptr(&w),
                cuda_ptr(&sum),
                cuda_ptr(&out),
            );
            b.add_rms_norm(xp, rp, wp, sp, op, rows, cols, eps, x.dtype())?;
            Ok((sum, out))
        }
    }
}

/// `rms_norm(x + residual) * weight` without keeping the sum (the last norm before the LM
/// head needs only this; it saves writing the sum back).
pub fn rms_norm_of_sum(x: &Tensor, residual: &Tensor, weight: &Tensor, eps: f32) -> Result<Tensor> {
    const OP: &str = "rms_norm_of_sum";
    check_same(OP, &[x, residual, weight])?;
    check_shape(OP, residual, x.shape())?;
    let cols = check_row_weight(OP, x, weight)?;
    match x.device() {
        Device::Cpu => Ok(add_rms_norm(x, residual, weight, eps)?.1),
        Device::Cuda(b) => {
            let (x, r, w) = (
                x.contiguous()?,
                residual.contiguous()?,
                weight.contiguous()?,
            );
            let out = Tensor::uninit(x.shape().clone(), x.dtype(), x.device())?;
            let rows = x.elem_count() / cols;
            let (xp, rp, wp, op) = (cuda_ptr(&x), cuda_ptr(&r), cuda_ptr(&w), cuda_ptr(&out));
            b.add_rms_norm(xp, rp, wp, 0, op, rows, cols, eps, x.dtype())?;
            Ok(out)
        }
    }
}

/// An elementwise map of one or two same-shaped tensors.
#[derive(Clone, Copy)]
enum Map {
    Silu,
    SwiGlu,
    Add,
    Mul,
}

impl Map {
    fn name(self) -> &'static str {
        match self {
            Map::Silu => "silu",
            Map::SwiGlu => "swiglu",
            Map::Add => "add",
            Map::Mul => "mul",
        }
    }
}

fn map(op: Map, a: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let name = op.name();
    if let Some(b) = b {
        check_same(name, &[a, b])?;
        check_shape(name, b, a.shape())?;
    }
    let a = a.contiguous()?;
    let b = b.map(Tensor::contiguous).transpose()?;
    match a.device() {
        Device::Cpu => {
            let mut out = vec![0.0; a.elem_count()];
            with_f32(&a, |av| match (op, &b) {
                (Map::Silu, _) => simd::silu(av, &mut out),
                (Map::SwiGlu, Some(b)) => with_f32(b, |bv| simd::swiglu(av, bv, &mut out)),
                (Map::Add, Some(b)) => with_f32(b, |bv| simd::add(av, bv, &mut out)),
                (Map::Mul, Some(b)) => with_f32(b, |bv| simd::mul(av, bv, &mut out)),
                (_, None) => Err(Error::invalid(name, "a binary map needs two operands")),
            })?;
            cpu_result(out, a.shape().clone(), a.dtype())
        }
        Device::Cuda(be) => {
            let out = Tensor::uninit(a.shape().clone(), a.dtype(), a.device())?;
            match &b {
                None => be.unary(
                    name,
                    cuda_ptr(&a),
                    cuda_ptr(&out),
                    a.elem_count(),
                    a.dtype(),
                )?,
                Some(b) => be.binary(
                    name,
                    cuda_ptr(&a),
                    cuda_ptr(b),
                    cuda_ptr(&out),
                    a.elem_count(),
                    a.dtype(),
                )?,
            }
            Ok(out)
        }
    }
}

/// `x * sigmoid(x)`.
pub fn silu(x: &Tensor) -> Result<Tensor> {
    map(Map::Silu, x, None)
}

/// `silu(gate) * up` (the Llama MLP's gate).
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    map(Map::SwiGlu, gate, Some(up))
}

/// Elementwise `a + b` (same shapes).
pub fn add(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    map(Map::Add, a, Some(b))
}

/// Elementwise `a * b` (same shapes).
pub fn mul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    map(Map::Mul, a, Some(b))
}

/// Softmax over the last dimension of `x * scale`. With `causal`, `x` is `[.., q_len, k_len]`
/// scores and query `i` sees keys `j <= i + k_len - q_len`.
pub fn softmax(x: &Tensor, scale: f32, causal: bool) -> Result<Tensor> {
    const OP: &str = "softmax";
    let dims = x.dims();
    let k_len = x.shape().last_dim();
    let q_len = if causal && dims.len() >= 2 {
        dims[dims.len() - 2]
    } else {
        1
    };
    if x.rank() == 0 || k_len == 0 {
        return Err(Error::invalid(
            OP,
            "the input needs a non-empty last dimension",
        ));
    }
    if causal && (dims.len() < 2 || q_len > k_len) {
        return Err(Error::invalid(
            OP,
            format!(
                "causal softmax needs [.., q_len, k_len] with q_len <= k_len, got {}",
                x.shape()
            ),
        ));
    }
    let x = x.contiguous()?;
    match x.device() {
        Device::Cpu => {
            let mut out = vec![0.0; x.elem_count()];
            with_f32(&x, |xv| {
                simd::softmax(xv, q_len, k_len, scale, causal, &mut out)
            })?;
            cpu_result(out, x.shape().clone(), x.dtype())
        }
        Device::Cuda(b) => {
            let out = Tensor::uninit(x.shape().clone(), x.dtype(), x.device())?;
            let p = SoftmaxParams {
                rows: (x.elem_count() / k_len) as u32,
                cols: k_len as u32,
                q_len: q_len as u32,
                scale,
                causal: causal as u32,
            };
            b.softmax(
                cuda_ptr(&x),
                cuda_ptr(&out),
                x.elem_count() / k_len,
                p,
                x.dtype(),
            )?;
            Ok(out)
        }
    }
}

/// Gathers rows of `table` (`[vocab, dim]`): the result is `[ids.len(), dim]`.
pub fn embedding(ids: &[u32], table: &Tensor) -> Result<Tensor> {
    const OP: &str = "embedding";
    let [vocab, dim] = *table.dims() else {
        return Err(Error::ShapeMismatch {
            op: OP,
            expected: "[vocab, dim]".into(),
            got: table.shape().to_string(),
        });
    };
    if let Some(&bad) = ids.iter().find(|&&id| id as usize >= vocab) {
        return Err(Error::invalid(
            OP,
            format!("token id {bad} is outside the vocabulary of {vocab}"),
        ));
    }
    let table = table.contiguous()?;
    match table.device() {
        Device::Cpu => {
            let out = with_f32(&table, |t| {
                let row = |id: u32| &t[id as usize * dim..(id as usize + 1) * dim];
                Ok(ids.iter().flat_map(|&id| row(id).iter().copied()).collect())
            })?;
            cpu_result(out, [ids.len(), dim], table.dtype())
        }
        Device::Cuda(b) => {
            let out = Tensor::uninit([ids.len(), dim], table.dtype(), table.device())?;
            if ids.is_empty() {
                return Ok(out);
            }
            let ids_dev = b.upload_buffer(bytemuck::cast_slice(ids))?;
            b.embedding(
                ids_dev.ptr(),
                cuda_ptr(&table),
                cuda_ptr(&out),
                ids.len(),
                dim,
                vocab,
                table.dtype(),
            )?;
            Ok(out)
        }
    }
}
