//! Model definitions.

pub mod config;
pub mod llama;

pub use config::LlamaConfig;
pub use llama::{GraphDecoder, Llama, LlamaLayer};
