//! A [`TokenizerSpec`] from a Hugging Face model folder: `tokenizer.json` (the `tokenizers`
//! pipeline) plus `tokenizer_config.json` (special token names, `add_bos_token`, chat template;
//! a separate `chat_template.jinja` is read too).
//!
//! Two pipelines are recognised, both with a `BPE` model:
//! - byte-level: a `ByteLevel` pre-tokenizer, alone (GPT-2), after `Digits(individual_digits)`
//!   (SmolLM2), or after a `Split` with Llama 3's regex;
//! - SentencePiece-like (Llama 2, Mistral): `▁` for spaces via a `Prepend`/`Replace` normalizer
//!   or a `Metaspace` pre-tokenizer, `<0xNN>` byte fallback, merges by rank.
//!
//! Anything else is [`Error::Unsupported`], naming the component.

use std::path::Path;

use serde_json::Value;

use super::sentencepiece::{SPACE, SpacePrefix};
use super::{Options, TokenizerKind, TokenizerSpec};
use crate::{Error, Result};

/// Llama 3's split regex, as HF writes it in `tokenizer.json`.
const LLAMA3_SPLIT: &str = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

const FORMAT: &str = "tokenizer.json";

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })
}

fn parse_json(text: &str, what: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| Error::format(FORMAT, what, e.to_string()))
}

/// Reads `dir/tokenizer.json` and, when present, `dir/tokenizer_config.json` and
/// `dir/chat_template.jinja`.
pub(crate) fn load_dir(dir: &Path) -> Result<(TokenizerSpec, Options)> {
    let tokenizer = read(&dir.join("tokenizer.json"))?;
    let config_path = dir.join("tokenizer_config.json");
    let config = if config_path.exists() {
        Some(read(&config_path)?)
    } else {
        None
    };
    let template_path = dir.join("chat_template.jinja");
    let template = if template_path.exists() {
        Some(read(&template_path)?)
    } else {
        None
    };
    parse(&tokenizer, config.as_deref(), template)
}

/// `components(x)`: the members of a `Sequence` (`pretokenizers`, `normalizers`, `decoders`), or
/// `x` alone; nothing for `null`.
fn components(v: &Value) -> Vec<&Value> {
    if v.is_null() {
        return Vec::new();
    }
    if v["type"] == "Sequence" {
        for key in ["pretokenizers", "normalizers", "decoders", "processors"] {
            if let Some(items) = v[key].as_array() {
                return items.iter().collect();
            }
        }
    }
    vec![v]
}

fn type_of(v: &Value) -> &str {
    v["type"].as_str().unwrap_or("")
}

/// A special-token entry of `tokenizer_config.json`: a string or `{"content": ...}`.
fn token_name(v: &Value) -> Option<&str> {
    v.as_str().or_else(|| v["content"].as_str())
}

