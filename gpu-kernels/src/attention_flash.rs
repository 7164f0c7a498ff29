//! FlashAttention-2 forward (prefill) on tensor cores: `softmax(q·kᵀ·scale)·v` without ever
//! writing the `[q_len, kv_len]` scores anywhere but registers.
//!
//! Variants: `flash_attn_d{64,128}_{f16,bf16}` (head dim 64 or 128; f16/bf16 inputs, f32
//! accumulation), parameters in [`FlashAttnParams`].
//!
//! # Thread mapping
//! Grid `(heads, q_tiles, batch)`, in launch order (x fastest) under a causal mask: the heads
//! fastest, q tiles last-first, so the longest rows start first. Under the full mask every
//! block has the same work, and the linear block index is read as a KV group's heads fastest,
//! then the q tiles, then the KV heads: the blocks that run together share K/V, which then
//! comes from L2 after the first read (H100, B1 H32 hd128, same job, three rounds: +0.2-1.5%
//! over heads fastest at S 2048-8192). A block of
//! [`FLASH_WARPS`] warps owns [`FLASH_BLOCK_M`] query rows, `16 · FLASH_ROW_BLOCKS` per warp:
//! 1. Q tile → shared (`cp.async`), once; each warp reads its `A` fragments from there with
//!    `ldmatrix` for every K tile (32 rows of fragments held in registers would not fit beside
//!    the accumulators).
//! 2. Per K/V tile of [`flash_block_n`] keys, through a ring of [`flash_stages`] K/V stages
//!    (the next tiles stream in while tile `j` is used; one barrier per tile):
//!    `S = Q·Kᵀ` (`mma.m16n8k16`, K read with `ldmatrix`), mask (only on tiles that cross the
//!    diagonal or the end of the keys; tiles wholly above the diagonal are never visited),
//!    online softmax in registers (each thread owns 2 rows; row max/sum over its 4-lane quad,
//!    log2 domain; the running max moves lazily, [`FLASH_RESCALE_SLACK`], so `O` is rescaled
//!    on few tiles), `P` re-packed in place as the `A` operand, `O += P·V` (V read with
//!    `ldmatrix.trans`).
//! 3. `O / l` to global; optionally the row's log-sum-exp (natural log) to `lse[b][h][row]`.
//!
//! Shared memory `[Q | K₀ | V₀ | K₁ | V₁ ...]` (Q `FLASH_BLOCK_M x head_dim`, the K/V ring stages
//! `flash_block_n x head_dim`, b16; [`flash_smem_bytes`]), rows of 16-byte chunks
//! XOR-swizzled by `row % 8` so the eight row addresses of every `ldmatrix` phase hit distinct
//! banks.
//!
//! # What limits it
//! H100, f16 B1 H32 hd128 S8192 full, ncu (one launch, clocks locked at 1.47 GHz): 3.80 ms
//! against SDPA-flash's FA2 kernel (`kBlockN` 64, which spills) 3.74 ms; tensor pipe active 56%
//! (57%), issued IPC 1.52 (1.82, on 17% more instructions), shared-memory wavefronts 60% of peak
//! (49%: our 32-key tiles re-read Q's fragments twice as often). 255 registers cap both at 2
//! blocks (8 warps, 2 per scheduler) per SM, and the top stall is a fixed-latency dependency: too
//! few warps to hide the softmax between the two matmuls. Writing the softmax's max and sum as
//! trees (depth 3, not 7) measured level. A real margin needs `wgmma`'s asynchronous matmuls:
//! `attention_flash3.rs` has them, and takes head dim 128 on compute capability 9.0.
//!
//! Test: `cargo test --release --test gpu_vs_cpu flash` (`emu::` on the emulated device;
//! `--include-ignored` adds `cuda::`); bench: `cargo bench --bench gpu_kernels -- --only flash`.

