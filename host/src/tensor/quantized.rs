//! [`QuantizedTensor`]: a `[n, k]` weight kept in a ggml block format (Q8_0, Q4_0, Q4_1).
//!
//! On the CPU it holds the ggml blocks as stored in the file; on CUDA the blocks repacked into
//! the GEMV's layout (`gpu-kernels/src/weights.rs`: quants of a row contiguous, scales in their
//! own section) — 4.5 (Q4_0), 5 (Q4_1) or 8.5 (Q8_0) bits per weight in GPU memory, dequantized
//! in registers by `gemv_*_{q8_0,q4_0,q4_1}_*` (`functional::linear_quantized`).

use std::sync::Arc;

use super::quant_pack::{self, QuantFormat, QuantLayout};
use crate::backend::cuda::DeviceBuffer;
use crate::tensor::{DType, Device, Tensor};
use crate::{Error, Result};

/// Where the blocks live.
#[derive(Clone, Debug)]
enum Blocks {
    /// ggml blocks, as in the file.
    Cpu(Arc<Vec<u8>>),
    /// Repacked blocks in GPU memory.
    Cuda(Arc<DeviceBuffer>),
}

/// A quantized `[n, k]` weight (a Linear layer's, PyTorch layout: `n` outputs, `k` inputs).
#[derive(Clone, Debug)]
pub struct QuantizedTensor {
    format: QuantFormat,
    /// `[n, k]`.
    dims: [usize; 2],
    blocks: Blocks,
    device: Device,
}

impl QuantizedTensor {
    /// Wraps ggml blocks (`n * k / 32` blocks, row after row) and moves them to `device`.
    pub fn from_ggml(
        format: QuantFormat,
        ggml: Vec<u8>,
        [n, k]: [usize; 2],
        device: &Device,
    ) -> Result<Self> {
        let t = QuantizedTensor {
            format,
            dims: [n, k],
            blocks: Blocks::Cpu(Arc::new(ggml)),
            device: Device::Cpu,
        };
        t.check_len()?;
        t.to_device(device)
    }

    /// Quantizes a `[n, k]` tensor (any dtype and device) with ggml's reference quantizer.
    pub fn quantize(w: &Tensor, format: QuantFormat, device: &Device) -> Result<Self> {
        let [n, k] = <[usize; 2]>::try_from(w.dims()).map_err(|_| Error::ShapeMismatch {
            op: "quantize",
            expected: "a [n, k] matrix".into(),
            got: w.shape().to_string(),
        })?;
        let ggml = quant_pack::quantize(format, &w.to_vec_f32()?, n, k)?;
        Self::from_ggml(format, ggml, [n, k], device)
    }

    fn check_len(&self) -> Result<()> {
        let [n, k] = self.dims;
        if !k.is_multiple_of(quant_pack::QBLOCK) || k == 0 {
            return Err(Error::invalid(
                "quantized tensor",
                format!(
                    "rows of {k} elements are not whole {} blocks",
                    self.format.name()
                ),
            ));
        }
        if let Blocks::Cpu(b) = &self.blocks {
            let want = n
                * (k / quant_pack::QBLOCK)
                * (self.format.quant_bytes() + self.format.scale_bytes());
            if b.len() != want {
                return Err(Error::invalid(
                    "quantized tensor",
                    format!(
                        "[{n}, {k}] {} takes {want} bytes, got {}",
                        self.format.name(),
                        b.len()
                    ),
                ));
            }
        }
        Ok(())
    }

    pub fn format(&self) -> QuantFormat {
        self.format
    }
    /// `[n, k]`.
    pub fn dims(&self) -> [usize; 2] {
        self.dims
    }
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Bytes the weight occupies (what a GEMV reads once per token).
    pub fn size_in_bytes(&self) -> usize {
        let [n, k] = self.dims;
        QuantLayout {
            format: self.format,
            n,
            k,
        }
        .total_bytes()
    }

    /// Copies to `device` (CPU → CUDA repacks; CUDA → CPU is not offered: the loaders keep a
    /// CPU copy when they need one).
    pub fn to_device(&self, device: &Device) -> Result<Self> {
        let [n, k] = self.dims;
        match (&self.blocks, device) {
            (_, d) if d.same(&self.device) => Ok(self.clone()),
            (Blocks::Cpu(b), Device::Cuda(be)) => {
                let packed = quant_pack::repack(self.format, b, n, k)?;
                Ok(QuantizedTensor {
                    blocks: Blocks::Cuda(Arc::new(be.upload_buffer(&packed)?)),
                    device: device.clone(),
                    ..self.clone()
                })
            }
            _ => Err(Error::invalid(
                "quantized tensor",
                "copies from the GPU back to the CPU are not supported",
            )),
        }
    }

    /// The weight dequantized to a `[n, k]` tensor of `dtype` on `device` (CPU blocks only: the
    /// reference the quantized GPU path is tested against).
    pub fn dequantize(&self, dtype: DType, device: &Device) -> Result<Tensor> {
        let [n, k] = self.dims;
        let Blocks::Cpu(b) = &self.blocks else {
            return Err(Error::invalid(
                "dequantize",
                "dequantize before moving the weight to the GPU",
            ));
        };
        let v = quant_pack::dequantize_ggml(self.format, b, n, k)?;
        Tensor::from_f32(v, [n, k], dtype, device)
    }

    /// The repacked blocks' device address (CUDA only).
    pub(crate) fn cuda_ptr(&self) -> Option<u64> {
        match &self.blocks {
            Blocks::Cuda(b) => Some(b.ptr()),
            Blocks::Cpu(_) => None,
        }
    }
}
