//! NanoInfer's library: tensors, the CPU and CUDA backends, `nn` modules, the Llama model,
//! loaders, tokenizer, sampler and generation loop.

pub mod error;
pub mod loaders;
pub mod tensor;

pub use error::{Error, Result};
pub mod models;
pub mod tokenizer;
