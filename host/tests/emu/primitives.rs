//! The emulator's semantics, primitive by primitive: ids, warp collectives, atomics, async
//! copies, the tensor-core probe kernel against a scalar product, and every kind of error.

use half::{bf16, f16};
use nano_infer_kernels::elem::{BF16, F16};
use nano_infer_kernels::emu::fragments::{a_coord, b_coord, c_coord};
use nano_infer_kernels::emu::{self, SyncPtr};
use nano_infer_kernels::primitives::*;
use nano_infer_kernels::probe::{self, PROBE_MISC_WORDS, PROBE_SMEM_BYTES};
use nano_infer_kernels::reduce::warp_sum;

#[test]
fn ids_cover_the_grid() {
    let (grid, block) = ((3, 2, 1), (8, 3, 1));
    let mut out = vec![[0u32; 8]; 3 * 2 * 24];
    let op = SyncPtr::of_mut(&mut out);
    emu::launch(grid, block, 0, "ids", || {
        let b = block_idx_x() + block_idx_y() * grid_dim_x();
        let t = thread_idx_x() + thread_idx_y() * block_dim_x();
        let ids = [
            thread_idx_x(),
            thread_idx_y(),
            block_idx_x(),
            block_idx_y(),
            block_dim_x(),
            block_dim_y(),
            grid_dim_x(),
            grid_dim_y(),
        ];
        // SAFETY: one distinct slot per thread of the grid.
        unsafe { *op.get::<*mut [u32; 8]>().add((b * 24 + t) as usize) = ids };
    })
    .unwrap();
    for (i, ids) in out.iter().enumerate() {
        let (b, t) = (i as u32 / 24, i as u32 % 24);
        assert_eq!(*ids, [t % 8, t / 8, b % 3, b / 3, 8, 3, 3, 2], "slot {i}");
    }
}

#[test]
fn shuffles_and_votes_exchange_within_each_warp() {
    let mut out = vec![[0u32; 5]; 64];
    let op = SyncPtr::of_mut(&mut out);
    emu::launch((1, 1, 1), (64, 1, 1), 0, "warp", || {
        let t = thread_idx_x();
        let lane = t % 32;
        let r = [
            warp_sum(t as f32) as u32,
            shfl_idx_f32(t as f32, 3) as u32,
            vote_ballot(lane.is_multiple_of(2) == (t < 32)),
            vote_any(t == 40) as u32 | (vote_all(t < 64) as u32) << 1,
            shfl_xor_f32(t as f32, 1) as u32,
        ];
        // SAFETY: one slot per thread.
        unsafe { *op.get::<*mut [u32; 5]>().add(t as usize) = r };
    })
    .unwrap();
    for t in 0..64u32 {
        let warp = t / 32;
        let sum = (0..32).map(|l| warp * 32 + l).sum::<u32>();
        let ballot = if warp == 0 { 0x5555_5555 } else { 0xaaaa_aaaa };
        let any = (warp == 1) as u32;
        assert_eq!(
            out[t as usize],
            [sum, warp * 32 + 3, ballot, any | 2, t ^ 1],
            "thread {t}"
        );
    }
}

#[test]
fn atomics_add_up_across_blocks() {
    let mut sum = [0.0f32];
    let mut old = vec![0.0f32; 1024];
    let (sp, op) = (SyncPtr::of_mut(&mut sum), SyncPtr::of_mut(&mut old));
    emu::launch((4, 1, 1), (256, 1, 1), 0, "atomics", || {
        let i = (block_idx_x() * 256 + thread_idx_x()) as usize;
        // SAFETY: sum is one f32; old has a slot per thread.
        unsafe { *op.get::<*mut f32>().add(i) = atomic_add_f32(sp.get(), 1.0) };
    })
    .unwrap();
    assert_eq!(sum[0], 1024.0);
    let mut seen: Vec<u32> = old.iter().map(|&v| v as u32).collect();
    seen.sort_unstable();
    assert_eq!(
        seen,
        (0..1024).collect::<Vec<_>>(),
        "each add saw a distinct old value"
    );
}

