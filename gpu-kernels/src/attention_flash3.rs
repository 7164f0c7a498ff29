//! FlashAttention prefill on Hopper's warpgroup matrix instructions (FlashAttention-3 style,
//! sm_90a only): the FlashAttention-2 kernel's algorithm (`attention_flash.rs`) with both
//! matmuls as asynchronous `wgmma` reading shared memory directly.
//!
//! Variants: `flash3_attn_d128_{f16,bf16}` (head dim 128), parameters in [`FlashAttnParams`],
//! the FlashAttention-2 grid (`flash_tile`: heads, [`FLASH_BLOCK_M`]-row query tiles, batch).
//! Built into the sm_90a PTX only (`wgmma` is not in the portable ISA); the host picks it on a
//! compute capability 9.0 device and keeps FlashAttention-2 elsewhere.
//!
//! # Why
//! The `mma.sync` kernel is at SDPA-flash's level on an H100 (its docs): each warp issues every
//! 16x8x16 product and feeds it from registers it loaded with `ldmatrix`, 8 warps an SM, and the
//! softmax between the two matmuls stalls the tensor pipe. `wgmma` takes a 64x128x16 product per
//! instruction for a whole warpgroup, reads K and V (and Q) from shared memory itself, and runs
//! asynchronously, so one warpgroup's softmax overlaps the other's matmuls.
//!
//! # Thread mapping
//! A block is two warpgroups (256 threads); warpgroup `w` owns query rows `64w..64w + 64` of the
//! block's tile, warp `i` of it rows `16i..16i + 16` of those, and each thread two rows (`g`,
//! `g + 8`) of its warp's — the `mma` accumulator layout, which `wgmma` keeps per warp.
//! 1. Q tile → shared (`cp.async`), once.
//! 2. Per K/V tile of [`FLASH3_BLOCK_N`] keys, through a ring of [`FLASH3_STAGES`] stages (the
//!    next tile streams in while this one is used; one barrier per tile): `S = Q·Kᵀ` as 8
//!    `wgmma.m64n128k16` (A = Q and B = K, both K-major in shared memory), mask, the online
//!    softmax of FlashAttention-2 (`online_softmax`: lazy max, quad reductions), `P` packed in
//!    registers as the A operand, `O += P·V` as 8 `wgmma.m64n128k16` with A from registers and
//!    V N-major in shared memory. P·V is not waited for in its tile: it runs on behind the next
//!    tile's barrier and copies, and the next `S` wait retires it (hence three stages: the tile
//!    being loaded is never the one P·V may still read).
//! 3. `O / l` to global, and optionally the log-sum-exp (`store_rows`).
//!
//! Shared memory (1024-byte aligned): `[Q | K₀ | V₀ | K₁ | V₁ | K₂ | V₂]`, each a 128-row tile
//! in the 128-byte swizzle layout `wgmma` reads: two 64-column panels of 128 rows x 128 bytes,
//! the 16-byte chunk `c` of row `r` at chunk `c ^ (r % 8)` ([`crate::emu::wgmma`] has the
//! layout).
//!
//! # What it reaches, what limits it, what did not help
//! H100, B1 H32 hd128, same job as SDPA-flash: 420-448 TFLOP/s at S 4096-8192 full (1.22-1.31x),
//! 383-433 causal (1.43-1.54x); FlashAttention-2 on the same card 339-360 full. Both warpgroups
//! run S, softmax and P·V in turn, each waiting for its own matmuls; their matmuls interleave on
//! the tensor cores by themselves. ncu (f16 S8192 full): tensor pipe 45% of peak, issue slots
//! 29% busy, 8 warps an SM (one block: 247 registers a thread and 165 KB of shared memory) at
//! 6.7 cycles per issued instruction — latency-bound: two warpgroups do not hide each other's
//! softmax and `wgmma` waits.
//!
//! Measured (same job, alternating rounds): P·V left running behind the next tile's barrier
//! and copies, +1.5-3% on every full shape over waiting for it in its tile (landed). Not
//! landed: FlashAttention-3's intra-warpgroup overlap (S of tile j + 1 and P·V of tile j issued
//! together, tile j + 1's softmax while P·V runs) 6-8% slower on every shape, at 255 registers,
//! with the `wgmma` pipeline unserialised (a `wgmma` under a condition inside a fence..wait
//! sequence, or P's registers reused before the wait, makes ptxas serialise every `wgmma`:
//! C7520/C7513 — `wgmma_hold_a` keeps P's registers); a 3-stage ring with two tiles in flight,
//! level at full attention and 1-2% slower causal, so the copies do not limit it.
//! What the full FlashAttention-3 has beyond this — TMA loads from a producer warpgroup whose
//! registers go to the consumers (`setmaxnreg`), and pingpong scheduling of the two consumers
//! over named barriers — is what is left.
//!
//! Test: `cargo test --release --test gpu_vs_cpu flash3` (`emu::` runs it on the emulated
//! device; `--include-ignored` adds `cuda::`); bench: `cargo bench --bench gpu_kernels -- --only
//! flash3`.

