//! Hugging Face safetensors checkpoints: one `model.safetensors` or shards listed by
//! `model.safetensors.index.json`, with `config.json` beside them.
//!
//! A safetensors file is `header_len: u64` (little-endian), a JSON object of `header_len` bytes
//! mapping each tensor name to `{"dtype", "shape", "data_offsets": [begin, end]}` (offsets
//! relative to the end of the header; an optional `"__metadata__"` entry holds strings), then
//! the data. Names, shapes (outermost-first) and layout are already what [`WeightSource`]
//! promises, so no renaming or permutation happens here; RoPE is the half-split variant
//! (`rope_interleaved = false`).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;

use super::{Bytes, StorageType, TensorInfo, WeightSource, hf_config, io_error};
use crate::models::LlamaConfig;
use crate::tokenizer::TokenizerSpec;
use crate::{Error, Result};

/// The single-file checkpoint's name.
pub const SINGLE_FILE: &str = "model.safetensors";
/// The sharded checkpoint's index.
pub const INDEX_FILE: &str = "model.safetensors.index.json";
/// Headers larger than this are refused (the reference implementation's limit).
pub const MAX_HEADER_BYTES: usize = 100_000_000;

const FORMAT: &str = "safetensors";

/// One tensor: canonical info and where its bytes are.
struct Entry {
    info: TensorInfo,
    shard: usize,
    /// Absolute byte range inside the shard (checked to lie inside it).
    start: usize,
    len: usize,
}

/// A safetensors checkpoint (one or several files) and its `config.json`.
pub struct SafetensorsModel {
    shards: Vec<Bytes>,
    tensors: Vec<Entry>,
    by_name: HashMap<String, usize>,
    /// `config.json`'s path, read when the config is asked for.
    config_path: Option<PathBuf>,
    /// `config.json`'s text when the model was built in memory.
    config_text: Option<String>,
}

impl SafetensorsModel {
    /// Opens a directory (holding `model.safetensors.index.json` or `model.safetensors`), an
    /// index file, or a single `.safetensors` file. `config.json` is looked for beside it.
    pub fn open(path: &Path) -> Result<Self> {
        let (dir, index) = if path.is_dir() {
            let index = path.join(INDEX_FILE);
            if index.is_file() {
                (path.to_path_buf(), Some(index))
            } else {
                return Self::open_files(&[path.join(SINGLE_FILE)], path);
            }
        } else {
            let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
            let is_index = path.extension().is_some_and(|e| e == "json");
            (dir, is_index.then(|| path.to_path_buf()))
        };
        match index {
            Some(index) => Self::open_sharded(&index, &dir),
            None => Self::open_files(&[path.to_path_buf()], &dir),
        }
    }

    /// Builds a model from in-memory files (tests, fixtures) and optional `config.json` text.
    pub fn from_bytes(files: Vec<Vec<u8>>, config_json: Option<String>) -> Result<Self> {
        let names: Vec<String> = (0..files.len()).map(|i| format!("file #{i}")).collect();
        let shards = files.into_iter().map(Bytes::Owned).collect();
        let mut model = Self::from_shards(shards, &names)?;
        model.config_text = config_json;
        Ok(model)
    }

    fn open_sharded(index: &Path, dir: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(index).map_err(|source| io_error(index, source))?;
        let weight_map = parse_index(&text)?;
        let mut files: Vec<&str> = Vec::new();
        for file in weight_map.values() {
            if !files.contains(&file.as_str()) {
                files.push(file);
            }
        }
        files.sort_unstable();
        let paths: Vec<PathBuf> = files.iter().map(|f| dir.join(f)).collect();
        let model = Self::open_files(&paths, dir)?;
        for (name, file) in &weight_map {
            let shard = files.iter().position(|f| f == file);
            let found = model.by_name.get(name).map(|&i| model.tensors[i].shard);
            if found.is_none() || found != shard {
                return Err(Error::format(
                    FORMAT,
                    INDEX_FILE,
                    format!("`{name}` is listed in {file} but not stored there"),
                ));
            }
        }
        Ok(model)
    }