use crate::elem::{BF16, F16, MmaElem};
use crate::params::{
    FLASH_BLOCK_M, FLASH_RESCALE_SLACK, FLASH_ROW_BLOCKS, FLASH_WARPS, FlashAttnParams,
    flash_block_n, flash_stages,
};
use crate::primitives::{
    block_idx_x, block_idx_y, block_idx_z, cp_async_16_zfill, cp_async_commit_group,
    cp_async_wait_group, dyn_smem_base, exp2_approx, fma_f32, grid_dim_y, ldmatrix_x4,
    ldmatrix_x4_trans, log2_approx, opaque_ptr, opaque_u32, shfl_xor_f32, sync_threads,
    thread_idx_x, vote_any,
};
use crate::{kernel_entries, unroll2, unroll4, unroll8, unroll16};

#[allow(unused_imports)] // named by the docs
use crate::params::flash_smem_bytes;

const THREADS: usize = FLASH_WARPS * 32;
const _: () = assert!(flash_block_n(64) <= 64 && flash_block_n(128) <= 64 && FLASH_ROW_BLOCKS <= 2);
const _: () = assert!(
    flash_stages(64) >= 2
        && flash_stages(64) <= 5
        && flash_stages(128) >= 2
        && flash_stages(128) <= 5,
    "the prologue unrolls 4 tiles; the ring waits for 0..=3 younger groups"
);

/// Shared byte offset of 16-byte chunk `c` of row `r` in a tile with `D` b16 columns.
#[inline(always)]
fn swizzled<const D: usize>(r: u32, c: u32) -> u32 {
    r * D as u32 * 2 + ((c ^ (r % 8)) << 4)
}

/// Issues the `cp.async` copies of rows `row0..row0 + ROWS` of a `[len, row_stride]` matrix into
/// the swizzled tile at `tile`; rows at or past `len` are zero-filled (no bytes read).
///
/// Thread `tid` copies chunk `tid % (D / 8)` of rows `tid / (D / 8) + pass * rows_per_pass`:
/// every pass keeps the row's swizzle (`rows_per_pass` is a multiple of 8), so the shared
/// addresses differ by constants and the global ones by one stride step. The decode kernel
/// (`attention_decode.rs`, also `FLASH_WARPS * 32` threads) streams its K/V tiles with it too.
///
/// # Safety
/// `src` rows below `len` are readable for `D` elements, 16-byte aligned; `tile` is a
/// `ROWS x D` b16 region of the dynamic shared memory.
#[inline(always)]
pub(crate) unsafe fn load_tile<E, const D: usize, const ROWS: usize>(
    tile: u32,
    src: *const E,
    row_stride: usize,
    row0: usize,
    len: usize,
    tid: usize,
) {
    let chunks = D / 8;
    let rows_per_pass = THREADS / chunks;
    let (r, c) = (tid / chunks, tid % chunks);
    let dst = opaque_u32(tile + swizzled::<D>(r as u32, c as u32));
    // SAFETY: pointer arithmetic only; rows at or past `len` are never dereferenced.
    let mut from = opaque_ptr(unsafe { src.add((row0 + r) * row_stride + c * 8) });
    unroll16!(pass => {
        if pass < ROWS / rows_per_pass {
            let row = row0 + r + pass * rows_per_pass;
            let to = dst + (pass * rows_per_pass * D * 2) as u32;
            if pass > 0 {
                from = opaque_ptr(from.wrapping_add(rows_per_pass * row_stride));
            }
            // SAFETY: rows below `len` are in bounds (caller); others read 0 bytes.
            unsafe {
                if row < len {
                    cp_async_16_zfill(to, from as *const u8, 16);
                } else {
                    cp_async_16_zfill(to, src as *const u8, 0);
                }
            }
        }
    });
}

