//! The probe kernel on a real GPU, held to the same checks as under the emulator: confirms on
//! hardware the fragment layouts (`ldmatrix`, `mma.m16n8k16`), votes, shuffles, atomics and
//! `cp.async` behaviour the emulator implements.
//!
//! Needs a GPU and the probe PTX, which the shipped PTX does not contain:
//! `scripts/ptx_primitives_check.sh PTXAS` writes it to
//! `target/ptx-probe/nvptx64-nvidia-cuda/release/deps/nano_infer_kernels.s`;
//! then `NANO_INFER_PROBE_PTX=that.s emu --include-ignored gpu_probe`.

use cudarc::driver::{CudaContext, LaunchConfig, PushKernelArg};
use cudarc::nvrtc::Ptx;
use half::{bf16, f16};
use nano_infer_kernels::probe::{PROBE_MISC_WORDS, PROBE_SMEM_BYTES};

use crate::primitives::{check_probe, probe_inputs};

/// `(d, misc, sum)` of one probe run on GPU 0.
fn run_on_gpu(ptx: &str, kernel: &str, a16: &[u16], bt16: &[u16]) -> (Vec<f32>, Vec<u32>, f32) {
    // SAFETY: only tries to dlopen the driver library.
    assert!(
        unsafe { cudarc::driver::sys::is_culib_present() },
        "no CUDA driver (libcuda.so)"
    );
    let ctx = CudaContext::new(0).expect("CUDA device 0");
    let stream = ctx.default_stream();
    let module = ctx
        .load_module(Ptx::from_src(ptx))
        .expect("load the probe PTX");
    let f = module.load_function(kernel).expect("the probe kernel");
    let a = stream.clone_htod(a16).unwrap();
    let bt = stream.clone_htod(bt16).unwrap();
    let mut d = stream.alloc_zeros::<f32>(128).unwrap();
    let mut misc = stream.alloc_zeros::<u32>(32 * PROBE_MISC_WORDS).unwrap();
    let mut sum = stream.clone_htod(&[0.5f32]).unwrap();
    let mut b = stream.launch_builder(&f);
    b.arg(&a).arg(&bt).arg(&mut d).arg(&mut misc).arg(&mut sum);
    let cfg = LaunchConfig {
        grid_dim: (1, 1, 1),
        block_dim: (32, 1, 1),
        shared_mem_bytes: PROBE_SMEM_BYTES,
    };
    // SAFETY: buffers sized as the probe's contract says (device allocations are 256-byte
    // aligned); one warp with the probe's shared memory.
    unsafe { b.launch(cfg) }.expect("launch");
    let sum = stream.clone_dtoh(&sum).unwrap()[0];
    (
        stream.clone_dtoh(&d).unwrap(),
        stream.clone_dtoh(&misc).unwrap(),
        sum,
    )
}

#[test]
#[ignore = "needs a CUDA GPU and NANO_INFER_PROBE_PTX"]
fn gpu_probe_matches_the_emulated_semantics() {
    let path = std::env::var("NANO_INFER_PROBE_PTX")
        .expect("set NANO_INFER_PROBE_PTX to the probe PTX (see scripts/ptx_primitives_check.sh)");
    let ptx = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let f16_bits: fn(f32) -> u16 = |v| f16::from_f32(v).to_bits();
    let bf16_bits: fn(f32) -> u16 = |v| bf16::from_f32(v).to_bits();
    for (kernel, bits) in [("tc_probe_f16", f16_bits), ("tc_probe_bf16", bf16_bits)] {
        let inputs = probe_inputs(bits);
        let (d, misc, sum) = run_on_gpu(&ptx, kernel, &inputs.a16, &inputs.bt16);
        check_probe(&inputs, &d, &misc, sum, bits);
        println!("{kernel}: GPU results match the emulator's definitions");
    }
}
