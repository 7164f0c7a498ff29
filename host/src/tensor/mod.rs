//! Tensors: [`DType`], [`Shape`]/[`Layout`], and the [`Tensor`] handle.

mod dtype;
mod layout;

pub use dtype::{DType, Element};
pub use layout::{Layout, Shape};
