//! [`LlamaLayer`]: one decoder block — pre-norm grouped-query self-attention with RoPE, then a
//! pre-norm SwiGLU MLP, each added to the residual stream.
//!
//! ```text
//! x, h = x + d, input_layernorm(x + d)                    (d: the previous block's MLP output)
//! q, k, v = rope(q_proj h), rope(k_proj h), v_proj h     (k, v appended to the KV cache)
//! a = o_proj attention(q, k_cache, v_cache)               (causal, scale 1/sqrt(head_dim))
//! x, h = x + a, post_attention_layernorm(x + a)
//! out = (x, mlp(h))                                       (added by the next norm)
//! ```
//!
//! Each residual add is fused into the norm after it (`add_rms_norm`): a block hands the
//! next one its stream and its MLP output unadded ([`Residual`]). q, k and v are one
//! [`FusedLinear`] (one GEMV in decode), as are the MLP's gate and up.
//!
//! A one-token step on CUDA whose cache holds its length in device memory (see `KvCache`)
//! attends up to that device-side position, so that a CUDA graph of the step serves every
//! position; it runs in five kernels ([`LlamaLayer::decode_step`]): the norms and residual adds
//! ride in the GEMVs, RoPE and the cache write in the q/k/v GEMV's epilogue, and the block
//! hands on its stream with nothing pending.

use super::{Weights, tensor_seed};
use crate::backend::cuda::DeviceU32;
use crate::error::Result;
use crate::functional::{self, LinearFusion, LinearWeight, RopeTable};
use crate::kv_cache::KvCache;
use crate::models::LlamaConfig;
use crate::nn::{FusedLinear, Linear, LlamaMlp, Module, RmsNorm};
use crate::tensor::{DType, Device, Tensor};

/// The residual stream between blocks: `x` plus a pending `delta` (the last block's MLP
/// output), which the next norm adds as it normalises.
#[derive(Clone, Debug)]
pub struct Residual {
    pub x: Tensor,
    pub delta: Option<Tensor>,
}

impl Residual {
    /// The stream `x` with nothing pending (the embedded tokens).
    pub fn new(x: Tensor) -> Residual {
        Residual { x, delta: None }
    }

    /// `(x + delta, norm(x + delta))`, the add fused into the norm.
    pub fn add_norm(&self, norm: &RmsNorm) -> Result<(Tensor, Tensor)> {
        match &self.delta {
            Some(d) => norm.forward_residual(&self.x, d),
            None => Ok((self.x.clone(), norm.forward(&self.x)?)),
        }
    }

    /// Rows `start..start + len` of the stream (and of the pending delta).
    pub fn narrow_rows(&self, start: usize, len: usize) -> Result<Residual> {
        Ok(Residual {
            x: self.x.narrow(0, start, len)?,
            delta: self
                .delta
                .as_ref()
                .map(|d| d.narrow(0, start, len))
                .transpose()?,
        })
    }
}

/// Whether one-token CUDA steps take the fused kernels of [`LlamaLayer::decode_step`] (the
/// default; `NANO_INFER_FUSED_DECODE=0` runs the unfused ops instead, to measure the fusion
/// against them in one process run).
fn fused_decode_enabled() -> bool {
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ENABLED.get_or_init(|| std::env::var("NANO_INFER_FUSED_DECODE").map_or(true, |v| v != "0"))
}