/// Per-thread `ldmatrix` addresses into one swizzled tile: `base[i]` is the address for
/// 16-byte chunk column pair `i` (chunks `2i + b` XOR-swizzled by this lane's row), so chunk
/// pair `cp` of tile row `row_lane + 16 * rs` is at `base[cp % 4] + (cp / 4) * 128 + rs * 16 * D * 2`
/// — constants the assembler folds into the instruction.
#[inline(always)]
pub(crate) fn ldmatrix_bases<const D: usize>(tile: u32, row_lane: u32, b: u32) -> [u32; 4] {
    let y = b ^ (row_lane % 8);
    let mut base = [0u32; 4];
    unroll4!(i => {
        base[i] = opaque_u32(tile + row_lane * D as u32 * 2 + ((y ^ (2 * i as u32)) << 4));
    });
    base
}

/// Max over the 4 lanes of a quad (lanes `4g..4g + 4`), which share a score row.
#[inline(always)]
pub(crate) fn quad_max(v: f32) -> f32 {
    let v = v.max(shfl_xor_f32(v, 1));
    v.max(shfl_xor_f32(v, 2))
}

/// Sum over the 4 lanes of a quad.
#[inline(always)]
pub(crate) fn quad_sum(v: f32) -> f32 {
    let v = v + shfl_xor_f32(v, 1);
    v + shfl_xor_f32(v, 2)
}

/// The query tile a block owns, resolved (`flash_tile`).
pub(crate) struct FlashTile<E> {
    pub head: usize,
    /// First query row.
    pub q0: usize,
    pub batch: usize,
    pub kv_len: usize,
    /// Keys a causal row `i` sees end at `i + shift`.
    pub shift: usize,
    /// Keys the tile needs: all, or under causal up to the diagonal of its last row.
    pub kv_end: usize,
    /// The head's Q rows, and its KV head's K and V rows.
    pub qb: *const E,
    pub kb: *const E,
    pub vb: *const E,
}

/// The [`FLASH_BLOCK_M`]-row query tile this block owns, read from the block index as the
/// module docs' thread mapping says (grid `(heads, q_tiles, batch)`; the FlashAttention-3
/// kernel shares it), with its head's base pointers.
///
/// # Safety
/// `q`, `k`, `v` and `p` as [`FlashAttnParams`] documents (the pointers are only offset).
#[inline(always)]
pub(crate) unsafe fn flash_tile<E>(
    q: *const E,
    k: *const E,
    v: *const E,
    p: &FlashAttnParams,
) -> FlashTile<E> {
    let (heads, tiles_q) = (p.heads as usize, grid_dim_y() as usize);
    let causal = p.causal != 0;
    let (head, rank) = if causal {
        (block_idx_x() as usize, block_idx_y() as usize)
    } else {
        // Full attention: a KV group's heads fastest, then the q tiles, then the KV heads.
        let group = heads / p.kv_heads as usize;
        let lin = block_idx_y() as usize * heads + block_idx_x() as usize;
        let (kvh, rem) = (lin / (group * tiles_q), lin % (group * tiles_q));
        (kvh * group + rem % group, rem / group)
    };
    let q0 = (tiles_q - 1 - rank) * FLASH_BLOCK_M;
    let batch = block_idx_z() as usize;
    let (q_len, kv_len) = (p.q_len as usize, p.kv_len as usize);
    let kv_head = head / (p.heads / p.kv_heads) as usize;
    let shift = kv_len - q_len;
    let kv_end = if causal {
        kv_len.min(q0 + FLASH_BLOCK_M + shift)
    } else {
        kv_len
    };
    let kv_base = batch * p.kv_batch_stride as usize + kv_head * p.kv_head_stride as usize;
    // SAFETY: offsets inside the tensors (the caller's contract).
    let (qb, kb, vb) = unsafe {
        (
            q.add(batch * p.q_batch_stride as usize + head * p.q_head_stride as usize),
            k.add(kv_base),
            v.add(kv_base),
        )
    };
    FlashTile {
        head,
        q0,
        batch,
        kv_len,
        shift,
        kv_end,
        qb,
        kb,
        vb,
    }
}

