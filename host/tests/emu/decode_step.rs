//! The decode graph's kernels under the emulator: RoPE fused with the KV-cache write against the
//! unfused reference (RoPE, then a copy into the cache), decode attention with its key count in
//! "device" memory and a grid planned for the whole cache, the on-device argmax against
//! `sampler::argmax`, the position counter, and the uniform initialiser bit for bit against the
//! host's copy of the same function.

use half::{bf16, f16};
use nano_infer_host::DType;
use nano_infer_host::backend::cpu::reference as R;
use nano_infer_host::backend::cpu::testing::assert_close;
use nano_infer_host::sampler;
use nano_infer_kernels::emu::{self, EmuError, SyncPtr};
use nano_infer_kernels::launch_shape;
use nano_infer_kernels::params::RopeKvParams;
use nano_infer_kernels::{decode_step, init, rope_kv};

use crate::harness::{self as H, DTYPES, DevBuf, EMU_SM_COUNT, check, input, tol};

/// `rope_kv_write_{dt}` launched as `CudaBackend::rope_kv_write` launches it; `q` starts
/// `q_skew` elements into its buffer (a misaligned view takes the scalar path).
#[allow(clippy::too_many_arguments)]
fn rope_kv_write(
    q: SyncPtr<u8>,
    q_out: SyncPtr<u8>,
    k: &DevBuf,
    v: &DevBuf,
    caches: [&DevBuf; 2],
    [cos, sin]: [&[f32]; 2],
    pos_dev: Option<&[u32]>,
    p: RopeKvParams,
) -> Result<(), EmuError> {
    let (kp, vp, kc, vc, dt) = (k.ptr(), v.ptr(), caches[0].ptr(), caches[1].ptr(), k.dt);
    let (cp, sp) = (SyncPtr::of(cos), SyncPtr::of(sin));
    let pp = pos_dev.map_or(SyncPtr::new(std::ptr::null_mut()), SyncPtr::of);
    let items = launch_shape::rope_kv_items(
        p.seq as usize,
        p.heads as usize,
        p.kv_heads as usize,
        p.head_dim as usize,
    );
    let shape = launch_shape::grid_stride(items, EMU_SM_COUNT);
    emu::launch_shape(&format!("rope_kv_write_{}", dt.name()), shape, || {
        let a = (q, q_out, kp, vp, kc, vc, cp, sp, pp);
        // SAFETY: the buffers hold the extents RopeKvParams names; the caches hold pos + seq rows.
        unsafe {
            match dt {
                DType::F32 => rope_kv::rope_kv_write_f32(
                    a.0.get(),
                    a.1.get(),
                    a.2.get(),
                    a.3.get(),
                    a.4.get(),
                    a.5.get(),
                    a.6.get(),
                    a.7.get(),
                    a.8.get(),
                    p,
                ),
                DType::F16 => rope_kv::rope_kv_write_f16(
                    a.0.get(),
                    a.1.get(),
                    a.2.get(),
                    a.3.get(),
                    a.4.get(),
                    a.5.get(),
                    a.6.get(),
                    a.7.get(),
                    a.8.get(),
                    p,
                ),
                DType::BF16 => rope_kv::rope_kv_write_bf16(
                    a.0.get(),
                    a.1.get(),
                    a.2.get(),
                    a.3.get(),
                    a.4.get(),
                    a.5.get(),
                    a.6.get(),
                    a.7.get(),
                    a.8.get(),
                    p,
                ),
            }
        }
    })
}

#[test]
fn rope_kv_write_matches_rope_then_copy() {
    // (seq, heads, kv_heads, head_dim): decode shapes (halves and pairs in 8-element chunks),
    // prefill-like seq > 1, and head sizes that take the scalar walk (6; 24 for halves).
    let cases = [(1, 9, 3, 64), (1, 4, 4, 128), (3, 5, 1, 6), (2, 2, 2, 24)];
    let (cap, max_pos) = (40, 64);
    for dt in DTYPES {
        for (seq, heads, kv_heads, hd) in cases {
            let (cos, sin) = R::rope_table(max_pos, hd, 10000.0);
            for interleaved in [false, true] {
                // Device-side position 30 plus 1 from the params; a host-only position; and a
                // q view one element into its buffer (misaligned: the scalar walk).
                for (pos_dev, offset, skew) in [(Some(30u32), 1, 0), (None, 7, 0), (None, 2, 1)] {
                    let pos = offset + pos_dev.unwrap_or(0) as usize;
                    let (qn, kn) = (seq * heads * hd, seq * kv_heads * hd);
                    let row = kv_heads * hd;
                    let (qv, kv, vv) = (
                        input(qn + skew, dt, 30),
                        input(kn, dt, 31),
                        input(kn, dt, 32),
                    );
                    let (kcv, vcv) = (input(cap * row, dt, 33), input(cap * row, dt, 34));
                    let (q, k, v) = (
                        DevBuf::from_f32(&qv, dt),
                        DevBuf::from_f32(&kv, dt),
                        DevBuf::from_f32(&vv, dt),
                    );
                    let (kc, vc) = (DevBuf::from_f32(&kcv, dt), DevBuf::from_f32(&vcv, dt));
                    let q_out = DevBuf::zeros(qn + skew, dt);
                    let p = RopeKvParams {
                        seq: seq as u32,
                        heads: heads as u32,
                        kv_heads: kv_heads as u32,
                        head_dim: hd as u32,
                        pos_offset: offset as u32,
                        interleaved: interleaved as u32,
                    };
                    let dev = pos_dev.map(|p| [p]);
                    rope_kv_write(
                        q.ptr_at(skew),
                        q_out.ptr_at(skew),
                        &k,
                        &v,
                        [&kc, &vc],
                        [&cos, &sin],
                        dev.as_ref().map(|d| &d[..]),
                        p,
                    )
                    .unwrap_or_else(|e| panic!("{e}"));

                    // The unfused path: RoPE on q and k, then k and v copied into cache rows.
                    let rope = |x: &[f32], h: usize| {
                        let mut out = vec![0.0; x.len()];
                        R::rope(x, seq, h, hd, &cos, &sin, pos, interleaved, &mut out).unwrap();
                        out
                    };
                    let mut want_q = vec![0.0; skew];
                    want_q.extend(rope(&qv[skew..], heads));
                    let (mut want_k, mut want_v) = (kcv.clone(), vcv.clone());
                    want_k[pos * row..(pos + seq) * row].copy_from_slice(&rope(&kv, kv_heads));
                    want_v[pos * row..(pos + seq) * row].copy_from_slice(&vv);
                    let name = format!(
                        "rope_kv_write {dt:?} {seq}x{heads}/{kv_heads}x{hd} interleaved={interleaved} pos={pos} skew={skew}"
                    );
                    let got_q = q_out.to_f32();
                    assert_close(
                        &format!("{name} q"),
                        &got_q[skew..],
                        &want_q[skew..],
                        tol(dt).0,
                        tol(dt).1,
                    );
                    check(&format!("{name} k cache"), &kc, &want_k, dt);
                    // V is copied, not computed: exact.
                    assert_eq!(vc.to_f32(), want_v, "{name} v cache");
                }
            }
        }
    }
}

