//! Linear layers over a [`LinearWeight`] — dense or kept quantized — and the fused gate+up
//! projection with SwiGLU (`linear_swiglu`).
//!
//! Quantized weights (`linear_quantized`):
//! - CPU: the CPU's quantized kernels ([`crate::backend::cpu::quant`]) read the ggml blocks as
//!   stored; the activations are rounded to 8 bits per block of 32 (optionally with a second
//!   pass over the rounding error, for the LM head).
//! - CUDA: up to `GEMV_MAX_M` rows go to the GEMV kernels (`gpu-kernels/src/gemv.rs`; quantized
//!   weights take f16 activations, the fused SwiGLU form f16/bf16 — f32 runs unfused); more rows
//!   (prefill) dequantize the weight on the GPU into a transient f16 matrix for cuBLAS: reading
//!   the blocks once and running tensor cores beats re-reading them 8 rows at a time.

use nano_infer_kernels::params::GEMV_MAX_M;

use super::{cpu_result, cuda_ptr, dense_gemv_weight, matmul::linear, swiglu, with_f32};
use crate::backend::cpu::quant::{QuantKernels, QuantWeight};
use crate::backend::cuda::{GemvFusion, GemvWeight};
use crate::error::{Error, Result};
use crate::tensor::{DType, Device, QuantizedTensor, Tensor};

/// A `[n, k]` weight — a Linear layer's, or an embedding table — dense or block-quantized.
#[derive(Clone, Debug)]
pub enum LinearWeight {
    Dense(Tensor),
    Quantized(QuantizedTensor),
}

impl LinearWeight {
    /// `[n, k]` (a dense weight's first and last dims; callers check the rank).
    pub fn dims(&self) -> [usize; 2] {
        match self {
            LinearWeight::Dense(t) => {
                let d = t.dims();
                [d[0], d[d.len() - 1]]
            }
            LinearWeight::Quantized(q) => q.dims(),
        }
    }
    /// Bytes the weight occupies (what a product reads once per token).
    pub fn size_in_bytes(&self) -> usize {
        match self {
            LinearWeight::Dense(t) => t.elem_count() * t.dtype().size_in_bytes(),
            LinearWeight::Quantized(q) => q.size_in_bytes(),
        }
    }
    pub fn device(&self) -> &Device {
        match self {
            LinearWeight::Dense(t) => t.device(),
            LinearWeight::Quantized(q) => q.device(),
        }
    }
    /// The dense tensor, if this is one.
    pub fn as_dense(&self) -> Option<&Tensor> {
        match self {
            LinearWeight::Dense(t) => Some(t),
            LinearWeight::Quantized(_) => None,
        }
    }
    /// The same weight on `device` (see [`QuantizedTensor::to_device`] for quantized ones).
    pub fn to_device(&self, device: &Device) -> Result<LinearWeight> {
        Ok(match self {
            LinearWeight::Dense(t) => LinearWeight::Dense(t.to_device(device)?),
            LinearWeight::Quantized(q) => LinearWeight::Quantized(q.to_device(device)?),
        })
    }
}

/// `x [.., k] · wᵀ` for a dense or quantized `w` (`[n, k]`).
pub fn linear_any(x: &Tensor, w: &LinearWeight) -> Result<Tensor> {
    match w {
        LinearWeight::Dense(t) => linear(x, t),
        LinearWeight::Quantized(q) => linear_quantized(x, q, false),
    }
}

