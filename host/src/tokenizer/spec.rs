//! What a tokenizer is built from, independent of the file it came from (GGUF metadata or HF
//! `tokenizer.json`).

/// Which algorithm the vocabulary is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenizerKind {
    /// GPT-2 style byte-level BPE (`tokenizer.ggml.model = gpt2`).
    ByteLevelBpe,
    /// Llama SentencePiece BPE with byte fallback (`tokenizer.ggml.model = llama`).
    SentencePiece,
}

/// The raw parts of a tokenizer, as stored in a model file.
#[derive(Clone, Debug, Default)]
pub struct TokenizerSpec {
    pub kind: Option<TokenizerKind>,
    /// Token strings by id.
    pub tokens: Vec<String>,
    /// BPE merges, `"a b"` each, highest priority first (byte-level BPE).
    pub merges: Vec<String>,
    /// Token scores (SentencePiece).
    pub scores: Vec<f32>,
    /// GGUF token types (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte).
    pub token_types: Vec<i32>,
    /// The pre-tokenizer name (`tokenizer.ggml.pre`, e.g. `smollm`, `llama-bpe`, `default`).
    pub pre: String,
    pub bos_id: Option<u32>,
    pub eos_id: Option<u32>,
    pub unk_id: Option<u32>,
    pub pad_id: Option<u32>,
    pub add_bos: bool,
    pub add_eos: bool,
    /// The Jinja chat template, if the file has one.
    pub chat_template: Option<String>,
}
