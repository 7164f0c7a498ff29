//! Model-file loaders: GGUF (v2, v3) and Hugging Face safetensors, behind one trait.
//!
//! Model code sees only [`WeightSource`]: a checkpoint's [`LlamaConfig`], its tensors by
//! canonical name with a [`TensorInfo`] (shape and [`StorageType`]), their stored bytes (zero-copy
//! from the memory map) and an f32 copy. [`open`] picks the format from the path.
//!
//! ```no_run
//! use nano_infer_host::loaders;
//! # fn main() -> nano_infer_host::Result<()> {
//! let source = loaders::open("SmolLM2-135M-Instruct.Q4_1.gguf".as_ref())?;
//! let config = source.llama_config()?;
//! let wq = source.to_f32("model.layers.0.self_attn.q_proj.weight")?; // (hidden, hidden)
//! assert_eq!(wq.len(), config.hidden_size * config.num_heads * config.head_dim);
//! # Ok(()) }
//! ```
//!
//! # Canonical names
//! Tensors are named as in Hugging Face checkpoints (`model.embed_tokens.weight`,
//! `model.layers.{i}.self_attn.q_proj.weight`, `lm_head.weight`, ...), whatever the file calls
//! them; the GGUF loader maps llama.cpp's names (`token_embd`, `blk.{i}.attn_q`, `output`, ...)
//! to these. Tensors with no known mapping keep their own names. Shapes are outermost-first
//! (PyTorch order: a linear layer's weight is `[out_features, in_features]`), and
//! [`WeightSource::to_f32`] returns elements row-major in that shape.
//!
//! # RoPE and the GGUF Q/K permutation
//! llama.cpp's converter permutes the rows of `q_proj` and `k_proj` so that its RoPE can rotate
//! adjacent pairs `(x[2i], x[2i+1])` instead of HF's halves `(x[i], x[i + d/2])`. We do not undo
//! that permutation: the GGUF loader returns Q and K exactly as stored and sets
//! [`LlamaConfig::rope_interleaved`] to `true`; the safetensors loader sets it to `false`. The
//! attention code picks the RoPE variant from the flag, so both files give the same logits, and
//! quantized blocks (which run along a row) never need to be re-packed.
//!
//! # Untrusted input
//! A model file is user input. Every count, length, offset and shape is checked against the
//! bytes actually present (with checked arithmetic) before it is used or allocated from, so a
//! truncated or hostile file yields an [`Error::Format`] or [`Error::Unsupported`] that names
//! the problem, never a panic or a huge allocation.

pub mod gguf;
mod hf_config;
pub mod quant;
pub mod safetensors;

use std::path::Path;

use crate::models::LlamaConfig;
use crate::tensor::{DType, SharedBytes};
use crate::tokenizer::TokenizerSpec;
use crate::{Error, Result};

pub use gguf::GgufFile;
pub use safetensors::SafetensorsModel;

/// How a tensor's elements are stored in the file: a plain float type or a ggml block format.
// The variants are spelled as ggml spells them (`Q4_K`), which is how users search for them.
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StorageType {
    F32,
    F16,
    BF16,
    /// 32 elements per block: f16 scale, 32 × i8.
    Q8_0,
    /// 32 elements per block: f16 scale, 32 × 4-bit (offset 8).
    Q4_0,
    /// 32 elements per block: f16 scale, f16 min, 32 × 4-bit.
    Q4_1,
    /// 256 elements per super-block of 8 sub-blocks with 6-bit scales and mins.
    Q4_K,
    /// 256 elements per super-block of 16 sub-blocks with 8-bit scales, 6-bit quants.
    Q6_K,
}

impl StorageType {
    /// Elements per block (1 for the plain float types).
    pub fn block_size(self) -> usize {
        match self {
            StorageType::F32 | StorageType::F16 | StorageType::BF16 => 1,
            StorageType::Q8_0 => quant::Q8_0_BLOCK_ELEMS,
            StorageType::Q4_0 => quant::Q4_0_BLOCK_ELEMS,
            StorageType::Q4_1 => quant::Q4_1_BLOCK_ELEMS,
            StorageType::Q4_K => quant::QK_K,
            StorageType::Q6_K => quant::QK_K,
        }
    }

