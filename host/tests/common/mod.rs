//! Tiny GGUF and safetensors writers for building test files in memory, valid or deliberately
//! broken, plus the path of the real SmolLM2 model.

#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};

use half::{bf16, f16};

/// `ggml_type` ids.
pub mod ggml_type {
    pub const F32: u32 = 0;
    pub const F16: u32 = 1;
    pub const Q4_0: u32 = 2;
    pub const Q4_1: u32 = 3;
    pub const Q5_0: u32 = 6;
    pub const Q8_0: u32 = 8;
    pub const Q4_K: u32 = 12;
    pub const Q6_K: u32 = 14;
    pub const BF16: u32 = 30;
}

/// A metadata value to write.
#[derive(Clone, Debug)]
pub enum Meta {
    U8(u8),
    U32(u32),
    I32(i32),
    U64(u64),
    F32(f32),
    Bool(bool),
    Str(String),
    /// Elements of one type; an empty array is written as an array of u8.
    Array(Vec<Meta>),
}

impl Meta {
    pub fn str(s: &str) -> Meta {
        Meta::Str(s.to_string())
    }

    pub fn strs(items: &[&str]) -> Meta {
        Meta::Array(items.iter().map(|s| Meta::str(s)).collect())
    }

    fn type_id(&self) -> u32 {
        match self {
            Meta::U8(_) => 0,
            Meta::U32(_) => 4,
            Meta::I32(_) => 5,
            Meta::F32(_) => 6,
            Meta::Bool(_) => 7,
            Meta::Str(_) => 8,
            Meta::Array(_) => 9,
            Meta::U64(_) => 10,
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Meta::U8(v) => out.push(*v),
            Meta::U32(v) => out.extend(v.to_le_bytes()),
            Meta::I32(v) => out.extend(v.to_le_bytes()),
            Meta::U64(v) => out.extend(v.to_le_bytes()),
            Meta::F32(v) => out.extend(v.to_le_bytes()),
            Meta::Bool(v) => out.push(*v as u8),
            Meta::Str(s) => write_str(out, s),
            Meta::Array(items) => {
                out.extend(items.first().map_or(0, Meta::type_id).to_le_bytes());
                out.extend((items.len() as u64).to_le_bytes());
                for item in items {
                    item.write(out);
                }
            }
        }
    }
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

/// One tensor to write: `ne` innermost-first as GGUF stores it.
#[derive(Clone, Debug)]
pub struct GgufTensor {
    pub name: String,
    pub ne: Vec<u64>,
    pub type_id: u32,
    pub data: Vec<u8>,
    /// Written instead of the computed offset (to build broken files).
    pub offset_override: Option<u64>,
}

/// Builds a GGUF file: header, metadata, tensor infos, aligned data.
#[derive(Clone, Debug)]
pub struct GgufWriter {
    pub version: u32,
    pub alignment: u64,
    pub metadata: Vec<(String, Meta)>,
    pub tensors: Vec<GgufTensor>,
}

impl GgufWriter {
    pub fn new(version: u32) -> Self {
        GgufWriter {
            version,
            alignment: 32,
            metadata: Vec::new(),
            tensors: Vec::new(),
        }
    }

    pub fn meta(mut self, key: &str, value: Meta) -> Self {
        if key == "general.alignment"
            && let Meta::U32(a) = value
        {
            self.alignment = a.max(1).into();
        }
        self.metadata.push((key.to_string(), value));
        self
    }

    /// Adds a tensor given its shape outermost-first (reversed into GGUF's `ne`).
    pub fn tensor(mut self, name: &str, shape: &[usize], type_id: u32, data: Vec<u8>) -> Self {
        self.tensors.push(GgufTensor {
            name: name.to_string(),
            ne: shape.iter().rev().map(|&d| d as u64).collect(),
            type_id,
            data,
            offset_override: None,
        });
        self
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend(self.version.to_le_bytes());
        out.extend((self.tensors.len() as u64).to_le_bytes());
        out.extend((self.metadata.len() as u64).to_le_bytes());
        for (key, value) in &self.metadata {
            write_str(&mut out, key);
            out.extend(value.type_id().to_le_bytes());
            value.write(&mut out);
        }
        let align = |n: u64| n.div_ceil(self.alignment) * self.alignment;
        let mut offset = 0u64;
        let mut offsets = Vec::new();
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
}

/// A safetensors file from `(name, dtype, shape, data)` entries laid out back to back.
pub fn safetensors_bytes(tensors: &[(&str, &str, &[usize], Vec<u8>)]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), serde_json::json!({ "format": "pt" }));
    let mut data = Vec::new();
    for (name, dtype, shape, bytes) in tensors {
        let begin = data.len();
        data.extend(bytes);
        header.insert(
            name.to_string(),
            serde_json::json!({ "dtype": dtype, "shape": shape, "data_offsets": [begin, data.len()] }),
        );
    }
    safetensors_raw(&serde_json::Value::Object(header).to_string(), &data)
}

/// A safetensors file with the given header text (padded to 8 bytes, as the format's writer
/// does) followed by `data`.
pub fn safetensors_raw(header: &str, data: &[u8]) -> Vec<u8> {
    let mut header = header.as_bytes().to_vec();
    while !header.len().is_multiple_of(8) {
        header.push(b' ');
    }
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend(header);
    out.extend(data);
    out
}

pub fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

pub fn f16_bytes(values: &[f32]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|&v| f16::from_f32(v).to_le_bytes())
        .collect()
}

pub fn bf16_bytes(values: &[f32]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|&v| bf16::from_f32(v).to_le_bytes())
        .collect()
}

/// A fresh, empty directory under cargo's per-target temp dir.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("loaders-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// The SmolLM2-135M-Instruct Q4_1 GGUF: `$NANO_INFER_GGUF`, else the fetch command's cache.
/// Panics with instructions when it is absent: tests that need it must not pass silently.
pub fn smollm2_path() -> PathBuf {
    let path = match std::env::var_os("NANO_INFER_GGUF") {
        Some(p) => PathBuf::from(p),
        None => {
            let home = std::env::var_os("HOME").unwrap_or_default();
            Path::new(&home).join(".cache/nano-infer/SmolLM2-135M-Instruct.Q4_1.gguf")
        }
    };
    assert!(
        path.is_file(),
        "SmolLM2 GGUF not found at {}: run `cargo run --release -- fetch` \
         (or set NANO_INFER_GGUF to the file)",
        path.display()
    );
    path
}
