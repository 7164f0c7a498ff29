//! Quantized weights on the GPU (Q8_0, Q4_0, Q4_1 kept in blocks, f16 activations): a model
//! quantized on the device, or loaded from a GGUF file as stored, against the same model with
//! its blocks expanded to dense f16 (`Llama::dequantize`) — the values the quantized kernels
//! compute with, so the two differ only by the order of the sums and by the f16 rounding of
//! the expanded weights.
//!
//! - `emu::*`/`cuda::*` (per device): a random SmolLM2-structured model (small on the emulator),
//!   prefill and decode logits of each format (Q4_1 only on the emulator) against its
//!   dequantized twin.
//! - `cuda::` only (`#[ignore = "needs a CUDA GPU"]`): the SmolLM2 fixture loaded as stored
//!   (Q4_1 layers, Q8_0 head): greedy tokens through the CUDA graph equal the dequantized
//!   model's eager greedy tokens, and quantizing a dense f16 load to Q8_0 gives the same.

mod common;

use nano_infer::sampler::argmax;
use nano_infer::tensor::QuantFormat;
use nano_infer::{DType, Device, GraphDecoder, Llama, loaders};

const PROMPT: [u32; 5] = [504, 3575, 282, 4649, 314];
const FORMATS: [QuantFormat; 3] = [QuantFormat::Q8_0, QuantFormat::Q4_0, QuantFormat::Q4_1];

common::device_tests!(quantized_random_model_matches_its_dequantized_twin);

/// Largest |a - b| relative to the largest |b|.
fn rel_diff(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-6);
    a.iter()
        .zip(b)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

/// The prompt's last logits and one decode step's.
fn prefill_and_step(model: &Llama) -> [Vec<f32>; 2] {
    let mut cache = model.new_cache_with_capacity(16).unwrap();
    let prefill = model.forward(&PROMPT, &mut cache).unwrap();
    let step = model.forward(&[42], &mut cache).unwrap();
    [prefill, step].map(|t| t.to_vec_f32().unwrap())
}

/// Random weights (on a GPU: SmolLM2's shapes with 4 layers; on the emulator a 2-layer model
/// with hidden size 64), quantized on the device in each format: the prefill takes the
/// dequantize + cuBLAS path, the decode step the quantized GEMV; both within 1% of the largest
/// logit of the dequantized twin (f16 activations on both sides).
fn quantized_random_model_matches_its_dequantized_twin(dev: &Device) {
    let config = common::random_smollm2_config(dev);
    let dense = Llama::random(&config, DType::F16, dev, 5).unwrap();
    // The emulator takes one format (the GEMV tests cover each format's kernels there).
    for f in common::cases(dev, &FORMATS, &[QuantFormat::Q4_1]) {
        let q = dense.quantize(f).unwrap();
        assert!(q.is_quantized());
        assert!(
            q.weight_bytes() < dense.weight_bytes() * 6 / 10,
            "{f:?}: {} vs dense {} bytes",
            q.weight_bytes(),
            dense.weight_bytes()
        );
        let twin = q.dequantize().unwrap();
        assert!(!twin.is_quantized());
        let (got, want) = (prefill_and_step(&q), prefill_and_step(&twin));
        for (what, g, w) in [
            ("prefill", &got[0], &want[0]),
            ("decode", &got[1], &want[1]),
        ] {
            let d = rel_diff(g, w);
            eprintln!("{f:?} {what}: max |diff| / max |logit| = {d:.2e}");
            assert!(g.iter().all(|v| v.is_finite()), "{f:?} {what}");
            assert!(d < 1e-2, "{f:?} {what}: {d}");
        }
    }
    assert!(
        Llama::random(&config, DType::F32, dev, 5)
            .unwrap()
            .quantize(QuantFormat::Q4_1)
            .is_err(),
        "quantized weights on CUDA take f16 activations"
    );
}

/// Greedy tokens: `steps` replayed CUDA-graph steps after the prompt.
fn greedy_graph(model: &Llama, steps: usize) -> Vec<u32> {
    let mut cache = model.new_cache_with_capacity(64).unwrap();
    let logits = model
        .forward(&PROMPT, &mut cache)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    let mut ids = vec![argmax(&logits)];
    let mut decoder = GraphDecoder::new(model, &mut cache).expect("capture the decode step");
    while ids.len() < steps {
        let next = decoder
            .step_greedy(&mut cache, *ids.last().unwrap())
            .unwrap();
        ids.push(next);
    }
    ids
}

/// Greedy tokens with eager steps, and the smallest gap between the top two logits on the way.
fn greedy_eager(model: &Llama, steps: usize) -> (Vec<u32>, f32) {
    let mut cache = model.new_cache_with_capacity(64).unwrap();
    let mut logits = model
        .forward(&PROMPT, &mut cache)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    let (mut ids, mut gap) = (Vec::new(), f32::INFINITY);
    loop {
        let next = argmax(&logits);
        let second = logits
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != next as usize)
            .fold(f32::NEG_INFINITY, |m, (_, &v)| m.max(v));
        gap = gap.min(logits[next as usize] - second);
        ids.push(next);
        if ids.len() == steps {
            return (ids, gap);
        }
        logits = model
            .forward(&[next], &mut cache)
            .unwrap()
            .to_vec_f32()
            .unwrap();
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn fixture_as_stored_greedy_equals_dequantized() {
    let gpu = common::gpu();
    let source = loaders::open(&common::fixture_path()).expect("open the model");
    let stored = Llama::load_quantized(source.as_ref(), &gpu, 64, |_, _| {}).unwrap();
    assert!(stored.is_quantized());
    let steps = 32;
    let got = greedy_graph(&stored, steps);
    let (want, gap) = greedy_eager(&stored.dequantize().unwrap(), steps);
    eprintln!("as stored: {got:?}\ndequantized: {want:?} (smallest top-2 gap {gap:.3})");
    assert_eq!(
        got, want,
        "greedy tokens: quantized (graph) vs dequantized (eager)"
    );

    let q8 = Llama::load(source.as_ref(), DType::F16, &gpu, 64)
        .unwrap()
        .quantize(QuantFormat::Q8_0)
        .unwrap();
    let got = greedy_graph(&q8, steps);
    let (want, gap) = greedy_eager(&q8.dequantize().unwrap(), steps);
    eprintln!("q8_0: {got:?}\ndequantized: {want:?} (smallest top-2 gap {gap:.3})");
    assert_eq!(
        got, want,
        "greedy tokens: Q8_0 (graph) vs dequantized (eager)"
    );
}
