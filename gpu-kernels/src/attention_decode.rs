//! Split-KV decode attention (flash-decoding): one new token per sequence against a long KV
//! cache, GQA-aware. Decode reads the whole cache once per token, so the kernels are about
//! bandwidth: keep many bytes in flight on every SM and little math per byte.
//!
//! # Variants
//! - `decode_attn_d{64,128}_{f16,bf16}` (tensor cores, the model's path): grid
//!   `(subgroups, kv_heads, splits)`, [`DECODE_WARPS`] warps, [`decode_smem_bytes`] of shared
//!   memory. A block serves up to [`DECODE_MMA_HEADS`] query heads of one KV group over one
//!   split of the keys, so every K/V byte is read once for all of them. K/V tiles of
//!   [`DECODE_BLOCK_N`] keys stream through a [`DECODE_STAGES`]-deep `cp.async` ring (two tiles,
//!   64 KB at head dim 128, in flight while one is used). Warp `w` takes keys `16w..16w+16` of
//!   every tile: `S = Q·Kᵀ` and `O += P·V` with `mma.m16n8k16` (the group's heads are the A
//!   rows, zero-padded to 16; K by `ldmatrix`, V by `ldmatrix.trans`), online softmax in
//!   registers (log2 domain, row max over the 4-lane quad). At the end of the split the warps
//!   merge through shared memory and write one unnormalised partial per head.
//! - `decode_attn_h{1,2,3,4}_f32` (the simple f32 path): one-warp blocks, no shared memory,
//!   `head_dim / 8` lanes per KV row with 16-byte loads, [`DECODE_TOKENS_AHEAD`] tokens per lane
//!   loaded ahead of the math, up to [`DECODE_MAX_HEADS_PER_BLOCK`] heads per block.
//! - `decode_attn_combine_{f32,f16,bf16}` (`grid.x = heads`, `block.x = head_dim`) rescales and
//!   sums the partial `(acc, max, sum)` of the splits in use (f32 scratch).
//!
//! The key count may live in device memory (`kv_len_dev`, see [`DecodeAttnParams`]): the grid
//! is then sized for the whole cache and blocks past the last key return at once, so a CUDA
//! graph captures one launch for every length.
//!
//! Test: `cargo test --release --test gpu_vs_cpu decode` (`emu::` on the emulated device;
//! `--include-ignored` adds `cuda::`); bench: `cargo bench --bench gpu_kernels -- --only decode_attn`.

use crate::attention_flash::{ldmatrix_bases, load_tile, quad_max, quad_sum};
use crate::elem::{BF16, CHUNK, Elem, F16, MmaElem};
use crate::params::{
    DECODE_BLOCK_N, DECODE_MAX_HEADS_PER_BLOCK, DECODE_MMA_HEADS, DECODE_STAGES,
    DECODE_TOKENS_AHEAD, DECODE_WARPS, DecodeAttnParams, FLASH_WARPS, decode_smem_bytes,
};
use crate::primitives::{
    block_idx_x, block_idx_y, block_idx_z, cp_async_commit_group, cp_async_wait_group,
    dyn_smem_base, exp2_approx, ldmatrix_x4, ldmatrix_x4_trans, shfl_xor_f32, smem_load_f32,
    smem_store_f32, sync_threads, thread_idx_x,
};
use crate::{kernel_entries, unroll4, unroll8, unroll16};

const _: () = assert!(
    DECODE_MAX_HEADS_PER_BLOCK <= 4 && DECODE_TOKENS_AHEAD == 4,
    "per-head and per-token loops of the f32 path use unroll4!"
);
const _: () = assert!(
    DECODE_WARPS == FLASH_WARPS && DECODE_BLOCK_N == 16 * DECODE_WARPS && DECODE_MMA_HEADS == 8,
    "load_tile assumes FLASH_WARPS * 32 threads; each warp owns 16 keys of a tile; heads fill \
     the first 8 mma rows"
);
const _: () = assert!(DECODE_STAGES >= 2 && DECODE_STAGES <= 4);
const _: () = assert!(
    DECODE_WARPS * DECODE_MMA_HEADS * (128 + 2) * 4 <= decode_smem_bytes(128)
        && DECODE_WARPS * DECODE_MMA_HEADS * (64 + 2) * 4 <= decode_smem_bytes(64),
    "the warps' merge fits in the K/V ring"
);

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

