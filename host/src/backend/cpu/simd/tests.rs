//! Every op of every ISA this CPU supports against the reference, on odd shapes (tails of every
//! width, one row, many rows, sizes past the rayon threshold).
//!
//! Tolerances are `atol + rtol·|want|`. The reference accumulates in `f64`; the fast paths in
//! `f32` in another order and with a polynomial `exp`, so reductions get `rtol` ~1e-5 and long
//! dot products an `atol` that grows with `k`. Elementwise add/mul must match exactly.

use super::{Isa, Simd, active_isa};
use crate::Error;
use crate::backend::cpu::reference as r;
use crate::backend::cpu::testing::{Lcg, assert_close};

const ROWS: [usize; 3] = [1, 3, 37];
const COLS: [usize; 6] = [1, 7, 64, 129, 1000, 4099];

/// The kernels of every ISA this CPU runs, reporting (once per test) what was skipped.
fn every_isa() -> Vec<Simd> {
    for isa in Isa::ALL {
        if !isa.is_supported() {
            eprintln!(
                "note: {} not supported by this CPU: compiled but not executed",
                isa.name()
            );
        }
    }
    Isa::supported()
        .into_iter()
        .filter_map(|isa| Simd::new(isa).ok())
        .collect()
}

fn name(s: &Simd, op: &str, shape: impl std::fmt::Debug) -> String {
    format!("{}/{op} {shape:?}", s.isa().name())
}

#[test]
fn detection_is_consistent() {
    let supported = Isa::supported();
    assert_eq!(supported[0], Isa::Scalar);
    let best = supported.last().copied().unwrap_or(Isa::Scalar);
    assert_eq!(active_isa(), best.name());
    assert_eq!(Simd::best().isa(), best);
    eprintln!(
        "ISAs executed here: {supported:?}; free functions use {}",
        active_isa()
    );
}

#[test]
fn norms_match_reference() {
    let mut g = Lcg::new(1);
    for rows in ROWS {
        for d in COLS {
            let (x, res) = (g.vec(rows * d, -3.0, 3.0), g.vec(rows * d, -1.0, 1.0));
            let w = g.vec(d, 0.5, 1.5);
            let mut want = vec![0.0; rows * d];
            r::rms_norm(&x, &w, 1e-5, &mut want).unwrap();
            let (mut want_sum, mut want_norm) = (vec![0.0; rows * d], vec![0.0; rows * d]);
            r::add_rms_norm(&x, &res, &w, 1e-5, &mut want_sum, &mut want_norm).unwrap();
            for s in every_isa() {
                let mut got = vec![0.0; rows * d];
                s.rms_norm(&x, &w, 1e-5, &mut got).unwrap();
                assert_close(&name(&s, "rms_norm", (rows, d)), &got, &want, 1e-6, 1e-5);
                let (mut sum, mut norm) = (vec![0.0; rows * d], vec![0.0; rows * d]);
                s.add_rms_norm(&x, &res, &w, 1e-5, &mut sum, &mut norm)
                    .unwrap();
                assert_close(
                    &name(&s, "add_rms_norm sum", (rows, d)),
                    &sum,
                    &want_sum,
                    0.0,
                    0.0,
                );
                assert_close(
                    &name(&s, "add_rms_norm", (rows, d)),
                    &norm,
                    &want_norm,
                    1e-6,
                    1e-5,
                );
            }
        }
    }
}

#[test]
fn elementwise_match_reference() {
    let mut g = Lcg::new(2);
    for n in [0, 1, 7, 8, 15, 17, 64, 129, 1000, 4099, 70_001] {
        // Wide enough to reach the clamps of the polynomial exp.
        let (a, b) = (g.vec(n, -30.0, 30.0), g.vec(n, -2.0, 2.0));
        let mut want = [vec![0.0; n], vec![0.0; n], vec![0.0; n], vec![0.0; n]];
        r::add(&a, &b, &mut want[0]).unwrap();
        r::mul(&a, &b, &mut want[1]).unwrap();
        r::silu(&a, &mut want[2]).unwrap();
        r::swiglu(&a, &b, &mut want[3]).unwrap();
        for s in every_isa() {
            let mut got = vec![0.0; n];
            s.add(&a, &b, &mut got).unwrap();
            assert_close(&name(&s, "add", n), &got, &want[0], 0.0, 0.0);
            s.mul(&a, &b, &mut got).unwrap();
            assert_close(&name(&s, "mul", n), &got, &want[1], 0.0, 0.0);
            s.silu(&a, &mut got).unwrap();
            assert_close(&name(&s, "silu", n), &got, &want[2], 1e-6, 1e-5);
            s.swiglu(&a, &b, &mut got).unwrap();
            assert_close(&name(&s, "swiglu", n), &got, &want[3], 1e-6, 1e-5);
        }
    }
}

