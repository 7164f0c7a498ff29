//! The oracle checked against cases small enough to compute by hand.

use super::*;
use crate::Error;
use crate::backend::cpu::testing::assert_close;

const TOL: f32 = 1e-6;

#[test]
fn rms_norm_of_3_4_is_x_over_rms() {
    let mut out = [0.0; 2];
    rms_norm(&[3.0, 4.0], &[1.0, 1.0], 0.0, &mut out).unwrap();
    let rms = 12.5f32.sqrt(); // sqrt((9 + 16) / 2)
    assert_close("rms_norm", &out, &[3.0 / rms, 4.0 / rms], TOL, TOL);

    // Weight scales each column; eps enters under the root; rows are independent.
    let mut out = [0.0; 4];
    rms_norm(&[3.0, 4.0, 1.0, 1.0], &[2.0, 0.5], 0.5, &mut out).unwrap();
    let (r0, r1) = (13.0f32.sqrt(), 1.5f32.sqrt());
    assert_close(
        "rms_norm rows",
        &out,
        &[6.0 / r0, 2.0 / r0, 2.0 / r1, 0.5 / r1],
        TOL,
        TOL,
    );
}

#[test]
fn add_rms_norm_is_add_then_norm() {
    let (x, r, w) = ([1.0, 2.0, -3.0, 0.5], [2.0, 2.0, 7.0, 0.5], [1.0, 3.0]);
    let (mut sum, mut norm, mut want) = ([0.0; 4], [0.0; 4], [0.0; 4]);
    add_rms_norm(&x, &r, &w, 1e-5, &mut sum, &mut norm).unwrap();
    assert_eq!(sum, [3.0, 4.0, 4.0, 1.0]);
    rms_norm(&sum, &w, 1e-5, &mut want).unwrap();
    assert_eq!(norm, want);
}

#[test]
fn silu_and_swiglu_known_values() {
    let mut out = [0.0; 4];
    silu(&[0.0, 1.0, -1.0, 30.0], &mut out).unwrap();
    let s1 = 1.0 / (1.0 + (-1.0f32).exp()); // sigmoid(1) = 0.7310586
    assert_close("silu", &out, &[0.0, s1, -(1.0 - s1), 30.0], TOL, TOL);

    let mut out = [0.0; 2];
    swiglu(&[1.0, 0.0], &[2.0, 5.0], &mut out).unwrap();
    assert_close("swiglu", &out, &[2.0 * s1, 0.0], TOL, TOL);
}

#[test]
fn add_and_mul() {
    let mut out = [0.0; 3];
    add(&[1.0, 2.0, 3.0], &[0.5, -2.0, 1.0], &mut out).unwrap();
    assert_eq!(out, [1.5, 0.0, 4.0]);
    mul(&[1.0, 2.0, 3.0], &[0.5, -2.0, 1.0], &mut out).unwrap();
    assert_eq!(out, [0.5, -4.0, 3.0]);
}

#[test]
fn softmax_known_rows_sum_to_one() {
    // softmax([0, ln 2]) = [1/3, 2/3]; a constant row is uniform; scale multiplies first.
    let mut out = [0.0; 6];
    let x = [0.0, 2.0f32.ln(), 5.0, 5.0, 5.0, 1.0];
    softmax(&x[..2], 1, 2, 1.0, false, &mut out[..2]).unwrap();
    assert_close("softmax ln2", &out[..2], &[1.0 / 3.0, 2.0 / 3.0], TOL, TOL);
    softmax(&x[..4], 1, 2, 0.5, false, &mut out[..4]).unwrap();
    let e = 2.0f32.sqrt(); // e^(0.5 ln 2)
    assert_close(
        "softmax scale",
        &out[..4],
        &[1.0 / (1.0 + e), e / (1.0 + e), 0.5, 0.5],
        TOL,
        TOL,
    );
    softmax(&x, 2, 3, 1.0, false, &mut out).unwrap();
    for row in out.chunks(3) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < TOL);
    }
}

