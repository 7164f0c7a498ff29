//! Tensors: [`DType`], [`Shape`]/[`Layout`], [`Storage`], [`Device`] and the [`Tensor`] handle;
//! [`QuantizedTensor`] for weights kept in ggml block formats.

mod device;
mod dtype;
mod layout;
pub mod quant_pack;
mod quantized;
mod random;
mod storage;
#[allow(clippy::module_inception)]
mod tensor;

pub use device::Device;
pub use dtype::{DType, Element};
pub use layout::{Layout, Shape};
pub use quant_pack::QuantFormat;
pub use quantized::{QuantizedTensor, SharedBytes};
pub use storage::{CpuStorage, Storage};
pub use tensor::Tensor;
pub(crate) use tensor::check_same_device;