/// Masks the scores of one 16-row block's key tile: `s[n][e]` is the score of row
/// `row0 + 8·(e / 2)` and key `key0 + 8n + 2t + e % 2` (the `mma` accumulator layout, `n <
/// used`); keys at or past `kv_len`, and under `causal` past the row's diagonal
/// (`key > row + shift`), become -inf.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn mask_scores<const NT: usize>(
    s: &mut [[f32; 4]; NT],
    used: usize,
    key0: usize,
    row0: usize,
    t: usize,
    kv_len: usize,
    causal: bool,
    shift: usize,
) {
    unroll16!(n => {
        unroll4!(e => {
            let key = key0 + 8 * n + 2 * t + e % 2;
            let row = row0 + 8 * (e / 2);
            if n < NT && n < used && (key >= kv_len || (causal && key > row + shift)) {
                s[n][e] = f32::NEG_INFINITY;
            }
        });
    });
}

/// The online-softmax step of one 16-row block over a key tile (scores laid out as in
/// [`mask_scores`], `n < used`): each of the thread's two rows takes its new max over the quad,
/// turns its scores into `P = 2^(S·scale - max·scale)` in place and adds them to `row_sum`.
/// Returns the factor each row's accumulated output must be scaled by (1 when its max stayed).
#[inline(always)]
pub(crate) fn online_softmax<const NT: usize>(
    s: &mut [[f32; 4]; NT],
    used: usize,
    row_max: &mut [f32; 2],
    row_sum: &mut [f32; 2],
    scale: f32,
) -> [f32; 2] {
    let mut rescale = [1.0f32; 2];
    unroll2!(h => {
        let mut mx = row_max[h];
        unroll16!(n => {
            if n < NT && n < used {
                mx = mx.max(s[n][2 * h]).max(s[n][2 * h + 1]);
            }
        });
        mx = quad_max(mx);
        // Lazy max: the running max moves only when this tile's passes it by more than
        // FLASH_RESCALE_SLACK (log2 units), so P stays below 2^slack and most tiles rescale
        // nothing. The first finite max always moves it (-inf + slack is -inf); a fully masked
        // row stays -inf.
        let old = row_max[h] * scale;
        if mx * scale > old + FLASH_RESCALE_SLACK {
            rescale[h] = exp2_approx(old - mx * scale);
            row_max[h] = mx;
        }
        // A row with every key masked so far keeps max -inf; use 0 as base.
        let base = if row_max[h] == f32::NEG_INFINITY {
            0.0
        } else {
            row_max[h] * scale
        };
        let mut sum = 0.0;
        unroll16!(n => {
            if n < NT && n < used {
                unroll2!(e => {
                    let x = fma_f32(s[n][2 * h + e], scale, -base);
                    let pv = exp2_approx(x);
                    s[n][2 * h + e] = pv;
                    sum += pv;
                });
            }
        });
        row_sum[h] = row_sum[h] * rescale[h] + sum;
    });
    rescale
}

/// Scales each of the thread's two rows of an output accumulator (`acc[n][2h + e]`, `n <
/// used`) by `rescale[h]`. Skipped when no row of the warp moved its max — almost every tile
/// past the first; the vote keeps the branch uniform, so it is really skipped.
#[inline(always)]
pub(crate) fn rescale_rows<const NT: usize>(
    acc: &mut [[f32; 4]; NT],
    used: usize,
    rescale: [f32; 2],
) {
    if vote_any(rescale[0] != 1.0 || rescale[1] != 1.0) {
        unroll2!(h => {
            unroll16!(n => {
                if n < NT && n < used {
                    acc[n][2 * h] *= rescale[h];
                    acc[n][2 * h + 1] *= rescale[h];
                }
            });
        });
    }
}

/// `P` (scores after [`online_softmax`]) packed as the `A` fragments of `P·V`: k-step `ks`
/// covers keys `16ks..16ks + 16`, score tiles `2ks` and `2ks + 1`.
#[inline(always)]
pub(crate) fn pack_p<E: MmaElem, const NT: usize, const KS: usize>(
    s: &[[f32; 4]; NT],
    used: usize,
) -> [[u32; 4]; KS] {
    let mut pk = [[0u32; 4]; KS];
    unroll8!(ks => {
        if ks < KS && 2 * ks + 1 < NT && ks < used {
            let (lo, hi) = (&s[2 * ks], &s[2 * ks + 1]);
            pk[ks] = [
                E::pack2(lo[0], lo[1]),
                E::pack2(lo[2], lo[3]),
                E::pack2(hi[0], hi[1]),
                E::pack2(hi[2], hi[3]),
            ];
        }
    });
    pk
}

