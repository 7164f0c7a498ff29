//! The Llama forward on CUDA against the CPU f32 path (the oracle), on a real checkpoint.
//!
//! The checkpoint tests are `#[ignore = "needs a CUDA GPU"]`; the random-weight test runs per
//! device (`common::device_tests!`): `emu::*` on the emulated GPU on every `cargo test`,
//! `cuda::*` on a GPU. The model is `$NANO_INFER_FIXTURE` — a
//! truncated SmolLM2 written by `nano-infer fixture --layers 2 --out FILE` (about 36 MB, small
//! enough to carry to a GPU host) — else the full SmolLM2 GGUF (`$NANO_INFER_GGUF` or the
//! cache). On a GPU host:
//!
//! ```text
//! NANO_INFER_FIXTURE=smollm2-2l.gguf ./llama_gpu-* --include-ignored --nocapture
//! ```
//!
//! Tolerances: CUDA f32 (cuBLAS in exact f32) must match the CPU logits to 2e-3 absolute; CUDA
//! f16 rounds every activation to 11 significant bits, so its logits may differ by up to 0.25
//! (logits here are O(10)), and a greedy run may leave the CPU's only at a near-tie: a step where
//! the CPU's top two logits are within 0.25 of each other.

mod common;

use nano_infer::sampler::argmax;
use nano_infer::{DType, Device, Llama, loaders};

const MAX_SEQ: usize = 64;
/// CUDA f32 vs CPU f32, absolute, on logits.
const F32_TOL: f32 = 2e-3;
/// CUDA f16 vs CPU f32, absolute, on logits; also the near-tie margin for greedy divergence.
const F16_TOL: f32 = 0.25;
/// "The capital of France is" in SmolLM2's vocabulary.
const PROMPT: [u32; 5] = [504, 3575, 282, 4649, 314];
const STEPS: usize = 16;

fn load(dtype: DType, device: &Device) -> Llama {
    let source = loaders::open(&common::fixture_path()).expect("open the model");
    Llama::load(source.as_ref(), dtype, device, MAX_SEQ).expect("load")
}

/// Greedy decoding: the tokens and each step's logits (the prefill's last position first).
fn greedy_run(model: &Llama, steps: usize) -> (Vec<u32>, Vec<Vec<f32>>) {
    let mut cache = model.new_cache().unwrap();
    let mut logits = model
        .forward(&PROMPT, &mut cache)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    let (mut ids, mut all) = (Vec::new(), Vec::new());
    for _ in 0..steps {
        let next = argmax(&logits);
        ids.push(next);
        all.push(logits);
        logits = model
            .forward(&[next], &mut cache)
            .unwrap()
            .to_vec_f32()
            .unwrap();
    }
    (ids, all)
}

/// Largest |a - b|, where, and the values there.
fn max_diff(a: &[f32], b: &[f32]) -> (f32, usize) {
    a.iter()
        .zip(b)
        .enumerate()
        .map(|(i, (x, y))| ((x - y).abs(), i))
        .fold((0.0, 0), |m, d| if d.0 > m.0 { d } else { m })
}

