//! A bounds-checked little-endian reader over the GGUF header, and the metadata value types.

use crate::{Error, Result};

/// Nested arrays deeper than this are rejected (real files nest at most once), so a hostile file
/// cannot recurse the parser into a stack overflow.
const MAX_ARRAY_DEPTH: usize = 8;

/// The value of one metadata key.
#[derive(Clone, Debug, PartialEq)]
pub enum MetaValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    Array(MetaArray),
    U64(u64),
    I64(i64),
    F64(f64),
}

/// A metadata array, stored compactly by element type (a token list is a `Vec<String>`, scores a
/// `Vec<f32>`), so memory stays proportional to the bytes in the file.
#[derive(Clone, Debug, PartialEq)]
pub enum MetaArray {
    U8(Vec<u8>),
    I8(Vec<i8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
    U32(Vec<u32>),
    I32(Vec<i32>),
    F32(Vec<f32>),
    Bool(Vec<bool>),
    String(Vec<String>),
    Array(Vec<MetaArray>),
    U64(Vec<u64>),
    I64(Vec<i64>),
    F64(Vec<f64>),
}

impl MetaValue {
    /// The value as an unsigned integer, if it is a non-negative integer of any width.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            MetaValue::U8(v) => Some(v.into()),
            MetaValue::U16(v) => Some(v.into()),
            MetaValue::U32(v) => Some(v.into()),
            MetaValue::U64(v) => Some(v),
            MetaValue::I8(v) => u64::try_from(v).ok(),
            MetaValue::I16(v) => u64::try_from(v).ok(),
            MetaValue::I32(v) => u64::try_from(v).ok(),
            MetaValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as f64, if it is a float or an integer.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            MetaValue::F32(v) => Some(v.into()),
            MetaValue::F64(v) => Some(v),
            MetaValue::I8(v) => Some(v.into()),
            MetaValue::I16(v) => Some(v.into()),
            MetaValue::I32(v) => Some(v.into()),
            MetaValue::I64(v) => Some(v as f64),
            _ => self.as_u64().map(|v| v as f64),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetaValue::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            MetaValue::Bool(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&MetaArray> {
        match self {
            MetaValue::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The GGUF type name, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            MetaValue::U8(_) => "u8",
            MetaValue::I8(_) => "i8",
            MetaValue::U16(_) => "u16",
            MetaValue::I16(_) => "i16",
            MetaValue::U32(_) => "u32",
            MetaValue::I32(_) => "i32",
            MetaValue::F32(_) => "f32",
            MetaValue::Bool(_) => "bool",
            MetaValue::String(_) => "string",
            MetaValue::Array(_) => "array",
            MetaValue::U64(_) => "u64",
            MetaValue::I64(_) => "i64",
            MetaValue::F64(_) => "f64",
        }
    }
}

impl MetaArray {
    pub fn len(&self) -> usize {
        match self {
            MetaArray::U8(v) => v.len(),
            MetaArray::I8(v) => v.len(),
            MetaArray::U16(v) => v.len(),
            MetaArray::I16(v) => v.len(),
            MetaArray::U32(v) => v.len(),
            MetaArray::I32(v) => v.len(),
            MetaArray::F32(v) => v.len(),
            MetaArray::Bool(v) => v.len(),
            MetaArray::String(v) => v.len(),
            MetaArray::Array(v) => v.len(),
            MetaArray::U64(v) => v.len(),
            MetaArray::I64(v) => v.len(),
            MetaArray::F64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements as integers widened to i64 (`None` for non-integer arrays or a u64 past
    /// `i64::MAX`).
    pub fn to_i64s(&self) -> Option<Vec<i64>> {
        fn widen<T: Copy + TryInto<i64>>(v: &[T]) -> Option<Vec<i64>> {
            v.iter().map(|&x| x.try_into().ok()).collect()
        }
        match self {
            MetaArray::U8(v) => widen(v),
            MetaArray::I8(v) => widen(v),
            MetaArray::U16(v) => widen(v),
            MetaArray::I16(v) => widen(v),
            MetaArray::U32(v) => widen(v),
            MetaArray::I32(v) => widen(v),
            MetaArray::U64(v) => widen(v),
            MetaArray::I64(v) => Some(v.clone()),
            _ => None,
        }
    }
}

/// A cursor over the file's bytes that fails, instead of panicking, when a read runs past the end.
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }

    /// The offset of the next byte to read.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes left after the cursor.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// Takes the next `n` bytes; `what` names the field for the error.
    pub fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(Error::format(
                "GGUF",
                what,
                format!(
                    "needs {n} bytes at offset {}, but the file ends after {} more (truncated?)",
                    self.pos,
                    self.remaining()
                ),
            ));
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let b = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(b);
        Ok(a)
    }

    pub fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.array::<1>(what)?[0])
    }

    pub fn u16(&mut self, what: &str) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    pub fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    pub fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A count or length stored as u64, converted to `usize`, and checked to be at most
    /// `remaining / min_item_bytes` (each item takes at least that many bytes), so nothing is
    /// ever allocated from a count the file cannot back.
    pub fn count(&mut self, what: &str, min_item_bytes: usize) -> Result<usize> {
        let n = self.u64(what)?;
        let max = self.remaining() / min_item_bytes.max(1);
        match usize::try_from(n) {
            Ok(n) if n <= max => Ok(n),
            _ => Err(Error::format(
                "GGUF",
                what,
                format!(
                    "{n} items of at least {min_item_bytes} bytes cannot fit in the {} bytes left",
                    self.remaining()
                ),
            )),
        }
    }

