//! End to end on the CPU in f32 with the real SmolLM2-135M-Instruct (Q4_1 GGUF, dequantized at
//! load): fluent greedy text, prefill == token-by-token decode (the KV cache and RoPE offsets),
//! context overflow, prefix reuse and stop strings, random weights, seeded sampling.
//!
//! Needs the model: `$NANO_INFER_GGUF`, else `~/.cache/nano-infer/SmolLM2-135M-Instruct.Q4_1.gguf`
//! (`cargo run --release -- fetch`). Run in release: `cargo test --release --test llama_cpu`.

mod common;

use std::ops::ControlFlow;
use std::sync::OnceLock;

use nano_infer::generate::{GenerateConfig, Generator, StopReason};
use nano_infer::loaders;
use nano_infer::sampler::argmax;
use nano_infer::tokenizer::Tokenizer;
use nano_infer::{DType, Device, Error, Llama, LlamaConfig, SamplerConfig};

/// Positions of the shared model's RoPE table (the tests' caches are at most this long).
const MAX_SEQ: usize = 64;

/// The model and tokenizer, loaded once for all tests of this binary.
fn smollm2() -> &'static (Llama, Tokenizer) {
    static MODEL: OnceLock<(Llama, Tokenizer)> = OnceLock::new();
    MODEL.get_or_init(|| {
        let source = loaders::open(&common::model_path()).expect("open the GGUF");
        let spec = source
            .tokenizer_spec()
            .unwrap()
            .expect("the GGUF has a tokenizer");
        let tokenizer = Tokenizer::from_spec(&spec).expect("tokenizer");
        let model = Llama::load(source.as_ref(), DType::F32, &Device::Cpu, MAX_SEQ).expect("load");
        (model, tokenizer)
    })
}

fn greedy(max_tokens: usize) -> GenerateConfig {
    GenerateConfig {
        max_tokens,
        ..GenerateConfig::default()
    }
}

fn no_print(_: &str) -> ControlFlow<()> {
    ControlFlow::Continue(())
}

/// Largest |a - b| and where.
fn max_diff(a: &[f32], b: &[f32]) -> (f32, usize) {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .enumerate()
        .map(|(i, (x, y))| ((x - y).abs(), i))
        .fold((0.0, 0), |m, d| if d.0 > m.0 { d } else { m })
}

#[test]
fn greedy_continuation_is_fluent_and_streams() {
    let (model, tok) = smollm2();
    let prompt = tok.encode("The capital of France is", true).unwrap();
    assert_eq!(
        prompt,
        [504, 3575, 282, 4649, 314],
        "HF's ids for the prompt"
    );
    let mut generator = Generator::new(model, tok).unwrap();
    let mut streamed = String::new();
    let out = generator
        .generate(&prompt, &greedy(16), |t| {
            streamed.push_str(t);
            ControlFlow::Continue(())
        })
        .unwrap();
    eprintln!("greedy: {:?} ({:?})", out.text, out.stop);
    assert!(out.text.contains("Paris"), "{:?}", out.text);
    assert_eq!(streamed, out.text);
    assert_eq!(out.ids.len(), 16);
    assert_eq!(out.stop, StopReason::MaxTokens);
    assert_eq!(out.stats.prompt_tokens, 5);
    assert_eq!(out.stats.decode_steps, 15);

    // The same prompt again with a stop string: all but the last prompt token come from the
    // cache, and the text stops right before the first ".".
    let config = GenerateConfig {
        stop: vec![".".into()],
        ..greedy(16)
    };
    let again = generator.generate(&prompt, &config, no_print).unwrap();
    assert_eq!(again.stats.reused_tokens, 4);
    assert_eq!(again.stats.prompt_tokens, 1);
    assert_eq!(again.stop, StopReason::StopString);
    assert_eq!(again.text, " Paris");
}

