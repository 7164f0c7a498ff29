//! Every quantized kernel of every ISA this CPU runs against the scalar reference, and the whole
//! product (activation rounding, threading, tails of the 4-row groups) against f32 math on the
//! dequantized weights.
//!
//! Tolerances: activation quantization is bit-exact across ISAs (asserted with `==`). The dots
//! differ from the reference only by f32 summation order: `atol` 1e-4·Σ|w·x| per output. Against
//! exact f32 math the 8-bit activations move each value by at most half a step (`d_a/2`, `d_a` =
//! the block's max |x| / 127), so the bound there is `Σ|w|·d_a/2` per output (+1e-5·Σ|w·x|).

use half::f16;

use super::{Q8Acts, QK, QuantKernels, QuantWeight};
use crate::backend::cpu::simd::Isa;
use crate::backend::cpu::testing::{Lcg, assert_close};
use crate::loaders::StorageType;
use crate::loaders::quant::dequantize;

const FORMATS: [StorageType; 5] = [
    StorageType::Q8_0,
    StorageType::Q4_0,
    StorageType::Q4_1,
    StorageType::Q4_K,
    StorageType::Q6_K,
];

fn every_isa() -> Vec<QuantKernels> {
    let all: Vec<_> = Isa::ALL
        .into_iter()
        .filter_map(|isa| QuantKernels::new(isa).ok())
        .collect();
    for isa in Isa::ALL {
        if !all.iter().any(|q| q.isa() == isa) {
            eprintln!(
                "note: {} quantized kernels not executed on this CPU",
                isa.name()
            );
        }
    }
    all
}

/// `n` random blocks of `format` with sane scales (f16 in [0.002, 0.05], mins in ±0.05).
fn random_blocks(format: StorageType, n: usize, g: &mut Lcg) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * format.block_bytes());
    let f16b = |v: f32| f16::from_f32(v).to_le_bytes();
    for _ in 0..n {
        let mut b: Vec<u8> = (0..format.block_bytes())
            .map(|_| g.uniform(0.0, 256.0) as u8)
            .collect();
        let d = f16b(g.uniform(0.002, 0.05));
        let m = f16b(g.uniform(-0.05, 0.05));
        match format {
            StorageType::Q8_0 | StorageType::Q4_0 => b[..2].copy_from_slice(&d),
            StorageType::Q4_1 | StorageType::Q4_K => {
                b[..2].copy_from_slice(&d);
                b[2..4].copy_from_slice(&m);
            }
            StorageType::Q6_K => {
                let at = b.len() - 2;
                b[at..].copy_from_slice(&d);
            }
            _ => unreachable!("quantized formats only"),
        }
        out.extend(b);
    }
    out
}

/// Activations with a wide range, an all-zero block and exact ties (`x/d` = k + 0.5).
fn activations(m: usize, k: usize, g: &mut Lcg) -> Vec<f32> {
    let mut x = g.vec(m * k, -2.0, 2.0);
    x[..QK.min(k)].fill(0.0);
    if m * k >= 2 * QK {
        // Block 1: max 127 → d = 1, and halves that must round to even.
        let b = &mut x[QK..2 * QK];
        b[0] = 127.0;
        for (j, v) in b[1..].iter_mut().enumerate() {
            *v = j as f32 - 15.5;
        }
    }
    x
}

#[test]
fn quantize_is_bit_exact_across_isas() {
    let mut g = Lcg::new(7);
    let scalar = QuantKernels::new(Isa::Scalar).unwrap();
    for (m, k) in [(1, 32), (3, 96), (7, 576), (65, 1536)] {
        let x = activations(m, k, &mut g);
        let mut want = Q8Acts::default();
        scalar.quantize(&x, k, &mut want).unwrap();
        assert_eq!(want.rows(), m);
        // The tie block: q = round_half_even(j − 15.5).
        if m * k >= 2 * QK {
            assert_eq!(want.d[1], 1.0);
            assert_eq!(&want.qs[QK..QK + 4], &[127, -16, -14, -14]);
        }
        for q in every_isa() {
            let mut got = Q8Acts::default();
            q.quantize(&x, k, &mut got).unwrap();
            let what = format!("{} quantize {m}x{k}", q.isa().name());
            assert_eq!(got.qs, want.qs, "{what}: qs");
            assert_eq!(got.d, want.d, "{what}: d");
            assert_eq!(got.s, want.s, "{what}: s");
        }
    }
}

