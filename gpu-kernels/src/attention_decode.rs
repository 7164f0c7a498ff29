//! Split-KV decode attention (flash-decoding): one new token per sequence against a long KV
//! cache, GQA-aware.
//!
//! Variants: `decode_attn_h{1,2,3,4}_{f32,f16,bf16}` (partials for 1-4 query heads per block)
//! and `decode_attn_combine_{f32,f16,bf16}`.
//! Decode reads the whole cache once per token, so the kernel is about bandwidth: the keys are
//! split over many one-warp blocks (grid `(subgroups, kv_heads, splits)`, `block.x = 32`), no
//! shared memory, no barrier. A KV row of `head_dim` elements is read by `head_dim / 8` lanes
//! with 16-byte loads, so a warp walks `32 / (head_dim / 8)` tokens at once (4 for d = 64, 2
//! for d = 128) and loads [`DECODE_TOKENS_AHEAD`] tokens per lane ahead of the math. Each block serves up to
//! [`DECODE_MAX_HEADS_PER_BLOCK`] query heads of its KV group, so K/V are read once for them.
//! Online softmax in registers (log2 domain); partial `(acc, max, sum)` per split go to f32
//! scratch; the combine kernel (`grid.x = heads`, `block.x = head_dim`) rescales and sums them.
//! The key count may live in device memory (`kv_len_dev`, see [`DecodeAttnParams`]): the grid
//! is then sized for the whole cache and blocks past the last key return at once, so a CUDA
//! graph captures one launch for every length.
//! Test: `cargo test --release --test gpu_vs_cpu -- --include-ignored attention`;
//! bench: `cargo bench --bench gpu_kernels -- --only decode_attn`.

use crate::elem::{BF16, CHUNK, Elem, F16};
use crate::{kernel_entries, unroll4};
const _: () = assert!(
    DECODE_MAX_HEADS_PER_BLOCK <= 4,
    "per-head loops use unroll4!"
);
use crate::params::{DECODE_MAX_HEADS_PER_BLOCK, DECODE_TOKENS_AHEAD, DecodeAttnParams};
use crate::primitives::{
    block_idx_x, block_idx_y, block_idx_z, exp2_approx, shfl_xor_f32, thread_idx_x,
};

/// Online-softmax state of one query head on one lane: running max, sum, and the lane's
/// 8 accumulated output elements.
#[derive(Clone, Copy)]
struct Running {
    m: f32,
    l: f32,
    acc: [f32; CHUNK],
}

impl Running {
    const EMPTY: Running = Running {
        m: f32::NEG_INFINITY,
        l: 0.0,
        acc: [0.0; CHUNK],
    };

    /// Folds in one key with log2-domain score `s` and value chunk `v`.
    #[inline(always)]
    fn push(&mut self, s: f32, v: &[f32; CHUNK]) {
        let m = self.m.max(s);
        let (c, p) = (exp2_approx(self.m - m), exp2_approx(s - m));
        self.l = self.l * c + p;
        for e in 0..CHUNK {
            self.acc[e] = self.acc[e] * c + p * v[e];
        }
        self.m = m;
    }

    /// Merges the state held by lane `lane ^ mask`.
    #[inline(always)]
    fn merge_lane(&mut self, mask: u32) {
        let (om, ol) = (shfl_xor_f32(self.m, mask), shfl_xor_f32(self.l, mask));
        let m = self.m.max(om);
        // Both empty: keep the empty state (exp2(-inf - -inf) would be NaN).
        let (c1, c2) = if m == f32::NEG_INFINITY {
            (0.0, 0.0)
        } else {
            (exp2_approx(self.m - m), exp2_approx(om - m))
        };
        self.l = self.l * c1 + ol * c2;
        for e in 0..CHUNK {
            let o = shfl_xor_f32(self.acc[e], mask);
            self.acc[e] = self.acc[e] * c1 + o * c2;
        }
        self.m = m;
    }
}

/// Sum over the `lanes` lanes that share one KV row (a power of two up to 32).
#[inline(always)]
fn row_sum(mut v: f32, lanes: u32) -> f32 {
    let mut mask = lanes / 2;
    while mask > 0 {
        v += shfl_xor_f32(v, mask);
        mask /= 2;
    }
    v
}