/// Runs greedy on both models and checks logits step by step (while the tokens agree) and that
/// any divergence happens at a near-tie of the reference.
fn compare_greedy(name: &str, reference: &Llama, model: &Llama, tol: f32) {
    let (want_ids, want) = greedy_run(reference, STEPS);
    let (got_ids, got) = greedy_run(model, STEPS);
    let mut worst = (0.0f32, 0, 0);
    for step in 0..STEPS {
        let (d, at) = max_diff(&got[step], &want[step]);
        if d > worst.0 {
            worst = (d, step, at);
        }
        if got_ids[step] != want_ids[step] {
            let w = &want[step];
            let margin = w[want_ids[step] as usize] - w[got_ids[step] as usize];
            eprintln!(
                "{name}: first divergence at step {step}: cpu {} vs {} with cpu logit margin {margin:.4}",
                want_ids[step], got_ids[step]
            );
            assert!(
                margin <= tol,
                "{name}: diverged at step {step} where the CPU margin is {margin} > {tol}"
            );
            break;
        }
    }
    eprintln!(
        "{name}: tokens {} of {STEPS} equal; worst logit |diff| {:.3e} at step {}, token {}",
        got_ids
            .iter()
            .zip(&want_ids)
            .take_while(|(a, b)| a == b)
            .count(),
        worst.0,
        worst.1,
        worst.2
    );
    assert!(worst.0 <= tol, "{name}: logits differ by {worst:?} > {tol}");
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn cuda_f16_and_f32_agree_with_cpu_f32() {
    let gpu = common::gpu();
    let cpu = load(DType::F32, &Device::Cpu);
    compare_greedy("cuda f32", &cpu, &load(DType::F32, &gpu), F32_TOL);
    compare_greedy("cuda f16", &cpu, &load(DType::F16, &gpu), F16_TOL);
    compare_greedy("cuda bf16", &cpu, &load(DType::BF16, &gpu), 4.0 * F16_TOL);
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn cuda_prefill_equals_decode() {
    let gpu = common::gpu();
    for (dtype, tol) in [(DType::F32, F32_TOL), (DType::F16, F16_TOL)] {
        let model = load(dtype, &gpu);
        let vocab = model.config.vocab_size;
        let mut cache = model.new_cache().unwrap();
        let all = model
            .forward_all(&PROMPT, &mut cache)
            .unwrap()
            .to_vec_f32()
            .unwrap();
        let mut cache = model.new_cache().unwrap();
        let mut worst = 0.0f32;
        for (pos, &id) in PROMPT.iter().enumerate() {
            let step = model
                .forward(&[id], &mut cache)
                .unwrap()
                .to_vec_f32()
                .unwrap();
            let (d, at) = max_diff(&step, &all[pos * vocab..(pos + 1) * vocab]);
            assert!(
                d <= tol,
                "{dtype:?} position {pos} token {at}: |diff| {d} > {tol}"
            );
            worst = worst.max(d);
        }
        eprintln!("cuda {dtype:?} prefill vs decode: worst |diff| {worst:.3e}");
    }
}

common::device_tests!(random_smollm2_matches_cpu);

/// Random weights (on a GPU: SmolLM2's shapes with 4 layers; on the emulated GPU a 2-layer
/// model of SmolLM2's structure with hidden size 64, GQA 4/2): the prompt's prefill (GEMM,
/// prefill attention) and one decode step (GEMV, split-KV decode attention) in f16 against the
/// CPU in f32.
fn random_smollm2_matches_cpu(dev: &Device) {
    let config = common::random_smollm2_config(dev);
    let cpu = Llama::random(&config, DType::F32, &Device::Cpu, 11).unwrap();
    let gpu = Llama::random(&config, DType::F16, dev, 11).unwrap();
    let run = |m: &Llama| {
        let mut cache = m.new_cache_with_capacity(16).unwrap();
        let prefill = m
            .forward(&PROMPT, &mut cache)
            .unwrap()
            .to_vec_f32()
            .unwrap();
        let decode = m.forward(&[42], &mut cache).unwrap().to_vec_f32().unwrap();
        (prefill, decode)
    };
    let (want, got) = (run(&cpu), run(&gpu));
    for (step, got, want) in [("prefill", &got.0, &want.0), ("decode", &got.1, &want.1)] {
        let (d, at) = max_diff(got, want);
        eprintln!(
            "random smollm2 ({} layers) {dev} f16 vs cpu f32, {step}: worst |diff| {d:.3e} at {at}",
            config.num_layers
        );
        assert!(got.iter().all(|v| v.is_finite()));
        assert!(d <= 0.05, "{step}: |diff| {d} at {at}");
    }
}
