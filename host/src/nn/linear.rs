//! `Linear`: `y = x · Wᵀ` without bias (Llama has none).

use super::{INIT_STD, Module};
use crate::error::{Error, Result};
use crate::functional;
use crate::tensor::{DType, Device, Tensor};

/// A bias-free linear layer.
#[derive(Clone, Debug)]
pub struct Linear {
    /// `[out_features, in_features]` (PyTorch's layout).
    weight: Tensor,
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
        Ok(Linear { weight })
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
    pub fn weight(&self) -> &Tensor {
        &self.weight
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
        functional::linear(x, &self.weight)
    }
}