#[test]
fn softmax_matches_reference() {
    let mut g = Lcg::new(3);
    for rows in ROWS {
        for k_len in COLS {
            let x = g.vec(rows * k_len, -8.0, 8.0);
            // Causal needs k_len >= q_len: every row its own query when possible.
            let q_len = if k_len >= rows { rows } else { 1 };
            for (causal, scale) in [(false, 1.0), (false, -0.7), (true, 0.125), (true, 1.0)] {
                let mut want = vec![0.0; x.len()];
                r::softmax(&x, q_len, k_len, scale, causal, &mut want).unwrap();
                for s in every_isa() {
                    let mut got = vec![1.0; x.len()];
                    s.softmax(&x, q_len, k_len, scale, causal, &mut got)
                        .unwrap();
                    let shape = (rows, q_len, k_len, scale, causal);
                    assert_close(&name(&s, "softmax", shape), &got, &want, 1e-7, 1e-5);
                }
            }
        }
    }
}

#[test]
fn rope_matches_reference() {
    let mut g = Lcg::new(4);
    // (batch, seq, heads, head_dim): tails of both layouts (18, 34, 130) and a big call.
    let shapes = [
        (1, 1, 1, 2),
        (1, 3, 2, 6),
        (2, 5, 3, 18),
        (1, 7, 4, 34),
        (1, 37, 8, 64),
        (2, 33, 8, 128), // 67K elements: the rayon path
        (3, 9, 5, 130),
    ];
    for (batch, seq, heads, head_dim) in shapes {
        for pos_offset in [0, 5] {
            let (cos, sin) = r::rope_table(pos_offset + seq + 3, head_dim, 10_000.0);
            let x = g.vec(batch * seq * heads * head_dim, -2.0, 2.0);
            for interleaved in [false, true] {
                let mut want = vec![0.0; x.len()];
                r::rope(
                    &x,
                    seq,
                    heads,
                    head_dim,
                    &cos,
                    &sin,
                    pos_offset,
                    interleaved,
                    &mut want,
                )
                .unwrap();
                for s in every_isa() {
                    let mut got = vec![0.0; x.len()];
                    s.rope(
                        &x,
                        seq,
                        heads,
                        head_dim,
                        &cos,
                        &sin,
                        pos_offset,
                        interleaved,
                        &mut got,
                    )
                    .unwrap();
                    let shape = (batch, seq, heads, head_dim, pos_offset, interleaved);
                    assert_close(&name(&s, "rope", shape), &got, &want, 1e-6, 1e-5);
                }
            }
        }
    }
}

#[test]
fn matmul_matches_reference() {
    let mut g = Lcg::new(5);
    let kn = [
        (1, 1),
        (7, 33),
        (64, 64),
        (129, 1000),
        (4099, 17),
        (300, 1001),
    ];
    // Both sides of both GEMV bounds (4 and 8) and a gemm-sized m.
    for m in [1, 2, 3, 4, 5, 8, 9, 64] {
        for (k, n) in kn {
            if m == 64 && k * n > 200_000 {
                continue; // the gemm path is covered by the smaller shapes; keeps debug fast
            }
            let (a, b) = (g.vec(m * k, -1.0, 1.0), g.vec(k * n, -1.0, 1.0));
            for transposed in [false, true] {
                let mut want = vec![0.0; m * n];
                r::matmul(&a, &b, m, k, n, transposed, &mut want).unwrap();
                // Each term is below 1 in size; f32 rounding grows like sqrt(k) in practice.
                let atol = 2e-6 * (k as f32).sqrt();
                for s in every_isa() {
                    let mut got = vec![f32::NAN; m * n];
                    s.matmul(&a, &b, m, k, n, transposed, &mut got).unwrap();
                    let shape = (m, k, n, transposed);
                    assert_close(&name(&s, "matmul", shape), &got, &want, atol, 1e-5);
                }
            }
        }
    }
}

