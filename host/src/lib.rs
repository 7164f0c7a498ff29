//! NanoInfer's library: tensors, the CPU and CUDA backends, `nn` modules, the Llama model,
//! loaders, tokenizer, sampler and generation loop.

pub mod backend;
pub mod error;
pub mod functional;
pub mod loaders;
pub mod models;
pub mod nn;
pub mod tensor;
pub mod tokenizer;

pub use error::{Error, Result};
pub use tensor::{DType, Device, Shape, Tensor};
