//! [`QuantizedTensor`]: a 2-D weight kept in a ggml block format (Q8_0, Q4_0, Q4_1, Q4_K,
//! Q6_K), its bytes exactly as the GGUF file stores them and, for a mapped file, borrowed from
//! the map through [`SharedBytes`] (no copy: a model's resident memory is then the file's pages).
//!
//! Why a type of its own rather than a [`crate::DType`]: no elementwise op can run on blocks, so
//! the only consumers are products that read blocks ([`crate::functional::linear_quantized`])
//! and row gathers that dequantize on the fly ([`QuantizedTensor::dequantize_rows`]). A backend
//! that wants it elsewhere (a GPU) uploads [`QuantizedTensor::as_bytes`] with its format.

use std::sync::Arc;

use crate::loaders::StorageType;
use crate::loaders::quant::dequantize;
use crate::{Error, Result};

/// A byte range kept alive by a shared owner (a file's memory map, or a vector).
#[derive(Clone)]
pub struct SharedBytes {
    owner: Arc<dyn AsRef<[u8]> + Send + Sync>,
    start: usize,
    len: usize,
}

impl SharedBytes {
    /// Owns `bytes`.
    pub fn from_vec(bytes: Vec<u8>) -> SharedBytes {
        let len = bytes.len();
        SharedBytes {
            owner: Arc::new(bytes),
            start: 0,
            len,
        }
    }

    /// `owner[start..start + len]`, or an error when that range is not inside `owner`.
    pub fn slice(
        owner: Arc<dyn AsRef<[u8]> + Send + Sync>,
        start: usize,
        len: usize,
    ) -> Result<SharedBytes> {
        let total = (*owner).as_ref().len();
        if start.checked_add(len).is_none_or(|end| end > total) {
            return Err(Error::invalid(
                "SharedBytes::slice",
                format!("range {start}+{len} is outside the {total} bytes"),
            ));
        }
        Ok(SharedBytes { owner, start, len })
    }

    pub fn as_slice(&self) -> &[u8] {
        &(*self.owner).as_ref()[self.start..self.start + self.len]
    }
}

impl std::fmt::Debug for SharedBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SharedBytes({} bytes at {})", self.len, self.start)
    }
}

/// A `[rows, cols]` matrix in a ggml block format; each row is a whole number of blocks.
#[derive(Clone, Debug)]
pub struct QuantizedTensor {
    format: StorageType,
    rows: usize,
    cols: usize,
    bytes: SharedBytes,
}

impl QuantizedTensor {
    /// Wraps `bytes` holding `rows × cols` elements of `format`; errors unless `format` is a
    /// block format, a row is whole blocks and the byte count matches.
    pub fn new(format: StorageType, [rows, cols]: [usize; 2], bytes: SharedBytes) -> Result<Self> {
        let row_bytes = format.byte_len(cols).filter(|_| format.is_quantized());
        let expected = row_bytes.and_then(|r| r.checked_mul(rows));
        if expected != Some(bytes.as_slice().len()) {
            return Err(Error::invalid(
                "QuantizedTensor::new",
                format!(
                    "[{rows}, {cols}] {} needs rows of whole blocks of {} ({} bytes), got {} bytes",
                    format.name(),
                    format.block_size(),
                    expected.map_or("?".into(), |e| e.to_string()),
                    bytes.as_slice().len()
                ),
            ));
        }
        Ok(QuantizedTensor {
            format,
            rows,
            cols,
            bytes,
        })
    }

    pub fn format(&self) -> StorageType {
        self.format
    }

    /// `[rows, cols]`.
    pub fn dims(&self) -> [usize; 2] {
        [self.rows, self.cols]
    }

    /// The packed blocks, row after row.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.as_slice()
    }

    /// Bytes of one row.
    pub fn row_bytes(&self) -> usize {
        self.as_bytes().len() / self.rows.max(1)
    }

    /// Rows `ids` dequantized to f32, `[ids.len(), cols]` row-major (an embedding lookup).
    pub fn dequantize_rows(&self, ids: &[u32]) -> Result<Vec<f32>> {
        if let Some(&bad) = ids.iter().find(|&&id| id as usize >= self.rows) {
            return Err(Error::invalid(
                "embedding",
                format!("token id {bad} is outside the vocabulary of {}", self.rows),
            ));
        }
        let rb = self.row_bytes();
        let mut out = vec![0.0; ids.len() * self.cols];
        for (&id, row) in ids.iter().zip(out.chunks_exact_mut(self.cols.max(1))) {
            let bytes = &self.as_bytes()[id as usize * rb..][..rb];
            dequantize(self.format, bytes, self.cols, row)?;
        }
        Ok(out)
    }

    /// The whole matrix dequantized to f32, row-major.
    pub fn to_f32(&self) -> Result<Vec<f32>> {
        let mut out = vec![0.0; self.rows * self.cols];
        dequantize(self.format, self.as_bytes(), out.len(), &mut out)?;
        Ok(out)
    }
}
