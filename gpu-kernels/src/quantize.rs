//! Conversions between dense weights and the block formats the GEMV reads (Q8_0, Q4_0, Q4_1),
//! on the device that holds them.
//!
//! Why on the GPU: a benchmark model of 7-8B parameters is made with random f16 weights on the
//! GPU (`init.rs`); quantizing it there takes milliseconds, where a round trip through the CPU
//! quantizer takes minutes. [`quantize_block`] is ggml's reference quantizer
//! (`quantize_row_{q8_0,q4_0,q4_1}_ref`) for one block of 32 and is the only copy of that
//! arithmetic: the host's `quant_pack::quantize` (ggml byte order, for files and the CPU) calls
//! it too, so CPU and GPU blocks agree bit for bit (every step is one IEEE-rounded f32 op, the
//! same on both).
//!
//! The way back, [`dequantize`], expands a quantized weight for a prefill: cuBLAS on the
//! dequantized f16 matrix beats re-reading the blocks in the GEMV 8 rows at a time.
//!
//! Variants: `quantize_{q8_0,q4_0,q4_1}_{f32,f16,bf16}` write the repacked layout of
//! [`crate::weights::QuantLayout`] (grid-stride over `n · k / 32` items, one block of 32
//! weights each); `dequantize_{q8_0,q4_0,q4_1}_{f32,f16,bf16}` read it (grid-stride over the
//! 16-byte chunks of quants, [`crate::weights::WeightFormat`]); both launched with
//! [`crate::launch_shape::grid_stride`].
//! Test: `cargo test --release --test gpu_vs_cpu -- quantize` (`emu::` on CPU CI, `cuda::` with
//! `--include-ignored`).

use crate::elem::{BF16, CHUNK, Elem, F16};
use crate::kernel_entries;
use crate::primitives::{block_dim_x, block_idx_x, f32_to_f16, grid_dim_x, thread_idx_x};
use crate::weights::{
    Q4_0, Q4_1, Q8_0, QBLOCK, QuantFormat, QuantLayout, QuantizedFormat, WeightFormat,
};

/// One quantized block: its quants as ggml stores them (Q8_0: 32 signed bytes; Q4: 16 bytes,
/// byte `j` holding element `j` in the low nibble and `j + 16` in the high one) and its scale
/// entry as f16 bits (`d`; Q4_1: `d | m << 16`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuantBlock {
    pub quants: [u8; QBLOCK],
    pub scale: u32,
}

/// `v` rounded to the nearest integer, halves away from zero (C's `roundf`), for `|v| < 2^31`:
/// the fraction `v - trunc(v)` is exact in f32. Test: `host/tests/emu/softfloat.rs`.
#[inline(always)]
pub fn round_half_away(v: f32) -> i32 {
    let t = v as i32;
    let frac = v - t as f32;
    if frac >= 0.5 {
        t + 1
    } else if frac <= -0.5 {
        t - 1
    } else {
        t
    }
}

/// `1 / d`, or 0 for an all-zero block.
#[inline(always)]
fn inverse(d: f32) -> f32 {
    if d != 0.0 { 1.0 / d } else { 0.0 }
}

/// Packs 4-bit values `q(x[j])` two to a byte, ggml's nibble order.
#[inline(always)]
fn pack_nibbles(x: &[f32; QBLOCK], q: impl Fn(f32) -> u8) -> [u8; QBLOCK] {
    let mut out = [0u8; QBLOCK];
    for j in 0..QBLOCK / 2 {
        out[j] = q(x[j]) | (q(x[j + QBLOCK / 2]) << 4);
    }
    out
}

/// ggml's reference quantization of one block of 32 values.
#[inline(always)]
pub fn quantize_block(format: QuantFormat, x: &[f32; QBLOCK]) -> QuantBlock {
    match format {
        QuantFormat::Q8_0 => {
            let mut amax = 0.0f32;
            for v in x {
                amax = amax.max(v.abs());
            }
            let d = amax / 127.0;
            let id = inverse(d);
            let mut quants = [0u8; QBLOCK];
            for j in 0..QBLOCK {
                quants[j] = round_half_away(x[j] * id).clamp(-128, 127) as i8 as u8;
            }
            QuantBlock {
                quants,
                scale: f32_to_f16(d) as u32,
            }
        }
        QuantFormat::Q4_0 => {
            // The value of largest magnitude maps to -8.
            let mut max = 0.0f32;
            for &v in x {
                if v.abs() > max.abs() {
                    max = v;
                }
            }
            let d = max / -8.0;
            let id = inverse(d);
            QuantBlock {
                quants: pack_nibbles(x, |v| ((v * id + 8.5) as i32).min(15) as u8),
                scale: f32_to_f16(d) as u32,
            }
        }
        QuantFormat::Q4_1 => {
            let (mut min, mut max) = (f32::MAX, f32::MIN);
            for &v in x {
                min = min.min(v);
                max = max.max(v);
            }
            let d = (max - min) / 15.0;
            let id = inverse(d);
            QuantBlock {
                quants: pack_nibbles(x, |v| (((v - min) * id + 0.5) as i32).min(15) as u8),
                scale: f32_to_f16(d) as u32 | (f32_to_f16(min) as u32) << 16,
            }
        }
    }
}