#[test]
fn causal_softmax_masks_the_upper_triangle() {
    // Square: query i sees keys 0..=i.
    let mut out = [9.0; 9];
    softmax(&[0.0; 9], 3, 3, 1.0, true, &mut out).unwrap();
    let h = 0.5;
    let t = 1.0 / 3.0;
    assert_close(
        "causal 3x3",
        &out,
        &[1.0, 0.0, 0.0, h, h, 0.0, t, t, t],
        TOL,
        TOL,
    );

    // Two cached keys before two new queries: query i sees keys 0..=i+2.
    let mut out = [9.0; 8];
    softmax(&[0.0; 8], 2, 4, 1.0, true, &mut out).unwrap();
    assert_close(
        "causal 2x4",
        &out,
        &[t, t, t, 0.0, 0.25, 0.25, 0.25, 0.25],
        TOL,
        TOL,
    );

    // Rows past q_len repeat the mask (a second head).
    let mut out = [9.0; 8];
    softmax(&[0.0; 8], 2, 2, 1.0, true, &mut out).unwrap();
    assert_close(
        "causal 2 heads",
        &out,
        &[1.0, 0.0, h, h, 1.0, 0.0, h, h],
        TOL,
        TOL,
    );
}

#[test]
fn rope_table_values() {
    let (cos, sin) = rope_table(3, 4, 100.0);
    // inv_freq = [1, 100^(-1/2)] = [1, 0.1]; row p holds angles p*inv_freq.
    let want_cos = [
        1.0,
        1.0,
        1.0f32.cos(),
        0.1f32.cos(),
        2.0f32.cos(),
        0.2f32.cos(),
    ];
    let want_sin = [
        0.0,
        0.0,
        1.0f32.sin(),
        0.1f32.sin(),
        2.0f32.sin(),
        0.2f32.sin(),
    ];
    assert_close("cos", &cos, &want_cos, TOL, TOL);
    assert_close("sin", &sin, &want_sin, TOL, TOL);
}

#[test]
fn rope_at_position_zero_is_identity() {
    let (cos, sin) = rope_table(4, 8, 10_000.0);
    let x: Vec<f32> = (0..16).map(|i| i as f32 - 7.5).collect(); // [1, 1, 2, 8]
    for interleaved in [false, true] {
        let mut out = vec![0.0; 16];
        rope(&x, 1, 2, 8, &cos, &sin, 0, interleaved, &mut out).unwrap();
        assert_eq!(out, x, "interleaved = {interleaved}");
    }
}

#[test]
fn rope_rotates_the_right_pairs() {
    // head_dim 4, one token at position 1, theta 1 so every pair turns by 1 radian.
    let (cos, sin) = rope_table(2, 4, 1.0);
    let (c, s) = (1.0f32.cos(), 1.0f32.sin());
    let x = [1.0, 2.0, 3.0, 4.0];
    let mut out = [0.0; 4];
    // Half layout: pairs (x0, x2), (x1, x3).
    rope(&x, 1, 1, 4, &cos, &sin, 1, false, &mut out).unwrap();
    let want = [
        1.0 * c - 3.0 * s,
        2.0 * c - 4.0 * s,
        3.0 * c + 1.0 * s,
        4.0 * c + 2.0 * s,
    ];
    assert_close("rope half", &out, &want, TOL, TOL);
    // Interleaved: pairs (x0, x1), (x2, x3).
    rope(&x, 1, 1, 4, &cos, &sin, 1, true, &mut out).unwrap();
    let want = [
        1.0 * c - 2.0 * s,
        2.0 * c + 1.0 * s,
        3.0 * c - 4.0 * s,
        4.0 * c + 3.0 * s,
    ];
    assert_close("rope interleaved", &out, &want, TOL, TOL);
}

#[test]
fn matmul_by_hand_both_layouts() {
    let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]; // [2, 3]
    let b = [7.0, 8.0, 9.0, 10.0, 11.0, 12.0]; // [3, 2]
    let bt = [7.0, 9.0, 11.0, 8.0, 10.0, 12.0]; // the same B stored [2, 3]
    let want = [58.0, 64.0, 139.0, 154.0];
    let mut out = [0.0; 4];
    matmul(&a, &b, 2, 3, 2, false, &mut out).unwrap();
    assert_eq!(out, want);
    matmul(&a, &bt, 2, 3, 2, true, &mut out).unwrap();
    assert_eq!(out, want);
}

