//! The hyper-parameters of a Llama-family model, as read from a checkpoint's metadata.

/// Everything the Llama forward needs to know about a checkpoint's shapes.
#[derive(Clone, Debug, PartialEq)]
pub struct LlamaConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub rope_theta: f32,
    pub rms_norm_eps: f32,
    /// The longest context the checkpoint was trained for.
    pub max_position_embeddings: usize,
    /// The LM head is the token embedding (no separate `lm_head.weight`).
    pub tie_word_embeddings: bool,
    /// RoPE rotates adjacent pairs `(x[2i], x[2i+1])` (GGUF files, whose converter permuted the
    /// Q/K rows for it) instead of halves `(x[i], x[i + d/2])` (HF checkpoints).
    pub rope_interleaved: bool,
}

impl LlamaConfig {
    /// SmolLM2-135M's shapes (tied embeddings, GQA 9/3, head dim 64).
    pub fn smollm2_135m() -> Self {
        LlamaConfig {
            vocab_size: 49152,
            hidden_size: 576,
            intermediate_size: 1536,
            num_layers: 30,
            num_heads: 9,
            num_kv_heads: 3,
            head_dim: 64,
            rope_theta: 100000.0,
            rms_norm_eps: 1e-5,
            max_position_embeddings: 8192,
            tie_word_embeddings: true,
            rope_interleaved: false,
        }
    }

    /// Llama-2-7B's shapes.
    pub fn llama2_7b() -> Self {
        LlamaConfig {
            vocab_size: 32000,
            hidden_size: 4096,
            intermediate_size: 11008,
            num_layers: 32,
            num_heads: 32,
            num_kv_heads: 32,
            head_dim: 128,
            rope_theta: 10000.0,
            rms_norm_eps: 1e-5,
            max_position_embeddings: 4096,
            tie_word_embeddings: false,
            rope_interleaved: false,
        }
    }

    /// Llama-3-8B's shapes (GQA 32/8, 128k vocabulary).
    pub fn llama3_8b() -> Self {
        LlamaConfig {
            vocab_size: 128256,
            hidden_size: 4096,
            intermediate_size: 14336,
            num_layers: 32,
            num_heads: 32,
            num_kv_heads: 8,
            head_dim: 128,
            rope_theta: 500000.0,
            rms_norm_eps: 1e-5,
            max_position_embeddings: 8192,
            tie_word_embeddings: false,
            rope_interleaved: false,
        }
    }
}
