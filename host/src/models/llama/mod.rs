//! [`Llama`]: the Llama-family decoder (Llama 2/3, SmolLM2, ...) — token embedding, a stack of
//! [`LlamaLayer`]s, a final RMSNorm and the LM head — and its forward pass over a [`KvCache`].
//!
//! The model is built from `nn` modules and `functional` ops only, so the same code runs on
//! every device: the ops dispatch on the tensors' device. Weights come from any
//! [`WeightSource`] by their HF names (GGUF files are mapped to these by the loader) and are
//! converted to the model's dtype at load; quantized tensors are dequantized there, unless the
//! model is loaded with [`Llama::load_quantized`]: then the block-quantized matrices stay as
//! they are in the file (borrowing its memory map on the CPU, repacked in GPU memory on CUDA)
//! and the products read them packed. [`Llama::quantize`] quantizes a dense model's matrices
//! where they live (random benchmark models on the GPU).
//!
//! ```no_run
//! use nano_infer_host::{loaders, models::Llama, DType, Device};
//! # fn main() -> nano_infer_host::Result<()> {
//! let source = loaders::open("SmolLM2-135M-Instruct.Q4_1.gguf".as_ref())?;
//! let model = Llama::load(source.as_ref(), DType::F32, &Device::Cpu, 2048)?;
//! let mut cache = model.new_cache()?;
//! let logits = model.forward(&[504, 3575, 282, 4649, 314], &mut cache)?; // prefill: [vocab]
//! let next = nano_infer_host::sampler::argmax(&logits.to_vec_f32()?);
//! let logits = model.forward(&[next], &mut cache)?; // decode one token
//! # Ok(()) }
//! ```
//!
//! # Positions
//! The cache's length is the position of the next token. A forward pass of `n` ids runs them at
//! positions `len..len + n` and, when every layer has succeeded, advances the cache by `n`. A
//! pass that would run past the cache or the RoPE table fails with [`Error::ContextOverflow`]
//! before anything is written.

mod decode_graph;
mod layer;

pub use decode_graph::GraphDecoder;
pub use layer::{LlamaLayer, Residual};

use super::LlamaConfig;
use crate::backend::cuda::CudaBackend;
use crate::error::{Error, Result};
use crate::functional::{self, LinearFusion, LinearWeight, RopeTable};
use crate::kv_cache::KvCache;
use crate::loaders::{StorageType, WeightSource};
use crate::nn::{Embedding, FusedLinear, INIT_STD, Linear, Module, RmsNorm};
use crate::tensor::quant_pack::quant_format;
use crate::tensor::{DType, Device, QuantFormat, QuantizedTensor, Tensor};

/// A Llama-family causal language model on one device.
#[derive(Clone, Debug)]
pub struct Llama {
    pub config: LlamaConfig,
    /// `[vocab, hidden]`.
    pub embed_tokens: Embedding,
    pub layers: Vec<LlamaLayer>,
    /// `[hidden]`.
    pub norm: RmsNorm,
    /// `[vocab, hidden]`; shares the embedding table's storage when the embeddings are tied.
    pub lm_head: Linear,
    /// cos/sin `[max_seq, head_dim / 2]`.
    pub rope: RopeTable,
    pub dtype: DType,
    pub device: Device,
}

impl Llama {
    /// Loads every weight of `source` onto `device` as `dtype`, with room for `max_seq`
    /// positions (the RoPE table and [`Llama::new_cache`]).
    pub fn load(
        source: &dyn WeightSource,
        dtype: DType,
        device: &Device,
        max_seq: usize,
    ) -> Result<Llama> {
        Self::load_with_progress(source, dtype, device, max_seq, |_, _| {})
    }

    /// [`Llama::load`], calling `progress(done, total)` after the embedding (`done` = 0) and after
    /// each layer, so a front end can draw a progress bar.
    pub fn load_with_progress(
        source: &dyn WeightSource,
        dtype: DType,
        device: &Device,
        max_seq: usize,
        progress: impl FnMut(usize, usize),
    ) -> Result<Llama> {
        let weights = Weights {
            source,
            dtype,
            device,
            keep_quantized: false,
        };
        Self::load_from(&weights, max_seq, progress)
    }

    /// Like [`Llama::load_with_progress`], but block-quantized matrices (the embedding's and LM
    /// head's too) stay in their blocks: on the CPU every block format (Q8_0, Q4_0, Q4_1, Q4_K,
    /// Q6_K), shared with the source's memory map, with f32 activations; on CUDA Q8_0, Q4_0 and
    /// Q4_1, repacked into GPU memory, with f16 activations (other formats load as f16, and the
    /// embedding lookup reads a dense f16 copy of the table). Norms and float tensors load in the
    /// activations' dtype.
    pub fn load_quantized(
        source: &dyn WeightSource,
        device: &Device,
        max_seq: usize,
        progress: impl FnMut(usize, usize),
    ) -> Result<Llama> {
        let weights = Weights {
            source,
            dtype: functional::quantized_activations(device),
            device,
            keep_quantized: true,
        };
        Self::load_from(&weights, max_seq, progress)
    }

