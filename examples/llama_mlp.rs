//! The seed's usage example in Rust: a Llama-2-7B MLP block on a `[1, 128, 4096]` input, on the
//! GPU when there is one, else on the CPU.
//!
//! `cargo run --release --example llama_mlp`

use nano_infer::nn::{LlamaMlp, Module};
use nano_infer::{DType, Device, Tensor};

fn main() -> nano_infer::Result<()> {
    // 1. The device: CUDA GPU 0 if present.
    let device = match nano_infer::cuda(0) {
        Ok(gpu) => gpu,
        Err(e) => {
            eprintln!("{e}; running on the CPU");
            Device::Cpu
        }
    };
    let dtype = if device.is_cpu() {
        DType::F32
    } else {
        DType::F16
    };
    // 2. Initialise the model: hidden 4096, intermediate 11008 (Llama-2-7B), random weights.
    let model = LlamaMlp::new(4096, 11008, 0, dtype, &device)?;
    // 3. An input tensor on the device.
    let x = Tensor::randn([1, 128, 4096], 1.0, 1, dtype, &device)?;
    // 4. Forward: cuBLAS (or the CPU GEMM) for the projections, the Rust SwiGLU kernel between.
    let output = model.forward(&x)?;
    println!("Output Shape: {:?}", output.dims());
    println!("Output: {output:?}");
    Ok(())
}
