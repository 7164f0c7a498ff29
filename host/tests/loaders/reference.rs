//! Dequantization against the `gguf` Python package (llama.cpp's reader): values in
//! `tests/reference/gguf_dequant.json`, written by `scripts/gguf_reference.py`.

use nano_infer_host::loaders::quant::dequantize;
use nano_infer_host::loaders::{GgufFile, StorageType, WeightSource};
use serde_json::Value;

use crate::assert_close;
use crate::common::smollm2_path;

/// Relative tolerance: both sides do the same f32 operations, so only rounding differs.
const RTOL: f32 = 1e-6;

fn reference() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/reference/gguf_dequant.json"
    );
    let text =
        std::fs::read_to_string(path).expect("reference JSON (run scripts/gguf_reference.py)");
    serde_json::from_str(&text).expect("reference JSON parses")
}

fn f32s(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number") as f32)
        .collect()
}

fn storage_type(name: &str) -> StorageType {
    match name {
        "F32" => StorageType::F32,
        "Q8_0" => StorageType::Q8_0,
        "Q4_0" => StorageType::Q4_0,
        "Q4_1" => StorageType::Q4_1,
        "Q4_K" => StorageType::Q4_K,
        "Q6_K" => StorageType::Q6_K,
        other => panic!("reference type {other} not handled"),
    }
}

/// Random blocks of every quantized format (no model file needed).
#[test]
fn blocks_match_gguf_py() {
    let reference = reference();
    let blocks = reference["blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), 5);
    for block in blocks {
        let ty = storage_type(block["type"].as_str().unwrap());
        let hex = block["hex"].as_str().unwrap();
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let want = f32s(&block["values"]);
        let mut got = vec![0.0; want.len()];
        dequantize(ty, &bytes, want.len(), &mut got).unwrap();
        assert_close(ty.name(), &got, &want, 0.0, RTOL);
    }
}

/// Tensors of the real model: values at fixed positions, sums over all elements.
#[test]
fn smollm2_tensors_match_gguf_py() {
    let reference = reference();
    let gguf = GgufFile::open(&smollm2_path()).unwrap();
    for t in reference["model"].as_array().unwrap() {
        let name = t["name"].as_str().unwrap();
        assert_eq!(gguf.gguf_name(name), t["gguf_name"].as_str(), "{name}");
        let info = gguf.tensor_info(name).unwrap();
        assert_eq!(info.dtype.name(), t["type"].as_str().unwrap(), "{name}");
        let shape: Vec<usize> = f32s(&t["shape"]).iter().map(|&d| d as usize).collect();
        assert_eq!(info.shape, shape, "{name}");

        let values = gguf.to_f32(name).unwrap();
        assert_close(
            &format!("{name} first"),
            &values[..8],
            &f32s(&t["first"]),
            0.0,
            RTOL,
        );
        let spread: Vec<f32> = t["spread_index"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| values[i.as_u64().unwrap() as usize])
            .collect();
        assert_close(
            &format!("{name} spread"),
            &spread,
            &f32s(&t["spread"]),
            0.0,
            RTOL,
        );

        let sum: f64 = values.iter().map(|&v| v as f64).sum();
        let sum_abs: f64 = values.iter().map(|&v| v.abs() as f64).sum();
        let (want_sum, want_abs) = (t["sum"].as_f64().unwrap(), t["sum_abs"].as_f64().unwrap());
        let tol = 1e-6 * want_abs;
        assert!(
            (sum - want_sum).abs() <= tol,
            "{name}: sum {sum} vs {want_sum}"
        );
        assert!(
            (sum_abs - want_abs).abs() <= tol,
            "{name}: sum |x| {sum_abs} vs {want_abs}"
        );
    }
}
