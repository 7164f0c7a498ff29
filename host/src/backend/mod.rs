//! Compute backends. Each backend implements the same set of ops on contiguous buffers; the
//! tensor layer picks one from the tensor's device, so model code never branches on a backend.
//!
//! - [`cpu`]: the scalar reference (the oracle every other path is tested against) and the
//!   SIMD + rayon fast path.

pub mod cpu;
