//! ggml block formats and their scalar dequantization: the reference every faster path (SIMD,
//! CUDA) is tested against.
//!
//! Layouts, little-endian, one block after another along a row (a row is a whole number of
//! blocks):
//!
//! | format | elems | bytes | layout                                                      | value                       |
//! |--------|-------|-------|-------------------------------------------------------------|-----------------------------|
//! | Q8_0   | 32    | 34    | `d: f16, qs: [i8; 32]`                                      | `d · qs[j]`                 |
//! | Q4_0   | 32    | 18    | `d: f16, qs: [u8; 16]`; element `j` in the low nibble of `qs[j]`, `j + 16` in the high | `d · (q − 8)` |
//! | Q4_1   | 32    | 20    | `d: f16, m: f16, qs: [u8; 16]` (nibbles as Q4_0)            | `d · q + m`                 |
//! | Q4_K   | 256   | 144   | `d: f16, dmin: f16, scales: [u8; 12], qs: [u8; 128]`        | `d·sc · q − dmin·mn` per 32 |
//! | Q6_K   | 256   | 210   | `ql: [u8; 128], qh: [u8; 64], scales: [i8; 16], d: f16`     | `d·sc · (q − 32)` per 16    |
//!
//! The arithmetic follows ggml's `dequantize_row_*` in f32, operation for operation.
//!
//! Tested by `cargo test -p nano-infer-host --lib loaders::quant` and, against the `gguf` Python
//! package, by `cargo test -p nano-infer-host --test loaders`.

use half::{bf16, f16};

use super::StorageType;
use crate::{Error, Result};

/// Elements per Q8_0 block.
pub const Q8_0_BLOCK_ELEMS: usize = 32;
/// Bytes per Q8_0 block: f16 scale + 32 × i8.
pub const Q8_0_BLOCK_BYTES: usize = 2 + Q8_0_BLOCK_ELEMS;
/// Elements per Q4_0 block.
pub const Q4_0_BLOCK_ELEMS: usize = 32;
/// Bytes per Q4_0 block: f16 scale + 16 bytes of nibbles.
pub const Q4_0_BLOCK_BYTES: usize = 2 + Q4_0_BLOCK_ELEMS / 2;
/// Elements per Q4_1 block.
pub const Q4_1_BLOCK_ELEMS: usize = 32;
/// Bytes per Q4_1 block: f16 scale + f16 min + 16 bytes of nibbles.
pub const Q4_1_BLOCK_BYTES: usize = 4 + Q4_1_BLOCK_ELEMS / 2;
/// Elements per k-quant super-block.
pub const QK_K: usize = 256;
/// Bytes of packed 6-bit scales and mins in a Q4_K block.
pub const Q4_K_SCALE_BYTES: usize = 12;
/// Bytes per Q4_K block: f16 d + f16 dmin + scales + 128 bytes of nibbles.
pub const Q4_K_BLOCK_BYTES: usize = 4 + Q4_K_SCALE_BYTES + QK_K / 2;
/// Bytes per Q6_K block: low nibbles + high 2-bit pairs + 16 i8 scales + f16 d.
pub const Q6_K_BLOCK_BYTES: usize = QK_K / 2 + QK_K / 4 + QK_K / 16 + 2;

