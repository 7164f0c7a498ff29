//! Host side of the GPU's quantized weights: ggml blocks (Q8_0, Q4_0, Q4_1) repacked into the
//! load-friendly layout of `gpu-kernels/src/weights.rs` (quants of a row contiguous, scales in
//! their own section), a reference quantizer (ggml's `quantize_row_*_ref`, for random weights
//! and tests), and the mapping between its formats and the loader's storage types.

use nano_infer_kernels::quantize::quantize_block;
pub use nano_infer_kernels::weights::{QBLOCK, QuantFormat, QuantLayout};

use crate::loaders::StorageType;
use crate::{Error, Result};

/// The loader's storage type of a format.
pub fn storage_type(f: QuantFormat) -> StorageType {
    match f {
        QuantFormat::Q8_0 => StorageType::Q8_0,
        QuantFormat::Q4_0 => StorageType::Q4_0,
        QuantFormat::Q4_1 => StorageType::Q4_1,
    }
}

/// The format of a loader storage type, if the GPU keeps it quantized.
pub fn quant_format(s: StorageType) -> Option<QuantFormat> {
    match s {
        StorageType::Q8_0 => Some(QuantFormat::Q8_0),
        StorageType::Q4_0 => Some(QuantFormat::Q4_0),
        StorageType::Q4_1 => Some(QuantFormat::Q4_1),
        _ => None,
    }
}

/// Bytes of one ggml block (scale(s) then quants).
fn ggml_block_bytes(f: QuantFormat) -> usize {
    f.scale_bytes() + f.quant_bytes()
}

/// Errors unless rows of `k` elements are whole blocks (and not empty).
pub fn check_dims(op: &'static str, f: QuantFormat, k: usize) -> Result<()> {
    if !k.is_multiple_of(QBLOCK) || k == 0 {
        return Err(Error::invalid(
            op,
            format!("rows of {k} elements are not whole {} blocks", f.name()),
        ));
    }
    Ok(())
}

fn check_shape(op: &'static str, f: QuantFormat, len: usize, n: usize, k: usize) -> Result<()> {
    check_dims(op, f, k)?;
    let want = n * (k / QBLOCK) * ggml_block_bytes(f);
    if len != want {
        return Err(Error::invalid(
            op,
            format!("[{n}, {k}] {} takes {want} bytes, got {len}", f.name()),
        ));
    }
    Ok(())
}

/// Repacks a `[n, k]` matrix of ggml blocks into the GPU layout ([`QuantLayout`]).
pub fn repack(f: QuantFormat, ggml: &[u8], n: usize, k: usize) -> Result<Vec<u8>> {
    check_shape("repack", f, ggml.len(), n, k)?;
    let l = QuantLayout { format: f, n, k };
    let (sb, qb) = (f.scale_bytes(), f.quant_bytes());
    let mut out = vec![0u8; l.total_bytes()];
    for (i, blk) in ggml.chunks_exact(sb + qb).enumerate() {
        let (row, b) = (i / (k / QBLOCK), i % (k / QBLOCK));
        let q = row * l.row_bytes() + b * qb;
        out[q..q + qb].copy_from_slice(&blk[sb..]);
        let s = l.scale_at(row, b);
        out[s..s + sb].copy_from_slice(&blk[..sb]);
    }
    Ok(out)
}

/// Quantizes `[n, k]` f32 values to ggml blocks, as ggml's reference quantizers do
/// (`quantize_row_q8_0_ref`, `_q4_0_ref`, `_q4_1_ref`), with the kernels' [`quantize_block`]
/// (so the GPU's `quantize_*` kernels give the same blocks, repacked).
pub fn quantize(f: QuantFormat, values: &[f32], n: usize, k: usize) -> Result<Vec<u8>> {
    let blocks = n * k / QBLOCK;
    check_shape("quantize", f, blocks * ggml_block_bytes(f), n, k)?;
    if values.len() != n * k {
        return Err(Error::invalid(
            "quantize",
            format!("{} values for a [{n}, {k}] matrix", values.len()),
        ));
    }
    let mut out = Vec::with_capacity(blocks * ggml_block_bytes(f));
    for x in values.chunks_exact(QBLOCK) {
        let x: &[f32; QBLOCK] = x.try_into().expect("chunks of QBLOCK");
        let blk = quantize_block(f, x);
        out.extend(&blk.scale.to_le_bytes()[..f.scale_bytes()]);
        out.extend(&blk.quants[..f.quant_bytes()]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loaders::quant::dequantize;

    #[test]
    fn repack_moves_quants_and_scales_apart() {
        for f in [QuantFormat::Q8_0, QuantFormat::Q4_0, QuantFormat::Q4_1] {
            let (n, k) = (3, 64);
            let values: Vec<f32> = (0..n * k).map(|i| ((i * 37) % 23) as f32 - 11.0).collect();
            let g = quantize(f, &values, n, k).unwrap();
            let mut deq = vec![0.0; n * k];
            dequantize(storage_type(f), &g, n * k, &mut deq).unwrap();
            // Values in [-11, 11]: Q4_0's step is amax / 8 and the +amax end clamps to 7 steps,
            // so its error reaches one step (1.375); the others stay within half a step.
            for (a, b) in deq.iter().zip(&values) {
                assert!((a - b).abs() <= 11.0 / 8.0, "{f:?}: {a} vs {b}");
            }
            let p = repack(f, &g, n, k).unwrap();
            let l = QuantLayout { format: f, n, k };
            assert_eq!(p.len(), l.total_bytes());
            let bb = f.scale_bytes() + f.quant_bytes();
            // Row 2, block 1: quants and scale land where the layout says.
            let blk = &g[(2 * 2 + 1) * bb..][..bb];
            let q = 2 * l.row_bytes() + f.quant_bytes();
            assert_eq!(&p[q..q + f.quant_bytes()], &blk[f.scale_bytes()..]);
            assert_eq!(
                &p[l.scale_at(2, 1)..][..f.scale_bytes()],
                &blk[..f.scale_bytes()]
            );
        }
        assert!(repack(QuantFormat::Q8_0, &[0; 34], 1, 31).is_err());
    }
}
