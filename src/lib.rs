//! NanoInfer.