/// Normalises and stores the thread's two rows (`row0`, `row0 + 8`) of an output accumulator
/// (`acc[n][2h + e]` is column `8n + 2t + e`, `n < used`), and with `lse` non-null the rows'
/// log-sum-exp (natural log) to `lse[(batch·heads + head)·q_len + row]`. `row_sum` is the
/// thread's partial sum; its quad's make the row's.
///
/// # Safety
/// `ob` is the head's output base with rows of `o_row_stride` elements below `q_len`; `lse`
/// null or `[batch][heads][q_len]` f32.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn store_rows<E: MmaElem, const NT: usize>(
    acc: &[[f32; 4]; NT],
    used: usize,
    row_sum: [f32; 2],
    row_max: [f32; 2],
    scale: f32,
    row0: usize,
    t: usize,
    ob: *mut E,
    p: &FlashAttnParams,
    lse: *mut f32,
    lse_head: usize,
) {
    let q_len = p.q_len as usize;
    unroll2!(h => {
        let total = quad_sum(row_sum[h]);
        let inv = if total > 0.0 { 1.0 / total } else { 0.0 };
        let row = row0 + 8 * h;
        if row < q_len {
            // SAFETY: row < q_len and columns below 8·used (the head dim) are inside the head's
            // output rows (caller).
            unsafe {
                let dst = ob.add(row * p.o_row_stride as usize + 2 * t);
                unroll16!(n => {
                    if n < NT && n < used {
                        let pair = E::pack2(acc[n][2 * h] * inv, acc[n][2 * h + 1] * inv);
                        *(dst.add(8 * n) as *mut u32) = pair;
                    }
                });
                if !lse.is_null() && t == 0 {
                    let log2_sum = row_max[h] * scale + log2_approx(total);
                    *lse.add(lse_head * q_len + row) = log2_sum * core::f32::consts::LN_2;
                }
            }
        }
    });
}

