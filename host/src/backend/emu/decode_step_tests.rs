//! The decode graph's kernels through their launchers on the emulated device
//! (`backend/cuda/launch_step.rs`, the device-length decode attention of `launch.rs`): RoPE
//! fused with the KV-cache write against the unfused reference (RoPE, then a copy into the
//! cache), decode attention with its key count in device memory and a grid planned for the
//! whole cache, the on-device argmax against `sampler::argmax`, the position counter, and the
//! uniform initialiser bit for bit against the host's copy of the same function.

use half::{bf16, f16};
use nano_infer_kernels::init;
use nano_infer_kernels::params::RopeKvParams;

use super::tests::{download, upload};
use crate::backend::cpu::reference as R;
use crate::backend::cpu::testing::assert_close;
use crate::backend::cuda::{CudaBackend, CudaStorage};
use crate::sampler;
use crate::tensor::{DType, Device, Tensor};

const DTYPES: [DType; 3] = [DType::F32, DType::F16, DType::BF16];

/// `(atol, rtol)` for one rounding into `dt` plus f32 math differences (as `tests/common`).
fn tol(dt: DType) -> (f32, f32) {
    match dt {
        DType::F32 => (1e-5, 1e-4),
        DType::F16 => (2e-3, 2e-3),
        DType::BF16 => (1.6e-2, 1.6e-2),
    }
}

/// Random values (rounding to `dt` happens on upload).
fn input(len: usize, seed: u64) -> Vec<f32> {
    Tensor::randn([len], 1.0, seed, DType::F32, &Device::Cpu)
        .and_then(|t| t.to_vec_f32())
        .expect("randn")
}

/// A `u32` on the device (storage of one 4-byte element).
fn upload_u32(be: &CudaBackend, v: u32) -> CudaStorage {
    be.upload(&v.to_ne_bytes(), DType::F32).unwrap()
}

/// The `u32` at `b`.
fn download_u32(be: &CudaBackend, b: &CudaStorage) -> u32 {
    be.download_into(b.ptr(), vec![0u32]).unwrap()[0]
}

