//! The committed reference outputs (`tests/reference/`): JSON cases from HF and llama.cpp and
//! the raw f32 logits files they point at.

use serde_json::Value;
use std::path::{Path, PathBuf};

/// `tests/reference/`.
pub fn reference_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference")
}

/// A reference JSON file by name.
pub fn load_json(name: &str) -> Value {
    let path = reference_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("reference JSON")
}

/// A JSON array of token ids.
pub fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("id array")
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect()
}

/// The last-position logits stored for a case (little-endian f32 file).
pub fn last_logits(case: &Value) -> Vec<f32> {
    let rel = case["last_logits"]["file"].as_str().expect("logits file");
    let bytes = std::fs::read(reference_dir().join(rel)).expect("logits file");
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Largest elementwise |a - b|.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}
