//! [`LlamaLayer`]: one decoder block — pre-norm grouped-query self-attention with RoPE, then a
//! pre-norm SwiGLU MLP, each added to the residual stream.
//!
//! ```text
//! h = input_layernorm(x)
//! q, k, v = rope(q_proj h), rope(k_proj h), v_proj h     (k, v appended to the KV cache)
//! a = o_proj attention(q, k_cache, v_cache)               (causal, scale 1/sqrt(head_dim))
//! x, h = x + a, post_attention_layernorm(x + a)           (one fused add_rms_norm)
//! out = x + mlp(h)
//! ```
//!
//! A one-token step on CUDA whose cache holds its length in device memory (see `KvCache`)
//! rotates q and k and writes the cache in one kernel, and attends up to that device-side
//! position, so that a CUDA graph of the step serves every position.

use super::{Weights, tensor_seed};
use crate::backend::cuda::DeviceU32;
use crate::error::Result;
use crate::functional::{self, RopeTable};
use crate::kv_cache::KvCache;
use crate::models::LlamaConfig;
use crate::nn::{Linear, LlamaMlp, Module, RmsNorm};
use crate::tensor::{DType, Device, Tensor};

/// One decoder block, named as in HF checkpoints (`model.layers.{i}.*`).
#[derive(Clone, Debug)]
pub struct LlamaLayer {
    /// `[hidden]`.
    pub input_layernorm: RmsNorm,
    /// `[heads * head_dim, hidden]`; GGUF rows are permuted for interleaved RoPE.
    pub q_proj: Linear,
    /// `[kv_heads * head_dim, hidden]`; GGUF rows are permuted for interleaved RoPE.
    pub k_proj: Linear,
    /// `[kv_heads * head_dim, hidden]`.
    pub v_proj: Linear,
    /// `[hidden, heads * head_dim]`.
    pub o_proj: Linear,
    /// `[hidden]`.
    pub post_attention_layernorm: RmsNorm,
    /// gate/up `[intermediate, hidden]`, down `[hidden, intermediate]`.
    pub mlp: LlamaMlp,
    /// Which layer this is (its slot in the KV cache).
    index: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    rope_interleaved: bool,
}

impl LlamaLayer {
    /// Loads `model.layers.{index}.*` from `weights`.
    pub(super) fn load(weights: &Weights<'_>, config: &LlamaConfig, index: usize) -> Result<Self> {
        let p = format!("model.layers.{index}");
        let (hidden, inter) = (config.hidden_size, config.intermediate_size);
        let q_dim = config.num_heads * config.head_dim;
        let kv_dim = config.num_kv_heads * config.head_dim;
        let linear = |name: &str, shape: [usize; 2]| -> Result<Linear> {
            Linear::from_weight(weights.matrix(&format!("{p}.{name}.weight"), shape)?)
        };
        let norm = |name: &str| -> Result<RmsNorm> {
            RmsNorm::new(
                weights.get(&format!("{p}.{name}.weight"), &[hidden])?,
                config.rms_norm_eps,
            )
        };
        Ok(LlamaLayer {
            input_layernorm: norm("input_layernorm")?,
            q_proj: linear("self_attn.q_proj", [q_dim, hidden])?,
            k_proj: linear("self_attn.k_proj", [kv_dim, hidden])?,
            v_proj: linear("self_attn.v_proj", [kv_dim, hidden])?,
            o_proj: linear("self_attn.o_proj", [hidden, q_dim])?,
            post_attention_layernorm: norm("post_attention_layernorm")?,
            mlp: LlamaMlp::from_parts(
                linear("mlp.gate_proj", [inter, hidden])?,
                linear("mlp.up_proj", [inter, hidden])?,
                linear("mlp.down_proj", [hidden, inter])?,
            )?,
            index,
            heads: config.num_heads,
            kv_heads: config.num_kv_heads,
            head_dim: config.head_dim,
            rope_interleaved: config.rope_interleaved,
        })
    }

    /// Random weights N(0, 0.02²) and unit norms, seeded by `(seed, index)`.
    pub(super) fn random(
        config: &LlamaConfig,
        index: usize,
        seed: u64,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let (hidden, inter) = (config.hidden_size, config.intermediate_size);
        let q_dim = config.num_heads * config.head_dim;
        let kv_dim = config.num_kv_heads * config.head_dim;
        let linear = |slot: u64, inp: usize, out: usize| {
            Linear::random(inp, out, tensor_seed(seed, index, slot), dtype, device)
        };
        let norm = || RmsNorm::ones(hidden, config.rms_norm_eps, dtype, device);
        Ok(LlamaLayer {
            input_layernorm: norm()?,
            q_proj: linear(0, hidden, q_dim)?,
            k_proj: linear(1, hidden, kv_dim)?,
            v_proj: linear(2, hidden, kv_dim)?,
            o_proj: linear(3, q_dim, hidden)?,
            post_attention_layernorm: norm()?,
            mlp: LlamaMlp::from_parts(
                linear(4, hidden, inter)?,
                linear(5, hidden, inter)?,
                linear(6, inter, hidden)?,
            )?,
            index,
            heads: config.num_heads,
            kv_heads: config.num_kv_heads,
            head_dim: config.head_dim,
            rope_interleaved: config.rope_interleaved,
        })
    }