    fn open_files(paths: &[PathBuf], dir: &Path) -> Result<Self> {
        let shards = paths
            .iter()
            .map(|p| Bytes::map(p))
            .collect::<Result<Vec<_>>>()?;
        let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        let mut model = Self::from_shards(shards, &names)?;
        model.config_path = Some(dir.join("config.json"));
        Ok(model)
    }

    fn from_shards(shards: Vec<Bytes>, names: &[String]) -> Result<Self> {
        let mut tensors = Vec::new();
        for (shard, bytes) in shards.iter().enumerate() {
            parse_header(bytes.as_slice(), shard, &names[shard], &mut tensors)?;
        }
        // File order: by shard, then by position in the shard.
        tensors.sort_by_key(|e| (e.shard, e.start));
        let mut by_name = HashMap::with_capacity(tensors.len());
        for (i, e) in tensors.iter().enumerate() {
            if by_name.insert(e.info.name.clone(), i).is_some() {
                return Err(Error::format(
                    FORMAT,
                    format!("tensor `{}`", e.info.name),
                    "stored in more than one shard",
                ));
            }
        }
        Ok(SafetensorsModel {
            shards,
            tensors,
            by_name,
            config_path: None,
            config_text: None,
        })
    }

    fn entry(&self, name: &str) -> Result<&Entry> {
        self.by_name
            .get(name)
            .map(|&i| &self.tensors[i])
            .ok_or_else(|| Error::MissingTensor {
                name: name.to_string(),
            })
    }
}

impl WeightSource for SafetensorsModel {
    fn format(&self) -> &'static str {
        FORMAT
    }

    fn llama_config(&self) -> Result<LlamaConfig> {
        if let Some(text) = &self.config_text {
            return hf_config::parse_llama_config(text);
        }
        let path = self.config_path.as_deref().ok_or_else(|| Error::Io {
            path: "config.json".into(),
            source: std::io::ErrorKind::NotFound.into(),
        })?;
        let text = std::fs::read_to_string(path).map_err(|source| io_error(path, source))?;
        hf_config::parse_llama_config(&text)
    }

    fn tensor_info(&self, name: &str) -> Option<&TensorInfo> {
        self.entry(name).ok().map(|e| &e.info)
    }

    fn tensor_names(&self) -> Vec<String> {
        self.tensors.iter().map(|e| e.info.name.clone()).collect()
    }

    fn raw_bytes(&self, name: &str) -> Result<&[u8]> {
        let e = self.entry(name)?;
        // The range was checked against the shard's length at parse time.
        Ok(&self.shards[e.shard].as_slice()[e.start..e.start + e.len])
    }

    fn tokenizer_spec(&self) -> Result<Option<TokenizerSpec>> {
        Ok(None)
    }
}

/// `weight_map` of an index file: tensor name → shard file name (checked to be a plain file
/// name, so a hostile index cannot point outside the checkpoint's directory).
fn parse_index(text: &str) -> Result<HashMap<String, String>> {
    let index: Value =
        serde_json::from_str(text).map_err(|e| Error::format(FORMAT, INDEX_FILE, e.to_string()))?;
    let Some(map) = index.get("weight_map").and_then(Value::as_object) else {
        return Err(Error::format(FORMAT, INDEX_FILE, "no `weight_map` object"));
    };
    let mut out = HashMap::with_capacity(map.len());
    for (name, file) in map {
        let file = file.as_str().unwrap_or_default();
        let plain = !file.is_empty()
            && file != "."
            && file != ".."
            && !file.contains(['/', '\\'])
            && Path::new(file).file_name().is_some_and(|f| f == file);
        if !plain {
            return Err(Error::format(
                FORMAT,
                INDEX_FILE,
                format!("`{name}` points to {file:?}, which is not a plain file name"),
            ));
        }
        out.insert(name.clone(), file.to_string());
    }
    Ok(out)
}

