//! `Linear`: `y = x · Wᵀ` without bias (Llama has none); the weight dense or block-quantized.

use super::{INIT_STD, Module};
use crate::error::{Error, Result};
use crate::functional::{self, LinearWeight};
use crate::tensor::{DType, Device, QuantizedTensor, Tensor};

/// A bias-free linear layer.
#[derive(Clone, Debug)]
pub struct Linear {
    /// `[out_features, in_features]` (PyTorch's layout).
    weight: LinearWeight,
    /// Quantized weights only: round the activations' rounding error in a second pass.
    residual: bool,
}

impl Linear {
    /// Wraps a `[out, in]` weight.
    pub fn new(weight: Tensor) -> Result<Linear> {
        if weight.rank() != 2 {
            return Err(Error::ShapeMismatch {
                op: "Linear::new",
                expected: "[out, in]".into(),
                got: weight.shape().to_string(),
            });
        }
        Ok(Linear {
            weight: LinearWeight::Dense(weight),
            residual: false,
        })
    }
    /// Wraps a block-quantized `[out, in]` weight.
    pub fn quantized(weight: QuantizedTensor) -> Linear {
        Linear {
            weight: LinearWeight::Quantized(weight),
            residual: false,
        }
    }
    /// For a quantized weight: multiply the 8-bit activations' rounding error too, so the
    /// outputs are ~100× closer to f32 math at little cost when the product is memory-bound
    /// (see [`crate::backend::cpu::quant::QuantKernels::matmul_residual`]). The LM head uses it:
    /// its outputs are the logits, where rounding flips near-ties.
    pub fn with_residual_pass(self) -> Linear {
        Linear {
            residual: true,
            ..self
        }
    }
    /// Wraps either kind of weight (a dense one must be `[out, in]`).
    pub fn from_weight(weight: LinearWeight) -> Result<Linear> {
        match weight {
            LinearWeight::Dense(t) => Linear::new(t),
            LinearWeight::Quantized(q) => Ok(Linear::quantized(q)),
        }
    }
    /// Weights drawn uniformly with standard deviation `INIT_STD` and `seed`, on `device`
    /// (see [`Tensor::rand_uniform`]).
    pub fn random(
        in_features: usize,
        out_features: usize,
        seed: u64,
        dtype: DType,
        device: &Device,
    ) -> Result<Linear> {
        Linear::new(Tensor::rand_uniform(
            [out_features, in_features],
            INIT_STD,
            seed,
            dtype,
            device,
        )?)
    }
    pub fn weight(&self) -> &LinearWeight {
        &self.weight
    }
    /// See [`QuantizedTensor::prefetch_in_background`] (a no-op for dense weights).
    pub fn prefetch_in_background(&self) {
        if let LinearWeight::Quantized(q) = &self.weight {
            q.prefetch_in_background();
        }
    }
    /// The same layer on `device` (see [`LinearWeight::to_device`]).
    pub fn to_device(&self, device: &Device) -> Result<Linear> {
        Ok(Linear {
            weight: self.weight.to_device(device)?,
            residual: self.residual,
        })
    }
    /// The layer with its weight replaced by `f(weight)` (quantizing or dequantizing a model
    /// where it lives, see `Llama::quantize`).
    pub fn map_weight(&self, f: &impl Fn(&LinearWeight) -> Result<LinearWeight>) -> Result<Linear> {
        Ok(Linear {
            weight: f(&self.weight)?,
            ..*self
        })
    }
    pub fn in_features(&self) -> usize {
        self.weight.dims()[1]
    }
    pub fn out_features(&self) -> usize {
        self.weight.dims()[0]
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match &self.weight {
            LinearWeight::Quantized(q) if self.residual => functional::linear_quantized(x, q, true),
            w => functional::linear_any(x, w),
        }
    }
}