#[test]
fn attention_by_hand() {
    // One key: the output is its value, whatever the scores.
    let mut out = [0.0; 2];
    attention(
        &[1.0, 2.0],
        &[3.0, -1.0],
        &[5.0, 6.0],
        1,
        1,
        1,
        1,
        2,
        0.7,
        false,
        &mut out,
    )
    .unwrap();
    assert_eq!(out, [5.0, 6.0]);

    // Orthogonal keys, scale ln 2: scores [0, ln 2] give weights [1/3, 2/3].
    let q = [0.0, 1.0];
    let k = [1.0, 0.0, 0.0, 1.0];
    let v = [3.0, 0.0, 0.0, 3.0];
    attention(&q, &k, &v, 1, 2, 1, 1, 2, 2.0f32.ln(), false, &mut out).unwrap();
    assert_close("weights 1/3 2/3", &out, &[1.0, 2.0], TOL, TOL);

    // Causal, two queries over the same two keys: query 0 only sees key 0.
    let q2 = [0.0, 1.0, 0.0, 1.0];
    let mut out2 = [0.0; 4];
    attention(&q2, &k, &v, 2, 2, 1, 1, 2, 2.0f32.ln(), true, &mut out2).unwrap();
    assert_close("causal", &out2, &[3.0, 0.0, 1.0, 2.0], TOL, TOL);

    // GQA: two query heads share one KV head, so equal queries give equal outputs.
    attention(&q2, &k[..2], &v[..2], 1, 1, 2, 1, 2, 1.0, false, &mut out2).unwrap();
    assert_eq!(out2, [3.0, 0.0, 3.0, 0.0]);
}

#[test]
fn bad_shapes_are_errors() {
    let x = [0.0f32; 6];
    let mut o5 = [0.0f32; 5];
    let mut o6 = [0.0f32; 6];
    let shape = |r: Result<()>| matches!(r, Err(Error::ShapeMismatch { .. }));
    let invalid = |r: Result<()>| matches!(r, Err(Error::InvalidArgument { .. }));

    assert!(shape(rms_norm(&x, &[1.0; 4], 1e-5, &mut o6)));
    assert!(invalid(rms_norm(&x, &[1.0; 3], -1.0, &mut o6)));
    assert!(shape(add_rms_norm(
        &x,
        &x[..5],
        &[1.0; 3],
        1e-5,
        &mut o6.clone(),
        &mut o6
    )));
    assert!(shape(silu(&x, &mut o5)));
    assert!(shape(swiglu(&x, &x[..5], &mut o6)));
    assert!(shape(add(&x, &x, &mut o5)));
    assert!(shape(mul(&x[..5], &x, &mut o6)));
    assert!(shape(softmax(&x, 1, 4, 1.0, false, &mut o6)));
    assert!(shape(softmax(&x, 4, 3, 1.0, false, &mut o6))); // 2 rows, not a multiple of q_len
    assert!(invalid(softmax(&x, 3, 2, 1.0, true, &mut o6))); // causal with k_len < q_len
    let (cos, sin) = rope_table(2, 2, 10.0);
    assert!(shape(rope(&x, 1, 2, 2, &cos, &sin, 0, false, &mut o6)));
    assert!(invalid(rope(&x, 1, 2, 3, &cos, &sin, 0, false, &mut o6))); // odd head_dim
    assert!(matches!(
        rope(&x, 3, 1, 2, &cos, &sin, 0, false, &mut o6),
        Err(Error::ContextOverflow {
            needed: 3,
            capacity: 2
        })
    ));
    assert!(shape(matmul(&x, &x, 2, 3, 3, false, &mut o6))); // b is 6, not 9
    assert!(invalid(matmul(&x, &x, usize::MAX, 2, 3, false, &mut o6))); // overflow
    assert!(shape(attention(
        &x,
        &x,
        &x[..4],
        1,
        1,
        3,
        3,
        2,
        1.0,
        false,
        &mut o6
    )));
    assert!(invalid(attention(
        &x, &x, &x, 1, 1, 3, 2, 2, 1.0, false, &mut o6
    ))); // 3 % 2
    assert!(invalid(attention(
        &x,
        &x[..2],
        &x[..2],
        3,
        1,
        1,
        1,
        2,
        1.0,
        true,
        &mut o6
    )));
}
