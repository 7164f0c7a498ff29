//! PyTorch-like modules: a [`Module`] has weights and a `forward`. Modules hold tensors on one
//! device and call the `functional` API, which dispatches to that device's backend.

mod embedding;
mod fused_linear;
mod linear;
mod mlp;
mod norm;

pub use embedding::Embedding;
pub use fused_linear::FusedLinear;
pub use linear::Linear;
pub use mlp::LlamaMlp;
pub use norm::RmsNorm;

use crate::error::Result;
use crate::tensor::Tensor;

/// A layer with a forward pass.
pub trait Module {
    /// Applies the layer to `x`.
    fn forward(&self, x: &Tensor) -> Result<Tensor>;
}

/// Standard deviation of randomly initialised weights (as HF's `initializer_range`).
pub const INIT_STD: f32 = 0.02;
