//! The one error type of the library.
//!
//! Every fallible operation returns [`Result`]. Variants carry structured fields (the op, what
//! was expected, what was found) so that a caller can match on them and a user reads a sentence
//! that names the problem. Nothing a user's input can cause panics.

use crate::tensor::DType;

/// Everything that can go wrong inside NanoInfer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Two shapes that must agree do not.
    #[error("{op}: shape mismatch: expected {expected}, got {got}")]
    ShapeMismatch {
        op: &'static str,
        expected: String,
        got: String,
    },
    /// An op got a tensor of the wrong element type.
    #[error("{op}: dtype mismatch: expected {expected:?}, got {got:?}")]
    DTypeMismatch {
        op: &'static str,
        expected: DType,
        got: DType,
    },
    /// An op has no implementation for this element type.
    #[error("{op}: dtype {dtype:?} is not supported")]
    UnsupportedDType { op: &'static str, dtype: DType },
    /// The inputs of one op live on different devices.
    #[error("{op}: tensors live on different devices ({lhs} and {rhs})")]
    DeviceMismatch {
        op: &'static str,
        lhs: String,
        rhs: String,
    },
    /// A view (reshape, narrow, permute, index) does not fit the tensor.
    #[error("{op}: {reason}")]
    InvalidView { op: &'static str, reason: String },
    /// An argument is outside what the op accepts (zero sizes, bad eps, ids past the vocabulary).
    #[error("{op}: invalid argument: {reason}")]
    InvalidArgument { op: &'static str, reason: String },
    /// No CUDA driver library could be loaded, or it reports no device.
    #[error("CUDA is not available: {reason}")]
    CudaUnavailable { reason: String },
    /// A CUDA driver call failed.
    #[error("CUDA driver error in {op}: {source}")]
    Cuda {
        op: &'static str,
        #[source]
        source: cudarc::driver::DriverError,
    },
    /// A cuBLAS call failed.
    #[error("cuBLAS error in {op}: {source}")]
    Cublas {
        op: &'static str,
        #[source]
        source: cudarc::cublas::result::CublasError,
    },
    /// A decode step cannot be captured in a CUDA graph (driver support, an op that cannot be
    /// captured, an unsupported shape); callers fall back to eager launches.
    #[error("CUDA graph unavailable: {reason}")]
    GraphUnavailable { reason: String },
    /// A kernel the backend expects is missing from the loaded PTX (or, on the emulated
    /// device, from the kernel crate's table).
    #[error("kernel `{name}` is missing from the PTX module")]
    MissingKernel { name: String },
    /// The SIMT emulator found a kernel bug (shared memory out of bounds, a race, a divergent
    /// barrier, a panic) or could not run the launch; the source names kernel, block, thread.
    #[error("emulated launch failed: {source}")]
    Emulator {
        #[source]
        source: nano_infer_kernels::emu::EmuError,
    },
    /// A driver-only feature (streams, events) was asked of the emulated device.
    #[error("{op} needs a CUDA GPU; the emulated device has none")]
    NeedsGpu { op: &'static str },
    /// Reading a file failed.
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A model or tokenizer file is malformed: `what` names the field or structure.
    #[error("malformed {format} file: {what}: {detail}")]
    Format {
        format: &'static str,
        what: String,
        detail: String,
    },
    /// A model file is well formed but uses something NanoInfer does not implement.
    #[error("unsupported {format} feature: {what}")]
    Unsupported { format: &'static str, what: String },
    /// A named tensor is absent from the model file.
    #[error("tensor `{name}` not found in the model file")]
    MissingTensor { name: String },
    /// Text could not be tokenized or a token id could not be decoded.
    #[error("tokenizer: {reason}")]
    Tokenizer { reason: String },
    /// The KV cache or position table would overflow.
    #[error("context length exceeded: {needed} positions needed, the cache holds {capacity}")]
    ContextOverflow { needed: usize, capacity: usize },
}

/// The library's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Builds an [`Error::InvalidArgument`].
    pub fn invalid(op: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            op,
            reason: reason.into(),
        }
    }

    /// Builds an [`Error::Format`].
    pub fn format(
        format: &'static str,
        what: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Error::Format {
            format,
            what: what.into(),
            detail: detail.into(),
        }
    }
}
