//! CUDA ops of the one-token decode step that read the token id or the position from device
//! memory ([`DeviceU32`]), so a CUDA graph captured once serves every step: the embedding of a
//! device-side token id, RoPE fused with the KV-cache write, attention over the cache up to the
//! device-side position, and greedy argmax into a device-side token id.
//!
//! Each has a host-position twin that stays the reference: `embedding`, `rope` followed by
//! `KvCache::append`, `attention` over the cache prefix, `sampler::argmax`. These take CUDA
//! tensors only (a CPU tensor is an [`Error::DeviceMismatch`]).

use nano_infer_kernels::params::RopeKvParams;

use super::{RopeTable, check_same, cuda_ptr};
use crate::backend::cuda::{CudaBackend, DeviceU32};
use crate::error::{Error, Result};
use crate::tensor::{DType, Device, Tensor};

/// The CUDA backend of `t`, which must be the one `value` lives on.
fn backend_of<'a>(op: &'static str, t: &'a Tensor, value: &DeviceU32) -> Result<&'a CudaBackend> {
    match t.device() {
        Device::Cuda(b) if b.same(value.backend()) => Ok(b),
        d => Err(Error::DeviceMismatch {
            op,
            lhs: d.to_string(),
            rhs: Device::Cuda(value.backend().clone()).to_string(),
        }),
    }
}

/// Errors unless `t` has exactly `dims`.
pub(super) fn check_dims(op: &'static str, t: &Tensor, dims: &[usize]) -> Result<()> {
    if t.dims() == dims {
        Ok(())
    } else {
        Err(Error::ShapeMismatch {
            op,
            expected: format!("{dims:?}"),
            got: t.shape().to_string(),
        })
    }
}

/// The row `table[*id]`, `[1, dim]` (an id past the vocabulary gives zeros).
pub fn embedding_at(id: &DeviceU32, table: &Tensor) -> Result<Tensor> {
    const OP: &str = "embedding_at";
    let be = backend_of(OP, table, id)?;
    let &[vocab, dim] = table.dims() else {
        return Err(Error::ShapeMismatch {
            op: OP,
            expected: "[vocab, dim]".into(),
            got: table.shape().to_string(),
        });
    };
    let table = table.contiguous()?;
    let out = Tensor::uninit([1, dim], table.dtype(), table.device())?;
    be.embedding(
        id.ptr(),
        cuda_ptr(&table),
        cuda_ptr(&out),
        1,
        dim,
        vocab,
        table.dtype(),
    )?;
    Ok(out)
}

/// Checks the caches (`[capacity, kv_heads, head_dim]`, contiguous, on `t`'s device, as the
/// RoPE table for `head_dim`) of a one-token RoPE + KV-cache write positioned by `pos`. Returns
/// the positions both the caches and the table hold: the kernels write nothing at or past it.
pub(super) fn check_rope_kv(
    op: &'static str,
    t: &Tensor,
    (k_cache, v_cache): (&Tensor, &Tensor),
    (kv_heads, d): (usize, usize),
    table: &RopeTable,
    pos: &DeviceU32,
) -> Result<u32> {
    check_same(op, &[t, k_cache, v_cache])?;
    backend_of(op, t, pos)?;
    let capacity = k_cache.dims().first().copied().unwrap_or(0);
    check_dims(op, k_cache, &[capacity, kv_heads, d])?;
    check_dims(op, v_cache, &[capacity, kv_heads, d])?;
    let (cos, _) = table.tables();
    if d != 2 * cos.dims()[1] || !cos.device().same(t.device()) {
        return Err(Error::invalid(
            op,
            format!("a RoPE table for head_dim {d} on {}", t.device()),
        ));
    }
    if !k_cache.is_contiguous() || !v_cache.is_contiguous() {
        return Err(Error::invalid(op, "the caches must be contiguous"));
    }
    let rows = capacity.min(cos.dims()[0]);
    u32::try_from(rows).map_err(|_| Error::invalid(op, format!("{rows} cache rows")))
}

