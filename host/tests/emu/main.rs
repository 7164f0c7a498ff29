//! The kernel emulator's tests (one binary): every kernel of `gpu-kernels` run on the CPU under
//! `nano_infer_kernels::emu` and checked against the scalar reference, the emulator's own
//! semantics, and the bugs it must catch.
//!
//! `cargo test --release -p nano-infer-host --test emu` (add a name filter, e.g. `rms_norm`, to
//! run one kernel; see the `emu` module docs for stepping through a kernel in a debugger).
//!
//! | module | what |
//! |---|---|
//! | `kernels` | every kernel vs `backend::cpu::reference`, in the CUDA launchers' shapes (`harness`) |
//! | `decode_step` | the decode graph's kernels: fused RoPE + KV write, device-length attention, argmax, init |
//! | `primitives` | ids, shuffles, votes, atomics, `cp.async`, the tensor-core probe kernel |
//! | `errors` | each `EmuError` kind, naming kernel, block and thread |
//! | `negative` | broken reductions (wrong index, missing barriers) flagged on every run |
//! | `softfloat` | f16/bf16 conversions bit-exact against `half` |
//! | `gpu_probe` | (ignored: needs a GPU) the probe kernel on hardware, same checks |

mod decode_step;
mod errors;
mod gpu_probe;
mod harness;
mod kernels;
mod negative;
mod primitives;
mod softfloat;