#[test]
fn cp_async_lands_only_when_its_group_is_waited_for() {
    let src: Vec<u128> = (0..64)
        .map(|i| i * 0x0101_0101_0101_0101_0101_0101_0101_0101)
        .collect();
    let mut out = vec![[0u32; 3]; 32];
    let (sp, op) = (SyncPtr::of(&src), SyncPtr::of_mut(&mut out));
    emu::launch((1, 1, 1), (32, 1, 1), 32 * 32, "cp_async", || {
        let t = thread_idx_x();
        let s = dyn_smem_base() + t * 32;
        // SAFETY: each lane copies its own two 16-byte chunks into its own 32 shared bytes.
        unsafe {
            let g = sp.get::<*const u8>().add(t as usize * 32);
            cp_async_16(s, g);
            cp_async_commit_group();
            cp_async_16_zfill(s + 16, g.add(16), 4);
            cp_async_commit_group();
            let before = smem_load_u32(s);
            cp_async_wait_group::<1>(); // lands the first group only
            let first = smem_load_u32(s);
            let second_pending = smem_load_u32(s + 16);
            cp_async_wait_group::<0>();
            let second = smem_load_16b(s + 16).0;
            *op.get::<*mut [u32; 3]>().add(t as usize) = [before, first, second_pending];
            assert_eq!(second[1..], [0, 0, 0], "zero-filled past src_bytes");
            assert_eq!(second[0], (2 * t + 1) * 0x0101_0101);
        }
    })
    .unwrap();
    for (t, r) in out.iter().enumerate() {
        let t = t as u32;
        assert_eq!(*r, [u32::MAX, 2 * t * 0x0101_0101, u32::MAX], "lane {t}");
    }
}

/// Inputs of one probe run: `a` (16x16) and `bt` (8x16) made of small integers, exact in f16
/// and bf16 so the scalar reference product is exact, and their 16-bit encodings.
pub struct ProbeInputs {
    pub a: Vec<f32>,
    pub bt: Vec<f32>,
    pub a16: Vec<u16>,
    pub bt16: Vec<u16>,
}

pub fn probe_inputs(bits: fn(f32) -> u16) -> ProbeInputs {
    let a: Vec<f32> = (0..256).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
    let bt: Vec<f32> = (0..128).map(|i| ((i * 5) % 9) as f32 - 4.0).collect();
    let (a16, bt16) = (
        a.iter().map(|&v| bits(v)).collect(),
        bt.iter().map(|&v| bits(v)).collect(),
    );
    ProbeInputs { a, bt, a16, bt16 }
}

/// `(d, misc, sum)` of the probe under the emulator (`sum` starts at 0.5).
fn run_probe<E>(
    inputs: &ProbeInputs,
    kernel: unsafe fn(*const E, *const E, *mut f32, *mut u32, *mut f32),
) -> (Vec<f32>, Vec<u32>, f32) {
    // 16-byte aligned copies (cp.async needs them).
    let mut a16 = vec![0u128; 32];
    let mut b16 = vec![0u128; 16];
    bytemuck::cast_slice_mut::<u128, u16>(&mut a16).copy_from_slice(&inputs.a16);
    bytemuck::cast_slice_mut::<u128, u16>(&mut b16).copy_from_slice(&inputs.bt16);
    let (mut d, mut misc, mut sum) = (
        vec![0.0f32; 128],
        vec![0u32; 32 * PROBE_MISC_WORDS],
        [0.5f32],
    );
    let (ap, bp) = (SyncPtr::of(&a16), SyncPtr::of(&b16));
    let (dp, mp, sp) = (
        SyncPtr::of_mut(&mut d),
        SyncPtr::of_mut(&mut misc),
        SyncPtr::of_mut(&mut sum),
    );
    emu::launch((1, 1, 1), (32, 1, 1), PROBE_SMEM_BYTES, "tc_probe", || {
        // SAFETY: buffers sized and aligned as the probe's contract says; one warp.
        unsafe { kernel(ap.get(), bp.get(), dp.get(), mp.get(), sp.get()) }
    })
    .unwrap_or_else(|e| panic!("{e}"));
    (d, misc, sum[0])
}

