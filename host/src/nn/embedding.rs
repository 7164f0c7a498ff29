//! `Embedding`: token ids → rows of a table (a quantized table dequantizes just those rows).

use crate::error::{Error, Result};
use crate::functional::{self, LinearWeight};
use crate::tensor::{DType, Device, Tensor};

/// A token embedding table.
#[derive(Clone, Debug)]
pub struct Embedding {
    /// `[vocab, dim]`.
    table: LinearWeight,
}

impl Embedding {
    pub fn new(table: Tensor) -> Result<Embedding> {
        if table.rank() != 2 {
            return Err(Error::ShapeMismatch {
                op: "Embedding::new",
                expected: "[vocab, dim]".into(),
                got: table.shape().to_string(),
            });
        }
        Ok(Embedding {
            table: LinearWeight::Dense(table),
        })
    }
    /// Wraps either kind of table (a dense one must be `[vocab, dim]`).
    pub fn from_weight(table: LinearWeight) -> Result<Embedding> {
        match table {
            LinearWeight::Dense(t) => Embedding::new(t),
            q => Ok(Embedding { table: q }),
        }
    }
    pub fn table(&self) -> &LinearWeight {
        &self.table
    }
    /// `[ids.len(), dim]` (f32 on the CPU for a quantized table); an id past the vocabulary is
    /// an error.
    pub fn forward(&self, ids: &[u32]) -> Result<Tensor> {
        match &self.table {
            LinearWeight::Dense(t) => functional::embedding(ids, t),
            LinearWeight::Quantized(q) => Tensor::from_f32(
                q.dequantize_rows(ids)?,
                [ids.len(), q.dims()[1]],
                DType::F32,
                &Device::Cpu,
            ),
        }
    }
}
