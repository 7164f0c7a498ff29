//! [`Weight`]: what a [`super::Linear`] or [`super::Embedding`] holds — a dense [`Tensor`], or a
//! [`QuantizedTensor`] whose blocks the CPU reads as they are (GGUF weights loaded with
//! [`crate::models::Llama::load_quantized`]).

use crate::error::{Error, Result};
use crate::tensor::{Device, QuantizedTensor, Tensor};

/// A 2-D weight, dense or block-quantized.
#[derive(Clone, Debug)]
pub enum Weight {
    Dense(Tensor),
    /// CPU only: the products read the blocks directly.
    Quantized(QuantizedTensor),
}

impl Weight {
    /// `[rows, cols]` (a dense weight's first two dims; callers check the rank).
    pub fn dims(&self) -> [usize; 2] {
        match self {
            Weight::Dense(t) => {
                let d = t.dims();
                [d[0], d.get(1).copied().unwrap_or(1)]
            }
            Weight::Quantized(q) => q.dims(),
        }
    }

    /// The dense tensor, if this is one.
    pub fn as_dense(&self) -> Option<&Tensor> {
        match self {
            Weight::Dense(t) => Some(t),
            Weight::Quantized(_) => None,
        }
    }

    /// Bytes a product reads: the stored blocks, or elements × dtype size.
    pub fn byte_size(&self) -> usize {
        match self {
            Weight::Dense(t) => t.elem_count() * t.dtype().size_in_bytes(),
            Weight::Quantized(q) => q.as_bytes().len(),
        }
    }

    /// The same weight on `device`; a quantized weight exists on the CPU only.
    pub fn to_device(&self, device: &Device) -> Result<Weight> {
        match self {
            Weight::Dense(t) => Ok(Weight::Dense(t.to_device(device)?)),
            Weight::Quantized(q) if device.is_cpu() => Ok(Weight::Quantized(q.clone())),
            Weight::Quantized(q) => Err(Error::invalid(
                "Weight::to_device",
                format!(
                    "{} weights stay on the CPU; load with a float dtype for {device}",
                    q.format().name()
                ),
            )),
        }
    }
}