use crate::attention_flash::{
    FlashTile, flash_tile, mask_scores, online_softmax, pack_p, rescale_rows, store_rows,
};
use crate::elem::{BF16, F16, WgmmaElem};
use crate::kernel_entries;
use crate::params::{
    FLASH_BLOCK_M, FLASH3_BLOCK_N, FLASH3_HEAD_DIM, FLASH3_STAGES, FLASH3_THREADS, FlashAttnParams,
};
use crate::primitives::{
    cp_async_16_zfill, cp_async_commit_group, cp_async_wait_group, dyn_smem_base,
    fence_proxy_async_shared, opaque_ptr, sync_threads, thread_idx_x, wgmma_commit_group,
    wgmma_desc_sw128, wgmma_fence, wgmma_hold, wgmma_hold_a, wgmma_wait_group,
};
use crate::unroll8;

#[allow(unused_imports)] // named by the docs
use crate::params::flash3_smem_bytes;

const D: usize = FLASH3_HEAD_DIM;
const BN: usize = FLASH3_BLOCK_N;
/// Rows of every tile (Q, K and V): the layout below assumes one row count for all three.
const ROWS: usize = FLASH_BLOCK_M;
const _: () = assert!(ROWS == 128 && BN == ROWS && D == 128 && FLASH3_THREADS == 256);
const _: () = assert!(
    FLASH3_STAGES == 3,
    "tile j + 1 loads while tile j - 1's P·V may still read its stage"
);

/// Bytes of one 64-column panel of a tile (128 rows of 128 bytes).
const PANEL_BYTES: u32 = (ROWS * 128) as u32;
/// Bytes of one tile (two panels).
const TILE_BYTES: u32 = 2 * PANEL_BYTES;
/// Bytes of eight rows of a panel: a swizzle atom, the stride between 8-row groups (SBO).
const ATOM_BYTES: u32 = 1024;

/// Shared byte offset, within a tile, of 16-byte chunk `c` (0..16) of row `r`.
#[inline(always)]
fn sw128(r: u32, c: u32) -> u32 {
    (c / 8) * PANEL_BYTES + r * 128 + (((c % 8) ^ (r % 8)) << 4)
}

/// Issues the `cp.async` copies of rows `row0..row0 + 128` of a `[len, row_stride]` matrix into
/// the tile at `tile`; rows at or past `len` are zero-filled (no bytes read). Thread `tid` copies
/// chunk `tid % 16` of rows `tid / 16 + 16·pass`, so every pass keeps the row's swizzle.
///
/// # Safety
/// `src` rows below `len` are readable for `D` elements, 16-byte aligned; `tile` is a tile of
/// the dynamic shared memory.
#[inline(always)]
unsafe fn load_tile<E>(
    tile: u32,
    src: *const E,
    row_stride: usize,
    row0: usize,
    len: usize,
    tid: usize,
) {
    let (r, c) = (tid / 16, tid % 16);
    let dst = tile + sw128(r as u32, c as u32);
    // One pointer stepped by 16 rows a pass, opaque so that the compiler does not keep eight
    // precomputed addresses per tile alive across the main loop (registers the accumulators
    // need).
    // SAFETY: pointer arithmetic only; rows at or past `len` are never dereferenced.
    let mut from = opaque_ptr(unsafe { src.add((row0 + r) * row_stride + 8 * c) });
    unroll8!(pass => {
        let row = row0 + r + 16 * pass;
        let to = dst + (16 * pass * 128) as u32;
        if pass > 0 {
            from = opaque_ptr(from.wrapping_add(16 * row_stride));
        }
        // SAFETY: rows below `len` are in bounds (caller); others read 0 bytes.
        unsafe {
            if row < len {
                cp_async_16_zfill(to, from as *const u8, 16);
            } else {
                cp_async_16_zfill(to, src as *const u8, 0);
            }
        }
    });
}

