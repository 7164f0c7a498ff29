//! `RmsNorm`: Llama's normalisation.

use super::Module;
use crate::error::{Error, Result};
use crate::functional;
use crate::tensor::{DType, Device, Tensor};

/// RMSNorm over the last dimension with a learned scale.
#[derive(Clone, Debug)]
pub struct RmsNorm {
    /// `[dim]`.
    weight: Tensor,
    eps: f32,
}

impl RmsNorm {
    pub fn new(weight: Tensor, eps: f32) -> Result<RmsNorm> {
        // `eps.is_nan()` fails too: a NaN epsilon would poison every output.
        if weight.rank() != 1 || eps.is_nan() || eps < 0.0 {
            return Err(Error::invalid(
                "RmsNorm::new",
                format!(
                    "weight must be [dim] and eps >= 0, got {} and {eps}",
                    weight.shape()
                ),
            ));
        }
        Ok(RmsNorm { weight, eps })
    }
    /// A norm with unit scale.
    pub fn ones(dim: usize, eps: f32, dtype: DType, device: &Device) -> Result<RmsNorm> {
        RmsNorm::new(Tensor::from_f32(vec![1.0; dim], [dim], dtype, device)?, eps)
    }
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }
    /// `(weight, eps)`, as a fused kernel takes the norm.
    pub fn parts(&self) -> (&Tensor, f32) {
        (&self.weight, self.eps)
    }
    /// `(x + residual, norm(x + residual))` in one pass.
    pub fn forward_residual(&self, x: &Tensor, residual: &Tensor) -> Result<(Tensor, Tensor)> {
        functional::add_rms_norm(x, residual, &self.weight, self.eps)
    }
}

impl Module for RmsNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        functional::rms_norm(x, &self.weight, self.eps)
    }
}
