//! GGUF (v2 and v3) files: llama.cpp's single-file checkpoints.
//!
//! Layout (all little-endian): magic `GGUF`, `version: u32`, `tensor_count: u64`,
//! `metadata_kv_count: u64`; the metadata key/value pairs; one info per tensor (`name`,
//! `n_dims: u32`, `ne: [u64; n_dims]` innermost first, `ggml_type: u32`, `offset: u64`); padding to
//! `general.alignment` (default 32); then the tensor data, each tensor at its `offset` from the
//! start of the data section. v3 differs from v2 only in allowing big-endian files (which we
//! detect and refuse); v1 used 32-bit counts and is refused.
//!
//! [`GgufFile`] parses the header once at open, checking every count and offset against the file
//! size, maps llama.cpp's tensor names to the canonical HF names (see [`canonical_name`]), and
//! reverses `ne` to outermost-first shapes. Tensor data stays in the memory map.

mod metadata;
mod reader;
mod writer;

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

pub use reader::{MetaArray, MetaValue};
pub use writer::{GgufTensor, GgufWriter, ggml_type_id, truncate_layers};

use super::{Bytes, StorageType, TensorInfo, WeightSource, io_error};
use crate::models::LlamaConfig;
use crate::tensor::SharedBytes;
use crate::tokenizer::TokenizerSpec;
use crate::{Error, Result};
use reader::Reader;

/// The four bytes every GGUF file starts with.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";
/// Data-section alignment when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: usize = 32;
/// ggml's `GGML_MAX_DIMS`.
const MAX_DIMS: usize = 4;

/// Whether the file at `path` starts with the GGUF magic.
pub fn has_gguf_magic(path: &Path) -> Result<bool> {
    let mut file = std::fs::File::open(path).map_err(|source| io_error(path, source))?;
    let mut magic = [0u8; 4];
    match file.read_exact(&mut magic) {
        Ok(()) => Ok(magic == GGUF_MAGIC),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(source) => Err(io_error(path, source)),
    }
}

/// One tensor: its canonical info, its GGUF name and where its bytes are.
struct Entry {
    info: TensorInfo,
    gguf_name: String,
    /// Absolute byte range in the file (checked to lie inside it).
    start: usize,
    len: usize,
}

/// A parsed GGUF file. Cheap to query; tensor bytes are borrowed from the map.
pub struct GgufFile {
    /// Shared with the [`SharedBytes`] of quantized weights that borrow the map.
    bytes: Arc<Bytes>,
    version: u32,
    alignment: usize,
    /// Byte offset of the data section.
    data_start: usize,
    metadata: HashMap<String, MetaValue>,
    /// Tensors in file order.
    tensors: Vec<Entry>,
    /// Canonical name → index into `tensors`.
    by_name: HashMap<String, usize>,
}

impl GgufFile {
    /// Reads (into huge pages, [`Bytes::read_huge`]) and parses the file at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        Self::parse(Bytes::read_huge(path)?)
    }

    /// Parses a GGUF file held in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        Self::parse(Bytes::Owned(bytes))
    }

    fn parse(bytes: Bytes) -> Result<Self> {
        let header = Header::parse(bytes.as_slice())?;
        let mut by_name = HashMap::with_capacity(header.tensors.len());
        for (i, entry) in header.tensors.iter().enumerate() {
            if by_name.insert(entry.info.name.clone(), i).is_some() {
                return Err(Error::format(
                    "GGUF",
                    format!("tensor `{}`", entry.gguf_name),
                    format!("two tensors map to the name `{}`", entry.info.name),
                ));
            }
        }
        Ok(GgufFile {
            bytes: Arc::new(bytes),
            version: header.version,
            alignment: header.alignment,
            data_start: header.data_start,
            metadata: header.metadata,
            tensors: header.tensors,
            by_name,
        })
    }

    /// The GGUF version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The data-section alignment in bytes.
    pub fn alignment(&self) -> usize {
        self.alignment
    }

    /// The byte offset where the data section starts.
    pub fn data_start(&self) -> usize {
        self.data_start
    }

    /// A metadata value by key (`general.architecture`, `llama.block_count`, ...).
    pub fn metadata(&self, key: &str) -> Option<&MetaValue> {
        self.metadata.get(key)
    }

    /// All metadata keys, sorted.
    pub fn metadata_keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = self.metadata.keys().map(String::as_str).collect();
        keys.sort_unstable();
        keys
    }

    /// The name the file itself uses for a tensor given by canonical name.
    pub fn gguf_name(&self, canonical: &str) -> Option<&str> {
        let i = *self.by_name.get(canonical)?;
        Some(&self.tensors[i].gguf_name)
    }

    fn entry(&self, name: &str) -> Result<&Entry> {
        self.by_name
            .get(name)
            .map(|&i| &self.tensors[i])
            .ok_or_else(|| Error::MissingTensor {
                name: name.to_string(),
            })
    }
}