/// `x [.., k] · w_iᵀ` for each of `ws` (`[n_i, k]`): the projections that share an input. On
/// the CPU with every weight quantized this is one grouped product
/// ([`QuantKernels::matmul_group`]: the input quantized once, one pool of parallel tasks);
/// otherwise one [`linear_any`] per weight.
pub fn linear_group(x: &Tensor, ws: &[&LinearWeight]) -> Result<Vec<Tensor>> {
    const OP: &str = "linear_group";
    let quantized = ws.iter().map(|w| match w {
        LinearWeight::Quantized(q) => Some(q),
        LinearWeight::Dense(_) => None,
    });
    let separate = || ws.iter().map(|w| linear_any(x, w)).collect();
    let Some(qs) = quantized.collect::<Option<Vec<_>>>() else {
        return separate();
    };
    if !matches!(x.device(), Device::Cpu) {
        return separate();
    }
    let k = x.shape().last_dim();
    let (m, x2) = rows_of(OP, x, k)?;
    let mut outs: Vec<Vec<f32>> = Vec::with_capacity(ws.len());
    let mut group = Vec::with_capacity(ws.len());
    for q in &qs {
        check_device(OP, x, q)?;
        let [n, qk] = q.dims();
        if qk != k {
            return Err(Error::ShapeMismatch {
                op: OP,
                expected: format!("[.., {qk}]"),
                got: x.shape().to_string(),
            });
        }
        outs.push(vec![0.0; m * n]);
        group.push(QuantWeight {
            format: q.format(),
            w: q.cpu_blocks()?,
            n,
        });
    }
    let mut pairs: Vec<_> = group
        .into_iter()
        .zip(outs.iter_mut().map(|o| &mut o[..]))
        .collect();
    with_f32(&x2, |xv| {
        QuantKernels::best().matmul_group(k, xv, m, &mut pairs)
    })?;
    qs.iter()
        .zip(outs)
        .map(|(q, out)| cpu_result(out, out_dims(x, q.dims()[0]), x.dtype()))
        .collect()
}

/// `x [.., k] · wᵀ` for `w` `[n, k]` quantized; returns `[.., n]` in `x`'s dtype. With
/// `residual` (CPU), the 8-bit activations' rounding error takes a second pass
/// ([`QuantKernels::matmul_residual`]): for the LM head, whose outputs are the logits. CUDA
/// ignores it: its kernels take f16 activations, with no 8-bit rounding to correct.
pub fn linear_quantized(x: &Tensor, w: &QuantizedTensor, residual: bool) -> Result<Tensor> {
    const OP: &str = "linear_quantized";
    match x.device() {
        Device::Cpu => {
            check_device(OP, x, w)?;
            let [n, k] = w.dims();
            let (m, x2) = rows_of(OP, x, k)?;
            let (f, blocks) = (w.format(), w.cpu_blocks()?);
            let mut out = vec![0.0; m * n];
            let q = QuantKernels::best();
            with_f32(&x2, |xv| {
                if residual {
                    q.matmul_residual(f, blocks, n, k, xv, m, &mut out)
                } else {
                    q.matmul(f, blocks, n, k, xv, m, &mut out)
                }
            })?;
            cpu_result(out, out_dims(x, n), x.dtype())
        }
        Device::Cuda(_) => {
            if x.elem_count() / x.shape().last_dim().max(1) > GEMV_MAX_M {
                return linear(x, &w.dequantize(x.dtype(), x.device())?);
            }
            gemv_quantized(OP, x, w)
        }
    }
}

/// `silu(x · gateᵀ) · (x · upᵀ)` with `w = [gate; up]` (`[2n, k]`, gate rows first): LlamaMLP's
/// gate and up projections as one weight. Decode on CUDA (at most `GEMV_MAX_M` rows, with a
/// weight and activations a GEMV kernel takes: see `gemv_operand`) is one GEMV with SwiGLU in
/// its epilogue; otherwise one product over all `2n` rows (on the CPU, the quantized kernels for
/// a quantized weight), then `swiglu` on its halves.
pub fn linear_swiglu(x: &Tensor, w: &LinearWeight) -> Result<Tensor> {
    const OP: &str = "linear_swiglu";
    let [rows, k] = w.dims();
    if !rows.is_multiple_of(2) {
        return Err(Error::ShapeMismatch {
            op: OP,
            expected: "a [2n, k] gate+up weight".into(),
            got: format!("[{rows}, {k}]"),
        });
    }
    let m = x.elem_count() / x.shape().last_dim().max(1);
    if let Some(op) = gemv_operand(x, w, true).filter(|_| m <= GEMV_MAX_M) {
        let swiglu = GemvFusion {
            swiglu: true,
            ..Default::default()
        };
        return launch_rows(OP, x, op, [rows, k], swiglu);
    }
    let y = linear_any(x, w)?;
    let last = y.rank() - 1;
    let n = rows / 2;
    swiglu(&y.narrow(last, 0, n)?, &y.narrow(last, n, n)?)
}

