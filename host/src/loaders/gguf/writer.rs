//! [`GgufWriter`]: writes GGUF files — the small model fixtures the GPU tests use
//! ([`truncate_layers`] cuts SmolLM2 down to a few layers) and the test files of the loader tests.
//!
//! The writer is deliberately low level: it writes the records it is given (`ne` innermost first,
//! a raw `ggml_type` id, an optional explicit data offset) without judging them, so the loader
//! tests can also build malformed files to check that the reader refuses them. The checked way
//! in is [`GgufWriter::add_tensor`]; the reader is what validates a file.

use std::path::Path;

use super::{DEFAULT_ALIGNMENT, GGUF_MAGIC, GgufFile, MetaArray, MetaValue};
use crate::loaders::{StorageType, WeightSource, io_error};
use crate::{Error, Result};

/// One tensor record as GGUF stores it.
#[derive(Clone, Debug, PartialEq)]
pub struct GgufTensor {
    /// The name in the file (llama.cpp's, e.g. `blk.0.attn_q.weight`).
    pub name: String,
    /// Dimensions innermost (row length) first, as GGUF stores them.
    pub ne: Vec<u64>,
    /// The `ggml_type` id.
    pub type_id: u32,
    /// The stored bytes.
    pub data: Vec<u8>,
    /// Written instead of the computed data offset (only to build broken files).
    pub offset_override: Option<u64>,
}

/// A GGUF file under construction: header, metadata, tensor infos, aligned tensor data.
#[derive(Clone, Debug, PartialEq)]
pub struct GgufWriter {
    pub version: u32,
    /// Data alignment in bytes (set from a `general.alignment` u32 given to [`GgufWriter::meta`]).
    pub alignment: u64,
    /// Key/value pairs in file order.
    pub metadata: Vec<(String, MetaValue)>,
    /// Tensors in file order.
    pub tensors: Vec<GgufTensor>,
}

impl GgufWriter {
    /// An empty file of GGUF `version` (3 is current).
    pub fn new(version: u32) -> Self {
        GgufWriter {
            version,
            alignment: DEFAULT_ALIGNMENT as u64,
            metadata: Vec::new(),
            tensors: Vec::new(),
        }
    }

    /// Appends a metadata pair.
    pub fn meta(mut self, key: &str, value: impl Into<MetaValue>) -> Self {
        let value = value.into();
        if key == "general.alignment"
            && let MetaValue::U32(a) = value
        {
            self.alignment = a.max(1).into();
        }
        self.metadata.push((key.to_string(), value));
        self
    }

    /// Appends a tensor of `shape` (outermost first) with a raw `ggml_type` id, unchecked.
    pub fn tensor(mut self, name: &str, shape: &[usize], type_id: u32, data: Vec<u8>) -> Self {
        self.push_tensor(name, shape, type_id, data);
        self
    }

    fn push_tensor(&mut self, name: &str, shape: &[usize], type_id: u32, data: Vec<u8>) {
        self.tensors.push(GgufTensor {
            name: name.to_string(),
            ne: shape.iter().rev().map(|&d| d as u64).collect(),
            type_id,
            data,
            offset_override: None,
        });
    }

    /// Appends a tensor of `shape` (outermost first), checking that `data` has exactly the bytes
    /// `dtype` needs for it.
    pub fn add_tensor(
        &mut self,
        name: &str,
        shape: &[usize],
        dtype: StorageType,
        data: Vec<u8>,
    ) -> Result<()> {
        let n: usize = shape.iter().product();
        if dtype.byte_len(n) != Some(data.len()) {
            return Err(Error::invalid(
                "GgufWriter::add_tensor",
                format!(
                    "`{name}`: {} bytes for {shape:?} of {}",
                    data.len(),
                    dtype.name()
                ),
            ));
        }
        self.push_tensor(name, shape, ggml_type_id(dtype), data);
        Ok(())
    }