/// Tensor-core partial attention of `p.heads_per_block` query heads over one split of the
/// keys; see the module docs.
///
/// # Safety
/// Launched as the module doc says (grid `(heads / kv_heads / heads_per_block, kv_heads,
/// splits)`, `DECODE_WARPS * 32` threads, `decode_smem_bytes(D)` bytes of dynamic shared
/// memory) with `1 <= p.heads_per_block <= DECODE_MMA_HEADS` dividing `heads / kv_heads` and
/// `p.head_dim == D`; `kv_len_dev` is null or points at a `u32`; `q` holds `heads * D`, `k`/`v`
/// hold [`total_keys`] rows of stride `kv_stride` (a multiple of 8), all 16-byte aligned;
/// `part_acc` holds `splits * heads * D` f32 and `part_ml` `splits * heads * 2`.
#[inline(always)]
unsafe fn decode_mma<E: MmaElem, const D: usize>(
    q: *const E,
    k: *const E,
    v: *const E,
    part_acc: *mut f32,
    part_ml: *mut f32,
    kv_len_dev: *const u32,
    p: DecodeAttnParams,
) {
    const BN: usize = DECODE_BLOCK_N;
    const STAGES: usize = DECODE_STAGES;
    let tile_bytes = (BN * D * 2) as u32;
    let (sub, kvh, split) = (block_idx_x(), block_idx_y(), block_idx_z());
    // SAFETY: the caller's contract.
    let kv_len = unsafe { total_keys(kv_len_dev, &p) } as usize;
    let split_len = p.split_len(kv_len as u32) as usize;
    let t0 = split as usize * split_len;
    if t0 >= kv_len {
        // Past the last key (uniform over the block): the combine reads only the splits in use.
        return;
    }
    let t_end = (t0 + split_len).min(kv_len);
    let tiles = (t_end - t0).div_ceil(BN);
    let tid = thread_idx_x() as usize;
    let (warp, lane) = (tid / 32, tid % 32);
    let (g, t) = (lane / 4, lane % 4);
    let hb = p.heads_per_block as usize;
    let h0 = kvh as usize * (p.heads / p.kv_heads) as usize + sub as usize * hb;
    let stride = p.kv_stride as usize;
    let scale = p.scale_log2;
    // Stage `s` of the ring: K tile at `ring + s * 2 * tile_bytes`, V tile right after it.
    let ring = dyn_smem_base();
    let k_tile = |s: usize| ring + (2 * s) as u32 * tile_bytes;

    // SAFETY (whole body): global reads stay inside the rows below `kv_len` of this KV head
    // (tile rows past `t_end` are zero-filled, never read) and the `hb` query heads of this
    // block; shared addresses stay inside the ring of `decode_smem_bytes(D)` bytes; writes go
    // to this split's slots of the scratch buffers.
    unsafe {
        let kb = k.add(kvh as usize * D);
        let vb = v.add(kvh as usize * D);
        unroll4!(s => {
            if s + 1 < STAGES {
                if s < tiles {
                    let row0 = t0 + s * BN;
                    load_tile::<E, D, BN>(k_tile(s), kb, stride, row0, t_end, tid);
                    load_tile::<E, D, BN>(k_tile(s) + tile_bytes, vb, stride, row0, t_end, tid);
                }
                // Empty groups too: the wait below counts groups, one per tile.
                cp_async_commit_group();
            }
        });

        // Q as the A operand, rows = this block's heads (row g; rows 8..16 are zero): per
        // k-step kk, a0 = q[g][16kk + 2t, +1] and a2 = q[g][16kk + 8 + 2t, +1].
        let mut qf = [[0u32; 2]; 8];
        if g < hb {
            let qrow = q.add((h0 + g) * D + 2 * t) as *const u32;
            unroll8!(kk => {
                if kk < D / 16 {
                    qf[kk] = [*qrow.add(8 * kk), *qrow.add(8 * kk + 4)];
                }
            });
        }

        // ldmatrix rows (as in the prefill kernel): K (B of S) key 8·(lane / 16) + lane % 8 of
        // the warp's 16, chunk bit (lane / 8) % 2; V (B of P·V, transposed) key
        // lane % 8 + 8·((lane / 8) % 2), chunk bit lane / 16.
        let k_row = (16 * warp + 8 * (lane / 16) + lane % 8) as u32;
        let v_row = (16 * warp + lane % 8 + 8 * ((lane / 8) % 2)) as u32;
        let k_base = ldmatrix_bases::<D>(ring, k_row, ((lane / 8) % 2) as u32);
        let v_base = ldmatrix_bases::<D>(ring + tile_bytes, v_row, (lane / 16) as u32);

        // Row g's running max (raw score units), this thread's part of its sum, and its output
        // columns 8n + 2t, +1 (the live half of each accumulator fragment).
        let mut m = f32::NEG_INFINITY;
        let mut l = 0.0f32;
        let mut acc = [[0f32; 2]; 16];
        let mut j = 0;
        while j < tiles {
            // Tile j landed (for this thread, then for all after the barrier), and everyone is
            // done with tile j - 1, whose stage the copy below refills.
            cp_async_wait_group::<{ STAGES as u32 - 2 }>();
            sync_threads();
            let next = j + STAGES - 1;
            if next < tiles {
                let st = next % STAGES;
                let row0 = t0 + next * BN;
                load_tile::<E, D, BN>(k_tile(st), kb, stride, row0, t_end, tid);
                load_tile::<E, D, BN>(k_tile(st) + tile_bytes, vb, stride, row0, t_end, tid);
            }
            cp_async_commit_group();
            let stage_off = (2 * (j % STAGES)) as u32 * tile_bytes;

            // S = Q·Kᵀ over this warp's 16 keys: n-tiles of keys 0..8 and 8..16.
            let (mut s0, mut s1) = ([0f32; 4], [0f32; 4]);
            unroll8!(kk => {
                if kk < D / 16 {
                    let a = [qf[kk][0], 0, qf[kk][1], 0];
                    let b = ldmatrix_x4(k_base[kk % 4] + stage_off + ((kk / 4) * 128) as u32);
                    s0 = E::mma(a, [b[0], b[1]], s0);
                    s1 = E::mma(a, [b[2], b[3]], s1);
                }
            });
            let mut sc = [s0[0], s0[1], s1[0], s1[1]];
            let key0 = t0 + j * BN + 16 * warp;
            if key0 + 16 > t_end {
                unroll4!(e => {
                    if key0 + 8 * (e / 2) + 2 * t + e % 2 >= t_end {
                        sc[e] = f32::NEG_INFINITY;
                    }
                });
            }

            // Online softmax of row g: new max, rescale, P = 2^(S·scale - max·scale).
            let mut mx = m;
            unroll4!(e => {
                mx = mx.max(sc[e]);
            });
            mx = quad_max(mx);
            // No valid key yet: keep max -inf and use 0 as the base (no -inf - -inf).
            let base = if mx == f32::NEG_INFINITY {
                0.0
            } else {
                mx * scale
            };
            let rescale = exp2_approx(m * scale - base);
            m = mx;
            let mut pr = [0f32; 4];
            unroll4!(e => {
                pr[e] = exp2_approx(sc[e] * scale - base);
            });
            l = l * rescale + (pr[0] + pr[1]) + (pr[2] + pr[3]);
            let a = [E::pack2(pr[0], pr[1]), 0, E::pack2(pr[2], pr[3]), 0];

            // O += P·V over the same 16 keys, two 8-column n-tiles per ldmatrix.x4.trans.
            unroll8!(dp => {
                if dp < D / 16 {
                    let b = ldmatrix_x4_trans(v_base[dp % 4] + stage_off + ((dp / 4) * 128) as u32);
                    let (c0, c1) = (acc[2 * dp], acc[2 * dp + 1]);
                    let d0 = E::mma(a, [b[0], b[1]], [c0[0] * rescale, c0[1] * rescale, 0.0, 0.0]);
                    let d1 = E::mma(a, [b[2], b[3]], [c1[0] * rescale, c1[1] * rescale, 0.0, 0.0]);
                    acc[2 * dp] = [d0[0], d0[1]];
                    acc[2 * dp + 1] = [d1[0], d1[1]];
                }
            });
            j += 1;
        }

        // Merge the warps through the (now idle) ring: per warp and head row, the max (log2
        // units), the sum and the D accumulators, f32.
        cp_async_wait_group::<0>();
        sync_threads();
        let l = quad_sum(l);
        let rows = DECODE_WARPS * DECODE_MMA_HEADS;
        let ml_at = |w: usize, r: usize| ring + (2 * (w * DECODE_MMA_HEADS + r)) as u32 * 4;
        let acc_at = |w: usize, r: usize, c: usize| {
            ring + ((2 * rows) + (w * DECODE_MMA_HEADS + r) * D + c) as u32 * 4
        };
        if g < hb {
            unroll16!(n => {
                if n < D / 8 {
                    smem_store_f32(acc_at(warp, g, 8 * n + 2 * t), acc[n][0]);
                    smem_store_f32(acc_at(warp, g, 8 * n + 2 * t + 1), acc[n][1]);
                }
            });
            if t == 0 {
                smem_store_f32(ml_at(warp, g), m * scale);
                smem_store_f32(ml_at(warp, g) + 4, l);
            }
        }
        sync_threads();
        let mut i = tid;
        while i < hb * D {
            let (r, c) = (i / D, i % D);
            let mut mw = [0f32; DECODE_WARPS];
            let mut big = f32::NEG_INFINITY;
            unroll4!(w => {
                mw[w] = smem_load_f32(ml_at(w, r));
                big = big.max(mw[w]);
            });
            let (mut num, mut den) = (0.0f32, 0.0f32);
            unroll4!(w => {
                // A warp that saw no key of this split holds max -inf and nothing else.
                if mw[w] != f32::NEG_INFINITY {
                    let f = exp2_approx(mw[w] - big);
                    num += f * smem_load_f32(acc_at(w, r, c));
                    den += f * smem_load_f32(ml_at(w, r) + 4);
                }
            });
            let slot = split as usize * p.heads as usize + h0 + r;
            *part_acc.add(slot * D + c) = num;
            if c == 0 {
                *part_ml.add(2 * slot) = big;
                *part_ml.add(2 * slot + 1) = den;
            }
            i += DECODE_WARPS * 32;
        }
    }
}

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
/// points at a `u32`; `q` holds `heads * head_dim`, `k`/`v` hold [`total_keys`] rows of stride
/// `kv_stride`, all 16-byte aligned with `head_dim` and `kv_stride` multiples of 8 and
/// `head_dim / 8` a power of two <= 32; `part_acc` holds `splits * heads * head_dim` f32 and
/// `part_ml` `splits * heads * 2`.
#[inline(always)]
unsafe fn decode_simt<E: Elem, const G: usize>(
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
    }
}

