//! The emulated device below the public API: launcher behaviour `functional` never asks for
//! (in-place maps, an embedding id past the vocabulary, FlashAttention's log-sum-exp output),
//! and the launch step's own errors.
//! The kernels themselves are checked through the public API in `tests/gpu_vs_cpu.rs`.

use cudarc::driver::LaunchConfig;
use nano_infer_kernels::emu::EmuError;
use nano_infer_kernels::params::FlashAttnParams;

use crate::backend::cpu::reference as R;
use crate::backend::cpu::testing::assert_close;
use crate::backend::cuda::{CudaBackend, CudaStorage};
use crate::error::Error;
use crate::tensor::{CpuStorage, DType};

/// `values` rounded to `dt`, on the device, and the rounded values.
pub(super) fn upload(be: &CudaBackend, values: Vec<f32>, dt: DType) -> (CudaStorage, Vec<f32>) {
    let cpu = CpuStorage::from_f32(values, dt);
    let rounded = (0..cpu.len()).map(|i| cpu.get_f32(i)).collect();
    (be.upload(cpu.as_bytes(), dt).unwrap(), rounded)
}

pub(super) fn download(s: &CudaStorage) -> Vec<f32> {
    let cpu = s.download(0, s.len()).unwrap();
    (0..cpu.len()).map(|i| cpu.get_f32(i)).collect()
}

#[test]
fn in_place_map_reads_each_element_before_writing_it() {
    let be = CudaBackend::emulated();
    let n = 1001;
    for dt in [DType::F32, DType::F16, DType::BF16] {
        let (a, av) = upload(&be, (0..n).map(|i| (i as f32).sin()).collect(), dt);
        let (b, bv) = upload(&be, (0..n).map(|i| (i as f32).cos()).collect(), dt);
        be.binary("mul", a.ptr(), b.ptr(), a.ptr(), n, dt).unwrap();
        let mut want = vec![0.0; n];
        R::mul(&av, &bv, &mut want).unwrap();
        assert_close(
            &format!("mul in place {dt:?}"),
            &download(&a),
            &want,
            2e-2,
            1e-2,
        );
    }
}

#[test]
fn embedding_kernel_writes_zeros_past_the_vocabulary() {
    let be = CudaBackend::emulated();
    let (vocab, cols) = (5, 37);
    let (table, tv) = upload(
        &be,
        (0..vocab * cols).map(|i| i as f32).collect(),
        DType::F32,
    );
    let ids = be.upload_buffer(bytemuck::cast_slice(&[3u32, 5])).unwrap();
    let out = be.alloc(2 * cols, DType::F32).unwrap();
    be.embedding(
        ids.ptr(),
        table.ptr(),
        out.ptr(),
        2,
        cols,
        vocab,
        DType::F32,
    )
    .unwrap();
    let mut want = tv[3 * cols..4 * cols].to_vec();
    want.resize(2 * cols, 0.0);
    assert_eq!(download(&out), want);
}

#[test]
fn flash_attention_writes_the_rows_log_sum_exp() {
    // (q_len, kv_len, heads, kv_heads, head_dim, causal, dtype, FlashAttention-3): a causal
    // prefill after cached keys over two query tiles, and a full one with a key-tile tail, on
    // FlashAttention-2; on FlashAttention-3 a causal one over two key tiles.
    for (q_len, kv_len, heads, kv_heads, d, causal, dt, flash3) in [
        (70, 130, 4, 1, 64, true, DType::F16, false),
        (33, 65, 2, 1, 128, false, DType::BF16, false),
        (20, 150, 2, 1, 128, true, DType::F16, true),
    ] {
        let be = CudaBackend::emulated().with_flash3(flash3).unwrap();
        {
            let values =
                |n: usize, seed: usize| (0..n).map(|i| ((i * seed) as f32).sin()).collect();
            let (q, qv) = upload(&be, values(q_len * heads * d, 7), dt);
            let (k, kv) = upload(&be, values(kv_len * kv_heads * d, 11), dt);
            let (v, _) = upload(&be, values(kv_len * kv_heads * d, 13), dt);
            let out = be.alloc(q_len * heads * d, dt).unwrap();
            let lse = be.alloc(heads * q_len, DType::F32).unwrap();
            let scale = 1.0 / (d as f32).sqrt();
            let p = FlashAttnParams::contiguous(
                q_len as u32,
                kv_len as u32,
                heads as u32,
                kv_heads as u32,
                d as u32,
                causal,
                scale,
            );
            let (qp, kp, vp) = (q.ptr(), k.ptr(), v.ptr());
            // SAFETY: contiguous buffers of the extents `p` names (256-byte aligned blocks,
            // strides multiples of 8); d is 64 or 128 and dt f16/bf16.
            unsafe { be.flash_attention(qp, kp, vp, out.ptr(), lse.ptr(), p, d, dt) }.unwrap();
            let want = reference_lse(&qv, &kv, [q_len, kv_len, heads, kv_heads, d], scale, causal);
            let name =
                format!("flash lse {dt:?} q{q_len} k{kv_len} d{d} causal {causal} flash3 {flash3}");
            assert_close(&name, &download(&lse), &want, 1e-3, 1e-4);
        }
    }
}

/// Natural log-sum-exp of each row's scaled scores, `[heads][q_len]`.
fn reference_lse(q: &[f32], k: &[f32], dims: [usize; 5], scale: f32, causal: bool) -> Vec<f32> {
    let [q_len, kv_len, heads, kv_heads, d] = dims;
    let mut out = vec![0.0; heads * q_len];
    for h in 0..heads {
        let kh = h / (heads / kv_heads);
        for i in 0..q_len {
            let last = if causal {
                i + kv_len - q_len
            } else {
                kv_len - 1
            };
            let scores: Vec<f64> = (0..=last)
                .map(|j| {
                    let qr = &q[(i * heads + h) * d..][..d];
                    let kr = &k[(j * kv_heads + kh) * d..][..d];
                    qr.iter().zip(kr).map(|(a, b)| (a * b) as f64).sum::<f64>() * scale as f64
                })
                .collect();
            let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            out[h * q_len + i] =
                (m + scores.iter().map(|s| (s - m).exp()).sum::<f64>().ln()) as f32;
        }
    }
    out
}

#[test]
fn launch_step_errors_are_typed() {
    let be = CudaBackend::emulated();
    let cfg = LaunchConfig::for_num_elems(1);
    let n = 1u64;
    // SAFETY: neither launch reaches a kernel body (unknown name; wrong argument count).
    let missing = unsafe { be.launch_kernel("no_such_kernel", cfg, &[&n]) };
    assert!(matches!(missing, Err(Error::MissingKernel { name }) if name == "no_such_kernel"));
    let wrong = unsafe { be.launch_kernel("silu_f32", cfg, &[&n]) };
    assert!(
        matches!(
            &wrong,
            Err(Error::Emulator {
                source: EmuError::InvalidLaunch { .. }
            })
        ),
        "{wrong:?}"
    );
    assert!(matches!(be.stream(), Err(Error::NeedsGpu { .. })));
    assert!(matches!(
        be.time_median_ms(0, 1, || Ok(())),
        Err(Error::NeedsGpu { .. })
    ));
    assert_eq!(be.to_string(), "emu");
}
