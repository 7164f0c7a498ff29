//! Every CUDA kernel against the scalar CPU reference, on odd shapes and all three dtypes.
//!
//! These need a GPU: `cargo test --release --test gpu_vs_cpu -- --include-ignored` on a GPU host.
//! Inputs are rounded to the dtype first, so the reference sees exactly what the kernel sees;
//! tolerances (`common::tol`) allow one rounding of the result plus f32 math differences
//! (approximate `rsqrt`/`ex2`).

mod common;
#[path = "gpu_vs_cpu/gemv.rs"]
mod gemv;

use common::{DTYPES, check, check_tol, gpu, input};
use nano_infer::backend::cpu::reference as R;
use nano_infer::functional as F;
use nano_infer::{DType, Device, Tensor};

const ROWS: [usize; 3] = [1, 3, 37];
// 40960 = 4 cached chunks x 1024 threads x 8 + more: exercises the re-read tail.
const COLS: [usize; 9] = [1, 7, 64, 576, 1000, 4096, 4099, 11008, 40968];

#[test]
#[ignore = "needs a CUDA GPU"]
fn rms_norm_and_add_rms_norm() {
    let dev = gpu();
    for dt in DTYPES {
        for rows in ROWS {
            for cols in COLS {
                let (x, xv) = input(&[rows, cols], dt, 1);
                let (r, rv) = input(&[rows, cols], dt, 2);
                let (w, wv) = input(&[cols], dt, 3);
                let (xg, rg, wg) = (
                    x.to_device(&dev).unwrap(),
                    r.to_device(&dev).unwrap(),
                    w.to_device(&dev).unwrap(),
                );
                let mut want = vec![0.0; rows * cols];
                R::rms_norm(&xv, &wv, 1e-5, &mut want).unwrap();
                let name = format!("rms_norm {dt:?} {rows}x{cols}");
                check(&name, &F::rms_norm(&xg, &wg, 1e-5).unwrap(), &want, dt);
                let (mut sum, mut norm) = (vec![0.0; rows * cols], vec![0.0; rows * cols]);
                R::add_rms_norm(&xv, &rv, &wv, 1e-5, &mut sum, &mut norm).unwrap();
                let (gs, gn) = F::add_rms_norm(&xg, &rg, &wg, 1e-5).unwrap();
                check(
                    &format!("add_rms_norm sum {dt:?} {rows}x{cols}"),
                    &gs,
                    &sum,
                    dt,
                );
                check(
                    &format!("add_rms_norm norm {dt:?} {rows}x{cols}"),
                    &gn,
                    &norm,
                    dt,
                );
            }
        }
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn elementwise_maps() {
    let dev = gpu();
    for dt in DTYPES {
        for n in [1, 7, 8, 1000, 4099, 65536 + 3] {
            let (a, av) = input(&[n], dt, 4);
            let (b, bv) = input(&[n], dt, 5);
            let (ag, bg) = (a.to_device(&dev).unwrap(), b.to_device(&dev).unwrap());
            let mut want = vec![0.0; n];
            R::silu(&av, &mut want).unwrap();
            check(
                &format!("silu {dt:?} {n}"),
                &F::silu(&ag).unwrap(),
                &want,
                dt,
            );
            R::swiglu(&av, &bv, &mut want).unwrap();
            check(
                &format!("swiglu {dt:?} {n}"),
                &F::swiglu(&ag, &bg).unwrap(),
                &want,
                dt,
            );
            R::add(&av, &bv, &mut want).unwrap();
            check(
                &format!("add {dt:?} {n}"),
                &F::add(&ag, &bg).unwrap(),
                &want,
                dt,
            );
            R::mul(&av, &bv, &mut want).unwrap();
            check(
                &format!("mul {dt:?} {n}"),
                &F::mul(&ag, &bg).unwrap(),
                &want,
                dt,
            );
        }
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn softmax_full_and_causal() {
    let dev = gpu();
    for dt in DTYPES {
        for (q_len, k_len) in [
            (1, 1),
            (3, 7),
            (5, 64),
            (17, 1000),
            (2, 1024),
            (4, 4099),
            (1, 9000),
        ] {
            for causal in [false, true] {
                let (x, xv) = input(&[2, q_len, k_len], dt, 6);
                let mut want = vec![0.0; xv.len()];
                R::softmax(&xv, q_len, k_len, 0.37, causal, &mut want).unwrap();
                let got = F::softmax(&x.to_device(&dev).unwrap(), 0.37, causal).unwrap();
                check(
                    &format!("softmax {dt:?} {q_len}x{k_len} causal={causal}"),
                    &got,
                    &want,
                    dt,
                );
            }
        }
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn rope_both_layouts_with_offset() {
    let dev = gpu();
    for dt in DTYPES {
        for (seq, heads, hd) in [(1, 1, 2), (3, 5, 6), (7, 9, 64), (5, 4, 128), (2, 3, 24)] {
            for interleaved in [false, true] {
                for offset in [0, 1000] {
                    let (x, xv) = input(&[2, seq, heads, hd], dt, 7);
                    let (cos, sin) = R::rope_table(2048, hd, 10000.0);
                    let mut want = vec![0.0; xv.len()];
                    R::rope(
                        &xv,
                        seq,
                        heads,
                        hd,
                        &cos,
                        &sin,
                        offset,
                        interleaved,
                        &mut want,
                    )
                    .unwrap();
                    let table = F::RopeTable::new(2048, hd, 10000.0, &dev).unwrap();
                    let got =
                        F::rope(&x.to_device(&dev).unwrap(), &table, offset, interleaved).unwrap();
                    let name = format!(
                        "rope {dt:?} {seq}x{heads}x{hd} interleaved={interleaved} offset={offset}"
                    );
                    check(&name, &got, &want, dt);
                }
            }
        }
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn embedding_cast_and_views() {
    let dev = gpu();
    for dt in DTYPES {
        let (table, tv) = input(&[50, 37], dt, 8);
        let ids = [3u32, 0, 49, 3, 17];
        let got = F::embedding(&ids, &table.to_device(&dev).unwrap()).unwrap();
        let want: Vec<f32> = ids
            .iter()
            .flat_map(|&i| tv[i as usize * 37..(i as usize + 1) * 37].to_vec())
            .collect();
        check(&format!("embedding {dt:?}"), &got, &want, DType::F32);
        assert!(
            F::embedding(&[50], &table.to_device(&dev).unwrap()).is_err(),
            "id past the vocabulary must error"
        );

        for to in DTYPES {
            let got = table.to_device(&dev).unwrap().to_dtype(to).unwrap();
            let want = table.to_dtype(to).unwrap().to_vec_f32().unwrap();
            check(&format!("cast {dt:?}->{to:?}"), &got, &want, DType::F32);
        }

        // Transposed and narrowed views made contiguous on the GPU, and a write into a view.
        let (x, _) = input(&[4, 5, 6], dt, 9);
        let xg = x.to_device(&dev).unwrap();
        let v = x.permute(&[2, 0, 1]).unwrap().narrow(1, 1, 2).unwrap();
        let vg = xg.permute(&[2, 0, 1]).unwrap().narrow(1, 1, 2).unwrap();
        check(
            &format!("strided view {dt:?}"),
            &vg.contiguous().unwrap(),
            &v.to_vec_f32().unwrap(),
            DType::F32,
        );
        let dst = Tensor::zeros([6, 4, 5], dt, &dev).unwrap();
        dst.narrow(1, 1, 2).unwrap().copy_from(&vg).unwrap();
        let mut want = vec![0.0; 6 * 4 * 5];
        let src = v.to_vec_f32().unwrap();
        for a in 0..6 {
            for b in 0..2 {
                for c in 0..5 {
                    want[a * 20 + (b + 1) * 5 + c] = src[a * 10 + b * 5 + c];
                }
            }
        }
        check(
            &format!("copy_from into view {dt:?}"),
            &dst,
            &want,
            DType::F32,
        );
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn gemm_matches_reference() {
    let dev = gpu();
    for dt in DTYPES {
        // m <= 8 with a transposed weight runs the GEMV kernel (vector path when k % 8 == 0;
        // odd n leaves the last row pair of a block half empty; k = 2056 a ragged last group).
        for (m, k, n) in [
            (1, 7, 5),
            (3, 64, 1000),
            (8, 4096, 300),
            (5, 1003, 77),
            (2, 4096, 11),
            (6, 2056, 33),
            (7, 11008, 9),
            (9, 64, 10),
            (128, 576, 64),
            (17, 1000, 33),
        ] {
            let (a, av) = input(&[m, k], dt, 10);
            let (w, wv) = input(&[n, k], dt, 11);
            let mut want = vec![0.0; m * n];
            R::matmul(&av, &wv, m, k, n, true, &mut want).unwrap();
            let got = F::linear(&a.to_device(&dev).unwrap(), &w.to_device(&dev).unwrap()).unwrap();
            // f32 accumulation in a different order, then one rounding of values ~sqrt(k).
            let scale = (k as f32).sqrt();
            let (atol, rtol) = common::tol(dt);
            check_tol(
                &format!("linear {dt:?} {m}x{k}x{n}"),
                &got,
                &want,
                atol * scale,
                rtol * 2.0,
            );

            let (b, bv) = input(&[3, k, n], dt, 12);
            let (a3, a3v) = input(&[3, m, k], dt, 13);
            let mut want = vec![0.0; 3 * m * n];
            for i in 0..3 {
                R::matmul(
                    &a3v[i * m * k..][..m * k],
                    &bv[i * k * n..][..k * n],
                    m,
                    k,
                    n,
                    false,
                    &mut want[i * m * n..][..m * n],
                )
                .unwrap();
            }
            let got = F::matmul(&a3.to_device(&dev).unwrap(), &b.to_device(&dev).unwrap()).unwrap();
            check_tol(
                &format!("batched matmul {dt:?} {m}x{k}x{n}"),
                &got,
                &want,
                atol * scale,
                rtol * 2.0,
            );
        }
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn attention_matches_reference() {
    let dev = gpu();
    for dt in DTYPES {
        for (q_len, k_len, heads, kv_heads, hd) in [
            (1, 1, 2, 1, 8),
            (5, 5, 9, 3, 64),
            (1, 37, 8, 2, 64),
            (17, 17, 4, 4, 128),
            (3, 40, 8, 1, 32),
        ] {
            for causal in [false, true] {
                let (q, qv) = input(&[q_len, heads, hd], dt, 14);
                let (k, kv) = input(&[k_len, kv_heads, hd], dt, 15);
                let (v, vv) = input(&[k_len, kv_heads, hd], dt, 16);
                let scale = 1.0 / (hd as f32).sqrt();
                let mut want = vec![0.0; qv.len()];
                R::attention(
                    &qv, &kv, &vv, q_len, k_len, heads, kv_heads, hd, scale, causal, &mut want,
                )
                .unwrap();
                let got = F::attention(
                    &q.to_device(&dev).unwrap(),
                    &k.to_device(&dev).unwrap(),
                    &v.to_device(&dev).unwrap(),
                    scale,
                    causal,
                )
                .unwrap();
                let (atol, rtol) = common::tol(dt);
                check_tol(
                    &format!(
                        "attention {dt:?} q{q_len} k{k_len} h{heads}/{kv_heads} d{hd} causal={causal}"
                    ),
                    &got,
                    &want,
                    atol * 4.0,
                    rtol * 4.0,
                );
            }
        }
    }
}

/// The FlashAttention-2 prefill kernel against the CPU attention: GQA groups 1, 3, 4 and 8, head
/// dims 64 and 128, lengths that are not multiples of the 64-row tiles, causal and full, a
/// causal prefill after cached keys, f16 and bf16. Tolerance: P is rounded to the input type
/// before P·V (as in FlashAttention), so 4x one rounding of the output.
#[test]
#[ignore = "needs a CUDA GPU"]
fn flash_attention_matches_reference() {
    let mut cases = vec![];
    for (group, kv_heads) in [(1, 2), (3, 1), (4, 2), (8, 1)] {
        for hd in [64, 128] {
            for len in [1, 17, 127, 1000] {
                cases.push((len, len, group * kv_heads, kv_heads, hd));
            }
        }
    }
    // After cached keys (bottom-right causal).
    cases.extend([(100, 357, 8, 2, 128), (17, 64, 3, 1, 64)]);
    check_flash_attention(&cases);
}

/// As [`flash_attention_matches_reference`] over 4097 tokens (65 query and key tiles, the last
/// one a single row); separate so the sanitizer runs can leave it out.
#[test]
#[ignore = "needs a CUDA GPU"]
fn flash_attention_long_sequence() {
    check_flash_attention(&[(4097, 4097, 8, 2, 128), (4097, 4097, 8, 8, 64)]);
}

/// Runs the flash-attention cases `(q_len, k_len, heads, kv_heads, head_dim)`, causal and full,
/// f16 and bf16, against the CPU attention.
fn check_flash_attention(cases: &[(usize, usize, usize, usize, usize)]) {
    let dev = gpu();
    for dt in [DType::F16, DType::BF16] {
        for &(q_len, k_len, heads, kv_heads, hd) in cases {
            for causal in [false, true] {
                let (q, qv) = input(&[q_len, heads, hd], dt, 24);
                let (k, kv) = input(&[k_len, kv_heads, hd], dt, 25);
                let (v, vv) = input(&[k_len, kv_heads, hd], dt, 26);
                let scale = 1.0 / (hd as f32).sqrt();
                let want = if q_len * k_len > 1 << 20 {
                    // The scalar reference is too slow here; the SIMD CPU path is itself tested
                    // against it.
                    F::attention(&q, &k, &v, scale, causal)
                        .unwrap()
                        .to_vec_f32()
                        .unwrap()
                } else {
                    let mut want = vec![0.0; qv.len()];
                    R::attention(
                        &qv, &kv, &vv, q_len, k_len, heads, kv_heads, hd, scale, causal, &mut want,
                    )
                    .unwrap();
                    want
                };
                let got = F::attention(
                    &q.to_device(&dev).unwrap(),
                    &k.to_device(&dev).unwrap(),
                    &v.to_device(&dev).unwrap(),
                    scale,
                    causal,
                )
                .unwrap();
                let (atol, rtol) = common::tol(dt);
                check_tol(
                    &format!(
                        "flash attention {dt:?} q{q_len} k{k_len} h{heads}/{kv_heads} d{hd} causal={causal}"
                    ),
                    &got,
                    &want,
                    atol * 4.0,
                    rtol * 4.0,
                );
            }
        }
    }
}

/// One query token against long caches: the split-KV decode kernel, read through a cache-prefix
/// view as the model does.
#[test]
#[ignore = "needs a CUDA GPU"]
fn decode_attention_matches_reference() {
    let dev = gpu();
    let cases = [
        (32, 32, 128),
        (9, 3, 64),
        (32, 8, 128),
        (8, 1, 64),
        (12, 4, 32),
    ];
    for dt in [DType::F16, DType::BF16, DType::F32] {
        for (heads, kv_heads, hd) in cases {
            for k_len in [1, 17, 1000, 4096, 16384] {
                if k_len == 16384 && (heads, kv_heads) != (32, 32) {
                    continue;
                }
                let cap = k_len + 5;
                let (q, qv) = input(&[1, heads, hd], dt, 17);
                let (kc, kcv) = input(&[cap, kv_heads, hd], dt, 18);
                let (vc, vcv) = input(&[cap, kv_heads, hd], dt, 19);
                let (kv, vv) = (&kcv[..k_len * kv_heads * hd], &vcv[..k_len * kv_heads * hd]);
                let scale = 1.0 / (hd as f32).sqrt();
                let mut want = vec![0.0; qv.len()];
                R::attention(
                    &qv, kv, vv, 1, k_len, heads, kv_heads, hd, scale, true, &mut want,
                )
                .unwrap();
                let (kg, vg) = (kc.to_device(&dev).unwrap(), vc.to_device(&dev).unwrap());
                let got = F::attention(
                    &q.to_device(&dev).unwrap(),
                    &kg.narrow(0, 0, k_len).unwrap(),
                    &vg.narrow(0, 0, k_len).unwrap(),
                    scale,
                    true,
                )
                .unwrap();
                let (atol, rtol) = common::tol(dt);
                let name = format!("decode attention {dt:?} h{heads}/{kv_heads} d{hd} k{k_len}");
                check_tol(&name, &got, &want, atol * 2.0, rtol * 2.0);
            }
        }
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn allocator_reuses_blocks() {
    let dev = gpu();
    let gpu = dev.as_cuda().unwrap().clone();
    let x = Tensor::randn([64, 4096], 1.0, 1, DType::F16, &dev).unwrap();
    let w = Tensor::randn([4096], 1.0, 2, DType::F16, &dev).unwrap();
    for _ in 0..3 {
        F::rms_norm(&x, &w, 1e-5).unwrap();
    }
    let before = gpu.memory_stats();
    for _ in 0..100 {
        F::rms_norm(&x, &w, 1e-5).unwrap();
    }
    let after = gpu.memory_stats();
    assert_eq!(
        before.driver_allocations, after.driver_allocations,
        "steady state must not allocate: {before:?} -> {after:?}"
    );
    assert_eq!(before.in_use, after.in_use);
    assert!(after.peak >= after.in_use);
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn mixed_devices_are_a_typed_error() {
    let dev = gpu();
    let a = Tensor::zeros([4], DType::F32, &Device::Cpu).unwrap();
    let b = Tensor::zeros([4], DType::F32, &dev).unwrap();
    assert!(matches!(
        F::add(&a, &b),
        Err(nano_infer::Error::DeviceMismatch { .. })
    ));
}