    /// A GGUF string: u64 length, then that many UTF-8 bytes.
    pub fn string(&mut self, what: &str) -> Result<String> {
        let len = self.count(what, 1)?;
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|e| Error::format("GGUF", what, format!("string is not UTF-8: {e}")))
    }

    /// One metadata value of type id `ty` (the `gguf_type` enum).
    pub fn value(&mut self, ty: u32, what: &str) -> Result<MetaValue> {
        Ok(match ty {
            0 => MetaValue::U8(self.u8(what)?),
            1 => MetaValue::I8(self.u8(what)? as i8),
            2 => MetaValue::U16(self.u16(what)?),
            3 => MetaValue::I16(self.u16(what)? as i16),
            4 => MetaValue::U32(self.u32(what)?),
            5 => MetaValue::I32(self.u32(what)? as i32),
            6 => MetaValue::F32(f32::from_bits(self.u32(what)?)),
            7 => MetaValue::Bool(self.bool(what)?),
            8 => MetaValue::String(self.string(what)?),
            9 => MetaValue::Array(self.array_value(what, 1)?),
            10 => MetaValue::U64(self.u64(what)?),
            11 => MetaValue::I64(self.u64(what)? as i64),
            12 => MetaValue::F64(f64::from_bits(self.u64(what)?)),
            _ => return Err(unknown_type(what, ty)),
        })
    }

    /// The body of an array value (element type, count, elements).
    /// `depth` counts the arrays enclosing this one's elements (1 for a top-level array).
    fn array_value(&mut self, what: &str, depth: usize) -> Result<MetaArray> {
        let elem_ty = self.u32(what)?;
        let min = min_value_bytes(elem_ty).ok_or_else(|| unknown_type(what, elem_ty))?;
        let n = self.count(what, min)?;
        // Reads `n` elements with `$read`; the count was checked against the bytes left.
        macro_rules! read_n {
            ($variant:ident, $read:expr) => {{
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push($read);
                }
                MetaArray::$variant(items)
            }};
        }
        Ok(match elem_ty {
            0 => read_n!(U8, self.u8(what)?),
            1 => read_n!(I8, self.u8(what)? as i8),
            2 => read_n!(U16, self.u16(what)?),
            3 => read_n!(I16, self.u16(what)? as i16),
            4 => read_n!(U32, self.u32(what)?),
            5 => read_n!(I32, self.u32(what)? as i32),
            6 => read_n!(F32, f32::from_bits(self.u32(what)?)),
            7 => read_n!(Bool, self.bool(what)?),
            8 => read_n!(String, self.string(what)?),
            9 => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(Error::format(
                        "GGUF",
                        what,
                        format!("arrays nested deeper than {MAX_ARRAY_DEPTH}"),
                    ));
                }
                read_n!(Array, self.array_value(what, depth + 1)?)
            }
            10 => read_n!(U64, self.u64(what)?),
            11 => read_n!(I64, self.u64(what)? as i64),
            12 => read_n!(F64, f64::from_bits(self.u64(what)?)),
            _ => return Err(unknown_type(what, elem_ty)),
        })
    }

    fn bool(&mut self, what: &str) -> Result<bool> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(Error::format("GGUF", what, format!("bool byte is {b}"))),
        }
    }
}

/// The fewest bytes a value of type id `ty` takes (`None` for an unknown type).
fn min_value_bytes(ty: u32) -> Option<usize> {
    Some(match ty {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        8 => 8,     // the length of an empty string
        9 => 4 + 8, // element type + length of an empty array
        10..=12 => 8,
        _ => return None,
    })
}

fn unknown_type(what: &str, ty: u32) -> Error {
    Error::format("GGUF", what, format!("unknown metadata value type {ty}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_counts_are_rejected_before_allocating() {
        // A string claiming 2^40 bytes.
        let mut b = (1u64 << 40).to_le_bytes().to_vec();
        b.extend(b"abc");
        let err = Reader::new(&b).string("key").unwrap_err().to_string();
        assert!(err.contains("cannot fit"), "{err}");
        // An array of 2^60 u32.
        let mut b = 4u32.to_le_bytes().to_vec();
        b.extend((1u64 << 60).to_le_bytes());
        let err = Reader::new(&b).value(9, "arr").unwrap_err().to_string();
        assert!(err.contains("cannot fit"), "{err}");
    }

    #[test]
    fn deep_nesting_is_rejected() {
        let mut b = Vec::new();
        for _ in 0..100 {
            b.extend(9u32.to_le_bytes());
            b.extend(1u64.to_le_bytes());
        }
        let err = Reader::new(&b).value(9, "nest").unwrap_err().to_string();
        assert!(err.contains("nested deeper"), "{err}");
    }

    #[test]
    fn nested_arrays_parse() {
        // [[1u8, 2u8], []]
        let mut b = 9u32.to_le_bytes().to_vec();
        b.extend(2u64.to_le_bytes());
        b.extend(0u32.to_le_bytes());
        b.extend(2u64.to_le_bytes());
        b.extend([1u8, 2]);
        b.extend(0u32.to_le_bytes());
        b.extend(0u64.to_le_bytes());
        let v = Reader::new(&b).value(9, "nest").unwrap();
        let expected = MetaValue::Array(MetaArray::Array(vec![
            MetaArray::U8(vec![1, 2]),
            MetaArray::U8(vec![]),
        ]));
        assert_eq!(v, expected);
    }
}