/// Checks one probe run (emulated or on a GPU) against the PTX ISA's definitions.
pub fn check_probe(inputs: &ProbeInputs, d: &[f32], misc: &[u32], sum: f32, bits: fn(f32) -> u16) {
    let (a, bt) = (&inputs.a, &inputs.bt);
    for r in 0..16 {
        for c in 0..8 {
            let want: f32 = (0..16).map(|k| a[r * 16 + k] * bt[c * 16 + k]).sum();
            assert_eq!(d[r * 8 + c], want, "D[{r}][{c}]");
        }
    }
    let pack = |lo: f32, hi: f32| bits(lo) as u32 | (bits(hi) as u32) << 16;
    for lane in 0..32usize {
        let m = &misc[lane * PROBE_MISC_WORDS..][..PROBE_MISC_WORDS];
        let (g, t) = (lane / 4, lane % 4);
        // ldmatrix.x4.trans over the four 8x8 blocks of A (block j: rows 8(j%2).., cols 8(j/2)..).
        for (j, &word) in m[..4].iter().enumerate() {
            let (r0, c0) = (8 * (j % 2), 8 * (j / 2));
            let at = |r: usize, c: usize| a[(r0 + r) * 16 + c0 + c];
            assert_eq!(
                word,
                pack(at(2 * t, g), at(2 * t + 1, g)),
                "x4.trans lane {lane} m{j}"
            );
        }
        assert_eq!(
            m[4],
            pack(a[g * 16 + 2 * t], a[g * 16 + 2 * t + 1]),
            "x1 lane {lane}"
        );
        assert_eq!(
            m[5],
            pack(a[2 * t * 16 + g], a[(2 * t + 1) * 16 + g]),
            "x1.trans lane {lane}"
        );
        for j in 0..2 {
            let bt_at = |r: usize, c: usize| bt[r * 16 + 8 * j + c];
            assert_eq!(
                m[6 + j],
                pack(bt_at(2 * t, g), bt_at(2 * t + 1, g)),
                "x2.trans lane {lane}"
            );
        }
        let ballot = (0..32).filter(|l| l % 3 == 0).fold(0u32, |b, l| b | 1 << l);
        assert_eq!(m[8], ballot);
        assert_eq!(
            m[9], 0b0011,
            "all(true), any(lane == 5), !all(lane != 7), !any(lane > 40)"
        );
        assert_eq!(f32::from_bits(m[10]), (31 - lane) as f32);
        let next = ((lane + 1) % 32) as u32;
        assert_eq!(
            (m[11], m[12]),
            (9 * next + 1000, next + 1000),
            "shared round trip"
        );
    }
    assert_eq!(sum, 0.5 + 496.0);
}

#[test]
fn tensor_core_probe_f16_matches_a_scalar_product() {
    let bits = |v: f32| f16::from_f32(v).to_bits();
    let inputs = probe_inputs(bits);
    let (d, misc, sum) = run_probe::<F16>(&inputs, probe::tc_probe_f16);
    check_probe(&inputs, &d, &misc, sum, bits);
}

#[test]
fn tensor_core_probe_bf16_matches_a_scalar_product() {
    let bits = |v: f32| bf16::from_f32(v).to_bits();
    let inputs = probe_inputs(bits);
    let (d, misc, sum) = run_probe::<BF16>(&inputs, probe::tc_probe_bf16);
    check_probe(&inputs, &d, &misc, sum, bits);
}

#[test]
fn fragment_layouts_cover_each_tile_once() {
    let mut a = [[0u8; 16]; 16];
    let mut b = [[0u8; 8]; 16];
    let mut c = [[0u8; 8]; 16];
    for l in 0..32 {
        for r in 0..4 {
            for h in 0..2 {
                let (i, k) = a_coord(l, r, h);
                a[i as usize][k as usize] += 1;
            }
        }
        for r in 0..2 {
            for h in 0..2 {
                let (k, j) = b_coord(l, r, h);
                b[k as usize][j as usize] += 1;
            }
        }
        for i in 0..4 {
            let (r, j) = c_coord(l, i);
            c[r as usize][j as usize] += 1;
        }
    }
    assert!(
        a.iter()
            .flatten()
            .chain(b.iter().flatten())
            .chain(c.iter().flatten())
            .all(|&n| n == 1)
    );
    // The ISA's examples: lane 5 (group 1, thread 1) holds A[1][2..4] in a0 and A[9][10..12] in a3.
    assert_eq!((a_coord(5, 0, 0), a_coord(5, 3, 1)), ((1, 2), (9, 11)));
    assert_eq!((b_coord(5, 1, 0), c_coord(5, 3)), ((10, 1), (9, 3)));
}
