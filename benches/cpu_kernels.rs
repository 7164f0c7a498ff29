//! CPU kernel benchmarks: each op's `reference` (the scalar f64 oracle) beside the `simd` path
//! at the best ISA of this CPU, plus the portable `scalar` table of the SIMD module, so the
//! gain of the intrinsics over compiler vectorisation is visible too.
//!
//! Throughput is decimal bytes touched once (inputs read + outputs written): these ops are
//! memory-bound, so GB/s against the machine's bandwidth is the honest figure. For `matmul`
//! (m = 64, compute-bound) divide `2·m·k·n` by the time for FLOP/s.
//!
//! `cargo bench --bench cpu_kernels` (about two minutes; add `-- --quick` for a faster pass,
//! or a group name such as `-- gemv` to run one).

use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use nano_infer_host::backend::cpu::simd::{self, Isa, Simd};
use nano_infer_host::backend::cpu::{reference, testing::Lcg};

/// `f32` count → bytes.
fn bytes(elems: usize) -> Throughput {
    Throughput::BytesDecimal(4 * elems as u64)
}

fn group<'a>(c: &'a mut Criterion, name: &str, elems: usize) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(bytes(elems));
    g
}

/// The rows of a group: `reference`, the best ISA as `simd/<isa>`, and `simd/scalar` (when the
/// best is not already scalar).
fn rows() -> Vec<(String, Simd)> {
    let mut rows = vec![(format!("simd/{}", simd::active_isa()), *Simd::best())];
    if Simd::best().isa() != Isa::Scalar
        && let Ok(s) = Simd::new(Isa::Scalar)
    {
        rows.push(("simd/scalar".into(), s));
    }
    rows
}

fn rms_norm(c: &mut Criterion) {
    let (n_rows, d) = (256, 4096);
    let mut g = Lcg::new(1);
    let (x, w) = (g.vec(n_rows * d, -2.0, 2.0), g.vec(d, 0.5, 1.5));
    let mut out = vec![0.0; x.len()];
    let mut grp = group(c, "rms_norm 256x4096", 2 * x.len() + d);
    grp.bench_function("reference", |b| {
        b.iter(|| reference::rms_norm(black_box(&x), &w, 1e-5, &mut out))
    });
    for (name, s) in rows() {
        grp.bench_function(name, |b| {
            b.iter(|| s.rms_norm(black_box(&x), &w, 1e-5, &mut out))
        });
    }
}

fn swiglu(c: &mut Criterion) {
    let n = 64 * 11008;
    let mut g = Lcg::new(2);
    let (gate, up) = (g.vec(n, -6.0, 6.0), g.vec(n, -2.0, 2.0));
    let mut out = vec![0.0; n];
    let mut grp = group(c, "swiglu 64x11008", 3 * n);
    grp.bench_function("reference", |b| {
        b.iter(|| reference::swiglu(black_box(&gate), &up, &mut out))
    });
    for (name, s) in rows() {
        grp.bench_function(name, |b| {
            b.iter(|| s.swiglu(black_box(&gate), &up, &mut out))
        });
    }
}

fn softmax(c: &mut Criterion) {
    // 16 heads of causal scores for 256 new queries over 512 keys.
    let (heads, q_len, k_len) = (16, 256, 512);
    let x = Lcg::new(3).vec(heads * q_len * k_len, -8.0, 8.0);
    let mut out = vec![0.0; x.len()];
    let mut grp = group(c, "softmax 16x256x512 causal", 2 * x.len());
    grp.bench_function("reference", |b| {
        b.iter(|| reference::softmax(black_box(&x), q_len, k_len, 0.088, true, &mut out))
    });
    for (name, s) in rows() {
        grp.bench_function(name, |b| {
            b.iter(|| s.softmax(black_box(&x), q_len, k_len, 0.088, true, &mut out))
        });
    }
}