fn check_device(op: &'static str, x: &Tensor, q: &QuantizedTensor) -> Result<()> {
    if !q.device().same(x.device()) {
        return Err(Error::invalid(
            op,
            format!(
                "the weight is on {} and the input on {}",
                q.device(),
                x.device()
            ),
        ));
    }
    Ok(())
}

/// Checks `x [.., k]` against a weight with `k` inputs; returns `(m, x as [m, k])`.
fn rows_of(op: &'static str, x: &Tensor, k: usize) -> Result<(usize, Tensor)> {
    if x.rank() == 0 || x.shape().last_dim() != k {
        return Err(Error::ShapeMismatch {
            op,
            expected: format!("[.., {k}]"),
            got: x.shape().to_string(),
        });
    }
    let m = x.elem_count() / k;
    Ok((m, x.contiguous()?.reshape([m, k])?))
}

/// The output `[.., n]` of an input `x [.., k]`.
fn out_dims(x: &Tensor, n: usize) -> Vec<usize> {
    let mut d = x.dims().to_vec();
    *d.last_mut().expect("rank >= 1") = n;
    d
}

/// The GEMV kernel over `x [.., k]` (at most `GEMV_MAX_M` rows: more rows take cuBLAS) with
/// `fuse`'s additions; `fuse`'s buffers are the caller's (it keeps them alive and sized).
pub(crate) fn launch_rows(
    op: &'static str,
    x: &Tensor,
    w: GemvWeight,
    [rows, k]: [usize; 2],
    fuse: GemvFusion,
) -> Result<Tensor> {
    let Device::Cuda(be) = x.device() else {
        unreachable!("launch_rows on CUDA")
    };
    let n = if fuse.swiglu { rows / 2 } else { rows };
    let (m, x2) = rows_of(op, x, k)?;
    if m > GEMV_MAX_M {
        return Err(Error::invalid(
            op,
            format!("the GEMV takes at most {GEMV_MAX_M} rows, got {m}"),
        ));
    }
    let out = Tensor::uninit([m, n], x.dtype(), x.device())?;
    // SAFETY: x2 is [m, k], out a fresh [m, n], w `[rows, k]` (its operand's contract); the
    // fused buffers are the caller's.
    unsafe { be.gemv(w, cuda_ptr(&x2), cuda_ptr(&out), (m, n, k), x.dtype(), fuse)? };
    out.reshape(out_dims(x, n))
}

/// `w` as a GEMV operand for activations `x` on CUDA: a contiguous dense weight of `x`'s
/// dtype, or quantized blocks with f16 activations; `None` when the GEMV kernels do not take
/// that pair (or not with the SwiGLU epilogue), or `w` is not on `x`'s device.
pub(crate) fn gemv_operand(x: &Tensor, w: &LinearWeight, swiglu: bool) -> Option<GemvWeight> {
    if !matches!(x.device(), Device::Cuda(_)) || !w.device().same(x.device()) {
        return None;
    }
    match w {
        LinearWeight::Dense(t) => (t.dtype() == x.dtype()
            && t.rank() == 2
            && t.is_contiguous()
            && !(swiglu && x.dtype() == DType::F32))
            .then(|| dense_gemv_weight(t)),
        LinearWeight::Quantized(q) => {
            quantized_operand(q).filter(|_| x.dtype() == quantized_activations(x.device()))
        }
    }
}