impl WeightSource for GgufFile {
    fn format(&self) -> &'static str {
        "gguf"
    }

    fn llama_config(&self) -> Result<LlamaConfig> {
        metadata::llama_config(self)
    }

    fn tensor_info(&self, name: &str) -> Option<&TensorInfo> {
        self.entry(name).ok().map(|e| &e.info)
    }

    fn tensor_names(&self) -> Vec<String> {
        self.tensors.iter().map(|e| e.info.name.clone()).collect()
    }

    fn raw_bytes(&self, name: &str) -> Result<&[u8]> {
        let e = self.entry(name)?;
        // The range was checked against the file length at parse time.
        Ok(&self.bytes.as_slice()[e.start..e.start + e.len])
    }

    fn shared_bytes(&self, name: &str) -> Result<SharedBytes> {
        let e = self.entry(name)?;
        SharedBytes::slice(self.bytes.clone(), e.start, e.len)
    }

    fn tokenizer_spec(&self) -> Result<Option<TokenizerSpec>> {
        metadata::tokenizer_spec(self)
    }
}

/// Everything before the data section.
struct Header {
    version: u32,
    alignment: usize,
    data_start: usize,
    metadata: HashMap<String, MetaValue>,
    tensors: Vec<Entry>,
}

impl Header {
    fn parse(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes);
        let magic = r.take(4, "magic")?;
        if magic != GGUF_MAGIC {
            return Err(Error::format(
                "GGUF",
                "magic",
                format!("expected \"GGUF\", found {magic:02x?}"),
            ));
        }
        let version = r.u32("version")?;
        match version {
            2 | 3 => {}
            1 => {
                return Err(unsupported(
                    "GGUF version 1 (32-bit counts); re-convert the model",
                ));
            }
            v if v.swap_bytes() == 2 || v.swap_bytes() == 3 => {
                return Err(unsupported("big-endian GGUF file"));
            }
            v => return Err(unsupported(format!("GGUF version {v} (known: 2, 3)"))),
        }
        // Each tensor info takes at least a name length, n_dims, one dim, type and offset; each
        // metadata pair a key length, a type and one byte.
        let n_tensors = r.count("tensor count", 8 + 4 + 8 + 4 + 8)?;
        let n_kv = r.count("metadata count", 8 + 4 + 1)?;

        let mut metadata = HashMap::with_capacity(n_kv);
        for i in 0..n_kv {
            let key = r.string(&format!("metadata key #{i}"))?;
            let ty = r.u32(&format!("metadata `{key}` type"))?;
            let value = r.value(ty, &format!("metadata `{key}`"))?;
            if metadata.contains_key(&key) {
                return Err(Error::format(
                    "GGUF",
                    format!("metadata `{key}`"),
                    "duplicate key",
                ));
            }
            metadata.insert(key, value);
        }
        let alignment = alignment(&metadata)?;

        let mut raw = Vec::with_capacity(n_tensors);
        let mut seen = HashMap::with_capacity(n_tensors);
        for i in 0..n_tensors {
            let info = RawTensorInfo::parse(&mut r, i, alignment)?;
            if seen.insert(info.name.clone(), i).is_some() {
                return Err(Error::format(
                    "GGUF",
                    format!("tensor `{}`", info.name),
                    "duplicate tensor name",
                ));
            }
            raw.push(info);
        }