fn rope(c: &mut Criterion) {
    let (seq, heads, hd) = (512, 32, 128);
    let (cos, sin) = reference::rope_table(seq, hd, 10_000.0);
    let x = Lcg::new(4).vec(seq * heads * hd, -2.0, 2.0);
    let mut out = vec![0.0; x.len()];
    for interleaved in [false, true] {
        let layout = if interleaved { "interleaved" } else { "half" };
        let name = format!("rope 512x32x128 {layout}");
        let mut grp = group(c, &name, 2 * x.len() + cos.len() + sin.len());
        grp.bench_function("reference", |b| {
            b.iter(|| {
                reference::rope(
                    black_box(&x),
                    seq,
                    heads,
                    hd,
                    &cos,
                    &sin,
                    0,
                    interleaved,
                    &mut out,
                )
            })
        });
        for (name, s) in rows() {
            grp.bench_function(name, |b| {
                b.iter(|| {
                    s.rope(
                        black_box(&x),
                        seq,
                        heads,
                        hd,
                        &cos,
                        &sin,
                        0,
                        interleaved,
                        &mut out,
                    )
                })
            });
        }
    }
}

fn gemv(c: &mut Criterion) {
    // Decode through a Llama-7B MLP up-projection: weight [11008, 4096] (Linear layout),
    // 180 MB of f32, far past any cache, so this measures DRAM streaming.
    let (k, n) = (4096, 11008);
    let mut g = Lcg::new(5);
    let (a, w) = (g.vec(k, -1.0, 1.0), g.vec(n * k, -1.0, 1.0));
    let mut out = vec![0.0; n];
    let mut grp = group(c, "gemv m=1 4096x11008 bT", k + n * k + n);
    grp.bench_function("reference", |b| {
        b.iter(|| reference::matmul(black_box(&a), &w, 1, k, n, true, &mut out))
    });
    for (name, s) in rows() {
        grp.bench_function(name, |b| {
            b.iter(|| s.matmul(black_box(&a), &w, 1, k, n, true, &mut out))
        });
    }
    // The same weight for a batch of 4 decodes: read once, 4x the useful work.
    let a4 = g.vec(4 * k, -1.0, 1.0);
    let mut out4 = vec![0.0; 4 * n];
    let s = *Simd::best();
    grp.bench_function(format!("simd/{} m=4", s.isa().name()), |b| {
        b.iter(|| s.matmul(black_box(&a4), &w, 4, k, n, true, &mut out4))
    });
}

fn matmul(c: &mut Criterion) {
    // A 64-token prefill through a 1024x1024 Linear.
    let (m, k, n) = (64, 1024, 1024);
    let mut g = Lcg::new(6);
    let (a, w) = (g.vec(m * k, -1.0, 1.0), g.vec(n * k, -1.0, 1.0));
    let mut out = vec![0.0; m * n];
    let mut grp = group(c, "matmul m=64 1024x1024 bT", m * k + k * n + m * n);
    grp.bench_function("reference", |b| {
        b.iter(|| reference::matmul(black_box(&a), &w, m, k, n, true, &mut out))
    });
    let s = *Simd::best();
    grp.bench_function(format!("simd/{} (gemm crate)", s.isa().name()), |b| {
        b.iter(|| s.matmul(black_box(&a), &w, m, k, n, true, &mut out))
    });
    // The alternative to the gemm crate: the GEMV on slices of GEMV_MAX_M rows of `a`.
    let tile = simd::GEMV_MAX_M;
    grp.bench_function(
        format!("simd/{} gemv-tiles of {tile}", s.isa().name()),
        |b| {
            b.iter(|| {
                for (at, ot) in a.chunks(tile * k).zip(out.chunks_mut(tile * n)) {
                    s.matmul(black_box(at), &w, at.len() / k, k, n, true, ot)?;
                }
                Ok::<(), nano_infer_host::Error>(())
            })
        },
    );
}

criterion_group!(benches, rms_norm, swiglu, softmax, rope, gemv, matmul);
criterion_main!(benches);