    /// This model with every projection and the LM head quantized to `format` where they live
    /// (the GPU's `quantize_*` kernels on CUDA, ggml's reference quantizer on the CPU; the
    /// embedding table and norms stay as they are). The activations must already be in the
    /// quantized kernels' dtype: f16 on CUDA, f32 on the CPU.
    pub fn quantize(&self, format: QuantFormat) -> Result<Llama> {
        let want = functional::quantized_activations(&self.device);
        if self.dtype != want {
            return Err(Error::invalid(
                "Llama::quantize",
                format!(
                    "quantized weights on {} run with {} activations; this model is {}",
                    self.device,
                    want.name(),
                    self.dtype.name()
                ),
            ));
        }
        self.map_weights(&|w| match w {
            LinearWeight::Dense(t) => Ok(LinearWeight::Quantized(QuantizedTensor::quantize(
                t,
                format,
                t.device(),
            )?)),
            q => Ok(q.clone()),
        })
    }

    /// This model with its quantized matrices expanded to dense ones of the model's dtype, the
    /// values the quantized kernels compute with (the reference a quantized model is tested
    /// against).
    pub fn dequantize(&self) -> Result<Llama> {
        self.map_weights(&|w| match w {
            LinearWeight::Quantized(q) => {
                Ok(LinearWeight::Dense(q.dequantize(self.dtype, q.device())?))
            }
            d => Ok(d.clone()),
        })
    }

    /// The model with each projection's and the LM head's weight replaced by `f(weight)`.
    fn map_weights(&self, f: &impl Fn(&LinearWeight) -> Result<LinearWeight>) -> Result<Llama> {
        Ok(Llama {
            layers: self
                .layers
                .iter()
                .map(|l| l.map_weights(f))
                .collect::<Result<_>>()?,
            lm_head: self.lm_head.map_weight(f)?,
            ..self.clone()
        })
    }

