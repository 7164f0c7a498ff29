//! The f32 CPU path against two independent implementations on the real SmolLM2 GGUF, with the
//! reference data of `tests/reference/` (made by `scripts/reference_outputs.py`; see its README):
//!
//! - HF transformers float32 (exact math): last-position logits within 2e-2 over the whole
//!   vocabulary, teacher-forced top-1 agreement >= 31/32 on every prompt, free-running greedy
//!   identical for all 32 tokens on at least 6 of the 8 prompts;
//! - llama.cpp (8-bit activations inside its quantized matmuls, so ~1 logit off exact math):
//!   teacher-forced top-1 agreement >= 29/32 on every prompt, last logits within 1.5.
//!
//! A summary table goes to stderr (`cargo test --release --test reference_outputs -- --nocapture`).

mod common;

use common::reference::{ids, last_logits, load_json, max_abs_diff};
use nano_infer::loaders;
use nano_infer::sampler::argmax;
use nano_infer::{DType, Device, Llama};
use serde_json::Value;

const GREEDY: usize = 32;

#[test]
fn f32_cpu_path_matches_hf_and_llama_cpp() {
    let hf = load_json("hf_f32.json");
    let lc = load_json("llamacpp.json");
    let source = loaders::open(&common::model_path()).expect("open the GGUF");
    let model = Llama::load(source.as_ref(), DType::F32, &Device::Cpu, 512).expect("load");
    let (hf_cases, lc_cases) = (
        hf["cases"].as_array().unwrap(),
        lc["cases"].as_array().unwrap(),
    );
    assert_eq!(hf_cases.len(), 8, "eight reference prompts");

    let mut identical_runs = 0;
    let mut failures = Vec::new();
    eprintln!(
        "prompt            tokens  |dlogit| HF  TF HF  greedy==HF (first split, HF margin)  |dlogit| llama.cpp  TF llama.cpp"
    );
    for (h, l) in hf_cases.iter().zip(lc_cases) {
        let name = h["name"].as_str().unwrap_or("?").to_string();
        let prompt = ids(&h["prompt_ids"]);
        assert_eq!(
            prompt,
            ids(&l["prompt_ids"]),
            "{name}: both engines saw the same ids"
        );
        let hf_greedy = ids(&h["greedy_ids"]);

        // Last-position logits of the prompt.
        let mut cache = model.new_cache().unwrap();
        let last = model
            .forward(&prompt, &mut cache)
            .unwrap()
            .to_vec_f32()
            .unwrap();
        let (d_hf, d_lc) = (
            max_abs_diff(&last, &last_logits(h)),
            max_abs_diff(&last, &last_logits(l)),
        );

        // Teacher forcing on HF's greedy tokens, one pass.
        let mut all = prompt.clone();
        all.extend(&hf_greedy);
        let mut cache = model.new_cache().unwrap();
        let logits = model
            .forward_all(&all, &mut cache)
            .unwrap()
            .to_vec_f32()
            .unwrap();
        let vocab = logits.len() / all.len();
        let ours_tf: Vec<u32> = (0..GREEDY)
            .map(|t| argmax(&logits[(prompt.len() - 1 + t) * vocab..][..vocab]))
            .collect();
        let lc_tf: Vec<u32> = l["teacher_forced"]["top1"]
            .as_array()
            .map(|a| ids(&Value::Array(a.clone())))
            .unwrap_or_default();
        let tf_hf = ours_tf
            .iter()
            .zip(&hf_greedy)
            .filter(|(a, b)| a == b)
            .count();
        let tf_lc = ours_tf.iter().zip(&lc_tf).filter(|(a, b)| a == b).count();

        // Free-running greedy.
        let mut cache = model.new_cache().unwrap();
        let mut next = argmax(
            &model
                .forward(&prompt, &mut cache)
                .unwrap()
                .to_vec_f32()
                .unwrap(),
        );
        let mut ours = Vec::with_capacity(GREEDY);
        for _ in 0..GREEDY {
            ours.push(next);
            if ours.len() < GREEDY {
                next = argmax(
                    &model
                        .forward(&[next], &mut cache)
                        .unwrap()
                        .to_vec_f32()
                        .unwrap(),
                );
            }
        }
        let split = ours.iter().zip(&hf_greedy).position(|(a, b)| a != b);
        let margins = h["greedy_margin"].as_array().cloned().unwrap_or_default();
        let split_note = match split {
            None => "identical".to_string(),
            Some(t) => format!(
                "parts at {t} (margin {:.3})",
                margins.get(t).and_then(Value::as_f64).unwrap_or(f64::NAN)
            ),
        };
        identical_runs += split.is_none() as usize;
        eprintln!(
            "{name:17} {:6}  {d_hf:11.2e}  {tf_hf:2}/32  {split_note:35}  {d_lc:17.3}  {tf_lc:2}/32",
            prompt.len()
        );
        if d_hf > 2e-2 {
            failures.push(format!("{name}: last logits differ from HF by {d_hf}"));
        }
        if tf_hf < 31 {
            failures.push(format!(
                "{name}: teacher-forced agreement with HF {tf_hf}/32"
            ));
        }
        if tf_lc < 29 {
            failures.push(format!(
                "{name}: teacher-forced agreement with llama.cpp {tf_lc}/32"
            ));
        }
        if d_lc > 1.5 {
            failures.push(format!(
                "{name}: last logits differ from llama.cpp by {d_lc}"
            ));
        }
    }
    eprintln!("free-running greedy identical to HF on {identical_runs}/8 prompts");
    if identical_runs < 6 {
        failures.push(format!(
            "greedy identical to HF on only {identical_runs}/8 prompts"
        ));
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
