//! The seed's usage example: `LlamaMlp(hidden 4096, intermediate 11008)` on a `[1, 128, 4096]`
//! input, on the CPU and on CUDA, and the two agree.

mod common;

use nano_infer::backend::cpu::reference as R;
use nano_infer::backend::cpu::testing::assert_close;
use nano_infer::nn::{LlamaMlp, Module};
use nano_infer::{DType, Device, Tensor};

/// A small MLP on the CPU against the scalar reference composition.
#[test]
fn mlp_cpu_matches_reference() {
    let (hidden, inter, tokens) = (64, 176, 5);
    let mlp = LlamaMlp::new(hidden, inter, 7, DType::F32, &Device::Cpu).unwrap();
    let x = Tensor::randn([1, tokens, hidden], 1.0, 3, DType::F32, &Device::Cpu).unwrap();
    let got = mlp.forward(&x).unwrap();
    assert_eq!(got.dims(), &[1, tokens, hidden]);

    let xv = x.to_vec_f32().unwrap();
    let w = |l: &nano_infer::nn::Linear| l.weight().as_dense().unwrap().to_vec_f32().unwrap();
    let (mut g, mut u, mut h, mut y) = (
        vec![0.0; tokens * inter],
        vec![0.0; tokens * inter],
        vec![0.0; tokens * inter],
        vec![0.0; tokens * hidden],
    );
    R::matmul(&xv, &w(&mlp.gate_proj), tokens, hidden, inter, true, &mut g).unwrap();
    R::matmul(&xv, &w(&mlp.up_proj), tokens, hidden, inter, true, &mut u).unwrap();
    R::swiglu(&g, &u, &mut h).unwrap();
    R::matmul(&h, &w(&mlp.down_proj), tokens, inter, hidden, true, &mut y).unwrap();
    assert_close("llama_mlp cpu", &got.to_vec_f32().unwrap(), &y, 1e-5, 1e-4);
}

/// The seed example's shapes run on the CPU.
#[test]
fn seed_example_shapes_on_cpu() {
    let mlp = LlamaMlp::new(4096, 11008, 0, DType::F32, &Device::Cpu).unwrap();
    let x = Tensor::randn([1, 128, 4096], 1.0, 1, DType::F32, &Device::Cpu).unwrap();
    let y = mlp.forward(&x).unwrap();
    assert_eq!(y.dims(), &[1, 128, 4096]);
    assert!(y.to_vec_f32().unwrap().iter().all(|v| v.is_finite()));
}

/// The seed example on CUDA (f32 and f16) agrees with the CPU f32 result.
#[test]
#[ignore = "needs a CUDA GPU"]
fn seed_example_cpu_and_cuda_agree() {
    let gpu = common::gpu();
    let mlp = LlamaMlp::new(4096, 11008, 0, DType::F32, &Device::Cpu).unwrap();
    let x = Tensor::randn([1, 128, 4096], 1.0, 1, DType::F32, &Device::Cpu).unwrap();
    let want = mlp.forward(&x).unwrap().to_vec_f32().unwrap();
    let on_gpu = mlp.to_device(&gpu).unwrap();
    let got = on_gpu.forward(&x.to_device(&gpu).unwrap()).unwrap();
    assert_eq!(got.dims(), &[1, 128, 4096]);
    assert_close(
        "llama_mlp cuda f32",
        &got.to_vec_f32().unwrap(),
        &want,
        1e-4,
        1e-3,
    );

    // f16 weights and activations: the same weights rounded, f32 accumulation in cuBLAS.
    let cast = |l: &nano_infer::nn::Linear| {
        nano_infer::nn::Linear::new(l.weight().as_dense().unwrap().to_dtype(DType::F16).unwrap())
            .unwrap()
    };
    let half = LlamaMlp::from_parts(
        cast(&on_gpu.gate_proj),
        cast(&on_gpu.up_proj),
        cast(&on_gpu.down_proj),
    )
    .unwrap();
    let got16 = half
        .forward(&x.to_device(&gpu).unwrap().to_dtype(DType::F16).unwrap())
        .unwrap();
    let rms = (want.iter().map(|v| v * v).sum::<f32>() / want.len() as f32).sqrt();
    assert_close(
        "llama_mlp cuda f16",
        &got16.to_vec_f32().unwrap(),
        &want,
        2e-2 * rms.max(1.0),
        2e-2,
    );
}
