//! The GEMV variants beyond plain `linear` (which `gemm_matches_reference` covers): quantized
//! weights (Q8_0, Q4_0, Q4_1 kept quantized on the GPU) against the dequantized weight on the
//! scalar reference, and the fused gate+up projection with SwiGLU against its unfused
//! reference, for m = 1..=8 (GEMV) and m = 11 (quantized: expanded to f16 for cuBLAS; dense:
//! cuBLAS + swiglu), with ragged tails (k not a multiple of 256, odd n); and the device's
//! quantizer and dequantizer against the CPU's.

use crate::common::{cases, check_tol, input, tol};
use nano_infer::backend::cpu::reference as R;
use nano_infer::functional::{self as F, LinearWeight};
use nano_infer::tensor::quant_pack::QuantFormat;
use nano_infer::{DType, Device, QuantizedTensor, Tensor};

const FORMATS: [QuantFormat; 3] = [QuantFormat::Q8_0, QuantFormat::Q4_0, QuantFormat::Q4_1];
/// (n, k) on a GPU: one block per row, ragged groups, the 7B shapes' widths, an odd n.
const SHAPES: [(usize, usize); 5] = [(5, 32), (33, 96), (300, 1056), (7, 4128), (11, 11008)];
/// (n, k) on the emulator: one block per row, a ragged group, an odd n.
const SHAPES_SMALL: [(usize, usize); 3] = [(5, 32), (33, 96), (3, 1056)];
const MS: [usize; 6] = [1, 2, 3, 5, 8, 11];
/// Row counts on the emulator: each GEMV width (1, 2, 4, 8 kernels) and the 8-row passes.
const MS_SMALL: [usize; 5] = [1, 2, 3, 8, 11];

/// `x · wᵀ` on the reference, then (SwiGLU) `silu(gate) · up` over the halves, with the
/// product rounded to `round` first (as the unfused path stores it).
fn reference(
    xv: &[f32],
    wv: &[f32],
    (m, k, rows): (usize, usize, usize),
    swiglu: bool,
    round: Option<DType>,
) -> Vec<f32> {
    let mut y = vec![0.0; m * rows];
    R::matmul(xv, wv, m, k, rows, true, &mut y).unwrap();
    if let Some(dt) = round {
        y = Tensor::from_f32(y, [m * rows], dt, &Device::Cpu)
            .unwrap()
            .to_vec_f32()
            .unwrap();
    }
    if !swiglu {
        return y;
    }
    let n = rows / 2;
    let silu = |g: f32| g / (1.0 + (-g).exp());
    (0..m * n)
        .map(|i| silu(y[(i / n) * rows + i % n]) * y[(i / n) * rows + n + i % n])
        .collect()
}

pub fn quantized_gemv_matches_dequantized_reference(dev: &Device) {
    for f in FORMATS {
        for (n, k) in cases(dev, &SHAPES, &SHAPES_SMALL) {
            for swiglu in [false, true] {
                let rows = if swiglu { 2 * n } else { n };
                let (w, _) = input(&[rows, k], DType::F32, 30);
                let q = QuantizedTensor::quantize(&w, f, &Device::Cpu).unwrap();
                let expanded = |dt| {
                    q.dequantize(dt, &Device::Cpu)
                        .unwrap()
                        .to_vec_f32()
                        .unwrap()
                };
                let (wv, wv16) = (expanded(DType::F32), expanded(DType::F16));
                let qg = LinearWeight::Quantized(q.to_device(dev).unwrap());
                for dt in [DType::F16] {
                    for m in cases(dev, &MS, &MS_SMALL) {
                        let (x, xv) = input(&[m, k], dt, 31);
                        let xg = x.to_device(dev).unwrap();
                        let got = if swiglu {
                            F::linear_swiglu(&xg, &qg).unwrap()
                        } else {
                            F::linear_any(&xg, &qg).unwrap()
                        };
                        // Past GEMV_MAX_M rows (a prefill) the weight is expanded to f16 for
                        // cuBLAS, and SwiGLU runs on the stored f16 product.
                        let want = if m > F::GEMV_MAX_M {
                            reference(&xv, &wv16, (m, k, rows), swiglu, Some(dt))
                        } else {
                            reference(&xv, &wv, (m, k, rows), swiglu, None)
                        };
                        let (atol, rtol) = tol(dt);
                        check_tol(
                            &format!("{f:?} swiglu={swiglu} {dt:?} {m}x{k}x{n}"),
                            &got,
                            &want,
                            atol * (k as f32).sqrt(),
                            rtol * 2.0,
                        );
                    }
                }
            }
        }
    }
}

