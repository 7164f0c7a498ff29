//! [`QuantizedTensor`]: a `[n, k]` weight (a Linear layer's, PyTorch layout: `n` outputs, `k`
//! inputs) kept in a ggml block format.
//!
//! On the CPU it holds the blocks exactly as the GGUF file stores them (Q8_0, Q4_0, Q4_1, Q4_K,
//! Q6_K) and, for a mapped file, borrows them from the map through [`SharedBytes`] (no copy: a
//! model's resident memory is then the file's pages); the CPU's quantized kernels read them as
//! they are (`functional::linear_quantized`). On CUDA (Q8_0, Q4_0, Q4_1) it holds the blocks
//! repacked into the GEMV's layout (`gpu-kernels/src/weights.rs`: quants of a row contiguous,
//! scales in their own section) — 4.5 (Q4_0), 5 (Q4_1) or 8.5 (Q8_0) bits per weight in GPU
//! memory, dequantized in registers by `gemv_*_{q8_0,q4_0,q4_1}_*`.
//!
//! Why a type of its own rather than a [`DType`]: no elementwise op can run on blocks, so the
//! only consumers are products that read blocks and row gathers that dequantize on the fly
//! ([`QuantizedTensor::dequantize_rows`]).

use std::sync::Arc;

use super::quant_pack::{self, QuantFormat, QuantLayout};
use crate::backend::cuda::BlockConversion::{Dequantize, Quantize};
use crate::backend::cuda::DeviceBuffer;
use crate::functional::cuda_ptr;
use crate::loaders::StorageType;
use crate::loaders::quant::dequantize;
use crate::tensor::{DType, Device, Tensor};
use crate::{Error, Result};

/// A byte range kept alive by a shared owner (a file's memory map, or a vector).
#[derive(Clone)]
pub struct SharedBytes {
    owner: Arc<dyn AsRef<[u8]> + Send + Sync>,
    start: usize,
    len: usize,
}

impl SharedBytes {
    /// Owns `bytes`.
    pub fn from_vec(bytes: Vec<u8>) -> SharedBytes {
        let len = bytes.len();
        SharedBytes {
            owner: Arc::new(bytes),
            start: 0,
            len,
        }
    }

    /// `owner[start..start + len]`, or an error when that range is not inside `owner`.
    pub fn slice(
        owner: Arc<dyn AsRef<[u8]> + Send + Sync>,
        start: usize,
        len: usize,
    ) -> Result<SharedBytes> {
        let total = (*owner).as_ref().len();
        if start.checked_add(len).is_none_or(|end| end > total) {
            return Err(Error::invalid(
                "SharedBytes::slice",
                format!("range {start}+{len} is outside the {total} bytes"),
            ));
        }
        Ok(SharedBytes { owner, start, len })
    }

    pub fn as_slice(&self) -> &[u8] {
        &(*self.owner).as_ref()[self.start..self.start + self.len]
    }
}

impl std::fmt::Debug for SharedBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SharedBytes({} bytes at {})", self.len, self.start)
    }
}

/// Where the blocks live.
#[derive(Clone, Debug)]
enum Blocks {
    /// ggml blocks, as in the file, row after row.
    Cpu(SharedBytes),
    /// Repacked blocks in GPU memory ([`QuantLayout`]).
    Cuda(Arc<DeviceBuffer>),
}

/// A quantized `[n, k]` weight; each row is a whole number of blocks.
#[derive(Clone, Debug)]
pub struct QuantizedTensor {
    format: StorageType,
    /// `[n, k]`.
    dims: [usize; 2],
    blocks: Blocks,
    device: Device,
}

impl QuantizedTensor {
    /// Wraps CPU `bytes` holding `n × k` elements of `format`; errors unless `format` is a
    /// block format, a row is whole blocks and the byte count matches.
    pub fn new(format: StorageType, [n, k]: [usize; 2], bytes: SharedBytes) -> Result<Self> {
        let row_bytes = format
            .byte_len(k)
            .filter(|_| format.is_quantized() && k > 0);
        let expected = row_bytes.and_then(|r| r.checked_mul(n));
        if expected != Some(bytes.as_slice().len()) {
            return Err(Error::invalid(
                "quantized tensor",
                format!(
                    "[{n}, {k}] {} needs rows of whole blocks of {} ({} bytes), got {} bytes",
                    format.name(),
                    format.block_size(),
                    expected.map_or("?".into(), |e| e.to_string()),
                    bytes.as_slice().len()
                ),
            ));
        }
        Ok(QuantizedTensor {
            format,
            dims: [n, k],
            blocks: Blocks::Cpu(bytes),
            device: Device::Cpu,
        })
    }

