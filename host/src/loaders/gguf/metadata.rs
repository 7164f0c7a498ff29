//! [`LlamaConfig`] and [`TokenizerSpec`] from GGUF metadata (`{arch}.*` and `tokenizer.ggml.*`).

use super::{GgufFile, MetaArray, MetaValue};
use crate::loaders::WeightSource;
use crate::models::LlamaConfig;
use crate::tokenizer::{TokenizerKind, TokenizerSpec};
use crate::{Error, Result};

/// Architectures whose GGUF tensors and keys follow the Llama layout.
const LLAMA_ARCHS: &[&str] = &["llama"];

fn wrong_type(key: &str, value: &MetaValue, expected: &str) -> Error {
    Error::format(
        "GGUF",
        format!("metadata `{key}`"),
        format!("has type {}, expected {expected}", value.type_name()),
    )
}

fn missing(key: &str) -> Error {
    Error::format(
        "GGUF",
        format!("metadata `{key}`"),
        "required key is missing",
    )
}

/// Typed accessors that fail with the key's name when the type is wrong.
impl GgufFile {
    fn get_usize(&self, key: &str) -> Result<Option<usize>> {
        let Some(v) = self.metadata(key) else {
            return Ok(None);
        };
        match v.as_u64().map(usize::try_from) {
            Some(Ok(n)) => Ok(Some(n)),
            _ => Err(wrong_type(key, v, "a non-negative integer")),
        }
    }

    fn require_usize(&self, key: &str) -> Result<usize> {
        self.get_usize(key)?.ok_or_else(|| missing(key))
    }

    fn get_u32(&self, key: &str) -> Result<Option<u32>> {
        match self.get_usize(key)? {
            None => Ok(None),
            Some(n) => u32::try_from(n).map(Some).map_err(|_| {
                Error::format(
                    "GGUF",
                    format!("metadata `{key}`"),
                    format!("{n} overflows u32"),
                )
            }),
        }
    }

    fn get_f32(&self, key: &str) -> Result<Option<f32>> {
        let Some(v) = self.metadata(key) else {
            return Ok(None);
        };
        v.as_f64()
            .map(|f| Some(f as f32))
            .ok_or_else(|| wrong_type(key, v, "a number"))
    }

    fn get_str(&self, key: &str) -> Result<Option<&str>> {
        let Some(v) = self.metadata(key) else {
            return Ok(None);
        };
        v.as_str()
            .map(Some)
            .ok_or_else(|| wrong_type(key, v, "a string"))
    }

    fn get_bool(&self, key: &str) -> Result<Option<bool>> {
        let Some(v) = self.metadata(key) else {
            return Ok(None);
        };
        v.as_bool()
            .map(Some)
            .ok_or_else(|| wrong_type(key, v, "a bool"))
    }

    fn get_array(&self, key: &str) -> Result<Option<&MetaArray>> {
        let Some(v) = self.metadata(key) else {
            return Ok(None);
        };
        v.as_array()
            .map(Some)
            .ok_or_else(|| wrong_type(key, v, "an array"))
    }
}

/// The config of a Llama-architecture GGUF.
pub fn llama_config(f: &GgufFile) -> Result<LlamaConfig> {
    let arch = f
        .get_str("general.architecture")?
        .ok_or_else(|| missing("general.architecture"))?;
    if !LLAMA_ARCHS.contains(&arch) {
        return Err(Error::Unsupported {
            format: "GGUF",
            what: format!("architecture `{arch}` (supported: {LLAMA_ARCHS:?})"),
        });
    }
    let key = |k: &str| format!("{arch}.{k}");
    if let Some(scaling) = f.get_str(&key("rope.scaling.type"))?
        && scaling != "none"
    {
        return Err(Error::Unsupported {
            format: "GGUF",
            what: format!("RoPE scaling `{scaling}`"),
        });
    }

    let hidden_size = f.require_usize(&key("embedding_length"))?;
    let num_heads = f.require_usize(&key("attention.head_count"))?;
    let num_kv_heads = f
        .get_usize(&key("attention.head_count_kv"))?
        .unwrap_or(num_heads);
    if num_heads == 0 || num_kv_heads == 0 || !num_heads.is_multiple_of(num_kv_heads) {
        return Err(Error::format(
            "GGUF",
            key("attention.head_count_kv"),
            format!("{num_heads} query heads cannot be shared by {num_kv_heads} KV heads"),
        ));
    }
    // `attention.key_length` is the head size where present; for Llama the rotary dimension
    // count equals it.
    let head_dim = match f.get_usize(&key("attention.key_length"))? {
        Some(d) => d,
        None => match f.get_usize(&key("rope.dimension_count"))? {
            Some(d) => d,
            None => hidden_size / num_heads,
        },
    };
    let vocab_size = match f.get_usize(&key("vocab_size"))? {
        Some(v) => v,
        None => match f.get_array("tokenizer.ggml.tokens")? {
            Some(tokens) => tokens.len(),
            None => f
                .tensor_info("model.embed_tokens.weight")
                .map(|t| t.shape[0])
                .ok_or_else(|| missing(&key("vocab_size")))?,
        },
    };
    let config = LlamaConfig {
        vocab_size,
        hidden_size,
        intermediate_size: f.require_usize(&key("feed_forward_length"))?,
        num_layers: f.require_usize(&key("block_count"))?,
        num_heads,
        num_kv_heads,
        head_dim,
        rope_theta: f.get_f32(&key("rope.freq_base"))?.unwrap_or(10000.0),
        rms_norm_eps: f
            .get_f32(&key("attention.layer_norm_rms_epsilon"))?
            .ok_or_else(|| missing(&key("attention.layer_norm_rms_epsilon")))?,
        max_position_embeddings: f.require_usize(&key("context_length"))?,
        tie_word_embeddings: f.tensor_info("lm_head.weight").is_none(),
        rope_interleaved: true,
    };
    let sizes = [
        ("embedding_length", config.hidden_size),
        ("feed_forward_length", config.intermediate_size),
        ("block_count", config.num_layers),
        ("head dim", config.head_dim),
        ("vocab size", config.vocab_size),
    ];
    if let Some((name, _)) = sizes.iter().find(|(_, v)| *v == 0) {
        return Err(Error::format(
            "GGUF",
            "model config",
            format!("{name} is 0"),
        ));
    }
    Ok(config)
}

