//! Every kernel of `gpu-kernels` under the emulator against the scalar CPU reference: the GPU
//! tests (`tests/gpu_vs_cpu.rs`) on CPU-only CI, with smaller shapes that still take every path
//! (one-warp rows packed 4 to a block, multi-warp rows with a block reduction, rows longer than
//! the register cache, grid-stride loops, vector and scalar/misaligned accesses, GEMV with and
//! without its unrolled groups, decode attention with 1-4 heads per block and several splits)
//! and every dtype.

use nano_infer_host::DType;
use nano_infer_host::backend::cpu::reference as R;
use nano_infer_kernels::launch_shape;
use nano_infer_kernels::params::{FlashAttnParams, RopeParams, SoftmaxParams};

use nano_infer_host::backend::cpu::testing::assert_close;

use crate::harness::{self as H, DTYPES, DevBuf, GemvWeight, RawBuf, View, check, input, tol};
use nano_infer_host::tensor::quant_pack as QP;
use nano_infer_kernels::params::GEMV_MAX_M;
use nano_infer_kernels::weights::QuantFormat;

const EPS: f32 = 1e-5;

/// Row shapes: one-warp rows (cols <= 1024; 5 rows leave a partly empty 4-row block), a
/// 160-thread block reduction (4099, odd: scalar path), and 512 threads with rows past the
/// register cache (40968 > 4 chunks x 8 x 512).
const ROW_CASES: [(usize, usize); 9] = [
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

#[test]
fn launch_shapes_cover_both_row_layouts() {
    let one_warp = launch_shape::rows(5, 576).unwrap();
    assert_eq!((one_warp.block, one_warp.grid.0), ((32, 4, 1), 2));
    let multi = launch_shape::rows(3, 4099).unwrap();
    assert_eq!((multi.block, multi.grid.0), ((160, 1, 1), 3));
    assert_eq!(launch_shape::rows(2, 40968).unwrap().block, (512, 1, 1));
}

#[test]
fn rms_norm_and_add_rms_norm() {
    for dt in DTYPES {
        for (rows, cols) in ROW_CASES {
            let n = rows * cols;
            let (xv, rv, wv) = (input(n, dt, 1), input(n, dt, 2), input(cols, dt, 3));
            let (x, r, w) = (
                DevBuf::from_f32(&xv, dt),
                DevBuf::from_f32(&rv, dt),
                DevBuf::from_f32(&wv, dt),
            );
            let case = format!("{dt:?} {rows}x{cols}");

            let out = DevBuf::zeros(n, dt);
            H::rms_norm(&x, &w, &out, rows, cols, EPS).unwrap_or_else(|e| panic!("{e}"));
            let mut want = vec![0.0; n];
            R::rms_norm(&xv, &wv, EPS, &mut want).unwrap();
            check(&format!("rms_norm {case}"), &out, &want, dt);

            let (sum, norm) = (DevBuf::zeros(n, dt), DevBuf::zeros(n, dt));
            H::add_rms_norm(&x, &r, &w, Some(&sum), &norm, rows, cols, EPS)
                .unwrap_or_else(|e| panic!("{e}"));
            let (mut want_sum, mut want_norm) = (vec![0.0; n], vec![0.0; n]);
            R::add_rms_norm(&xv, &rv, &wv, EPS, &mut want_sum, &mut want_norm).unwrap();
            check(&format!("add_rms_norm sum {case}"), &sum, &want_sum, dt);
            check(&format!("add_rms_norm norm {case}"), &norm, &want_norm, dt);

            // Null sum_out: only the norm of the sum (the final norm before the LM head).
            let norm_only = DevBuf::zeros(n, dt);
            H::add_rms_norm(&x, &r, &w, None, &norm_only, rows, cols, EPS)
                .unwrap_or_else(|e| panic!("{e}"));
            check(
                &format!("add_rms_norm (no sum) {case}"),
                &norm_only,
                &want_norm,
                dt,
            );
        }
    }
}

#[test]
fn elementwise_maps() {
    for dt in DTYPES {
        for n in [1, 7, 8, 1000, 4099, 65536 + 3] {
            let (av, bv) = (input(n, dt, 4), input(n, dt, 5));
            let (a, b) = (DevBuf::from_f32(&av, dt), DevBuf::from_f32(&bv, dt));
            let mut want = vec![0.0; n];
            let out = DevBuf::zeros(n, dt);
            H::silu(a.ptr(), out.ptr(), n, dt).unwrap_or_else(|e| panic!("{e}"));
            R::silu(&av, &mut want).unwrap();
            check(&format!("silu {dt:?} {n}"), &out, &want, dt);
            for (op, reference) in [
                ("swiglu", R::swiglu as fn(&[f32], &[f32], &mut [f32]) -> _),
                ("add", R::add),
                ("mul", R::mul),
            ] {
                H::binary(op, a.ptr(), b.ptr(), out.ptr(), n, dt).unwrap_or_else(|e| panic!("{e}"));
                reference(&av, &bv, &mut want).unwrap();
                check(&format!("{op} {dt:?} {n}"), &out, &want, dt);
            }
        }
    }
}

#[test]
fn maps_on_misaligned_views_and_in_place() {
    // Views starting one element in: not 16-byte aligned, so the kernels take the scalar path.
    for dt in DTYPES {
        let n = 1001;
        let (av, bv) = (input(n + 1, dt, 6), input(n + 1, dt, 7));
        let (a, b) = (DevBuf::from_f32(&av, dt), DevBuf::from_f32(&bv, dt));
        let out = DevBuf::zeros(n + 1, dt);
        H::binary("add", a.ptr_at(1), b.ptr_at(1), out.ptr_at(1), n, dt)
            .unwrap_or_else(|e| panic!("{e}"));
        let mut want = vec![0.0; n + 1];
        R::add(&av[1..], &bv[1..], &mut want[1..]).unwrap();
        check(&format!("add misaligned {dt:?}"), &out, &want, dt);

        // In place: out aliases the first input (each element read before it is written).
        H::binary("mul", a.ptr(), b.ptr(), a.ptr(), n + 1, dt).unwrap_or_else(|e| panic!("{e}"));
        R::mul(&av, &bv, &mut want).unwrap();
        check(&format!("mul in place {dt:?}"), &a, &want, dt);
    }
}

#[test]
fn softmax_full_and_causal() {
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
                let n = 2 * q_len * k_len;
                let xv = input(n, dt, 8);
                let (x, out) = (DevBuf::from_f32(&xv, dt), DevBuf::zeros(n, dt));
                let p = SoftmaxParams {
                    rows: (2 * q_len) as u32,
                    cols: k_len as u32,
                    q_len: q_len as u32,
                    scale: 0.37,
                    causal: causal as u32,
                };
                H::softmax(&x, &out, p).unwrap_or_else(|e| panic!("{e}"));
                let mut want = vec![0.0; n];
                R::softmax(&xv, q_len, k_len, 0.37, causal, &mut want).unwrap();
                check(
                    &format!("softmax {dt:?} {q_len}x{k_len} causal={causal}"),
                    &out,
                    &want,
                    dt,
                );
            }
        }
    }
}