    /// Quantizes a `[n, k]` tensor (any dtype and device) with ggml's reference quantizer, onto
    /// `device`. A tensor already on that CUDA device is quantized there (`quantize_*` kernels);
    /// anything else goes through the CPU. Both give the same blocks.
    pub fn quantize(w: &Tensor, format: QuantFormat, device: &Device) -> Result<Self> {
        let [n, k] = <[usize; 2]>::try_from(w.dims()).map_err(|_| Error::ShapeMismatch {
            op: "quantize",
            expected: "a [n, k] matrix".into(),
            got: w.shape().to_string(),
        })?;
        if let (Device::Cuda(be), true) = (device, w.device().same(device)) {
            quant_pack::check_dims("quantize", format, k)?;
            let w = w.contiguous()?;
            let layout = QuantLayout { format, n, k };
            let buf = be.alloc_buffer(layout.total_bytes())?;
            // SAFETY: `w` is a contiguous [n, k] tensor on this device and `buf` holds the
            // layout's bytes; device allocations are 256-byte aligned; k is whole blocks.
            unsafe {
                be.convert_blocks(
                    Quantize,
                    [cuda_ptr(&w), buf.ptr()],
                    [n, k],
                    format,
                    w.dtype(),
                )?
            };
            return Ok(QuantizedTensor {
                format: quant_pack::storage_type(format),
                dims: [n, k],
                blocks: Blocks::Cuda(Arc::new(buf)),
                device: device.clone(),
            });
        }
        let ggml = quant_pack::quantize(format, &w.to_vec_f32()?, n, k)?;
        let t = Self::new(
            quant_pack::storage_type(format),
            [n, k],
            SharedBytes::from_vec(ggml),
        )?;
        t.to_device(device)
    }

    /// The rows of `parts` (same format and `k`, CPU blocks) stacked into one `[Σ n, k]` weight,
    /// copied. Join weights before moving them to the GPU: its repacked layout does not stack.
    pub fn concat_rows(parts: &[&QuantizedTensor]) -> Result<Self> {
        let first = parts
            .first()
            .ok_or_else(|| Error::invalid("concat_rows", "no weights to join"))?;
        let k = first.dims[1];
        let mut bytes = Vec::new();
        for p in parts {
            if p.format != first.format || p.dims[1] != k {
                return Err(Error::invalid(
                    "concat_rows",
                    format!(
                        "a [{}, {}] {} weight does not stack on [_, {k}] {}",
                        p.dims[0],
                        p.dims[1],
                        p.format.name(),
                        first.format.name()
                    ),
                ));
            }
            bytes.extend_from_slice(p.cpu_blocks()?);
        }
        let n = parts.iter().map(|p| p.dims[0]).sum();
        Self::new(first.format, [n, k], SharedBytes::from_vec(bytes))
    }

    pub fn format(&self) -> StorageType {
        self.format
    }
    /// `[n, k]`.
    pub fn dims(&self) -> [usize; 2] {
        self.dims
    }
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Bytes the weight occupies where it lives (what a product reads once per token).
    pub fn size_in_bytes(&self) -> usize {
        let [n, k] = self.dims;
        match &self.blocks {
            Blocks::Cpu(b) => b.as_slice().len(),
            Blocks::Cuda(_) => QuantLayout {
                format: self.cuda_format().expect("CUDA blocks have a GPU format"),
                n,
                k,
            }
            .total_bytes(),
        }
    }

