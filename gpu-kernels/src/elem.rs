//! Storage element types as kernels see them: f32 (`f32`), f16 and bf16 (raw `u16` bits).
//!
//! Kernels do all math in f32 and move data in chunks of [`CHUNK`] elements: one 128-bit access
//! for f16/bf16, two for f32. Chunked access needs 16-byte aligned pointers and offsets that are
//! multiples of [`CHUNK`]; kernels check that once (uniformly) and fall back to scalar access.

use crate::primitives::{
    Bytes16, bf16_to_f32, f16_to_f32, f32_to_bf16, f32_to_f16, load_16b, store_16b,
};

/// Elements per vector chunk (16 bytes of f16/bf16; 32 bytes of f32).
pub const CHUNK: usize = 8;

/// A storage type a kernel can load into and store from f32.
pub trait Elem: Copy {
    /// Converts one element to f32.
    fn load(self) -> f32;
    /// Converts an f32 to this storage type (round to nearest even).
    fn store(v: f32) -> Self;

    /// Loads elements `i..i + CHUNK`.
    ///
    /// # Safety
    /// The range must be in bounds and `p.add(i)` 16-byte aligned.
    unsafe fn load_chunk(p: *const Self, i: usize) -> [f32; CHUNK];

    /// Stores `v` into elements `i..i + CHUNK`.
    ///
    /// # Safety
    /// As [`Elem::load_chunk`], for writes.
    unsafe fn store_chunk(p: *mut Self, i: usize, v: [f32; CHUNK]);
}

impl Elem for f32 {
    #[inline(always)]
    fn load(self) -> f32 {
        self
    }
    #[inline(always)]
    fn store(v: f32) -> Self {
        v
    }
    #[inline(always)]
    unsafe fn load_chunk(p: *const Self, i: usize) -> [f32; CHUNK] {
        // SAFETY: the caller guarantees 8 in-bounds, 16-byte aligned f32s (two 16-byte halves).
        let (a, b) = unsafe {
            (
                load_16b(p.add(i) as *const u8),
                load_16b(p.add(i + 4) as *const u8),
            )
        };
        let f = f32::from_bits;
        [
            f(a.0[0]),
            f(a.0[1]),
            f(a.0[2]),
            f(a.0[3]),
            f(b.0[0]),
            f(b.0[1]),
            f(b.0[2]),
            f(b.0[3]),
        ]
    }
    #[inline(always)]
    unsafe fn store_chunk(p: *mut Self, i: usize, v: [f32; CHUNK]) {
        let a = Bytes16([
            v[0].to_bits(),
            v[1].to_bits(),
            v[2].to_bits(),
            v[3].to_bits(),
        ]);
        let b = Bytes16([
            v[4].to_bits(),
            v[5].to_bits(),
            v[6].to_bits(),
            v[7].to_bits(),
        ]);
        // SAFETY: the caller guarantees 8 in-bounds, 16-byte aligned f32s.
        unsafe {
            store_16b(p.add(i) as *mut u8, a);
            store_16b(p.add(i + 4) as *mut u8, b);
        }
    }
}

/// Implements [`Elem`] for a 16-bit type stored as `u16` bits.
macro_rules! half_elem {
    ($ty:ident, $to_f32:ident, $from_f32:ident) => {
        impl Elem for $ty {
            #[inline(always)]
            fn load(self) -> f32 {
                $to_f32(self.0)
            }
            #[inline(always)]
            fn store(v: f32) -> Self {
                $ty($from_f32(v))
            }
            #[inline(always)]
            unsafe fn load_chunk(p: *const Self, i: usize) -> [f32; CHUNK] {
                // SAFETY: the caller guarantees 8 in-bounds, 16-byte aligned elements.
                let Bytes16([a, b, c, d]) = unsafe { load_16b(p.add(i) as *const u8) };
                let lo = |w: u32| $to_f32(w as u16);
                let hi = |w: u32| $to_f32((w >> 16) as u16);
                [lo(a), hi(a), lo(b), hi(b), lo(c), hi(c), lo(d), hi(d)]
            }
            #[inline(always)]
            unsafe fn store_chunk(p: *mut Self, i: usize, v: [f32; CHUNK]) {
                let pack = |lo: f32, hi: f32| $from_f32(lo) as u32 | (($from_f32(hi) as u32) << 16);
                let w = Bytes16([
                    pack(v[0], v[1]),
                    pack(v[2], v[3]),
                    pack(v[4], v[5]),
                    pack(v[6], v[7]),
                ]);
                // SAFETY: the caller guarantees 8 in-bounds, 16-byte aligned elements.
                unsafe { store_16b(p.add(i) as *mut u8, w) };
            }
        }
    };
}

/// IEEE half precision, as its bits.
#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct F16(pub u16);

/// bfloat16, as its bits.
#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct BF16(pub u16);

half_elem!(F16, f16_to_f32, f32_to_f16);
half_elem!(BF16, bf16_to_f32, f32_to_bf16);

/// True when `p` is 16-byte aligned (chunked access allowed).
#[inline(always)]
pub fn aligned16<T>(p: *const T) -> bool {
    (p as usize).is_multiple_of(16)
}

/// Loads four f32 (`p[i..i + 4]`) with one 128-bit access.
///
/// # Safety
/// The range must be in bounds and `p.add(i)` 16-byte aligned.
#[inline(always)]
pub unsafe fn load4_f32(p: *const f32, i: usize) -> [f32; 4] {
    // SAFETY: the caller guarantees 4 in-bounds, 16-byte aligned f32s.
    let w = unsafe { load_16b(p.add(i) as *const u8) };
    [
        f32::from_bits(w.0[0]),
        f32::from_bits(w.0[1]),
        f32::from_bits(w.0[2]),
        f32::from_bits(w.0[3]),
    ]
}

/// Sum of squares of a chunk (index loop: array iterators would spill to local memory).
#[inline(always)]
pub fn sum_sq(v: &[f32; CHUNK]) -> f32 {
    let mut s = 0.0;
    for k in 0..CHUNK {
        s += v[k] * v[k];
    }
    s
}

/// Largest element of a chunk.
#[inline(always)]
pub fn max_of(v: &[f32; CHUNK]) -> f32 {
    let mut m = v[0];
    for k in 1..CHUNK {
        m = m.max(v[k]);
    }
    m
}