#[test]
fn quantize_rejects_partial_blocks() {
    let q = QuantKernels::best();
    let mut acts = Q8Acts::default();
    assert!(q.quantize(&[0.0; 40], 40, &mut acts).is_err());
    assert!(q.quantize(&[0.0; 40], 32, &mut acts).is_err());
}

/// `out [m, n]` from f32 math on the dequantized weights, `Σ|w·x|` per output, and the bound
/// on the activation rounding's effect, `Σ|w|·d_a/2` (`d_a` = its block's max |x| / 127).
fn f32_product(
    format: StorageType,
    w: &[u8],
    n: usize,
    k: usize,
    x: &[f32],
    m: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut wf = vec![0.0; n * k];
    dequantize(format, w, n * k, &mut wf).unwrap();
    let mut out = vec![0.0; m * n];
    let mut mag = vec![0.0; m * n];
    let mut bound = vec![0.0; m * n];
    let half_step: Vec<f32> = x
        .chunks(QK)
        .flat_map(|b| {
            let amax = b.iter().fold(0.0f32, |a, v| a.max(v.abs()));
            std::iter::repeat_n(amax / 127.0 / 2.0, b.len())
        })
        .collect();
    for t in 0..m {
        for j in 0..n {
            let (xr, wr) = (&x[t * k..][..k], &wf[j * k..][..k]);
            out[t * n + j] = xr.iter().zip(wr).map(|(a, b)| (a * b) as f64).sum::<f64>() as f32;
            mag[t * n + j] = xr.iter().zip(wr).map(|(a, b)| (a * b).abs()).sum();
            let hs = &half_step[t * k..][..k];
            bound[t * n + j] = hs.iter().zip(wr).map(|(h, b)| h * b.abs()).sum();
        }
    }
    (out, mag, bound)
}

#[test]
fn matmul_matches_scalar_and_f32_math() {
    let mut g = Lcg::new(11);
    let scalar = QuantKernels::new(Isa::Scalar).unwrap();
    for format in FORMATS {
        // Odd row counts (tails of the 4-row groups and of the rayon blocks), k from one block up.
        let ks: &[usize] = if format.block_size() == QK {
            &[32, 96, 576]
        } else {
            &[256, 768]
        };
        for &k in ks {
            for (m, n) in [(1, 1), (1, 300), (3, 17), (5, 64), (9, 129)] {
                let w = random_blocks(format, n * k / format.block_size(), &mut g);
                let x = activations(m, k, &mut g);
                let (exact, mag, bound) = f32_product(format, &w, n, k, &x, m);
                let mut want = vec![0.0; m * n];
                scalar.matmul(format, &w, n, k, &x, m, &mut want).unwrap();
                let what = format!("{} {m}x{k}·({n}x{k})ᵀ", format.name());
                let loose: Vec<f32> = bound
                    .iter()
                    .zip(&mag)
                    .map(|(&b, &g)| b + 1e-5 * g)
                    .collect();
                assert_within(&format!("scalar vs f32 {what}"), &want, &exact, &loose, 1.0);
                // The residual pass: within 1/50 of one pass's bound of f32 math.
                let mut fine = vec![0.0; m * n];
                scalar
                    .matmul_residual(format, &w, n, k, &x, m, &mut fine)
                    .unwrap();
                let tight: Vec<f32> = loose.iter().map(|b| b / 50.0 + 1e-5).collect();
                assert_within(
                    &format!("residual vs f32 {what}"),
                    &fine,
                    &exact,
                    &tight,
                    1.0,
                );
                for q in every_isa() {
                    let mut got = vec![0.0; m * n];
                    q.matmul(format, &w, n, k, &x, m, &mut got).unwrap();
                    let name = format!("{} vs scalar {what}", q.isa().name());
                    assert_within(&name, &got, &want, &mag, 1e-4);
                    q.matmul_residual(format, &w, n, k, &x, m, &mut got)
                        .unwrap();
                    let name = format!("{} residual vs scalar {what}", q.isa().name());
                    assert_within(&name, &got, &fine, &mag, 1e-4);
                }
            }
        }
    }
}

