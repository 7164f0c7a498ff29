//! Linear layers over a [`LinearWeight`] — dense or kept quantized — and the fused gate+up
//! projection with SwiGLU (`linear_swiglu`).
//!
//! CUDA: up to `GEMV_MAX_M` rows go to the GEMV kernels (`gpu-kernels/src/gemv.rs`; quantized
//! weights take f16 activations, the fused SwiGLU form f16/bf16 — f32 runs unfused); quantized
//! weights with more rows (prefill) run the GEMV `GEMV_MAX_M` rows at a time, re-reading the
//! weight each time (correct; a dequantize-to-cuBLAS path would be faster for long prompts).
//! CPU: the weight is dequantized and the dense path runs (the reference).

use nano_infer_kernels::params::GEMV_MAX_M;

use super::{cuda_ptr, matmul::linear, swiglu};
use crate::error::{Error, Result};
use crate::tensor::{DType, Device, QuantizedTensor, Tensor};

/// A Linear layer's `[n, k]` weight.
#[derive(Clone, Debug)]
pub enum LinearWeight {
    Dense(Tensor),
    Quantized(QuantizedTensor),
}

impl LinearWeight {
    /// `[n, k]`.
    pub fn dims(&self) -> [usize; 2] {
        match self {
            LinearWeight::Dense(t) => {
                let d = t.dims();
                [d[0], d[d.len() - 1]]
            }
            LinearWeight::Quantized(q) => q.dims(),
        }
    }
    /// Bytes the weight occupies.
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
}

/// `x [.., k] · wᵀ` for a dense or quantized `w` (`[n, k]`).
pub fn linear_any(x: &Tensor, w: &LinearWeight) -> Result<Tensor> {
    match w {
        LinearWeight::Dense(t) => linear(x, t),
        LinearWeight::Quantized(q) => gemv_op("linear", x, q, false),
    }
}