#[test]
fn matmul_k_zero_gives_zeros() {
    for s in every_isa() {
        let mut out = [f32::NAN; 6];
        s.matmul(&[], &[], 2, 0, 3, true, &mut out).unwrap();
        assert_eq!(out, [0.0; 6]);
        let mut out = [f32::NAN; 18];
        s.matmul(&[], &[], 6, 0, 3, false, &mut out).unwrap();
        assert_eq!(out, [0.0; 18]);
    }
}

#[test]
fn attention_matches_reference() {
    let mut g = Lcg::new(6);
    // (q_len, k_len, num_heads, num_kv_heads, head_dim): GQA ratios 1, 3 and 4, decode and
    // prefill, odd head_dim, several blocks of queries (the last one partial) after a cached
    // prefix, and calls big enough for the parallel path.
    let shapes = [
        (1, 1, 1, 1, 1),
        (1, 17, 4, 4, 64),
        (7, 7, 6, 2, 37),
        (3, 9, 3, 1, 7),
        (5, 130, 8, 2, 128),
        (37, 37, 4, 1, 16),
        (150, 170, 6, 2, 64),
        (2, 40, 6, 2, 40),
    ];
    for (q_len, k_len, nh, nkv, hd) in shapes {
        let q = g.vec(q_len * nh * hd, -1.0, 1.0);
        let k = g.vec(k_len * nkv * hd, -1.0, 1.0);
        let v = g.vec(k_len * nkv * hd, -1.0, 1.0);
        let scale = 1.0 / (hd as f32).sqrt();
        for causal in [false, true] {
            let mut want = vec![0.0; q.len()];
            r::attention(
                &q, &k, &v, q_len, k_len, nh, nkv, hd, scale, causal, &mut want,
            )
            .unwrap();
            for s in every_isa() {
                let mut got = vec![f32::NAN; q.len()];
                s.attention(
                    &q, &k, &v, q_len, k_len, nh, nkv, hd, scale, causal, &mut got,
                )
                .unwrap();
                let shape = (q_len, k_len, nh, nkv, hd, causal);
                assert_close(&name(&s, "attention", shape), &got, &want, 1e-6, 1e-5);
            }
        }
    }
}

#[test]
fn free_functions_use_the_best_isa() {
    let mut g = Lcg::new(7);
    let (x, w) = (g.vec(3 * 40, -1.0, 1.0), g.vec(40, 0.5, 1.5));
    let (mut got, mut want) = (vec![0.0; x.len()], vec![0.0; x.len()]);
    super::rms_norm(&x, &w, 1e-6, &mut got).unwrap();
    Simd::best().rms_norm(&x, &w, 1e-6, &mut want).unwrap();
    assert_eq!(got, want);
    super::softmax(&x, 3, 40, 0.3, true, &mut got).unwrap();
    Simd::best()
        .softmax(&x, 3, 40, 0.3, true, &mut want)
        .unwrap();
    assert_eq!(got, want);
}

#[test]
fn bad_shapes_are_errors_on_every_isa() {
    let x = [0.0f32; 6];
    let shape = |r: crate::Result<()>| matches!(r, Err(Error::ShapeMismatch { .. }));
    let (cos, sin) = r::rope_table(2, 2, 10.0);
    for s in every_isa() {
        let mut o5 = [0.0f32; 5];
        let mut o6 = [0.0f32; 6];
        assert!(shape(s.rms_norm(&x, &[1.0; 4], 1e-5, &mut o6)));
        assert!(shape(
            s.add_rms_norm(&x, &x, &[1.0; 3], 1e-5, &mut o5, &mut o6)
        ));
        assert!(shape(s.silu(&x[..5], &mut o6)));
        assert!(shape(s.swiglu(&x, &x, &mut o5)));
        assert!(shape(s.add(&x, &x[..5], &mut o6)));
        assert!(shape(s.mul(&x, &x, &mut o5)));
        assert!(shape(s.softmax(&x, 1, 4, 1.0, true, &mut o6)));
        assert!(shape(s.rope(
            &x,
            1,
            1,
            2,
            &cos,
            &sin[..1],
            0,
            true,
            &mut o6
        )));
        assert!(shape(s.matmul(&x, &x, 1, 6, 1, true, &mut o5)));
        assert!(shape(s.attention(
            &x,
            &x[..4],
            &x,
            1,
            2,
            3,
            1,
            2,
            1.0,
            false,
            &mut o6
        )));
        assert!(matches!(
            s.rope(&x, 3, 1, 2, &cos, &sin, 0, false, &mut o6),
            Err(Error::ContextOverflow { .. })
        ));
    }
    assert!(Simd::new(Isa::Scalar).is_ok());
}
