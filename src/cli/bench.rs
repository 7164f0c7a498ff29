//! `bench`: prefill and decode throughput of the full model, on a model file or on random
//! weights of a named model's shapes made directly on the device (no 13 GB file needed).
//!
//! - Prefill: one forward pass of N ids (each of `--prefill-tokens`) into an empty cache, timed
//!   until the logits are on the host; shown as tokens/s and effective TFLOP/s (the layers'
//!   GEMMs and causal attention).
//! - Decode: after an eager prefill to each of `--contexts`, `--gen-tokens` greedy one-token
//!   steps, timed end to end (launch, GPU, reading the token back). On CUDA the steps replay one
//!   captured CUDA graph (`GraphDecoder`), or run eagerly with `--eager` or where capture is
//!   unavailable. Decode reads every weight and the KV cache once per token, so each rate is
//!   also shown as GB/s — the model's weight bytes plus the cache bytes read at that context —
//!   against the device-to-device copy bandwidth measured in the same run.
//!
//! Each is timed `--runs` times (after an untimed run) and the median reported; `--json` prints
//! every run's rates as one JSON line instead (`scripts/bench_vs_llamacpp.py` reads it). The
//! process's peak resident memory (VmHWM) is reported last.

use std::time::Instant;

use anyhow::bail;
use clap::{Args, ValueEnum};
use nano_infer::functional::LinearWeight;
use nano_infer::sampler::argmax;
use nano_infer::{Device, Error, GraphDecoder, KvCache, Llama, LlamaConfig, Tensor};

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
    /// Random weights of this model's shapes (made on the device) instead of a model file.
    #[arg(long, value_enum)]
    config: Option<Preset>,
    /// Prompt lengths of the prefill runs (comma-separated; 0: none).
    #[arg(long, value_delimiter = ',', default_values_t = [512, 2048])]
    prefill_tokens: Vec<usize>,
    /// Context lengths at which decode is measured (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [128, 2048])]
    contexts: Vec<usize>,
    /// Decode steps timed at each context.
    #[arg(long, default_value_t = 128)]
    gen_tokens: usize,
    /// Timed runs of each prefill and decode measurement; the median is reported.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Print one JSON line (every run's rates, the weight format, VmHWM) instead of text.
    #[arg(long)]
    json: bool,
    /// Decode with eager launches even where a CUDA graph can be captured.
    #[arg(long)]
    eager: bool,
    /// Seed of the random weights.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    model: ModelArgs,
}

/// Spread-out ids, the same on every run.
fn ids(n: usize, vocab: usize) -> Vec<u32> {
    (0..n as u64)
        .map(|i| ((i * 7919 + 13) % vocab as u64) as u32)
        .collect()
}