/// The number of keys: `p.kv_len` plus the device-side count when there is one.
///
/// # Safety
/// `kv_len_dev` is null or points at a `u32`.
#[inline(always)]
unsafe fn total_keys(kv_len_dev: *const u32, p: &DecodeAttnParams) -> u32 {
    if kv_len_dev.is_null() {
        p.kv_len
    } else {
        // SAFETY: the caller's contract.
        p.kv_len + unsafe { *kv_len_dev }
    }
}

/// Partial attention of `G` query heads over one split of the keys.
///
/// # Safety
/// Launched as the module doc says with `G == p.heads_per_block`; `kv_len_dev` is null or
/// points at a `u32`; `q` holds `heads * head_dim`, `k`/`v` hold [`total_keys`] rows of stride
/// `kv_stride`, all 16-byte aligned with `head_dim` and `kv_stride` multiples of 8 and
/// `head_dim / 8` a power of two <= 32; `part_acc` holds `splits * heads * head_dim` f32 and
/// `part_ml` `splits * heads * 2`.
#[inline(always)]
unsafe fn decode_partial<E: Elem, const G: usize>(
    q: *const E,
    k: *const E,
    v: *const E,
    part_acc: *mut f32,
    part_ml: *mut f32,
    kv_len_dev: *const u32,
    p: DecodeAttnParams,
) {
    // Sub-groups of one KV head run side by side (x), so their K/V re-reads hit L2.
    let (sub, kvh, split) = (block_idx_x(), block_idx_y(), block_idx_z());
    // SAFETY: the caller's contract.
    let kv_len = unsafe { total_keys(kv_len_dev, &p) };
    let split_len = p.split_len(kv_len);
    if split * split_len >= kv_len {
        // Past the last key (uniform over the block): the combine reads only the splits in use.
        return;
    }
    let lane = thread_idx_x();
    let d = p.head_dim as usize;
    let lanes_per_row = p.head_dim / CHUNK as u32;
    let rows_per_warp = 32 / lanes_per_row;
    let (row_in_warp, chunk) = (lane / lanes_per_row, (lane % lanes_per_row) as usize);
    let group = p.heads / p.kv_heads;
    let h0 = (kvh * group + sub * G as u32) as usize;
    let t_end = ((split + 1) * split_len).min(kv_len);
    let kv_off = kvh as usize * d + chunk * CHUNK;
    // SAFETY (whole body): head h0 + g < heads, token t < kv_len, chunk offsets inside a row;
    // alignment as the contract states.
    unsafe {
        let mut qr = [[0.0f32; CHUNK]; G];
        let mut st = [Running::EMPTY; G];
        // `unroll4!` + `g < G` keeps every per-head array index a constant (registers, not a
        // stack frame); G <= DECODE_MAX_HEADS_PER_BLOCK = 4.
        unroll4!(g => {
            if g < G {
                qr[g] = E::load_chunk(q, (h0 + g) * d + chunk * CHUNK);
                for e in 0..CHUNK {
                    qr[g][e] *= p.scale_log2;
                }
            }
        });
        // Every lane runs the same number of steps (shuffles need the whole warp); a lane whose
        // token is past the split folds nothing but still joins the row sums.
        let fold = |st: &mut [Running; G], kc: &[f32; CHUNK], vc: &[f32; CHUNK], valid: bool| {
            unroll4!(g => {
                if g < G {
                    let mut s = 0.0;
                    for e in 0..CHUNK {
                        s += qr[g][e] * kc[e];
                    }
                    let s = row_sum(s, lanes_per_row);
                    if valid {
                        st[g].push(s, vc);
                    }
                }
            });
        };
        let row_at = |t: u32| t as usize * p.kv_stride as usize + kv_off;
        let zero = [0.0f32; CHUNK];
        // DECODE_TOKENS_AHEAD tokens per lane in flight: load all, then fold.
        let mut tw = split * split_len;
        while tw < t_end {
            let mut kc = [zero; DECODE_TOKENS_AHEAD];
            let mut vc = [zero; DECODE_TOKENS_AHEAD];
            unroll4!(u => {
                let t = tw + row_in_warp + u as u32 * rows_per_warp;
                if t < t_end {
                    kc[u] = E::load_chunk(k, row_at(t));
                    vc[u] = E::load_chunk(v, row_at(t));
                }
            });
            unroll4!(u => {
                let t = tw + row_in_warp + u as u32 * rows_per_warp;
                fold(&mut st, &kc[u], &vc[u], t < t_end);
            });
            tw += DECODE_TOKENS_AHEAD as u32 * rows_per_warp;
        }
        // Merge the rows a warp walked side by side (lanes with the same chunk index).
        let mut mask = lanes_per_row;
        while mask < 32 {
            unroll4!(g => {
                if g < G {
                    st[g].merge_lane(mask);
                }
            });
            mask *= 2;
        }
        if row_in_warp == 0 {
            unroll4!(g => {
                if g < G {
                    let slot = split as usize * p.heads as usize + h0 + g;
                    f32::store_chunk(part_acc, slot * d + chunk * CHUNK, st[g].acc);
                    if chunk == 0 {
                        *part_ml.add(2 * slot) = st[g].m;
                        *part_ml.add(2 * slot + 1) = st[g].l;
                    }
                }
            });
        }
    }
}

