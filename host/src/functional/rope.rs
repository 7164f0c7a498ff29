//! Rotary position embedding and its cos/sin table.

use nano_infer_kernels::params::RopeParams;

use super::{cpu_result, cuda_ptr, with_f32};
use crate::backend::cpu::{reference, simd};
use crate::error::{Error, Result};
use crate::tensor::{DType, Device, Tensor};

/// cos/sin of every (position, frequency) pair, `[max_pos, head_dim / 2]` f32 each, computed
/// once in f64 on the host and kept on the device that runs the model.
#[derive(Clone, Debug)]
pub struct RopeTable {
    cos: Tensor,
    sin: Tensor,
    max_pos: usize,
    head_dim: usize,
}

impl RopeTable {
    /// The table for positions `0..max_pos` with base `theta`.
    pub fn new(max_pos: usize, head_dim: usize, theta: f32, device: &Device) -> Result<RopeTable> {
        if head_dim == 0 || !head_dim.is_multiple_of(2) {
            return Err(Error::invalid(
                "rope_table",
                format!("head_dim must be even and positive, got {head_dim}"),
            ));
        }
        let (cos, sin) = reference::rope_table(max_pos, head_dim, theta);
        let shape = [max_pos, head_dim / 2];
        Ok(RopeTable {
            cos: Tensor::from_f32(cos, shape, DType::F32, device)?,
            sin: Tensor::from_f32(sin, shape, DType::F32, device)?,
            max_pos,
            head_dim,
        })
    }
    /// Positions covered.
    pub fn max_pos(&self) -> usize {
        self.max_pos
    }
    /// The cos and sin tables.
    pub(crate) fn tables(&self) -> (&Tensor, &Tensor) {
        (&self.cos, &self.sin)
    }
}

/// Rotates `x` (`[.., seq, heads, head_dim]`), token `s` at position `pos_offset + s`.
/// `interleaved` picks GGUF's adjacent pairs instead of HF's halves.
pub fn rope(x: &Tensor, table: &RopeTable, pos_offset: usize, interleaved: bool) -> Result<Tensor> {
    const OP: &str = "rope";
    let dims = x.dims();
    if dims.len() < 3 {
        return Err(Error::ShapeMismatch {
            op: OP,
            expected: "[.., seq, heads, head_dim]".into(),
            got: x.shape().to_string(),
        });
    }
    let (seq, heads, head_dim) = (
        dims[dims.len() - 3],
        dims[dims.len() - 2],
        dims[dims.len() - 1],
    );
    if head_dim != table.head_dim {
        return Err(Error::ShapeMismatch {
            op: OP,
            expected: format!("head_dim {}", table.head_dim),
            got: format!("{head_dim}"),
        });
    }
    if pos_offset + seq > table.max_pos {
        return Err(Error::ContextOverflow {
            needed: pos_offset + seq,
            capacity: table.max_pos,
        });
    }
    if !x.device().same(table.cos.device()) {
        return Err(Error::DeviceMismatch {
            op: OP,
            lhs: x.device().to_string(),
            rhs: table.cos.device().to_string(),
        });
    }
    if x.elem_count() >= u32::MAX as usize {
        return Err(Error::invalid(
            OP,
            format!(
                "{} elements exceed the kernel's 32-bit indexing",
                x.elem_count()
            ),
        ));
    }
    let x = x.contiguous()?;
    match x.device() {
        Device::Cpu => {
            let mut out = vec![0.0; x.elem_count()];
            with_f32(&x, |xv| {
                with_f32(&table.cos, |cos| {
                    with_f32(&table.sin, |sin| {
                        simd::rope(
                            xv,
                            seq,
                            heads,
                            head_dim,
                            cos,
                            sin,
                            pos_offset,
                            interleaved,
                            &mut out,
                        )
                    })
                })
            })?;
            cpu_result(out, x.shape().clone(), x.dtype())
        }
        Device::Cuda(b) => {
            let out = Tensor::uninit(x.shape().clone(), x.dtype(), x.device())?;
            if x.elem_count() == 0 {
                return Ok(out);
            }
            let p = RopeParams {
                rows: (x.elem_count() / head_dim) as u32,
                seq: seq as u32,
                heads: heads as u32,
                head_dim: head_dim as u32,
                pos_offset: pos_offset as u32,
                interleaved: interleaved as u32,
            };
            b.rope(
                cuda_ptr(&x),
                cuda_ptr(&out),
                cuda_ptr(&table.cos),
                cuda_ptr(&table.sin),
                p,
                x.dtype(),
            )?;
            Ok(out)
        }
    }
}
