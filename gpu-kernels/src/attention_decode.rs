//! Split-KV decode attention (flash-decoding): one new token per sequence against a long KV
//! cache, GQA-aware. Decode reads the whole cache once per token, so the kernels are about
//! bandwidth: keep many bytes in flight on every SM and little math per byte.
//!
//! # Variants
//! - `decode_attn_d{64,128}_{f16,bf16}` (tensor cores, the model's path): grid `(subgroups,
//!   kv_heads, splits)`, [`DECODE_WARPS`] warps, [`decode_smem_bytes`] of shared memory. A block
//!   serves up to [`DECODE_MMA_HEADS`] query heads of one KV group over one split of the keys, so
//!   every K/V byte is read once for all of them. The splits take the cache's tiles of
//!   [`DECODE_BLOCK_N`] keys round-robin (split `s`: tiles `s`, `s + splits`, ...), so all blocks
//!   stream from one stretch of the cache at a time and only its last tile is short (H100, 20 calls
//!   in a graph: GQA KV8 S16384 2.50 -> 2.52 TB/s against contiguous ranges, MHA within 1%). The
//!   tiles stream through a [`DECODE_STAGES`]-deep `cp.async` ring (two tiles, 64 KB at head dim
//!   128, in flight while one is used). Warp `w` takes keys `16w..16w+16` of every tile: `S = Q·Kᵀ`
//!   and `O += P·V` with `mma.m16n8k16` (the group's heads are the A rows, zero-padded to 16; K by
//!   `ldmatrix`, V by `ldmatrix.trans`), online softmax in registers (log2 domain, row max over the
//!   4-lane quad). At the end of the split the warps merge through shared memory and write one
//!   unnormalised partial per head.
//! - `decode_attn_h{1,2,3,4}_f32` (the simple f32 path, one-warp blocks): in
//!   [`crate::attention_decode_f32`].
//!
//! Both write each split's partial `(acc, max, sum)` to f32 scratch, and the last block of a
//! (subgroup, KV head) to finish merges the splits in use into `out` ([`finish_split`]): a
//! counter per (subgroup, KV head) counts the splits done (`atom.add` after a GPU-scope fence).
//! That folds the combine pass into the one launch (one kernel per layer in a decode graph).
//! A cache short enough for one split ([`crate::params::DECODE_MIN_SPLIT_LEN`]) skips all of
//! it in the tensor-core kernel: the block writes its normalised answer to `out` directly.
//! It is not free: the last block's merge is the same serial chain of L2 round trips that the
//! combine grid waited on, so on its own (H100, 33 splits under GQA) it measured level with the
//! two launches; fewer splits ([`crate::params::DECODE_BLOCKS_PER_SM`]) are what shortened
//! that tail. The last block resets its counter to 0, so the zeroed counter buffer the backend
//! allocates once stays valid across calls and CUDA-graph replays.
//!
//! Under a programmatic dependent launch a block loads the first ring tiles of keys the previous
//! kernel does not write (all but [`DecodeAttnParams::fresh_keys`], the new token's) before
//! its grid-dependency wait, so they stream in while that kernel finishes; q (which it writes)
//! is read after the wait.
//!
//! The key count may live in device memory (`kv_len_dev`, see [`DecodeAttnParams`]): the grid
//! is then sized for the whole cache and blocks past the last key return at once, so a CUDA
//! graph captures one launch for every length. A count past the cache's rows
//! ([`DecodeAttnParams::max_keys`]), which the host cannot check, is clamped to them.
//!
//! Test: `cargo test --release --test gpu_vs_cpu decode` (`emu::` on the emulated device;
//! `--include-ignored` adds `cuda::`); bench: `cargo bench --bench gpu_kernels -- --only decode_attn`.

