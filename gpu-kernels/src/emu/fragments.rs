//! Fragment layouts of `ldmatrix` and `mma.sync.m16n8k16` (PTX ISA, "Matrix fragments for
//! mma.m16n8k16 with floating point type" and "Warp-level matrix load instruction: ldmatrix"),
//! and the scalar code the emulator computes them with.
//!
//! Lane `l` of a warp is `group = l / 4`, `t = l % 4` (the ISA's `groupID` and
//! `threadID_in_group`). A register holding two 16-bit elements has the lower-indexed element in
//! its low half. Kernels (and their tests) can use these functions to place and read fragments.
//!
//! | operand | register `r`, half `h` of lane `l` holds |
//! |---|---|
//! | A 16x16, row-major | `A[group + 8·(r % 2)][2t + h + 8·(r / 2)]` |
//! | B 16x8 (k x n), column-major | `B[2t + h + 8·r][group]` |
//! | C/D 16x8 f32, element `i` | `C[group + 8·(i / 2)][2t + i % 2]` |
//! | `ldmatrix` matrix `m` (8x8), register `m` | row `group`, columns `2t + h` of the matrix whose rows lanes `8m..8m+8` addressed |
//! | `ldmatrix .trans` | the same of the transposed matrix: row `2t + h`, column `group` |

/// Row and column in the 16x16 A tile of half `h` (0 low, 1 high) of register `r` of lane `l`.
pub fn a_coord(l: u32, r: u32, h: u32) -> (u32, u32) {
    let (g, t) = (l / 4, l % 4);
    (g + 8 * (r % 2), 2 * t + h + 8 * (r / 2))
}

/// Row (k) and column (n) in the 16x8 B tile of half `h` of register `r` of lane `l`.
pub fn b_coord(l: u32, r: u32, h: u32) -> (u32, u32) {
    let (g, t) = (l / 4, l % 4);
    (2 * t + h + 8 * r, g)
}

/// Row and column in the 16x8 accumulator of element `i` (0..4) of lane `l`.
pub fn c_coord(l: u32, i: u32) -> (u32, u32) {
    let (g, t) = (l / 4, l % 4);
    (g + 8 * (i / 2), 2 * t + i % 2)
}

/// The 16-bit element `c` of an 8-element row held as four packed words.
fn elem(row: &[u32; 4], c: u32) -> u32 {
    (row[(c / 2) as usize] >> (16 * (c % 2))) & 0xffff
}

/// Lane `l`'s register for one 8x8 matrix of `ldmatrix`, given the matrix's eight rows (row `i`
/// is the 16 bytes at the address lane `8m + i` supplied).
pub fn ldmatrix_reg(rows: &[[u32; 4]; 8], l: u32, trans: bool) -> u32 {
    let (g, t) = (l / 4, l % 4);
    if trans {
        elem(&rows[(2 * t) as usize], g) | (elem(&rows[(2 * t + 1) as usize], g) << 16)
    } else {
        rows[g as usize][t as usize]
    }
}

/// Fragments of one lane for `mma.m16n8k16`.
#[derive(Clone, Copy, Debug, Default)]
pub struct MmaFragments {
    pub a: [u32; 4],
    pub b: [u32; 2],
    pub c: [f32; 4],
}

/// Lane `l`'s D = A·B + C from all 32 lanes' fragments; `to_f32` decodes one 16-bit input
/// (f16 or bf16). Products are exact in f32; the sum runs over k in order, in f32.
pub fn mma_m16n8k16(lanes: &[MmaFragments; 32], l: u32, to_f32: fn(u16) -> f32) -> [f32; 4] {
    let mut a = [[0.0f32; 16]; 16];
    let mut b = [[0.0f32; 8]; 16];
    let mut c = [[0.0f32; 8]; 16];
    for (lane, f) in (0u32..).zip(lanes) {
        for r in 0..4 {
            for h in 0..2 {
                let (i, k) = a_coord(lane, r, h);
                a[i as usize][k as usize] = to_f32((f.a[r as usize] >> (16 * h)) as u16);
            }
        }
        for r in 0..2 {
            for h in 0..2 {
                let (k, j) = b_coord(lane, r, h);
                b[k as usize][j as usize] = to_f32((f.b[r as usize] >> (16 * h)) as u16);
            }
        }
        for i in 0..4 {
            let (r, j) = c_coord(lane, i);
            c[r as usize][j as usize] = f.c[i as usize];
        }
    }
    let mut d = [0.0f32; 4];
    for (i, out) in (0u32..).zip(d.iter_mut()) {
        let (r, j) = c_coord(l, i);
        let mut acc = c[r as usize][j as usize];
        for k in 0..16 {
            acc += a[r as usize][k] * b[k][j as usize];
        }
        *out = acc;
    }
    d
}
