//! Weight formats the GEMV kernels read: plain f32/f16/bf16 rows, and the ggml block formats
//! Q8_0, Q4_0 and Q4_1 kept quantized in GPU memory in a repacked, load-friendly layout.
//!
//! ggml stores a block's scale next to its quants (34, 18 or 20 bytes per 32 weights), so a
//! block never starts on a 16-byte boundary. At upload the host repacks a `[n, k]` matrix
//! (`k` a multiple of [`QBLOCK`]) into one buffer of two sections ([`QuantLayout`]):
//!
//! | section | shape | bytes per 32 weights | content |
//! |---|---|---|---|
//! | quants | `[n, k * bits / 8]` | Q8_0: 32, Q4_0/Q4_1: 16 | ggml's `qs` bytes of each block, in order |
//! | scales | `[n, k / 32]` | Q8_0/Q4_0: 2 (`d: f16`), Q4_1: 4 (`d: f16` low, `m: f16` high) | one entry per block |
//!
//! Rows of quants are multiples of 16 bytes, so every thread of a GEMV reads its quants with
//! aligned 128-bit loads (half a Q8_0 block, one whole Q4 block) and the 2- or 4-byte scale of
//! that block beside it. The nibble order inside a Q4 block is ggml's: byte `j` holds element
//! `j` (low nibble) and `j + 16` (high). Dequantization happens in registers, in f32:
//! Q8_0 `d·q`, Q4_0 `d·(q − 8)`, Q4_1 `d·q + m`, as `host/src/loaders/quant.rs` — or, in the
//! GEMVs, factored out of each 8-weight piece's dot product ([`WeightFormat::dot_factors`]).
//! Unpacking stays shift, mask and integer-to-float: on an H100 neither building the float
//! from exponent bits (`2^23 + q` minus `2^23`: Q8_0 7B decode 311 → 293 tokens/s) nor one mask
//! per four nibbles and a byte `prmt` each (Q4 7B decode level, 366 vs 363) was faster. Nor
//! was loading four chunks per thread and row with a quarter of the threads (Q4_1 365 → 313,
//! Q8_0 317 → 272: 118 registers leave 17 warps per SM against 36).

use crate::elem::{CHUNK, Elem};
use crate::params::GEMV_GROUP_PIECES;
use crate::primitives::{Bytes16, f16_to_f32, fma_f32, load_16b};

/// Weights per quantization block (Q8_0, Q4_0, Q4_1).
pub const QBLOCK: usize = 32;

/// The quantized formats, as the host names them (`gemv_{format}_{dtype}` kernels).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuantFormat {
    Q8_0,
    Q4_0,
    Q4_1,
}

impl QuantFormat {
    /// Symbol part of the kernel names.
    pub const fn name(self) -> &'static str {
        match self {
            QuantFormat::Q8_0 => "q8_0",
            QuantFormat::Q4_0 => "q4_0",
            QuantFormat::Q4_1 => "q4_1",
        }
    }

    /// Bytes of quants per block.
    pub const fn quant_bytes(self) -> usize {
        match self {
            QuantFormat::Q8_0 => QBLOCK,
            QuantFormat::Q4_0 | QuantFormat::Q4_1 => QBLOCK / 2,
        }
    }

    /// Weights per 16-byte chunk of quants (what a GEMV thread loads at once).
    pub const fn chunk_elems(self) -> usize {
        16 * QBLOCK / self.quant_bytes()
    }

    /// Bytes of scale (and min) per block.
    pub const fn scale_bytes(self) -> usize {
        match self {
            QuantFormat::Q8_0 | QuantFormat::Q4_0 => 2,
            QuantFormat::Q4_1 => 4,
        }
    }
}

/// Where the two sections of a repacked `[n, k]` matrix lie in its buffer (byte offsets).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuantLayout {
    pub format: QuantFormat,
    pub n: usize,
    pub k: usize,
}

impl QuantLayout {
    /// Bytes of one row of quants (a multiple of 16 since `k` is a multiple of [`QBLOCK`]).
    pub const fn row_bytes(&self) -> usize {
        self.k / QBLOCK * self.format.quant_bytes()
    }
    /// Byte offset of the scales section (16-byte aligned).
    pub const fn scales_offset(&self) -> usize {
        self.n * self.row_bytes()
    }
    /// Byte offset of block `b` of row `row`'s scale entry.
    pub const fn scale_at(&self, row: usize, b: usize) -> usize {
        self.scales_offset() + (row * (self.k / QBLOCK) + b) * self.format.scale_bytes()
    }
    /// Bytes of the whole buffer.
    pub const fn total_bytes(&self) -> usize {
        self.scale_at(self.n, 0)
    }
}

