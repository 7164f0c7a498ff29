//! GPU kernel benchmark: TB/s (memory-bound kernels) and TFLOP/s (GEMM) at the shapes and with
//! the byte formulas of `shared/anchors/torch_anchors.py`, timed with CUDA events (median).
//!
//! `cargo bench --bench gpu_kernels -- [--json FILE] [--only NAME]` on a GPU host; prints one
//! JSON object whose keys mirror the anchor keys with a `nano_` prefix. Without a GPU it says so
//! and exits 0 (it is a plain `main`, not criterion).

use nano_infer::backend::cuda::DeviceU32;
use nano_infer::functional as F;
use nano_infer::{DType, Device, Result, Tensor};
use std::collections::BTreeMap;

const T: usize = 16384;
const H: usize = 4096;
const I: usize = 11008;

struct Bench {
    gpu: nano_infer::backend::cuda::CudaBackend,
    dev: Device,
    out: BTreeMap<String, f64>,
    only: Option<String>,
}

impl Bench {
    fn wants(&self, key: &str) -> bool {
        self.only.as_deref().is_none_or(|o| key.contains(o))
    }
    /// True when `--only` selects one of `keys`: a section builds its inputs only then (some
    /// are slow to make, e.g. weights quantized on the CPU).
    fn wants_any<S: AsRef<str>>(&self, keys: &[S]) -> bool {
        keys.iter().any(|k| self.wants(k.as_ref()))
    }
    /// Times `f` (median of 50 after 5 warm-ups) and records `bytes / time` in TB/s.
    fn tbps(&mut self, key: &str, bytes: f64, f: impl FnMut() -> Result<()>) -> Result<()> {
        if !self.wants(key) {
            return Ok(());
        }
        let ms = self.gpu.time_median_ms(5, 50, f)?;
        self.out
            .insert(format!("nano_{key}_TBps"), bytes / ms / 1e9);
        self.out.insert(format!("nano_{key}_ms"), ms);
        eprintln!("{key}: {:.3} ms, {:.3} TB/s", ms, bytes / ms / 1e9);
        Ok(())
    }
}

fn rand(shape: &[usize], dt: DType, dev: &Device, seed: u64) -> Result<Tensor> {
    Tensor::randn(shape.to_vec(), 1.0, seed, dt, dev)
}

fn kernels(b: &mut Bench) -> Result<()> {
    let dev = b.dev.clone();
    // Practical bandwidth: a 1 GiB device-to-device copy.
    let n = 1usize << 30;
    if b.wants("copy_1GiB") {
        let src = Tensor::zeros([n / 2], DType::F16, &dev)?;
        let dst = Tensor::zeros([n / 2], DType::F16, &dev)?;
        let (sp, dp) = (src.device_ptr().unwrap_or(0), dst.device_ptr().unwrap_or(0));
        let gpu = b.gpu.clone();
        // SAFETY: both tensors hold n bytes and live until the end of this block.
        b.tbps("copy_1GiB", 2.0 * n as f64, || unsafe {
            gpu.copy_device(dp, sp, n)
        })?;
    }

    for dt in [DType::F16, DType::BF16] {
        let nm = if dt == DType::F16 {
            "float16"
        } else {
            "bfloat16"
        };
        if b.wants_any(
            &["rmsnorm_", "add_rmsnorm_", "add_rmsnorm_nosum_"]
                .map(|k| format!("{k}{nm}_T{T}xH{H}")),
        ) {
            let x = rand(&[T, H], dt, &dev, 1)?;
            let r = rand(&[T, H], dt, &dev, 2)?;
            let w = rand(&[H], dt, &dev, 3)?;
            let numel = (T * H) as f64;
            b.tbps(
                &format!("rmsnorm_{nm}_T{T}xH{H}"),
                2.0 * numel * 2.0,
                || F::rms_norm(&x, &w, 1e-5).map(drop),
            )?;
            // Anchor formula (3 passes: torch's compiled kernel writes only the norm); ours also
            // writes the residual sum, so its true traffic is 4 passes (reported separately).
            b.tbps(
                &format!("add_rmsnorm_{nm}_T{T}xH{H}"),
                3.0 * numel * 2.0,
                || F::add_rms_norm(&x, &r, &w, 1e-5).map(drop),
            )?;
            b.tbps(
                &format!("add_rmsnorm_nosum_{nm}_T{T}xH{H}"),
                3.0 * numel * 2.0,
                || F::rms_norm_of_sum(&x, &r, &w, 1e-5).map(drop),
            )?;
        }
        if b.wants(&format!("swiglu_{nm}_T{T}xI{I}")) {
            let g = rand(&[T, I], dt, &dev, 4)?;
            let u = rand(&[T, I], dt, &dev, 5)?;
            b.tbps(
                &format!("swiglu_{nm}_T{T}xI{I}"),
                3.0 * (T * I) as f64 * 2.0,
                || F::swiglu(&g, &u).map(drop),
            )?;
        }
        if b.wants_any(&["rope_", "rope_interleaved_"].map(|k| format!("{k}{nm}_T{T}x32x128"))) {
            let q = rand(&[T, 32, 128], dt, &dev, 6)?;
            let table = F::RopeTable::new(T, 128, 10000.0, &dev)?;
            let numel = (T * 32 * 128) as f64;
            b.tbps(&format!("rope_{nm}_T{T}x32x128"), 2.0 * numel * 2.0, || {
                F::rope(&q, &table, 0, false).map(drop)
            })?;
            b.tbps(
                &format!("rope_interleaved_{nm}_T{T}x32x128"),
                2.0 * numel * 2.0,
                || F::rope(&q, &table, 0, true).map(drop),
            )?;
        }
        if b.wants(&format!("softmax_{nm}_131072x1024")) {
            let s = rand(&[128 * 1024, 1024], dt, &dev, 7)?;
            b.tbps(
                &format!("softmax_{nm}_131072x1024"),
                2.0 * (128 * 1024 * 1024) as f64 * 2.0,
                || F::softmax(&s, 1.0, false).map(drop),
            )?;
        }
    }
    Ok(())
}