pub(crate) fn parse(
    tokenizer_json: &str,
    config_json: Option<&str>,
    template_file: Option<String>,
) -> Result<(TokenizerSpec, Options)> {
    let root = parse_json(tokenizer_json, "tokenizer.json")?;
    let config = match config_json {
        Some(text) => parse_json(text, "tokenizer_config.json")?,
        None => Value::Null,
    };
    let model = &root["model"];
    let model_type = model["type"].as_str().unwrap_or("BPE");
    if model_type != "BPE" {
        return Err(Error::Unsupported {
            format: FORMAT,
            what: format!("model type `{model_type}` (only BPE)"),
        });
    }

    // Vocabulary plus added tokens; types follow GGUF (1 normal, 3 control, 4 user-defined,
    // 5 unused for holes, 6 byte).
    let vocab = model["vocab"]
        .as_object()
        .ok_or_else(|| Error::format(FORMAT, "model.vocab", "not an object"))?;
    let mut entries: Vec<(u32, &str, i32)> = Vec::with_capacity(vocab.len());
    for (token, id) in vocab {
        entries.push((json_id(id, token)?, token, 1));
    }
    for added in root["added_tokens"].as_array().into_iter().flatten() {
        let content = added["content"]
            .as_str()
            .ok_or_else(|| Error::format(FORMAT, "added_tokens", "entry without content"))?;
        let ty = if added["special"].as_bool().unwrap_or(false) {
            3
        } else {
            4
        };
        entries.push((json_id(&added["id"], content)?, content, ty));
    }
    let n = entries.iter().map(|e| e.0 as usize + 1).max().unwrap_or(0);
    let mut tokens = vec![String::new(); n];
    let mut token_types = vec![5; n];
    for (id, token, ty) in entries {
        tokens[id as usize] = token.to_string();
        token_types[id as usize] = ty;
    }

    let mut merges = Vec::new();
    for m in model["merges"].as_array().into_iter().flatten() {
        let line = match (m.as_str(), m.as_array().map(Vec::as_slice)) {
            (Some(line), _) => line.to_string(),
            (None, Some([Value::String(a), Value::String(b)]))
                if !a.contains(' ') && !b.contains(' ') =>
            {
                format!("{a} {b}")
            }
            _ => {
                return Err(Error::format(
                    FORMAT,
                    "model.merges",
                    format!("bad merge {m}"),
                ));
            }
        };
        merges.push(line);
    }

    let pre_tokenizers = components(&root["pre_tokenizer"]);
    let normalizers = components(&root["normalizer"]);
    let decoders = components(&root["decoder"]);
    let byte_level = pre_tokenizers.iter().any(|p| type_of(p) == "ByteLevel")
        || decoders.iter().any(|d| type_of(d) == "ByteLevel");
    let mut options = Options {
        ignore_merges: model["ignore_merges"].as_bool().unwrap_or(false),
        fuse_unk: model["fuse_unk"].as_bool().unwrap_or(false),
        ..Options::default()
    };
    let (kind, pre) = if byte_level {
        (
            TokenizerKind::ByteLevelBpe,
            byte_level_pre(&pre_tokenizers)?,
        )
    } else {
        metaspace_options(&normalizers, &pre_tokenizers, &decoders, &mut options)?;
        for (ty, token) in token_types.iter_mut().zip(&tokens) {
            if *ty == 1 && token.len() == 6 && token.starts_with("<0x") && token.ends_with('>') {
                *ty = 6;
            }
        }
        (TokenizerKind::SentencePiece, "default".to_string())
    };

    let id_of = |name: Option<&str>| name.and_then(|name| tokens.iter().position(|t| t == name));
    let id_of = |name: Option<&str>| id_of(name).and_then(|i| u32::try_from(i).ok());
    // BOS: the config's name, else the special token the post-processor puts first.
    let template_first = root["post_processor"]["single"][0]["SpecialToken"]["id"].as_str();
    let bos_id = id_of(token_name(&config["bos_token"])).or_else(|| id_of(template_first));
    let add_bos = match config["add_bos_token"].as_bool() {
        Some(add) => add,
        None => template_first.is_some() && id_of(template_first) == bos_id,
    };
    let chat_template = match &config["chat_template"] {
        Value::String(s) => Some(s.clone()),
        Value::Array(named) => named
            .iter()
            .find(|t| t["name"] == "default")
            .or_else(|| named.first())
            .and_then(|t| t["template"].as_str())
            .map(str::to_string),
        _ => None,
    }
    .or(template_file);

    let eos_id = id_of(token_name(&config["eos_token"]));
    let unk_id = id_of(model["unk_token"].as_str()).or(id_of(token_name(&config["unk_token"])));
    let pad_id = id_of(token_name(&config["pad_token"]));
    let spec = TokenizerSpec {
        kind: Some(kind),
        tokens,
        merges,
        scores: Vec::new(),
        token_types,
        pre,
        bos_id,
        eos_id,
        unk_id,
        pad_id,
        add_bos,
        add_eos: config["add_eos_token"].as_bool().unwrap_or(false),
        chat_template,
    };
    Ok((spec, options))
}

