//! Tiny GGUF and safetensors writers for building test files in memory, valid or deliberately
//! broken, plus the path of the real SmolLM2 model.

#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};

use half::{bf16, f16};
pub use nano_infer_host::loaders::gguf::GgufWriter;
use nano_infer_host::loaders::gguf::{MetaArray, MetaValue};

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

/// A metadata value to write, in a loose form that is quick to type in tests; converted to the
/// library's [`MetaValue`] for [`GgufWriter`].
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
}

impl From<Meta> for MetaValue {
    fn from(m: Meta) -> MetaValue {
        match m {
            Meta::U8(v) => MetaValue::U8(v),
            Meta::U32(v) => MetaValue::U32(v),
            Meta::I32(v) => MetaValue::I32(v),
            Meta::U64(v) => MetaValue::U64(v),
            Meta::F32(v) => MetaValue::F32(v),
            Meta::Bool(v) => MetaValue::Bool(v),
            Meta::Str(v) => MetaValue::String(v),
            Meta::Array(items) => MetaValue::Array(array(items)),
        }
    }
}

/// The typed array of `items`, which must all be of the first item's kind.
fn array(items: Vec<Meta>) -> MetaArray {
    macro_rules! collect {
        ($variant:ident, $meta:ident) => {
            MetaArray::$variant(
                items
                    .into_iter()
                    .map(|m| match m {
                        Meta::$meta(v) => v,
                        other => panic!("mixed array: {other:?} among {}", stringify!($meta)),
                    })
                    .collect(),
            )
        };
    }
    match items.first() {
        None | Some(Meta::U8(_)) => collect!(U8, U8),
        Some(Meta::U32(_)) => collect!(U32, U32),
        Some(Meta::I32(_)) => collect!(I32, I32),
        Some(Meta::U64(_)) => collect!(U64, U64),
        Some(Meta::F32(_)) => collect!(F32, F32),
        Some(Meta::Bool(_)) => collect!(Bool, Bool),
        Some(Meta::Str(_)) => collect!(String, Str),
        Some(Meta::Array(_)) => MetaArray::Array(
            items
                .into_iter()
                .map(|m| match m {
                    Meta::Array(inner) => array(inner),
                    other => panic!("mixed array: {other:?} among arrays"),
                })
                .collect(),
        ),
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
