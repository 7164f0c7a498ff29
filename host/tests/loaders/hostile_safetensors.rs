//! Malformed and hostile safetensors checkpoints: typed errors, never a panic.

use nano_infer_host::Error;
use nano_infer_host::loaders::{self, SafetensorsModel};

use crate::common::{f32_bytes, safetensors_bytes, safetensors_raw, temp_dir};
use crate::{assert_format, assert_unsupported};

fn err(bytes: Vec<u8>) -> Error {
    match SafetensorsModel::from_bytes(vec![bytes], None) {
        Ok(_) => panic!("a broken file was accepted"),
        Err(e) => e,
    }
}

/// A header with one tensor entry `x` whose JSON fields are given, over 16 bytes of data.
fn one_entry(fields: &str) -> Vec<u8> {
    safetensors_raw(&format!(r#"{{"x": {fields}}}"#), &[0; 16])
}

#[test]
fn bad_header_length_and_json() {
    assert_format(err(vec![1, 2, 3]), "fewer than 8");
    let mut b = safetensors_bytes(&[("x", "F32", &[2], f32_bytes(&[1.0, 2.0]))]);
    let too_long = b.len() as u64;
    b[..8].copy_from_slice(&too_long.to_le_bytes());
    assert_format(err(b.clone()), "header length");
    b[..8].copy_from_slice(&(1u64 << 62).to_le_bytes());
    assert_format(err(b), "header length");
    assert_format(err(safetensors_raw("{not json", &[])), "header JSON");
    assert_format(
        err(safetensors_raw("[1, 2]", &[])),
        "expected a JSON object",
    );
    assert_format(err(safetensors_raw("12", &[])), "expected a JSON object");
    assert_format(err(one_entry("[]")), "entry is not an object");
    assert_format(
        err(safetensors_raw(
            r#"{"x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                "x": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}"#,
            &[0; 8],
        )),
        "duplicate name",
    );
}

#[test]
fn bad_entries() {
    let e = |dtype: &str, shape: &str, offsets: &str| {
        one_entry(&format!(
            r#"{{"dtype": {dtype}, "shape": {shape}, "data_offsets": {offsets}}}"#
        ))
    };
    assert!(SafetensorsModel::from_bytes(vec![e(r#""F32""#, "[2, 2]", "[0, 16]")], None).is_ok());
    assert_unsupported(err(e(r#""I64""#, "[2]", "[0, 16]")), "dtype I64");
    assert_unsupported(err(e(r#""F8_E4M3""#, "[2]", "[0, 2]")), "dtype F8_E4M3");
    assert_format(err(e("7", "[2]", "[0, 8]")), "no string `dtype`");
    assert_format(
        err(e(r#""F32""#, "[-2]", "[0, 8]")),
        "non-negative integers",
    );
    assert_format(err(e(r#""F32""#, r#""2""#, "[0, 8]")), "no array `shape`");
    let huge = format!("[{}, {}]", 1u64 << 40, 1u64 << 40);
    assert_format(err(e(r#""F32""#, &huge, "[0, 16]")), "overflows");
    assert_format(err(e(r#""F32""#, "[4]", "[0, 17]")), "data_offsets [0, 17)");
    assert_format(err(e(r#""F32""#, "[4]", "[0, 12]")), "data_offsets");
    assert_format(err(e(r#""F32""#, "[0]", "[8, 4]")), "data_offsets");
    assert_format(err(e(r#""F32""#, "[4]", "[0, 16, 32]")), "3 values");
    let past = format!("[{}, {}]", u64::MAX - 4, u64::MAX);
    assert_format(err(e(r#""F32""#, "[1]", &past)), "data_offsets");
}

/// Every prefix of a valid file is an error, and none panics.
#[test]
fn every_truncation_is_an_error() {
    let bytes = safetensors_bytes(&[("x", "F32", &[2, 3], f32_bytes(&[1.0; 6]))]);
    for len in 0..bytes.len() {
        assert!(
            SafetensorsModel::from_bytes(vec![bytes[..len].to_vec()], None).is_err(),
            "a file cut to {len} bytes was accepted"
        );
    }
}

#[test]
fn bad_shards_and_config() {
    let dir = temp_dir("st-hostile");
    let tensor = |name: &'static str| safetensors_bytes(&[(name, "F32", &[1], f32_bytes(&[1.0]))]);
    std::fs::write(dir.join("a.safetensors"), tensor("x")).unwrap();
    std::fs::write(dir.join("b.safetensors"), tensor("x")).unwrap();
    let index = dir.join("model.safetensors.index.json");

    let write_index = |map: &str| {
        std::fs::write(&index, format!(r#"{{"weight_map": {map}}}"#)).unwrap();
        loaders::open(&dir)
            .err()
            .expect("a broken index was accepted")
    };
    assert_format(
        write_index(r#"{"x": "../a.safetensors"}"#),
        "not a plain file name",
    );
    assert_format(
        write_index(r#"{"x": "/etc/passwd"}"#),
        "not a plain file name",
    );
    assert_format(write_index(r#"{"x": 3}"#), "not a plain file name");
    assert_format(write_index(r#"{"y": "a.safetensors"}"#), "not stored there");
    assert_format(
        write_index(r#"{"x": "a.safetensors", "z": "b.safetensors"}"#),
        "more than one shard",
    );
    assert!(matches!(
        write_index(r#"{"x": "missing.safetensors"}"#),
        Error::Io { .. }
    ));
    std::fs::write(&index, "[]").unwrap();
    assert_format(loaders::open(&dir).err().unwrap(), "weight_map");

    // A good single file without config.json: tensors load, the config is an I/O error.
    std::fs::remove_file(&index).unwrap();
    std::fs::write(dir.join("model.safetensors"), tensor("x")).unwrap();
    let model = loaders::open(&dir).unwrap();
    assert_eq!(model.to_f32("x").unwrap(), [1.0]);
    assert!(matches!(model.llama_config(), Err(Error::Io { .. })));
    std::fs::write(dir.join("config.json"), "{}").unwrap();
    assert_format(model.llama_config().unwrap_err(), "hidden_size");
}