#[test]
fn prefill_logits_equal_token_by_token_decode() {
    let (model, tok) = smollm2();
    let ids = tok.encode("One, two, three, four", true).unwrap();
    let n = ids.len();
    let vocab = model.config.vocab_size;

    let mut cache = model.new_cache().unwrap();
    let all = model.forward_all(&ids, &mut cache).unwrap();
    assert_eq!(all.dims(), &[n, vocab]);
    assert_eq!(cache.len(), n);
    let all = all.to_vec_f32().unwrap();

    // One token at a time, and a split prefill (3 ids, then the rest), must agree with it.
    let mut cache = model.new_cache().unwrap();
    let mut split = model.new_cache().unwrap();
    model.forward(&ids[..3], &mut split).unwrap();
    let tail = model.forward_all(&ids[3..], &mut split).unwrap();
    let tail = tail.to_vec_f32().unwrap();
    let mut worst = (0.0f32, 0, 0);
    for (pos, &id) in ids.iter().enumerate() {
        let step = model
            .forward(&[id], &mut cache)
            .unwrap()
            .to_vec_f32()
            .unwrap();
        let want = &all[pos * vocab..(pos + 1) * vocab];
        let (d, at) = max_diff(&step, want);
        if d > worst.0 {
            worst = (d, pos, at);
        }
        assert_eq!(argmax(&step), argmax(want), "position {pos}");
        if pos >= 3 {
            let (d, at) = max_diff(&tail[(pos - 3) * vocab..(pos - 2) * vocab], want);
            assert!(
                d < 1e-3,
                "split prefill, position {pos}, token {at}: |diff| {d}"
            );
        }
    }
    eprintln!(
        "prefill vs decode: worst |diff| {:.2e} at position {}, token {}",
        worst.0, worst.1, worst.2
    );
    assert!(worst.0 < 1e-3, "worst |diff| {worst:?}");
}

#[test]
fn context_overflow_is_an_error_and_leaves_the_cache_intact() {
    let (model, tok) = smollm2();
    let ids = tok.encode("a b c d e f g", false).unwrap();
    assert_eq!(ids.len(), 7);
    let mut cache = model.new_cache_with_capacity(6).unwrap();
    model.forward(&ids[..4], &mut cache).unwrap();
    let err = model.forward(&ids[4..7], &mut cache).unwrap_err();
    assert!(
        matches!(
            err,
            Error::ContextOverflow {
                needed: 7,
                capacity: 6
            }
        ),
        "{err}"
    );
    assert_eq!(cache.len(), 4);
    // The refused call wrote nothing: continuing gives the logits of an uninterrupted run.
    let after = model.forward(&ids[4..6], &mut cache).unwrap();
    let mut fresh = model.new_cache().unwrap();
    let want = model.forward(&ids[..6], &mut fresh).unwrap();
    let (d, _) = max_diff(&after.to_vec_f32().unwrap(), &want.to_vec_f32().unwrap());
    assert!(d < 1e-3, "|diff| {d}");
    assert!(matches!(
        model.forward(&ids[6..7], &mut cache),
        Err(Error::ContextOverflow { .. })
    ));
    // Past the RoPE table (a cache bigger than the model's max_seq) is refused the same way.
    let mut big = model.new_cache_with_capacity(MAX_SEQ + 4).unwrap();
    let long = vec![ids[0]; MAX_SEQ + 1];
    assert!(matches!(
        model.forward(&long, &mut big),
        Err(Error::ContextOverflow { .. })
    ));
    assert!(big.is_empty());
    // Bad input is an error, not a panic.
    assert!(model.forward(&[], &mut big).is_err());
    assert!(model.forward(&[u32::MAX], &mut big).is_err());
}

#[test]
fn generation_stops_cleanly_when_the_context_is_full() {
    let (model, tok) = smollm2();
    let prompt = tok.encode("The capital of France is", true).unwrap();
    let cache = model.new_cache_with_capacity(8).unwrap();
    let mut generator = Generator::with_cache(model, tok, cache);
    let out = generator.generate(&prompt, &greedy(100), no_print).unwrap();
    assert_eq!(out.stop, StopReason::ContextFull);
    // 5 prompt positions + 3 decode steps fill 8; the token sampled from the last is kept.
    assert_eq!(generator.cache().len(), 8);
    assert_eq!(out.ids.len(), 4);
    let long = vec![prompt[0]; 9];
    assert!(matches!(
        generator.generate(&long, &greedy(1), no_print),
        Err(Error::ContextOverflow { .. })
    ));
}