#[test]
fn rope_both_layouts_with_offset() {
    let max_pos = 1100;
    for dt in DTYPES {
        for (seq, heads, hd) in [(1, 1, 2), (3, 5, 6), (7, 9, 64), (5, 4, 128), (2, 3, 24)] {
            let (cos, sin) = R::rope_table(max_pos, hd, 10000.0);
            for interleaved in [false, true] {
                for offset in [0, 1000] {
                    let n = 2 * seq * heads * hd;
                    let xv = input(n, dt, 9);
                    let (x, out) = (DevBuf::from_f32(&xv, dt), DevBuf::zeros(n, dt));
                    let p = RopeParams {
                        rows: (n / hd) as u32,
                        seq: seq as u32,
                        heads: heads as u32,
                        head_dim: hd as u32,
                        pos_offset: offset as u32,
                        interleaved: interleaved as u32,
                    };
                    H::rope(&x, &out, &cos, &sin, p).unwrap_or_else(|e| panic!("{e}"));
                    let mut want = vec![0.0; n];
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
                    let name = format!(
                        "rope {dt:?} {seq}x{heads}x{hd} interleaved={interleaved} offset={offset}"
                    );
                    check(&name, &out, &want, dt);
                }
            }
        }
    }
}

#[test]
fn embedding_cast_and_strided_copy() {
    for dt in DTYPES {
        // Embedding, including an id past the vocabulary (the kernel writes zeros).
        let (vocab, cols) = (50, 37);
        let tv = input(vocab * cols, dt, 10);
        let table = DevBuf::from_f32(&tv, dt);
        let ids = [3u32, 0, 49, 3, 17, 50];
        let out = DevBuf::zeros(ids.len() * cols, dt);
        H::embedding(&ids, &table, &out, cols, vocab).unwrap_or_else(|e| panic!("{e}"));
        let want: Vec<f32> = ids
            .iter()
            .flat_map(|&i| match i as usize {
                i if i < vocab => tv[i * cols..(i + 1) * cols].to_vec(),
                _ => vec![0.0; cols],
            })
            .collect();
        check(&format!("embedding {dt:?}"), &out, &want, DType::F32);

        // Casts in every direction; the reference is the host's rounding of the same values.
        for to in DTYPES.into_iter().filter(|&t| t != dt) {
            let n = 4099;
            let v = input(n, DType::F32, 11);
            let src = DevBuf::from_f32(&v, dt);
            let dst = DevBuf::zeros(n, to);
            H::cast(&src, &dst).unwrap_or_else(|e| panic!("{e}"));
            let want = DevBuf::from_f32(&src.to_f32(), to).to_f32();
            check(&format!("cast {dt:?}->{to:?}"), &dst, &want, DType::F32);
        }

        // x [4, 5, 6] permuted to [6, 4, 5] and narrowed to [6, 2, 5] (offset 1 on the middle
        // dim), made contiguous, then written into the same narrow of a zero [6, 4, 5].
        let xv = input(120, dt, 12);
        let x = DevBuf::from_f32(&xv, dt);
        let dims = [6, 2, 5];
        let src_view = View {
            dims: &dims,
            strides: &[1, 30, 6],
            offset: 30,
        };
        let packed = DevBuf::zeros(60, dt);
        let packed_view = View {
            dims: &dims,
            strides: &[10, 5, 1],
            offset: 0,
        };
        H::copy_strided(&x, &src_view, &packed, &packed_view).unwrap_or_else(|e| panic!("{e}"));
        let mut want = vec![0.0; 60];
        for a in 0..6 {
            for b in 0..2 {
                for c in 0..5 {
                    want[a * 10 + b * 5 + c] = xv[(b + 1) * 30 + c * 6 + a];
                }
            }
        }
        check(&format!("strided view {dt:?}"), &packed, &want, DType::F32);

        let dst = DevBuf::zeros(120, dt);
        let dst_view = View {
            dims: &dims,
            strides: &[20, 5, 1],
            offset: 5,
        };
        H::copy_strided(&packed, &packed_view, &dst, &dst_view).unwrap_or_else(|e| panic!("{e}"));
        let mut want_dst = vec![0.0; 120];
        for a in 0..6 {
            for b in 0..2 {
                for c in 0..5 {
                    want_dst[a * 20 + (b + 1) * 5 + c] = want[a * 10 + b * 5 + c];
                }
            }
        }
        check(
            &format!("copy into view {dt:?}"),
            &dst,
            &want_dst,
            DType::F32,
        );
    }
}

