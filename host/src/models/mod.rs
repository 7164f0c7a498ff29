//! Model definitions.

pub mod config;

pub use config::LlamaConfig;
