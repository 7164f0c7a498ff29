//! The quantized CPU path (GGUF blocks kept as stored, 8-bit activations; `Llama::load_quantized`)
//! against the dequantized f32 path on the real SmolLM2 Q4_1 GGUF and the 8 reference prompts of
//! `tests/reference/`: teacher-forced on HF's greedy continuation, the two paths' top-1 tokens
//! agree on at least 30 of the 32 positions of every prompt. Agreement with HF and llama.cpp is
//! printed beside it (`cargo test --release --test quantized_cpu -- --nocapture`).
//!
//! Why 30/32 and not 32/32: rounding activations to 8 bits moves logits by ~0.1–1 (llama.cpp
//! does the same and differs from exact math as much), which flips near-ties.

mod common;

use common::reference::{ids, last_logits, load_json, max_abs_diff};
use nano_infer::loaders;
use nano_infer::sampler::argmax;
use nano_infer::{DType, Device, Llama};

const GREEDY: usize = 32;
const MIN_AGREE: usize = 30;

/// Top-1 of the `GREEDY` positions that predict `continuation` after `prompt`, in one pass.
fn teacher_forced(model: &Llama, prompt: &[u32], continuation: &[u32]) -> Vec<u32> {
    let mut all = prompt.to_vec();
    all.extend(continuation);
    let mut cache = model.new_cache().unwrap();
    let logits = model
        .forward_all(&all, &mut cache)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    let vocab = model.config.vocab_size;
    (0..GREEDY)
        .map(|t| argmax(&logits[(prompt.len() - 1 + t) * vocab..][..vocab]))
        .collect()
}

fn agree(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).filter(|(x, y)| x == y).count()
}

#[test]
fn quantized_path_agrees_with_f32_path() {
    let hf = load_json("hf_f32.json");
    let lc = load_json("llamacpp.json");
    let source = loaders::open(&common::model_path()).expect("open the GGUF");
    let dense = Llama::load(source.as_ref(), DType::F32, &Device::Cpu, 512).expect("load f32");
    let quant = Llama::load_quantized(source.as_ref(), &Device::Cpu, 512, |_, _| {})
        .expect("load quantized");
    assert!(quant.is_quantized() && !dense.is_quantized());
    assert!(
        quant.weight_bytes() * 4 < dense.weight_bytes(),
        "blocks, not f32"
    );

    let mut failures = Vec::new();
    eprintln!(
        "prompt            tokens  quant==f32  quant==HF  f32==HF  quant==llama.cpp  \
         last |dlogit| quant-HF  llama.cpp-HF"
    );
    let cases = hf["cases"].as_array().unwrap().iter();
    for (h, l) in cases.zip(lc["cases"].as_array().unwrap()) {
        let name = h["name"].as_str().unwrap_or("?");
        let prompt = ids(&h["prompt_ids"]);
        let hf_greedy = ids(&h["greedy_ids"]);
        let lc_tf = ids(&l["teacher_forced"]["top1"]);
        let q = teacher_forced(&quant, &prompt, &hf_greedy);
        let f = teacher_forced(&dense, &prompt, &hf_greedy);
        let qf = agree(&q, &f);
        let mut cache = quant.new_cache().unwrap();
        let last = quant
            .forward(&prompt, &mut cache)
            .unwrap()
            .to_vec_f32()
            .unwrap();
        let hf_last = last_logits(h);
        eprintln!(
            "{name:17} {:6}  {qf:7}/32  {:6}/32  {:4}/32  {:13}/32  {:22.3}  {:12.3}",
            prompt.len(),
            agree(&q, &hf_greedy),
            agree(&f, &hf_greedy),
            agree(&q, &lc_tf),
            max_abs_diff(&last, &hf_last),
            max_abs_diff(&last_logits(l), &hf_last),
        );
        if qf < MIN_AGREE {
            failures.push(format!("{name}: quantized vs f32 top-1 agreement {qf}/32"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn quantized_decode_matches_quantized_prefill() {
    // One pass over n tokens and n one-token steps give the same next token and close last
    // logits. Not bit for bit: many rows take other kernels than one (attention as gemm vs
    // gemv, Q4 products summed over groups of 4 activation rows), which round differently,
    // and the 8-bit activation rounding now and then turns a last-bit difference into a
    // different 8-bit value, which 30 layers carry to the logits. That moves them by about the
    // quantized path's own error against f32 (0.3-0.9 on the reference prompts, llama.cpp's
    // 0.4-0.7; `quantized_path_agrees_with_f32_path` prints them); measured here: 0.60.
    let source = loaders::open(&common::model_path()).expect("open the GGUF");
    let model = Llama::load_quantized(source.as_ref(), &Device::Cpu, 64, |_, _| {})
        .expect("load quantized");
    let prompt = [504u32, 3575, 282, 4649, 314, 253, 1345];
    let mut cache = model.new_cache().unwrap();
    let once = model
        .forward(&prompt, &mut cache)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    let mut cache = model.new_cache().unwrap();
    let mut steps = Vec::new();
    for &id in &prompt {
        steps = model
            .forward(&[id], &mut cache)
            .unwrap()
            .to_vec_f32()
            .unwrap();
    }
    let diff = once
        .iter()
        .zip(&steps)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(diff < 1.5, "prefill vs decode last logits differ by {diff}");
    assert_eq!(argmax(&once), argmax(&steps));
}
