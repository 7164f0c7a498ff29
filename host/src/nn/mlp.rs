//! `LlamaMlp`: `down(silu(gate(x)) * up(x))`, the seed's first building block.
//!
//! Gate and up read the same input, so they are one [`FusedLinear`] (one `[2 · intermediate,
//! hidden]` weight, gate rows first, wherever it can be joined). Decode on CUDA (up to
//! `GEMV_MAX_M` rows) over a joined weight runs both projections and SwiGLU as one GEMV
//! (`functional::linear_swiglu`, dense or quantized); other inputs run the product(s) and
//! `swiglu`.

use nano_infer_kernels::params::GEMV_MAX_M;

use super::{FusedLinear, Linear, Module};
use crate::error::{Error, Result};
use crate::functional::{self, LinearWeight};
use crate::tensor::{DType, Device, Tensor};

/// Llama's feed-forward block.
#[derive(Clone, Debug)]
pub struct LlamaMlp {
    /// gate and up, `[intermediate, hidden]` each.
    pub gate_up: FusedLinear,
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
        let random =
            |inp, out, s: u64| Linear::random(inp, out, seed.wrapping_add(s), dtype, device);
        LlamaMlp::from_parts(
            random(hidden_size, intermediate_size, 0)?,
            random(hidden_size, intermediate_size, 1)?,
            random(intermediate_size, hidden_size, 2)?,
        )
    }

    /// The block from its three projections (gate and up of one shape).
    pub fn from_parts(gate_proj: Linear, up_proj: Linear, down_proj: Linear) -> Result<LlamaMlp> {
        if gate_proj.weight().dims() != up_proj.weight().dims() {
            return Err(Error::ShapeMismatch {
                op: "LlamaMlp",
                expected: format!("up_proj like gate_proj {:?}", gate_proj.weight().dims()),
                got: format!("{:?}", up_proj.weight().dims()),
            });
        }
        Ok(LlamaMlp {
            gate_up: FusedLinear::new(vec![gate_proj, up_proj])?,
            down_proj,
        })
    }

    /// The same weights on another device.
    pub fn to_device(&self, device: &Device) -> Result<LlamaMlp> {
        Ok(LlamaMlp {
            gate_up: self.gate_up.to_device(device)?,
            down_proj: self.down_proj.to_device(device)?,
        })
    }

    /// The block with each weight replaced by `f(weight)` (see [`Linear::map_weight`]).
    pub fn map_weights(
        &self,
        f: &impl Fn(&LinearWeight) -> Result<LinearWeight>,
    ) -> Result<LlamaMlp> {
        Ok(LlamaMlp {
            gate_up: self.gate_up.map_weights(f)?,
            down_proj: self.down_proj.map_weight(f)?,
        })
    }

    /// Bytes of the three weights.
    pub fn weight_bytes(&self) -> usize {
        self.gate_up.weight_bytes() + self.down_proj.weight().size_in_bytes()
    }
}

impl Module for LlamaMlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let rows = x.elem_count() / x.shape().last_dim().max(1);
        let h = match self.gate_up.joined() {
            Some(gate_up) if matches!(x.device(), Device::Cuda(_)) && rows <= GEMV_MAX_M => {
                functional::linear_swiglu(x, gate_up)?
            }
            _ => {
                let gu = self.gate_up.forward(x)?;
                functional::swiglu(&gu[0], &gu[1])?
            }
        };
        self.down_proj.forward(&h)
    }
}
