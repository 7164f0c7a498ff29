//! Loader tests: GGUF and safetensors round trips, hostile files, the real SmolLM2 GGUF, and
//! dequantization cross-checked against the `gguf` Python package
//! (`tests/reference/gguf_dequant.json`, made by `scripts/gguf_reference.py`).
//!
//! Run: `NANO_INFER_GGUF=/path/to/SmolLM2-135M-Instruct.Q4_1.gguf cargo test -p nano-infer-host --test loaders`

#[path = "../common/mod.rs"]
mod common;

mod hostile_gguf;
mod hostile_safetensors;
mod reference;
mod round_trip;
mod smollm2;

use nano_infer_host::Error;

/// Asserts `err` is an [`Error::Format`] whose message contains `needle`.
#[track_caller]
pub fn assert_format(err: Error, needle: &str) {
    let msg = err.to_string();
    assert!(
        matches!(err, Error::Format { .. }) && msg.contains(needle),
        "expected a format error containing {needle:?}, got {err:?}"
    );
}

/// Asserts `err` is an [`Error::Unsupported`] whose message contains `needle`.
#[track_caller]
pub fn assert_unsupported(err: Error, needle: &str) {
    let msg = err.to_string();
    assert!(
        matches!(err, Error::Unsupported { .. }) && msg.contains(needle),
        "expected an unsupported-feature error containing {needle:?}, got {err:?}"
    );
}

/// Compares `got` with `want` elementwise within `atol + rtol·|want|`, reporting the first and
/// the worst mismatch.
#[track_caller]
pub fn assert_close(label: &str, got: &[f32], want: &[f32], atol: f32, rtol: f32) {
    assert_eq!(got.len(), want.len(), "{label}: lengths differ");
    let mut first = None;
    let mut worst: Option<(usize, f32)> = None;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g - w).abs();
        // NaN on either side counts as a mismatch.
        if err.is_nan() || err > atol + rtol * w.abs() {
            first.get_or_insert(i);
            if worst.is_none_or(|(_, e)| err > e) {
                worst = Some((i, err));
            }
        }
    }
    if let (Some(f), Some((w, e))) = (first, worst) {
        panic!(
            "{label}: mismatch (atol {atol}, rtol {rtol}); first at {f}: got {} want {}; \
             worst at {w}: got {} want {} (|err| {e})",
            got[f], want[f], got[w], want[w]
        );
    }
}
