//! NanoInfer's library: tensors, the CPU and CUDA backends, `nn` modules, the Llama model,
//! loaders, tokenizer, sampler and generation loop.

pub mod backend;
pub mod error;
pub mod functional;
pub mod generate;
pub mod kv_cache;
pub mod loaders;
pub mod models;
pub mod nn;
pub mod sampler;
pub mod tensor;
pub mod tokenizer;

pub use error::{Error, Result};
pub use kv_cache::KvCache;
pub use models::{GraphDecoder, Llama, LlamaConfig};
pub use sampler::{Sampler, SamplerConfig};
pub use tensor::{DType, Device, QuantizedTensor, Shape, Tensor};