/// One decoder block, named as in HF checkpoints (`model.layers.{i}.*`).
#[derive(Clone, Debug)]
pub struct LlamaLayer {
    /// `[hidden]`.
    pub input_layernorm: RmsNorm,
    /// q `[heads * head_dim, hidden]`, k and v `[kv_heads * head_dim, hidden]`; GGUF rows of q
    /// and k are permuted for interleaved RoPE.
    pub qkv: FusedLinear,
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
        let linear =
            |name: &str, shape: [usize; 2]| weights.linear(&format!("{p}.{name}.weight"), shape);
        let matrix = |name: &str, shape: [usize; 2]| -> Result<Linear> {
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
            qkv: weights.place(FusedLinear::new(vec![
                matrix("self_attn.q_proj", [q_dim, hidden])?,
                matrix("self_attn.k_proj", [kv_dim, hidden])?,
                matrix("self_attn.v_proj", [kv_dim, hidden])?,
            ])?)?,
            o_proj: linear("self_attn.o_proj", [hidden, q_dim])?,
            post_attention_layernorm: norm("post_attention_layernorm")?,
            mlp: LlamaMlp {
                gate_up: weights.place(FusedLinear::new(vec![
                    matrix("mlp.gate_proj", [inter, hidden])?,
                    matrix("mlp.up_proj", [inter, hidden])?,
                ])?)?,
                down_proj: linear("mlp.down_proj", [hidden, inter])?,
            },
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
            qkv: FusedLinear::new(vec![
                linear(0, hidden, q_dim)?,
                linear(1, hidden, kv_dim)?,
                linear(2, hidden, kv_dim)?,
            ])?,
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

    /// Bytes of the block's weights (norms and projections; what a decode step reads).
    pub fn weight_bytes(&self) -> usize {
        let norms = [&self.input_layernorm, &self.post_attention_layernorm];
        let norm_bytes: usize = norms
            .iter()
            .map(|n| n.weight().elem_count() * n.weight().dtype().size_in_bytes())
            .sum();
        norm_bytes
            + self.qkv.weight_bytes()
            + self.o_proj.weight().size_in_bytes()
            + self.mlp.weight_bytes()
    }

    /// The same weights on `device` (`eps` is the norms' epsilon).
    pub fn to_device(&self, device: &Device, eps: f32) -> Result<Self> {
        let norm = |n: &RmsNorm| RmsNorm::new(n.weight().to_device(device)?, eps);
        Ok(LlamaLayer {
            input_layernorm: norm(&self.input_layernorm)?,
            qkv: self.qkv.to_device(device)?,
            o_proj: self.o_proj.to_device(device)?,
            post_attention_layernorm: norm(&self.post_attention_layernorm)?,
            mlp: self.mlp.to_device(device)?,
            ..*self
        })
    }

    /// The block with each projection's weight replaced by `f(weight)` (norms stay).
    pub fn map_weights(&self, f: &impl Fn(&LinearWeight) -> Result<LinearWeight>) -> Result<Self> {
        Ok(LlamaLayer {
            input_layernorm: self.input_layernorm.clone(),
            qkv: self.qkv.map_weights(f)?,
            o_proj: self.o_proj.map_weight(f)?,
            post_attention_layernorm: self.post_attention_layernorm.clone(),
            mlp: self.mlp.map_weights(f)?,
            ..*self
        })
    }

    /// The block on the stream `x` (`[seq, hidden]`, tokens at positions `cache.len()..`);
    /// writes this layer's keys and values into `cache` (the caller advances it once every
    /// layer is done). The MLP output is left pending for the next norm.
    pub fn forward(&self, x: &Residual, rope: &RopeTable, cache: &KvCache) -> Result<Residual> {
        if x.delta.is_none()
            && x.x.dims()[0] == 1
            && fused_decode_enabled()
            && let Some(pos) = cache.device_len()
            && let (Some(qkv), Some(gate_up)) = (self.qkv.joined(), self.mlp.gate_up.joined())
        {
            return self.decode_step(&x.x, [qkv, gate_up], rope, cache, pos);
        }
        let (x, h) = x.add_norm(&self.input_layernorm)?;
        let a = self.self_attn(&h, rope, cache)?;
        let (x, h) = self.post_attention_layernorm.forward_residual(&x, &a)?;
        Ok(Residual {
            x,
            delta: Some(self.mlp.forward(&h)?),
        })
    }

    /// The one-token CUDA step positioned by the cache's device-side length (what a CUDA graph
    /// captures), in five kernels: the input norm, q/k/v projection, RoPE and cache write as one
    /// GEMV; attention; o_proj with the residual add; the post-attention norm, gate/up and SwiGLU
    /// as one GEMV; down with the residual add. Returns the stream with nothing pending.
    fn decode_step(
        &self,
        x: &Tensor,
        [qkv, gate_up]: [&LinearWeight; 2],
        rope: &RopeTable,
        cache: &KvCache,
        pos: &DeviceU32,
    ) -> Result<Residual> {
        let (hd, heads) = (self.head_dim, self.heads);
        let (keys, values) = cache.layer(self.index)?;
        let q = functional::qkv_rope_kv_write(
            x,
            Some(self.input_layernorm.parts()),
            qkv,
            (heads, self.kv_heads),
            rope,
            (keys, values),
            pos,
            self.rope_interleaved,
        )?;
        let scale = 1.0 / (hd as f32).sqrt();
        let a = functional::decode_attention(&q, keys, values, pos, scale)?;
        let attended = LinearFusion {
            residual: Some(x),
            ..Default::default()
        };
        let x =
            functional::linear_fused(&a.reshape([1, heads * hd])?, self.o_proj.weight(), attended)?;
        let normed_swiglu = LinearFusion {
            norm: Some(self.post_attention_layernorm.parts()),
            swiglu: true,
            ..Default::default()
        };
        let h = functional::linear_fused(&x, gate_up, normed_swiglu)?;
        let mlp_out = LinearFusion {
            residual: Some(&x),
            ..Default::default()
        };
        let x = functional::linear_fused(&h, self.mlp.down_proj.weight(), mlp_out)?;
        Ok(Residual::new(x))
    }

    /// Grouped-query causal self-attention of `h` (`[seq, hidden]`) over the cached positions
    /// and its own. Returns `[seq, hidden]`.
    fn self_attn(&self, h: &Tensor, rope: &RopeTable, cache: &KvCache) -> Result<Tensor> {
        let seq = h.dims()[0];
        let pos = cache.len();
        let (hd, interleaved) = (self.head_dim, self.rope_interleaved);
        // [seq, heads, head_dim] and [seq, kv_heads, head_dim]
        let [q, k, v] = <[Tensor; 3]>::try_from(self.qkv.forward(h)?)
            .map_err(|_| crate::Error::invalid("LlamaLayer", "qkv has three parts"))?;
        let q = q.contiguous()?.reshape([seq, self.heads, hd])?;
        let k = k.contiguous()?.reshape([seq, self.kv_heads, hd])?;
        let v = v.contiguous()?.reshape([seq, self.kv_heads, hd])?;
        if seq == 1 {
            // RoPE, the cache write and attention run on this thread; meanwhile o_proj's
            // weights can stream in.
            self.o_proj.prefetch_in_background();
        }
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