/// `acc + Σ w[e]·x[e]` over one 8-element piece, with fused multiply-adds.
#[inline(always)]
pub(crate) fn dot8(w: &[f32; CHUNK], x: &[f32; CHUNK], mut acc: f32) -> f32 {
    for e in 0..CHUNK {
        acc = fma_f32(w[e], x[e], acc);
    }
    acc
}

/// `Σ x[e]` over one 8-element piece (pairwise).
#[inline(always)]
pub(crate) fn sum8(x: &[f32; CHUNK]) -> f32 {
    ((x[0] + x[1]) + (x[2] + x[3])) + ((x[4] + x[5]) + (x[6] + x[7]))
}

/// How a GEMV reads one weight format: a thread loads a *chunk* (the unit it keeps in
/// registers while its other loads are in flight) and later expands it to f32 in 8-element
/// *pieces* (the unit of `x` it multiplies with).
///
/// Rows are `k` elements; chunk `c` of a row holds elements `c·8·PIECES ..`.
pub trait WeightFormat {
    /// One chunk as loaded.
    type Raw: Copy;
    /// 8-element pieces per chunk.
    const PIECES: usize;
    /// Chunks a GEMV thread loads per row before doing math: `PIECES * UNROLL` is
    /// [`GEMV_GROUP_PIECES`] for every format (16 to 64 bytes per row in flight per thread), so
    /// every format's math unrolls to the same size.
    const UNROLL: usize = GEMV_GROUP_PIECES / Self::PIECES;
    /// A chunk that contributes nothing (for loads a thread skips).
    const ZERO: Self::Raw;

    /// True when chunked access works: `k` a multiple of the chunk, `w` 16-byte aligned.
    fn vector_ok(w: *const u8, k: usize) -> bool;

    /// Loads chunk `c` of row `row` of the `[n, k]` matrix at `w`.
    ///
    /// # Safety
    /// `w` holds the matrix; `row < n`; chunk `c` is inside the row; [`Self::vector_ok`].
    unsafe fn load(w: *const u8, n: usize, k: usize, row: usize, c: usize) -> Self::Raw;

    /// Piece `p` (`< PIECES`) of a chunk as f32.
    fn piece(raw: &Self::Raw, p: usize) -> [f32; CHUNK];

    /// Piece `p` as the factors the GEMV multiplies `x` with: the weights themselves for plain
    /// rows ([`Self::piece`]); the raw quants for the block formats, whose scale (and offset)
    /// [`Self::dot_factors`] applies once per piece. Unpacked once for every row of `x`.
    #[inline(always)]
    fn piece_factors(raw: &Self::Raw, p: usize) -> [f32; CHUNK] {
        Self::piece(raw, p)
    }

    /// True when [`Self::dot_factors`] wants the sum of the piece's `x` (formats with an offset).
    const WANTS_X_SUM: bool = false;

    /// `acc + Σ_e w_e·x_e` over a piece, from its [`Self::piece_factors`] `f`; `x_sum` is
    /// `Σ_e x_e` when [`Self::WANTS_X_SUM`]. The block formats factor the scale (and offset) out
    /// of the sum — `d·Σ q_e·x_e (+ m·Σ x_e)` — so a weight costs one multiply-add after its
    /// unpacking, where scaling each weight first cost two more instructions (the quantized
    /// GEMVs are not bound by bytes: Q4_1 reads at 44% of the H100's DRAM peak).
    #[inline(always)]
    fn dot_factors(
        raw: &Self::Raw,
        f: &[f32; CHUNK],
        x: &[f32; CHUNK],
        x_sum: f32,
        acc: f32,
    ) -> f32 {
        let _ = (raw, x_sum);
        dot8(f, x, acc)
    }

    /// Element `i` of row `row` (the scalar path for unaligned or ragged shapes).
    ///
    /// # Safety
    /// `w` holds the matrix; `row < n`, `i < k`.
    unsafe fn element(w: *const u8, n: usize, k: usize, row: usize, i: usize) -> f32;
}

/// Plain rows of a storage type: a chunk is one [`Elem`] chunk (8 elements).
impl<E: Elem> WeightFormat for E {
    type Raw = E::Packed;
    const PIECES: usize = 1;
    const ZERO: E::Packed = E::PACKED_ZERO;

