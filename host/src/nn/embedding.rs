//! `Embedding`: token ids → rows of a table.

use crate::error::{Error, Result};
use crate::functional;
use crate::tensor::Tensor;

/// A token embedding table.
#[derive(Clone, Debug)]
pub struct Embedding {
    /// `[vocab, dim]`.
    table: Tensor,
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
        Ok(Embedding { table })
    }
    pub fn table(&self) -> &Tensor {
        &self.table
    }
    /// `[ids.len(), dim]`; an id past the vocabulary is an error.
    pub fn forward(&self, ids: &[u32]) -> Result<Tensor> {
        functional::embedding(ids, &self.table)
    }
}
