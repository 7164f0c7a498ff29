//! The x86 quantized kernels, written once: [`x86_kernels!`] expands them in the `avx2` and
//! `avx512` modules, which differ only in their `#[target_feature]` list and in the 32-lane
//! u8·i8 → i32×8 dot primitive (`maddubs` + `madd` on AVX2, one `vpdpbusd` with VNNI).
//!
//! A kernel computes a tile of weight rows × activation rows. Per block of 32: each activation
//! row's block is loaded once for the tile's weight rows; each weight row's nibbles are unpacked
//! once to 32 × u8 (low nibbles are elements 0..16, high nibbles 16..32, as ggml stores them:
//! one 128-bit broadcast, a per-lane shift by 0 or 4, a mask) and
//! dotted with every activation block; `d_w·d_a` scales the eight i32 lane sums into an f32
//! accumulator per (row, row) pair and the min term `m_w·s_a` goes to a scalar one. The Q4
//! prefill kernels (`dot_q4_x4`, 4 activation rows) first sum each pair's lanes in integers
//! (`hadd`), so that the scales and min terms of 8 pairs are two vector FMAs. Q8_0's signed
//! weights take the abs/sign trick
//! (`|w|` as u8, `sign(a, w)` as i8). Activations are quantized with `cvtps_epi32` (round half
//! to even, as the scalar reference) and packed with saturating packs.