#[test]
fn decode_attention_reads_its_length_from_device_memory() {
    // The decode graph's launch: the grid planned for the whole cache (max_keys = cap), one key
    // known to the host (the current token) and the cached count in device memory.
    let cap = 300;
    let shapes = [(9, 3, 64), (8, 1, 64), (4, 4, 128), (2, 1, 8)];
    for dt in DTYPES {
        for (heads, kv_heads, d) in shapes {
            for total in [1, 5, 64, 65, 200, cap] {
                let qv = input(heads * d, dt, 40);
                let (kc, vc) = (
                    input(cap * kv_heads * d, dt, 41),
                    input(cap * kv_heads * d, dt, 42),
                );
                let (q, k, v) = (
                    DevBuf::from_f32(&qv, dt),
                    DevBuf::from_f32(&kc, dt),
                    DevBuf::from_f32(&vc, dt),
                );
                let out = DevBuf::zeros(heads * d, dt);
                let scale = 1.0 / (d as f32).sqrt();
                let cached = [total as u32 - 1];
                H::decode_attention(
                    &q,
                    &k,
                    &v,
                    &out,
                    [heads, kv_heads, d],
                    1,
                    Some(&cached),
                    cap,
                    scale,
                )
                .unwrap_or_else(|e| panic!("{e}"));
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
                assert_close(&name, &out.to_f32(), &want, atol * 2.0, rtol * 2.0);
            }
        }
    }
}

/// `argmax_f32` over `x[skew..]`.
fn argmax(x: &[f32], skew: usize) -> u32 {
    let mut out = [u32::MAX];
    let (xp, op, n) = (
        SyncPtr::of(&x[skew..]),
        SyncPtr::of_mut(&mut out),
        (x.len() - skew) as u32,
    );
    emu::launch_shape("argmax_f32", launch_shape::argmax(), || {
        // SAFETY: x holds n floats, out one u32; one block of ARGMAX_BLOCK threads.
        unsafe { decode_step::argmax(xp.get(), n, op.get()) }
    })
    .unwrap_or_else(|e| panic!("{e}"));
    out[0]
}

#[test]
fn decode_step_argmax_matches_the_host_sampler() {
    // Lengths below and above one chunk per thread, with a tail; a misaligned start (scalar).
    for n in [1, 7, 1000, 4099, 49155] {
        let mut x = input(n + 1, DType::F32, 50);
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
    let mut counter = [41u32];
    let cp = SyncPtr::of_mut(&mut counter);
    emu::launch_shape("add_u32", launch_shape::single(), || {
        // SAFETY: one thread, one u32.
        unsafe { decode_step::add_u32(cp.get(), 1) }
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(counter, [42]);
}

#[test]
fn uniform_init_is_the_hosts_bit_for_bit() {
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
        let out = DevBuf::zeros(n, dt);
        let op = out.ptr();
        let shape = launch_shape::grid_stride(launch_shape::map_items(n), EMU_SM_COUNT);
        emu::launch_shape(&format!("fill_uniform_{}", dt.name()), shape, || {
            // SAFETY: out holds n elements of dt.
            unsafe {
                match dt {
                    DType::F32 => init::fill_uniform_f32(op.get(), n as u64, seed, std),
                    DType::F16 => init::fill_uniform_f16(op.get(), n as u64, seed, std),
                    DType::BF16 => init::fill_uniform_bf16(op.get(), n as u64, seed, std),
                }
            }
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let want: Vec<f32> = match dt {
            DType::F32 => host.clone(),
            DType::F16 => host.iter().map(|&v| f16::from_f32(v).to_f32()).collect(),
            DType::BF16 => host.iter().map(|&v| bf16::from_f32(v).to_f32()).collect(),
        };
        assert_eq!(out.to_f32(), want, "fill_uniform {dt:?}");
    }
}
