//! Scaled dot-product attention with GQA and an optional causal mask.
//!
//! CPU: the SIMD attention (rayon over heads, one row of scores at a time). CUDA: one query
//! token (decode) runs the split-KV kernel; several (prefill) the FlashAttention-2 kernel for
//! f16/bf16 and head dims 64/128. What neither serves (f32, other head dims) takes the simple
//! path — two cuBLAS batched GEMMs around the softmax kernel, materialising the
//! `[heads, q_len, k_len]` scores — which is also the GPU reference the kernels are tested
//! against.

use super::matmul::product;
use super::{check_same, cpu_result, cuda_ptr, softmax, with_f32};
use crate::backend::cpu::simd;
use crate::backend::cuda::CudaBackend;
use crate::error::{Error, Result};
use crate::tensor::{Device, Tensor};
use nano_infer_kernels::params::{DECODE_ALL_KEYS_FRESH, FlashAttnParams};

/// `softmax(q·kᵀ·scale)·v` for `q` `[q_len, heads, head_dim]` and `k`, `v`
/// `[k_len, kv_heads, head_dim]`; query head `h` reads KV head `h / (heads / kv_heads)`.
/// With `causal`, query `i` sees keys `j <= i + k_len - q_len`. Returns `[q_len, heads, head_dim]`.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, scale: f32, causal: bool) -> Result<Tensor> {
    const OP: &str = "attention";
    check_same(OP, &[q, k, v])?;
    let (&[q_len, heads, d], &[k_len, kv_heads, dk]) = (q.dims(), k.dims()) else {
        return Err(Error::ShapeMismatch {
            op: OP,
            expected: "q [q_len, heads, head_dim], k/v [k_len, kv_heads, head_dim]".into(),
            got: format!("q {}, k {}", q.shape(), k.shape()),
        });
    };
    if v.dims() != k.dims() || dk != d || kv_heads == 0 || heads % kv_heads != 0 {
        return Err(Error::ShapeMismatch {
            op: OP,
            expected: format!("k and v [k_len, kv_heads, {d}] with kv_heads dividing {heads}"),
            got: format!("k {}, v {}", k.shape(), v.shape()),
        });
    }
    if causal && q_len > k_len {
        return Err(Error::invalid(
            OP,
            format!("causal attention needs q_len <= k_len, got {q_len} > {k_len}"),
        ));
    }
    match q.device() {
        Device::Cpu => {
            let mut out = vec![0.0; q.elem_count()];
            let (q, k, v) = (q.contiguous()?, k.contiguous()?, v.contiguous()?);
            with_f32(&q, |qv| {
                with_f32(&k, |kv| {
                    with_f32(&v, |vv| {
                        simd::attention(
                            qv, kv, vv, q_len, k_len, heads, kv_heads, d, scale, causal, &mut out,
                        )
                    })
                })
            })?;
            cpu_result(out, q.shape().clone(), q.dtype())
        }
        Device::Cuda(be) if q_len == 1 && CudaBackend::decode_attention_supports(d) => {
            // Decode: the split-KV kernel reads the cache in place (k, v may be cache prefixes).
            let (q, k, v) = (q.contiguous()?, k.contiguous()?, v.contiguous()?);
            let out = Tensor::uninit(q.shape().clone(), q.dtype(), q.device())?;
            let ptrs = [cuda_ptr(&q), cuda_ptr(&k), cuda_ptr(&v), cuda_ptr(&out)];
            if ptrs.iter().all(|p| p % 16 == 0) {
                // SAFETY: contiguous tensors of the checked shapes; alignment checked above.
                unsafe {
                    be.decode_attention(
                        ptrs,
                        heads,
                        kv_heads,
                        d,
                        k_len,
                        (0, k_len),
                        // Any tensors: the previous kernel may have written all of k and v.
                        DECODE_ALL_KEYS_FRESH,
                        scale,
                        q.dtype(),
                    )?
                };
                return Ok(out);
            }
            gemm_attention(
                &q,
                &k,
                &v,
                [q_len, k_len, heads, kv_heads, d],
                scale,
                causal,
            )
        }
        Device::Cuda(be) if CudaBackend::flash_attention_supports(d, q.dtype()) => {
            let (q, k, v) = (q.contiguous()?, k.contiguous()?, v.contiguous()?);
            let out = Tensor::uninit(q.shape().clone(), q.dtype(), q.device())?;
            let ptrs = [cuda_ptr(&q), cuda_ptr(&k), cuda_ptr(&v), cuda_ptr(&out)];
            if !ptrs.iter().all(|p| p % 16 == 0) {
                let dims = [q_len, k_len, heads, kv_heads, d];
                return gemm_attention(&q, &k, &v, dims, scale, causal);
            }
            let p = FlashAttnParams::contiguous(
                u32_dim(q_len)?,
                u32_dim(k_len)?,
                heads as u32,
                kv_heads as u32,
                d as u32,
                causal,
                scale,
            );
            // SAFETY: contiguous tensors of the checked shapes (row strides heads·d and
            // kv_heads·d, multiples of 8 as d is 64 or 128); alignment checked above.
            unsafe { be.flash_attention(ptrs[0], ptrs[1], ptrs[2], ptrs[3], 0, p, d, q.dtype())? };
            Ok(out)
        }
        Device::Cuda(_) => {
            gemm_attention(q, k, v, [q_len, k_len, heads, kv_heads, d], scale, causal)
        }
    }
}

/// A sequence length as the kernels' u32, or a typed error.
fn u32_dim(n: usize) -> Result<u32> {
    u32::try_from(n).map_err(|_| Error::invalid("attention", format!("length {n} exceeds u32")))
}

/// The simple CUDA path: two batched cuBLAS GEMMs around the softmax kernel.
fn gemm_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    dims: [usize; 5],
    scale: f32,
    causal: bool,
) -> Result<Tensor> {
    const OP: &str = "attention";
    let [q_len, k_len, heads, kv_heads, d] = dims;
    let group = heads / kv_heads;
    // Heads of one KV group are adjacent, so [kv_heads, group * q_len, d] batches per KV head.
    let qg = q
        .permute(&[1, 0, 2])?
        .contiguous()?
        .reshape([kv_heads, group * q_len, d])?;
    let kt = k.permute(&[1, 0, 2])?.contiguous()?;
    let vt = v.permute(&[1, 0, 2])?.contiguous()?;
    let scores = product(OP, &qg, &kt, true)?.reshape([heads, q_len, k_len])?;
    let probs = softmax(&scores, scale, causal)?.reshape([kv_heads, group * q_len, k_len])?;
    let out = product(OP, &probs, &vt, false)?.reshape([heads, q_len, d])?;
    out.permute(&[1, 0, 2])?.contiguous()
}