        let data_start = r
            .pos()
            .checked_next_multiple_of(alignment)
            .ok_or_else(|| Error::format("GGUF", "data section", "offset overflows"))?;
        let tensors = raw
            .into_iter()
            .map(|t| t.locate(data_start, bytes.len()))
            .collect::<Result<Vec<_>>>()?;
        Ok(Header {
            version,
            alignment,
            data_start,
            metadata,
            tensors,
        })
    }
}

/// `general.alignment`, checked to be a power of two.
fn alignment(metadata: &HashMap<String, MetaValue>) -> Result<usize> {
    let Some(v) = metadata.get("general.alignment") else {
        return Ok(DEFAULT_ALIGNMENT);
    };
    match v.as_u64().and_then(|a| usize::try_from(a).ok()) {
        Some(a) if a.is_power_of_two() => Ok(a),
        _ => Err(Error::format(
            "GGUF",
            "metadata `general.alignment`",
            format!("{v:?} is not a power of two"),
        )),
    }
}

/// A tensor info as stored, before its data range is resolved.
struct RawTensorInfo {
    name: String,
    shape: Vec<usize>,
    dtype: StorageType,
    offset: u64,
    len: usize,
}

impl RawTensorInfo {
    fn parse(r: &mut Reader<'_>, index: usize, alignment: usize) -> Result<Self> {
        let name = r.string(&format!("tensor #{index} name"))?;
        let what = format!("tensor `{name}`");
        let n_dims = r.u32(&what)? as usize;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(Error::format(
                "GGUF",
                what,
                format!("{n_dims} dimensions (expected 1 to {MAX_DIMS})"),
            ));
        }
        let mut ne = Vec::with_capacity(n_dims);
        for _ in 0..n_dims {
            let d = r.u64(&what)?;
            ne.push(usize::try_from(d).map_err(|_| {
                Error::format("GGUF", what.as_str(), format!("dimension {d} overflows"))
            })?);
        }
        let n_elements = ne
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| {
                Error::format("GGUF", what.as_str(), format!("{ne:?} elements overflow"))
            })?;
        let type_id = r.u32(&what)?;
        let dtype = storage_type(type_id, &what)?;
        if !ne[0].is_multiple_of(dtype.block_size()) {
            return Err(Error::format(
                "GGUF",
                what,
                format!(
                    "row length {} is not a multiple of the {} block size {}",
                    ne[0],
                    dtype.name(),
                    dtype.block_size()
                ),
            ));
        }
        let len = dtype.byte_len(n_elements).ok_or_else(|| {
            Error::format("GGUF", what.as_str(), format!("size of {ne:?} overflows"))
        })?;
        let offset = r.u64(&what)?;
        if !offset.is_multiple_of(alignment as u64) {
            return Err(Error::format(
                "GGUF",
                what,
                format!("data offset {offset} is not a multiple of the alignment {alignment}"),
            ));
        }
        ne.reverse(); // GGUF stores the row length first; we want outermost-first.
        Ok(RawTensorInfo {
            name,
            shape: ne,
            dtype,
            offset,
            len,
        })
    }

    /// Resolves the absolute byte range, checking it lies inside a file of `file_len` bytes.
    fn locate(self, data_start: usize, file_len: usize) -> Result<Entry> {
        let start = usize::try_from(self.offset)
            .ok()
            .and_then(|o| o.checked_add(data_start));
        let end = start.and_then(|s| s.checked_add(self.len));
        match (start, end) {
            (Some(start), Some(end)) if end <= file_len => Ok(Entry {
                info: TensorInfo {
                    name: canonical_name(&self.name),
                    shape: self.shape,
                    dtype: self.dtype,
                },
                gguf_name: self.name,
                start,
                len: self.len,
            }),
            _ => Err(Error::format(
                "GGUF",
                format!("tensor `{}`", self.name),
                format!(
                    "data [{} + {}, +{} bytes) runs past the end of the {file_len}-byte file",
                    data_start, self.offset, self.len
                ),
            )),
        }
    }
}