fn json_id(v: &Value, token: &str) -> Result<u32> {
    v.as_u64()
        .and_then(|id| u32::try_from(id).ok())
        .ok_or_else(|| {
            Error::format(
                FORMAT,
                format!("id of `{token}`"),
                format!("{v} is not a u32"),
            )
        })
}

/// The GGUF-style pre-tokenizer name of a byte-level pipeline.
fn byte_level_pre(pre: &[&Value]) -> Result<String> {
    let unsupported = || Error::Unsupported {
        format: FORMAT,
        what: format!(
            "byte-level pre-tokenizer sequence {:?}",
            pre.iter().map(|p| type_of(p)).collect::<Vec<_>>()
        ),
    };
    let byte_level = |p: &Value, regex: bool| {
        type_of(p) == "ByteLevel"
            && p["use_regex"].as_bool().unwrap_or(true) == regex
            && !p["add_prefix_space"].as_bool().unwrap_or(false)
    };
    match pre {
        [b] if byte_level(b, true) => Ok("gpt2".into()),
        [d, b]
            if type_of(d) == "Digits" && d["individual_digits"] == true && byte_level(b, true) =>
        {
            Ok("smollm".into())
        }
        [s, b]
            if type_of(s) == "Split"
                && s["pattern"]["Regex"] == LLAMA3_SPLIT
                && s["behavior"] == "Isolated"
                && byte_level(b, false) =>
        {
            Ok("llama-bpe".into())
        }
        _ => Err(unsupported()),
    }
}

/// Where the `▁` comes from and how decoding strips it, for a SentencePiece-like pipeline.
fn metaspace_options(
    normalizers: &[&Value],
    pre: &[&Value],
    decoders: &[&Value],
    options: &mut Options,
) -> Result<()> {
    let space = SPACE.to_string();
    let unsupported = |what: String| Error::Unsupported {
        format: FORMAT,
        what,
    };
    let mut replaces_spaces = false;
    let mut prefix = SpacePrefix::Never;
    for n in normalizers {
        match type_of(n) {
            "Prepend" if n["prepend"] == space.as_str() => prefix = SpacePrefix::Always,
            "Replace" if n["pattern"]["String"] == " " && n["content"] == space.as_str() => {
                replaces_spaces = true;
            }
            other => return Err(unsupported(format!("normalizer `{other}`"))),
        }
    }
    for p in pre {
        match type_of(p) {
            "Metaspace" if p["replacement"] == space.as_str() => {
                replaces_spaces = true;
                let scheme = p["prepend_scheme"].as_str().unwrap_or(
                    if p["add_prefix_space"].as_bool().unwrap_or(true) {
                        "always"
                    } else {
                        "never"
                    },
                );
                prefix = match scheme {
                    "always" => SpacePrefix::UnlessSpace,
                    "first" => SpacePrefix::First,
                    "never" => SpacePrefix::Never,
                    other => {
                        return Err(unsupported(format!("Metaspace prepend_scheme `{other}`")));
                    }
                };
                options.split_words = p["split"].as_bool().unwrap_or(true);
            }
            other => return Err(unsupported(format!("pre-tokenizer `{other}`"))),
        }
    }
    if !replaces_spaces {
        return Err(unsupported(
            "BPE model with neither a byte-level nor a `▁` (Metaspace) pipeline".into(),
        ));
    }
    options.space_prefix = prefix;
    options.strip_leading_space = decoders.iter().any(|d| match type_of(d) {
        "Strip" => d["content"] == " " && d["start"].as_u64().unwrap_or(0) >= 1,
        "Metaspace" => d["prepend_scheme"]
            .as_str()
            .map_or(d["add_prefix_space"].as_bool().unwrap_or(true), |s| {
                s != "never"
            }),
        _ => false,
    });
    Ok(())
}
