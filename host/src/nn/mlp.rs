//! `LlamaMlp`: `down(silu(gate(x)) * up(x))`, the seed's first building block.

use super::{Linear, Module};
use crate::error::Result;
use crate::functional;
use crate::tensor::{DType, Device, Tensor};

/// Llama's feed-forward block.
#[derive(Clone, Debug)]
pub struct LlamaMlp {
    /// `[intermediate, hidden]`.
    pub gate_proj: Linear,
    /// `[intermediate, hidden]`.
    pub up_proj: Linear,
    /// `[hidden, intermediate]`.
    pub down_proj: Linear,
}

impl LlamaMlp {
    /// Random weights (seeded), as in the seed's example `LlamaMLP(4096, 11008)`.
    pub fn new(
        hidden_size: usize,
        intermediate_size: usize,
        seed: u64,
        dtype: DType,
        device: &Device,
    ) -> Result<LlamaMlp> {
        Ok(LlamaMlp {
            gate_proj: Linear::random(hidden_size, intermediate_size, seed, dtype, device)?,
            up_proj: Linear::random(
                hidden_size,
                intermediate_size,
                seed.wrapping_add(1),
                dtype,
                device,
            )?,
            down_proj: Linear::random(
                intermediate_size,
                hidden_size,
                seed.wrapping_add(2),
                dtype,
                device,
            )?,
        })
    }
    /// The same weights on another device.
    pub fn to_device(&self, device: &Device) -> Result<LlamaMlp> {
        let mv = |l: &Linear| l.to_device(device);
        Ok(LlamaMlp {
            gate_proj: mv(&self.gate_proj)?,
            up_proj: mv(&self.up_proj)?,
            down_proj: mv(&self.down_proj)?,
        })
    }
}

impl Module for LlamaMlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let gate = self.gate_proj.forward(x)?;
        let up = self.up_proj.forward(x)?;
        self.down_proj.forward(&functional::swiglu(&gate, &up)?)
    }
}