/// One entry point per heads-per-block count: registers are allocated per kernel, so the
/// one-head variant (no GQA) is not held to the four-head variant's register budget.
macro_rules! decode_variants {
    ($($body:ident = $g:literal: $($sym:ident = $ty:ty),+;)+) => {$(
        /// [`decode_partial`] with a fixed number of heads per block.
        ///
        /// # Safety
        /// See [`decode_partial`]; `p.heads_per_block` must equal this variant's count.
        #[inline(always)]
        pub unsafe fn $body<E: Elem>(
            q: *const E,
            k: *const E,
            v: *const E,
            part_acc: *mut f32,
            part_ml: *mut f32,
            kv_len_dev: *const u32,
            p: DecodeAttnParams,
        ) {
            // SAFETY: forwarded contract.
            unsafe { decode_partial::<E, $g>(q, k, v, part_acc, part_ml, kv_len_dev, p) }
        }
        kernel_entries! {
            $body(q: *const E, k: *const E, v: *const E, part_acc: *mut f32, part_ml: *mut f32, kv_len_dev: *const u32, p: DecodeAttnParams);
            $($sym = $ty),+
        }
    )+};
}

decode_variants! {
    decode_attn_h1 = 1: decode_attn_h1_f32 = f32, decode_attn_h1_f16 = F16, decode_attn_h1_bf16 = BF16;
    decode_attn_h2 = 2: decode_attn_h2_f32 = f32, decode_attn_h2_f16 = F16, decode_attn_h2_bf16 = BF16;
    decode_attn_h3 = 3: decode_attn_h3_f32 = f32, decode_attn_h3_f16 = F16, decode_attn_h3_bf16 = BF16;
    decode_attn_h4 = 4: decode_attn_h4_f32 = f32, decode_attn_h4_f16 = F16, decode_attn_h4_bf16 = BF16;
}

/// `out[h, :] = Σ_s 2^(m_s - M) acc_s / Σ_s 2^(m_s - M) l_s` over the splits in use.
///
/// # Safety
/// `grid.x = heads`, `block.x = head_dim`; `kv_len_dev` and the scratch buffers as
/// [`decode_partial`] saw and wrote them; `out` holds `heads * head_dim` elements.
#[inline(always)]
pub unsafe fn decode_attn_combine<E: Elem>(
    part_acc: *const f32,
    part_ml: *const f32,
    out: *mut E,
    kv_len_dev: *const u32,
    p: DecodeAttnParams,
) {
    let (h, i) = (block_idx_x() as usize, thread_idx_x() as usize);
    let (heads, d) = (p.heads as usize, p.head_dim as usize);
    // SAFETY: h < heads, i < head_dim, s < the splits the partial kernel wrote.
    unsafe {
        let splits = p.splits_used(total_keys(kv_len_dev, &p)) as usize;
        let mut m = f32::NEG_INFINITY;
        for s in 0..splits {
            m = m.max(*part_ml.add(2 * (s * heads + h)));
        }
        let (mut num, mut den) = (0.0f32, 0.0f32);
        for s in 0..splits {
            let slot = s * heads + h;
            let ms = *part_ml.add(2 * slot);
            if ms != f32::NEG_INFINITY {
                let c = exp2_approx(ms - m);
                num += c * *part_acc.add(slot * d + i);
                den += c * *part_ml.add(2 * slot + 1);
            }
        }
        *out.add(h * d + i) = E::store(num / den);
    }
}

kernel_entries! {
    decode_attn_combine(part_acc: *const f32, part_ml: *const f32, out: *mut E, kv_len_dev: *const u32, p: DecodeAttnParams);
    decode_attn_combine_f32 = f32, decode_attn_combine_f16 = F16, decode_attn_combine_bf16 = BF16,
}