use crate::attention_flash::{ldmatrix_bases, load_tile, quad_max, quad_sum};
use crate::elem::{BF16, Elem, F16, MmaElem};
use crate::params::{
    DECODE_ALL_KEYS_FRESH, DECODE_BLOCK_N, DECODE_MMA_HEADS, DECODE_STAGES, DECODE_WARPS,
    DecodeAttnParams, FLASH_WARPS, decode_smem_bytes,
};
use crate::primitives::{
    Bytes16, GridWait, atomic_add_u32, block_idx_x, block_idx_y, block_idx_z,
    cp_async_commit_group, cp_async_wait_group, dyn_smem_base, exp2_approx, fence_gpu, ldmatrix_x4,
    ldmatrix_x4_trans, load_16b, smem_load_16b, smem_load_f32, smem_load_u32, smem_store_f32,
    smem_store_u32, store_16b, sync_threads, thread_idx_x,
};
use crate::{kernel_entries, unroll4, unroll8, unroll16};

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

/// The number of keys: `p.kv_len` plus the device-side count when there is one, at most
/// `p.max_keys` (the rows the cache holds).
///
/// # Safety
/// `kv_len_dev` is null or points at a `u32`.
#[inline(always)]
pub(crate) unsafe fn total_keys(kv_len_dev: *const u32, p: &DecodeAttnParams) -> u32 {
    let keys = if kv_len_dev.is_null() {
        p.kv_len
    } else {
        // SAFETY: the caller's contract.
        p.kv_len.saturating_add(unsafe { *kv_len_dev })
    };
    keys.min(p.max_keys)
}

/// Ends a block's split once its partials are written: counts the split in at `counter` and,
/// in the block that counts last, merges the `splits` partials of query heads `h0..h0 + hb`
/// into `out` ([`merge_splits`]) and resets the counter for the next launch. Every thread of
/// the block calls it; `flag` is a shared-memory word no thread still reads.
///
/// Release: each thread fences its partial writes, the barrier orders them before thread 0's
/// atomic. Acquire: thread 0 fences after the atomic, the barrier orders the merge's loads
/// after that (the pattern of CUDA's threadFenceReduction sample).
///
/// # Safety
/// `counter` is this (subgroup, KV head)'s word of the zeroed counter buffer, and `splits`
/// blocks (the splits in use) call this for it; the scratch holds every split's partials of
/// these heads as [`merge_splits`] reads them; `out` holds `heads * head_dim` elements.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn finish_split<E: Elem>(
    part_acc: *const f32,
    part_ml: *const f32,
    out: *mut E,
    counter: *mut u32,
    flag: u32,
    (h0, hb, splits): (usize, usize, usize),
    (tid, threads): (usize, usize),
    p: &DecodeAttnParams,
) {
    fence_gpu();
    sync_threads();
    // SAFETY (whole body): the caller's contract; `flag` is shared memory of this block.
    unsafe {
        if tid == 0 {
            let done = atomic_add_u32(counter, 1) + 1;
            fence_gpu();
            smem_store_u32(flag, (done == splits as u32) as u32);
        }
        sync_threads();
        if smem_load_u32(flag) == 0 {
            return;
        }
        if tid == 0 {
            // Every split has counted in: nobody else touches the counter in this launch.
            *counter = 0;
        }
        merge_splits(part_acc, part_ml, out, (h0, hb, splits), (tid, threads), p);
    }
}

/// Splits whose partials one thread of [`merge_splits`] loads at once: the last block's merge is a
/// chain of dependent L2 round trips, `ceil(splits / MERGE_BATCH)` per 4 columns it owns.
const MERGE_BATCH: usize = 16;