/// f32 path: one entry point per heads-per-block count: registers are allocated per kernel, so the
/// one-head variant (no GQA) is not held to the four-head variant's register budget.
macro_rules! decode_variants {
    ($($body:ident = $g:literal: $($sym:ident = $ty:ty),+;)+) => {$(
        /// [`decode_simt`] with a fixed number of heads per block.
        ///
        /// # Safety
        /// See [`decode_simt`]; `p.heads_per_block` must equal this variant's count.
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
            unsafe { decode_simt::<E, $g>(q, k, v, part_acc, part_ml, kv_len_dev, p) }
        }
        kernel_entries! {
            $body(q: *const E, k: *const E, v: *const E, part_acc: *mut f32, part_ml: *mut f32, kv_len_dev: *const u32, p: DecodeAttnParams);
            $($sym = $ty),+
        }
    )+};
}

decode_variants! {
    decode_attn_h1 = 1: decode_attn_h1_f32 = f32;
    decode_attn_h2 = 2: decode_attn_h2_f32 = f32;
    decode_attn_h3 = 3: decode_attn_h3_f32 = f32;
    decode_attn_h4 = 4: decode_attn_h4_f32 = f32;
}

/// Head dim 64 (SmolLM2); see [`decode_mma`].
///
/// # Safety
/// As [`decode_mma`] with `D = 64`.
#[inline(always)]
unsafe fn decode_attn_d64<E: MmaElem>(
    q: *const E,
    k: *const E,
    v: *const E,
    part_acc: *mut f32,
    part_ml: *mut f32,
    kv_len_dev: *const u32,
    p: DecodeAttnParams,
) {
    // SAFETY: forwarded contract.
    unsafe { decode_mma::<E, 64>(q, k, v, part_acc, part_ml, kv_len_dev, p) }
}

