//! Shared test helpers: devices, per-device test bodies, rounded random inputs, per-dtype
//! tolerances.
#![allow(dead_code)]

pub mod reference;

use nano_infer::backend::cpu::testing::assert_close;
use nano_infer::{DType, Device, LlamaConfig, Tensor};

pub const DTYPES: [DType; 3] = [DType::F32, DType::F16, DType::BF16];

/// The GPU for `#[ignore = "needs a CUDA GPU"]` tests; fails loudly when there is none.
pub fn gpu() -> Device {
    match nano_infer::cuda(0) {
        Ok(d) => d,
        Err(e) => panic!(
            "this test needs a CUDA GPU (run GPU tests only with --include-ignored on a GPU host): {e}"
        ),
    }
}

/// The emulated GPU: the CUDA backend's launchers and kernels on the CPU (always available).
pub fn emu() -> Device {
    nano_infer::emu()
}

/// True for the emulated GPU, where test bodies take their small shapes.
pub fn is_emulated(dev: &Device) -> bool {
    dev.as_cuda().is_some_and(|b| b.is_emulated())
}

/// The cases a test body runs on `dev`: `full` on a GPU, `small` on the emulated one (whose
/// every block costs thread rendezvous: keep its grids tiny, but take every kernel path).
pub fn cases<T: Clone>(dev: &Device, full: &[T], small: &[T]) -> Vec<T> {
    if is_emulated(dev) { small } else { full }.to_vec()
}

/// Writes each test body `fn name(dev: &Device)` once and runs it per device, as candle's
/// `test_device!`: `emu::name` on the emulated GPU (always: CPU-only CI runs it) and
/// `cuda::name` on GPU 0 (`#[ignore = "needs a CUDA GPU"]`: run with `--include-ignored` on a
/// GPU host). A new kernel's test is its body plus one name in the list.
#[allow(unused_macros)] // every test binary includes `common`; not all have device tests
macro_rules! device_tests {
    ($($name:ident),* $(,)?) => {
        /// The test bodies on the emulated GPU.
        mod emu {
            $( #[test] fn $name() { super::$name(&crate::common::emu()) } )*
        }
        /// The test bodies on CUDA GPU 0.
        mod cuda {
            $( #[test] #[ignore = "needs a CUDA GPU"] fn $name() { super::$name(&crate::common::gpu()) } )*
        }
    };
}
#[allow(unused_imports)]
pub(crate) use device_tests;

/// `(atol, rtol)` for one rounding of an f32 result into `dt` plus f32 math differences.
pub fn tol(dt: DType) -> (f32, f32) {
    match dt {
        DType::F32 => (1e-5, 1e-4),
        DType::F16 => (2e-3, 2e-3),
        DType::BF16 => (1.6e-2, 1.6e-2),
    }
}

/// A random CPU tensor of `dt` and its values (already rounded to `dt`) as f32.
pub fn input(shape: &[usize], dt: DType, seed: u64) -> (Tensor, Vec<f32>) {
    let t = Tensor::randn(shape.to_vec(), 1.0, seed, dt, &Device::Cpu).expect("randn");
    let v = t.to_vec_f32().expect("to_vec_f32");
    (t, v)
}

/// Compares a tensor (any device) with reference values at `dt`'s tolerance.
pub fn check(name: &str, got: &Tensor, want: &[f32], dt: DType) {
    let (atol, rtol) = tol(dt);
    check_tol(name, got, want, atol, rtol);
}

/// Compares with an explicit tolerance.
pub fn check_tol(name: &str, got: &Tensor, want: &[f32], atol: f32, rtol: f32) {
    let g = got.to_vec_f32().expect("to_vec_f32");
    assert_close(name, &g, want, atol, rtol);
}

/// The SmolLM2 GGUF: `$NANO_INFER_GGUF`, else the CLI's cache; panics with instructions when it
/// is absent (model tests must not pass silently).
pub fn model_path() -> std::path::PathBuf {
    let path = match std::env::var_os("NANO_INFER_GGUF") {
        Some(p) => std::path::PathBuf::from(p),
        None => std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
            .join(".cache/nano-infer/SmolLM2-135M-Instruct.Q4_1.gguf"),
    };
    assert!(
        path.is_file(),
        "SmolLM2 GGUF not found at {}: run `cargo run --release -- fetch` or set NANO_INFER_GGUF",
        path.display()
    );
    path
}

/// The model the GPU end-to-end tests load: `$NANO_INFER_FIXTURE` — a truncated SmolLM2 written
/// by `nano-infer fixture --layers 2 --out FILE` (small enough to carry to a GPU host) — else
/// the full SmolLM2 GGUF (`$NANO_INFER_GGUF` or the cache).
pub fn fixture_path() -> std::path::PathBuf {
    let path = std::env::var_os("NANO_INFER_FIXTURE")
        .or_else(|| std::env::var_os("NANO_INFER_GGUF"))
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/nano-infer/SmolLM2-135M-Instruct.Q4_1.gguf")
        });
    assert!(
        path.is_file(),
        "no model at {}: set NANO_INFER_FIXTURE (nano-infer fixture --layers 2 --out FILE)",
        path.display()
    );
    path
}

/// A random-weight SmolLM2 for the per-device model tests: on a GPU its real shapes with 4
/// layers; on the emulated GPU 2 layers of the same structure with hidden size 64, GQA 4/2 and
/// a 5000-token vocabulary (past the tests' prompt ids).
pub fn random_smollm2_config(dev: &Device) -> LlamaConfig {
    let full = LlamaConfig {
        num_layers: 4,
        ..LlamaConfig::smollm2_135m()
    };
    let small = LlamaConfig {
        num_layers: 2,
        vocab_size: 5000,
        hidden_size: 64,
        intermediate_size: 128,
        num_heads: 4,
        num_kv_heads: 2,
        head_dim: 16,
        ..LlamaConfig::smollm2_135m()
    };
    cases(dev, &[full], &[small]).remove(0)
}