fn gemm(b: &mut Bench) -> Result<()> {
    let dev = b.dev.clone();
    for (k, n) in [(4096, 11008), (4096, 4096), (11008, 4096)] {
        let w = Tensor::randn([n, k], 0.02, 8, DType::F16, &dev)?;
        for m in [1usize, 16, 128, 512, 2048, 4096] {
            let key = format!("gemm_f16_M{m}_K{k}_N{n}");
            if !b.wants(&key) {
                continue;
            }
            let x = Tensor::randn([m, k], 1.0, 9, DType::F16, &dev)?;
            let ms = b
                .gpu
                .time_median_ms(5, 50, || F::linear(&x, &w).map(drop))?;
            let flops = 2.0 * (m * n * k) as f64;
            let bytes = ((n * k + m * k + m * n) * 2) as f64;
            b.out.insert(format!("nano_{key}_TFLOPs"), flops / ms / 1e9);
            b.out.insert(format!("nano_{key}_TBps"), bytes / ms / 1e9);
            eprintln!(
                "{key}: {ms:.4} ms, {:.1} TFLOP/s, {:.3} TB/s",
                flops / ms / 1e9,
                bytes / ms / 1e9
            );
        }
    }
    Ok(())
}

/// What a single timed call carries besides its kernel: the event pair alone, a tiny GEMV
/// through `linear` (launch + host work + a ~2 µs kernel), the host's own time per tiny
/// `linear` and per bare driver call (a 128-byte device copy: the floor under any launch), each
/// over 200 calls queued without a wait. Keys `launch_*_us`.
fn launch_overhead(b: &mut Bench) -> Result<()> {
    if !b.wants("launch_") {
        return Ok(());
    }
    let us = |ms: f64| ms * 1e3;
    let events = b.gpu.time_median_ms(5, 50, || Ok(()))?;
    let x = Tensor::randn([1, 64], 1.0, 9, DType::F16, &b.dev)?;
    let w = Tensor::randn([64, 64], 0.02, 8, DType::F16, &b.dev)?;
    let tiny = b
        .gpu
        .time_median_ms(5, 50, || F::linear(&x, &w).map(drop))?;
    const CALLS: u32 = 200;
    b.gpu.synchronize()?;
    let t0 = std::time::Instant::now();
    for _ in 0..CALLS {
        F::linear(&x, &w)?;
    }
    let host = t0.elapsed().as_secs_f64() * 1e3 / f64::from(CALLS);
    b.gpu.synchronize()?;
    let (Some(src), Some(dst)) = (x.device_ptr(), w.device_ptr()) else {
        return Ok(());
    };
    let t0 = std::time::Instant::now();
    for _ in 0..CALLS {
        // SAFETY: x holds 128 bytes (64 f16), w 8 KB; both live to the end of this function.
        unsafe { b.gpu.copy_device(dst, src, 128)? };
    }
    let copy = t0.elapsed().as_secs_f64() * 1e3 / f64::from(CALLS);
    b.gpu.synchronize()?;
    for (key, ms) in [
        ("events_only", events),
        ("linear_tiny", tiny),
        ("linear_tiny_host", host),
        ("copy_tiny_host", copy),
    ] {
        b.out.insert(format!("nano_launch_{key}_us"), us(ms));
        eprintln!("launch_{key}: {:.2} us", us(ms));
    }
    Ok(())
}