    /// The whole file.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = GGUF_MAGIC.to_vec();
        out.extend(self.version.to_le_bytes());
        out.extend((self.tensors.len() as u64).to_le_bytes());
        out.extend((self.metadata.len() as u64).to_le_bytes());
        for (key, value) in &self.metadata {
            write_str(&mut out, key);
            out.extend(value_type(value).to_le_bytes());
            write_value(&mut out, value);
        }
        let align = |n: u64| n.div_ceil(self.alignment) * self.alignment;
        let mut offset = 0u64;
        let mut offsets = Vec::with_capacity(self.tensors.len());
        for t in &self.tensors {
            write_str(&mut out, &t.name);
            out.extend((t.ne.len() as u32).to_le_bytes());
            for d in &t.ne {
                out.extend(d.to_le_bytes());
            }
            out.extend(t.type_id.to_le_bytes());
            out.extend(t.offset_override.unwrap_or(offset).to_le_bytes());
            offsets.push(offset);
            offset = align(offset + t.data.len() as u64);
        }
        let data_start = align(out.len() as u64);
        out.resize(data_start as usize, 0);
        for (t, off) in self.tensors.iter().zip(offsets) {
            out.resize((data_start + off) as usize, 0);
            out.extend(&t.data);
        }
        out
    }

    /// Writes the file to `path` through a temporary file and a rename, so that `path` never
    /// holds half a file.
    pub fn write(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension("gguf.partial");
        std::fs::write(&tmp, self.to_bytes()).map_err(|e| io_error(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| io_error(path, e))
    }
}

/// A copy of the Llama GGUF `src` keeping only its first `layers` blocks: the same metadata
/// (tokenizer included) with `{arch}.block_count` set to `layers`, the embedding, output norm and
/// head, and `blk.0` to `blk.{layers-1}`, all with their stored bytes. A small model that loads,
/// tokenizes and runs like the original, for GPU tests.
pub fn truncate_layers(src: &GgufFile, layers: usize) -> Result<GgufWriter> {
    let config = src.llama_config()?;
    if layers == 0 || layers > config.num_layers {
        return Err(Error::invalid(
            "truncate_layers",
            format!("layers must lie in 1..={}, got {layers}", config.num_layers),
        ));
    }
    let arch = src
        .metadata("general.architecture")
        .and_then(MetaValue::as_str)
        .unwrap_or("llama")
        .to_string();
    let block_count = format!("{arch}.block_count");
    let mut out = GgufWriter::new(src.version());
    out.alignment = src.alignment() as u64;
    for key in src.metadata_keys() {
        let value = match src.metadata(key) {
            Some(_) if key == block_count => MetaValue::U32(layers as u32),
            Some(v) => v.clone(),
            None => continue,
        };
        out.metadata.push((key.to_string(), value));
    }
    for entry in &src.tensors {
        if let Some(layer) = block_index(&entry.gguf_name)
            && layer >= layers
        {
            continue;
        }
        let data = src.raw_bytes(&entry.info.name)?.to_vec();
        let (name, shape) = (entry.gguf_name.clone(), entry.info.shape.clone());
        out.add_tensor(&name, &shape, entry.info.dtype, data)?;
    }
    Ok(out)
}

/// `i` for a tensor named `blk.{i}.*`.
fn block_index(gguf_name: &str) -> Option<usize> {
    gguf_name
        .strip_prefix("blk.")?
        .split('.')
        .next()?
        .parse()
        .ok()
}