/// Maps a `ggml_type` id to the storage types we read.
fn storage_type(id: u32, what: &str) -> Result<StorageType> {
    Ok(match id {
        0 => StorageType::F32,
        1 => StorageType::F16,
        2 => StorageType::Q4_0,
        3 => StorageType::Q4_1,
        8 => StorageType::Q8_0,
        12 => StorageType::Q4_K,
        14 => StorageType::Q6_K,
        30 => StorageType::BF16,
        _ => {
            let name = match id {
                6 => "Q5_0",
                7 => "Q5_1",
                9 => "Q8_1",
                10 => "Q2_K",
                11 => "Q3_K",
                13 => "Q5_K",
                15 => "Q8_K",
                16..=23 | 29 => "IQ (importance-matrix) quant",
                24 => "I8",
                25 => "I16",
                26 => "I32",
                27 => "I64",
                28 => "F64",
                31..=39 => "newer ggml quant",
                _ => {
                    return Err(Error::format(
                        "GGUF",
                        what,
                        format!("unknown ggml type id {id}"),
                    ));
                }
            };
            return Err(unsupported(format!("{what}: ggml type {name} (id {id})")));
        }
    })
}

fn unsupported(what: impl Into<String>) -> Error {
    Error::Unsupported {
        format: "GGUF",
        what: what.into(),
    }
}

/// llama.cpp's name for a tensor → the HF name (`blk.3.attn_q.weight` →
/// `model.layers.3.self_attn.q_proj.weight`). Names with no mapping are returned unchanged.
pub fn canonical_name(gguf: &str) -> String {
    match gguf {
        "token_embd.weight" => return "model.embed_tokens.weight".into(),
        "output_norm.weight" => return "model.norm.weight".into(),
        "output.weight" => return "lm_head.weight".into(),
        _ => {}
    }
    let mapped = (|| {
        let rest = gguf.strip_prefix("blk.")?;
        let (layer, rest) = rest.split_once('.')?;
        if layer.is_empty() || !layer.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let (base, ext) = rest.rsplit_once('.')?;
        if ext != "weight" && ext != "bias" {
            return None;
        }
        let hf = match base {
            "attn_norm" => "input_layernorm",
            "attn_q" => "self_attn.q_proj",
            "attn_k" => "self_attn.k_proj",
            "attn_v" => "self_attn.v_proj",
            "attn_output" => "self_attn.o_proj",
            "ffn_norm" => "post_attention_layernorm",
            "ffn_gate" => "mlp.gate_proj",
            "ffn_up" => "mlp.up_proj",
            "ffn_down" => "mlp.down_proj",
            _ => return None,
        };
        Some(format!("model.layers.{layer}.{hf}.{ext}"))
    })();
    mapped.unwrap_or_else(|| gguf.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_hf() {
        let cases = [
            ("token_embd.weight", "model.embed_tokens.weight"),
            ("output_norm.weight", "model.norm.weight"),
            ("output.weight", "lm_head.weight"),
            (
                "blk.0.attn_norm.weight",
                "model.layers.0.input_layernorm.weight",
            ),
            (
                "blk.12.attn_q.weight",
                "model.layers.12.self_attn.q_proj.weight",
            ),
            ("blk.1.attn_k.bias", "model.layers.1.self_attn.k_proj.bias"),
            (
                "blk.2.attn_v.weight",
                "model.layers.2.self_attn.v_proj.weight",
            ),
            (
                "blk.3.attn_output.weight",
                "model.layers.3.self_attn.o_proj.weight",
            ),
            (
                "blk.4.ffn_norm.weight",
                "model.layers.4.post_attention_layernorm.weight",
            ),
            (
                "blk.5.ffn_gate.weight",
                "model.layers.5.mlp.gate_proj.weight",
            ),
            ("blk.6.ffn_up.weight", "model.layers.6.mlp.up_proj.weight"),
            (
                "blk.29.ffn_down.weight",
                "model.layers.29.mlp.down_proj.weight",
            ),
            ("rope_freqs.weight", "rope_freqs.weight"),
            ("blk.x.attn_q.weight", "blk.x.attn_q.weight"),
            ("blk.0.attn_q.scale", "blk.0.attn_q.scale"),
            ("blk.0.something.weight", "blk.0.something.weight"),
        ];
        for (gguf, hf) in cases {
            assert_eq!(canonical_name(gguf), hf, "{gguf}");
        }
    }
}
