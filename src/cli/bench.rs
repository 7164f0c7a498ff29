//! `bench`: prefill and decode throughput of the full model.
//!
//! Prefill runs `--prompt-tokens` ids in one forward pass; decode then runs `--gen-tokens`
//! one-token steps (greedy). Each timing ends when the logits are on the host, so GPU work is
//! finished. Decode is bound by reading the weights once per token, so its rate is also shown
//! as weight GB/s (decimal). `--runs N` repeats both and reports the median; the process's peak
//! resident memory (VmHWM) is printed last.

use std::time::Instant;

use anyhow::bail;
use clap::{Args, ValueEnum};
use nano_infer::sampler::argmax;
use nano_infer::{Llama, LlamaConfig};

use super::ModelArgs;

/// Shapes of well-known models, for random-weight runs.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Preset {
    #[value(name = "smollm2-135m")]
    Smollm2_135m,
    #[value(name = "llama2-7b")]
    Llama2_7b,
    #[value(name = "llama3-8b")]
    Llama3_8b,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Random weights of this model's shapes instead of a model file.
    #[arg(long, value_enum)]
    config: Option<Preset>,
    /// Prompt length of the prefill.
    #[arg(long, default_value_t = 128)]
    prompt_tokens: usize,
    /// Decode steps.
    #[arg(long, default_value_t = 64)]
    gen_tokens: usize,
    /// Timed runs (prefill then decode, from an empty cache) after the warm-up; the median is
    /// reported.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Print one JSON line (every run's rates, the weight format, VmHWM) instead of text.
    #[arg(long)]
    json: bool,
    /// Seed of the random weights.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    model: ModelArgs,
}

pub fn bench(args: BenchArgs) -> anyhow::Result<()> {
    if args.prompt_tokens == 0 {
        bail!("--prompt-tokens must be at least 1");
    }
    let model = match args.config {
        None => args.model.load()?.0,
        Some(preset) => {
            let config = match preset {
                Preset::Smollm2_135m => LlamaConfig::smollm2_135m(),
                Preset::Llama2_7b => LlamaConfig::llama2_7b(),
                Preset::Llama3_8b => LlamaConfig::llama3_8b(),
            };
            let device = args.model.device()?;
            let dtype = args.model.dtype(&device)?;
            eprint!("random {preset:?} weights ({}, {device}) ...", dtype.name());
            let start = Instant::now();
            let model = Llama::random(&config, dtype, &device, args.seed)?;
            eprintln!(" {:.1} s", start.elapsed().as_secs_f64());
            model
        }
    };
    let needed = args.prompt_tokens + args.gen_tokens;
    if needed > model.max_seq() {
        bail!(
            "--prompt-tokens + --gen-tokens = {needed} exceeds the {} positions of the cache",
            model.max_seq()
        );
    }
    let vocab = model.config.vocab_size as u64;
    // Spread-out ids, the same on every run.
    let prompt: Vec<u32> = (0..args.prompt_tokens as u64)
        .map(|i| ((i * 7919 + 13) % vocab) as u32)
        .collect();

    // Warm-up: the first pass on a GPU loads kernels and fills the allocator's cache.
    let mut cache = model.new_cache()?;
    let warm = &prompt[..prompt.len().min(8)];
    let logits = model.forward(warm, &mut cache)?.to_vec_f32()?;
    model
        .forward(&[argmax(&logits)], &mut cache)?
        .to_vec_f32()?;
    cache.reset();

    let (mut prefill, mut decode) = (Vec::new(), Vec::new());
    for _ in 0..args.runs.max(1) {
        cache.reset();
        let start = Instant::now();
        let mut next = argmax(&model.forward(&prompt, &mut cache)?.to_vec_f32()?);
        prefill.push(start.elapsed().as_secs_f64());
        let start = Instant::now();
        for _ in 0..args.gen_tokens {
            next = argmax(&model.forward(&[next], &mut cache)?.to_vec_f32()?);
        }
        decode.push(start.elapsed().as_secs_f64());
    }
    let weights = if model.is_quantized() {
        "quantized".to_string()
    } else {
        model.dtype.name().to_string()
    };
    let hwm_kb = vm_hwm_kb();
    if args.json {
        let rates = |secs: &[f64], n: usize| -> Vec<String> {
            secs.iter()
                .map(|s| format!("{:.2}", n as f64 / s))
                .collect()
        };
        println!(
            "{{\"dtype\": \"{weights}\", \"threads\": {}, \"prefill\": [{}], \"decode\": [{}], \"vm_hwm_kb\": {}}}",
            rayon::current_num_threads(),
            rates(&prefill, args.prompt_tokens).join(", "),
            rates(&decode, args.gen_tokens).join(", "),
            hwm_kb.unwrap_or(0)
        );
        return Ok(());
    }
    let (prefill, decode) = (median(&mut prefill), median(&mut decode));
    let c = &model.config;
    println!(
        "model: {} layers, hidden {}, {} heads ({} KV), vocab {}; {weights} on {}, {} threads",
        c.num_layers,
        c.hidden_size,
        c.num_heads,
        c.num_kv_heads,
        c.vocab_size,
        model.device,
        rayon::current_num_threads()
    );
    println!(
        "prefill: {:>5} tokens in {:>8.3} s = {:>9.1} tokens/s",
        args.prompt_tokens,
        prefill,
        args.prompt_tokens as f64 / prefill
    );
    if args.gen_tokens > 0 {
        let per_token = decode / args.gen_tokens as f64;
        println!(
            "decode:  {:>5} tokens in {:>8.3} s = {:>9.1} tokens/s ({:.1} ms/token, {:.1} GB/s of weights)",
            args.gen_tokens,
            decode,
            1.0 / per_token,
            per_token * 1e3,
            model.weight_bytes() as f64 / per_token / 1e9
        );
    }
    if let Some(kb) = hwm_kb {
        println!(
            "peak resident memory (VmHWM, mapped file pages included): {:.1} MB",
            kb as f64 / 1e3
        );
    }
    Ok(())
}

/// The middle value (upper middle for an even count).
fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The process's peak resident set (`VmHWM` in `/proc/self/status`, kB), where Linux offers it.
fn vm_hwm_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