/// Quantizes the `[n, k]` matrix `x` into the repacked layout at `out`.
///
/// # Safety
/// `x` holds `n · k` elements, 16-byte aligned; `k` is a multiple of [`QBLOCK`]; `out` holds
/// `QuantLayout { format: Q::FORMAT, n, k }.total_bytes()` bytes, 16-byte aligned.
#[inline(always)]
pub unsafe fn quantize<Q: QuantizedFormat, E: Elem>(x: *const E, out: *mut u8, n: u32, k: u32) {
    let (n, k) = (n as usize, k as usize);
    let l = QuantLayout {
        format: Q::FORMAT,
        n,
        k,
    };
    let per_row = k / QBLOCK;
    let bd = block_dim_x() as usize;
    let mut i = block_idx_x() as usize * bd + thread_idx_x() as usize;
    while i < n * per_row {
        let (row, b) = (i / per_row, i % per_row);
        let mut v = [0.0f32; QBLOCK];
        for c in 0..QBLOCK / CHUNK {
            // SAFETY: element row·k + 32·b + 8·c + 7 < n·k; chunks are 16-byte aligned since k
            // and the offsets are multiples of 8 elements.
            let chunk = unsafe { E::load_chunk(x, row * k + b * QBLOCK + c * CHUNK) };
            v[c * CHUNK..(c + 1) * CHUNK].copy_from_slice(&chunk);
        }
        let blk = quantize_block(Q::FORMAT, &v);
        let qb = Q::FORMAT.quant_bytes();
        // SAFETY: the block's quants and scale entry lie inside the layout's buffer; quant runs
        // start at multiples of 16 bytes (u32-aligned) and scale entries at multiples of their
        // size.
        unsafe {
            let q = out.add(row * l.row_bytes() + b * qb) as *mut u32;
            for w in 0..qb / 4 {
                let bytes = [
                    blk.quants[4 * w],
                    blk.quants[4 * w + 1],
                    blk.quants[4 * w + 2],
                    blk.quants[4 * w + 3],
                ];
                *q.add(w) = u32::from_le_bytes(bytes);
            }
            let s = out.add(l.scale_at(row, b));
            if Q::FORMAT.scale_bytes() == 4 {
                *(s as *mut u32) = blk.scale;
            } else {
                *(s as *mut u16) = blk.scale as u16;
            }
        }
        i += grid_dim_x() as usize * bd;
    }
}

kernel_entries! {
    quantize(x: *const B, out: *mut u8, n: u32, k: u32);
    quantize_q8_0_f32 = Q8_0 => f32,
    quantize_q8_0_f16 = Q8_0 => F16,
    quantize_q8_0_bf16 = Q8_0 => BF16,
    quantize_q4_0_f32 = Q4_0 => f32,
    quantize_q4_0_f16 = Q4_0 => F16,
    quantize_q4_0_bf16 = Q4_0 => BF16,
    quantize_q4_1_f32 = Q4_1 => f32,
    quantize_q4_1_f16 = Q4_1 => F16,
    quantize_q4_1_bf16 = Q4_1 => BF16,
}

/// Expands the repacked `[n, k]` matrix at `w` into `out`: each weight as the GEMV sees it
/// (`d·q`, `d·(q − 8)` or `d·q + m` in f32), rounded to `E`.
///
/// # Safety
/// `w` holds `QuantLayout { format: Q::FORMAT, n, k }.total_bytes()` bytes and `out` `n · k`
/// elements, both 16-byte aligned; `k` is a multiple of [`QBLOCK`].
#[inline(always)]
pub unsafe fn dequantize<Q: QuantizedFormat + WeightFormat, E: Elem>(
    w: *const u8,
    out: *mut E,
    n: u32,
    k: u32,
) {
    let (n, k) = (n as usize, k as usize);
    let chunk_elems = Q::PIECES * CHUNK;
    let per_row = k / chunk_elems;
    let bd = block_dim_x() as usize;
    let mut i = block_idx_x() as usize * bd + thread_idx_x() as usize;
    while i < n * per_row {
        let (row, c) = (i / per_row, i % per_row);
        // SAFETY: row < n and chunk c is inside the row (k is whole blocks, so whole chunks);
        // the buffer is 16-byte aligned, as `load` needs.
        let raw = unsafe { Q::load(w, n, k, row, c) };
        for p in 0..Q::PIECES {
            // SAFETY: elements row·k + c·chunk_elems + 8p .. + 8 lie inside the row; offsets
            // are multiples of 8 elements, so the chunk is 16-byte aligned.
            unsafe {
                E::store_chunk(
                    out,
                    row * k + c * chunk_elems + p * CHUNK,
                    Q::piece(&raw, p),
                )
            };
        }
        i += grid_dim_x() as usize * bd;
    }
}

kernel_entries! {
    dequantize(w: *const u8, out: *mut B, n: u32, k: u32);
    dequantize_q8_0_f32 = Q8_0 => f32,
    dequantize_q8_0_f16 = Q8_0 => F16,
    dequantize_q8_0_bf16 = Q8_0 => BF16,
    dequantize_q4_0_f32 = Q4_0 => f32,
    dequantize_q4_0_f16 = Q4_0 => F16,
    dequantize_q4_0_bf16 = Q4_0 => BF16,
    dequantize_q4_1_f32 = Q4_1 => f32,
    dequantize_q4_1_f16 = Q4_1 => F16,
    dequantize_q4_1_bf16 = Q4_1 => BF16,
}
