//! Flags shared by the subcommands, and loading a model and its tokenizer from them.

mod bench;
mod fetch;
mod run;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use nano_infer::loaders::{self, WeightSource};
use nano_infer::tensor::QuantFormat;
use nano_infer::tokenizer::Tokenizer;
use nano_infer::{DType, Device, Llama, SamplerConfig};

/// NanoInfer: run Llama-family models (SmolLM2, Llama 2/3) on the CPU or a CUDA GPU.
#[derive(Parser, Debug)]
#[command(name = "nano-infer", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Continue a prompt and stream the text to stdout.
    Generate(run::GenerateArgs),
    /// Talk with an instruct model over stdin (`/exit` quits, `/reset` forgets the history).
    Chat(run::ChatArgs),
    /// Measure prefill and decode throughput, on a model file or random weights.
    Bench(bench::BenchArgs),
    /// Download the default model (SmolLM2-135M-Instruct, Q4_1 GGUF) into the cache.
    Fetch(fetch::FetchArgs),
    /// Write a small GGUF fixture: the first N layers of a GGUF model (for GPU tests).
    Fixture(fetch::FixtureArgs),
}

/// Runs one parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Generate(a) => run::generate(a),
        Command::Chat(a) => run::chat(a),
        Command::Bench(a) => bench::bench(a),
        Command::Fetch(a) => fetch::fetch_cmd(a),
        Command::Fixture(a) => fetch::fixture_cmd(a),
    }
}

/// `--weights`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum WeightsArg {
    Stored,
    Dense,
    #[value(name = "q8_0")]
    Q8_0,
    #[value(name = "q4_0")]
    Q4_0,
    #[value(name = "q4_1")]
    Q4_1,
}

impl WeightsArg {
    /// The format to quantize to at load, for `q8_0`/`q4_0`/`q4_1`.
    fn quantize_to(self) -> Option<QuantFormat> {
        match self {
            WeightsArg::Q8_0 => Some(QuantFormat::Q8_0),
            WeightsArg::Q4_0 => Some(QuantFormat::Q4_0),
            WeightsArg::Q4_1 => Some(QuantFormat::Q4_1),
            WeightsArg::Stored | WeightsArg::Dense => None,
        }
    }
}

/// Where the model is and how to run it.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// A GGUF file or a Hugging Face model directory (safetensors + config.json +
    /// tokenizer.json). Default: SmolLM2-135M-Instruct Q4_1 in the cache, fetched if absent.
    #[arg(long)]
    model: Option<PathBuf>,
    /// `cpu`, `cuda` or `cuda:N`.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Element type of the activations (and of dense weights): f32, f16 or bf16. Default: f16
    /// on CUDA, f32 on the CPU; quantized weights take f16 on CUDA and f32 on the CPU.
    #[arg(long)]
    dtype: Option<String>,
    /// How to hold the matrices: `stored` keeps a GGUF file's quantized blocks as they are
    /// (the default for GGUF files without --dtype), `dense` converts them to --dtype,
    /// `q8_0`/`q4_0`/`q4_1` quantize every projection and the LM head at load.
    #[arg(long, value_enum)]
    weights: Option<WeightsArg>,
    /// KV-cache size in positions (default: the model's context length, at most 4096).
    #[arg(long)]
    max_seq: Option<usize>,
}

impl ModelArgs {
    /// The device named by `--device`.
    pub fn device(&self) -> anyhow::Result<Device> {
        let spec = self.device.as_str();
        if spec == "cpu" {
            return Ok(Device::Cpu);
        }
        let ordinal = match spec.strip_prefix("cuda") {
            Some("") => 0,
            Some(n) => n
                .strip_prefix(':')
                .and_then(|n| n.parse().ok())
                .with_context(|| format!("bad --device `{spec}`: use cpu, cuda or cuda:N"))?,
            None => bail!("unknown --device `{spec}`: use cpu, cuda or cuda:N"),
        };
        nano_infer::cuda(ordinal).with_context(|| {
            format!("--device {spec}: no usable CUDA GPU (run with --device cpu instead)")
        })
    }

    /// The dtype named by `--dtype`, or the device's default.
    pub fn dtype(&self, device: &Device) -> anyhow::Result<DType> {
        match &self.dtype {
            None if device.is_cpu() => Ok(DType::F32),
            None => Ok(DType::F16),
            Some(s) => DType::parse(s).with_context(|| format!("unknown --dtype `{s}`")),
        }
    }

    /// Whether to keep a file's quantized matrices as they are: `--weights stored`, or a GGUF
    /// file with neither `--weights` nor `--dtype`.
    fn keep_quantized(&self, source: &dyn WeightSource) -> bool {
        match self.weights {
            Some(w) => w == WeightsArg::Stored,
            None => self.dtype.is_none() && source.format() == "gguf",
        }
    }