/// `out[h, :] = Σ_s 2^(m_s - M) acc_s / Σ_s 2^(m_s - M) l_s` for heads `h0..h0 + hb` over
/// `splits` splits, in one pass with a running max. A thread takes 4 columns of one head at a
/// time (16-byte loads) and loads [`MERGE_BATCH`] splits before using them: one dependent load per split
/// would be a latency chain as long as the split count.
///
/// # Safety
/// `part_acc` (`[splits, heads, head_dim]` f32, 16-byte aligned) and `part_ml`
/// (`[splits, heads, 2]`) hold the partials of these heads; `out` holds `heads * head_dim`.
#[inline(always)]
unsafe fn merge_splits<E: Elem>(
    part_acc: *const f32,
    part_ml: *const f32,
    out: *mut E,
    (h0, hb, splits): (usize, usize, usize),
    (tid, threads): (usize, usize),
    p: &DecodeAttnParams,
) {
    let (heads, d) = (p.heads as usize, p.head_dim as usize);
    let mut i = tid;
    while i < hb * d / 4 {
        let (h, c) = (h0 + 4 * i / d, 4 * i % d);
        let mut m = f32::NEG_INFINITY;
        let (mut num, mut den) = ([0f32; 4], 0.0f32);
        let mut s0 = 0;
        while s0 < splits {
            let mut ms = [f32::NEG_INFINITY; MERGE_BATCH];
            let (mut ls, mut acc) = ([0f32; MERGE_BATCH], [[0u32; 4]; MERGE_BATCH]);
            // SAFETY: slot < splits * heads, c + 4 <= head_dim (the caller's contract).
            unsafe {
                unroll16!(u => {
                    if s0 + u < splits {
                        let slot = (s0 + u) * heads + h;
                        ms[u] = *part_ml.add(2 * slot);
                        ls[u] = *part_ml.add(2 * slot + 1);
                        acc[u] = load_16b(part_acc.add(slot * d + c) as *const u8).0;
                    }
                });
            }
            let mut mx = m;
            unroll16!(u => {
                mx = mx.max(ms[u]);
            });
            // Every split in use saw a key (finite max); skip anything else rather than form
            // -inf - -inf.
            if mx != f32::NEG_INFINITY {
                let r = exp2_approx(m - mx);
                den *= r;
                unroll4!(e => {
                    num[e] *= r;
                });
                unroll16!(u => {
                    if ms[u] != f32::NEG_INFINITY {
                        let f = exp2_approx(ms[u] - mx);
                        den += f * ls[u];
                        unroll4!(e => {
                            num[e] += f * f32::from_bits(acc[u][e]);
                        });
                    }
                });
                m = mx;
            }
            s0 += MERGE_BATCH;
        }
        unroll4!(e => {
            // SAFETY: h < heads, c + e < head_dim.
            unsafe { *out.add(h * d + c + e) = E::store(num[e] / den) };
        });
        i += threads;
    }
}

/// Where the end-of-split merge of a block's warps keeps their results in the (then idle) K/V
/// ring at shared address `.0`: per warp `w` and head row `r`, the max (log2 units) at
/// `ml(w, r)` and the sum 4 bytes after it, and the `D` accumulators from `acc(w, r, 0)`, f32.
#[derive(Clone, Copy)]
struct MergeArea<const D: usize>(u32);

impl<const D: usize> MergeArea<D> {
    const ROWS: usize = DECODE_WARPS * DECODE_MMA_HEADS;

    #[inline(always)]
    fn ml(self, w: usize, r: usize) -> u32 {
        self.0 + (2 * (w * DECODE_MMA_HEADS + r)) as u32 * 4
    }

    #[inline(always)]
    fn acc(self, w: usize, r: usize, c: usize) -> u32 {
        self.0 + ((2 * Self::ROWS) + (w * DECODE_MMA_HEADS + r) * D + c) as u32 * 4
    }
}

