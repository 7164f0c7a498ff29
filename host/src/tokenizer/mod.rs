//! Tokenizers: byte-level BPE (GPT-2 / SmolLM2 / Llama 3) and SentencePiece BPE (Llama 1/2),
//! built from GGUF metadata ([`TokenizerSpec`]) or an HF `tokenizer.json` folder.
//!
//! [`Tokenizer`] is the one entry point: `encode` finds special tokens written in the text
//! (`<|im_start|>`), pre-tokenizes the rest and merges each word; `decode` and [`DecodeStream`]
//! turn ids back into text; `apply_chat_template` renders a conversation with the model's Jinja
//! template. The files, in the order text flows through them:
//!
//! | file | what |
//! |---|---|
//! | `spec.rs` | [`TokenizerSpec`], what loaders fill in |
//! | `hf_json.rs` | a spec from `tokenizer.json` + `tokenizer_config.json` |
//! | `special.rs` | special/added tokens matched in the text, leftmost-longest |
//! | `pretokenize.rs` | the GPT-2 / `smollm` / `llama-bpe` split rules, by hand |
//! | `bpe.rs` | merging by rank (HF's algorithm), the byte-level alphabet |
//! | `sentencepiece.rs` | `▁` spaces, merging by score (llama.cpp) or rank, `<0xNN>` fallback |
//! | `decode.rs` | ids to bytes to text, incremental decoding |
//! | `chat.rs` | chat templates through `minijinja`, ChatML fallback |
//!
//! ```no_run
//! use nano_infer_host::tokenizer::{ChatMessage, Tokenizer};
//! # fn demo() -> nano_infer_host::Result<()> {
//! let tok = Tokenizer::from_hf_dir("SmolLM2-135M-Instruct")?;
//! let prompt = tok.apply_chat_template(&[ChatMessage::new("user", "Hi!")], true)?;
//! let ids = tok.encode(&prompt, true)?;
//! assert_eq!(tok.decode(&ids)?, prompt);
//! # Ok(()) }
//! ```
//!
//! Tested against HF `tokenizers`/`transformers` in `host/tests/tokenizer.rs`, with fixtures
//! written by `scripts/tokenizer_reference.py`.

mod bpe;
mod chat;
mod decode;
mod hf_json;
mod pretokenize;
mod sentencepiece;
mod spec;
mod special;

use std::collections::HashMap;
use std::path::Path;

pub use chat::ChatMessage;
pub use decode::DecodeStream;
pub use spec::{TokenizerKind, TokenizerSpec};

use bpe::{ByteLevel, MergeTable, Vocab};
use chat::ChatTemplate;
use pretokenize::PreTokenizer;
use sentencepiece::{Merging, SentencePiece, SpacePrefix};
use special::{Segment, SpecialMatcher};

use crate::{Error, Result};

/// Behaviour that a GGUF file implies by convention and a `tokenizer.json` spells out.
#[derive(Clone, Debug)]
pub(crate) struct Options {
    /// Byte-level: a pre-token that is itself a vocabulary entry skips merging (Llama 3).
    pub(crate) ignore_merges: bool,
    /// SentencePiece: when a text segment gets a leading `▁`.
    pub(crate) space_prefix: SpacePrefix,
    /// SentencePiece: merge each `▁word` on its own (HF `Metaspace(split = true)`).
    pub(crate) split_words: bool,
    /// SentencePiece by rank: consecutive unknown chars give one unknown token.
    pub(crate) fuse_unk: bool,
    /// Decoding drops one leading space (the one the space prefix added).
    pub(crate) strip_leading_space: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            ignore_merges: false,
            space_prefix: SpacePrefix::Always,
            split_words: false,
            fuse_unk: false,
            strip_leading_space: false,
        }
    }
}

impl Options {
    /// llama.cpp's conventions for a GGUF vocabulary.
    fn for_gguf(kind: TokenizerKind, pre: &str) -> Result<Self> {
        Ok(match kind {
            TokenizerKind::ByteLevelBpe => Self {
                ignore_merges: PreTokenizer::from_gguf_name(pre)? == PreTokenizer::Llama3,
                ..Self::default()
            },
            // `tokenizer.ggml.add_space_prefix` defaults to true, and llama.cpp then strips the
            // space again when decoding the first token.
            TokenizerKind::SentencePiece => Self {
                strip_leading_space: true,
                ..Self::default()
            },
        })
    }
}