/// The `ggml_type` id of a storage type.
pub fn ggml_type_id(dtype: StorageType) -> u32 {
    match dtype {
        StorageType::F32 => 0,
        StorageType::F16 => 1,
        StorageType::Q4_0 => 2,
        StorageType::Q4_1 => 3,
        StorageType::Q8_0 => 8,
        StorageType::Q4_K => 12,
        StorageType::Q6_K => 14,
        StorageType::BF16 => 30,
    }
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

/// GGUF's metadata type id of a value.
fn value_type(v: &MetaValue) -> u32 {
    match v {
        MetaValue::U8(_) => 0,
        MetaValue::I8(_) => 1,
        MetaValue::U16(_) => 2,
        MetaValue::I16(_) => 3,
        MetaValue::U32(_) => 4,
        MetaValue::I32(_) => 5,
        MetaValue::F32(_) => 6,
        MetaValue::Bool(_) => 7,
        MetaValue::String(_) => 8,
        MetaValue::Array(_) => 9,
        MetaValue::U64(_) => 10,
        MetaValue::I64(_) => 11,
        MetaValue::F64(_) => 12,
    }
}

/// The type id of an array's elements.
fn element_type(a: &MetaArray) -> u32 {
    match a {
        MetaArray::U8(_) => 0,
        MetaArray::I8(_) => 1,
        MetaArray::U16(_) => 2,
        MetaArray::I16(_) => 3,
        MetaArray::U32(_) => 4,
        MetaArray::I32(_) => 5,
        MetaArray::F32(_) => 6,
        MetaArray::Bool(_) => 7,
        MetaArray::String(_) => 8,
        MetaArray::Array(_) => 9,
        MetaArray::U64(_) => 10,
        MetaArray::I64(_) => 11,
        MetaArray::F64(_) => 12,
    }
}

fn write_value(out: &mut Vec<u8>, v: &MetaValue) {
    match v {
        MetaValue::U8(x) => out.push(*x),
        MetaValue::I8(x) => out.extend(x.to_le_bytes()),
        MetaValue::U16(x) => out.extend(x.to_le_bytes()),
        MetaValue::I16(x) => out.extend(x.to_le_bytes()),
        MetaValue::U32(x) => out.extend(x.to_le_bytes()),
        MetaValue::I32(x) => out.extend(x.to_le_bytes()),
        MetaValue::F32(x) => out.extend(x.to_le_bytes()),
        MetaValue::Bool(x) => out.push(u8::from(*x)),
        MetaValue::String(s) => write_str(out, s),
        MetaValue::Array(a) => write_array(out, a),
        MetaValue::U64(x) => out.extend(x.to_le_bytes()),
        MetaValue::I64(x) => out.extend(x.to_le_bytes()),
        MetaValue::F64(x) => out.extend(x.to_le_bytes()),
    }
}

/// An array's element type, length and elements.
fn write_array(out: &mut Vec<u8>, a: &MetaArray) {
    out.extend(element_type(a).to_le_bytes());
    out.extend((a.len() as u64).to_le_bytes());
    fn each<T>(out: &mut Vec<u8>, v: &[T], f: impl Fn(&mut Vec<u8>, &T)) {
        v.iter().for_each(|x| f(out, x));
    }
    match a {
        MetaArray::U8(v) => out.extend(v),
        MetaArray::I8(v) => each(out, v, |o, x| o.extend(x.to_le_bytes())),
        MetaArray::U16(v) => each(out, v, |o, x| o.extend(x.to_le_bytes())),
        MetaArray::I16(v) => each(out, v, |o, x| o.extend(x.to_le_bytes())),
        MetaArray::U32(v) => each(out, v, |o, x| o.extend(x.to_le_bytes())),
        MetaArray::I32(v) => each(out, v, |o, x| o.extend(x.to_le_bytes())),
        MetaArray::F32(v) => each(out, v, |o, x| o.extend(x.to_le_bytes())),
        MetaArray::Bool(v) => each(out, v, |o, x| o.push(u8::from(*x))),
        MetaArray::String(v) => each(out, v, |o, s| write_str(o, s)),
        MetaArray::Array(v) => each(out, v, write_array),
        MetaArray::U64(v) => each(out, v, |o, x| o.extend(x.to_le_bytes())),
        MetaArray::I64(v) => each(out, v, |o, x| o.extend(x.to_le_bytes())),
        MetaArray::F64(v) => each(out, v, |o, x| o.extend(x.to_le_bytes())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metadata_type_round_trips() {
        let values = [
            MetaValue::U8(7),
            MetaValue::I8(-7),
            MetaValue::U16(700),
            MetaValue::I16(-700),
            MetaValue::U32(70_000),
            MetaValue::I32(-70_000),
            MetaValue::F32(1.5),
            MetaValue::Bool(true),
            MetaValue::String("smollm".into()),
            MetaValue::U64(1 << 40),
            MetaValue::I64(-(1 << 40)),
            MetaValue::F64(-2.25),
            MetaValue::Array(MetaArray::String(vec!["a".into(), "bc".into()])),
            MetaValue::Array(MetaArray::Array(vec![
                MetaArray::F32(vec![1.0, -1.0]),
                MetaArray::U8(vec![]),
            ])),
        ];
        let mut w = GgufWriter::new(3);
        for (i, v) in values.iter().enumerate() {
            w = w.meta(&format!("k{i}"), v.clone());
        }
        w.add_tensor("t", &[2, 32], StorageType::F32, vec![0; 256])
            .unwrap();
        assert!(
            w.add_tensor("bad", &[32], StorageType::Q4_1, vec![0; 19])
                .is_err()
        );
        let f = GgufFile::from_bytes(w.to_bytes()).unwrap();
        for (i, v) in values.iter().enumerate() {
            assert_eq!(f.metadata(&format!("k{i}")), Some(v), "k{i}");
        }
        assert_eq!(f.tensor_info("t").unwrap().shape, vec![2, 32]);
    }

    #[test]
    fn block_indices() {
        assert_eq!(block_index("blk.12.attn_q.weight"), Some(12));
        assert_eq!(block_index("token_embd.weight"), None);
        assert_eq!(block_index("blk.x.attn_q.weight"), None);
    }
}
