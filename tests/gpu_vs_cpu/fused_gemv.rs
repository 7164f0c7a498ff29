//! The decode GEMVs with their neighbours fused in (`functional::linear_fused`,
//! `functional::qkv_rope_kv_write`) against the unfused ops they replace, run on the same
//! device: RMSNorm before the product, the residual add after it, the norm before the SwiGLU
//! gate+up product, and the q/k/v projection with RoPE and the KV-cache write. Dense f32, f16
//! and bf16 weights and quantized ones (f16 activations); ragged shapes on the plain GEMV.

use crate::common::{DTYPES, cases, input, tol};
use nano_infer::backend::cpu::testing::assert_close;
use nano_infer::backend::cuda::DeviceU32;
use nano_infer::functional::{self as F, LinearFusion, LinearWeight};
use nano_infer::tensor::quant_pack::QuantFormat;
use nano_infer::{DType, Device, QuantizedTensor, Tensor};

const EPS: f32 = 1e-5;

/// The weights a test runs: each dense dtype, and Q4_1 and Q8_0 blocks (f16 activations) when
/// rows are whole blocks.
fn weights(w: &Tensor, dev: &Device) -> Vec<(String, DType, LinearWeight)> {
    let mut out: Vec<_> = DTYPES
        .into_iter()
        .map(|dt| {
            let t = w.to_dtype(dt).unwrap().to_device(dev).unwrap();
            (format!("{dt:?}"), dt, LinearWeight::Dense(t))
        })
        .collect();
    let whole_blocks = w.dims()[1].is_multiple_of(32);
    for f in [QuantFormat::Q4_1, QuantFormat::Q8_0]
        .into_iter()
        .filter(|_| whole_blocks)
    {
        let q = QuantizedTensor::quantize(w, f, &Device::Cpu).unwrap();
        let q = LinearWeight::Quantized(q.to_device(dev).unwrap());
        out.push((format!("{f:?}"), DType::F16, q));
    }
    out
}

/// A random `[n, k]` weight with entries of variance `1 / k`, so that a product with a unit
/// input is of unit size, as in a trained model (unscaled, products of size `sqrt(k)` would
/// blow the rounding of their inputs up past any fixed tolerance).
fn unit_rows(shape: &[usize; 2], seed: u64) -> Tensor {
    let std = 1.0 / (shape[1] as f32).sqrt();
    Tensor::randn(shape.to_vec(), std, seed, DType::F32, &Device::Cpu).unwrap()
}

/// The unfused ops, one by one, on `dev`: the reference of `linear_fused`.
fn unfused(x: &Tensor, w: &LinearWeight, f: LinearFusion<'_>) -> Vec<f32> {
    let h = match f.norm {
        Some((g, eps)) => F::rms_norm(x, g, eps).unwrap(),
        None => x.clone(),
    };
    let y = if f.swiglu {
        F::linear_swiglu(&h, w).unwrap()
    } else {
        F::linear_any(&h, w).unwrap()
    };
    let y = match f.residual {
        Some(r) => F::add(&y, r).unwrap(),
        None => y,
    };
    y.to_vec_f32().unwrap()
}

pub fn fused_gemv_matches_unfused(dev: &Device) {
    // (n, k): a one-warp block, SmolLM2's width, ragged k (the scalar walk), a 7B width.
    let full = [(6, 64), (960, 576), (10, 1003), (64, 4096)];
    for (n, k) in cases(dev, &full, &[(6, 64), (4, 576), (6, 1003)]) {
        let w = unit_rows(&[2 * n, k], 40);
        for (name, dt, wg) in weights(&w, dev) {
            let up = |t: Tensor| t.to_dtype(dt).unwrap().to_device(dev).unwrap();
            let g = up(input(&[k], DType::F32, 41).0);
            {
                // One row: the decode step (more rows run the unfused ops).
                let m = 1;
                let x = up(input(&[m, k], DType::F32, 42).0);
                let r = up(input(&[m, 2 * n], DType::F32, 43).0);
                let norm = Some((&g, EPS));
                let variants = [
                    (
                        "norm",
                        LinearFusion {
                            norm,
                            ..Default::default()
                        },
                    ),
                    (
                        "residual",
                        LinearFusion {
                            residual: Some(&r),
                            ..Default::default()
                        },
                    ),
                    (
                        "norm+residual",
                        LinearFusion {
                            norm,
                            residual: Some(&r),
                            swiglu: false,
                        },
                    ),
                    (
                        "norm+swiglu",
                        LinearFusion {
                            norm,
                            swiglu: true,
                            ..Default::default()
                        },
                    ),
                ];
                for (what, f) in variants {
                    if f.swiglu && dt == DType::F32 {
                        continue; // no f32 SwiGLU GEMV: the unfused path, compared with itself
                    }
                    let got = F::linear_fused(&x, &wg, f).unwrap().to_vec_f32().unwrap();
                    let want = unfused(&x, &wg, f);
                    // Sums in another order, the normalised input unrounded in the fused kernel
                    // (it scales its sums instead): a few roundings of unit-sized products.
                    let (atol, rtol) = tol(dt);
                    assert_close(
                        &format!("linear_fused {what} {name} {m}x{k}x{n}"),
                        &got,
                        &want,
                        atol * 4.0,
                        rtol * 4.0,
                    );
                }
            }
        }
    }
    // A residual after SwiGLU is refused, with a typed error.
    let (x, w) = (
        Tensor::zeros([1, 8], DType::F32, dev).unwrap(),
        Tensor::zeros([4, 8], DType::F32, dev).unwrap(),
    );
    let r = Tensor::zeros([1, 2], DType::F32, dev).unwrap();
    let bad = LinearFusion {
        residual: Some(&r),
        swiglu: true,
        ..Default::default()
    };
    assert!(F::linear_fused(&x, &LinearWeight::Dense(w), bad).is_err());
}

