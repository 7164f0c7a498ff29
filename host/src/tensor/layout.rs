//! Shapes, strides and views. A [`Layout`] says where each logical element lives in a flat
//! buffer, so reshape/permute/transpose/narrow change the layout and never copy data.

use crate::error::{Error, Result};

/// A tensor's dimensions, outermost first.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Shape(pub Vec<usize>);

impl Shape {
    pub fn dims(&self) -> &[usize] {
        &self.0
    }
    pub fn rank(&self) -> usize {
        self.0.len()
    }
    /// Number of elements (1 for a scalar).
    pub fn elem_count(&self) -> usize {
        self.0.iter().product()
    }
    /// Row-major strides of a contiguous tensor of this shape.
    pub fn contiguous_strides(&self) -> Vec<usize> {
        let mut strides = vec![1; self.0.len()];
        for i in (0..self.0.len().saturating_sub(1)).rev() {
            strides[i] = strides[i + 1] * self.0[i + 1];
        }
        strides
    }
    /// The last dimension (row length), or 1 for a scalar.
    pub fn last_dim(&self) -> usize {
        self.0.last().copied().unwrap_or(1)
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl From<&[usize]> for Shape {
    fn from(d: &[usize]) -> Self {
        Shape(d.to_vec())
    }
}
impl<const N: usize> From<[usize; N]> for Shape {
    fn from(d: [usize; N]) -> Self {
        Shape(d.to_vec())
    }
}
impl From<Vec<usize>> for Shape {
    fn from(d: Vec<usize>) -> Self {
        Shape(d)
    }
}

/// Shape + strides (in elements) + offset (in elements) into the storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    shape: Shape,
    strides: Vec<usize>,
    offset: usize,
}

impl Layout {
    /// A contiguous row-major layout starting at element 0.
    pub fn contiguous(shape: Shape) -> Self {
        let strides = shape.contiguous_strides();
        Layout {
            shape,
            strides,
            offset: 0,
        }
    }
    pub fn shape(&self) -> &Shape {
        &self.shape
    }
    pub fn strides(&self) -> &[usize] {
        &self.strides
    }
    pub fn offset(&self) -> usize {
        self.offset
    }
    /// True when the elements are row-major and dense (the offset may be non-zero).
    pub fn is_contiguous(&self) -> bool {
        let mut expected = 1;
        for (&d, &s) in self.shape.0.iter().zip(&self.strides).rev() {
            if d != 1 && s != expected {
                return false;
            }
            expected *= d;
        }
        true
    }

    /// Same elements, new shape; only for contiguous layouts.
    pub fn reshape(&self, shape: Shape) -> Result<Layout> {
        if shape.elem_count() != self.shape.elem_count() {
            return Err(Error::InvalidView {
                op: "reshape",
                reason: format!("cannot reshape {} into {}", self.shape, shape),
            });
        }
        if !self.is_contiguous() {
            return Err(Error::InvalidView {
                op: "reshape",
                reason: format!(
                    "layout of shape {} is not contiguous: call contiguous() first",
                    self.shape
                ),
            });
        }
        let strides = shape.contiguous_strides();
        Ok(Layout {
            shape,
            strides,
            offset: self.offset,
        })
    }

    /// Reorders the dimensions: `perm[i]` is the old dimension that becomes dimension `i`.
    pub fn permute(&self, perm: &[usize]) -> Result<Layout> {
        let rank = self.shape.rank();
        let mut seen = vec![false; rank];
        if perm.len() != rank
            || perm
                .iter()
                .any(|&p| p >= rank || std::mem::replace(&mut seen[p], true))
        {
            return Err(Error::InvalidView {
                op: "permute",
                reason: format!("{perm:?} is not a permutation of {rank} dimensions"),
            });
        }
        Ok(Layout {
            shape: Shape(perm.iter().map(|&p| self.shape.0[p]).collect()),
            strides: perm.iter().map(|&p| self.strides[p]).collect(),
            offset: self.offset,
        })
    }

    /// Keeps `len` entries of dimension `dim` starting at `start`.
    pub fn narrow(&self, dim: usize, start: usize, len: usize) -> Result<Layout> {
        let size = *self.shape.0.get(dim).ok_or_else(|| Error::InvalidView {
            op: "narrow",
            reason: format!("dimension {dim} out of range for shape {}", self.shape),
        })?;
        if start.checked_add(len).is_none_or(|end| end > size) {
            return Err(Error::InvalidView {
                op: "narrow",
                reason: format!(
                    "range {start}..{start}+{len} exceeds dimension {dim} of size {size}"
                ),
            });
        }
        let mut shape = self.shape.clone();
        shape.0[dim] = len;
        Ok(Layout {
            shape,
            strides: self.strides.clone(),
            offset: self.offset + start * self.strides[dim],
        })
    }

    /// Storage index of every logical element, in row-major logical order.
    pub fn storage_indices(&self) -> impl Iterator<Item = usize> + '_ {
        let n = self.shape.elem_count();
        let rank = self.shape.rank();
        let mut index = vec![0usize; rank];
        let mut pos = self.offset;
        (0..n).map(move |_| {
            let here = pos;
            for d in (0..rank).rev() {
                index[d] += 1;
                pos += self.strides[d];
                if index[d] < self.shape.0[d] {
                    break;
                }
                pos -= self.strides[d] * self.shape.0[d];
                index[d] = 0;
            }
            here
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transposed_indices_walk_columns() {
        let l = Layout::contiguous(Shape::from([2, 3]))
            .permute(&[1, 0])
            .unwrap();
        assert_eq!(
            l.storage_indices().collect::<Vec<_>>(),
            vec![0, 3, 1, 4, 2, 5]
        );
        assert!(!l.is_contiguous());
    }

    #[test]
    fn narrow_moves_offset_and_checks_bounds() {
        let l = Layout::contiguous(Shape::from([4, 5]))
            .narrow(0, 1, 2)
            .unwrap();
        assert_eq!(l.offset(), 5);
        assert!(l.is_contiguous());
        assert_eq!(l.storage_indices().next(), Some(5));
        assert!(
            Layout::contiguous(Shape::from([4, 5]))
                .narrow(1, 4, 2)
                .is_err()
        );
        assert!(
            Layout::contiguous(Shape::from([4, 5]))
                .narrow(2, 0, 1)
                .is_err()
        );
    }

    #[test]
    fn reshape_rejects_wrong_count_and_strided() {
        let l = Layout::contiguous(Shape::from([2, 6]));
        assert!(l.reshape(Shape::from([3, 4])).is_ok());
        assert!(l.reshape(Shape::from([5])).is_err());
        assert!(
            l.permute(&[1, 0])
                .unwrap()
                .reshape(Shape::from([12]))
                .is_err()
        );
        assert!(l.permute(&[0, 0]).is_err());
    }
}