    fn load_from(
        weights: &Weights<'_>,
        max_seq: usize,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<Llama> {
        let (dtype, device) = (weights.dtype, weights.device);
        let config = weights.source.llama_config()?;
        check_max_seq(&config, max_seq)?;
        let (vocab, hidden) = (config.vocab_size, config.hidden_size);
        const EMBED: &str = "model.embed_tokens.weight";
        let embed = weights.embedding(EMBED, [vocab, hidden])?;
        let n = config.num_layers;
        progress(0, n);
        let mut layers = Vec::with_capacity(n);
        for i in 0..n {
            layers.push(LlamaLayer::load(weights, &config, i)?);
            progress(i + 1, n);
        }
        let norm = RmsNorm::new(
            weights.get("model.norm.weight", &[hidden])?,
            config.rms_norm_eps,
        )?;
        // HF ignores a stored `lm_head.weight` when the embeddings are tied; so do we.
        let lm_head = if !config.tie_word_embeddings {
            weights.linear("lm_head.weight", [vocab, hidden])?
        } else if weights.keep_quantized && !device.is_cpu() {
            // The table's blocks for the head; the lookup has its dense copy.
            weights.linear(EMBED, [vocab, hidden])?
        } else {
            Linear::from_weight(embed.clone())?
        };
        // The logits take the residual activation pass: 8-bit rounding alone flips near-ties
        // (SmolLM2: 29/32 teacher-forced top-1 agreement with the f32 path on one reference
        // prompt; 30-32/32 with it).
        let lm_head = lm_head.with_residual_pass();
        Ok(Llama {
            rope: RopeTable::new(max_seq, config.head_dim, config.rope_theta, device)?,
            embed_tokens: Embedding::from_weight(embed)?,
            layers,
            norm,
            lm_head,
            config,
            dtype,
            device: device.clone(),
        })
    }

    /// A model of `config`'s shapes with uniform random weights of standard deviation 0.02 and
    /// unit norms (for benchmarks and device tests), made on `device` itself
    /// ([`Tensor::rand_uniform`]). The same seed gives the same weights on every device.
    pub fn random(config: &LlamaConfig, dtype: DType, device: &Device, seed: u64) -> Result<Llama> {
        let max_seq = config.max_position_embeddings.min(4096);
        check_max_seq(config, max_seq)?;
        let (vocab, hidden) = (config.vocab_size, config.hidden_size);
        let random = |slot: u64, shape: [usize; 2]| {
            let seed = tensor_seed(seed, usize::MAX, slot);
            Tensor::rand_uniform(shape, INIT_STD, seed, dtype, device)
        };
        let embed = random(0, [vocab, hidden])?;
        let lm_head = if config.tie_word_embeddings {
            embed.clone()
        } else {
            random(1, [vocab, hidden])?
        };
        let layers = (0..config.num_layers)
            .map(|i| LlamaLayer::random(config, i, seed, dtype, device))
            .collect::<Result<_>>()?;
        Ok(Llama {
            config: config.clone(),
            embed_tokens: Embedding::new(embed)?,
            layers,
            norm: RmsNorm::ones(hidden, config.rms_norm_eps, dtype, device)?,
            lm_head: Linear::new(lm_head)?,
            rope: RopeTable::new(max_seq, config.head_dim, config.rope_theta, device)?,
            dtype,
            device: device.clone(),
        })
    }

    /// The longest sequence this model was built for (the RoPE table's length).
    pub fn max_seq(&self) -> usize {
        self.rope.max_pos()
    }

    /// An empty KV cache for [`Llama::max_seq`] positions, on the model's device and dtype.
    pub fn new_cache(&self) -> Result<KvCache> {
        self.new_cache_with_capacity(self.max_seq())
    }

    /// An empty KV cache for `capacity` positions (at most [`Llama::max_seq`] are usable).
    pub fn new_cache_with_capacity(&self, capacity: usize) -> Result<KvCache> {
        let c = &self.config;
        KvCache::new(
            self.layers.len(),
            capacity,
            c.num_kv_heads,
            c.head_dim,
            self.dtype,
            &self.device,
        )
    }

    /// Runs `ids` at positions `cache.len()..` and returns the logits of the last one, `[vocab]`
    /// f32. Many ids at once is a prefill; one id is a decode step.
    pub fn forward(&self, ids: &[u32], cache: &mut KvCache) -> Result<Tensor> {
        let logits = self.run(ids, cache, true)?;
        logits.reshape([self.config.vocab_size])
    }

    /// Like [`Llama::forward`] but returns the logits of every position, `[ids.len(), vocab]` f32
    /// (for teacher-forced comparisons with a reference).
    pub fn forward_all(&self, ids: &[u32], cache: &mut KvCache) -> Result<Tensor> {
        self.run(ids, cache, false)
    }

    fn run(&self, ids: &[u32], cache: &mut KvCache, last_only: bool) -> Result<Tensor> {
        if ids.is_empty() {
            return Err(Error::invalid("Llama::forward", "no token ids"));
        }
        if cache.num_layers() != self.layers.len() {
            return Err(Error::invalid(
                "Llama::forward",
                format!(
                    "the cache has {} layers, the model {}",
                    cache.num_layers(),
                    self.layers.len()
                ),
            ));
        }
        let seq = ids.len();
        self.check_room(cache, seq)?;
        if seq == 1 && CudaBackend::decode_attention_supports(self.config.head_dim) {
            // A one-token CUDA step reads its position from device memory, as a captured
            // decode graph does (see `KvCache`); a no-op on the CPU.
            cache.sync_device_len()?;
        }
        // [seq, hidden]
        let x = self.embed_tokens.forward(ids)?;
        let logits = self.layers_and_head(x, cache, last_only)?;
        cache.advance(seq)?;
        Ok(logits)
    }

    /// Errors unless `seq` more positions fit the cache and the RoPE table.
    pub(crate) fn check_room(&self, cache: &KvCache, seq: usize) -> Result<()> {
        cache.check_room(seq)?;
        let needed = cache.len() + seq;
        if needed > self.rope.max_pos() {
            return Err(Error::ContextOverflow {
                needed,
                capacity: self.rope.max_pos(),
            });
        }
        Ok(())
    }

    /// The layers, final norm and LM head on embedded tokens `x` (`[seq, hidden]`, at positions
    /// `cache.len()..`): f32 logits `[rows, vocab]` of every position, or of the last one. The
    /// layers write their cache rows; the cache's length does not move.
    pub(crate) fn layers_and_head(
        &self,
        x: Tensor,
        cache: &KvCache,
        last_only: bool,
    ) -> Result<Tensor> {
        let seq = x.dims()[0];
        let mut x = Residual::new(x);
        for layer in &self.layers {
            x = layer.forward(&x, &self.rope, cache)?;
        }
        if last_only {
            x = x.narrow_rows(seq - 1, 1)?;
        }
        // [rows, vocab]
        let logits =
            if x.delta.is_none() && x.x.dims()[0] == 1 && matches!(x.x.device(), Device::Cuda(_)) {
                // A decode step: the final norm rides in the LM head's GEMV.
                let normed = LinearFusion {
                    norm: Some(self.norm.parts()),
                    ..Default::default()
                };
                functional::linear_fused(&x.x, self.lm_head.weight(), normed)?
            } else {
                self.lm_head.forward(&x.add_norm(&self.norm)?.1)?
            };
        logits.to_dtype(DType::F32)
    }

    /// Bytes of weights a decode step reads (each tensor once, as stored; a tied LM head counts
    /// again, since the embedding lookup reads only one row of it).
    pub fn weight_bytes(&self) -> usize {
        let layers: usize = self.layers.iter().map(LlamaLayer::weight_bytes).sum();
        let norm = self.norm.weight().elem_count() * self.norm.weight().dtype().size_in_bytes();
        layers + norm + self.lm_head.weight().size_in_bytes()
    }

    /// Whether the matrices are kept block-quantized ([`Llama::load_quantized`],
    /// [`Llama::quantize`]).
    pub fn is_quantized(&self) -> bool {
        matches!(self.lm_head.weight(), LinearWeight::Quantized(_))
    }
}

/// Errors unless `max_seq` is positive and within the model's trained context.
fn check_max_seq(config: &LlamaConfig, max_seq: usize) -> Result<()> {
    if max_seq == 0 || max_seq > config.max_position_embeddings {
        return Err(Error::invalid(
            "Llama",
            format!(
                "max_seq must lie in 1..={} (the model's context length), got {max_seq}",
                config.max_position_embeddings
            ),
        ));
    }
    Ok(())
}

/// A distinct, well-mixed seed for each random tensor (`layer` = `usize::MAX` for the
/// embedding and head).
pub(crate) fn tensor_seed(seed: u64, layer: usize, slot: u64) -> u64 {
    let mut rng = crate::sampler::SplitMix64::new(seed ^ ((layer as u64) << 8 | slot));
    rng.next_u64()
}

/// Reads weights from a [`WeightSource`], checking shapes, into `dtype` on `device` (matrices
/// stored block-quantized stay so when `keep_quantized` and the device has kernels for them).
pub(crate) struct Weights<'a> {
    source: &'a dyn WeightSource,
    dtype: DType,
    device: &'a Device,
    keep_quantized: bool,
}