/// The attention of one query tile of one head; see the module docs.
///
/// # Safety
/// Pointers and strides as [`FlashAttnParams`] documents (16-byte aligned rows, strides
/// multiples of 8 elements); `lse` null or `[batch][heads][q_len]` f32; launched with the
/// documented grid, [`FLASH3_THREADS`] threads and [`flash3_smem_bytes`] of dynamic shared
/// memory.
#[inline(always)]
unsafe fn flash3_attn<E: WgmmaElem>(
    q: *const E,
    k: *const E,
    v: *const E,
    o: *mut E,
    lse: *mut f32,
    p: FlashAttnParams,
) {
    let tid = thread_idx_x() as usize;
    let (wg, warp, lane) = (tid / 128, (tid / 32) % 4, tid % 32);
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
    // shared addresses stay inside the aligned Q tile and K/V stages of `flash3_smem_bytes`.
    unsafe {
        let FlashTile { qb, kb, vb, .. } = tile;
        let (q_stride, kv_stride) = (p.q_row_stride as usize, p.kv_row_stride as usize);
        let s_q = (dyn_smem_base() + ATOM_BYTES - 1) & !(ATOM_BYTES - 1);
        // Stage `st`: K tile at `s_k(st)`, V tile right after it.
        let s_k = |st: usize| s_q + TILE_BYTES + (2 * st) as u32 * TILE_BYTES;

        let tiles = tile.kv_end.div_ceil(BN);

        // Q and tile 0 in one commit group.
        load_tile(s_q, qb, q_stride, q0, q_len, tid);
        load_tile(s_k(0), kb, kv_stride, 0, kv_len, tid);
        load_tile(s_k(0) + TILE_BYTES, vb, kv_stride, 0, kv_len, tid);
        cp_async_commit_group();

        // This thread's rows: `first` and `first + 8`.
        let wg_row = wg * 64;
        let first = q0 + wg_row + warp * 16 + g;
        let wg_last = q0 + wg_row + 63;
        let mut acc = [[0f32; 4]; 16];
        let mut row_max = [f32::NEG_INFINITY; 2];
        let mut row_sum = [0f32; 2];
        // P of the tile whose P·V is in flight (A operand: untouched until its wait).
        let mut pk = [[0u32; 4]; 8];
        let scale = p.scale_log2;

        let mut j = 0;
        while j < tiles {
            // Tile j (and at j = 0, Q) landed for every thread and is visible to the async
            // proxy `wgmma` reads through; tile j + 1 goes to tile j - 2's stage (tile j - 1's
            // P·V may still be reading its V until this tile's S wait).
            cp_async_wait_group::<0>();
            fence_proxy_async_shared();
            sync_threads();
            if j + 1 < tiles {
                let st = (j + 1) % FLASH3_STAGES;
                let key1 = (j + 1) * BN;
                load_tile(s_k(st), kb, kv_stride, key1, kv_len, tid);
                load_tile(s_k(st) + TILE_BYTES, vb, kv_stride, key1, kv_len, tid);
            }
            cp_async_commit_group();
            let (s_kj, s_vj) = (s_k(j % FLASH3_STAGES), s_k(j % FLASH3_STAGES) + TILE_BYTES);
            let key0 = j * BN;
            // Under causal, a warpgroup whose rows all end before this tile has nothing to add
            // (uniform over the warpgroup, as `wgmma` needs).
            if !causal || key0 <= wg_last + shift {
                // S = Q·K_jᵀ: k-step kk takes 16 columns of the head dim, 32 bytes into a
                // panel row; the 8-row groups of both operands are one atom apart.
                let mut s = [[0f32; 4]; 16];
                wgmma_fence();
                unroll8!(kk => {
                    let col = (kk / 4) as u32 * PANEL_BYTES + (kk % 4) as u32 * 32;
                    let a = wgmma_desc_sw128(s_q + wg_row as u32 * 128 + col, 16, ATOM_BYTES);
                    let b = wgmma_desc_sw128(s_kj + col, 16, ATOM_BYTES);
                    E::wgmma_ss(&mut s, a, b, kk > 0);
                });
                wgmma_commit_group();
                // Also retires the previous tile's P·V, which ran behind the barrier and the
                // copies: the output and the old P are free from here.
                wgmma_wait_group::<0>();
                wgmma_hold(&mut s);
                wgmma_hold(&mut acc);
                wgmma_hold_a(&mut pk);

                if key0 + BN > kv_len || (causal && key0 + BN > first + shift + 1) {
                    mask_scores(&mut s, BN / 8, key0, first, t, kv_len, causal, shift);
                }
                let rescale = online_softmax(&mut s, BN / 8, &mut row_max, &mut row_sum, scale);
                rescale_rows(&mut acc, D / 8, rescale);
                pk = pack_p::<E, 16, 8>(&s, BN / 16);

                // O += P·V_j: k-step ks takes keys 16ks..16ks + 16, two 8-row groups of V
                // (SBO), whose 128 columns are two panels (LBO).
                wgmma_fence();
                unroll8!(ks => {
                    let v_ks = s_vj + (ks as u32) * 2 * ATOM_BYTES;
                    let b = wgmma_desc_sw128(v_ks, PANEL_BYTES, ATOM_BYTES);
                    E::wgmma_rs(&mut acc, pk[ks], b, true);
                });
                wgmma_commit_group();
            }
            j += 1;
        }

        // The last P·V.
        wgmma_wait_group::<0>();
        wgmma_hold(&mut acc);
        let ob = o.add(batch * p.o_batch_stride as usize + head * p.o_head_stride as usize);
        let lse_head = batch * p.heads as usize + head;
        store_rows(
            &acc,
            D / 8,
            row_sum,
            row_max,
            scale,
            first,
            t,
            ob,
            &p,
            lse,
            lse_head,
        );
    }
}

kernel_entries! {
    flash3_attn(q: *const E, k: *const E, v: *const E, o: *mut E, lse: *mut f32, p: FlashAttnParams);
    flash3_attn_d128_f16 = F16,
    flash3_attn_d128_bf16 = BF16,
}