/// Merges the warps' results in `area` for head rows `0..hb` (query heads `h0..`), four
/// columns a thread (16-byte shared loads and partial stores): into `out` when this split is
/// the only one, else into this split's partials. A loop over the column groups, not unrolled:
/// every head row in one unrolled pass of single columns measured 9% slower under GQA (KV8
/// S4096, 20 calls in a graph, H100: 2.43 -> 2.19 TB/s).
///
/// # Safety
/// Every thread of the block calls it after a barrier that follows the warps' stores to
/// `area` (inside the ring of `decode_smem_bytes(D)` bytes); `out`, `part_acc` and `part_ml`
/// as [`decode_mma`] takes them, `split < splits`, heads `h0..h0 + hb` below `p.heads`.
#[inline(always)]
unsafe fn merge_warps<E: Elem, const D: usize>(
    area: MergeArea<D>,
    (out, part_acc, part_ml): (*mut E, *mut f32, *mut f32),
    (h0, hb, split, splits): (usize, usize, usize, usize),
    tid: usize,
    p: &DecodeAttnParams,
) {
    let mut i = tid;
    // SAFETY (whole body): the caller's contract; column groups start at multiples of 4, so
    // their shared and partial addresses are 16-byte aligned (the area and the partials are).
    unsafe {
        while i < hb * D / 4 {
            let (r, c) = (4 * i / D, 4 * i % D);
            let mut mw = [0f32; DECODE_WARPS];
            let mut big = f32::NEG_INFINITY;
            unroll4!(w => {
                mw[w] = smem_load_f32(area.ml(w, r));
                big = big.max(mw[w]);
            });
            let (mut num, mut den) = ([0f32; 4], 0.0f32);
            unroll4!(w => {
                // A warp that saw no key of this split holds max -inf and nothing else.
                if mw[w] != f32::NEG_INFINITY {
                    let f = exp2_approx(mw[w] - big);
                    let a = smem_load_16b(area.acc(w, r, c)).0;
                    unroll4!(e => {
                        num[e] += f * f32::from_bits(a[e]);
                    });
                    den += f * smem_load_f32(area.ml(w, r) + 4);
                }
            });
            if splits == 1 {
                // The only split (a short cache): the answer itself, no partials to merge.
                unroll4!(e => {
                    *out.add((h0 + r) * D + c + e) = E::store(num[e] / den);
                });
            } else {
                let slot = split * p.heads as usize + h0 + r;
                store_16b(
                    part_acc.add(slot * D + c) as *mut u8,
                    Bytes16(num.map(f32::to_bits)),
                );
                if c == 0 {
                    *part_ml.add(2 * slot) = big;
                    *part_ml.add(2 * slot + 1) = den;
                }
            }
            i += DECODE_WARPS * 32;
        }
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
/// hold `p.max_keys` rows of stride `kv_stride` (a multiple of 8), all 16-byte aligned;
/// `part_acc` holds `splits * heads * D` f32 and `part_ml` `splits * heads * 2`; `out` holds
/// `heads * D`; `counters` holds `heads / p.heads_per_block` words, zero between launches.
/// Unless `p.fresh_keys` is [`DECODE_ALL_KEYS_FRESH`], the grid launched just before this one
/// writes neither `*kv_len_dev` nor any key but the last `p.fresh_keys`.
#[inline(always)]
#[allow(clippy::too_many_arguments)] // a kernel's signature
unsafe fn decode_mma<E: MmaElem, const D: usize>(
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
    const BN: usize = DECODE_BLOCK_N;
    const STAGES: usize = DECODE_STAGES;
    let tile_bytes = (BN * D * 2) as u32;
    let (sub, kvh, split) = (block_idx_x(), block_idx_y(), block_idx_z());
    // With every key fresh the previous grid may also be writing the device-side count: wait
    // before reading anything. Otherwise the wait comes after the settled keys' first tiles.
    let mut wait = GridWait::default();
    if p.fresh_keys == DECODE_ALL_KEYS_FRESH {
        wait.once();
    }
    // SAFETY: the caller's contract.
    let kv_len = unsafe { total_keys(kv_len_dev, &p) } as usize;
    // The splits in use take the tiles round-robin (module docs): this one tiles split,
    // split + splits, ...
    let splits = p.splits_for(kv_len as u32) as usize;
    let split = split as usize;
    if split >= splits || kv_len == 0 {
        // Past the last key (uniform over the block): neither counted nor merged.
        return;
    }
    let tiles = (kv_len.div_ceil(BN) - split).div_ceil(splits);
    let tile_row = |j: usize| (split + j * splits) * BN;
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
    // (tile rows past `kv_len` are zero-filled, never read) and the `hb` query heads of this
    // block; shared addresses stay inside the ring of `decode_smem_bytes(D)` bytes; writes go
    // to this split's slots of the scratch buffers and, in the last block, to these heads of
    // `out` (`finish_split`) — or, as the only split, straight to these heads of `out`.
    unsafe {
        let kb = k.add(kvh as usize * D);
        let vb = v.add(kvh as usize * D);
        // The ring's first tiles, one commit group each (empty groups too: the waits below
        // count groups, one per tile). Tiles of settled keys go before the grid-dependency
        // wait, the rest after it. Two, not more or fewer (H100, B1 H32 hd128, 20 calls in one
        // graph, same job): the third stage primed too, 96 KB before the wait, lost 3-4% (GQA
        // KV8 S4096 2.43 -> 2.33 TB/s, MHA S4096 2.60 -> 2.52); one early tile lost 8% at GQA
        // S4096 (2.42 -> 2.22). Letting the next grid launch only after the loop (instead of
        // at the wait) lost 3-7% everywhere.
        let prime = |s: usize| {
            if s < tiles {
                let row0 = tile_row(s);
                load_tile::<E, D, BN>(k_tile(s), kb, stride, row0, kv_len, tid);
                load_tile::<E, D, BN>(k_tile(s) + tile_bytes, vb, stride, row0, kv_len, tid);
            }
            cp_async_commit_group();
        };
        let early = p.settled_tiles(kv_len, (split, splits), BN, STAGES - 1);
        unroll4!(s => {
            if s < early {
                prime(s);
            }
        });
        wait.once();
        unroll4!(s => {
            if s >= early && s + 1 < STAGES {
                prime(s);
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
                let row0 = tile_row(next);
                load_tile::<E, D, BN>(k_tile(st), kb, stride, row0, kv_len, tid);
                load_tile::<E, D, BN>(k_tile(st) + tile_bytes, vb, stride, row0, kv_len, tid);
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
            let key0 = tile_row(j) + 16 * warp;
            if key0 + 16 > kv_len {
                unroll4!(e => {
                    if key0 + 8 * (e / 2) + 2 * t + e % 2 >= kv_len {
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
        let area = MergeArea::<D>(ring);
        if g < hb {
            unroll16!(n => {
                if n < D / 8 {
                    smem_store_f32(area.acc(warp, g, 8 * n + 2 * t), acc[n][0]);
                    smem_store_f32(area.acc(warp, g, 8 * n + 2 * t + 1), acc[n][1]);
                }
            });
            if t == 0 {
                smem_store_f32(area.ml(warp, g), m * scale);
                smem_store_f32(area.ml(warp, g) + 4, l);
            }
        }
        sync_threads();
        // Four columns a thread: under GQA a block's four head rows at D 128 then take one pass
        // of the threads, not four (H100, KV8 S4096, 20 calls in a graph: 2.42 -> 2.53 TB/s).
        // A lone head row (MHA) leaves three warps idle here (S1024 2.73 -> 2.70); a second,
        // one-column path for it measured worse still (2.60: the kernel compiled worse).
        let bufs = (out, part_acc, part_ml);
        merge_warps::<E, D>(area, bufs, (h0, hb, split, splits), tid, &p);
        if splits == 1 {
            return;
        }
        finish_split(
            part_acc,
            part_ml,
            out,
            counters.add(h0 / hb),
            ring,
            (h0, hb, splits),
            (tid, DECODE_WARPS * 32),
            &p,
        );
    }
}

kernel_entries! {
    own_sync decode_mma(q: *const E, k: *const E, v: *const E, part_acc: *mut f32, part_ml: *mut f32, out: *mut E, counters: *mut u32, kv_len_dev: *const u32, p: DecodeAttnParams);
    decode_attn_d64_f16 = [F16, 64], decode_attn_d64_bf16 = [BF16, 64],
    decode_attn_d128_f16 = [F16, 128], decode_attn_d128_bf16 = [BF16, 128],
}
