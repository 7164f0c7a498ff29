//! Tokenizers: byte-level BPE (GPT-2 / SmolLM2) and SentencePiece (Llama), built from GGUF
//! metadata or HF `tokenizer.json`.

mod spec;

pub use spec::{TokenizerKind, TokenizerSpec};
