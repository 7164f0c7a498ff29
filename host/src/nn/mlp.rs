//! `LlamaMlp`: `down(silu(gate(x)) * up(x))`, the seed's first building block.
//!
//! Dense gate and up live in one `[2 · intermediate, hidden]` weight (`gate_up`, gate rows
//! first); `gate_proj` and `up_proj` are views of its halves (no extra memory). Decode on CUDA
//! (up to `GEMV_MAX_M` rows) runs both projections and SwiGLU as one GEMV
//! (`functional::linear_swiglu`); other inputs run the two products and `swiglu`.
//!
//! Quantized gate and up (GGUF weights borrowed from the file's map,
//! [`crate::models::Llama::load_quantized`]) stay two weights, each run by the CPU's quantized
//! kernels: concatenating them would copy about half of the model's weights out of the map (into
//! resident memory next to the mapped pages), and one product over the concatenated rows would
//! save only a rayon dispatch.

use nano_infer_kernels::params::GEMV_MAX_M;

use super::{Linear, Module};
use crate::error::{Error, Result};
use crate::functional::{self, LinearWeight};
use crate::tensor::{DType, Device, Tensor};

/// Llama's feed-forward block.
#[derive(Clone, Debug)]
pub struct LlamaMlp {
    /// `[intermediate, hidden]`: rows `0..intermediate` of `gate_up` when dense.
    pub gate_proj: Linear,
    /// `[intermediate, hidden]`: rows `intermediate..` of `gate_up` when dense.
    pub up_proj: Linear,
    /// `[hidden, intermediate]`.
    pub down_proj: Linear,
    /// `[2 · intermediate, hidden]`: dense gate and up concatenated; `None` when quantized.
    gate_up: Option<LinearWeight>,
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

    /// The block from its three projections: dense gate and up are copied into one weight (on
    /// their device) and become views of it; quantized ones are kept as they are.
    pub fn from_parts(gate_proj: Linear, up_proj: Linear, down_proj: Linear) -> Result<LlamaMlp> {
        let (gw, uw) = (gate_proj.weight(), up_proj.weight());
        let (LinearWeight::Dense(g), LinearWeight::Dense(u)) = (gw, uw) else {
            if gw.dims() != uw.dims() || !gw.device().same(uw.device()) {
                return Err(Error::ShapeMismatch {
                    op: "LlamaMlp",
                    expected: format!("up_proj like gate_proj {:?} on {}", gw.dims(), gw.device()),
                    got: format!("{:?} on {}", uw.dims(), uw.device()),
                });
            }
            return Ok(LlamaMlp {
                gate_proj,
                up_proj,
                down_proj,
                gate_up: None,
            });
        };
        if g.dims() != u.dims() || g.dtype() != u.dtype() || !g.device().same(u.device()) {
            return Err(Error::ShapeMismatch {
                op: "LlamaMlp",
                expected: format!("up_proj like gate_proj {} {:?}", g.shape(), g.dtype()),
                got: format!("{} {:?}", u.shape(), u.dtype()),
            });
        }
        let [inter, hidden] = [g.dims()[0], g.dims()[1]];
        let gate_up = Tensor::zeros([2 * inter, hidden], g.dtype(), g.device())?;
        gate_up.narrow(0, 0, inter)?.copy_from(g)?;
        gate_up.narrow(0, inter, inter)?.copy_from(u)?;
        Ok(LlamaMlp {
            gate_proj: Linear::new(gate_up.narrow(0, 0, inter)?)?,
            up_proj: Linear::new(gate_up.narrow(0, inter, inter)?)?,
            down_proj,
            gate_up: Some(LinearWeight::Dense(gate_up)),
        })
    }

    /// The same weights on another device.
    pub fn to_device(&self, device: &Device) -> Result<LlamaMlp> {
        let mv = |l: &Linear| l.to_device(device);
        LlamaMlp::from_parts(
            mv(&self.gate_proj)?,
            mv(&self.up_proj)?,
            mv(&self.down_proj)?,
        )
    }
}

impl Module for LlamaMlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let rows = x.elem_count() / x.shape().last_dim().max(1);
        let h = match &self.gate_up {
            Some(gate_up) if matches!(x.device(), Device::Cuda(_)) && rows <= GEMV_MAX_M => {
                functional::linear_swiglu(x, gate_up)?
            }
            _ => {
                let [gate, up] =
                    functional::linear_group(x, [self.gate_proj.weight(), self.up_proj.weight()])?;
                functional::swiglu(&gate, &up)?
            }
        };
        self.down_proj.forward(&h)
    }
}