/// A group equals its products run one by one, bit for bit (same kernels, same tiles): weights
/// of several formats (one without an integer kernel) and sizes, decode and prefill shapes.
#[test]
fn matmul_group_equals_separate_products() {
    let mut g = Lcg::new(13);
    let k = 256;
    let parts = [
        (StorageType::Q4_1, 300),
        (StorageType::Q8_0, 17),
        (StorageType::Q4_0, 64),
        (StorageType::Q4_K, 9),
    ];
    let weights: Vec<Vec<u8>> = parts
        .iter()
        .map(|&(f, n)| random_blocks(f, n * k / f.block_size(), &mut g))
        .collect();
    for q in every_isa() {
        for m in [1, 5] {
            let x = activations(m, k, &mut g);
            // Every weight with an integer kernel (one grouped pass), then all four.
            for len in [3, 4] {
                let mut outs: Vec<Vec<f32>> = parts[..len]
                    .iter()
                    .map(|&(_, n)| vec![0.0; m * n])
                    .collect();
                let mut group: Vec<_> = parts
                    .iter()
                    .zip(&weights)
                    .map(|(&(format, n), w)| QuantWeight { format, w, n })
                    .zip(outs.iter_mut().map(|o| &mut o[..]))
                    .collect();
                q.matmul_group(k, &x, m, &mut group).unwrap();
                for (&(format, n), (w, got)) in parts.iter().zip(weights.iter().zip(&outs)) {
                    let mut want = vec![0.0; m * n];
                    q.matmul(format, w, n, k, &x, m, &mut want).unwrap();
                    let what = format!("{} group {} m={m}", q.isa().name(), format.name());
                    assert_eq!(got, &want, "{what}");
                }
            }
        }
    }
}

/// Asserts `|got − want| <= tol · scale` elementwise via [`assert_close`] (`atol` per element is
/// folded into a per-element comparison).
fn assert_within(name: &str, got: &[f32], want: &[f32], scale: &[f32], tol: f32) {
    // Normalise by the per-element scale so one (atol = tol, rtol = 0) check covers all.
    let norm = |v: &[f32]| -> Vec<f32> {
        v.iter()
            .zip(want)
            .zip(scale)
            .map(|((&v, &w), &s)| (v - w) / s.max(1e-30))
            .collect()
    };
    assert_close(name, &norm(got), &norm(want), tol, 0.0);
}

#[test]
fn matmul_checks_sizes() {
    let q = QuantKernels::best();
    let w = vec![0u8; 2 * 20];
    let mut out = [0.0; 2];
    assert!(
        q.matmul(StorageType::Q4_1, &w, 2, 32, &[0.0; 32], 1, &mut out)
            .is_ok()
    );
    assert!(
        q.matmul(StorageType::Q4_1, &w, 2, 33, &[0.0; 33], 1, &mut out)
            .is_err()
    );
    assert!(
        q.matmul(StorageType::Q4_1, &w[1..], 2, 32, &[0.0; 32], 1, &mut out)
            .is_err()
    );
    assert!(
        q.matmul(StorageType::F32, &w, 2, 32, &[0.0; 32], 1, &mut out)
            .is_err()
    );
}