    /// Bytes per block (the element size for the plain float types).
    pub fn block_bytes(self) -> usize {
        match self {
            StorageType::F32 => 4,
            StorageType::F16 | StorageType::BF16 => 2,
            StorageType::Q8_0 => quant::Q8_0_BLOCK_BYTES,
            StorageType::Q4_0 => quant::Q4_0_BLOCK_BYTES,
            StorageType::Q4_1 => quant::Q4_1_BLOCK_BYTES,
            StorageType::Q4_K => quant::Q4_K_BLOCK_BYTES,
            StorageType::Q6_K => quant::Q6_K_BLOCK_BYTES,
        }
    }

    /// Bytes that `n_elements` take, or `None` when `n_elements` is not a whole number of blocks
    /// or the size overflows `usize`.
    pub fn byte_len(self, n_elements: usize) -> Option<usize> {
        if !n_elements.is_multiple_of(self.block_size()) {
            return None;
        }
        (n_elements / self.block_size()).checked_mul(self.block_bytes())
    }

    /// Whether this is a block-quantized format.
    pub fn is_quantized(self) -> bool {
        self.block_size() > 1
    }

    /// The tensor element type for the plain float formats, `None` for quantized ones.
    pub fn dtype(self) -> Option<DType> {
        match self {
            StorageType::F32 => Some(DType::F32),
            StorageType::F16 => Some(DType::F16),
            StorageType::BF16 => Some(DType::BF16),
            _ => None,
        }
    }

    /// The upper-case name ggml and safetensors use (`F32`, `Q4_1`, ...).
    pub fn name(self) -> &'static str {
        match self {
            StorageType::F32 => "F32",
            StorageType::F16 => "F16",
            StorageType::BF16 => "BF16",
            StorageType::Q8_0 => "Q8_0",
            StorageType::Q4_0 => "Q4_0",
            StorageType::Q4_1 => "Q4_1",
            StorageType::Q4_K => "Q4_K",
            StorageType::Q6_K => "Q6_K",
        }
    }
}

/// One tensor's name, shape and storage type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// The canonical (HF) name.
    pub name: String,
    /// Outermost dimension first: a linear weight is `[out_features, in_features]`.
    pub shape: Vec<usize>,
    pub dtype: StorageType,
}

impl TensorInfo {
    /// The number of elements (the product of `shape`; loaders have checked it fits `usize`).
    pub fn n_elements(&self) -> usize {
        self.shape.iter().product()
    }
}

/// A checkpoint, whatever its file format: config, tensors by canonical name, tokenizer.
pub trait WeightSource: Send + Sync {
    /// `"gguf"` or `"safetensors"`.
    fn format(&self) -> &'static str;

    /// The model's hyper-parameters, from the file's metadata (GGUF) or `config.json`.
    fn llama_config(&self) -> Result<LlamaConfig>;

    /// Name, shape and storage type of a tensor, by canonical name.
    fn tensor_info(&self, name: &str) -> Option<&TensorInfo>;

    /// Every tensor's canonical name, in file order.
    fn tensor_names(&self) -> Vec<String>;

    /// The tensor's exact stored bytes (little-endian, blocks as ggml lays them out), borrowed
    /// from the memory map.
    fn raw_bytes(&self, name: &str) -> Result<&[u8]>;

    /// The tensor's stored bytes as a handle that keeps them alive: sharing the memory map where
    /// the source has one (GGUF), else a copy.
    fn shared_bytes(&self, name: &str) -> Result<SharedBytes> {
        Ok(SharedBytes::from_vec(self.raw_bytes(name)?.to_vec()))
    }