#[test]
fn rope_kv_write_matches_rope_then_copy() {
    let be = CudaBackend::emulated();
    // (seq, heads, kv_heads, head_dim): decode shapes (halves and pairs in 8-element chunks),
    // prefill-like seq > 1, and head sizes that take the scalar walk (6; 24 for halves).
    let cases = [(1, 9, 3, 64), (1, 4, 4, 128), (3, 5, 1, 6), (2, 2, 2, 24)];
    let (cap, max_pos) = (40, 64);
    for dt in DTYPES {
        let esize = dt.size_in_bytes() as u64;
        for (seq, heads, kv_heads, hd) in cases {
            let (cos, sin) = R::rope_table(max_pos, hd, 10000.0);
            let (cos_d, _) = upload(&be, cos.clone(), DType::F32);
            let (sin_d, _) = upload(&be, sin.clone(), DType::F32);
            for interleaved in [false, true] {
                // Device-side position 30 plus 1 from the params; a host-only position; a q
                // view one element into its buffer (misaligned: the scalar walk); and a
                // device-side position whose tokens run past the cache's `cap` rows, one past
                // them all, and one at the end of u32 (tokens from `cap` on write nothing, not
                // even into the rows the buffers hold after the cache, nor wrap around into it).
                let positions = [
                    (Some(30u32), 1, 0),
                    (None, 7, 0),
                    (None, 2, 1),
                    (Some(38), 1, 0),
                    (Some(45), 1, 0),
                    (Some(u32::MAX - 1), 1, 0),
                ];
                for (pos_dev, offset, skew) in positions {
                    let pos = offset + pos_dev.unwrap_or(0) as usize;
                    let (qn, kn) = (seq * heads * hd, seq * kv_heads * hd);
                    let row = kv_heads * hd;
                    let (q, qv) = upload(&be, input(qn + skew, 30), dt);
                    let (k, kv) = upload(&be, input(kn, 31), dt);
                    let (v, vv) = upload(&be, input(kn, 32), dt);
                    // The caches are the first `cap` rows of buffers with `seq` rows more.
                    let (kc, kcv) = upload(&be, input((cap + seq) * row, 33), dt);
                    let (vc, vcv) = upload(&be, input((cap + seq) * row, 34), dt);
                    let q_out = be.zeros(qn + skew, dt).unwrap();
                    let pos_buf = pos_dev.map(|p| upload_u32(&be, p));
                    let p = RopeKvParams {
                        seq: seq as u32,
                        heads: heads as u32,
                        kv_heads: kv_heads as u32,
                        head_dim: hd as u32,
                        pos_offset: offset as u32,
                        interleaved: interleaved as u32,
                        rows: cap as u32,
                    };
                    let skewed = |s: &CudaStorage| s.ptr() + skew as u64 * esize;
                    // SAFETY: the buffers hold the extents `p` names; the caches and tables
                    // `cap` rows (the tables 64).
                    unsafe {
                        be.rope_kv_write(
                            [skewed(&q), skewed(&q_out), k.ptr(), v.ptr()],
                            [kc.ptr(), vc.ptr()],
                            [cos_d.ptr(), sin_d.ptr()],
                            pos_buf.as_ref().map_or(0, |b| b.ptr()),
                            p,
                            dt,
                        )
                    }
                    .unwrap();

                    // The unfused path: RoPE on q and k, then k and v copied into cache rows.
                    let rope = |x: &[f32], h: usize| {
                        let mut out = vec![0.0; x.len()];
                        R::rope(x, seq, h, hd, &cos, &sin, pos, interleaved, &mut out).unwrap();
                        out
                    };
                    // Tokens at positions from `cap` on keep q's zeros and the caches' rows.
                    let inside = cap.saturating_sub(pos).min(seq);
                    let (mut want_q, mut want_k, mut want_v) =
                        (vec![0.0; qn], kcv.clone(), vcv.clone());
                    if inside > 0 {
                        want_q = rope(&qv[skew..], heads);
                        want_q[inside * heads * hd..].fill(0.0);
                        let cached = pos * row..(pos + inside) * row;
                        want_k[cached.clone()]
                            .copy_from_slice(&rope(&kv, kv_heads)[..inside * row]);
                        want_v[cached].copy_from_slice(&vv[..inside * row]);
                    }
                    let name = format!(
                        "rope_kv_write {dt:?} {seq}x{heads}/{kv_heads}x{hd} interleaved={interleaved} pos={pos} skew={skew}"
                    );
                    let (atol, rtol) = tol(dt);
                    let got_q = download(&q_out);
                    assert_close(&format!("{name} q"), &got_q[skew..], &want_q, atol, rtol);
                    assert_close(
                        &format!("{name} k cache"),
                        &download(&kc),
                        &want_k,
                        atol,
                        rtol,
                    );
                    // V is copied, not computed: exact.
                    assert_eq!(download(&vc), want_v, "{name} v cache");
                }
            }
        }
    }
}

#[test]
fn decode_attention_reads_its_length_from_device_memory() {
    let be = CudaBackend::emulated();
    // The decode graph's launch: the grid planned for the whole cache (max_keys = cap), one key
    // known to the host (the current token) and the cached count in device memory. Counts past
    // the cache (which the host cannot check) attend over its `cap` rows and no further: the
    // caches are the first `cap` rows of buffers holding other keys after them.
    let (cap, after) = (300, 64);
    let shapes = [(9, 3, 64), (8, 1, 64), (4, 4, 128), (2, 1, 64)];
    for dt in DTYPES {
        for (heads, kv_heads, d) in shapes {
            for total in [1, 5, 64, 65, 200, cap, cap + 40, u32::MAX as usize] {
                let (q, qv) = upload(&be, input(heads * d, 40), dt);
                let (k, kc) = upload(&be, input((cap + after) * kv_heads * d, 41), dt);
                let (v, vc) = upload(&be, input((cap + after) * kv_heads * d, 42), dt);
                let out = be.alloc(heads * d, dt).unwrap();
                let cached = upload_u32(&be, (total - 1) as u32);
                let scale = 1.0 / (d as f32).sqrt();
                let total = total.min(cap);
                // SAFETY: q, out hold heads * d elements, the caches `cap` rows (256-byte
                // aligned blocks); d is 64 or 128.
                unsafe {
                    be.decode_attention(
                        [q.ptr(), k.ptr(), v.ptr(), out.ptr()],
                        heads,
                        kv_heads,
                        d,
                        1,
                        (cached.ptr(), cap),
                        1,
                        scale,
                        dt,
                    )
                }
                .unwrap();
                let rows = total * kv_heads * d;
                let mut want = vec![0.0; heads * d];
                R::attention(
                    &qv,
                    &kc[..rows],
                    &vc[..rows],
                    1,
                    total,
                    heads,
                    kv_heads,
                    d,
                    scale,
                    true,
                    &mut want,
                )
                .unwrap();
                let (atol, rtol) = tol(dt);
                let name = format!(
                    "decode attention (device length) {dt:?} h{heads}/{kv_heads} d{d} k{total}"
                );
                assert_close(&name, &download(&out), &want, atol * 2.0, rtol * 2.0);
            }
        }
    }
}

