//! Storage element types as kernels see them: f32 (`f32`), f16 and bf16 (raw `u16` bits).
//!
//! Kernels do all math in f32 and move data in chunks of [`CHUNK`] elements: one 128-bit access
//! for f16/bf16, two for f32. Chunked access needs 16-byte aligned pointers and offsets that are
//! multiples of [`CHUNK`]; kernels check that once (uniformly) and fall back to scalar access.

use crate::primitives::{
    Bytes16, bf16_to_f32, f16_to_f32, f32_to_bf16, f32_to_f16, f32x2_to_bf16x2, f32x2_to_f16x2,
    load_16b, mma_m16n8k16_bf16, mma_m16n8k16_f16, store_16b,
};

/// Elements per vector chunk (16 bytes of f16/bf16; 32 bytes of f32).
pub const CHUNK: usize = 8;

/// A storage type a kernel can load into and store from f32.
pub trait Elem: Copy {
    /// One chunk as stored (16 bytes for f16/bf16, 32 for f32): what a kernel keeps in registers
    /// between passes when it wants half the registers of the f32 values.
    type Packed: Copy;
    /// A packed chunk of zeros.
    const PACKED_ZERO: Self::Packed;

    /// Converts one element to f32.
    fn load(self) -> f32;
    /// Converts an f32 to this storage type (round to nearest even).
    fn store(v: f32) -> Self;
    /// A packed chunk to f32 (exact).
    fn unpack(p: Self::Packed) -> [f32; CHUNK];
    /// f32 values to a packed chunk (round to nearest even).
    fn pack(v: [f32; CHUNK]) -> Self::Packed;

    /// Loads elements `i..i + CHUNK` as stored.
    ///
    /// # Safety
    /// The range must be in bounds and `p.add(i)` 16-byte aligned.
    unsafe fn load_packed(p: *const Self, i: usize) -> Self::Packed;

    /// Stores a packed chunk into elements `i..i + CHUNK`.
    ///
    /// # Safety
    /// As [`Elem::load_packed`], for writes.
    unsafe fn store_packed(p: *mut Self, i: usize, v: Self::Packed);

    /// Loads elements `i..i + CHUNK` as f32.
    ///
    /// # Safety
    /// As [`Elem::load_packed`].
    #[inline(always)]
    unsafe fn load_chunk(p: *const Self, i: usize) -> [f32; CHUNK] {
        // SAFETY: forwarded contract.
        Self::unpack(unsafe { Self::load_packed(p, i) })
    }

    /// Stores `v` into elements `i..i + CHUNK`.
    ///
    /// # Safety
    /// As [`Elem::load_packed`], for writes.
    #[inline(always)]
    unsafe fn store_chunk(p: *mut Self, i: usize, v: [f32; CHUNK]) {
        // SAFETY: forwarded contract.
        unsafe { Self::store_packed(p, i, Self::pack(v)) }
    }
}

impl Elem for f32 {
    type Packed = [Bytes16; 2];
    const PACKED_ZERO: Self::Packed = [Bytes16([0; 4]); 2];