/// GEMV (decode Linear layers): our kernel through `linear` for m <= GEMV_MAX_M (8), bytes =
/// weight + x + y. Each call is timed alone, as the anchor times cuBLAS (the host's launch
/// latency included: a few µs of a 12–35 µs kernel); the M = 1 `_x20` rows time 20 calls back
/// to back, as a decode step issues them, rotating over [`WEIGHT_COPIES`] weights so that none
/// is still in the 50 MB L2 when it is read again; the f16 M = 1 `_copy_per_call` rows time a
/// device copy of the weight's bytes per call, the ceiling such a per-call timing leaves.
fn gemv(b: &mut Bench) -> Result<()> {
    const BACK_TO_BACK: usize = 20;
    const WEIGHT_COPIES: usize = 4;
    let dev = b.dev.clone();
    for dt in [DType::F16, DType::BF16] {
        for (k, n) in [(4096, 11008), (11008, 4096), (4096, 4096)] {
            let keys = [1usize, 2, 4, 8].map(|m| format!("gemv_{}_M{m}_K{k}_N{n}", dt.name()));
            if !b.wants_any(&keys) {
                continue;
            }
            let ws = (0..WEIGHT_COPIES as u64)
                .map(|seed| Tensor::randn([n, k], 0.02, 8 + seed, dt, &dev))
                .collect::<Result<Vec<_>>>()?;
            for m in [1usize, 2, 4, 8] {
                let x = Tensor::randn([m, k], 1.0, 9, dt, &dev)?;
                let bytes = ((n * k + m * k + m * n) * 2) as f64;
                let key = format!("gemv_{}_M{m}_K{k}_N{n}", dt.name());
                b.tbps(&key, bytes, || F::linear(&x, &ws[0]).map(drop))?;
                if m == 1 && dt == DType::F16 {
                    // What a per-call timing allows at this size: the driver's device copy
                    // moving the weight's bytes (half read, half written), timed the same way.
                    let half = Tensor::zeros([n * k / 2], dt, &dev)?;
                    let (Some(src), Some(dst)) = (ws[1].device_ptr(), half.device_ptr()) else {
                        continue;
                    };
                    let gpu = b.gpu.clone();
                    // SAFETY: both tensors hold n * k bytes or more and live to the end of
                    // this iteration.
                    b.tbps(
                        &format!("{key}_copy_per_call"),
                        (n * k * 2) as f64,
                        || unsafe { gpu.copy_device(dst, src, n * k) },
                    )?;
                }
                if m == 1 {
                    b.tbps(
                        &format!("{key}_x{BACK_TO_BACK}"),
                        bytes * BACK_TO_BACK as f64,
                        || {
                            (0..BACK_TO_BACK)
                                .try_for_each(|i| F::linear(&x, &ws[i % WEIGHT_COPIES]).map(drop))
                        },
                    )?;
                }
            }
        }
    }
    Ok(())
}