/// RoPE on `q` (`[1, heads, head_dim]`) and `k` (`[1, kv_heads, head_dim]`) at position `*pos`,
/// with the rotated `k` and `v` written into row `*pos` of the layer's caches
/// (`[capacity, kv_heads, head_dim]`). Returns the rotated `q`. The caller keeps `*pos` below
/// the capacity and the table's length: the host cannot check a device-side value, so at a
/// position past them the kernel writes nothing (the caches keep their rows; the returned `q`
/// is then undefined).
#[allow(clippy::too_many_arguments)]
pub fn rope_kv_write(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    table: &RopeTable,
    k_cache: &Tensor,
    v_cache: &Tensor,
    pos: &DeviceU32,
    interleaved: bool,
) -> Result<Tensor> {
    const OP: &str = "rope_kv_write";
    check_same(OP, &[q, k, v, k_cache, v_cache])?;
    let be = backend_of(OP, q, pos)?;
    let &[1, heads, d] = q.dims() else {
        return Err(Error::ShapeMismatch {
            op: OP,
            expected: "q [1, heads, head_dim]".into(),
            got: q.shape().to_string(),
        });
    };
    let kv_heads = k.dims().get(1).copied().unwrap_or(0);
    check_dims(OP, k, &[1, kv_heads, d])?;
    check_dims(OP, v, &[1, kv_heads, d])?;
    let rows = check_rope_kv(OP, q, (k_cache, v_cache), (kv_heads, d), table, pos)?;
    let (cos, sin) = table.tables();
    let (q, k, v) = (q.contiguous()?, k.contiguous()?, v.contiguous()?);
    let out = Tensor::uninit(q.shape().clone(), q.dtype(), q.device())?;
    let p = RopeKvParams {
        seq: 1,
        heads: heads as u32,
        kv_heads: kv_heads as u32,
        head_dim: d as u32,
        pos_offset: 0,
        interleaved: interleaved as u32,
        rows,
    };
    // SAFETY: shapes checked above; the caches and tables hold `rows` rows.
    unsafe {
        be.rope_kv_write(
            [cuda_ptr(&q), cuda_ptr(&out), cuda_ptr(&k), cuda_ptr(&v)],
            [cuda_ptr(k_cache), cuda_ptr(v_cache)],
            [cuda_ptr(cos), cuda_ptr(sin)],
            pos.ptr(),
            p,
            q.dtype(),
        )?
    };
    Ok(out)
}

/// One token's attention (`q` `[1, heads, head_dim]`, scaled by `scale`) over cache rows
/// `0..=*pos` (`[capacity, kv_heads, head_dim]` each; the new token's row included). The grid
/// is planned for the whole capacity, and a `*pos` past it (which the host cannot check)
/// attends over the whole cache and reads nothing beyond. Returns `[1, heads, head_dim]`.
///
/// A decode step's attention: the kernel reads `*pos` and starts reading rows `0..*pos` before
/// the kernel queued just before it has finished, which may write only row `*pos` and `q` — as
/// [`rope_kv_write`] and [`super::qkv_rope_kv_write`] do. Rows and counts written any other way
/// must be queued at least two kernels earlier; [`super::attention`] has no such condition.
pub fn decode_attention(
    q: &Tensor,
    k_cache: &Tensor,
    v_cache: &Tensor,
    pos: &DeviceU32,
    scale: f32,
) -> Result<Tensor> {
    const OP: &str = "decode_attention";
    check_same(OP, &[q, k_cache, v_cache])?;
    let be = backend_of(OP, q, pos)?;
    let (&[1, heads, d], &[capacity, kv_heads, dk]) = (q.dims(), k_cache.dims()) else {
        return Err(Error::ShapeMismatch {
            op: OP,
            expected: "q [1, heads, head_dim], caches [capacity, kv_heads, head_dim]".into(),
            got: format!("q {}, k {}", q.shape(), k_cache.shape()),
        });
    };
    check_dims(OP, v_cache, k_cache.dims())?;
    if dk != d || kv_heads == 0 || heads % kv_heads != 0 {
        return Err(Error::invalid(
            OP,
            format!("{heads} query heads over {kv_heads} KV heads of size {dk}, q size {d}"),
        ));
    }
    if !CudaBackend::decode_attention_supports(d) {
        return Err(Error::invalid(
            OP,
            format!("head_dim {d} (the split-KV kernels take 64 and 128)"),
        ));
    }
    let q = q.contiguous()?;
    let out = Tensor::uninit(q.shape().clone(), q.dtype(), q.device())?;
    let ptrs = [
        cuda_ptr(&q),
        cuda_ptr(k_cache),
        cuda_ptr(v_cache),
        cuda_ptr(&out),
    ];
    if !k_cache.is_contiguous() || !v_cache.is_contiguous() || ptrs.iter().any(|p| p % 16 != 0) {
        return Err(Error::invalid(
            OP,
            "contiguous, 16-byte aligned caches and query",
        ));
    }
    // SAFETY: shapes, contiguity and alignment checked; the kernel reads at most `capacity`
    // rows.
    unsafe {
        be.decode_attention(
            ptrs,
            heads,
            kv_heads,
            d,
            1,
            (pos.ptr(), capacity),
            // Only the new token's row may be the previous kernel's work (the contract above).
            1,
            scale,
            q.dtype(),
        )?
    };
    Ok(out)
}

/// Writes the index of the largest of the f32 `logits` (any shape) into `out`, as
/// `sampler::argmax` picks it.
pub fn argmax_into(logits: &Tensor, out: &DeviceU32) -> Result<()> {
    const OP: &str = "argmax_into";
    let be = backend_of(OP, logits, out)?;
    if logits.dtype() != DType::F32 {
        return Err(Error::DTypeMismatch {
            op: OP,
            expected: DType::F32,
            got: logits.dtype(),
        });
    }
    let n = logits.elem_count();
    if n == 0 || n > u32::MAX as usize {
        return Err(Error::invalid(OP, format!("{n} logits")));
    }
    let logits = logits.contiguous()?;
    // SAFETY: n contiguous f32 and one u32.
    unsafe { be.argmax(cuda_ptr(&logits), n, out.ptr()) }
}