pub fn qkv_rope_kv_write_matches_unfused(dev: &Device) {
    let Device::Cuda(be) = dev else {
        return; // device-side positions are CUDA's
    };
    // (heads, kv_heads, head_dim, hidden): SmolLM2, Llama-3-8B's grouping, equal heads.
    let full = [(9, 3, 64, 576), (32, 8, 128, 4096), (4, 4, 128, 1056)];
    let (cap, pos) = (40, 30u32);
    for (heads, kv_heads, d, k) in cases(dev, &full, &[(3, 1, 64, 64), (2, 2, 128, 96)]) {
        let rows = (heads + 2 * kv_heads) * d;
        let w = unit_rows(&[rows, k], 50);
        let table = F::RopeTable::new(64, d, 10000.0, dev).unwrap();
        let at = DeviceU32::new(be, pos).unwrap();
        for (name, dt, wg) in weights(&w, dev) {
            let up = |t: Tensor| t.to_dtype(dt).unwrap().to_device(dev).unwrap();
            let x = up(input(&[1, k], DType::F32, 51).0);
            let g = up(input(&[k], DType::F32, 52).0);
            let caches = || {
                let c = |seed| up(input(&[cap, kv_heads, d], DType::F32, seed).0);
                (c(53), c(54))
            };
            for interleaved in [false, true] {
                {
                    let norm = Some((&g, EPS));
                    let (kc, vc) = caches();
                    let q = F::qkv_rope_kv_write(
                        &x,
                        norm,
                        &wg,
                        (heads, kv_heads),
                        &table,
                        (&kc, &vc),
                        &at,
                        interleaved,
                    )
                    .unwrap();
                    // Unfused: the (normed) projection, then RoPE and the cache write.
                    let (kw, vw) = caches();
                    let fuse = LinearFusion {
                        norm,
                        ..Default::default()
                    };
                    let qkv = F::linear_fused(&x, &wg, fuse).unwrap();
                    let part = |at: usize, h: usize| {
                        qkv.narrow(1, at * d, h * d)
                            .unwrap()
                            .reshape([1, h, d])
                            .unwrap()
                    };
                    let (qu, ku, vu) = (
                        part(0, heads),
                        part(heads, kv_heads),
                        part(heads + kv_heads, kv_heads),
                    );
                    let want_q =
                        F::rope_kv_write(&qu, &ku, &vu, &table, &kw, &vw, &at, interleaved)
                            .unwrap();
                    let case = format!(
                        "qkv_rope_kv_write {name} h{heads}/{kv_heads} d{d} k{k} interleaved={interleaved} norm={}",
                        norm.is_some()
                    );
                    // As in `fused_gemv_matches_unfused`: the normalised input is not rounded.
                    let (atol, rtol) = tol(dt);
                    let (atol, rtol) = (atol * 4.0, rtol * 4.0);
                    let vals = |t: &Tensor| t.to_vec_f32().unwrap();
                    assert_close(&format!("{case} q"), &vals(&q), &vals(&want_q), atol, rtol);
                    assert_close(
                        &format!("{case} k cache"),
                        &vals(&kc),
                        &vals(&kw),
                        atol,
                        rtol,
                    );
                    assert_close(
                        &format!("{case} v cache"),
                        &vals(&vc),
                        &vals(&vw),
                        atol,
                        rtol,
                    );
                }
            }
        }
    }
}
