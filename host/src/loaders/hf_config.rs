//! [`LlamaConfig`] from a Hugging Face `config.json`.

use serde_json::{Map, Value};

use crate::models::LlamaConfig;
use crate::{Error, Result};

/// `model_type` values whose checkpoints use the Llama layout and tensor names.
const LLAMA_MODEL_TYPES: &[&str] = &["llama"];

fn bad(key: &str, detail: impl Into<String>) -> Error {
    Error::format("config.json", format!("`{key}`"), detail)
}

/// A key's value, treating JSON `null` as absent (HF writes `"head_dim": null`).
fn get<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

fn get_usize(obj: &Map<String, Value>, key: &str) -> Result<Option<usize>> {
    let Some(v) = get(obj, key) else {
        return Ok(None);
    };
    match v.as_u64().map(usize::try_from) {
        Some(Ok(n)) => Ok(Some(n)),
        _ => Err(bad(
            key,
            format!("expected a non-negative integer, got {v}"),
        )),
    }
}

fn require_usize(obj: &Map<String, Value>, key: &str) -> Result<usize> {
    match get_usize(obj, key)? {
        Some(0) => Err(bad(key, "must be positive")),
        Some(n) => Ok(n),
        None => Err(bad(key, "required key is missing")),
    }
}

fn get_f32(obj: &Map<String, Value>, key: &str) -> Result<Option<f32>> {
    let Some(v) = get(obj, key) else {
        return Ok(None);
    };
    v.as_f64()
        .map(|f| Some(f as f32))
        .ok_or_else(|| bad(key, format!("expected a number, got {v}")))
}

fn get_bool(obj: &Map<String, Value>, key: &str) -> Result<Option<bool>> {
    let Some(v) = get(obj, key) else {
        return Ok(None);
    };
    v.as_bool()
        .map(Some)
        .ok_or_else(|| bad(key, format!("expected true or false, got {v}")))
}

/// Parses `config.json` text. Defaults follow `transformers.LlamaConfig` where the key may be
/// omitted (`num_key_value_heads` = heads, `rope_theta` 10000, `rms_norm_eps` 1e-6,
/// `max_position_embeddings` 2048, `tie_word_embeddings` false, `head_dim` = hidden / heads).
pub fn parse_llama_config(text: &str) -> Result<LlamaConfig> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| Error::format("config.json", "JSON", e.to_string()))?;
    let Value::Object(obj) = value else {
        return Err(Error::format("config.json", "JSON", "is not an object"));
    };
    if let Some(v) = get(&obj, "model_type") {
        let model_type = v.as_str().unwrap_or_default();
        if !LLAMA_MODEL_TYPES.contains(&model_type) {
            return Err(Error::Unsupported {
                format: "config.json",
                what: format!("model_type {v} (supported: {LLAMA_MODEL_TYPES:?})"),
            });
        }
    }
    if let Some(scaling) = get(&obj, "rope_scaling") {
        let kind = scaling
            .get("rope_type")
            .or_else(|| scaling.get("type"))
            .and_then(Value::as_str);
        if kind != Some("default") {
            return Err(Error::Unsupported {
                format: "config.json",
                what: format!("rope_scaling {scaling}"),
            });
        }
    }

    let hidden_size = require_usize(&obj, "hidden_size")?;
    let num_heads = require_usize(&obj, "num_attention_heads")?;
    let num_kv_heads = get_usize(&obj, "num_key_value_heads")?.unwrap_or(num_heads);
    if num_kv_heads == 0 || !num_heads.is_multiple_of(num_kv_heads) {
        return Err(bad(
            "num_key_value_heads",
            format!("{num_heads} query heads cannot be shared by {num_kv_heads} KV heads"),
        ));
    }
    let head_dim = get_usize(&obj, "head_dim")?.unwrap_or(hidden_size / num_heads);
    if head_dim == 0 {
        return Err(bad("head_dim", "must be positive"));
    }
    Ok(LlamaConfig {
        vocab_size: require_usize(&obj, "vocab_size")?,
        hidden_size,
        intermediate_size: require_usize(&obj, "intermediate_size")?,
        num_layers: require_usize(&obj, "num_hidden_layers")?,
        num_heads,
        num_kv_heads,
        head_dim,
        rope_theta: get_f32(&obj, "rope_theta")?.unwrap_or(10000.0),
        rms_norm_eps: get_f32(&obj, "rms_norm_eps")?.unwrap_or(1e-6),
        max_position_embeddings: get_usize(&obj, "max_position_embeddings")?.unwrap_or(2048),
        tie_word_embeddings: get_bool(&obj, "tie_word_embeddings")?.unwrap_or(false),
        rope_interleaved: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SmolLM2-135M-Instruct's `config.json`, trimmed to the keys that matter.
    const SMOLLM2: &str = r#"{
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
        "num_attention_heads": 9, "num_key_value_heads": 3, "rope_theta": 100000,
        "rms_norm_eps": 1e-05, "max_position_embeddings": 8192, "tie_word_embeddings": true,
        "vocab_size": 49152, "rope_scaling": null, "head_dim": null
    }"#;

    #[test]
    fn smollm2_config() {
        let c = parse_llama_config(SMOLLM2).unwrap();
        assert_eq!(c, LlamaConfig::smollm2_135m());
    }

    #[test]
    fn defaults_and_errors() {
        let minimal = r#"{"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 4, "vocab_size": 100}"#;
        let c = parse_llama_config(minimal).unwrap();
        assert_eq!((c.num_kv_heads, c.head_dim, c.rope_theta), (4, 16, 10000.0));
        assert!(!c.tie_word_embeddings && !c.rope_interleaved);

        let err = |text: &str| parse_llama_config(text).unwrap_err().to_string();
        assert!(err("[1, 2]").contains("not an object"));
        assert!(err("{").contains("JSON"));
        assert!(err(r#"{"hidden_size": 64}"#).contains("num_attention_heads"));
        assert!(err(r#"{"hidden_size": -1}"#).contains("non-negative integer"));
        assert!(err(r#"{"model_type": "bert"}"#).contains("unsupported"));
        let scaled = minimal.replace('}', r#", "rope_scaling": {"rope_type": "llama3"}}"#);
        assert!(err(&scaled).contains("rope_scaling"));
        let bad_kv = minimal.replace('}', r#", "num_key_value_heads": 3}"#);
        assert!(err(&bad_kv).contains("num_key_value_heads"));
    }
}