// One per tokenizer, so the 3 kB of byte tables inline are not worth a box.
#[allow(clippy::large_enum_variant)]
enum Model {
    ByteLevel { pre: PreTokenizer, bpe: ByteLevel },
    SentencePiece(SentencePiece),
}

/// A ready-to-use tokenizer. Cheap to share across threads (`&Tokenizer` is all it needs).
pub struct Tokenizer {
    kind: TokenizerKind,
    /// Token strings by id, as the model file spells them.
    tokens: Vec<String>,
    vocab: Vocab,
    model: Model,
    specials: SpecialMatcher,
    /// The bytes each id decodes to.
    pieces: Vec<Box<[u8]>>,
    bos_id: Option<u32>,
    eos_id: Option<u32>,
    unk_id: Option<u32>,
    add_bos: bool,
    add_eos: bool,
    pub(crate) strip_leading_space: bool,
    chat: ChatTemplate,
}

impl Tokenizer {
    /// Builds a tokenizer from model-file metadata, following llama.cpp's conventions for GGUF.
    pub fn from_spec(spec: &TokenizerSpec) -> Result<Self> {
        let kind = spec.kind.ok_or_else(|| Error::Unsupported {
            format: "tokenizer",
            what: "a vocabulary without a model type (tokenizer.ggml.model)".into(),
        })?;
        Self::build(spec, Options::for_gguf(kind, &spec.pre)?)
    }