/// The activations' dtype of quantized weights on `device`: what its quantized kernels take
/// (CUDA: `gemv_*_{q8_0,q4_0,q4_1}_f16`; the CPU's integer dot products start from f32).
pub(crate) fn quantized_activations(device: &Device) -> DType {
    if device.is_cpu() {
        DType::F32
    } else {
        DType::F16
    }
}

/// A CUDA quantized weight's blocks as a GEMV operand (`None` on the CPU).
fn quantized_operand(q: &QuantizedTensor) -> Option<GemvWeight> {
    let buffer = q.cuda_buffer()?;
    Some(GemvWeight {
        ptr: buffer.start,
        buffer,
        quant: q.cuda_format(),
    })
}

/// Quantized GEMV on CUDA (`x` on CUDA).
fn gemv_quantized(op: &'static str, x: &Tensor, q: &QuantizedTensor) -> Result<Tensor> {
    check_device(op, x, q)?;
    let want = quantized_activations(x.device());
    if x.dtype() != want {
        return Err(Error::invalid(
            op,
            format!(
                "quantized GEMV kernels take {want:?} activations, got {:?} (run the model in \
                 that dtype with quantized weights)",
                x.dtype()
            ),
        ));
    }
    let w = quantized_operand(q).expect("a CUDA quantized tensor has device blocks");
    launch_rows(op, x, w, q.dims(), GemvFusion::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::quant_pack::QuantFormat;

    fn close(a: &Tensor, b: &Tensor, atol: f32) {
        let (a, b) = (a.to_vec_f32().unwrap(), b.to_vec_f32().unwrap());
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() <= atol, "{x} vs {y}");
        }
    }

    /// The CPU paths: a quantized weight gives the product with its dequantized weight up to
    /// the 8-bit activations' rounding (much closer with the residual pass), and
    /// `linear_swiglu` over `[gate; up]` equals `swiglu` of the two products.
    #[test]
    fn cpu_paths_match_dense() {
        let cpu = Device::Cpu;
        let (n, k, m) = (6, 64, 3);
        let x = Tensor::randn([m, k], 1.0, 1, DType::F32, &cpu).unwrap();
        let w = Tensor::randn([2 * n, k], 1.0, 2, DType::F32, &cpu).unwrap();
        let quant = |w: &Tensor| QuantizedTensor::quantize(w, QuantFormat::Q4_1, &cpu).unwrap();
        let q = quant(&w);
        let deq = q.dequantize(DType::F32, &cpu).unwrap();
        let want = linear(&x, &deq).unwrap();
        // Outputs ~8 in size; rounding x (|x| < 4) to 8 bits errs by up to 4/254 per element,
        // ~0.06 over the 64 products (~0.0005 after the residual pass).
        close(&linear_quantized(&x, &q, true).unwrap(), &want, 5e-3);
        let q = LinearWeight::Quantized(q);
        close(&linear_any(&x, &q).unwrap(), &want, 0.25);
        let fused = linear_swiglu(&x, &q).unwrap();
        assert_eq!(fused.dims(), &[m, n]);
        let half = |at| LinearWeight::Quantized(quant(&w.narrow(0, at, n).unwrap()));
        let (g, u) = (half(0), half(n));
        let unfused = swiglu(&linear_any(&x, &g).unwrap(), &linear_any(&x, &u).unwrap()).unwrap();
        close(&fused, &unfused, 1e-5);
        let odd = LinearWeight::Dense(Tensor::zeros([3, k], DType::F32, &cpu).unwrap());
        assert!(linear_swiglu(&x, &odd).is_err());
        assert!(
            QuantizedTensor::quantize(
                &Tensor::zeros([2, 33], DType::F32, &cpu).unwrap(),
                QuantFormat::Q8_0,
                &cpu
            )
            .is_err()
        );
    }
}