/// Dequantizes (or converts) `n` elements stored as `dtype` in `bytes` into `out`.
///
/// `bytes` must hold exactly `n` elements (`dtype.byte_len(n)`) and `out` must have length `n`.
pub fn dequantize(dtype: StorageType, bytes: &[u8], n: usize, out: &mut [f32]) -> Result<()> {
    let expected = dtype.byte_len(n).ok_or_else(|| {
        Error::invalid(
            "dequantize",
            format!(
                "{n} elements are not a whole number of {} blocks of {}",
                dtype.name(),
                dtype.block_size()
            ),
        )
    })?;
    if bytes.len() != expected {
        return Err(Error::invalid(
            "dequantize",
            format!(
                "{n} {} elements take {expected} bytes, got {}",
                dtype.name(),
                bytes.len()
            ),
        ));
    }
    if out.len() != n {
        return Err(Error::invalid(
            "dequantize",
            format!("output holds {} elements, expected {n}", out.len()),
        ));
    }
    let blocks = bytes.chunks_exact(dtype.block_bytes());
    let outs = out.chunks_exact_mut(dtype.block_size());
    match dtype {
        StorageType::F32 => blocks
            .zip(outs)
            .for_each(|(b, y)| y[0] = f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        StorageType::F16 => blocks
            .zip(outs)
            .for_each(|(b, y)| y[0] = f16::from_le_bytes([b[0], b[1]]).to_f32()),
        StorageType::BF16 => blocks
            .zip(outs)
            .for_each(|(b, y)| y[0] = bf16::from_le_bytes([b[0], b[1]]).to_f32()),
        StorageType::Q8_0 => blocks.zip(outs).for_each(|(b, y)| dequant_q8_0(b, y)),
        StorageType::Q4_0 => blocks.zip(outs).for_each(|(b, y)| dequant_q4_0(b, y)),
        StorageType::Q4_1 => blocks.zip(outs).for_each(|(b, y)| dequant_q4_1(b, y)),
        StorageType::Q4_K => blocks.zip(outs).for_each(|(b, y)| dequant_q4_k(b, y)),
        StorageType::Q6_K => blocks.zip(outs).for_each(|(b, y)| dequant_q6_k(b, y)),
    }
    Ok(())
}

/// Reads the little-endian f16 at `b[at..at + 2]` as f32.
fn f16_at(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

/// One Q8_0 block (34 bytes) → 32 values.
fn dequant_q8_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    for (y, &q) in y.iter_mut().zip(&b[2..Q8_0_BLOCK_BYTES]) {
        *y = (q as i8) as f32 * d;
    }
}

/// One Q4_0 block (18 bytes) → 32 values.
fn dequant_q4_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let (lo, hi) = y.split_at_mut(Q4_0_BLOCK_ELEMS / 2);
    for (j, &q) in b[2..Q4_0_BLOCK_BYTES].iter().enumerate() {
        lo[j] = ((q & 0x0F) as i32 - 8) as f32 * d;
        hi[j] = ((q >> 4) as i32 - 8) as f32 * d;
    }
}

/// One Q4_1 block (20 bytes) → 32 values.
fn dequant_q4_1(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let m = f16_at(b, 2);
    let (lo, hi) = y.split_at_mut(Q4_1_BLOCK_ELEMS / 2);
    for (j, &q) in b[4..Q4_1_BLOCK_BYTES].iter().enumerate() {
        lo[j] = (q & 0x0F) as f32 * d + m;
        hi[j] = (q >> 4) as f32 * d + m;
    }
}

/// The 6-bit scale and min of sub-block `j` (0..8) from a Q4_K block's 12 packed bytes: sub-blocks
/// 0–3 use the low 6 bits of bytes `j` and `j + 4`; 4–7 take their low 4 bits from byte `j + 4`
/// and their top 2 bits from the spare top bits of bytes `j − 4` and `j`.
fn q4_k_scale_min(j: usize, s: &[u8]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        (
            (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4),
            (s[j + 4] >> 4) | ((s[j] >> 6) << 4),
        )
    }
}

/// One Q4_K super-block (144 bytes) → 256 values. Each 64 values share 32 bytes of `qs`: the
/// low nibbles are the first sub-block of 32, the high nibbles the second.
fn dequant_q4_k(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let dmin = f16_at(b, 2);
    let scales = &b[4..4 + Q4_K_SCALE_BYTES];
    let qs = &b[4 + Q4_K_SCALE_BYTES..Q4_K_BLOCK_BYTES];
    for (chunk, (q, y)) in qs.chunks_exact(32).zip(y.chunks_exact_mut(64)).enumerate() {
        let (sc1, m1) = q4_k_scale_min(2 * chunk, scales);
        let (sc2, m2) = q4_k_scale_min(2 * chunk + 1, scales);
        let (d1, min1) = (d * sc1 as f32, dmin * m1 as f32);
        let (d2, min2) = (d * sc2 as f32, dmin * m2 as f32);
        let (lo, hi) = y.split_at_mut(32);
        for l in 0..32 {
            lo[l] = d1 * (q[l] & 0x0F) as f32 - min1;
            hi[l] = d2 * (q[l] >> 4) as f32 - min2;
        }
    }
}

