//! The CUDA-graph decoder (`GraphDecoder`) on random SmolLM2-shaped models: replays equal the
//! eager one-token steps bit for bit, greedy tokens on the GPU (f32) equal the CPU's, and a
//! decode loop allocates nothing and synchronises once per token; `Generator` on CUDA (which
//! replays a graph) picks what eager steps pick, greedy and sampled, on the SmolLM2 fixture
//! (`$NANO_INFER_FIXTURE`, see `common::fixture_path`).
//!
//! GPU tests are `#[ignore = "needs a CUDA GPU"]`; on a GPU host:
//! `./decode_graph-* --include-ignored --nocapture`.
//!
//! Why exact equality holds: a replay runs the same kernels, in the same launch shapes, on the
//! same inputs as an eager step (the eager step also reads its position from device memory), so
//! logits agree to the bit. GPU f32 against CPU f32 differs by summation order only (~1e-6
//! on logits of O(0.5)), far below the typical gap between a random model's top two logits
//! (~0.1): the tokens are equal, except at a tie closer than `NEAR_TIE` (about one step in a
//! thousand), where the test reports the step and stops comparing.

mod common;

use std::ops::ControlFlow;

use nano_infer::generate::{GenerateConfig, Generator};
use nano_infer::sampler::argmax;
use nano_infer::tokenizer::Tokenizer;
use nano_infer::{
    DType, Device, Error, GraphDecoder, Llama, LlamaConfig, Sampler, SamplerConfig, Tensor, loaders,
};

const PROMPT: [u32; 5] = [504, 3575, 282, 4649, 314];
/// GPU f32 vs CPU f32 logits differ by summation order only (~1e-6 here); a greedy token may
/// differ only where the CPU's top two logits are closer than this.
const NEAR_TIE: f32 = 1e-4;

fn config(layers: usize) -> LlamaConfig {
    LlamaConfig {
        num_layers: layers,
        ..LlamaConfig::smollm2_135m()
    }
}

/// Eager greedy decoding: the prefill's token, then `steps` one-token forwards.
fn eager_greedy(model: &Llama, capacity: usize, steps: usize) -> (Vec<u32>, Vec<Vec<f32>>) {
    let mut cache = model.new_cache_with_capacity(capacity).unwrap();
    let mut logits = model
        .forward(&PROMPT, &mut cache)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    let (mut ids, mut all) = (vec![argmax(&logits)], Vec::new());
    for _ in 0..steps {
        logits = model
            .forward(&[*ids.last().unwrap()], &mut cache)
            .unwrap()
            .to_vec_f32()
            .unwrap();
        ids.push(argmax(&logits));
        all.push(logits);
    }
    (ids, all)
}