/// FlashAttention prefill, B1 H32 D128, as `torch_anchors.py --only attention` measures
/// SDPA-flash: TFLOP/s with FLOPs = 4·H·S²·D, halved under the causal mask. Keys `flash_*`:
/// FlashAttention-2; `flash3_*`: FlashAttention-3 (`wgmma`), on a compute capability 9.0 GPU.
fn flash_attention(b: &mut Bench) -> Result<()> {
    for (kernel, flash3) in [("flash", false), ("flash3", true)] {
        let Ok(gpu) = b.gpu.with_flash3(flash3) else {
            eprintln!("{kernel}: not on this GPU");
            continue;
        };
        let dev = Device::Cuda(gpu.clone());
        for dt in [DType::F16, DType::BF16] {
            let nm = if dt == DType::F16 {
                "float16"
            } else {
                "bfloat16"
            };
            for s in [1024usize, 2048, 4096, 8192] {
                for causal in [false, true] {
                    let key = format!(
                        "{kernel}_{nm}_B1_H32_D128_S{s}_{}",
                        if causal { "causal" } else { "full" }
                    );
                    if !b.wants(&key) {
                        continue;
                    }
                    let q = Tensor::randn([s, 32, 128], 1.0, 1, dt, &dev)?;
                    let k = Tensor::randn([s, 32, 128], 1.0, 2, dt, &dev)?;
                    let v = Tensor::randn([s, 32, 128], 1.0, 3, dt, &dev)?;
                    let ms = gpu.time_median_ms(3, 20, || {
                        F::attention(&q, &k, &v, 0.088, causal).map(drop)
                    })?;
                    let flops =
                        4.0 * 32.0 * (s * s) as f64 * 128.0 / if causal { 2.0 } else { 1.0 };
                    b.out.insert(format!("nano_{key}_TFLOPs"), flops / ms / 1e9);
                    b.out.insert(format!("nano_{key}_ms"), ms);
                    eprintln!("{key}: {ms:.3} ms, {:.1} TFLOP/s", flops / ms / 1e9);
                }
            }
        }
    }
    Ok(())
}

/// Quantized GEMV (weights kept quantized, `F::linear_any`) and the fused gate+up GEMV with
/// SwiGLU (`F::linear_swiglu`, dense f16 and Q4_1): bytes = weight as stored (repacked blocks:
/// quants + scales) + x + y. Keys `gemv_{q8_0,q4_0,q4_1}_f16_M{m}_K{k}_N{n}` and
/// `gemv_swiglu_{f16,q4_1_f16}_M{m}_K{k}_N{n}` (N = outputs; the weight has 2N rows).
fn gemv_quantized(b: &mut Bench) -> Result<()> {
    use nano_infer::functional::LinearWeight;
    use nano_infer::tensor::quant_pack::QuantFormat;
    let dev = b.dev.clone();
    for f in [QuantFormat::Q8_0, QuantFormat::Q4_0, QuantFormat::Q4_1] {
        for (k, n) in [(4096, 11008), (11008, 4096), (4096, 4096)] {
            if !b.wants(&format!("gemv_{}_f16", f.name())) {
                continue;
            }
            // Quantized once on the host from a random f32 matrix (same values for every format).
            let w = Tensor::randn([n, k], 0.02, 8, DType::F32, &Device::Cpu)?;
            let q = nano_infer::QuantizedTensor::quantize(&w, f, &dev)?;
            let wbytes = q.size_in_bytes();
            let q = LinearWeight::Quantized(q);
            for m in [1usize, 2, 4, 8] {
                let x = Tensor::randn([m, k], 1.0, 9, DType::F16, &dev)?;
                let bytes = (wbytes + (m * k + m * n) * 2) as f64;
                b.tbps(
                    &format!("gemv_{}_f16_M{m}_K{k}_N{n}", f.name()),
                    bytes,
                    || F::linear_any(&x, &q).map(drop),
                )?;
            }
        }
    }
    let (k, n) = (4096, 11008);
    let swiglu =
        [1usize, 8].map(|m| ["", "q4_1_"].map(|q| format!("gemv_swiglu_{q}f16_M{m}_K{k}_N{n}")));
    if !b.wants_any(swiglu.as_flattened()) {
        return Ok(());
    }
    let w = Tensor::randn([2 * n, k], 0.02, 8, DType::F16, &dev)?;
    let dense = LinearWeight::Dense(w.clone());
    let w32 = w.to_device(&Device::Cpu)?.to_dtype(DType::F32)?;
    let q = nano_infer::QuantizedTensor::quantize(&w32, QuantFormat::Q4_1, &dev)?;
    let q_bytes = q.size_in_bytes();
    let q = LinearWeight::Quantized(q);
    for m in [1usize, 8] {
        let x = Tensor::randn([m, k], 1.0, 9, DType::F16, &dev)?;
        let io = ((m * k + m * n) * 2) as f64;
        b.tbps(
            &format!("gemv_swiglu_f16_M{m}_K{k}_N{n}"),
            (2 * n * k * 2) as f64 + io,
            || F::linear_swiglu(&x, &dense).map(drop),
        )?;
        b.tbps(
            &format!("gemv_swiglu_q4_1_f16_M{m}_K{k}_N{n}"),
            q_bytes as f64 + io,
            || F::linear_swiglu(&x, &q).map(drop),
        )?;
    }
    Ok(())
}