#[test]
fn decode_step_argmax_matches_the_host_sampler() {
    let be = CudaBackend::emulated();
    let out = upload_u32(&be, u32::MAX);
    // `argmax_f32` over `x[skew..]`.
    let argmax = |x: &[f32], skew: usize| {
        let (xd, _) = upload(&be, x.to_vec(), DType::F32);
        let n = x.len() - skew;
        // SAFETY: x holds n floats from element `skew`, out one u32.
        unsafe { be.argmax(xd.ptr() + 4 * skew as u64, n, out.ptr()) }.unwrap();
        download_u32(&be, &out)
    };
    // Lengths below and above one chunk per thread, with a tail; a misaligned start (scalar).
    for n in [1, 7, 1000, 4099, 49155] {
        let mut x = input(n + 1, 50);
        for skew in [0, 1] {
            assert_eq!(
                argmax(&x, skew),
                sampler::argmax(&x[skew..]),
                "n {n} skew {skew}"
            );
        }
        // A tie: the first index wins, as on the host.
        if n > 4 {
            let top = x.iter().cloned().fold(f32::MIN, f32::max) + 1.0;
            x[n - 2] = top;
            x[3] = top;
            assert_eq!(argmax(&x, 0), 3, "tie, n {n}");
            x[2] = f32::NAN;
            assert_eq!(argmax(&x, 0), 3, "NaN is never the maximum, n {n}");
        }
    }
    assert_eq!(argmax(&[f32::NEG_INFINITY; 100], 0), 0);
}

#[test]
fn decode_step_add_u32() {
    let be = CudaBackend::emulated();
    let counter = upload_u32(&be, 41);
    // SAFETY: the address holds a u32.
    unsafe { be.add_u32(counter.ptr(), 1) }.unwrap();
    assert_eq!(download_u32(&be, &counter), 42);
}

#[test]
fn uniform_init_is_the_hosts_bit_for_bit() {
    let be = CudaBackend::emulated();
    let (n, seed, std) = (4099, 7, 0.02);
    let host: Vec<f32> = (0..n as u64).map(|i| init::uniform(seed, i, std)).collect();
    let mean = host.iter().sum::<f32>() / n as f32;
    let var = host.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n as f32;
    assert!(
        mean.abs() < 2e-3 && (var.sqrt() - std).abs() < 1e-3,
        "mean {mean}, std {}",
        var.sqrt()
    );
    assert!(host.iter().all(|v| v.abs() <= std * 3f32.sqrt()));
    for dt in DTYPES {
        let out = be.alloc(n, dt).unwrap();
        // SAFETY: out holds n elements of dt.
        unsafe { be.fill_uniform(out.ptr(), n, seed, std, dt) }.unwrap();
        let want: Vec<f32> = match dt {
            DType::F32 => host.clone(),
            DType::F16 => host.iter().map(|&v| f16::from_f32(v).to_f32()).collect(),
            DType::BF16 => host.iter().map(|&v| bf16::from_f32(v).to_f32()).collect(),
        };
        assert_eq!(download(&out), want, "fill_uniform {dt:?}");
    }
}
