//! Deliberately broken kernels the emulator must flag on every run.
//!
//! Test-only kernel variants, defined here and nowhere else (so never in any PTX): the block
//! reduction of `gpu-kernels/src/reduce.rs` with a wrong shared-memory index, without its first
//! barrier, and without its trailing barrier (scratch reused too early). Each runs several times;
//! the real reduction runs as the control, so a failure can only come from the bug.

use nano_infer_kernels::emu::{self, EmuError, RaceKind, SyncPtr};
use nano_infer_kernels::params::REDUCE_SMEM_BYTES;
use nano_infer_kernels::primitives::{
    block_dim_x, block_idx_x, dyn_smem_base, smem_load_f32, smem_store_f32, sync_threads,
    thread_idx_x,
};
use nano_infer_kernels::reduce::{block_sum, warp_sum};

const RUNS: usize = 8;

/// The bugs, one per variant of the reduction.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Bug {
    /// The real `reduce::block_sum` (control).
    None,
    /// The partial sums indexed by thread instead of by warp: past the 128 scratch bytes.
    WrongIndex,
    /// No barrier between the warps' stores and the final warp's loads.
    MissingBarrier,
    /// No trailing barrier: a second reduction overwrites the scratch while it is still read.
    MissingTrailingBarrier,
}

/// `reduce::block_reduce` (sum) with `bug` injected.
///
/// # Safety
/// Every thread of the block calls it; `scratch` has `REDUCE_SMEM_BYTES` bytes.
unsafe fn buggy_block_sum(v: f32, scratch: u32, bug: Bug) -> f32 {
    if bug == Bug::None {
        // SAFETY: forwarded contract.
        return unsafe { block_sum(v, scratch) };
    }
    let lane = thread_idx_x() & 31;
    let warp = thread_idx_x() >> 5;
    let warps = block_dim_x().div_ceil(32);
    let w = warp_sum(v);
    // SAFETY: the shared accesses are checked by the emulator; that is the point.
    unsafe {
        if lane == 0 {
            let slot = if bug == Bug::WrongIndex {
                thread_idx_x()
            } else {
                warp
            };
            smem_store_f32(scratch + slot * 4, w);
        }
        if bug != Bug::MissingBarrier {
            sync_threads();
        }
        let t = if lane < warps {
            smem_load_f32(scratch + lane * 4)
        } else {
            0.0
        };
        let total = warp_sum(t);
        if bug != Bug::MissingTrailingBarrier {
            sync_threads();
        }
        total
    }
}

/// `out[block] = Σ x[block·n + i] + Σ 2·x[block·n + i]` over one row of `n = blockDim.x`
/// elements: two reductions back to back through the same scratch, as RMSNorm-then-softmax
/// style kernels do.
///
/// # Safety
/// `x` holds `gridDim.x · blockDim.x` elements, `out` `gridDim.x`; `REDUCE_SMEM_BYTES` shared.
unsafe fn twice_sum_kernel(x: *const f32, out: *mut f32, bug: Bug) {
    let (b, t, n) = (
        block_idx_x() as usize,
        thread_idx_x() as usize,
        block_dim_x() as usize,
    );
    // SAFETY: indices stay inside the row of this block; scratch per the contract.
    unsafe {
        let v = *x.add(b * n + t);
        let scratch = dyn_smem_base();
        let first = buggy_block_sum(v, scratch, bug);
        let second = buggy_block_sum(2.0 * v, scratch, bug);
        if t == 0 {
            *out.add(b) = first + second;
        }
    }
}

/// Runs the kernel over 3 rows of 256 threads; the emulator's verdict and the sums.
fn run(bug: Bug) -> (Result<(), EmuError>, Vec<f32>) {
    let (rows, n) = (3usize, 256usize);
    let x: Vec<f32> = (0..rows * n).map(|i| (i % 17) as f32 - 8.0).collect();
    let mut out = vec![0.0f32; rows];
    let (xp, op) = (SyncPtr::of(&x), SyncPtr::of_mut(&mut out));
    let r = emu::launch(
        (rows as u32, 1, 1),
        (n as u32, 1, 1),
        REDUCE_SMEM_BYTES,
        "twice_sum",
        || {
            // SAFETY: x holds rows * n elements, out rows; shared memory as required.
            unsafe { twice_sum_kernel(xp.get(), op.get(), bug) }
        },
    );
    (r, out)
}

fn want() -> Vec<f32> {
    let n = 256;
    (0..3)
        .map(|r| (0..n).map(|i| ((r * n + i) % 17) as f32 - 8.0).sum::<f32>() * 3.0)
        .collect()
}

#[test]
fn the_correct_reduction_passes() {
    for _ in 0..RUNS {
        let (r, out) = run(Bug::None);
        r.unwrap_or_else(|e| panic!("control kernel flagged: {e}"));
        assert_eq!(out, want());
    }
}

#[test]
fn wrong_index_is_reported_as_out_of_bounds_every_time() {
    for i in 0..RUNS {
        match run(Bug::WrongIndex).0 {
            Err(EmuError::SharedOutOfBounds {
                kernel,
                thread,
                addr,
                len,
                size,
                ..
            }) => {
                assert_eq!(kernel, "twice_sum");
                // Lane 0 of warps 1.. writes at 4 · threadIdx.x >= 128.
                assert!(
                    thread.0 >= 32 && thread.0 % 32 == 0,
                    "run {i}: thread {thread:?}"
                );
                assert_eq!((addr, len, size), (thread.0 * 4, 4, REDUCE_SMEM_BYTES));
            }
            other => panic!("run {i}: expected SharedOutOfBounds, got {other:?}"),
        }
    }
}

#[test]
fn missing_barrier_is_reported_as_a_race_every_time() {
    for i in 0..RUNS {
        match run(Bug::MissingBarrier).0 {
            Err(e @ EmuError::Race { .. }) => {
                let EmuError::Race { kind, addr, .. } = &e else {
                    unreachable!()
                };
                assert!(*addr < REDUCE_SMEM_BYTES, "run {i}: {e}");
                assert!(
                    matches!(kind, RaceKind::ReadAfterWrite | RaceKind::WriteAfterRead),
                    "run {i}: {e}"
                );
                assert!(e.to_string().contains("no sync_threads in between"));
            }
            other => panic!("run {i}: expected a race, got {other:?}"),
        }
    }
}

#[test]
fn missing_trailing_barrier_is_reported_as_a_race_every_time() {
    for i in 0..RUNS {
        match run(Bug::MissingTrailingBarrier).0 {
            Err(EmuError::Race { kernel, .. }) => assert_eq!(kernel, "twice_sum"),
            other => panic!("run {i}: expected a race, got {other:?}"),
        }
    }
}