/// Head dim 128 (Llama 7B/8B); see [`decode_mma`].
///
/// # Safety
/// As [`decode_mma`] with `D = 128`.
#[inline(always)]
unsafe fn decode_attn_d128<E: MmaElem>(
    q: *const E,
    k: *const E,
    v: *const E,
    part_acc: *mut f32,
    part_ml: *mut f32,
    kv_len_dev: *const u32,
    p: DecodeAttnParams,
) {
    // SAFETY: forwarded contract.
    unsafe { decode_mma::<E, 128>(q, k, v, part_acc, part_ml, kv_len_dev, p) }
}

kernel_entries! {
    decode_attn_d64(q: *const E, k: *const E, v: *const E, part_acc: *mut f32, part_ml: *mut f32, kv_len_dev: *const u32, p: DecodeAttnParams);
    decode_attn_d64_f16 = F16, decode_attn_d64_bf16 = BF16,
}

kernel_entries! {
    decode_attn_d128(q: *const E, k: *const E, v: *const E, part_acc: *mut f32, part_ml: *mut f32, kv_len_dev: *const u32, p: DecodeAttnParams);
    decode_attn_d128_f16 = F16, decode_attn_d128_bf16 = BF16,
}

/// `out[h, :] = Σ_s 2^(m_s - M) acc_s / Σ_s 2^(m_s - M) l_s` over the splits in use, in one
/// pass with a running max. Eight splits are loaded at a time: a loop of one dependent load
/// per split was a latency chain as long as the split count (tens of microseconds at 33
/// splits under GQA).
///
/// # Safety
/// `grid.x = heads`, `block.x = head_dim`; `kv_len_dev` and the scratch buffers as
/// the partial kernels saw and wrote them; `out` holds `heads * head_dim` elements.
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
        let (mut num, mut den) = (0.0f32, 0.0f32);
        let mut s0 = 0;
        while s0 < splits {
            let mut ms = [f32::NEG_INFINITY; 8];
            let (mut ls, mut acc) = ([0f32; 8], [0f32; 8]);
            unroll8!(u => {
                if s0 + u < splits {
                    let slot = (s0 + u) * heads + h;
                    ms[u] = *part_ml.add(2 * slot);
                    ls[u] = *part_ml.add(2 * slot + 1);
                    acc[u] = *part_acc.add(slot * d + i);
                }
            });
            let mut mx = m;
            unroll8!(u => {
                mx = mx.max(ms[u]);
            });
            // Every split in use saw a key (finite max); skip anything else rather than
            // form -inf - -inf.
            if mx != f32::NEG_INFINITY {
                let c = exp2_approx(m - mx);
                num *= c;
                den *= c;
                unroll8!(u => {
                    if ms[u] != f32::NEG_INFINITY {
                        let f = exp2_approx(ms[u] - mx);
                        num += f * acc[u];
                        den += f * ls[u];
                    }
                });
                m = mx;
            }
            s0 += 8;
        }
        *out.add(h * d + i) = E::store(num / den);
    }
}

kernel_entries! {
    decode_attn_combine(part_acc: *const f32, part_ml: *const f32, out: *mut E, kv_len_dev: *const u32, p: DecodeAttnParams);
    decode_attn_combine_f32 = f32, decode_attn_combine_f16 = F16, decode_attn_combine_bf16 = BF16,
}