    #[inline(always)]
    fn vector_ok(w: *const u8, k: usize) -> bool {
        k.is_multiple_of(CHUNK) && crate::elem::aligned16(w)
    }
    #[inline(always)]
    unsafe fn load(w: *const u8, _n: usize, k: usize, row: usize, c: usize) -> E::Packed {
        // SAFETY: forwarded contract (aligned since k is a multiple of CHUNK).
        unsafe { E::load_packed(w as *const E, row * k + c * CHUNK) }
    }
    #[inline(always)]
    fn piece(raw: &E::Packed, _p: usize) -> [f32; CHUNK] {
        E::unpack(*raw)
    }
    #[inline(always)]
    unsafe fn element(w: *const u8, _n: usize, k: usize, row: usize, i: usize) -> f32 {
        // SAFETY: forwarded contract.
        unsafe { (*(w as *const E).add(row * k + i)).load() }
    }
}

/// Q8_0 repacked: a chunk is 16 quants (half a block) and the block's scale.
pub struct Q8_0;
/// Q4_0 repacked: a chunk is one block's 16 bytes of nibbles and its scale.
pub struct Q4_0;
/// Q4_1 repacked: a chunk is one block's 16 bytes of nibbles, its scale and its min.
pub struct Q4_1;

/// A loaded quantized chunk: the quants and the block's `(d, m)` in f32 (`m` unused by the
/// symmetric formats).
#[derive(Clone, Copy)]
pub struct QChunk {
    pub q: Bytes16,
    pub d: f32,
    pub m: f32,
}

const QZERO: QChunk = QChunk {
    q: Bytes16([0; 4]),
    d: 0.0,
    m: 0.0,
};

/// Byte `b` (0..4) of `w` as a signed integer, in f32.
#[inline(always)]
fn i8_at(w: u32, b: usize) -> f32 {
    ((w << (24 - 8 * b)) as i32 >> 24) as f32
}

/// Loads the quants of chunk `c` and its block's scale entry (2 or 4 bytes).
///
/// # Safety
/// As [`WeightFormat::load`], for the layout `l`.
#[inline(always)]
unsafe fn load_q(
    w: *const u8,
    l: QuantLayout,
    row: usize,
    c: usize,
    chunks_per_block: usize,
) -> QChunk {
    // SAFETY: row < n and c < row_bytes / 16, so both reads lie inside the buffer; the quant
    // row and the scales section start 16-byte aligned (QuantLayout), scale entries are 2- or
    // 4-byte aligned by their size.
    unsafe {
        let q = load_16b(w.add(row * l.row_bytes() + c * 16));
        let s = w.add(l.scale_at(row, c / chunks_per_block));
        let (d, m) = if l.format.scale_bytes() == 4 {
            let dm = *(s as *const u32);
            (f16_to_f32(dm as u16), f16_to_f32((dm >> 16) as u16))
        } else {
            (f16_to_f32(*(s as *const u16)), 0.0)
        };
        QChunk { q, d, m }
    }
}

/// The 4-bit value of element `j` (0..32) of a Q4 block.
///
/// # Safety
/// `blk` points at the block's 16 bytes of nibbles.
#[inline(always)]
unsafe fn nibble(blk: *const u8, j: usize) -> u32 {
    // SAFETY: j % 16 < 16.
    let b = unsafe { *blk.add(j % 16) } as u32;
    if j < 16 { b & 15 } else { b >> 4 }
}

/// The block format a marker type ([`Q8_0`], [`Q4_0`], [`Q4_1`]) stands for.
pub trait QuantizedFormat {
    const FORMAT: QuantFormat;
}

macro_rules! quant_format {
    ($ty:ident, $fmt:expr, pieces = $pieces:expr, piece = |$raw:ident, $p:ident| $piece:block,
     factors = |$fraw:ident, $fp:ident| $factors:expr, x_sum = $wants:literal,
     dot = |$draw:ident, $f:ident, $x:ident, $x_sum:ident, $acc:ident| $dot:block,
     element = |$q8:ident, $blk:ident, $j:ident, $d:ident, $m:ident| $elem:expr) => {
        impl QuantizedFormat for $ty {
            const FORMAT: QuantFormat = $fmt;
        }

        impl WeightFormat for $ty {
            type Raw = QChunk;
            const PIECES: usize = $pieces;
            const ZERO: QChunk = QZERO;

            #[inline(always)]
            fn vector_ok(w: *const u8, k: usize) -> bool {
                k.is_multiple_of(QBLOCK) && crate::elem::aligned16(w)
            }
            #[inline(always)]
            unsafe fn load(w: *const u8, n: usize, k: usize, row: usize, c: usize) -> QChunk {
                let l = QuantLayout { format: $fmt, n, k };
                // SAFETY: forwarded contract.
                unsafe { load_q(w, l, row, c, QBLOCK / (8 * $pieces)) }
            }
            #[inline(always)]
            fn piece($raw: &QChunk, $p: usize) -> [f32; CHUNK] $piece
            #[inline(always)]
            fn piece_factors($fraw: &QChunk, $fp: usize) -> [f32; CHUNK] {
                $factors
            }
            const WANTS_X_SUM: bool = $wants;
            #[inline(always)]
            fn dot_factors(
                $draw: &QChunk,
                $f: &[f32; CHUNK],
                $x: &[f32; CHUNK],
                $x_sum: f32,
                $acc: f32,
            ) -> f32 $dot
            #[inline(always)]
            unsafe fn element(w: *const u8, n: usize, k: usize, row: usize, i: usize) -> f32 {
                let l = QuantLayout { format: $fmt, n, k };
                let (b, $j) = (i / QBLOCK, i % QBLOCK);
                // SAFETY: row < n, i < k: the block and its scale entry are in the buffer.
                unsafe {
                    let $blk = w.add(row * l.row_bytes() + b * $fmt.quant_bytes());
                    let s = w.add(l.scale_at(row, b));
                    let $d = f16_to_f32(*(s as *const u16));
                    let $m = if $fmt.scale_bytes() == 4 { f16_to_f32(*(s.add(2) as *const u16)) } else { 0.0 };
                    let $q8 = *$blk.add($j) as i8;
                    $elem
                }
            }
        }
    };
}