/// One Q6_K super-block (210 bytes) → 256 values. Each half of 128 values uses 64 bytes of `ql`
/// (low 4 bits), 32 of `qh` (2 high bits for four values each) and 8 scales (one per 16).
fn dequant_q6_k(b: &[u8], y: &mut [f32]) {
    let ql_all = &b[..QK_K / 2];
    let qh_all = &b[QK_K / 2..QK_K / 2 + QK_K / 4];
    let sc_all = &b[QK_K / 2 + QK_K / 4..QK_K / 2 + QK_K / 4 + QK_K / 16];
    let d = f16_at(b, Q6_K_BLOCK_BYTES - 2);
    for half in 0..2 {
        let ql = &ql_all[64 * half..64 * half + 64];
        let qh = &qh_all[32 * half..32 * half + 32];
        let sc = &sc_all[8 * half..8 * half + 8];
        let y = &mut y[128 * half..128 * half + 128];
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 0x0F) | ((qh[l] & 3) << 4)) as i32 - 32;
            let q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
            let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
            let scale = |k: usize| d * (sc[is + k] as i8) as f32;
            y[l] = scale(0) * q1 as f32;
            y[l + 32] = scale(2) * q2 as f32;
            y[l + 64] = scale(4) * q3 as f32;
            y[l + 96] = scale(6) * q4 as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f16_bytes(v: f32) -> [u8; 2] {
        f16::from_f32(v).to_le_bytes()
    }

    #[test]
    fn block_sizes_match_ggml() {
        assert_eq!(Q8_0_BLOCK_BYTES, 34);
        assert_eq!(Q4_0_BLOCK_BYTES, 18);
        assert_eq!(Q4_1_BLOCK_BYTES, 20);
        assert_eq!(Q4_K_BLOCK_BYTES, 144);
        assert_eq!(Q6_K_BLOCK_BYTES, 210);
        assert_eq!(StorageType::Q4_1.byte_len(64), Some(40));
        assert_eq!(StorageType::Q4_1.byte_len(33), None);
        assert_eq!(StorageType::F32.byte_len(usize::MAX), None);
    }

    #[test]
    fn q8_0_block() {
        let mut b = f16_bytes(0.5).to_vec();
        b.extend((0..32).map(|j| (j as i8 - 16) as u8));
        let mut y = [0.0; 32];
        dequantize(StorageType::Q8_0, &b, 32, &mut y).unwrap();
        for (j, &v) in y.iter().enumerate() {
            assert_eq!(v, (j as f32 - 16.0) * 0.5, "element {j}");
        }
    }

    #[test]
    fn q4_0_and_q4_1_nibble_order() {
        // qs[j] holds element j (low nibble) and element j + 16 (high nibble).
        let qs: Vec<u8> = (0..16u8).map(|j| j | ((15 - j) << 4)).collect();
        let mut b = f16_bytes(0.25).to_vec();
        b.extend(&qs);
        let mut y = [0.0; 32];
        dequantize(StorageType::Q4_0, &b, 32, &mut y).unwrap();
        for j in 0..16 {
            assert_eq!(y[j], (j as f32 - 8.0) * 0.25);
            assert_eq!(y[j + 16], (7.0 - j as f32) * 0.25);
        }
        let mut b = f16_bytes(0.5).to_vec();
        b.extend(f16_bytes(-1.0));
        b.extend(&qs);
        dequantize(StorageType::Q4_1, &b, 32, &mut y).unwrap();
        for j in 0..16 {
            assert_eq!(y[j], j as f32 * 0.5 - 1.0);
            assert_eq!(y[j + 16], (15 - j) as f32 * 0.5 - 1.0);
        }
    }

    #[test]
    fn q4_k_scale_unpacking() {
        // Sub-blocks 0..4: plain 6-bit values; 4..8 borrow the top bits of bytes 0..8.
        let mut s = [0u8; 12];
        s[0] = 0b11_000001; // sc0 = 1, top bits 3 → sc4 high
        s[4] = 0b10_000010; // m0 = 2, top bits 2 → m4 high
        s[8] = 0x5A; // sc4 low = 0xA, m4 low = 0x5
        assert_eq!(q4_k_scale_min(0, &s), (1, 2));
        assert_eq!(q4_k_scale_min(4, &s), (0xA | (3 << 4), 0x5 | (2 << 4)));
    }

    #[test]
    fn q6_k_constant_block() {
        // All quants 33 (→ 1 after the −32 offset), scales i, d = 0.5: sub-block i of 16 is i/2,
        // with ggml's interleaving of scales (value index v uses scale 8·half + v%128/16).
        let mut b = vec![0u8; Q6_K_BLOCK_BYTES];
        b[..128].fill(0x11); // low nibbles 1
        b[128..192].fill(0b10_10_10_10); // high bits 2 → q = 1 | 2 << 4 = 33
        for i in 0..16 {
            b[192 + i] = i as u8;
        }
        b[208..].copy_from_slice(&f16_bytes(0.5));
        let mut y = vec![0.0; 256];
        dequantize(StorageType::Q6_K, &b, 256, &mut y).unwrap();
        for (v, &x) in y.iter().enumerate() {
            let scale = 8 * (v / 128) + (v % 128) / 16;
            assert_eq!(x, 0.5 * scale as f32, "element {v}");
        }
    }

    #[test]
    fn length_mismatches_are_errors() {
        let mut y = [0.0; 32];
        assert!(dequantize(StorageType::Q8_0, &[0; 33], 32, &mut y).is_err());
        assert!(dequantize(StorageType::Q8_0, &[0; 34], 31, &mut y[..31]).is_err());
        assert!(dequantize(StorageType::F32, &[0; 8], 2, &mut y).is_err());
    }
}