    /// `model` with its matrices quantized as `--weights q*` asks (unchanged otherwise).
    pub fn quantize(&self, model: Llama) -> anyhow::Result<Llama> {
        match self.weights.and_then(WeightsArg::quantize_to) {
            Some(format) => model
                .quantize(format)
                .with_context(|| format!("--weights {}: cannot quantize the model", format.name())),
            None => Ok(model),
        }
    }

    /// The model path: `--model`, or the cached default (fetched when missing).
    pub fn model_path(&self) -> anyhow::Result<PathBuf> {
        match &self.model {
            Some(p) => Ok(p.clone()),
            None => {
                let path = fetch::default_model_path()?;
                if !path.is_file() {
                    eprintln!(
                        "no --model given and {} is absent: fetching it",
                        path.display()
                    );
                    fetch::fetch_default(&path)?;
                }
                Ok(path)
            }
        }
    }

    /// Opens the model file, loads its weights (with a progress line) and its tokenizer.
    pub fn load(&self) -> anyhow::Result<(Llama, Tokenizer)> {
        let path = self.model_path()?;
        let device = self.device()?;
        let dtype = self.dtype(&device)?;
        let source = loaders::open(&path)
            .with_context(|| format!("cannot open the model {}", path.display()))?;
        let tokenizer = load_tokenizer(source.as_ref(), &path)?;
        let config = source.llama_config()?;
        let max_seq = self
            .max_seq
            .unwrap_or(config.max_position_embeddings.min(4096));
        let name = path
            .file_name()
            .unwrap_or(path.as_os_str())
            .to_string_lossy();
        let start = std::time::Instant::now();
        // A live layer counter on a terminal; a single line when stderr is a file or a pipe.
        let live = std::io::stderr().is_terminal();
        let keep = self.keep_quantized(source.as_ref());
        let what = if keep {
            format!("loading {name} (quantized as stored, {device})")
        } else {
            format!("loading {name} ({}, {device})", dtype.name())
        };
        if !live {
            eprint!("{what}");
        }
        let progress = |done, total| {
            if live {
                eprint!("\r{what}: layer {done}/{total}");
                let _ = std::io::stderr().flush();
            }
        };
        let model = if keep {
            Llama::load_quantized(source.as_ref(), &device, max_seq, progress)
        } else {
            Llama::load_with_progress(source.as_ref(), dtype, &device, max_seq, progress)
        }
        .with_context(|| format!("cannot load the model {}", path.display()))?;
        let model = self.quantize(model)?;
        eprintln!(
            " ... {} layers in {:.1} s",
            model.layers.len(),
            start.elapsed().as_secs_f64()
        );
        Ok((model, tokenizer))
    }
}

/// The tokenizer stored in a GGUF file, or the `tokenizer.json` beside a safetensors model.
fn load_tokenizer(source: &dyn WeightSource, path: &Path) -> anyhow::Result<Tokenizer> {
    if let Some(spec) = source.tokenizer_spec()? {
        return Ok(Tokenizer::from_spec(&spec)?);
    }
    let dir = if path.is_dir() {
        path
    } else {
        path.parent().unwrap_or(Path::new("."))
    };
    Tokenizer::from_hf_dir(dir)
        .with_context(|| format!("cannot load tokenizer.json from {}", dir.display()))
}

/// How to pick tokens.
#[derive(Args, Debug, Clone)]
pub struct SamplingArgs {
    /// Softmax temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// Keep the K most likely tokens (0 = off).
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    /// Nucleus sampling: keep the most likely tokens up to this total probability (1 = off).
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    /// Drop tokens less likely than this fraction of the most likely one (0 = off).
    #[arg(long, default_value_t = 0.0)]
    min_p: f32,
    /// Repetition penalty on tokens already seen (1 = off; HF's definition).
    #[arg(long, default_value_t = 1.0)]
    repeat_penalty: f32,
    /// Random seed.
    #[arg(long, default_value_t = 299_792_458)]
    seed: u64,
    /// The most tokens to generate.
    #[arg(long, default_value_t = 256)]
    max_tokens: usize,
    /// Stop when the output contains this text (may be repeated).
    #[arg(long)]
    stop: Vec<String>,
}

impl SamplingArgs {
    pub fn generate_config(&self) -> nano_infer::generate::GenerateConfig {
        nano_infer::generate::GenerateConfig {
            max_tokens: self.max_tokens,
            stop: self.stop.clone(),
            sampler: SamplerConfig {
                temperature: self.temperature,
                top_k: self.top_k,
                top_p: self.top_p,
                min_p: self.min_p,
                repetition_penalty: self.repeat_penalty,
                seed: self.seed,
            },
        }
    }
}