#[test]
fn seeded_sampling_is_reproducible() {
    let (model, tok) = smollm2();
    let prompt = tok.encode("Once upon a time", true).unwrap();
    let config = GenerateConfig {
        max_tokens: 6,
        sampler: SamplerConfig {
            temperature: 0.9,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.02,
            repetition_penalty: 1.1,
            seed: 1234,
        },
        ..GenerateConfig::default()
    };
    let mut generator = Generator::new(model, tok).unwrap();
    let first = generator.generate(&prompt, &config, no_print).unwrap();
    generator.reset();
    let second = generator.generate(&prompt, &config, no_print).unwrap();
    eprintln!("sampled: {:?}", first.text);
    assert_eq!(first.ids, second.ids);
    let bad = GenerateConfig {
        sampler: SamplerConfig {
            top_p: 0.0,
            ..config.sampler
        },
        ..config
    };
    assert!(matches!(
        generator.generate(&prompt, &bad, no_print),
        Err(Error::InvalidArgument { .. })
    ));
}

#[test]
fn random_weights_with_the_smollm2_config_run() {
    let config = LlamaConfig::smollm2_135m();
    let model = Llama::random(&config, DType::F32, &Device::Cpu, 5).unwrap();
    let mut cache = model.new_cache_with_capacity(8).unwrap();
    let logits = model.forward(&[1, 2, 3, 4], &mut cache).unwrap();
    assert_eq!(logits.dims(), &[config.vocab_size]);
    let values = logits.to_vec_f32().unwrap();
    assert!(values.iter().all(|v| v.is_finite()));
    let next = model.forward(&[argmax(&values)], &mut cache).unwrap();
    assert!(next.to_vec_f32().unwrap().iter().all(|v| v.is_finite()));
    assert_eq!(cache.len(), 5);
}

#[test]
fn fixture_is_the_first_layers_of_the_model() {
    use nano_infer::loaders::WeightSource;
    use nano_infer::loaders::gguf::{GgufFile, truncate_layers};
    let (model, _) = smollm2();
    let full = GgufFile::open(&common::model_path()).unwrap();
    let path = std::env::temp_dir().join(format!("nano-infer-fixture-{}.gguf", std::process::id()));
    truncate_layers(&full, 2).unwrap().write(&path).unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    let cut = GgufFile::open(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(size <= 40_000_000, "{size} bytes");
    assert_eq!(cut.llama_config().unwrap().num_layers, 2);
    assert!(truncate_layers(&full, 0).is_err());
    assert_eq!(
        cut.tokenizer_spec().unwrap().unwrap().tokens,
        full.tokenizer_spec().unwrap().unwrap().tokens
    );
    for name in [
        "model.embed_tokens.weight",
        "model.layers.1.mlp.down_proj.weight",
    ] {
        assert_eq!(
            cut.raw_bytes(name).unwrap(),
            full.raw_bytes(name).unwrap(),
            "{name}"
        );
    }
    assert!(
        cut.tensor_info("model.layers.2.mlp.down_proj.weight")
            .is_none()
    );

    // The 2-layer file computes exactly what the full model's first two layers do.
    let small = Llama::load(&cut, DType::F32, &Device::Cpu, 8).unwrap();
    let mut first_two = model.clone();
    first_two.layers.truncate(2);
    let ids = [504, 3575, 282];
    let run = |m: &Llama| {
        let mut cache = m.new_cache_with_capacity(8).unwrap();
        m.forward(&ids, &mut cache).unwrap().to_vec_f32().unwrap()
    };
    assert_eq!(run(&small), run(&first_two));
}