/// The tokenizer from `tokenizer.ggml.*`, or `None` when the file has no token list.
pub fn tokenizer_spec(f: &GgufFile) -> Result<Option<TokenizerSpec>> {
    let Some(tokens) = f.get_array("tokenizer.ggml.tokens")? else {
        return Ok(None);
    };
    let MetaArray::String(tokens) = tokens else {
        return Err(Error::format(
            "GGUF",
            "metadata `tokenizer.ggml.tokens`",
            "is not an array of strings",
        ));
    };
    let n_tokens = tokens.len();
    let model = f.get_str("tokenizer.ggml.model")?;
    // Unknown tokenizer models keep `kind: None`: the tokenizer builder refuses them by name.
    let kind = match model {
        Some("gpt2") => Some(TokenizerKind::ByteLevelBpe),
        Some("llama") => Some(TokenizerKind::SentencePiece),
        _ => None,
    };
    let merges = match f.get_array("tokenizer.ggml.merges")? {
        None => Vec::new(),
        Some(MetaArray::String(m)) => m.clone(),
        Some(_) => {
            return Err(Error::format(
                "GGUF",
                "metadata `tokenizer.ggml.merges`",
                "is not an array of strings",
            ));
        }
    };
    let scores = match f.get_array("tokenizer.ggml.scores")? {
        None => Vec::new(),
        Some(MetaArray::F32(s)) => s.clone(),
        Some(_) => {
            return Err(Error::format(
                "GGUF",
                "metadata `tokenizer.ggml.scores`",
                "is not an array of f32",
            ));
        }
    };
    let token_types = match f.get_array("tokenizer.ggml.token_type")? {
        None => Vec::new(),
        Some(a) => a
            .to_i64s()
            .and_then(|v| v.into_iter().map(|t| i32::try_from(t).ok()).collect())
            .ok_or_else(|| {
                Error::format(
                    "GGUF",
                    "metadata `tokenizer.ggml.token_type`",
                    "is not an array of i32",
                )
            })?,
    };
    for (key, len) in [("scores", scores.len()), ("token_type", token_types.len())] {
        if len != 0 && len != n_tokens {
            return Err(Error::format(
                "GGUF",
                format!("metadata `tokenizer.ggml.{key}`"),
                format!("{len} entries for {n_tokens} tokens"),
            ));
        }
    }
    // BOS and EOS past the vocabulary are errors (generation depends on them); an unknown or
    // padding id past it is dropped, as llama.cpp does, since some converters write one.
    let token_id = |key: &str, required_in_range: bool| -> Result<Option<u32>> {
        match f.get_u32(key)? {
            Some(id) if id as usize >= n_tokens => {
                if required_in_range {
                    Err(Error::format(
                        "GGUF",
                        format!("metadata `{key}`"),
                        format!("token id {id} is past the {n_tokens}-token vocabulary"),
                    ))
                } else {
                    Ok(None)
                }
            }
            id => Ok(id),
        }
    };
    // llama.cpp adds BOS by default for SentencePiece vocabularies only.
    let default_add_bos = kind == Some(TokenizerKind::SentencePiece);
    Ok(Some(TokenizerSpec {
        kind,
        tokens: tokens.clone(),
        merges,
        scores,
        token_types,
        pre: f
            .get_str("tokenizer.ggml.pre")?
            .unwrap_or("default")
            .to_string(),
        bos_id: token_id("tokenizer.ggml.bos_token_id", true)?,
        eos_id: token_id("tokenizer.ggml.eos_token_id", true)?,
        unk_id: token_id("tokenizer.ggml.unknown_token_id", false)?,
        pad_id: token_id("tokenizer.ggml.padding_token_id", false)?,
        add_bos: f
            .get_bool("tokenizer.ggml.add_bos_token")?
            .unwrap_or(default_add_bos),
        add_eos: f.get_bool("tokenizer.ggml.add_eos_token")?.unwrap_or(false),
        chat_template: f.get_str("tokenizer.chat_template")?.map(str::to_string),
    }))
}