    /// Copies to `device` (CPU → CUDA repacks, for Q8_0, Q4_0 and Q4_1; CUDA → CPU is not
    /// offered: the loaders keep a CPU copy when they need one).
    pub fn to_device(&self, device: &Device) -> Result<Self> {
        let [n, k] = self.dims;
        match (&self.blocks, device) {
            (_, d) if d.same(&self.device) => Ok(self.clone()),
            (Blocks::Cpu(b), Device::Cuda(be)) => {
                let format = self.cuda_format().ok_or_else(|| {
                    Error::invalid(
                        "quantized tensor",
                        format!(
                            "{} weights stay on the CPU (the GPU keeps Q8_0, Q4_0 and Q4_1); \
                             load with a float dtype for {device}",
                            self.format.name()
                        ),
                    )
                })?;
                let packed = quant_pack::repack(format, b.as_slice(), n, k)?;
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

    /// A hint for the product that reads this weight next, while the calling thread does other
    /// work first (a decode step's attention before `o_proj`): on the CPU, an idle rayon worker
    /// pulls the blocks into the cache (a few microseconds of memory traffic that would
    /// otherwise wait for the product); a no-op on CUDA or with one thread.
    pub fn prefetch_in_background(&self) {
        if let Blocks::Cpu(bytes) = &self.blocks
            && rayon::current_num_threads() > 1
        {
            let bytes = bytes.clone();
            rayon::spawn(move || crate::backend::cpu::quant::prefetch(bytes.as_slice()));
        }
    }

    /// The ggml blocks, row after row (CPU only).
    pub fn cpu_blocks(&self) -> Result<&[u8]> {
        match &self.blocks {
            Blocks::Cpu(b) => Ok(b.as_slice()),
            Blocks::Cuda(_) => Err(Error::invalid(
                "quantized tensor",
                "the blocks are on the GPU (read them before moving the weight)",
            )),
        }
    }

    /// The weight dequantized to a `[n, k]` tensor of `dtype` on `device`: the reference the
    /// quantized paths are tested against, and the prefill's operand on CUDA. CUDA blocks
    /// expand on their own device (`dequantize_*` kernels) to the same values as on the CPU.
    pub fn dequantize(&self, dtype: DType, device: &Device) -> Result<Tensor> {
        let [n, k] = self.dims;
        if let Blocks::Cuda(buf) = &self.blocks {
            let (Device::Cuda(be), true) = (device, device.same(&self.device)) else {
                return Err(Error::invalid(
                    "dequantize",
                    format!("the blocks are on {}, not {device}", self.device),
                ));
            };
            let format = self.cuda_format().expect("CUDA blocks have a GPU format");
            let out = Tensor::uninit([n, k], dtype, device)?;
            // SAFETY: `buf` holds the [n, k] layout of `format` and `out` n·k elements, both
            // fresh device allocations (256-byte aligned); k is whole blocks.
            unsafe {
                be.convert_blocks(
                    Dequantize,
                    [buf.ptr(), cuda_ptr(&out)],
                    [n, k],
                    format,
                    dtype,
                )?
            };
            return Ok(out);
        }
        let mut v = vec![0.0; n * k];
        dequantize(self.format, self.cpu_blocks()?, n * k, &mut v)?;
        Tensor::from_f32(v, [n, k], dtype, device)
    }

    /// Rows `ids` dequantized to f32, `[ids.len(), k]` row-major (an embedding lookup; CPU
    /// blocks only).
    pub fn dequantize_rows(&self, ids: &[u32]) -> Result<Vec<f32>> {
        let [n, k] = self.dims;
        if let Some(&bad) = ids.iter().find(|&&id| id as usize >= n) {
            return Err(Error::invalid(
                "embedding",
                format!("token id {bad} is outside the vocabulary of {n}"),
            ));
        }
        let blocks = self.cpu_blocks()?;
        let rb = blocks.len() / n.max(1);
        let mut out = vec![0.0; ids.len() * k];
        for (&id, row) in ids.iter().zip(out.chunks_exact_mut(k.max(1))) {
            dequantize(self.format, &blocks[id as usize * rb..][..rb], k, row)?;
        }
        Ok(out)
    }

    /// The GPU's format for these blocks (Q8_0, Q4_0, Q4_1), if it has one.
    pub(crate) fn cuda_format(&self) -> Option<QuantFormat> {
        quant_pack::quant_format(self.format)
    }

    /// The device buffer holding the repacked blocks, from their first byte (CUDA only).
    pub(crate) fn cuda_buffer(&self) -> Option<std::ops::Range<u64>> {
        match &self.blocks {
            Blocks::Cuda(b) => Some(b.range()),
            Blocks::Cpu(_) => None,
        }
    }
}
