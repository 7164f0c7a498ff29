//! The seed's usage example: `LlamaMlp(hidden 4096, intermediate 11008)` on a `[1, 128, 4096]`
//! input, on the CPU and on CUDA, and the two agree.

mod common;

use nano_infer::backend::cpu::reference as R;
use nano_infer::backend::cpu::testing::assert_close;
use nano_infer::nn::{Linear, LlamaMlp, Module};
use nano_infer::{DType, Device, Tensor};

/// The gate and up weights of a dense MLP (views of its joined weight).
fn gate_and_up(mlp: &LlamaMlp) -> [Tensor; 2] {
    let joined = mlp.gate_up.joined().unwrap().as_dense().unwrap();
    let inter = mlp.gate_up.outs()[0];
    [0, inter].map(|at| joined.narrow(0, at, inter).unwrap())
}

/// A small MLP on the CPU against the scalar reference composition.
#[test]
fn mlp_cpu_matches_reference() {
    let (hidden, inter, tokens) = (64, 176, 5);
    let mlp = LlamaMlp::new(hidden, inter, 7, DType::F32, &Device::Cpu).unwrap();
    let x = Tensor::randn([1, tokens, hidden], 1.0, 3, DType::F32, &Device::Cpu).unwrap();
    let got = mlp.forward(&x).unwrap();
    assert_eq!(got.dims(), &[1, tokens, hidden]);

    let xv = x.to_vec_f32().unwrap();
    let [gate, up] = gate_and_up(&mlp).map(|t| t.to_vec_f32().unwrap());
    let down = mlp
        .down_proj
        .weight()
        .as_dense()
        .unwrap()
        .to_vec_f32()
        .unwrap();
    let (mut g, mut u, mut h, mut y) = (
        vec![0.0; tokens * inter],
        vec![0.0; tokens * inter],
        vec![0.0; tokens * inter],
        vec![0.0; tokens * hidden],
    );
    R::matmul(&xv, &gate, tokens, hidden, inter, true, &mut g).unwrap();
    R::matmul(&xv, &up, tokens, hidden, inter, true, &mut u).unwrap();
    R::swiglu(&g, &u, &mut h).unwrap();
    R::matmul(&h, &down, tokens, inter, hidden, true, &mut y).unwrap();
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
    let cast = |t: &Tensor| Linear::new(t.to_dtype(DType::F16).unwrap()).unwrap();
    let [gate, up] = gate_and_up(&on_gpu);
    let down = on_gpu.down_proj.weight().as_dense().unwrap();
    let half = LlamaMlp::from_parts(cast(&gate), cast(&up), cast(down)).unwrap();
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