/// Calls `$kernel::<R, N, ..>` with `R = w.len()`, `N = acts.len()` for the tile shapes the
/// product uses (up to [`super::DECODE_TILE`], [`super::DECODE_RESIDUAL_TILE`] and
/// [`super::PREFILL_TILE`]) and stores the
/// `R × N` results in `out`; other shapes go row by row.
macro_rules! by_tile {
    ($kernel:ident; $w:expr, $acts:expr, $out:expr) => {{
        let (w, acts, out): (&[&[u8]], &[ActRow<'_>], &mut [f32]) = ($w, $acts, $out);
        let tiled = $crate::backend::cpu::quant::x86::by_tile!(@shapes $kernel; w, acts, out;
            (4, 1) (3, 1) (2, 1) (1, 1) (1, 2) (1, 3) (1, 4) (2, 2) (2, 3) (2, 4)
            (4, 2) (3, 2));
        if !tiled {
            let n = acts.len();
            for (w1, o) in w.iter().zip(out.chunks_mut(n.max(1))) {
                let w1 = std::slice::from_ref(w1);
                $crate::backend::cpu::quant::x86::by_tile!(@shapes $kernel; w1, acts, o;
                    (1, 1) (1, 2) (1, 3) (1, 4));
            }
        }
    }};
    // Runs the kernel when (R, N) is one of the listed shapes; evaluates to whether it did.
    (@shapes $kernel:ident; $w:ident, $acts:ident, $out:ident;
     $(($r:literal, $n:literal))*) => {
        match ($w.len(), $acts.len()) {
            $(($r, $n) => {
                if let (Some(w), Some(a), Some(o)) = (
                    $w.first_chunk::<$r>(),
                    $acts.first_chunk::<$n>(),
                    $out.first_chunk_mut::<{ $r * $n }>(),
                ) {
                    let res = $kernel::<$r, $n>(w, a);
                    for (o, v) in o.iter_mut().zip(res.as_flattened()) {
                        *o = *v;
                    }
                }
                true
            })*
            _ => false,
        }
    };
}

/// Calls `$kernel::<R, $bytes, $min>` (a [`super::QUAD_TILE`] kernel) with `R = w.len()` (1
/// to 4) and stores the `R × 4` results in `out`; other row counts go one row at a time.
macro_rules! by_rows {
    ($kernel:ident, $bytes:ident, $min:literal; $w:expr, $acts:expr, $out:expr) => {{
        let (w, acts, out): (&[&[u8]], &ActQuad<'_>, &mut [f32]) = ($w, $acts, $out);
        let tiled = $crate::backend::cpu::quant::x86::by_rows!(@rows $kernel, $bytes, $min;
            w, acts, out; 4 3 2 1);
        if !tiled {
            for (w1, o) in w.iter().zip(out.chunks_exact_mut(4)) {
                let w1 = std::slice::from_ref(w1);
                $crate::backend::cpu::quant::x86::by_rows!(@rows $kernel, $bytes, $min;
                    w1, acts, o; 1);
            }
        }
    }};
    // Runs the kernel when `R` is one of the listed counts; evaluates to whether it did.
    (@rows $kernel:ident, $bytes:ident, $min:literal; $w:ident, $acts:ident, $out:ident;
     $($r:literal)*) => {
        match $w.len() {
            $($r => {
                if let (Some(w), Some(o)) =
                    ($w.first_chunk::<$r>(), $out.first_chunk_mut::<{ 4 * $r }>())
                {
                    o.copy_from_slice($kernel::<$r, $bytes, $min>(w, $acts).as_flattened());
                }
                true
            })*
            _ => false,
        }
    };
}

/// Expands the quantized kernel table `TABLE` for the target features `$feat`, using `$dot`
/// (`fn(u8x32, i8x32) -> i32x8`, pairwise sums of four products) as the dot primitive.
macro_rules! x86_kernels {
    ($feat:literal, $dot:ident) => {
        use super::scalar::block_scale;
        use super::{ActQuad, ActRow, QK, Table};
        use crate::loaders::quant::{Q4_0_BLOCK_BYTES, Q4_1_BLOCK_BYTES, Q8_0_BLOCK_BYTES};

        pub(super) static TABLE: Table = Table {
            quantize,
            q8_0,
            q4_0,
            q4_1,
            q4_0_x4,
            q4_1_x4,
        };

        #[inline]
        #[target_feature(enable = $feat)]
        fn ld_f32(c: &[f32; 8]) -> __m256 {
            // SAFETY: `c` is 8 initialised f32; `loadu` has no alignment requirement.
            unsafe { _mm256_loadu_ps(c.as_ptr()) }
        }

        #[inline]
        #[target_feature(enable = $feat)]
        fn ld_f32x4(c: &[f32; 4]) -> __m128 {
            // SAFETY: `c` is 4 initialised f32; `loadu` has no alignment requirement.
            unsafe { _mm_loadu_ps(c.as_ptr()) }
        }

        #[inline]
        #[target_feature(enable = $feat)]
        fn st_f32(c: &mut [f32; 8], v: __m256) {
            // SAFETY: `c` is 8 writable f32; `storeu` has no alignment requirement.
            unsafe { _mm256_storeu_ps(c.as_mut_ptr(), v) }
        }

        #[inline]
        #[target_feature(enable = $feat)]
        fn ld_128(c: &[u8; 16]) -> __m128i {
            // SAFETY: `c` is 16 initialised bytes; `loadu` has no alignment requirement.
            unsafe { _mm_loadu_si128(c.as_ptr().cast()) }
        }

        #[inline]
        #[target_feature(enable = $feat)]
        fn ld_256<T: bytemuck::Pod>(c: &[T; 32]) -> __m256i {
            debug_assert_eq!(size_of::<T>(), 1);
            // SAFETY: `c` is 32 initialised one-byte values; `loadu` needs no alignment.
            unsafe { _mm256_loadu_si256(c.as_ptr().cast()) }
        }

        #[inline]
        #[target_feature(enable = $feat)]
        fn st_256(c: &mut [i8; 32], v: __m256i) {
            // SAFETY: `c` is 32 writable bytes; `storeu` has no alignment requirement.
            unsafe { _mm256_storeu_si256(c.as_mut_ptr().cast(), v) }
        }

        /// The f16 pair at `b` as f32s (F16C, exact).
        #[inline]
        #[target_feature(enable = $feat)]
        fn f16_pair(b: [u8; 4]) -> (f32, f32) {
            let v = _mm_cvtph_ps(_mm_cvtsi32_si128(i32::from_le_bytes(b)));
            (_mm_cvtss_f32(v), _mm_cvtss_f32(_mm_movehdup_ps(v)))
        }

        #[inline]
        #[target_feature(enable = $feat)]
        fn hsum(v: __m256) -> f32 {
            let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
        }

        #[inline]
        #[target_feature(enable = $feat)]
        fn hmax(v: __m256) -> f32 {
            let s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
            let s = _mm_max_ps(s, _mm_movehl_ps(s, s));
            _mm_cvtss_f32(_mm_max_ss(s, _mm_movehdup_ps(s)))
        }

        #[target_feature(enable = $feat)]
        fn quantize(x: &[f32], qs: &mut [i8], d: &mut [f32], s: &mut [f32]) {
            let abs = _mm256_set1_ps(-0.0);
            let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
            let (xb, _) = x.as_chunks::<QK>();
            let (qb, _) = qs.as_chunks_mut::<QK>();
            for ((x, q), (d, s)) in xb.iter().zip(qb).zip(d.iter_mut().zip(s.iter_mut())) {
                let (x8, _) = x.as_chunks::<8>();
                let v: [__m256; 4] = std::array::from_fn(|i| ld_f32(&x8[i]));
                let m01 = _mm256_max_ps(_mm256_andnot_ps(abs, v[0]), _mm256_andnot_ps(abs, v[1]));
                let m23 = _mm256_max_ps(_mm256_andnot_ps(abs, v[2]), _mm256_andnot_ps(abs, v[3]));
                let (scale, inv) = block_scale(hmax(_mm256_max_ps(m01, m23)));
                let inv = _mm256_set1_ps(inv);
                let i: [__m256i; 4] =
                    std::array::from_fn(|j| _mm256_cvtps_epi32(_mm256_mul_ps(v[j], inv)));
                let sum = _mm256_add_epi32(_mm256_add_epi32(i[0], i[1]), _mm256_add_epi32(i[2], i[3]));
                let sum = hsum(_mm256_cvtepi32_ps(sum));
                // packs interleave 128-bit lanes; the permute restores element order.
                let p = _mm256_packs_epi16(
                    _mm256_packs_epi32(i[0], i[1]),
                    _mm256_packs_epi32(i[2], i[3]),
                );
                st_256(q, _mm256_permutevar8x32_epi32(p, order));
                *d = scale;
                *s = scale * sum;
            }
        }

        /// A tile of `R` weight rows of Q4 blocks of `BYTES` (`MIN`: an f16 min follows the
        /// scale, Q4_1; else Q4_0's `−8·d`) against `N` activation rows: `out[r][t]`.
        #[inline]
        #[target_feature(enable = $feat)]
        fn dot_q4<const R: usize, const N: usize, const BYTES: usize, const MIN: bool>(
            w: &[&[u8]; R],
            acts: &[ActRow<'_>; N],
        ) -> [[f32; N]; R] {
            let mut wb: [&[[u8; BYTES]]; R] = [&[]; R];
            let mut aq: [&[[i8; QK]]; N] = [&[]; N];
            let mut nb = usize::MAX;
            for r in 0..R {
                wb[r] = w[r].as_chunks().0;
                nb = nb.min(wb[r].len());
            }
            for t in 0..N {
                aq[t] = acts[t].qs.as_chunks().0;
                nb = nb.min(aq[t].len()).min(acts[t].d.len()).min(acts[t].s.len());
            }
            // Both 128-bit lanes hold the block's 16 bytes; the high lane shifts right by 4.
            let (low, shift) = (_mm256_set1_epi8(0x0F), _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4));
            let mut acc = [[_mm256_setzero_ps(); N]; R];
            let mut acc_min = [[0.0f32; N]; R];
            let mut a = [_mm256_setzero_si256(); N];
            for b in 0..nb {
                for t in 0..N {
                    a[t] = ld_256(&aq[t][b]);
                }
                for r in 0..R {
                    let blk = &wb[r][b];
                    let (d, m) = f16_pair([blk[0], blk[1], blk[2], blk[3]]);
                    let m = if MIN { m } else { -8.0 * d };
                    let Some(qs) = blk.last_chunk::<16>() else {
                        break;
                    };
                    let qs = _mm256_broadcastsi128_si256(ld_128(qs));
                    let wq = _mm256_and_si256(_mm256_srlv_epi32(qs, shift), low);
                    for t in 0..N {
                        let p = _mm256_cvtepi32_ps($dot(wq, a[t]));
                        let scale = _mm256_set1_ps(d * acts[t].d[b]);
                        acc[r][t] = _mm256_fmadd_ps(p, scale, acc[r][t]);
                        acc_min[r][t] += m * acts[t].s[b];
                    }
                }
            }
            let mut out = [[0.0; N]; R];
            for r in 0..R {
                for t in 0..N {
                    out[r][t] = hsum(acc[r][t]) + acc_min[r][t];
                }
            }
            out
        }

        /// The prefill tile of Q4 blocks: `R` (at most 4) weight rows against a group of 4
        /// activation rows. Per block, the four i32×8 dots of a weight row are summed to one
        /// i32×4 (three `hadd`s), two weight rows fill one register, and the scales
        /// (`d_w·d_a`) and the min term (`m_w·s_a`) apply to those 8 pairs as vectors, the
        /// activations' side by side as stored in [`ActQuad`]: two FMAs per two weight rows,
        /// against a convert, a broadcast scale, an FMA and a scalar FMA per pair in
        /// [`dot_q4`], and 2 accumulators instead of 16 (which spilled).
        #[inline]
        #[target_feature(enable = $feat)]
        fn dot_q4_x4<const R: usize, const BYTES: usize, const MIN: bool>(
            w: &[&[u8]; R],
            acts: &ActQuad<'_>,
        ) -> [[f32; 4]; R] {
            let mut wb: [&[[u8; BYTES]]; R] = [&[]; R];
            let aq: [&[[i8; QK]]; 4] = std::array::from_fn(|t| acts.qs[t].as_chunks().0);
            let mut nb = acts.d.len().min(acts.s.len());
            for r in 0..R {
                wb[r] = w[r].as_chunks().0;
                nb = nb.min(wb[r].len());
            }
            for q in aq {
                nb = nb.min(q.len());
            }
            let (low, shift) = (_mm256_set1_epi8(0x0F), _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4));
            // Two rows' f16 (d, m) as [d0, m0, d1, m1, ..] → d and m each over 4 lanes per row.
            let (pick_d, pick_m) = (
                _mm256_setr_epi32(0, 0, 0, 0, 2, 2, 2, 2),
                _mm256_setr_epi32(1, 1, 1, 1, 3, 3, 3, 3),
            );
            // i32×8 of one weight row's block: lanes 0..4 hold the 4 activation rows' sums over
            // the low half of each 128-bit lane's products, lanes 4..8 over the high half.
            let sums = |blk: &[u8; BYTES], a: &[__m256i; 4]| {
                let qs = blk
                    .last_chunk::<16>()
                    .map_or(_mm256_setzero_si256(), |q| _mm256_broadcastsi128_si256(ld_128(q)));
                let wq = _mm256_and_si256(_mm256_srlv_epi32(qs, shift), low);
                let p: [__m256i; 4] = std::array::from_fn(|t| $dot(wq, a[t]));
                _mm256_hadd_epi32(_mm256_hadd_epi32(p[0], p[1]), _mm256_hadd_epi32(p[2], p[3]))
            };
            let word = |blk: &[u8; BYTES]| i32::from_le_bytes([blk[0], blk[1], blk[2], blk[3]]);
            // Rows (2p, 2p + 1) share accumulator p: lanes 0..4 and 4..8, one per act row.
            let pairs = R.div_ceil(2);
            let mut acc = [_mm256_setzero_ps(); 2];
            for b in 0..nb {
                let a: [__m256i; 4] = std::array::from_fn(|t| ld_256(&aq[t][b]));
                let d_a = _mm256_broadcast_ps(&ld_f32x4(&acts.d[b]));
                let s_a = _mm256_broadcast_ps(&ld_f32x4(&acts.s[b]));
                for p in 0..pairs.min(2) {
                    // An odd last row pairs with itself (its duplicate lanes are dropped).
                    let (r0, r1) = (2 * p, (2 * p + 1).min(R - 1));
                    let (b0, b1) = (&wb[r0][b], &wb[r1][b]);
                    let (h0, h1) = (sums(b0, &a), sums(b1, &a));
                    let s = _mm256_add_epi32(
                        _mm256_permute2x128_si256::<0x20>(h0, h1),
                        _mm256_permute2x128_si256::<0x31>(h0, h1),
                    );
                    let dm = _mm_cvtph_ps(_mm_setr_epi32(word(b0), word(b1), 0, 0));
                    let dm = _mm256_castps128_ps256(dm);
                    let d_w = _mm256_permutevar8x32_ps(dm, pick_d);
                    let m_w = if MIN {
                        _mm256_permutevar8x32_ps(dm, pick_m)
                    } else {
                        _mm256_mul_ps(d_w, _mm256_set1_ps(-8.0))
                    };
                    let scale = _mm256_mul_ps(d_w, d_a);
                    acc[p] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), scale, acc[p]);
                    acc[p] = _mm256_fmadd_ps(m_w, s_a, acc[p]);
                }
            }
            let mut out = [[0.0; 4]; R];
            for (p, acc) in acc.iter().enumerate().take(pairs) {
                let mut lanes = [0.0f32; 8];
                st_f32(&mut lanes, *acc);
                for (i, half) in lanes.chunks_exact(4).enumerate() {
                    if let Some(o) = out.get_mut(2 * p + i) {
                        o.copy_from_slice(half);
                    }
                }
            }
            out
        }

        #[inline]
        #[target_feature(enable = $feat)]
        fn dot_q4_0<const R: usize, const N: usize>(
            w: &[&[u8]; R],
            acts: &[ActRow<'_>; N],
        ) -> [[f32; N]; R] {
            dot_q4::<R, N, Q4_0_BLOCK_BYTES, false>(w, acts)
        }

        #[inline]
        #[target_feature(enable = $feat)]
        fn dot_q4_1<const R: usize, const N: usize>(
            w: &[&[u8]; R],
            acts: &[ActRow<'_>; N],
        ) -> [[f32; N]; R] {
            dot_q4::<R, N, Q4_1_BLOCK_BYTES, true>(w, acts)
        }

        /// A tile of `R` Q8_0 weight rows against `N` activation rows: `out[r][t]`.
        #[inline]
        #[target_feature(enable = $feat)]
        fn dot_q8<const R: usize, const N: usize>(
            w: &[&[u8]; R],
            acts: &[ActRow<'_>; N],
        ) -> [[f32; N]; R] {
            let mut wb: [&[[u8; Q8_0_BLOCK_BYTES]]; R] = [&[]; R];
            let mut aq: [&[[i8; QK]]; N] = [&[]; N];
            let mut nb = usize::MAX;
            for r in 0..R {
                wb[r] = w[r].as_chunks().0;
                nb = nb.min(wb[r].len());
            }
            for t in 0..N {
                aq[t] = acts[t].qs.as_chunks().0;
                nb = nb.min(aq[t].len()).min(acts[t].d.len());
            }
            let mut acc = [[_mm256_setzero_ps(); N]; R];
            let mut a = [_mm256_setzero_si256(); N];
            for b in 0..nb {
                for t in 0..N {
                    a[t] = ld_256(&aq[t][b]);
                }
                for r in 0..R {
                    let blk = &wb[r][b];
                    let (d, _) = f16_pair([blk[0], blk[1], 0, 0]);
                    let Some(qs) = blk.last_chunk::<QK>() else {
                        break;
                    };
                    let wq = ld_256(qs);
                    let wabs = _mm256_sign_epi8(wq, wq);
                    for t in 0..N {
                        let p = _mm256_cvtepi32_ps($dot(wabs, _mm256_sign_epi8(a[t], wq)));
                        let scale = _mm256_set1_ps(d * acts[t].d[b]);
                        acc[r][t] = _mm256_fmadd_ps(p, scale, acc[r][t]);
                    }
                }
            }
            let mut out = [[0.0; N]; R];
            for r in 0..R {
                for t in 0..N {
                    out[r][t] = hsum(acc[r][t]);
                }
            }
            out
        }

        #[target_feature(enable = $feat)]
        fn q8_0(w: &[&[u8]], acts: &[ActRow<'_>], out: &mut [f32]) {
            super::x86::by_tile!(dot_q8; w, acts, out)
        }

        #[target_feature(enable = $feat)]
        fn q4_0(w: &[&[u8]], acts: &[ActRow<'_>], out: &mut [f32]) {
            super::x86::by_tile!(dot_q4_0; w, acts, out)
        }

        #[target_feature(enable = $feat)]
        fn q4_1(w: &[&[u8]], acts: &[ActRow<'_>], out: &mut [f32]) {
            super::x86::by_tile!(dot_q4_1; w, acts, out)
        }

        #[target_feature(enable = $feat)]
        fn q4_0_x4(w: &[&[u8]], acts: &ActQuad<'_>, out: &mut [f32]) {
            super::x86::by_rows!(dot_q4_x4, Q4_0_BLOCK_BYTES, false; w, acts, out)
        }

        #[target_feature(enable = $feat)]
        fn q4_1_x4(w: &[&[u8]], acts: &ActQuad<'_>, out: &mut [f32]) {
            super::x86::by_rows!(dot_q4_x4, Q4_1_BLOCK_BYTES, true; w, acts, out)
        }
    };
}

pub(super) use {by_rows, by_tile, x86_kernels};