/// GEMV shapes: k = 7 / 4099 take the scalar path; 64 a partial group of loads; 1000 and 2048
/// several 128-thread groups with a ragged tail; n odd leaves the last row pair half empty.
const GEMV_CASES: [(usize, usize); 5] = [(5, 7), (33, 64), (20, 1000), (7, 2048), (3, 4099)];

/// The reference of one GEMV: f32 `x · wᵀ` (`w` already dequantized), then with `swiglu`
/// `silu(gate) · up` over the two halves of each output row.
fn gemv_reference(xv: &[f32], wv: &[f32], m: usize, k: usize, n: usize, swiglu: bool) -> Vec<f32> {
    let rows = if swiglu { 2 * n } else { n };
    let mut full = vec![0.0; m * rows];
    R::matmul(xv, wv, m, k, rows, true, &mut full).unwrap();
    if !swiglu {
        return full;
    }
    let silu = |g: f32| g / (1.0 + (-g).exp());
    (0..m * n)
        .map(|i| {
            let (r, j) = (i / n, i % n);
            silu(full[r * rows + j]) * full[r * rows + n + j]
        })
        .collect()
}

/// Checks one GEMV result: f32 sums in another order, then one rounding of values ~sqrt(k).
fn check_gemv(name: &str, y: &DevBuf, want: &[f32], k: usize) {
    let (atol, rtol) = tol(y.dt);
    assert_close(
        name,
        &y.to_f32(),
        want,
        atol * (k as f32).sqrt(),
        rtol * 2.0,
    );
}

