//! The kernel emulator's tests (one binary): every kernel of `gpu-kernels` run on the CPU under
//! `nano_infer_kernels::emu` and checked against the scalar reference, the emulator's own
//! semantics, and the bugs it must catch.
//!
//! `cargo test --release -p nano-infer-host --test emu` (add a name filter, e.g. `rms_norm`, to
//! run one kernel; see the `emu` module docs for stepping through a kernel in a debugger).

mod errors;
mod gpu_probe;
mod harness;
mod kernels;
mod negative;
mod primitives;
mod softfloat;