/// The attention of one query tile of one head; see the module docs.
///
/// # Safety
/// Pointers and strides as [`FlashAttnParams`] documents (16-byte aligned rows, strides
/// multiples of 8 elements); `lse` null or `[batch][heads][q_len]` f32; launched with the
/// documented grid, `FLASH_WARPS * 32` threads and [`flash_smem_bytes`]`(D)` bytes of dynamic
/// shared memory.
#[inline(always)]
unsafe fn flash_attn<E: MmaElem, const D: usize, const BN: usize, const STAGES: usize>(
    q: *const E,
    k: *const E,
    v: *const E,
    o: *mut E,
    lse: *mut f32,
    p: FlashAttnParams,
) {
    const RB: usize = FLASH_ROW_BLOCKS;
    let tid = thread_idx_x() as usize;
    let (warp, lane) = (tid / 32, tid % 32);
    let (g, t) = (lane / 4, lane % 4);
    let causal = p.causal != 0;
    // SAFETY: the pointers and strides are the kernel's own contract.
    let tile = unsafe { flash_tile(q, k, v, &p) };
    let FlashTile {
        head,
        q0,
        batch,
        kv_len,
        shift,
        ..
    } = tile;
    let q_len = p.q_len as usize;

    // SAFETY (whole body): global accesses stay inside the tensors the contract describes (rows
    // past q_len/kv_len are zero-filled, never read; stores are guarded by `row < q_len`);
    // shared addresses stay inside the Q tile and the STAGES K/V stages of `flash_smem_bytes(D)`.
    unsafe {
        let FlashTile { qb, kb, vb, .. } = tile;
        let (q_stride, kv_stride) = (p.q_row_stride as usize, p.kv_row_stride as usize);
        let s_q = dyn_smem_base();
        // Stage `st` of the K/V ring: K tile at `s_k(st)`, V tile right after it.
        let tile_bytes = (BN * D * 2) as u32;
        let s_k = |st: usize| s_q + (FLASH_BLOCK_M * D * 2) as u32 + (2 * st) as u32 * tile_bytes;

        let tiles = tile.kv_end.div_ceil(BN);

        // Q and tile 0 in the first commit group, tiles 1..STAGES - 1 one group each (empty
        // groups too: the waits below count groups, one per tile).
        load_tile::<E, D, FLASH_BLOCK_M>(s_q, qb, q_stride, q0, q_len, tid);
        unroll4!(s => {
            if s + 1 < STAGES {
                if s < tiles {
                    load_tile::<E, D, BN>(s_k(s), kb, kv_stride, s * BN, kv_len, tid);
                    load_tile::<E, D, BN>(s_k(s) + tile_bytes, vb, kv_stride, s * BN, kv_len, tid);
                }
                cp_async_commit_group();
            }
        });

        // ldmatrix rows. Q (A operand): row lane % 8 + 8·((lane / 8) % 2) of each 16-row block,
        // chunk bit lane / 16. K (B of S): key 8·(lane / 16) + lane % 8 of each 16-key pair,
        // chunk bit (lane / 8) % 2. V (B of P·V, transposed): key lane % 8 + 8·((lane / 8) % 2)
        // of each 16-key step, chunk bit lane / 16.
        let q_row = (warp * 16 * RB + lane % 8 + 8 * ((lane / 8) % 2)) as u32;
        let k_row = (8 * (lane / 16) + lane % 8) as u32;
        let v_row = (lane % 8 + 8 * ((lane / 8) % 2)) as u32;
        let (q_b, k_b, v_b) = (
            (lane / 16) as u32,
            ((lane / 8) % 2) as u32,
            (lane / 16) as u32,
        );

        // This thread's rows: first + 16·rb + 8·h for row block rb and half h.
        let first = q0 + warp * 16 * RB + g;
        let warp_last = q0 + warp * 16 * RB + 16 * RB - 1;
        let mut acc = [[[0f32; 4]; 16]; RB];
        let mut row_max = [[f32::NEG_INFINITY; 2]; RB];
        let mut row_sum = [[0f32; 2]; RB];
        let scale = p.scale_log2;

        let mut j = 0;
        while j < tiles {
            // Tile j (and at j = 0, Q) landed for every thread — the STAGES - 2 tiles after it
            // may still be in flight — and everyone is done with tile j - 1: its stage takes
            // tile j + STAGES - 1, which streams in behind the math of the tiles before it.
            match STAGES {
                2 => cp_async_wait_group::<0>(),
                3 => cp_async_wait_group::<1>(),
                4 => cp_async_wait_group::<2>(),
                _ => cp_async_wait_group::<3>(),
            }
            sync_threads();
            let next = j + STAGES - 1;
            if next < tiles {
                let st = next % STAGES;
                load_tile::<E, D, BN>(s_k(st), kb, kv_stride, next * BN, kv_len, tid);
                load_tile::<E, D, BN>(s_k(st) + tile_bytes, vb, kv_stride, next * BN, kv_len, tid);
            }
            cp_async_commit_group();
            let (s_kj, s_vj) = (s_k(j % STAGES), s_k(j % STAGES) + tile_bytes);
            let key0 = j * BN;
            // Under causal, a warp whose rows all end before this tile has nothing to add.
            let active = !causal || key0 <= warp_last + shift;

            // S = Q·K_jᵀ: 8 n-tiles of 8 keys; one ldmatrix.x4 of K serves two n-tiles of a
            // k-step for every row block.
            // P as the A fragments of P·V, packed to 16 bits as soon as the softmax is done.
            let mut pk = [[[0u32; 4]; 4]; RB];
            if active {
                let mut s = [[[0f32; 4]; 8]; RB];
                let q_base = ldmatrix_bases::<D>(s_q, q_row, q_b);
                let k_base = ldmatrix_bases::<D>(s_kj, k_row, k_b);
                unroll8!(kk => {
                    if kk < D / 16 {
                        let mut qf = [[0u32; 4]; RB];
                        unroll2!(rb => {
                            if rb < RB {
                                let off = (kk / 4) * 128 + rb * 16 * D * 2;
                                qf[rb] = ldmatrix_x4(q_base[kk % 4] + off as u32);
                            }
                        });
                        unroll4!(np => {
                            if np < BN / 16 {
                            let off = (kk / 4) * 128 + np * 16 * D * 2;
                            let b = ldmatrix_x4(k_base[kk % 4] + off as u32);
                            unroll2!(rb => {
                                if rb < RB {
                                    s[rb][2 * np] = E::mma(qf[rb], [b[0], b[1]], s[rb][2 * np]);
                                    s[rb][2 * np + 1] =
                                        E::mma(qf[rb], [b[2], b[3]], s[rb][2 * np + 1]);
                                }
                            });
                            }
                        });
                    }
                });

                // Mask keys past the end and, under causal, past each row's diagonal.
                if key0 + BN > kv_len || (causal && key0 + BN > first + shift + 1) {
                    unroll2!(rb => {
                        if rb < RB {
                            let row0 = first + 16 * rb;
                            mask_scores(&mut s[rb], BN / 8, key0, row0, t, kv_len, causal, shift);
                        }
                    });
                }

                // Online softmax per row: new max, rescale what is accumulated, P = 2^(S - max),
                // packed as the A fragments of P·V.
                unroll2!(rb => {
                    if rb < RB {
                        let rescale = online_softmax(
                            &mut s[rb],
                            BN / 8,
                            &mut row_max[rb],
                            &mut row_sum[rb],
                            scale,
                        );
                        rescale_rows(&mut acc[rb], D / 8, rescale);
                        pk[rb] = pack_p::<E, 8, 4>(&s[rb], BN / 16);
                    }
                });
            }

            // O += P·V_j.
            if active {
                let v_base = ldmatrix_bases::<D>(s_vj, v_row, v_b);
                unroll4!(ks => {
                    unroll8!(dp => {
                        if ks < BN / 16 && dp < D / 16 {
                            let off = (dp / 4) * 128 + ks * 16 * D * 2;
                            let b = ldmatrix_x4_trans(v_base[dp % 4] + off as u32);
                            unroll2!(rb => {
                                if rb < RB {
                                    let a = pk[rb][ks];
                                    acc[rb][2 * dp] = E::mma(a, [b[0], b[1]], acc[rb][2 * dp]);
                                    acc[rb][2 * dp + 1] =
                                        E::mma(a, [b[2], b[3]], acc[rb][2 * dp + 1]);
                                }
                            });
                        }
                    });
                });
            }
            j += 1;
        }

        // Normalise and store; the quad's partial sums make the row sum.
        let ob = o.add(batch * p.o_batch_stride as usize + head * p.o_head_stride as usize);
        let lse_head = batch * p.heads as usize + head;
        unroll2!(rb => {
            if rb < RB {
                store_rows(
                    &acc[rb], D / 8, row_sum[rb], row_max[rb], scale, first + 16 * rb, t, ob, &p,
                    lse, lse_head,
                );
            }
        });
    }
}

kernel_entries! {
    flash_attn(q: *const E, k: *const E, v: *const E, o: *mut E, lse: *mut f32, p: FlashAttnParams);
    flash_attn_d64_f16 = [F16, 64, { flash_block_n(64) }, { flash_stages(64) }],
    flash_attn_d64_bf16 = [BF16, 64, { flash_block_n(64) }, { flash_stages(64) }],
    flash_attn_d128_f16 = [F16, 128, { flash_block_n(128) }, { flash_stages(128) }],
    flash_attn_d128_bf16 = [BF16, 128, { flash_block_n(128) }, { flash_stages(128) }],
}