/// The same with the decode steps replayed from a graph; the first half returns logits
/// (host argmax), the second half samples on the device.
fn graph_greedy(model: &Llama, capacity: usize, steps: usize) -> (Vec<u32>, Vec<Vec<f32>>) {
    let mut cache = model.new_cache_with_capacity(capacity).unwrap();
    let logits = model
        .forward(&PROMPT, &mut cache)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    let mut decoder = GraphDecoder::new(model, &mut cache).expect("capture the decode step");
    let (mut ids, mut all) = (vec![argmax(&logits)], Vec::new());
    for step in 0..steps {
        let id = *ids.last().unwrap();
        if step < steps / 2 {
            let logits = decoder.step_logits(&mut cache, id).unwrap();
            ids.push(argmax(&logits));
            all.push(logits);
        } else {
            ids.push(decoder.step_greedy(&mut cache, id).unwrap());
        }
    }
    assert_eq!(cache.len(), PROMPT.len() + steps);
    (ids, all)
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn graph_replay_equals_eager_steps() {
    let gpu = common::gpu();
    for dtype in [DType::F16, DType::F32] {
        let model = Llama::random(&config(4), dtype, &gpu, 3).unwrap();
        let steps = 24;
        let (want_ids, want) = eager_greedy(&model, 64, steps);
        let (got_ids, got) = graph_greedy(&model, 64, steps);
        assert_eq!(got_ids, want_ids, "{dtype:?}: graph vs eager tokens");
        for (step, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(g == w, "{dtype:?}: logits of step {step} differ");
        }
        eprintln!(
            "{dtype:?}: {} graph steps equal the eager ones: {got_ids:?}",
            steps
        );
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn graph_greedy_on_gpu_f32_equals_the_cpu() {
    let gpu = common::gpu();
    let config = LlamaConfig::smollm2_135m();
    let steps = 32;
    let cpu = Llama::random(&config, DType::F32, &Device::Cpu, 7).unwrap();
    let (want, want_logits) = eager_greedy(&cpu, 64, steps);
    let cuda = Llama::random(&config, DType::F32, &gpu, 7).unwrap();
    // Same seed, same bits on both devices.
    let w = |m: &Llama| {
        m.layers[3]
            .mlp
            .down_proj
            .weight()
            .as_dense()
            .unwrap()
            .to_vec_f32()
            .unwrap()
    };
    assert_eq!(w(&cuda), w(&cpu), "random weights differ between devices");
    let (got, got_logits) = graph_greedy(&cuda, 64, steps);
    // got_logits[i] came from feeding ids[i]: comparable while ids[..=i] agree.
    let equal = got.iter().zip(&want).take_while(|(a, b)| a == b).count();
    let mut worst = 0.0f32;
    for (g, w) in got_logits.iter().zip(&want_logits).take(equal) {
        worst = g
            .iter()
            .zip(w)
            .map(|(a, b)| (a - b).abs())
            .fold(worst, f32::max);
    }
    if equal < got.len() {
        // Only a tie closer than summation-order noise may flip a token.
        let margin = (equal > 0)
            .then(|| &want_logits[equal - 1])
            .map_or(f32::INFINITY, |l| {
                l[want[equal] as usize] - l[got[equal] as usize]
            });
        eprintln!(
            "GPU greedy left the CPU's at step {equal}: {} vs {} (CPU margin {margin:.2e})",
            got[equal], want[equal]
        );
        assert!(
            margin <= NEAR_TIE,
            "not a near-tie: margin {margin} > {NEAR_TIE}"
        );
    }
    eprintln!(
        "random SmolLM2-135M f32: {equal} of {} greedy tokens equal, worst logit |diff| {worst:.2e}",
        got.len()
    );
    assert!(worst < 2e-3, "logits differ by {worst}");
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn graph_steps_allocate_nothing_and_sync_once() {
    let gpu = common::gpu();
    let Device::Cuda(backend) = &gpu else {
        unreachable!("common::gpu is a CUDA device")
    };
    let model = Llama::random(&config(4), DType::F16, &gpu, 5).unwrap();
    let mut cache = model.new_cache_with_capacity(256).unwrap();
    let logits = model
        .forward(&PROMPT, &mut cache)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    let mut decoder = GraphDecoder::new(&model, &mut cache).unwrap();
    let mut next = decoder.step_greedy(&mut cache, argmax(&logits)).unwrap();
    let (mem, syncs) = (backend.memory_stats(), backend.sync_count());
    let steps = 200;
    for _ in 0..steps {
        next = decoder.step_greedy(&mut cache, next).unwrap();
    }
    let after = backend.memory_stats();
    assert_eq!(
        after.allocations, mem.allocations,
        "allocations during decode"
    );
    assert_eq!(after.driver_allocations, mem.driver_allocations);
    assert_eq!(after.in_use, mem.in_use);
    assert_eq!(
        backend.sync_count() - syncs,
        steps,
        "one sync (the token) per step"
    );
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn graph_memory_is_not_handed_to_other_tensors() {
    // Eager work between replays (here a prefill of another sequence and random tensors held
    // across steps) must not be given the graph's buffers, nor disturb the decoded sequence.
    let gpu = common::gpu();
    let model = Llama::random(&config(2), DType::F16, &gpu, 9).unwrap();
    let (want, _) = eager_greedy(&model, 64, 12);
    let mut cache = model.new_cache_with_capacity(64).unwrap();
    let logits = model
        .forward(&PROMPT, &mut cache)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    let mut decoder = GraphDecoder::new(&model, &mut cache).unwrap();
    let mut ids = vec![argmax(&logits)];
    let mut held = Vec::new();
    for step in 0..12 {
        let mut other = model.new_cache_with_capacity(16).unwrap();
        let _ = model.forward(&[7, 8, 9], &mut other).unwrap();
        assert!(
            decoder.step_greedy(&mut other, 1).is_err(),
            "a graph replays only on the cache it was captured with"
        );
        held.push(Tensor::rand_uniform([1, 576], 1.0, step, DType::F16, &gpu).unwrap());
        let before: Vec<Vec<f32>> = held.iter().map(|t| t.to_vec_f32().unwrap()).collect();
        ids.push(
            decoder
                .step_greedy(&mut cache, *ids.last().unwrap())
                .unwrap(),
        );
        for (t, b) in held.iter().zip(&before) {
            assert_eq!(
                &t.to_vec_f32().unwrap(),
                b,
                "a replay wrote into a live tensor"
            );
        }
    }
    assert_eq!(ids, want);
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn generator_on_cuda_matches_eager_steps() {
    let gpu = common::gpu();
    let source = loaders::open(&common::fixture_path()).expect("open the fixture");
    let spec = source
        .tokenizer_spec()
        .unwrap()
        .expect("a GGUF with a tokenizer");
    let tokenizer = Tokenizer::from_spec(&spec).unwrap();
    let model = Llama::load(source.as_ref(), DType::F16, &gpu, 128).unwrap();
    let greedy = SamplerConfig::default();
    let sampled = SamplerConfig {
        temperature: 0.8,
        top_p: 0.95,
        seed: 5,
        ..SamplerConfig::default()
    };
    for sampler in [greedy, sampled] {
        let config = GenerateConfig {
            max_tokens: 24,
            stop: Vec::new(),
            sampler: sampler.clone(),
        };
        let mut generator = Generator::new(&model, &tokenizer).unwrap();
        let out = generator
            .generate(&PROMPT, &config, |_| ControlFlow::Continue(()))
            .unwrap();
        // The same sampler over eager one-token forwards.
        let mut reference = Sampler::new(sampler.clone()).unwrap();
        let mut cache = model.new_cache().unwrap();
        let mut logits = model
            .forward(&PROMPT, &mut cache)
            .unwrap()
            .to_vec_f32()
            .unwrap();
        let mut history = PROMPT.to_vec();
        let mut want = Vec::new();
        for _ in 0..out.ids.len() {
            let next = reference.sample(&logits, &history).unwrap();
            want.push(next);
            history.push(next);
            logits = model
                .forward(&[next], &mut cache)
                .unwrap()
                .to_vec_f32()
                .unwrap();
        }
        assert_eq!(out.ids, want, "{sampler:?}");
        eprintln!(
            "generate on CUDA ({sampler:?}): {} tokens as eager",
            want.len()
        );
    }
}

#[test]
fn graph_decoder_on_the_cpu_is_a_typed_error() {
    let model = Llama::random(&config(1), DType::F32, &Device::Cpu, 1).unwrap();
    let mut cache = model.new_cache_with_capacity(8).unwrap();
    let err = GraphDecoder::new(&model, &mut cache).unwrap_err();
    assert!(matches!(err, Error::GraphUnavailable { .. }), "{err}");
}

/// The fused one-token step (`LlamaLayer::decode_step`: norm, q/k/v, RoPE and the cache write
/// in one GEMV; the residual adds and the post-attention norm in the GEMVs around attention)
/// on the emulated GPU gives the CPU's logits, f32, on a small random model: the model-level
/// check of the fused decode kernels that CI runs.
#[test]
fn fused_decode_steps_on_the_emulator_match_the_cpu() {
    let config = LlamaConfig {
        vocab_size: 300,
        hidden_size: 128,
        intermediate_size: 192,
        num_layers: 2,
        num_heads: 4,
        num_kv_heads: 2,
        head_dim: 64,
        ..LlamaConfig::smollm2_135m()
    };
    let run = |device: &Device| {
        let model = Llama::random(&config, DType::F32, device, 5).unwrap();
        let mut cache = model.new_cache_with_capacity(16).unwrap();
        let prefill = model.forward(&[3, 141, 59, 26], &mut cache).unwrap();
        let mut all = prefill.to_vec_f32().unwrap();
        for id in [53, 58, 97, 93] {
            all.extend(
                model
                    .forward(&[id], &mut cache)
                    .unwrap()
                    .to_vec_f32()
                    .unwrap(),
            );
        }
        all
    };
    let (got, want) = (run(&common::emu()), run(&Device::Cpu));
    let worst = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        worst < 1e-3,
        "emulated fused decode vs CPU: logits differ by {worst}"
    );
}
