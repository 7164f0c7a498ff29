//! `linear_quantized`: `x · Wᵀ` with `W` in a ggml block format, on the CPU's quantized kernels
//! ([`crate::backend::cpu::quant`]): the activations are rounded to 8 bits per block of 32 and
//! the weight blocks are read packed.

use super::{cpu_result, with_f32};
use crate::backend::cpu::quant::QuantKernels;
use crate::error::{Error, Result};
use crate::tensor::{Device, QuantizedTensor, Tensor};

/// `x [.., k] · wᵀ` for `w` `[n, k]` quantized; returns `[.., n]` in `x`'s dtype. CPU only.
/// With `residual`, the activations' rounding error takes a second 8-bit pass
/// ([`QuantKernels::matmul_residual`]): for the LM head, whose outputs are the logits.
pub fn linear_quantized(x: &Tensor, w: &QuantizedTensor, residual: bool) -> Result<Tensor> {
    const OP: &str = "linear_quantized";
    let [n, k] = w.dims();
    if x.rank() == 0 || x.shape().last_dim() != k {
        return Err(Error::ShapeMismatch {
            op: OP,
            expected: format!("[.., {k}] (the weight is [{n}, {k}])"),
            got: x.shape().to_string(),
        });
    }
    if !matches!(x.device(), Device::Cpu) {
        return Err(Error::invalid(
            OP,
            format!(
                "quantized weights run on the CPU, the input is on {}",
                x.device()
            ),
        ));
    }
    let m = x.elem_count() / k.max(1);
    let x = x.contiguous()?;
    let mut out = vec![0.0; m * n];
    let q = QuantKernels::best();
    with_f32(&x, |xv| {
        let (f, bytes) = (w.format(), w.as_bytes());
        if residual {
            q.matmul_residual(f, bytes, n, k, xv, m, &mut out)
        } else {
            q.matmul(f, bytes, n, k, xv, m, &mut out)
        }
    })?;
    let mut dims = x.dims().to_vec();
    *dims.last_mut().expect("rank >= 1") = n;
    cpu_result(out, dims, x.dtype())
}