    #[inline(always)]
    fn load(self) -> f32 {
        self
    }
    #[inline(always)]
    fn store(v: f32) -> Self {
        v
    }
    #[inline(always)]
    fn unpack([a, b]: Self::Packed) -> [f32; CHUNK] {
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
    fn pack(v: [f32; CHUNK]) -> Self::Packed {
        [
            Bytes16([
                v[0].to_bits(),
                v[1].to_bits(),
                v[2].to_bits(),
                v[3].to_bits(),
            ]),
            Bytes16([
                v[4].to_bits(),
                v[5].to_bits(),
                v[6].to_bits(),
                v[7].to_bits(),
            ]),
        ]
    }
    #[inline(always)]
    unsafe fn load_packed(p: *const Self, i: usize) -> Self::Packed {
        // SAFETY: the caller guarantees 8 in-bounds, 16-byte aligned f32s (two 16-byte halves).
        unsafe {
            [
                load_16b(p.add(i) as *const u8),
                load_16b(p.add(i + 4) as *const u8),
            ]
        }
    }
    #[inline(always)]
    unsafe fn store_packed(p: *mut Self, i: usize, [a, b]: Self::Packed) {
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
            type Packed = Bytes16;
            const PACKED_ZERO: Bytes16 = Bytes16([0; 4]);

            #[inline(always)]
            fn load(self) -> f32 {
                $to_f32(self.0)
            }
            #[inline(always)]
            fn store(v: f32) -> Self {
                $ty($from_f32(v))
            }
            #[inline(always)]
            fn unpack(Bytes16([a, b, c, d]): Bytes16) -> [f32; CHUNK] {
                let lo = |w: u32| $to_f32(w as u16);
                let hi = |w: u32| $to_f32((w >> 16) as u16);
                [lo(a), hi(a), lo(b), hi(b), lo(c), hi(c), lo(d), hi(d)]
            }
            #[inline(always)]
            fn pack(v: [f32; CHUNK]) -> Bytes16 {
                let two = |lo: f32, hi: f32| $from_f32(lo) as u32 | (($from_f32(hi) as u32) << 16);
                Bytes16([
                    two(v[0], v[1]),
                    two(v[2], v[3]),
                    two(v[4], v[5]),
                    two(v[6], v[7]),
                ])
            }
            #[inline(always)]
            unsafe fn load_packed(p: *const Self, i: usize) -> Bytes16 {
                // SAFETY: the caller guarantees 8 in-bounds, 16-byte aligned elements.
                unsafe { load_16b(p.add(i) as *const u8) }
            }
            #[inline(always)]
            unsafe fn store_packed(p: *mut Self, i: usize, v: Bytes16) {
                // SAFETY: the caller guarantees 8 in-bounds, 16-byte aligned elements.
                unsafe { store_16b(p.add(i) as *mut u8, v) };
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

/// The 16-bit types the tensor cores multiply (`mma.m16n8k16`, f32 accumulators).
pub trait MmaElem: Elem {
    /// `D = A·B + C` on one 16x8x16 tile (fragments as in [`mma_m16n8k16_f16`]).
    fn mma(a: [u32; 4], b: [u32; 2], c: [f32; 4]) -> [f32; 4];
    /// Two f32 packed into one operand register (`lo` in the low half).
    fn pack2(lo: f32, hi: f32) -> u32;
}

impl MmaElem for F16 {
    #[inline(always)]
    fn mma(a: [u32; 4], b: [u32; 2], c: [f32; 4]) -> [f32; 4] {
        mma_m16n8k16_f16(a, b, c)
    }
    #[inline(always)]
    fn pack2(lo: f32, hi: f32) -> u32 {
        f32x2_to_f16x2(lo, hi)
    }
}

impl MmaElem for BF16 {
    #[inline(always)]
    fn mma(a: [u32; 4], b: [u32; 2], c: [f32; 4]) -> [f32; 4] {
        mma_m16n8k16_bf16(a, b, c)
    }
    #[inline(always)]
    fn pack2(lo: f32, hi: f32) -> u32 {
        f32x2_to_bf16x2(lo, hi)
    }
}

/// The warpgroup matrix instructions of an [`MmaElem`] (sm_90a PTX and host builds only).
#[cfg(any(not(target_arch = "nvptx64"), target_feature = "sm_90a"))]
pub trait WgmmaElem: MmaElem {
    /// `wgmma_m64n128k16_ss_*`: A and B K-major in shared memory.
    ///
    /// # Safety
    /// As `primitives::wgmma_m64n128k16_ss_f16`.
    unsafe fn wgmma_ss(acc: &mut [[f32; 4]; 16], a: u64, b: u64, accumulate: bool);
    /// `wgmma_m64n128k16_rs_*`: A in registers, B N-major in shared memory.
    ///
    /// # Safety
    /// As `primitives::wgmma_m64n128k16_rs_f16`.
    unsafe fn wgmma_rs(acc: &mut [[f32; 4]; 16], a: [u32; 4], b: u64, accumulate: bool);
}

/// Implements [`WgmmaElem`] for one type with its primitives.
macro_rules! wgmma_elem {
    ($t:ty, $ss:ident, $rs:ident) => {
        #[cfg(any(not(target_arch = "nvptx64"), target_feature = "sm_90a"))]
        impl WgmmaElem for $t {
            #[inline(always)]
            unsafe fn wgmma_ss(acc: &mut [[f32; 4]; 16], a: u64, b: u64, accumulate: bool) {
                // SAFETY: forwarded contract.
                unsafe { crate::primitives::$ss(acc, a, b, accumulate) }
            }
            #[inline(always)]
            unsafe fn wgmma_rs(acc: &mut [[f32; 4]; 16], a: [u32; 4], b: u64, accumulate: bool) {
                // SAFETY: forwarded contract.
                unsafe { crate::primitives::$rs(acc, a, b, accumulate) }
            }
        }
    };
}
wgmma_elem!(F16, wgmma_m64n128k16_ss_f16, wgmma_m64n128k16_rs_f16);
wgmma_elem!(BF16, wgmma_m64n128k16_ss_bf16, wgmma_m64n128k16_rs_bf16);

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
