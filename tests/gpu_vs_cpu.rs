//! Every GPU kernel against the scalar CPU reference, through the public `functional` API, on
//! odd shapes and all three dtypes. Each test body is written once and runs per device
//! (`common::device_tests!`): `emu::*` on the emulated GPU — the same launchers, launch shapes
//! and kernels, run on the CPU by the SIMT emulator — on every `cargo test`, with small shapes
//! that still take every kernel path; `cuda::*` on a GPU with the full shapes:
//! `cargo test --release --test gpu_vs_cpu -- --include-ignored cuda::` on a GPU host.
//!
//! Inputs are rounded to the dtype first, so the reference sees exactly what the kernel sees;
//! tolerances (`common::tol`) allow one rounding of the result plus f32 math differences
//! (approximate `rsqrt`/`ex2`), the same on both devices.

mod common;
#[path = "gpu_vs_cpu/fused_gemv.rs"]
mod fused_gemv;
#[path = "gpu_vs_cpu/gemv.rs"]
mod gemv;

use common::{DTYPES, cases, check, check_tol, input};
use fused_gemv::{fused_gemv_matches_unfused, qkv_rope_kv_write_matches_unfused};
use gemv::{
    gate_up_swiglu_gemv_matches_unfused, quantize_and_dequantize_on_device_match_cpu,
    quantized_gemv_matches_dequantized_reference,
};
use nano_infer::backend::cpu::reference as R;
use nano_infer::backend::cuda::DeviceU32;
use nano_infer::functional as F;
use nano_infer::{DType, Device, Tensor};

common::device_tests!(
    rms_norm_and_add_rms_norm,
    elementwise_maps,
    softmax_full_and_causal,
    rope_both_layouts_with_offset,
    embedding_cast_and_views,
    gemm_matches_reference,
    attention_matches_reference,
    flash_attention_matches_reference,
    flash3_attention_matches_reference,
    flash_attention_rising_scores,
    decode_attention_matches_reference,
    decode_step_attention_sees_the_new_key,
    positions_past_the_cache_stay_inside_it,
    quantized_gemv_matches_dequantized_reference,
    gate_up_swiglu_gemv_matches_unfused,
    fused_gemv_matches_unfused,
    qkv_rope_kv_write_matches_unfused,
    quantize_and_dequantize_on_device_match_cpu,
    allocator_reuses_blocks,
    mixed_devices_are_a_typed_error,
);

const EPS: f32 = 1e-5;

/// `(rows, cols)` on a GPU: every row count with every length. 40968 = 4 cached chunks x 1024
/// threads x 8 + more: exercises the re-read tail.
fn row_cases_full() -> Vec<(usize, usize)> {
    let cols = [1, 7, 64, 576, 1000, 4096, 4099, 11008, 40968];
    [1, 3, 37]
        .into_iter()
        .flat_map(|r| cols.map(|c| (r, c)))
        .collect()
}

/// `(rows, cols)` on the emulator: one-warp rows (cols <= 1024; 5 rows leave a partly empty
/// 4-row block), a 160-thread block reduction (4099, odd: scalar path), and 512 threads with
/// rows past the register cache (40968 > 4 chunks x 8 x 512); `host/tests/emu/launch_shapes.rs`
/// checks that these take both row layouts.
const ROW_CASES_SMALL: [(usize, usize); 9] = [
    (1, 1),
    (3, 7),
    (5, 64),
    (5, 576),
    (3, 1000),
    (2, 4096),
    (3, 4099),
    (2, 11008),
    (2, 40968),
];