/// `silu(x · gateᵀ) · (x · upᵀ)` with `w = [gate; up]` (`[2n, k]`, gate rows first): LlamaMLP's
/// gate and up projections as one weight. Decode (CUDA, `m <= GEMV_MAX_M`, dense or quantized)
/// is one GEMV with SwiGLU in its epilogue; otherwise one product, then `swiglu` on its halves.
pub fn linear_swiglu(x: &Tensor, w: &LinearWeight) -> Result<Tensor> {
    let [rows, k] = w.dims();
    if !rows.is_multiple_of(2) {
        return Err(Error::ShapeMismatch {
            op: "linear_swiglu",
            expected: "a [2n, k] gate+up weight".into(),
            got: format!("[{rows}, {k}]"),
        });
    }
    let m = x.elem_count() / x.shape().last_dim().max(1);
    match (w, x.device()) {
        (LinearWeight::Quantized(q), _) => gemv_op("linear_swiglu", x, q, true),
        (LinearWeight::Dense(t), Device::Cuda(_))
            if m <= GEMV_MAX_M && t.rank() == 2 && x.dtype() != DType::F32 =>
        {
            fused_dense(x, t)
        }
        (LinearWeight::Dense(t), _) => {
            let y = linear(x, t)?;
            let last = y.rank() - 1;
            let n = rows / 2;
            swiglu(&y.narrow(last, 0, n)?, &y.narrow(last, n, n)?)
        }
    }
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

/// The GEMV kernel over `x [.., k]`, `GEMV_MAX_M` rows per launch.
fn launch_rows(
    op: &'static str,
    x: &Tensor,
    w_ptr: u64,
    [rows, k]: [usize; 2],
    quant: Option<nano_infer_kernels::weights::QuantFormat>,
    swiglu: bool,
) -> Result<Tensor> {
    let Device::Cuda(be) = x.device() else {
        unreachable!("launch_rows on CUDA")
    };
    let n = if swiglu { rows / 2 } else { rows };
    let (m, x2) = rows_of(op, x, k)?;
    let out = Tensor::uninit([m, n], x.dtype(), x.device())?;
    let (xp, yp, es) = (cuda_ptr(&x2), cuda_ptr(&out), x.dtype().size_in_bytes());
    let mut r = 0;
    while r < m {
        let mc = (m - r).min(GEMV_MAX_M);
        let (xo, yo) = ((r * k * es) as u64, (r * n * es) as u64);
        be.gemv(
            w_ptr,
            xp + xo,
            yp + yo,
            (mc, n, k),
            x.dtype(),
            quant,
            swiglu,
        )?;
        r += mc;
    }
    out.reshape(out_dims(x, n))
}

/// Dense gate+up GEMV with the SwiGLU epilogue (CUDA, `m <= GEMV_MAX_M`).
fn fused_dense(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    if w.dtype() != x.dtype() || !w.device().same(x.device()) {
        return Err(Error::invalid(
            "linear_swiglu",
            format!(
                "weight {:?} vs input {:?} (dtype and device must match)",
                w.dtype(),
                x.dtype()
            ),
        ));
    }
    let w = w.contiguous()?;
    let [rows, k] = [w.dims()[0], w.dims()[1]];
    launch_rows("linear_swiglu", x, cuda_ptr(&w), [rows, k], None, true)
}

/// Quantized weight: the GEMV on CUDA, dequantize + dense on the CPU.
fn gemv_op(op: &'static str, x: &Tensor, q: &QuantizedTensor, swiglu: bool) -> Result<Tensor> {
    if !q.device().same(x.device()) {
        return Err(Error::invalid(
            op,
            "the weight and the input are on different devices",
        ));
    }
    match x.device() {
        Device::Cpu => {
            let w = LinearWeight::Dense(q.dequantize(DType::F32, &Device::Cpu)?);
            let y = if swiglu {
                linear_swiglu(&x.to_dtype(DType::F32)?, &w)?
            } else {
                linear_any(&x.to_dtype(DType::F32)?, &w)?
            };
            y.to_dtype(x.dtype())
        }
        Device::Cuda(_) => {
            if x.dtype() != DType::F16 {
                return Err(Error::invalid(
                    op,
                    format!(
                        "quantized GEMV kernels take f16 activations, got {:?} (run the model in \
                         f16 with quantized weights)",
                        x.dtype()
                    ),
                ));
            }
            let ptr = q
                .cuda_ptr()
                .expect("a CUDA quantized tensor has device blocks");
            launch_rows(op, x, ptr, q.dims(), Some(q.format()), swiglu)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::quant_pack::QuantFormat;

    /// The CPU paths (what the GPU ones are tested against): a quantized weight gives the
    /// product with its dequantized weight, and `linear_swiglu` equals `swiglu` of the halves.
    #[test]
    fn cpu_paths_match_dense() {
        let cpu = Device::Cpu;
        let (n, k, m) = (6, 64, 3);
        let x = Tensor::randn([m, k], 1.0, 1, DType::F32, &cpu).unwrap();
        let w = Tensor::randn([2 * n, k], 1.0, 2, DType::F32, &cpu).unwrap();
        let q = QuantizedTensor::quantize(&w, QuantFormat::Q4_1, &cpu).unwrap();
        let deq = LinearWeight::Dense(q.dequantize(DType::F32, &cpu).unwrap());
        let q = LinearWeight::Quantized(q);
        let close = |a: &Tensor, b: &Tensor| {
            let (a, b) = (a.to_vec_f32().unwrap(), b.to_vec_f32().unwrap());
            assert_eq!(a.len(), b.len());
            for (x, y) in a.iter().zip(&b) {
                assert!((x - y).abs() <= 1e-4 * (1.0 + y.abs()), "{x} vs {y}");
            }
        };
        close(&linear_any(&x, &q).unwrap(), &linear_any(&x, &deq).unwrap());
        let fused = linear_swiglu(&x, &q).unwrap();
        assert_eq!(fused.dims(), &[m, n]);
        let LinearWeight::Dense(d) = &deq else {
            unreachable!()
        };
        let (g, u) = (d.narrow(0, 0, n).unwrap(), d.narrow(0, n, n).unwrap());
        let want = swiglu(&linear(&x, &g).unwrap(), &linear(&x, &u).unwrap()).unwrap();
        close(&fused, &want);
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
