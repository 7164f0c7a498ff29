//! The row kernels every ISA provides, as one table of function pointers per ISA.
//!
//! The ops in [`super`] are written once against [`Kernels`]; each ISA module ([`super::scalar`],
//! `avx2`, `avx512`) only supplies these per-row primitives. A call through a pointer costs a
//! few cycles, which a kernel working on a whole row (64 to 16K elements) amortises.
//!
//! Contract shared by all kernels: buffers that are combined elementwise have equal lengths (the
//! ops guarantee it after their shape checks). Kernels are written with slices only, so a broken
//! contract gives a wrong number, never an out-of-bounds access.

use super::Isa;

/// Rotates one head row: `(x, cos, sin, out)`, `cos`/`sin` holding `x.len() / 2` angles.
pub(super) type RopeRow = unsafe fn(&[f32], &[f32], &[f32], &mut [f32]);

/// `(a, k, b_rows, stride, outs)`: see [`Table::gemv_t`].
pub(super) type GemvBlock = unsafe fn(&[f32], usize, &[f32], usize, &mut [&mut [f32]]);

/// One ISA's kernels. The pointers are `unsafe fn` because the SIMD ones are
/// `#[target_feature]` functions: calling one on a CPU without the feature is undefined behaviour.
pub(super) struct Table {
    /// `Σ a·b`.
    pub dot: unsafe fn(&[f32], &[f32]) -> f32,
    /// `Σ x²`.
    pub sum_sq: unsafe fn(&[f32]) -> f32,
    /// `out = a + b`, returns `Σ out²`.
    pub add_sum_sq: unsafe fn(&[f32], &[f32], &mut [f32]) -> f32,
    /// `out = x * s * w`.
    pub scale_mul: unsafe fn(&[f32], f32, &[f32], &mut [f32]),
    /// `out = a + b`.
    pub add: unsafe fn(&[f32], &[f32], &mut [f32]),
    /// `out = a * b`.
    pub mul: unsafe fn(&[f32], &[f32], &mut [f32]),
    /// `out = silu(x)`.
    pub silu: unsafe fn(&[f32], &mut [f32]),
    /// `out = silu(gate) * up`.
    pub swiglu: unsafe fn(&[f32], &[f32], &mut [f32]),
    /// `max(x * scale)` (`-inf` for an empty row).
    pub max_scaled: unsafe fn(&[f32], f32) -> f32,
    /// `x = exp(x * scale - shift)` in place, returns the sum of the new `x`.
    pub exp_shift: unsafe fn(&mut [f32], f32, f32) -> f32,
    /// `x *= s` in place.
    pub scale: unsafe fn(&mut [f32], f32),
    /// `y += alpha * x`.
    pub axpy: unsafe fn(f32, &[f32], &mut [f32]),
    /// `(w, b_rows, stride, out)`: `out = Σ_j w[j] · b_j` over the rows
    /// `b_j = b_rows[j·stride ..][..out.len()]` ([`strided_rows`]) for `j < w.len()`: a decode
    /// step's attention output (one KV head's value rows weighted by the probabilities).
    pub weighted_rows: unsafe fn(&[f32], &[f32], usize, &mut [f32]),
    /// Rotate one head row, half layout: `(x, cos, sin, out)` with `cos`/`sin` of `x.len()/2`.
    pub rope_half: RopeRow,
    /// Rotate one head row, interleaved layout: same arguments as `rope_half`.
    pub rope_interleaved: RopeRow,
    /// `outs[i][j] = a_i · b_j` for the `outs.len()` rows `a_i` of `a` and the rows
    /// `b_j = b_rows[j·stride ..][..k]` ([`strided_rows`]), all of length `k` (`k > 0`): the
    /// GEMV inner block, and a decode step's attention scores (key rows of one KV head). Each
    /// `b_j` is loaded once for all the `a_i` (up to 4 at a time), which is what makes batched
    /// decode cheaper than `outs.len()` separate GEMVs.
    pub gemv_t: GemvBlock,
}