#[test]
fn gemv_matches_matmul() {
    for dt in DTYPES {
        for (n, k) in GEMV_CASES {
            // The SwiGLU form has f16/bf16 kernels (f32 runs unfused on the host side).
            for swiglu in [false, true]
                .into_iter()
                .filter(|&s| !s || dt != DType::F32)
            {
                let rows = if swiglu { 2 * n } else { n };
                let w = DevBuf::from_f32(&input(rows * k, dt, 21), dt);
                let wv = w.to_f32();
                for m in 1..=GEMV_MAX_M {
                    let x = DevBuf::from_f32(&input(m * k, dt, 20), dt);
                    let y = DevBuf::zeros(m * n, dt);
                    H::gemv(GemvWeight::Plain(&w), &x, &y, m, n, k, swiglu)
                        .unwrap_or_else(|e| panic!("{e}"));
                    let want = gemv_reference(&x.to_f32(), &wv, m, k, n, swiglu);
                    check_gemv(
                        &format!("gemv swiglu={swiglu} {dt:?} {m}x{k}x{n}"),
                        &y,
                        &want,
                        k,
                    );
                }
            }
        }
    }
}

#[test]
fn quantized_gemv_matches_dequantized_matmul() {
    // k multiples of 32: one block, a partial group, groups with a ragged tail, a long row.
    for f in [QuantFormat::Q8_0, QuantFormat::Q4_0, QuantFormat::Q4_1] {
        for (n, k) in [(5, 32), (33, 96), (20, 1056), (3, 4128)] {
            for swiglu in [false, true] {
                let rows = if swiglu { 2 * n } else { n };
                let g = QP::quantize(f, &input(rows * k, DType::F32, 22), rows, k).unwrap();
                let wv = QP::dequantize_ggml(f, &g, rows, k).unwrap();
                let w = RawBuf::new(&QP::repack(f, &g, rows, k).unwrap());
                let dt = DType::F16;
                {
                    for m in [1, 2, 3, 8] {
                        let x = DevBuf::from_f32(&input(m * k, dt, 23), dt);
                        let y = DevBuf::zeros(m * n, dt);
                        H::gemv(GemvWeight::Quant(f, &w), &x, &y, m, n, k, swiglu)
                            .unwrap_or_else(|e| panic!("{e}"));
                        let want = gemv_reference(&x.to_f32(), &wv, m, k, n, swiglu);
                        let name = format!("gemv {f:?} swiglu={swiglu} {dt:?} {m}x{k}x{n}");
                        check_gemv(&name, &y, &want, k);
                    }
                }
            }
        }
    }
}

#[test]
fn decode_attention_matches_reference() {
    // (heads, kv_heads, head_dim, kv_len): 1-4 heads per block (group 1, 8 -> 4, 3, 2), one or
    // several splits, head_dim 8..128 (1..16 lanes per KV row), a cache longer than kv_len.
    let cases = [
        (2, 1, 8, 5),
        (4, 4, 128, 40),
        (9, 3, 64, 1),
        (9, 3, 64, 200),
        (8, 1, 64, 130),
        (12, 6, 32, 300),
    ];
    for dt in DTYPES {
        for (heads, kv_heads, d, kv_len) in cases {
            let cap = kv_len + 5;
            let qv = input(heads * d, dt, 22);
            let (kc, vc) = (
                input(cap * kv_heads * d, dt, 23),
                input(cap * kv_heads * d, dt, 24),
            );
            let (q, k, v) = (
                DevBuf::from_f32(&qv, dt),
                DevBuf::from_f32(&kc, dt),
                DevBuf::from_f32(&vc, dt),
            );
            let out = DevBuf::zeros(heads * d, dt);
            let scale = 1.0 / (d as f32).sqrt();
            H::decode_attention(
                &q,
                &k,
                &v,
                &out,
                [heads, kv_heads, d],
                kv_len,
                None,
                kv_len,
                scale,
            )
            .unwrap_or_else(|e| panic!("{e}"));
            let rows = kv_len * kv_heads * d;
            let mut want = vec![0.0; heads * d];
            R::attention(
                &qv,
                &kc[..rows],
                &vc[..rows],
                1,
                kv_len,
                heads,
                kv_heads,
                d,
                scale,
                true,
                &mut want,
            )
            .unwrap();
            let (atol, rtol) = tol(dt);
            let name = format!("decode attention {dt:?} h{heads}/{kv_heads} d{d} k{kv_len}");
            assert_close(&name, &out.to_f32(), &want, atol * 2.0, rtol * 2.0);
        }
    }
}