impl Weights<'_> {
    /// The matrix `name` of `shape`: its blocks (on the CPU, not yet placed: see
    /// [`Weights::place`]) when it stays quantized, else a dense tensor on the device.
    fn matrix(&self, name: &str, shape: [usize; 2]) -> Result<LinearWeight> {
        let on_device = |t: StorageType| self.device.is_cpu() || quant_format(t).is_some();
        let blocks = self.source.tensor_info(name).filter(|i| {
            self.keep_quantized && i.dtype.is_quantized() && i.shape == shape && on_device(i.dtype)
        });
        if let Some(info) = blocks {
            let bytes = self.source.shared_bytes(name)?;
            return Ok(LinearWeight::Quantized(QuantizedTensor::new(
                info.dtype, shape, bytes,
            )?));
        }
        Ok(LinearWeight::Dense(self.get(name, &shape)?))
    }

    /// The layer of matrix `name`, on the device.
    fn linear(&self, name: &str, shape: [usize; 2]) -> Result<Linear> {
        Linear::from_weight(self.matrix(name, shape)?.to_device(self.device)?)
    }

    /// Layers made of [`Weights::matrix`]es, on the device (quantized parts joined on the way,
    /// see [`FusedLinear`]).
    fn place(&self, layers: FusedLinear) -> Result<FusedLinear> {
        layers.to_device(self.device)
    }

    /// The embedding table `name`: as [`Weights::matrix`] on the CPU (a quantized table
    /// dequantizes the rows it looks up there); dense on CUDA, where the lookup is a row copy.
    fn embedding(&self, name: &str, shape: [usize; 2]) -> Result<LinearWeight> {
        if self.device.is_cpu() {
            self.matrix(name, shape)
        } else {
            Ok(LinearWeight::Dense(self.get(name, &shape)?))
        }
    }

    /// The tensor `name`, which must have `shape`.
    fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let info = self
            .source
            .tensor_info(name)
            .ok_or_else(|| Error::MissingTensor {
                name: name.to_string(),
            })?;
        if info.shape != shape {
            return Err(Error::ShapeMismatch {
                op: "Llama::load",
                expected: format!("{name} {shape:?} (from the model config)"),
                got: format!("{:?}", info.shape),
            });
        }
        let values = self.source.to_f32(name)?;
        Tensor::from_f32(values, shape.to_vec(), self.dtype, self.device)
    }
}
