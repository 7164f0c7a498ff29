//! The f32 path of split-KV decode attention (`decode_attn_h{1,2,3,4}_f32`): one-warp blocks,
//! no tensor cores, `head_dim / 8` lanes per KV row with 16-byte loads,
//! [`DECODE_TOKENS_AHEAD`] tokens per lane loaded ahead of the math, up to
//! [`DECODE_MAX_HEADS_PER_BLOCK`] query heads per block. Its own file because it shares only
//! the plan and the end of a split ([`finish_split`]) with the tensor-core kernels of
//! [`crate::attention_decode`], whose docs describe the split-KV scheme.
//!
//! Test and bench: as `attention_decode.rs` (the f32 rows of `decode_attention_matches_reference`).

use crate::attention_decode::{finish_split, total_keys};
use crate::elem::{CHUNK, Elem};
use crate::params::{DECODE_MAX_HEADS_PER_BLOCK, DECODE_TOKENS_AHEAD, DecodeAttnParams};
use crate::primitives::{
    block_idx_x, block_idx_y, block_idx_z, dyn_smem_base, exp2_approx, shfl_xor_f32, thread_idx_x,
};
use crate::{kernel_entries, unroll4};

const _: () = assert!(
    DECODE_MAX_HEADS_PER_BLOCK <= 4 && DECODE_TOKENS_AHEAD == 4,
    "per-head and per-token loops use unroll4!"
);
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

    /// Folds in a block of keys with log2-domain scores `s` (`-inf` for keys past the split)
    /// and value chunks `v`: one max and one rescale for the whole block, and independent
    /// exponentials, so the per-key dependency chain of a key-at-a-time update is gone.
    #[inline(always)]
    fn push_block(
        &mut self,
        s: &[f32; DECODE_TOKENS_AHEAD],
        v: &[[f32; CHUNK]; DECODE_TOKENS_AHEAD],
    ) {
        let mut m = self.m;
        unroll4!(u => {
            m = m.max(s[u]);
        });
        if m == f32::NEG_INFINITY {
            return; // nothing valid yet (exp2(-inf - -inf) would be NaN)
        }
        let c = exp2_approx(self.m - m);
        self.l *= c;
        for e in 0..CHUNK {
            self.acc[e] *= c;
        }
        unroll4!(u => {
            let p = exp2_approx(s[u] - m);
            self.l += p;
            for e in 0..CHUNK {
                self.acc[e] += p * v[u][e];
            }
        });
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

/// The f32 path: partial attention of `G` query heads over one split of the keys, one warp.
///
/// # Safety
/// Launched as the module doc says with `G == p.heads_per_block`; `kv_len_dev` is null or
/// points at a `u32`; `q` holds `heads * head_dim`, `k`/`v` hold `p.max_keys` rows of stride
/// `kv_stride`, all 16-byte aligned with `head_dim` and `kv_stride` multiples of 8 and
/// `head_dim / 8` a power of two <= 32; `part_acc` holds `splits * heads * head_dim` f32 and
/// `part_ml` `splits * heads * 2`; `out` holds `heads * head_dim`; `counters` holds
/// `heads / G` words, zero between launches; at least 4 bytes of dynamic shared memory.
#[inline(always)]
#[allow(clippy::too_many_arguments)] // a kernel's signature
unsafe fn decode_simt<E: Elem, const G: usize>(
    q: *const E,
    k: *const E,
    v: *const E,
    part_acc: *mut f32,
    part_ml: *mut f32,
    out: *mut E,
    counters: *mut u32,
    kv_len_dev: *const u32,
    p: DecodeAttnParams,
) {
    // Sub-groups of one KV head run side by side (x), so their K/V re-reads hit L2.
    let (sub, kvh, split) = (block_idx_x(), block_idx_y(), block_idx_z());
    // SAFETY: the caller's contract.
    let kv_len = unsafe { total_keys(kv_len_dev, &p) };
    let split_len = p.split_len(kv_len);
    if split * split_len >= kv_len {
        // Past the last key (uniform over the block): neither counted nor merged.
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
    // alignment as the contract states; `finish_split` as in `decode_mma`.
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
        let row_at = |t: u32| t as usize * p.kv_stride as usize + kv_off;
        // DECODE_TOKENS_AHEAD tokens per lane in flight: load all (kept packed as stored), then
        // score all, then fold them as one block. Every lane runs the same steps (shuffles
        // need the whole warp); a lane whose token is past the split scores it -inf.
        let mut tw = split * split_len;
        while tw < t_end {
            let mut kp = [E::PACKED_ZERO; DECODE_TOKENS_AHEAD];
            let mut vp = [E::PACKED_ZERO; DECODE_TOKENS_AHEAD];
            unroll4!(u => {
                let t = tw + row_in_warp + u as u32 * rows_per_warp;
                if t < t_end {
                    kp[u] = E::load_packed(k, row_at(t));
                    vp[u] = E::load_packed(v, row_at(t));
                }
            });
            let mut vc = [[0.0f32; CHUNK]; DECODE_TOKENS_AHEAD];
            unroll4!(u => {
                vc[u] = E::unpack(vp[u]);
            });
            unroll4!(g => {
                if g < G {
                    let mut sc = [0.0f32; DECODE_TOKENS_AHEAD];
                    unroll4!(u => {
                        let kc = E::unpack(kp[u]);
                        let mut dot = 0.0;
                        for e in 0..CHUNK {
                            dot += qr[g][e] * kc[e];
                        }
                        sc[u] = dot;
                    });
                    unroll4!(u => {
                        let t = tw + row_in_warp + u as u32 * rows_per_warp;
                        let dot = row_sum(sc[u], lanes_per_row);
                        sc[u] = if t < t_end { dot } else { f32::NEG_INFINITY };
                    });
                    st[g].push_block(&sc, &vc);
                }
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
        finish_split(
            part_acc,
            part_ml,
            out,
            counters.add(h0 / G),
            dyn_smem_base(),
            (h0, G, p.splits_used(kv_len) as usize),
            (lane as usize, 32),
            &p,
        );
    }
}

// One entry point per heads-per-block count: registers are allocated per kernel, so the
// one-head variant (no GQA) is not held to the four-head variant's register budget.
kernel_entries! {
    decode_simt(q: *const E, k: *const E, v: *const E, part_acc: *mut f32, part_ml: *mut f32, out: *mut E, counters: *mut u32, kv_len_dev: *const u32, p: DecodeAttnParams);
    decode_attn_h1_f32 = [f32, 1], decode_attn_h2_f32 = [f32, 2],
    decode_attn_h3_f32 = [f32, 3], decode_attn_h4_f32 = [f32, 4],
}