/// Decode attention: one token against a KV cache of S tokens (B1, 32 query heads, D128), bytes
/// = K + V read once (the anchor's formula); GQA with 8 KV heads reads a quarter as much.
/// Each call is timed alone, as the anchor times SDPA (host launch overhead included); the
/// `_x20` rows time 20 calls back to back (bytes x 20), which hides the host's share behind
/// the GPU's where a call's kernel outlasts its launch; the `_x20_graph` rows replay the same
/// 20 calls captured in one CUDA graph, as the model's decode step runs them (no host launch
/// between kernels: for the short calls, whose kernels take about as long as a launch costs
/// the host, the figure of the kernels themselves). At KV8 S4096 (17 MB) the cache stays in L2
/// between calls. It runs as the model's decode step calls it (`F::decode_attention`: the
/// length in device memory, the grid planned for the cache's capacity, here S).
fn decode_attention(b: &mut Bench) -> Result<()> {
    const BACK_TO_BACK: usize = 20;
    let dev = b.dev.clone();
    for dt in [DType::F16, DType::BF16] {
        let nm = if dt == DType::F16 {
            "float16"
        } else {
            "bfloat16"
        };
        for kv_heads in [32usize, 8] {
            for s in [1024usize, 4096, 16384] {
                let key = format!("decode_attn_{nm}_B1_H32_KV{kv_heads}_D128_S{s}");
                if !b.wants(&key) {
                    continue;
                }
                let q = Tensor::randn([1, 32, 128], 1.0, 1, dt, &dev)?;
                let k = Tensor::randn([s, kv_heads, 128], 1.0, 2, dt, &dev)?;
                let v = Tensor::randn([s, kv_heads, 128], 1.0, 3, dt, &dev)?;
                let bytes = 2.0 * (s * kv_heads * 128) as f64 * 2.0;
                let last = DeviceU32::new(&b.gpu, s as u32 - 1)?;
                let call = || F::decode_attention(&q, &k, &v, &last, 0.088).map(drop);
                b.tbps(&key, bytes, call)?;
                b.tbps(
                    &format!("{key}_x{BACK_TO_BACK}"),
                    bytes * BACK_TO_BACK as f64,
                    || (0..BACK_TO_BACK).try_for_each(|_| call()),
                )?;
                let graph_key = format!("{key}_x{BACK_TO_BACK}_graph");
                if b.wants(&graph_key) {
                    let (graph, ()) = b
                        .gpu
                        .capture(|| (0..BACK_TO_BACK).try_for_each(|_| call()))?;
                    b.tbps(&graph_key, bytes * BACK_TO_BACK as f64, || graph.launch())?;
                }
            }
        }
    }
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let dev = match nano_infer::cuda(0) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("gpu_kernels bench skipped: {e}");
            return Ok(());
        }
    };
    let gpu = dev.as_cuda().expect("cuda() returns a CUDA device").clone();
    let mut b = Bench {
        gpu: gpu.clone(),
        dev,
        out: BTreeMap::new(),
        only: arg("--only"),
    };
    eprintln!("device: {}", gpu.name());
    kernels(&mut b)?;
    gemm(&mut b)?;
    launch_overhead(&mut b)?;
    gemv(&mut b)?;
    flash_attention(&mut b)?;
    gemv_quantized(&mut b)?;
    decode_attention(&mut b)?;
    let mut json = String::from("{\n");
    json += &format!(" \"device\": \"{}\",\n", gpu.name());
    let body: Vec<String> = b
        .out
        .iter()
        .map(|(k, v)| format!(" \"{k}\": {v:.6}"))
        .collect();
    json += &body.join(",\n");
    json += "\n}\n";
    print!("{json}");
    if let Some(path) = arg("--json") {
        std::fs::write(&path, &json).map_err(|source| nano_infer::Error::Io { path, source })?;
    }
    Ok(())
}
