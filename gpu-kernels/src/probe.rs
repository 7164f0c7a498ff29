//! `tc_probe_{f16,bf16}`: one warp exercising every primitive no shipped kernel uses yet
//! (`cp.async`, `ldmatrix` plain and transposed, `mma.m16n8k16`, votes, indexed shuffle,
//! atomics, 32-bit and 128-bit shared accesses). Test-only: built only with the `probe` feature,
//! so it is never in the shipped PTX.
//!
//! Two uses: `scripts/ptx_primitives_check.sh` compiles it to PTX and runs `ptxas` for sm_80 and
//! sm_90 (the inline asm of the nvptx primitives assembles), and `host/tests/emu_primitives.rs`
//! runs it under the emulator against a scalar reference (the host twins compose the documented
//! fragment layouts into a correct 16x8x16 product).
//!
//! Launch: one block of 32 threads, `PROBE_SMEM_BYTES` of dynamic shared memory.

use crate::elem::{BF16, F16, MmaElem};
use crate::kernel_entries;
use crate::primitives::{
    Bytes16, atomic_add_f32, cp_async_16, cp_async_16_zfill, cp_async_commit_group,
    cp_async_wait_all, cp_async_wait_group, dyn_smem_base, ldmatrix_x1, ldmatrix_x1_trans,
    ldmatrix_x2, ldmatrix_x2_trans, ldmatrix_x4, ldmatrix_x4_trans, shfl_idx_f32, smem_load_16b,
    smem_load_u32, smem_store_16b, smem_store_u32, sync_threads, thread_idx_x, vote_all, vote_any,
    vote_ballot,
};

/// Shared bytes the probe needs: A (16x16 b16), Bᵀ (8x16 b16), and 16 bytes per lane of scratch.
pub const PROBE_SMEM_BYTES: u32 = 512 + 256 + 32 * 16;

/// Words per lane in the probe's `misc` output.
pub const PROBE_MISC_WORDS: usize = 13;

/// `d = a · bᵀᵀ` for a 16x16 `a` (row-major) and an 8x16 `bt` (Bᵀ row-major, i.e. B 16x8
/// column-major), plus per-lane results of the other primitives in `misc`
/// (`[32][PROBE_MISC_WORDS]`) and `*sum += 0 + 1 + ... + 31` through atomics.
///
/// # Safety
/// `a` holds 256 and `bt` 128 elements, both 16-byte aligned; `d` holds 128 f32, `misc`
/// `32 * PROBE_MISC_WORDS` words, `sum` one f32; one block of 32 threads with
/// `PROBE_SMEM_BYTES` of shared memory.
#[inline(always)]
pub unsafe fn tc_probe<E: MmaElem>(
    a: *const E,
    bt: *const E,
    d: *mut f32,
    misc: *mut u32,
    sum: *mut f32,
) {
    let lane = thread_idx_x();
    let (g, t) = (lane / 4, lane % 4);
    let s_a = dyn_smem_base();
    let s_b = s_a + 512;
    let s_x = s_b + 256;
    // SAFETY (whole body): every shared address below lies inside PROBE_SMEM_BYTES and is
    // aligned; every global index stays inside the sizes of the contract.
    unsafe {
        // Global → shared: 32 chunks of A, 16 of Bᵀ (the zero-fill form with a full source).
        cp_async_16(s_a + lane * 16, (a as *const u8).add(lane as usize * 16));
        if lane < 16 {
            cp_async_16_zfill(
                s_b + lane * 16,
                (bt as *const u8).add(lane as usize * 16),
                16,
            );
        }
        cp_async_commit_group();
        cp_async_wait_group::<0>();
        cp_async_wait_all();
        sync_threads();

        // A fragments: matrix m = lane / 8 covers rows 8·(m % 2).., columns 8·(m / 2)..
        let (m, i) = (lane / 8, lane % 8);
        let a_row = s_a + ((i + 8 * (m % 2)) * 16 + 8 * (m / 2)) * 2;
        let af = ldmatrix_x4(a_row);
        // B fragments: Bᵀ rows n = lane % 8, columns (k) 8·(lane / 8)..; lanes 16+ ignored.
        let b_row = s_b + ((lane % 8) * 16 + 8 * ((lane / 8) % 2)) * 2;
        let bf = ldmatrix_x2(b_row);
        let acc = E::mma(af, bf, [0.0; 4]);
        for e in 0..4 {
            let (r, c) = (g + 8 * (e / 2), 2 * t + e % 2);
            *d.add((r * 8 + c) as usize) = acc[e as usize];
        }

        let out = misc.add(lane as usize * PROBE_MISC_WORDS);
        let at = ldmatrix_x4_trans(a_row);
        for k in 0..4 {
            *out.add(k) = at[k];
        }
        *out.add(4) = ldmatrix_x1(a_row)[0];
        *out.add(5) = ldmatrix_x1_trans(a_row)[0];
        let bt2 = ldmatrix_x2_trans(b_row);
        *out.add(6) = bt2[0];
        *out.add(7) = bt2[1];
        *out.add(8) = vote_ballot(lane.is_multiple_of(3));
        *out.add(9) = vote_all(lane < 32) as u32
            | (vote_any(lane == 5) as u32) << 1
            | (vote_all(lane != 7) as u32) << 2
            | (vote_any(lane > 40) as u32) << 3;
        *out.add(10) = shfl_idx_f32(lane as f32, 31 - lane).to_bits();

        // Shared scratch: each lane writes its own 16 bytes, then (after a barrier) reads its
        // neighbour's — the barrier makes that race-free.
        smem_store_16b(
            s_x + lane * 16,
            Bytes16([lane, lane * 2, lane * 3, lane * 4]),
        );
        smem_store_u32(s_x + lane * 16 + 4, lane + 1000);
        sync_threads();
        let next = (lane + 1) % 32;
        let v = smem_load_16b(s_x + next * 16);
        *out.add(11) = v.0[0] + v.0[1] + v.0[2] + v.0[3];
        *out.add(12) = smem_load_u32(s_x + next * 16 + 4);

        atomic_add_f32(sum, lane as f32);
    }
}

kernel_entries! {
    tc_probe(a: *const E, bt: *const E, d: *mut f32, misc: *mut u32, sum: *mut f32);
    tc_probe_f16 = F16, tc_probe_bf16 = BF16,
}
