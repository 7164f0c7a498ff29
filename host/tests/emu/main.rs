//! The kernel emulator's own tests (one binary): its semantics and the bugs it must catch.
//! The shipped kernels run under it against the scalar reference through the public API, on
//! the emulated GPU, in `tests/gpu_vs_cpu.rs` (`emu::*`), and through the crate's own launchers
//! where the public API does not reach (`host/src/backend/emu/*tests.rs`).
//!
//! `cargo test --release -p nano-infer-host --test emu` (add a name filter to run one test).
//!
//! | module | what |
//! |---|---|
//! | `launch_shapes` | the emulated GPU tests' row shapes take both row-kernel layouts; decode attention's early tiles |
//! | `primitives` | ids, shuffles, votes, atomics, `cp.async`, the tensor-core probe kernel |
//! | `errors` | each `EmuError` kind, naming kernel, block and thread |
//! | `negative` | broken reductions (wrong index, missing barriers) flagged on every run |
//! | `softfloat` | f16/bf16 conversions bit-exact against `half`; the quantizer's rounding |
//! | `gpu_probe` | (ignored: needs a GPU) the probe kernel on hardware, same checks |

mod errors;
mod gpu_probe;
mod launch_shapes;
mod negative;
mod primitives;
mod softfloat;