pub fn bench(args: BenchArgs) -> anyhow::Result<()> {
    let (model, what) = match args.config {
        None => (args.model.load()?.0, "model file".to_string()),
        Some(preset) => {
            let config = match preset {
                Preset::Smollm2_135m => LlamaConfig::smollm2_135m(),
                Preset::Llama2_7b => LlamaConfig::llama2_7b(),
                Preset::Llama3_8b => LlamaConfig::llama3_8b(),
            };
            let device = args.model.device()?;
            let dtype = args.model.dtype(&device)?;
            let start = Instant::now();
            let model = args
                .model
                .quantize(Llama::random(&config, dtype, &device, args.seed)?)?;
            device_sync(&model.device)?;
            let name = preset.to_possible_value().map(|v| v.get_name().to_string());
            let made = format!(
                "random {} weights made on {device} in {:.1} s",
                name.unwrap_or_default(),
                start.elapsed().as_secs_f64()
            );
            (model, made)
        }
    };
    let longest_prefill = args.prefill_tokens.iter().copied().max().unwrap_or(0);
    let longest_decode = args
        .contexts
        .iter()
        .max()
        .map_or(0, |&c| c.max(1) + args.gen_tokens + 2);
    let needed = longest_prefill.max(longest_decode);
    if needed > model.max_seq() {
        bail!(
            "the runs need {needed} positions, the model holds {} (lower --contexts, --gen-tokens or --prefill-tokens)",
            model.max_seq()
        );
    }
    let weights = weights_label(&model);
    let c = &model.config;
    let device_name = match &model.device {
        Device::Cpu => format!("the CPU ({} threads)", rayon::current_num_threads()),
        Device::Cuda(b) => format!("{} ({})", model.device, b.name()),
    };
    // Text lines go out as they are measured; with --json, only the JSON line at the end.
    let text = !args.json;
    if text {
        println!(
            "model: {} layers, hidden {}, {} heads ({} KV) of {}, vocab {}; {weights} on {device_name} ({what})",
            c.num_layers, c.hidden_size, c.num_heads, c.num_kv_heads, c.head_dim, c.vocab_size,
        );
    }
    let kv_per_position =
        2 * c.num_layers * c.num_kv_heads * c.head_dim * model.dtype.size_in_bytes();
    // What the allocator holds now is the model (weights and RoPE tables), as allocated.
    let allocated = match &model.device {
        Device::Cuda(b) => format!(
            " ({:.3} GB allocated on the device)",
            b.memory_stats().in_use as f64 / 1e9
        ),
        Device::Cpu => String::new(),
    };
    let copy = copy_bandwidth(&model.device)?;
    if text {
        println!(
            "bytes read per decode token: weights {:.3} GB{allocated} + KV cache {:.1} KB per position of context",
            model.weight_bytes() as f64 / 1e9,
            kv_per_position as f64 / 1e3
        );
        if let Some(gbs) = copy {
            println!("copy bandwidth (device to device, 1 GiB): {gbs:.0} GB/s");
        }
    }

    let runs = args.runs.max(1);
    let (mut prefill_json, mut decode_json) = (Vec::new(), Vec::new());
    let mut cache = model.new_cache_with_capacity(longest_prefill.max(16))?;
    warm_up(&model, &mut cache)?;
    for &n in args.prefill_tokens.iter().filter(|&&n| n > 0) {
        let mut secs = prefill(&model, &mut cache, n, runs)?;
        if text {
            print_prefill(c, n, median(&mut secs));
        }
        prefill_json.push(format!(
            "{{\"tokens\": {n}, \"tokens_per_s\": [{}]}}",
            rates(&secs, n)
        ));
    }
    drop(cache);
    let steps = args.gen_tokens;
    for &context in &args.contexts {
        let mut secs = Vec::with_capacity(runs);
        let mut timed = None;
        for _ in 0..runs {
            let (mode, s, bytes) = decode(&model, context, &args, kv_per_position)?;
            secs.push(s);
            timed = Some((mode, bytes));
        }
        let Some((mode, bytes)) = timed.filter(|_| steps > 0) else {
            continue;
        };
        if text {
            print_decode(context, steps, mode, median(&mut secs), bytes, copy);
        }
        decode_json.push(format!(
            "{{\"context\": {context}, \"mode\": \"{mode}\", \"tokens_per_s\": [{}]}}",
            rates(&secs, steps)
        ));
    }
    let hwm_kb = vm_hwm_kb();
    if args.json {
        println!(
            "{{\"dtype\": \"{weights}\", \"threads\": {}, \"prefill\": [{}], \"decode\": [{}], \"vm_hwm_kb\": {}}}",
            rayon::current_num_threads(),
            prefill_json.join(", "),
            decode_json.join(", "),
            hwm_kb.unwrap_or(0)
        );
    } else if let Some(kb) = hwm_kb {
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

/// Each run's `n / secs`, as a JSON list's items.
fn rates(secs: &[f64], n: usize) -> String {
    let r: Vec<String> = secs
        .iter()
        .map(|s| format!("{:.2}", n as f64 / s))
        .collect();
    r.join(", ")
}

/// The process's peak resident set (`VmHWM` in `/proc/self/status`, kB), where Linux offers it.
fn vm_hwm_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Waits for the device's queued work (a no-op on the CPU).
fn device_sync(device: &Device) -> nano_infer::Result<()> {
    match device {
        Device::Cpu => Ok(()),
        Device::Cuda(b) => b.synchronize(),
    }
}

/// Device-to-device copy of 1 GiB, median of 10: GB/s counting the bytes read and written.
fn copy_bandwidth(device: &Device) -> anyhow::Result<Option<f64>> {
    let Device::Cuda(b) = device else {
        return Ok(None);
    };
    let bytes = 1usize << 30;
    let src = Tensor::zeros([bytes / 2], nano_infer::DType::F16, device)?;
    let dst = Tensor::zeros([bytes / 2], nano_infer::DType::F16, device)?;
    let (s, d) = (src.device_ptr(), dst.device_ptr());
    let (Some(s), Some(d)) = (s, d) else {
        bail!("CUDA tensors without device addresses");
    };
    // SAFETY: both tensors hold `bytes` bytes.
    let ms = b.time_median_ms(3, 10, || unsafe { b.copy_device(d, s, bytes) })?;
    Ok(Some(2.0 * bytes as f64 / (ms * 1e-3) / 1e9))
}

/// The first passes load kernels, fill the allocator's cache and pick cuBLAS algorithms.
fn warm_up(model: &Llama, cache: &mut KvCache) -> anyhow::Result<()> {
    cache.reset();
    let logits = model.forward(&ids(8, model.config.vocab_size), cache)?;
    let next = argmax(&logits.to_vec_f32()?);
    model.forward(&[next], cache)?.to_vec_f32()?;
    cache.reset();
    Ok(())
}

/// Times `runs` prefills of `n` tokens (after an untimed one of the same length): the seconds of
/// each.
fn prefill(model: &Llama, cache: &mut KvCache, n: usize, runs: usize) -> anyhow::Result<Vec<f64>> {
    let prompt = ids(n, model.config.vocab_size);
    let mut run = || -> anyhow::Result<f64> {
        cache.reset();
        let start = Instant::now();
        model.forward(&prompt, cache)?.to_vec_f32()?;
        Ok(start.elapsed().as_secs_f64())
    };
    run()?;
    let secs = (0..runs).map(|_| run()).collect();
    cache.reset();
    secs
}

fn print_prefill(c: &LlamaConfig, n: usize, secs: f64) {
    // The layers' GEMMs (2 FLOPs per weight per token) and causal attention (QKᵀ and PV over
    // half the n² pairs, 2 FLOPs each), plus the LM head on the last token.
    let (q_dim, kv_dim) = (c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim);
    let per_layer =
        c.hidden_size * (2 * q_dim + 2 * kv_dim) + 3 * c.hidden_size * c.intermediate_size;
    let weights = c.num_layers * per_layer;
    let attention = 2 * 2 * c.num_layers * c.num_heads * c.head_dim * n * (n + 1) / 2;
    let flops = 2 * weights * n + attention + 2 * c.vocab_size * c.hidden_size;
    println!(
        "prefill {n:>5} tokens: {:>8.4} s = {:>9.1} tokens/s ({:.2} TFLOP/s effective)",
        secs,
        n as f64 / secs,
        flops as f64 / secs / 1e12
    );
}

/// Fills a cache sized to the run (as the torch anchor sizes its own) to `context` positions
/// eagerly, then times `gen_tokens` greedy steps: (mode, seconds, bytes read per step).
fn decode(
    model: &Llama,
    context: usize,
    args: &BenchArgs,
    kv_per_position: usize,
) -> anyhow::Result<(&'static str, f64, f64)> {
    let steps = args.gen_tokens;
    let prompt = ids(context.max(1), model.config.vocab_size);
    let mut cache = model.new_cache_with_capacity(prompt.len() + steps + 2)?;
    let cache = &mut cache;
    let mut next = argmax(&model.forward(&prompt, cache)?.to_vec_f32()?);
    let graph = if args.eager || model.device.is_cpu() {
        None
    } else {
        match GraphDecoder::new(model, cache) {
            Ok(d) => Some(d),
            Err(Error::GraphUnavailable { reason }) => {
                eprintln!("decode: no CUDA graph ({reason}); eager steps");
                None
            }
            Err(e) => return Err(e.into()),
        }
    };
    let (mode, secs) = match graph {
        Some(mut decoder) => {
            // Two untimed replays (the first ones pay for uploading the graph).
            for _ in 0..2 {
                next = decoder.step_greedy(cache, next)?;
            }
            let start = Instant::now();
            for _ in 0..steps {
                next = decoder.step_greedy(cache, next)?;
            }
            ("graph", start.elapsed().as_secs_f64())
        }
        None => {
            let start = Instant::now();
            for _ in 0..steps {
                next = argmax(&model.forward(&[next], cache)?.to_vec_f32()?);
            }
            ("eager", start.elapsed().as_secs_f64())
        }
    };
    // The cache read per step grows with the context: take the mean over the timed steps.
    let mean_context = (cache.len() - steps / 2) as f64;
    let bytes = model.weight_bytes() as f64 + kv_per_position as f64 * mean_context;
    Ok((mode, secs, bytes))
}

fn print_decode(
    context: usize,
    steps: usize,
    mode: &str,
    secs: f64,
    bytes: f64,
    copy: Option<f64>,
) {
    let per_token = secs / steps as f64;
    let gbs = bytes / per_token / 1e9;
    let of_copy = copy.map_or(String::new(), |c| {
        format!(" = {:.0}% of copy", 100.0 * gbs / c)
    });
    println!(
        "decode @ context {context:>5} ({mode}): {steps} tokens in {secs:.3} s = {:>8.1} tokens/s, {:.3} ms/token; {:.3} GB/token read = {gbs:.0} GB/s{of_copy}",
        1.0 / per_token,
        per_token * 1e3,
        bytes / 1e9,
    );
}

/// The weights' storage: the dtype, or for quantized models the layers' and the LM head's
/// block formats with the activations' dtype (`q4_1/q8_0 (f16 activations)`).
fn weights_label(model: &Llama) -> String {
    let format = |w: &LinearWeight| match w {
        LinearWeight::Quantized(q) => q.format().name().to_string(),
        LinearWeight::Dense(t) => t.dtype().name().to_string(),
    };
    match model.layers.first() {
        Some(layer) if model.is_quantized() => format!(
            "{}/{} ({} activations)",
            format(layer.o_proj.weight()),
            format(model.lm_head.weight()),
            model.dtype.name()
        ),
        _ => model.dtype.name().to_string(),
    }
}