fn rms_norm_and_add_rms_norm(dev: &Device) {
    for dt in DTYPES {
        for (rows, cols) in cases(dev, &row_cases_full(), &ROW_CASES_SMALL) {
            let (x, xv) = input(&[rows, cols], dt, 1);
            let (r, rv) = input(&[rows, cols], dt, 2);
            let (w, wv) = input(&[cols], dt, 3);
            let (xg, rg, wg) = (
                x.to_device(dev).unwrap(),
                r.to_device(dev).unwrap(),
                w.to_device(dev).unwrap(),
            );
            let case = format!("{dt:?} {rows}x{cols}");
            let mut want = vec![0.0; rows * cols];
            R::rms_norm(&xv, &wv, EPS, &mut want).unwrap();
            check(
                &format!("rms_norm {case}"),
                &F::rms_norm(&xg, &wg, EPS).unwrap(),
                &want,
                dt,
            );
            let (mut sum, mut norm) = (vec![0.0; rows * cols], vec![0.0; rows * cols]);
            R::add_rms_norm(&xv, &rv, &wv, EPS, &mut sum, &mut norm).unwrap();
            let (gs, gn) = F::add_rms_norm(&xg, &rg, &wg, EPS).unwrap();
            check(&format!("add_rms_norm sum {case}"), &gs, &sum, dt);
            check(&format!("add_rms_norm norm {case}"), &gn, &norm, dt);
            // The same kernel without writing the sum (a null `sum_out`).
            let only = F::rms_norm_of_sum(&xg, &rg, &wg, EPS).unwrap();
            check(&format!("rms_norm_of_sum {case}"), &only, &norm, dt);
        }
    }
}

fn elementwise_maps(dev: &Device) {
    for dt in DTYPES {
        for n in [1, 7, 8, 1000, 4099, 65536 + 3] {
            let (a, av) = input(&[n + 1], dt, 4);
            let (b, bv) = input(&[n + 1], dt, 5);
            let (ag, bg) = (a.to_device(dev).unwrap(), b.to_device(dev).unwrap());
            // Whole buffers (16-byte aligned: vector path), then views one element in (not
            // aligned: scalar path).
            for (start, name) in [(0, ""), (1, " misaligned")] {
                let len = n + 1 - start;
                let (ag, bg) = (
                    ag.narrow(0, start, len).unwrap(),
                    bg.narrow(0, start, len).unwrap(),
                );
                let (av, bv) = (&av[start..], &bv[start..]);
                let mut want = vec![0.0; len];
                R::silu(av, &mut want).unwrap();
                let case = format!("{dt:?} {len}{name}");
                check(&format!("silu {case}"), &F::silu(&ag).unwrap(), &want, dt);
                R::swiglu(av, bv, &mut want).unwrap();
                check(
                    &format!("swiglu {case}"),
                    &F::swiglu(&ag, &bg).unwrap(),
                    &want,
                    dt,
                );
                R::add(av, bv, &mut want).unwrap();
                check(
                    &format!("add {case}"),
                    &F::add(&ag, &bg).unwrap(),
                    &want,
                    dt,
                );
                R::mul(av, bv, &mut want).unwrap();
                check(
                    &format!("mul {case}"),
                    &F::mul(&ag, &bg).unwrap(),
                    &want,
                    dt,
                );
            }
        }
    }
}