/// Piece `p` (0..2) of a Q8_0 half block as its signed 8-bit values.
#[inline(always)]
fn q8_values(q: &Bytes16, p: usize) -> [f32; CHUNK] {
    let (lo, hi) = (q.0[2 * p], q.0[2 * p + 1]);
    let mut v = [0.0f32; CHUNK];
    for b in 0..4 {
        v[b] = i8_at(lo, b);
        v[4 + b] = i8_at(hi, b);
    }
    v
}

quant_format!(
    Q8_0,
    QuantFormat::Q8_0,
    pieces = 2,
    piece = |raw, p| {
        let mut v = q8_values(&raw.q, p);
        for e in 0..CHUNK {
            v[e] *= raw.d;
        }
        v
    },
    factors = |raw, p| q8_values(&raw.q, p),
    x_sum = false,
    dot = |raw, q, x, x_sum, acc| {
        let _ = x_sum;
        fma_f32(raw.d, dot8(q, x, 0.0), acc)
    },
    element = |q8, blk, j, d, m| {
        let _ = (blk, m);
        d * q8 as f32
    }
);

/// Piece `p` (0..4) of a Q4 block as its raw 4-bit values: pieces 0, 1 are elements 0..16 (low
/// nibbles of bytes 0..16), pieces 2, 3 elements 16..32 (high nibbles).
#[inline(always)]
fn nibbles(q: &Bytes16, p: usize) -> [f32; CHUNK] {
    let (lo, hi) = (q.0[2 * (p % 2)], q.0[2 * (p % 2) + 1]);
    let shift = 4 * (p / 2);
    let mut v = [0.0f32; CHUNK];
    for b in 0..4 {
        v[b] = ((lo >> (8 * b + shift)) & 15) as f32;
        v[4 + b] = ((hi >> (8 * b + shift)) & 15) as f32;
    }
    v
}

quant_format!(
    Q4_0,
    QuantFormat::Q4_0,
    pieces = 4,
    piece = |raw, p| {
        let mut v = nibbles(&raw.q, p);
        for e in 0..CHUNK {
            v[e] = raw.d * (v[e] - 8.0);
        }
        v
    },
    factors = |raw, p| nibbles(&raw.q, p),
    x_sum = true,
    dot = |raw, q, x, x_sum, acc| {
        // d·Σ (q - 8)·x = d·(Σ q·x - 8·Σ x)
        fma_f32(raw.d, fma_f32(-8.0, x_sum, dot8(q, x, 0.0)), acc)
    },
    element = |q8, blk, j, d, m| {
        let _ = (q8, m);
        d * (nibble(blk, j) as f32 - 8.0)
    }
);

quant_format!(
    Q4_1,
    QuantFormat::Q4_1,
    pieces = 4,
    piece = |raw, p| {
        let mut v = nibbles(&raw.q, p);
        for e in 0..CHUNK {
            v[e] = raw.d * v[e] + raw.m;
        }
        v
    },
    factors = |raw, p| nibbles(&raw.q, p),
    x_sum = true,
    dot = |raw, q, x, x_sum, acc| {
        // Σ (d·q + m)·x = d·Σ q·x + m·Σ x
        fma_f32(raw.m, x_sum, fma_f32(raw.d, dot8(q, x, 0.0), acc))
    },
    element = |q8, blk, j, d, m| {
        let _ = q8;
        d * nibble(blk, j) as f32 + m
    }
);