pub fn gate_up_swiglu_gemv_matches_unfused(dev: &Device) {
    let full = [(5, 7), (33, 64), (300, 1003), (11, 4096), (9, 11008)];
    for dt in crate::common::DTYPES {
        for (n, k) in cases(dev, &full, &[(5, 7), (33, 64), (3, 1003)]) {
            let (w, wv) = input(&[2 * n, k], dt, 32);
            let wg = LinearWeight::Dense(w.to_device(dev).unwrap());
            for m in cases(dev, &MS, &MS_SMALL) {
                let (x, xv) = input(&[m, k], dt, 33);
                let got = F::linear_swiglu(&x.to_device(dev).unwrap(), &wg).unwrap();
                let want = reference(&xv, &wv, (m, k, 2 * n), true, None);
                // The unfused path rounds gate and up to dt before SwiGLU; the fused one does not.
                let (atol, rtol) = tol(dt);
                check_tol(
                    &format!("gate+up swiglu {dt:?} {m}x{k}x{n}"),
                    &got,
                    &want,
                    atol * (k as f32).sqrt(),
                    rtol * 4.0,
                );
            }
        }
    }
    // A non-contiguous weight (a transposed view) takes the unfused path: same answer. Mismatched
    // dtypes are a typed error.
    let (n, k, m) = (5, 64, 2);
    let (wt, _) = input(&[k, 2 * n], DType::F16, 35);
    let wt = wt.to_device(dev).unwrap().transpose(0, 1).unwrap();
    let (x, _) = input(&[m, k], DType::F16, 36);
    let x = x.to_device(dev).unwrap();
    let view = F::linear_swiglu(&x, &LinearWeight::Dense(wt.clone())).unwrap();
    let copy = F::linear_swiglu(&x, &LinearWeight::Dense(wt.contiguous().unwrap())).unwrap();
    check_tol(
        "gate+up swiglu, transposed weight",
        &view,
        &copy.to_vec_f32().unwrap(),
        1e-2,
        1e-2,
    );
    let bf = x.to_dtype(DType::BF16).unwrap();
    assert!(matches!(
        F::linear_swiglu(&bf, &LinearWeight::Dense(wt)),
        Err(nano_infer::Error::DTypeMismatch { .. })
    ));
}

/// Quantizing on the device (`quantize_*` kernels) gives the CPU quantizer's blocks, and
/// dequantizing on the device (`dequantize_*`) gives the CPU's values, bit for bit: compared as
/// the dequantized matrices, every format from every dtype. The input has an all-zero block
/// (scale 0), a constant block (Q4_1: max = min) and exact halves (rounding ties).
pub fn quantize_and_dequantize_on_device_match_cpu(dev: &Device) {
    let shapes = cases(
        dev,
        &[(7, 4128), (300, 1056), (64, 11008)],
        &[(3, 96), (5, 64)],
    );
    for f in FORMATS {
        for dt in crate::common::DTYPES {
            for &(n, k) in &shapes {
                let (w, mut wv) = input(&[n, k], DType::F32, 34);
                wv[..32].fill(0.0);
                wv[32..64].fill(0.75);
                for (i, v) in wv[64..96].iter_mut().enumerate() {
                    *v = i as f32 * 0.5 - 8.0;
                }
                let w = Tensor::from_f32(wv, w.dims().to_vec(), dt, &Device::Cpu).unwrap();
                let on_cpu = QuantizedTensor::quantize(&w, f, &Device::Cpu).unwrap();
                let want = on_cpu.dequantize(dt, &Device::Cpu).unwrap();
                let q = QuantizedTensor::quantize(&w.to_device(dev).unwrap(), f, dev).unwrap();
                assert_eq!(
                    q.size_in_bytes(),
                    on_cpu.to_device(dev).unwrap().size_in_bytes()
                );
                let got = q.dequantize(dt, dev).unwrap();
                assert_eq!(
                    got.to_vec_f32().unwrap(),
                    want.to_vec_f32().unwrap(),
                    "{f:?} from {dt:?} [{n}, {k}]"
                );
            }
        }
    }
}