/// The kernel table of an ISA the running CPU supports. Holding one is the proof that its
/// `unsafe fn` pointers may be called, which is what makes the methods below safe.
#[derive(Clone, Copy)]
pub(super) struct Kernels(&'static Table);

/// Expands to a safe method that calls the table entry of the same name.
macro_rules! safe_calls {
    ($($name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)?;)*) => {$(
        #[inline]
        pub fn $name(self, $($arg: $ty),*) $(-> $ret)? {
            // SAFETY: a `Kernels` is only built by `Kernels::for_isa`, which checks that the
            // CPU supports the ISA the table was compiled for; the kernels take slices only.
            unsafe { (self.0.$name)($($arg),*) }
        }
    )*};
}

impl Kernels {
    /// The kernels of `isa`, or `None` if this CPU (or this build's target) lacks it.
    pub fn for_isa(isa: Isa) -> Option<Kernels> {
        if !isa.is_supported() {
            return None;
        }
        let table: &'static Table = match isa {
            Isa::Scalar => &super::scalar::TABLE,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => &super::avx2::TABLE,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => &super::avx512::TABLE,
            #[cfg(not(target_arch = "x86_64"))]
            Isa::Avx2 | Isa::Avx512 => return None,
        };
        Some(Kernels(table))
    }

    /// The portable kernels, which need no CPU feature.
    pub fn scalar() -> Kernels {
        Kernels(&super::scalar::TABLE)
    }

    safe_calls! {
        dot(a: &[f32], b: &[f32]) -> f32;
        sum_sq(x: &[f32]) -> f32;
        add_sum_sq(a: &[f32], b: &[f32], out: &mut [f32]) -> f32;
        scale_mul(x: &[f32], s: f32, w: &[f32], out: &mut [f32]);
        add(a: &[f32], b: &[f32], out: &mut [f32]);
        mul(a: &[f32], b: &[f32], out: &mut [f32]);
        silu(x: &[f32], out: &mut [f32]);
        swiglu(gate: &[f32], up: &[f32], out: &mut [f32]);
        max_scaled(x: &[f32], scale: f32) -> f32;
        exp_shift(x: &mut [f32], scale: f32, shift: f32) -> f32;
        scale(x: &mut [f32], s: f32);
        axpy(alpha: f32, x: &[f32], y: &mut [f32]);
        weighted_rows(w: &[f32], b_rows: &[f32], stride: usize, out: &mut [f32]);
        rope_half(x: &[f32], cos: &[f32], sin: &[f32], out: &mut [f32]);
        rope_interleaved(x: &[f32], cos: &[f32], sin: &[f32], out: &mut [f32]);
        gemv_t(a: &[f32], k: usize, b_rows: &[f32], stride: usize, outs: &mut [&mut [f32]]);
    }
}

/// Rows `b[j·stride ..][..k]` of `b`, as many as it holds whole (`stride >= k`; a
/// `stride` of `k` is `b.chunks_exact(k)`): rows of one head in a `[len, heads, k]` tensor.
#[inline]
pub(super) fn strided_rows(b: &[f32], k: usize, stride: usize) -> impl Iterator<Item = &[f32]> {
    b.chunks(stride.max(k)).filter_map(move |row| row.get(..k))
}

/// Constants of the `exp` used by the SIMD kernels (Cephes `expf`): `e^x = 2^n · p(r)` with
/// `n = round(x / ln 2)`, `r = x - n·ln 2` (ln 2 split in two for precision) and `p` a degree-7
/// polynomial; about 1 ulp on the clamped range, against libm's `expf`.
pub(super) mod exp_poly {
    /// Below this `e^x` would be subnormal; inputs are clamped (the result, ~1.2e-38, is 0 for
    /// any sum it joins).
    pub const LO: f32 = -87.336_55;
    /// Above this `2^n` would overflow the exponent field.
    pub const HI: f32 = 88.376_26;
    pub const LOG2E: f32 = std::f32::consts::LOG2_E;
    /// `0.693359375`, exact in 9 bits, so `n * LN2_HI` is exact.
    pub const LN2_HI: f32 = 0.693_359_4;
    pub const LN2_LO: f32 = -2.121_944_4e-4;
    /// Polynomial coefficients, highest degree first:
    /// `p(r) = (..(P[0]·r + P[1])·r ..)·r² + r + 1`.
    pub const P: [f32; 6] = [
        1.987_569_1e-4,
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        1.666_666_5e-1,
        0.5, // Cephes' 5.0000001201e-1 rounds to 0.5 in f32
    ];
}