    /// The tensor converted or dequantized to f32, row-major in [`TensorInfo::shape`].
    fn to_f32(&self, name: &str) -> Result<Vec<f32>> {
        let info = self.tensor_info(name).ok_or_else(|| Error::MissingTensor {
            name: name.to_string(),
        })?;
        let bytes = self.raw_bytes(name)?;
        let n = info.n_elements();
        let mut out = vec![0.0f32; n];
        quant::dequantize(info.dtype, bytes, n, &mut out)?;
        Ok(out)
    }

    /// The tokenizer stored with the weights: GGUF fills it from `tokenizer.ggml.*`; safetensors
    /// checkpoints keep theirs in `tokenizer.json` and return `None`.
    fn tokenizer_spec(&self) -> Result<Option<TokenizerSpec>>;
}

/// Opens a model: a GGUF file, a `.safetensors` file, a sharded checkpoint's
/// `model.safetensors.index.json`, or a directory holding one of the latter two (with
/// `config.json` beside it).
pub fn open(path: &Path) -> Result<Box<dyn WeightSource>> {
    let meta = std::fs::metadata(path).map_err(|source| io_error(path, source))?;
    if meta.is_dir() {
        return Ok(Box::new(SafetensorsModel::open(path)?));
    }
    if gguf::has_gguf_magic(path)? {
        return Ok(Box::new(GgufFile::open(path)?));
    }
    Ok(Box::new(SafetensorsModel::open(path)?))
}

/// Wraps an I/O error with the path it concerns.
pub(crate) fn io_error(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        source,
    }
}

/// A file's bytes: memory-mapped, read into huge pages, or owned (files built in memory, tests).
pub(crate) enum Bytes {
    Mapped(memmap2::Mmap),
    /// An anonymous read-only map holding the file (see [`Bytes::read_huge`]): a `Mmap` longer
    /// than the file is never made, so the whole map is the file.
    Read(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Bytes {
    /// Memory-maps a whole file read-only.
    pub(crate) fn map(path: &Path) -> Result<Bytes> {
        let file = std::fs::File::open(path).map_err(|source| io_error(path, source))?;
        // SAFETY: the map is read-only and we only ever read it as plain bytes (never as typed
        // references with validity invariants). Another process truncating or rewriting the file
        // while it is mapped would change what we read (or raise SIGBUS); that is the usual,
        // accepted contract of loading weights by mmap (llama.cpp and candle do the same).
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|source| io_error(path, source))?;
        Ok(Bytes::Mapped(map))
    }

    /// Reads a whole file into anonymous memory advised for transparent huge pages.
    ///
    /// Why: a CPU decode step streams every quantized weight once, ~90 MB per token for
    /// SmolLM2-135M Q4_1. A file map has 4 KB pages (the page cache's), so that stream crosses
    /// a page (a TLB miss, and a stop for the hardware prefetcher) every 64 cache lines; 2 MB
    /// pages make it ~45 pages in all. The page cache's copy is not counted in the process's
    /// resident set, so the peak RSS stays about the file's size, as with a map. The cost: the
    /// file is read at open (tens of ms per 100 MB from the page cache) and must fit in memory.
    pub(crate) fn read_huge(path: &Path) -> Result<Bytes> {
        use std::io::Read;
        let mut file = std::fs::File::open(path).map_err(|source| io_error(path, source))?;
        let len = file
            .metadata()
            .map_err(|source| io_error(path, source))?
            .len();
        let len = usize::try_from(len).map_err(|_| {
            Error::invalid("load", format!("{} is too large to read", path.display()))
        })?;
        if len == 0 {
            return Ok(Bytes::Owned(Vec::new()));
        }
        let mut anon = memmap2::MmapOptions::new()
            .len(len)
            .map_anon()
            .map_err(|source| io_error(path, source))?;
        // A hint: without transparent huge pages (or off Linux) the bytes are the same.
        #[cfg(target_os = "linux")]
        let _ = anon.advise(memmap2::Advice::HugePage);
        file.read_exact(&mut anon)
            .map_err(|source| io_error(path, source))?;
        let map = anon
            .make_read_only()
            .map_err(|source| io_error(path, source))?;
        Ok(Bytes::Read(map))
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) | Bytes::Read(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

impl AsRef<[u8]> for Bytes {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}
