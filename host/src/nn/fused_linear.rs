//! `FusedLinear`: linear layers that read the same input — Llama's q, k and v projections, the
//! MLP's gate and up — kept as one `[Σ out, in]` weight where that costs no memory, so a decode
//! step runs one GEMV (one launch, one pass over the input) for all of them.
//!
//! - Dense weights, on any device: copied into one weight.
//! - Quantized weights bound for CUDA: joined on the CPU before the upload
//!   ([`QuantizedTensor::concat_rows`]), so the GPU holds only the joined copy; weights quantized
//!   in place ([`FusedLinear::quantize`]) are quantized joined.
//! - Quantized weights on the CPU as loaded stay separate: they are borrowed from the file's
//!   memory map, and a joined copy would put them in resident memory a second time. Their
//!   products still run as one (`functional::linear_group`: the input quantized once, one pool
//!   of tasks).
//!
//! A joined product returns each part as a view of its columns (contiguous for a single row, as
//! in decode). A prefill instead runs one GEMM per part over its rows of the joined weight
//! (dense anywhere, quantized on CUDA), so every output is contiguous: slicing one wide output
//! cost the 7B prefill a third of its speed in copies of strided columns.

use super::{Linear, Module};
use crate::error::{Error, Result};
use crate::functional::{self, LinearWeight};
use crate::tensor::{Device, QuantizedTensor, Tensor};

/// Several bias-free linear layers over one input.
#[derive(Clone, Debug)]
pub struct FusedLinear {
    /// Output features of each part, in order.
    outs: Vec<usize>,
    storage: Storage,
}

#[derive(Clone, Debug)]
enum Storage {
    /// `[Σ outs, in]`, the parts' rows in order.
    Joined(Linear),
    /// One layer per part (quantized weights borrowed from a file).
    Separate(Vec<Linear>),
}

impl FusedLinear {
    /// The layers `parts` (same input size and device), joined where the module doc says.
    pub fn new(parts: Vec<Linear>) -> Result<FusedLinear> {
        let first = parts
            .first()
            .ok_or_else(|| Error::invalid("FusedLinear", "no layers"))?;
        let (k, device) = (first.in_features(), first.weight().device().clone());
        for p in &parts {
            if p.in_features() != k || !p.weight().device().same(&device) {
                return Err(Error::ShapeMismatch {
                    op: "FusedLinear",
                    expected: format!("layers of {k} inputs on {device}"),
                    got: format!("{} inputs on {}", p.in_features(), p.weight().device()),
                });
            }
        }
        let outs = parts.iter().map(Linear::out_features).collect();
        let weights: Vec<&LinearWeight> = parts.iter().map(Linear::weight).collect();
        let joined = match join(&weights)? {
            Some(w) => Storage::Joined(Linear::from_weight(w)?),
            None => Storage::Separate(parts),
        };
        Ok(FusedLinear {
            outs,
            storage: joined,
        })
    }

    /// `[x · W_iᵀ for each part]`, each `[.., out_i]`.
    pub fn forward(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        match &self.storage {
            Storage::Separate(parts) => {
                let weights: Vec<&LinearWeight> = parts.iter().map(Linear::weight).collect();
                functional::linear_group(x, &weights)
            }
            Storage::Joined(w) => {
                let rows = x.elem_count() / x.shape().last_dim().max(1);
                if let Some(dense) = self.prefill_weight(w.weight(), x, rows)? {
                    // One GEMM per part on its rows of the weight: each output comes out
                    // contiguous, where slicing one wide output would leave strided columns
                    // that every consumer then copies.
                    let mut at = 0;
                    return self
                        .outs
                        .iter()
                        .map(|&n| {
                            at += n;
                            functional::linear(x, &dense.narrow(0, at - n, n)?)
                        })
                        .collect();
                }
                let y = w.forward(x)?;
                let last = y.rank() - 1;
                let mut at = 0;
                self.outs
                    .iter()
                    .map(|&n| {
                        at += n;
                        y.narrow(last, at - n, n)
                    })
                    .collect()
            }
        }
    }