/// The header's top-level entries, in order, keeping duplicates (which `serde_json::Value`
/// would silently merge) so that they can be reported.
struct HeaderEntries(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for HeaderEntries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct EntriesVisitor;
        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = HeaderEntries;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object of tensor entries")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<HeaderEntries, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, Value>()? {
                    entries.push(entry);
                }
                Ok(HeaderEntries(entries))
            }
        }
        d.deserialize_map(EntriesVisitor)
    }
}

/// Parses one file's header and appends its tensors (checked against the file's length).
fn parse_header(bytes: &[u8], shard: usize, file: &str, out: &mut Vec<Entry>) -> Result<()> {
    let err =
        |what: String, detail: String| Error::format(FORMAT, format!("{file}: {what}"), detail);
    let Some((len_bytes, rest)) = bytes.split_first_chunk::<8>() else {
        return Err(err(
            "header length".into(),
            format!("file has {} bytes, fewer than 8", bytes.len()),
        ));
    };
    let header_len = u64::from_le_bytes(*len_bytes);
    let header_len = match usize::try_from(header_len) {
        Ok(n) if n <= rest.len() && n <= MAX_HEADER_BYTES => n,
        _ => {
            return Err(err(
                "header length".into(),
                format!(
                    "{header_len} bytes, but {} follow (limit {MAX_HEADER_BYTES})",
                    rest.len()
                ),
            ));
        }
    };
    let (header, data) = rest.split_at(header_len);
    let data_start = 8 + header_len;
    let HeaderEntries(entries) =
        serde_json::from_slice(header).map_err(|e| err("header JSON".into(), e.to_string()))?;
    let mut seen = HashMap::with_capacity(entries.len());
    for (name, value) in entries {
        if seen.insert(name.clone(), ()).is_some() {
            return Err(err(format!("tensor `{name}`"), "duplicate name".into()));
        }
        if name == "__metadata__" {
            continue;
        }
        let (dtype, shape, begin, end) =
            tensor_entry(&value).map_err(|detail| err(format!("tensor `{name}`"), detail))?;
        let dtype = match dtype {
            "F32" => StorageType::F32,
            "F16" => StorageType::F16,
            "BF16" => StorageType::BF16,
            other => {
                return Err(Error::Unsupported {
                    format: FORMAT,
                    what: format!("{file}: tensor `{name}` has dtype {other}"),
                });
            }
        };
        let n = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
        let len = n.and_then(|n| dtype.byte_len(n));
        let Some(len) = len else {
            return Err(err(
                format!("tensor `{name}`"),
                format!("size of {shape:?} overflows"),
            ));
        };
        if begin > end || end > data.len() || end - begin != len {
            return Err(err(
                format!("tensor `{name}`"),
                format!(
                    "data_offsets [{begin}, {end}) do not hold {shape:?} {} ({len} bytes) \
                     inside the {}-byte data section",
                    dtype.name(),
                    data.len()
                ),
            ));
        }
        out.push(Entry {
            info: TensorInfo { name, shape, dtype },
            shard,
            start: data_start + begin,
            len,
        });
    }
    Ok(())
}

/// A tensor entry's `(dtype, shape, begin, end)`, or what is wrong with it.
fn tensor_entry(v: &Value) -> std::result::Result<(&str, Vec<usize>, usize, usize), String> {
    let obj = v.as_object().ok_or("entry is not an object")?;
    let dtype = obj
        .get("dtype")
        .and_then(Value::as_str)
        .ok_or("no string `dtype`")?;
    let as_usizes = |key: &str| -> std::result::Result<Vec<usize>, String> {
        obj.get(key)
            .and_then(Value::as_array)
            .ok_or_else(|| format!("no array `{key}`"))?
            .iter()
            .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
            .collect::<Option<Vec<usize>>>()
            .ok_or_else(|| format!("`{key}` holds something other than non-negative integers"))
    };
    let shape = as_usizes("shape")?;
    let offsets = as_usizes("data_offsets")?;
    let [begin, end] = offsets[..] else {
        return Err(format!(
            "`data_offsets` has {} values, expected 2",
            offsets.len()
        ));
    };
    Ok((dtype, shape, begin, end))
}