    /// Builds a tokenizer from an HF model folder (`tokenizer.json`, `tokenizer_config.json`).
    pub fn from_hf_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let (spec, options) = hf_json::load_dir(dir.as_ref())?;
        Self::build(&spec, options)
    }

    fn build(spec: &TokenizerSpec, options: Options) -> Result<Self> {
        let bad = |what: &str, detail: String| Error::format("tokenizer", what, detail);
        let kind = spec.kind.unwrap_or(TokenizerKind::ByteLevelBpe);
        let n = spec.tokens.len();
        if n == 0 || u32::try_from(n).is_err() {
            return Err(bad("tokens", format!("{n} tokens")));
        }
        if !spec.token_types.is_empty() && spec.token_types.len() != n {
            let got = spec.token_types.len();
            return Err(bad("token_types", format!("{got} types for {n} tokens")));
        }
        for (name, id) in [
            ("bos", spec.bos_id),
            ("eos", spec.eos_id),
            ("unk", spec.unk_id),
        ] {
            if id.is_some_and(|id| id as usize >= n) {
                return Err(bad(name, format!("id {id:?} is past the {n} tokens")));
            }
        }
        let mut vocab = Vocab::with_capacity_and_hasher(n, Default::default());
        for (id, token) in spec.tokens.iter().enumerate() {
            // A repeated spelling keeps its first id.
            vocab.entry(token.clone()).or_insert(id as u32);
        }
        let merge_table = || {
            let pairs: Result<Vec<_>> = spec
                .merges
                .iter()
                .map(|m| MergeTable::split_line(m))
                .collect();
            MergeTable::new(pairs?, &vocab)
        };
        let model = match kind {
            TokenizerKind::ByteLevelBpe => Model::ByteLevel {
                pre: PreTokenizer::from_gguf_name(&spec.pre)?,
                bpe: ByteLevel::new(&vocab, merge_table()?, options.ignore_merges),
            },
            TokenizerKind::SentencePiece => {
                let merging = if !spec.merges.is_empty() {
                    Merging::Ranks(merge_table()?)
                } else if spec.scores.len() == n {
                    Merging::Scores(spec.scores.clone())
                } else {
                    let got = spec.scores.len();
                    return Err(bad("scores", format!("{got} scores for {n} tokens")));
                };
                let mut spm = SentencePiece::new(&spec.tokens, &spec.token_types, &vocab, merging);
                spm.prefix = options.space_prefix;
                spm.split_words = options.split_words;
                spm.fuse_unk = options.fuse_unk;
                Model::SentencePiece(spm)
            }
        };
        // Control (3) and user-defined (4) tokens are matched in the text; without types, BOS
        // and EOS are.
        let is_special = |id: usize| match spec.token_types.get(id) {
            Some(ty) => matches!(ty, 3 | 4),
            None => [spec.bos_id, spec.eos_id].contains(&Some(id as u32)),
        };
        let specials = SpecialMatcher::new(
            (0..n)
                .filter(|&id| is_special(id))
                .map(|id| (spec.tokens[id].clone(), id as u32)),
        );
        Ok(Self {
            kind,
            pieces: decode::token_bytes(kind, &spec.tokens, &spec.token_types),
            tokens: spec.tokens.clone(),
            vocab,
            model,
            specials,
            bos_id: spec.bos_id,
            eos_id: spec.eos_id,
            unk_id: spec.unk_id,
            add_bos: spec.add_bos,
            add_eos: spec.add_eos,
            strip_leading_space: options.strip_leading_space,
            chat: ChatTemplate::new(spec.chat_template.as_deref()),
        })
    }

    /// Text to token ids. Special tokens written in the text (`<|im_start|>`) become their
    /// single ids. With `add_special`, BOS/EOS are added where the model asks for them
    /// (`add_bos`/`add_eos`; SmolLM2 adds neither).
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>> {
        let mut ids = Vec::with_capacity(text.len() / 3 + 2);
        if add_special && self.add_bos {
            ids.push(self.required(self.bos_id, "BOS")?);
        }
        // Each distinct pre-token is merged once; repeats copy the ids it produced. (SipHash
        // here: the keys are user text.)
        let mut seen: HashMap<&str, (usize, usize)> = HashMap::new();
        let mut words = Vec::new();
        for (k, segment) in self.specials.split(text).into_iter().enumerate() {
            let text = match segment {
                Segment::Special(id) => {
                    ids.push(id);
                    continue;
                }
                Segment::Text(text) => text,
            };
            match &self.model {
                Model::ByteLevel { pre, bpe } => {
                    words.clear();
                    pre.split(text, &mut words);
                    for &word in &words {
                        if let Some(&(start, end)) = seen.get(word) {
                            ids.extend_from_within(start..end);
                            continue;
                        }
                        let start = ids.len();
                        bpe.encode_word(word, &self.vocab, self.unk_id, &mut ids)?;
                        seen.insert(word, (start, ids.len()));
                    }
                }
                Model::SentencePiece(spm) => {
                    spm.encode_segment(text, k == 0, &self.vocab, self.unk_id, &mut ids)?;
                }
            }
        }
        if add_special && self.add_eos {
            ids.push(self.required(self.eos_id, "EOS")?);
        }
        Ok(ids)
    }

    fn required(&self, id: Option<u32>, name: &str) -> Result<u32> {
        id.ok_or_else(|| Error::Tokenizer {
            reason: format!("the model asks for a {name} token but names none"),
        })
    }

    /// Token ids to text. Special tokens are written out; invalid UTF-8 becomes U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        decode::decode(self, ids)
    }

    /// An incremental decoder for streaming output (see [`DecodeStream`]).
    pub fn decode_stream(&self) -> DecodeStream<'_> {
        DecodeStream::new(self)
    }

    /// The bytes of one token.
    pub(crate) fn piece(&self, id: u32) -> Result<&[u8]> {
        self.pieces
            .get(id as usize)
            .map(|p| &p[..])
            .ok_or_else(|| Error::Tokenizer {
                reason: format!(
                    "token id {id} is outside the vocabulary of {}",
                    self.pieces.len()
                ),
            })
    }

    /// Renders a conversation with the model's chat template (ChatML if it has none), exactly
    /// as HF `apply_chat_template(messages, tokenize=False, add_generation_prompt=...)`.
    pub fn apply_chat_template(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String> {
        let name = |id: Option<u32>| id.and_then(|id| self.token_str(id)).unwrap_or("");
        self.chat.render(
            messages,
            add_generation_prompt,
            name(self.bos_id),
            name(self.eos_id),
        )
    }

    /// The number of token ids (the embedding table's rows).
    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    /// Byte-level BPE or SentencePiece.
    pub fn kind(&self) -> TokenizerKind {
        self.kind
    }

    /// The beginning-of-sequence token, if the model names one.
    pub fn bos_id(&self) -> Option<u32> {
        self.bos_id
    }

    /// The end-of-sequence token: generation stops when it is sampled.
    pub fn eos_id(&self) -> Option<u32> {
        self.eos_id
    }

    /// Whether `encode(.., true)` prepends BOS.
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    /// A token as the model file spells it (`Ġworld`, `▁world`, `<|im_end|>`).
    pub fn token_str(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// The id of a token spelled exactly `token`.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.vocab.get(token).copied()
    }

    /// How many tokens are matched as special tokens in the text.
    pub fn special_token_count(&self) -> usize {
        self.specials.len()
    }
}