    /// The dense joined weight for a product over `rows > GEMV_MAX_M` rows of `x` (a prefill):
    /// the weight itself, or on CUDA a quantized one expanded for cuBLAS (once for all parts);
    /// `None` where the joined product runs as it is.
    fn prefill_weight(&self, w: &LinearWeight, x: &Tensor, rows: usize) -> Result<Option<Tensor>> {
        if rows <= functional::GEMV_MAX_M {
            return Ok(None);
        }
        Ok(match w {
            LinearWeight::Dense(t) => Some(t.clone()),
            LinearWeight::Quantized(q) if !x.device().is_cpu() => {
                Some(q.dequantize(x.dtype(), x.device())?)
            }
            LinearWeight::Quantized(_) => None,
        })
    }

    /// The joined `[Σ out, in]` weight, when there is one.
    pub fn joined(&self) -> Option<&LinearWeight> {
        match &self.storage {
            Storage::Joined(w) => Some(w.weight()),
            Storage::Separate(_) => None,
        }
    }

    /// Output features of each part.
    pub fn outs(&self) -> &[usize] {
        &self.outs
    }

    /// Bytes of the weights (what a product reads once per token).
    pub fn weight_bytes(&self) -> usize {
        match &self.storage {
            Storage::Joined(w) => w.weight().size_in_bytes(),
            Storage::Separate(parts) => parts.iter().map(|p| p.weight().size_in_bytes()).sum(),
        }
    }

    /// The same layers on `device` (quantized CPU parts are joined before they go to CUDA).
    pub fn to_device(&self, device: &Device) -> Result<FusedLinear> {
        let storage = match &self.storage {
            Storage::Joined(w) => Storage::Joined(w.to_device(device)?),
            Storage::Separate(parts) => {
                let quantized: Option<Vec<&QuantizedTensor>> = parts
                    .iter()
                    .map(|p| match p.weight() {
                        LinearWeight::Quantized(q) => Some(q),
                        LinearWeight::Dense(_) => None,
                    })
                    .collect();
                match (quantized, device) {
                    (Some(q), Device::Cuda(_)) => {
                        let joined = QuantizedTensor::concat_rows(&q)?.to_device(device)?;
                        Storage::Joined(Linear::quantized(joined))
                    }
                    _ => {
                        let moved = parts.iter().map(|p| p.to_device(device));
                        return FusedLinear::new(moved.collect::<Result<_>>()?);
                    }
                }
            }
        };
        Ok(FusedLinear {
            outs: self.outs.clone(),
            storage,
        })
    }

    /// The layers with each weight replaced by `f(weight)`: a joined weight stays joined;
    /// separate ones join if they come back dense.
    pub fn map_weights(
        &self,
        f: &impl Fn(&LinearWeight) -> Result<LinearWeight>,
    ) -> Result<FusedLinear> {
        match &self.storage {
            Storage::Joined(w) => Ok(FusedLinear {
                outs: self.outs.clone(),
                storage: Storage::Joined(w.map_weight(f)?),
            }),
            Storage::Separate(parts) => FusedLinear::new(
                parts
                    .iter()
                    .map(|p| p.map_weight(f))
                    .collect::<Result<_>>()?,
            ),
        }
    }
}

/// One weight for `parts` when they are all dense (copied into a new tensor on their device).
/// Quantized parts never join here: the CPU keeps borrowed blocks separate, and CUDA joins them
/// before the upload, in [`FusedLinear::to_device`].
fn join(parts: &[&LinearWeight]) -> Result<Option<LinearWeight>> {
    let dense: Option<Vec<&Tensor>> = parts.iter().map(|w| w.as_dense()).collect();
    let Some(dense) = dense else {
        return Ok(None);
    };
    if let [single] = dense[..] {
        return Ok(Some(LinearWeight::Dense(single.clone())));
    }
    let (dtype, k) = (dense[0].dtype(), dense[0].dims()[1]);
    if dense.iter().any(|t| t.dtype() != dtype || t.rank() != 2) {
        return Err(Error::invalid(
            "FusedLinear",
            "dense parts must be [out, in] matrices of one dtype",
        ));
    }
    let rows = dense.iter().map(|t| t.dims()[0]).sum::<usize>();
    let joined = Tensor::zeros([rows, k], dtype, dense[0].device())?;
    let mut at = 0;
    for t in dense {
        let n = t.dims()[0];
        joined.narrow(0, at, n)?.copy_from(t)?;
        at += n;
    }
    Ok(Some(LinearWeight::Dense(joined)))
}