#[test]
fn flash_attention_matches_reference() {
    // (q_len, kv_len, heads, kv_heads, head_dim, causal): tails of both tiles, a causal prefill
    // after cached keys (kv_len > q_len), GQA groups 1, 3, 4, two query tiles (masked-tile skip).
    let cases = [
        (1, 1, 2, 1, 64, true),
        (17, 17, 3, 1, 64, true),
        (17, 40, 4, 1, 128, true),
        (70, 70, 2, 2, 64, true),
        (70, 130, 4, 1, 64, false),
        (33, 65, 2, 1, 128, false),
    ];
    for dt in [DType::F16, DType::BF16] {
        for (q_len, kv_len, heads, kv_heads, d, causal) in cases {
            let qv = input(q_len * heads * d, dt, 31);
            let (kv, vv) = (
                input(kv_len * kv_heads * d, dt, 32),
                input(kv_len * kv_heads * d, dt, 33),
            );
            let (q, k, v) = (
                DevBuf::from_f32(&qv, dt),
                DevBuf::from_f32(&kv, dt),
                DevBuf::from_f32(&vv, dt),
            );
            let out = DevBuf::zeros(q_len * heads * d, dt);
            let lse = DevBuf::zeros(heads * q_len, DType::F32);
            let scale = 1.0 / (d as f32).sqrt();
            let p = FlashAttnParams {
                q_len: q_len as u32,
                kv_len: kv_len as u32,
                heads: heads as u32,
                kv_heads: kv_heads as u32,
                q_row_stride: (heads * d) as u32,
                q_head_stride: d as u32,
                kv_row_stride: (kv_heads * d) as u32,
                kv_head_stride: d as u32,
                o_row_stride: (heads * d) as u32,
                o_head_stride: d as u32,
                causal: causal as u32,
                scale_log2: scale * std::f32::consts::LOG2_E,
                ..Default::default()
            };
            H::flash_attention(&q, &k, &v, &out, Some(&lse), p, d, 1)
                .unwrap_or_else(|e| panic!("{e}"));
            let mut want = vec![0.0; q_len * heads * d];
            R::attention(
                &qv, &kv, &vv, q_len, kv_len, heads, kv_heads, d, scale, causal, &mut want,
            )
            .unwrap();
            let name = format!(
                "flash attention {dt:?} q{q_len} k{kv_len} h{heads}/{kv_heads} d{d} causal {causal}"
            );
            // P is rounded to dt before P·V, as FlashAttention does: twice one rounding.
            let (atol, rtol) = tol(dt);
            assert_close(&name, &out.to_f32(), &want, atol * 2.0, rtol * 2.0);
            let want_lse =
                reference_lse(&qv, &kv, q_len, kv_len, heads, kv_heads, d, scale, causal);
            assert_close(&format!("{name} lse"), &lse.to_f32(), &want_lse, 1e-3, 1e-4);
        }
    }
}

/// Natural log-sum-exp of each row's scaled scores, `[heads][q_len]`.
#[allow(clippy::too_many_arguments)]
fn reference_lse(
    q: &[f32],
    k: &[f32],
    q_len: usize,
    kv_len: usize,
    heads: usize,
    kv_heads: usize,
    d: usize,
    scale: f32,
    causal: bool,
) -> Vec<f32> {
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