fn softmax_full_and_causal(dev: &Device) {
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
                let got = F::softmax(&x.to_device(dev).unwrap(), 0.37, causal).unwrap();
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

fn rope_both_layouts_with_offset(dev: &Device) {
    for dt in DTYPES {
        for (seq, heads, hd) in [(1, 1, 2), (3, 5, 6), (7, 9, 64), (5, 4, 128), (2, 3, 24)] {
            let (cos, sin) = R::rope_table(2048, hd, 10000.0);
            let table = F::RopeTable::new(2048, hd, 10000.0, dev).unwrap();
            for interleaved in [false, true] {
                for offset in [0, 1000] {
                    let (x, xv) = input(&[2, seq, heads, hd], dt, 7);
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
                    let got =
                        F::rope(&x.to_device(dev).unwrap(), &table, offset, interleaved).unwrap();
                    let name = format!(
                        "rope {dt:?} {seq}x{heads}x{hd} interleaved={interleaved} offset={offset}"
                    );
                    check(&name, &got, &want, dt);
                }
            }
        }
    }
}

fn embedding_cast_and_views(dev: &Device) {
    for dt in DTYPES {
        let (table, tv) = input(&[50, 37], dt, 8);
        let ids = [3u32, 0, 49, 3, 17];
        let got = F::embedding(&ids, &table.to_device(dev).unwrap()).unwrap();
        let want: Vec<f32> = ids
            .iter()
            .flat_map(|&i| tv[i as usize * 37..(i as usize + 1) * 37].to_vec())
            .collect();
        check(&format!("embedding {dt:?}"), &got, &want, DType::F32);
        assert!(
            F::embedding(&[50], &table.to_device(dev).unwrap()).is_err(),
            "id past the vocabulary must error"
        );

        for to in DTYPES {
            let got = table.to_device(dev).unwrap().to_dtype(to).unwrap();
            let want = table.to_dtype(to).unwrap().to_vec_f32().unwrap();
            check(&format!("cast {dt:?}->{to:?}"), &got, &want, DType::F32);
        }

        // Transposed and narrowed views made contiguous on the device, and a write into a view.
        let (x, _) = input(&[4, 5, 6], dt, 9);
        let xg = x.to_device(dev).unwrap();
        let v = x.permute(&[2, 0, 1]).unwrap().narrow(1, 1, 2).unwrap();
        let vg = xg.permute(&[2, 0, 1]).unwrap().narrow(1, 1, 2).unwrap();
        check(
            &format!("strided view {dt:?}"),
            &vg.contiguous().unwrap(),
            &v.to_vec_f32().unwrap(),
            DType::F32,
        );
        let dst = Tensor::zeros([6, 4, 5], dt, dev).unwrap();
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

/// `(m, k, n)`: m <= GEMV_MAX_M (4) with a transposed weight runs the GEMV kernel (vector path
/// when k % 8 == 0, unrolled groups from k = 1000), larger m cuBLAS (the emulator: a scalar
/// GEMM on the cuBLAS call's arguments).
/// m <= 8 with a transposed weight runs the GEMV kernel (vector path when k % 8 == 0; odd n
/// leaves the last row pair of a block half empty; k = 2056 a ragged last group); above, cuBLAS.
const GEMM_FULL: [(usize, usize, usize); 10] = [
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
];
/// On the emulator: every GEMV row count (1-8; widths 1, 2, 4, 8 are kernels) on the scalar
/// path (k = 7, 4099), the vector tail (64) and the grouped loads (1000); then cuBLAS.
fn gemm_cases_small() -> Vec<(usize, usize, usize)> {
    let gemv = [(7, 5), (64, 33), (1000, 100), (4099, 17)];
    (1..=8)
        .flat_map(|m| gemv.map(|(k, n)| (m, k, n)))
        .chain([(5, 103, 7), (17, 64, 33)])
        .collect()
}

fn gemm_matches_reference(dev: &Device) {
    for dt in DTYPES {
        for (m, k, n) in cases(dev, &GEMM_FULL, &gemm_cases_small()) {
            let (a, av) = input(&[m, k], dt, 10);
            let (w, wv) = input(&[n, k], dt, 11);
            let mut want = vec![0.0; m * n];
            R::matmul(&av, &wv, m, k, n, true, &mut want).unwrap();
            let got = F::linear(&a.to_device(dev).unwrap(), &w.to_device(dev).unwrap()).unwrap();
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
            let got = F::matmul(&a3.to_device(dev).unwrap(), &b.to_device(dev).unwrap()).unwrap();
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

/// Every attention path (decode kernel, FlashAttention, cuBLAS + softmax for f32 and other head
/// dims) against the CPU attention.
fn attention_matches_reference(dev: &Device) {
    let cases = both_masks(&[
        (1, 1, 2, 1, 8),
        (5, 5, 9, 3, 64),
        (1, 37, 8, 2, 64),
        (17, 17, 4, 4, 128),
        (3, 40, 8, 1, 32),
    ]);
    check_attention(dev, &DTYPES, &cases);
}

/// FlashAttention-2 prefill on a GPU: GQA groups 1, 3, 4 and 8, head dims 64 and 128, lengths
/// that are not multiples of the 64-row tiles, and a causal prefill after cached keys.
fn flash_cases_full() -> Vec<AttnCase> {
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
    both_masks(&cases)
}

/// `(q_len, k_len, heads, kv_heads, head_dim, causal)`.
type AttnCase = (usize, usize, usize, usize, usize, bool);

/// Each case causal and full.
fn both_masks(cases: &[(usize, usize, usize, usize, usize)]) -> Vec<AttnCase> {
    let with = |&(q, k, h, kvh, d): &_, c| (q, k, h, kvh, d, c);
    cases
        .iter()
        .flat_map(|c| [with(c, false), with(c, true)])
        .collect()
}

/// On the emulator: tails of both tiles, a causal prefill after cached keys (kv_len > q_len),
/// GQA groups 1, 3, 4, two query tiles (the causal masked-tile skip), each mask once; three
/// query tiles of two KV groups of two under the full mask (its grid order).
const FLASH_SMALL: [AttnCase; 7] = [
    (1, 1, 2, 1, 64, true),
    (17, 17, 3, 1, 64, true),
    (17, 40, 4, 1, 128, true),
    (70, 70, 2, 2, 64, true),
    (70, 130, 4, 1, 64, false),
    (33, 65, 2, 1, 128, false),
    (300, 300, 4, 2, 64, false),
];

/// The FlashAttention-2 prefill kernel against the CPU attention, f16 and bf16. Tolerance: P
/// is rounded to the input type before P·V (as in FlashAttention), so 4x one rounding of the
/// output.
fn flash_attention_matches_reference(dev: &Device) {
    let dev = &with_flash3(dev, false).expect("FlashAttention-2 runs everywhere");
    check_attention(
        dev,
        &FLASH_DTYPES,
        &cases(dev, &flash_cases_full(), &FLASH_SMALL),
    );
}

/// `dev` with prefill attention at head dim 128 on FlashAttention-3 (`on`) or -2; `None` where
/// FlashAttention-3 cannot run (a GPU other than compute capability 9.0).
fn with_flash3(dev: &Device, on: bool) -> Option<Device> {
    match dev {
        Device::Cuda(be) => be.with_flash3(on).ok().map(Device::Cuda),
        other => Some(other.clone()),
    }
}

/// The cases a pass over FlashAttention-2 (`flash3` false: all) or FlashAttention-3 (head dim
/// 128 only; the others would run FlashAttention-2 again) tests.
fn flash_kernel_cases(cases: &[AttnCase], flash3: bool) -> Vec<AttnCase> {
    let takes = |c: &&AttnCase| !flash3 || c.4 == 128;
    cases.iter().filter(takes).copied().collect()
}

/// On the emulator, FlashAttention-3 (head dim 128 only): a single key, a causal prefill after
/// cached keys with a key-tile tail, two query and two key tiles of one KV group of two under
/// the full mask, and a causal GQA-4 prefill after 20 cached keys over two query tiles, where
/// the first tile's first warpgroup (rows 0-63, keys up to 83) skips the second key tile.
const FLASH3_SMALL: [AttnCase; 4] = [
    (1, 1, 2, 1, 128, true),
    (17, 40, 4, 1, 128, true),
    (130, 200, 2, 1, 128, false),
    (150, 170, 4, 1, 128, true),
];

/// The FlashAttention-3 prefill kernel (sm_90a `wgmma`) against the CPU attention, f16 and
/// bf16, on the FlashAttention-2 cases at head dim 128; tolerance as FlashAttention-2. Reports
/// and skips on a GPU without it (only compute capability 9.0 runs sm_90a code).
fn flash3_attention_matches_reference(dev: &Device) {
    let Some(dev) = &with_flash3(dev, true) else {
        eprintln!("skipped: {dev:?} has no FlashAttention-3 (needs compute capability 9.0)");
        return;
    };
    let full = flash_kernel_cases(&flash_cases_full(), true);
    check_attention(dev, &FLASH_DTYPES, &cases(dev, &full, &FLASH3_SMALL));
}

/// As [`flash_attention_matches_reference`] over 4097 tokens (65 query and key tiles, the last
/// one a single row), on FlashAttention-2 and (where it runs) FlashAttention-3; GPU only, and
/// separate so the sanitizer runs can leave it out.
#[test]
#[ignore = "needs a CUDA GPU"]
fn flash_attention_long_sequence() {
    let cases = both_masks(&[(4097, 4097, 8, 2, 128), (4097, 4097, 8, 8, 64)]);
    for flash3 in [false, true] {
        if let Some(dev) = with_flash3(&common::gpu(), flash3) {
            check_attention(&dev, &FLASH_DTYPES, &flash_kernel_cases(&cases, flash3));
        }
    }
}

/// The types FlashAttention takes.
const FLASH_DTYPES: [DType; 2] = [DType::F16, DType::BF16];

/// FlashAttention with scores that rise along the keys (key `t` scaled by `1 + t / 10`): a
/// row's max keeps passing its running max, by more than the lazy-rescale slack
/// (`FLASH_RESCALE_SLACK`, 8 in log2 units) at some tiles and by less at others, so both the
/// rescale and the stale-max path carry real weight; random keys move the max past the first
/// tile by less than the slack.
fn flash_attention_rising_scores(dev: &Device) {
    let full = both_masks(&[(300, 1000, 4, 2, 128), (257, 257, 2, 1, 64)]);
    let small = both_masks(&[(40, 130, 2, 1, 64), (17, 96, 2, 1, 128)]);
    // FlashAttention-2, then (head dim 128 only) FlashAttention-3 where it runs.
    for flash3 in [false, true] {
        if let Some(dev) = with_flash3(dev, flash3) {
            let cases = flash_kernel_cases(&cases(&dev, &full, &small), flash3);
            check_attention_keys(&dev, &FLASH_DTYPES, &cases, 0.1);
        }
    }
}

/// Runs attention cases in each of `dtypes` against the CPU attention; tolerance 4x one
/// rounding of the output (P is rounded to the input type before P·V, as in FlashAttention).
fn check_attention(dev: &Device, dtypes: &[DType], cases: &[AttnCase]) {
    check_attention_keys(dev, dtypes, cases, 0.0);
}

/// [`check_attention`] with key row `t` scaled by `1 + key_ramp * t` (then rounded to the dtype).
fn check_attention_keys(dev: &Device, dtypes: &[DType], cases: &[AttnCase], key_ramp: f32) {
    for &dt in dtypes {
        for &(q_len, k_len, heads, kv_heads, hd, causal) in cases {
            let (q, qv) = input(&[q_len, heads, hd], dt, 24);
            let (mut k, mut kv) = input(&[k_len, kv_heads, hd], dt, 25);
            if key_ramp != 0.0 {
                let row = kv_heads * hd;
                let ramped = kv
                    .iter()
                    .enumerate()
                    .map(|(i, x)| x * (1.0 + key_ramp * (i / row) as f32))
                    .collect();
                k = Tensor::from_f32(ramped, [k_len, kv_heads, hd], dt, &Device::Cpu).unwrap();
                kv = k.to_vec_f32().unwrap();
            }
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
                &q.to_device(dev).unwrap(),
                &k.to_device(dev).unwrap(),
                &v.to_device(dev).unwrap(),
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

/// `(heads, kv_heads, head_dim, k_len)` on a GPU: GQA ratios 1, 3, 4, 8 (and 8 at head dim 128)
/// with every cache length (16384 for the 32/32 and 32/8 layouts of the benchmark).
fn decode_cases_full() -> Vec<(usize, usize, usize, usize)> {
    let heads = [
        (32, 32, 128),
        (9, 3, 64),
        (32, 8, 128),
        (8, 1, 64),
        (16, 2, 128),
    ];
    heads
        .into_iter()
        .flat_map(|(h, kvh, d)| [1, 17, 1000, 4096, 16384].map(|k| (h, kvh, d, k)))
        .filter(|&(h, _, _, k)| k < 16384 || h == 32)
        .collect()
}

/// On the emulator (2 SMs): 1, 2, 3, 4 and 8 heads per block; one split (up to
/// `DECODE_MIN_SPLIT_LEN` keys: the answer written directly) and two splits merged (8/1 d64
/// k530, 4/1 d128 k600: five tiles, the last partial); the warp merge's four-column path (4/1
/// d128, 8/1 d64) with one split (k100) and with two; warps with no key at all (k 5); head
/// dims 64 and 128.
const DECODE_SMALL: [(usize, usize, usize, usize); 8] = [
    (2, 1, 64, 5),
    (4, 4, 128, 40),
    (9, 3, 64, 1),
    (9, 3, 64, 200),
    (8, 1, 64, 530),
    (12, 6, 64, 300),
    (4, 1, 128, 600),
    (4, 1, 128, 100),
];

/// One query token against long caches: the split-KV decode kernels (tensor cores for f16/bf16,
/// the one-warp kernel for f32), read through a cache-prefix view as the model does. Tolerance:
/// twice the dtype's (`common::tol`): P is rounded to f16/bf16 before `P·V`, as in the prefill.
fn decode_attention_matches_reference(dev: &Device) {
    for dt in [DType::F16, DType::BF16, DType::F32] {
        for (heads, kv_heads, hd, k_len) in cases(dev, &decode_cases_full(), &DECODE_SMALL) {
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
            let (kg, vg) = (kc.to_device(dev).unwrap(), vc.to_device(dev).unwrap());
            let got = F::attention(
                &q.to_device(dev).unwrap(),
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

/// The decode step's pair of launches, back to back: `rope_kv_write` writes the new token's
/// cache row, and `decode_attention` (which starts loading the older rows before that kernel
/// has finished) must see it. The new key is the token's own query (per KV group), so it takes
/// most of the softmax and a stale row would move the answer far past the tolerance; the
/// answer is checked against `attention` over the same cache afterwards (which waits for
/// everything before it), over three steps of a growing cache.
fn decode_step_attention_sees_the_new_key(dev: &Device) {
    let Device::Cuda(be) = dev else {
        return; // device-side positions are CUDA's
    };
    let full = [(32, 8, 128, 4100), (32, 32, 128, 16390), (9, 3, 64, 1000)];
    for (heads, kv_heads, d, cap) in cases(dev, &full, &[(4, 1, 128, 600), (9, 3, 64, 300)]) {
        for dt in [DType::F16, DType::BF16] {
            let up = |t: Tensor| t.to_dtype(dt).unwrap().to_device(dev).unwrap();
            let kc = up(input(&[cap, kv_heads, d], DType::F32, 60).0);
            let vc = up(input(&[cap, kv_heads, d], DType::F32, 61).0);
            let table = F::RopeTable::new(cap, d, 10000.0, dev).unwrap();
            let first = cap as u32 - 3;
            let pos = DeviceU32::new(be, first).unwrap();
            let scale = 1.0 / (d as f32).sqrt();
            for step in 0..3 {
                let (q, qv) = input(&[1, heads, d], DType::F32, 62 + step);
                // KV head h's new key: query head h * group (RoPE turns both alike).
                let group = heads / kv_heads;
                let kv: Vec<f32> = (0..kv_heads * d)
                    .map(|i| qv[(i / d) * group * d + i % d])
                    .collect();
                let k_new = Tensor::from_vec(kv, [1, kv_heads, d], &Device::Cpu).unwrap();
                let v_new = input(&[1, kv_heads, d], DType::F32, 70 + step).0;
                let rq = F::rope_kv_write(
                    &up(q),
                    &up(k_new),
                    &up(v_new),
                    &table,
                    &kc,
                    &vc,
                    &pos,
                    false,
                )
                .unwrap();
                let got = F::decode_attention(&rq, &kc, &vc, &pos, scale).unwrap();
                let len = first as usize + step as usize + 1;
                let want = F::attention(
                    &rq,
                    &kc.narrow(0, 0, len).unwrap(),
                    &vc.narrow(0, 0, len).unwrap(),
                    scale,
                    true,
                )
                .unwrap();
                let name = format!("decode step {dt:?} h{heads}/{kv_heads} d{d} keys {len}");
                check(&name, &got, &want.to_vec_f32().unwrap(), dt);
                pos.add(1).unwrap();
            }
        }
    }
}

/// A device-side position at or past a cache's rows (which the host cannot check): the
/// decode step's kernels neither write nor read outside the cache. The caches are the first
/// `cap` rows of larger buffers: `rope_kv_write` and `qkv_rope_kv_write` leave every row of
/// the buffers as it was, and `decode_attention` attends over the cache's `cap` rows only (the
/// rows after them hold other keys, which would change the answer). A RoPE table shorter than
/// the cache bounds the writes the same way (attention then still reads the cache's rows up to
/// the position).
fn positions_past_the_cache_stay_inside_it(dev: &Device) {
    let Device::Cuda(be) = dev else {
        return; // device-side positions are CUDA's
    };
    let (heads, kv_heads, d, hidden) = (8, 2, 64, 64);
    let (buffer_rows, scale) = (48, 0.125);
    let w = input(&[(heads + 2 * kv_heads) * d, hidden], DType::F32, 80).0;
    // (cache rows, table rows): the cache bounds the writes, then the table.
    for (cap, table_rows) in [(40, 64), (40, 36)] {
        let rows = cap.min(table_rows);
        let table = F::RopeTable::new(table_rows, d, 10000.0, dev).unwrap();
        for dt in [DType::F16, DType::BF16] {
            let up = |t: Tensor| t.to_dtype(dt).unwrap().to_device(dev).unwrap();
            let buffers = || {
                let b = |seed| up(input(&[buffer_rows, kv_heads, d], DType::F32, seed).0);
                (b(81), b(82))
            };
            let (q, k, v) = (
                up(input(&[1, heads, d], DType::F32, 83).0),
                up(input(&[1, kv_heads, d], DType::F32, 84).0),
                up(input(&[1, kv_heads, d], DType::F32, 85).0),
            );
            let (x, g) = (
                up(input(&[1, hidden], DType::F32, 86).0),
                up(input(&[hidden], DType::F32, 87).0),
            );
            let wd = F::LinearWeight::Dense(up(w.clone()));
            let vals = |t: &Tensor| t.to_vec_f32().unwrap();
            for pos in [rows, rows + 3, u32::MAX as usize] {
                let at = DeviceU32::new(be, pos as u32).unwrap();
                let name = format!("{dt:?} cache {cap} table {table_rows} pos {pos}");
                let (kb, vb) = buffers();
                let (before_k, before_v) = (vals(&kb), vals(&vb));
                let (kc, vc) = (kb.narrow(0, 0, cap).unwrap(), vb.narrow(0, 0, cap).unwrap());
                F::rope_kv_write(&q, &k, &v, &table, &kc, &vc, &at, false).unwrap();
                let norm = Some((&g, EPS));
                F::qkv_rope_kv_write(
                    &x,
                    norm,
                    &wd,
                    (heads, kv_heads),
                    &table,
                    (&kc, &vc),
                    &at,
                    true,
                )
                .unwrap();
                assert_eq!(vals(&kb), before_k, "{name}: key buffer changed");
                assert_eq!(vals(&vb), before_v, "{name}: value buffer changed");
                let got = F::decode_attention(&q, &kc, &vc, &at, scale).unwrap();
                let len = (pos + 1).min(cap);
                let (kl, vl) = (kc.narrow(0, 0, len).unwrap(), vc.narrow(0, 0, len).unwrap());
                let want = F::attention(&q, &kl, &vl, scale, true).unwrap();
                check(&format!("{name}: attention"), &got, &vals(&want), dt);
            }
        }
    }
}

fn allocator_reuses_blocks(dev: &Device) {
    let backend = dev.as_cuda().unwrap().clone();
    let [rows, runs] = cases(dev, &[[64, 100]], &[[4, 10]])[0];
    let x = Tensor::randn([rows, 4096], 1.0, 1, DType::F16, dev).unwrap();
    let w = Tensor::randn([4096], 1.0, 2, DType::F16, dev).unwrap();
    for _ in 0..3 {
        F::rms_norm(&x, &w, EPS).unwrap();
    }
    let before = backend.memory_stats();
    for _ in 0..runs {
        F::rms_norm(&x, &w, EPS).unwrap();
    }
    let after = backend.memory_stats();
    assert_eq!(
        before.driver_allocations, after.driver_allocations,
        "steady state must not allocate: {before:?} -> {after:?}"
    );
    assert_eq!(before.in_use, after.in_use);
    assert!(after.peak >= after.in_use);
}

fn mixed_devices_are_a_typed_error(dev: &Device) {
    let a = Tensor::zeros([4], DType::F32, &Device::Cpu).unwrap();
    let b = Tensor::zeros([4], DType::F32, dev).unwrap();
    assert!(matches!(
        F::add(&a, &b),
        Err(nano_infer::Error::DeviceMismatch { .. })
    ));
}
