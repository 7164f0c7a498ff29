//! Matrix products: `matmul` (batched, `B` broadcast) and `linear` (`x · Wᵀ`). CPU: the SIMD
//! GEMV / `gemm` crate path; CUDA: cuBLAS.

use super::{check_same, cpu_result, cuda_ptr, dense_gemv_weight, with_f32};
use crate::backend::cpu::simd;
use nano_infer_kernels::params::GEMV_MAX_M;

use crate::backend::cuda::{Gemm, GemvFusion};
use crate::error::{Error, Result};
use crate::tensor::{Device, Tensor};

/// `a [.., m, k] · b` where `b` is `[.., k, n]` with the same batch dims, or `[k, n]` shared by
/// every batch entry. Returns `[.., m, n]`.
pub fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    product("matmul", a, b, false)
}

/// A Linear layer without bias: `x [.., k] · wᵀ` with `w` `[n, k]` (PyTorch's layout).
pub fn linear(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    if x.rank() == 0 {
        return Err(Error::invalid(
            "linear",
            "the input must have at least one dimension",
        ));
    }
    let k = x.shape().last_dim();
    let m = x.elem_count() / k.max(1);
    let x2 = x.contiguous()?.reshape([m, k])?;
    let y = product("linear", &x2, w, true)?;
    let mut dims = x.dims().to_vec();
    let n = y.shape().last_dim();
    *dims.last_mut().expect("rank >= 1") = n;
    y.reshape(dims)
}

pub(crate) fn product(
    op: &'static str,
    a: &Tensor,
    b: &Tensor,
    b_transposed: bool,
) -> Result<Tensor> {
    check_same(op, &[a, b])?;
    if a.rank() < 2 || b.rank() < 2 {
        return Err(Error::invalid(
            op,
            format!(
                "operands need rank >= 2, got {} and {}",
                a.shape(),
                b.shape()
            ),
        ));
    }
    let (ad, bd) = (a.dims(), b.dims());
    let (m, k) = (ad[ad.len() - 2], ad[ad.len() - 1]);
    let (bk, n) = if b_transposed {
        (bd[bd.len() - 1], bd[bd.len() - 2])
    } else {
        (bd[bd.len() - 2], bd[bd.len() - 1])
    };
    let a_batch = &ad[..ad.len() - 2];
    let b_batch = &bd[..bd.len() - 2];
    if bk != k || (!b_batch.is_empty() && b_batch != a_batch) {
        return Err(Error::ShapeMismatch {
            op,
            expected: format!("b compatible with a {} (inner dim {k})", a.shape()),
            got: b.shape().to_string(),
        });
    }
    let batch: usize = a_batch.iter().product();
    let mut out_dims = a_batch.to_vec();
    out_dims.extend([m, n]);
    let (a, b) = (a.contiguous()?, b.contiguous()?);
    let stride_b = if b_batch.is_empty() { 0 } else { k * n };
    match a.device() {
        Device::Cpu => {
            let mut out = vec![0.0; batch * m * n];
            with_f32(&a, |av| {
                with_f32(&b, |bv| {
                    for i in 0..batch {
                        let (ai, bi) = (&av[i * m * k..][..m * k], &bv[i * stride_b..][..k * n]);
                        simd::matmul(
                            ai,
                            bi,
                            m,
                            k,
                            n,
                            b_transposed,
                            &mut out[i * m * n..][..m * n],
                        )?;
                    }
                    Ok(())
                })
            })?;
            cpu_result(out, out_dims, a.dtype())
        }
        Device::Cuda(be) => {
            let out = Tensor::uninit(out_dims, a.dtype(), a.device())?;
            if out.elem_count() == 0 {
                return Ok(out);
            }
            if b_transposed && batch == 1 && m <= GEMV_MAX_M && n.max(k) <= u32::MAX as usize {
                // Decode: a few activation rows against a weight — our GEMV beats cuBLAS here.
                // SAFETY: a is [m, k], b [n, k], out a fresh [m, n] (checked above).
                unsafe {
                    be.gemv(
                        dense_gemv_weight(&b),
                        cuda_ptr(&a),
                        cuda_ptr(&out),
                        (m, n, k),
                        a.dtype(),
                        GemvFusion::default(),
                    )?
                };
                return Ok(out);
            }
            let g = Gemm {
                m,
                n,
                k,
                b_transposed,
                batch,
                stride_a: m * k,
                stride_b,
                stride_c: m * n,
            };
            // SAFETY: a, b, out are contiguous with exactly the extents g addresses (checked above).
            unsafe { be.gemm(g, cuda_ptr(&a), cuda_ptr(&b), cuda_ptr(&out), a.dtype())? };
            Ok(out)
        }
    }
}