    /// The seven projections, attention first.
    pub fn linears(&self) -> [&Linear; 7] {
        let m = &self.mlp;
        [
            &self.q_proj,
            &self.k_proj,
            &self.v_proj,
            &self.o_proj,
            &m.gate_proj,
            &m.up_proj,
            &m.down_proj,
        ]
    }

    /// The same weights on `device` (`eps` is the norms' epsilon).
    pub fn to_device(&self, device: &Device, eps: f32) -> Result<Self> {
        let linear = |l: &Linear| l.to_device(device);
        let norm = |n: &RmsNorm| RmsNorm::new(n.weight().to_device(device)?, eps);
        Ok(LlamaLayer {
            input_layernorm: norm(&self.input_layernorm)?,
            q_proj: linear(&self.q_proj)?,
            k_proj: linear(&self.k_proj)?,
            v_proj: linear(&self.v_proj)?,
            o_proj: linear(&self.o_proj)?,
            post_attention_layernorm: norm(&self.post_attention_layernorm)?,
            mlp: self.mlp.to_device(device)?,
            ..*self
        })
    }

    /// The block on `x` (`[seq, hidden]`, tokens at positions `cache.len()..`); writes this
    /// layer's keys and values into `cache` (the caller advances it once every layer is done).
    pub fn forward(&self, x: &Tensor, rope: &RopeTable, cache: &KvCache) -> Result<Tensor> {
        let h = self.input_layernorm.forward(x)?;
        let a = self.self_attn(&h, rope, cache)?;
        let (x, h) = self.post_attention_layernorm.forward_residual(x, &a)?;
        functional::add(&x, &self.mlp.forward(&h)?)
    }

    /// Grouped-query causal self-attention of `h` (`[seq, hidden]`) over the cached positions
    /// and its own. Returns `[seq, hidden]`.
    fn self_attn(&self, h: &Tensor, rope: &RopeTable, cache: &KvCache) -> Result<Tensor> {
        let seq = h.dims()[0];
        let pos = cache.len();
        let (hd, interleaved) = (self.head_dim, self.rope_interleaved);
        // [seq, heads, head_dim] and [seq, kv_heads, head_dim]
        let [q, k, v] = functional::linear_group(
            h,
            [&self.q_proj, &self.k_proj, &self.v_proj].map(|l| l.weight()),
        )?;
        let q = q.reshape([seq, self.heads, hd])?;
        let k = k.reshape([seq, self.kv_heads, hd])?;
        let v = v.reshape([seq, self.kv_heads, hd])?;
        if seq == 1
            && let Some(device_pos) = cache.device_len()
        {
            return self.attend_at_device_pos(&q, &k, &v, rope, cache, device_pos);
        }
        let q = functional::rope(&q, rope, pos, interleaved)?;
        let k = functional::rope(&k, rope, pos, interleaved)?;
        // [pos + seq, kv_heads, head_dim]
        let (keys, values) = cache.append(self.index, &k, &v)?;
        let scale = 1.0 / (hd as f32).sqrt();
        let out = functional::attention(&q, &keys, &values, scale, true)?;
        self.o_proj.forward(&out.reshape([seq, self.heads * hd])?)
    }

    /// The one-token CUDA path of [`Self::self_attn`], positioned by the cache's device-side
    /// length (so a CUDA graph captures it once for every step): RoPE fused with the KV-cache
    /// write, then attention over the cache up to that position.
    fn attend_at_device_pos(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        rope: &RopeTable,
        cache: &KvCache,
        pos: &DeviceU32,
    ) -> Result<Tensor> {
        let (keys, values) = cache.layer(self.index)?;
        let interleaved = self.rope_interleaved;
        let q = functional::rope_kv_write(q, k, v, rope, keys, values, pos, interleaved)?;
        let scale = 1.0 / (self.head_dim as f32).sqrt();
        let out = functional::decode_attention(&q, keys, values, pos, scale)?;
        self.o_proj
            .forward(&out.reshape([1, self.heads * self.head_dim])?)
    }
}
