//! Every kind of kernel bug the emulator reports, with the kernel, block and thread it names.

use nano_infer_kernels::emu::{self, EmuError, MAX_BLOCK_THREADS};
use nano_infer_kernels::primitives::*;

fn launch1(threads: u32, smem: u32, body: impl Fn() + Sync) -> Result<(), EmuError> {
    emu::launch((2, 1, 1), (threads, 1, 1), smem, "probe", body)
}

#[test]
fn shared_out_of_bounds_names_block_and_thread() {
    let r = launch1(64, 64, || {
        if block_idx_x() == 1 && thread_idx_x() == 5 {
            // SAFETY: deliberately out of bounds; the emulator checks it.
            unsafe { smem_store_f32(dyn_smem_base() + 64, 1.0) };
        }
    });
    let e = r.unwrap_err();
    assert_eq!(
        e,
        EmuError::SharedOutOfBounds {
            kernel: "probe".into(),
            block: (1, 0, 0),
            thread: (5, 0, 0),
            addr: 64,
            len: 4,
            size: 64,
        }
    );
    assert!(
        e.to_string()
            .contains("probe: block (1, 0, 0) thread (5, 0, 0)"),
        "{e}"
    );
}

#[test]
fn shared_misaligned_and_16_byte_accesses() {
    let r = launch1(32, 64, || {
        // SAFETY: deliberately misaligned.
        unsafe { smem_load_u32(2) };
    });
    assert!(
        matches!(
            r,
            Err(EmuError::SharedMisaligned {
                addr: 2,
                align: 4,
                ..
            })
        ),
        "{r:?}"
    );
    let r = launch1(32, 64, || {
        // SAFETY: 16 bytes at 56 cross the end of 64 bytes.
        unsafe { smem_load_16b(48 + 8) };
    });
    assert!(
        matches!(r, Err(EmuError::SharedOutOfBounds { len: 16, .. })),
        "{r:?}"
    );
}

#[test]
fn barrier_after_an_early_exit_is_divergent() {
    let r = launch1(64, 0, || {
        if thread_idx_x() >= 16 {
            return;
        }
        sync_threads();
    });
    assert!(
        matches!(r, Err(EmuError::BarrierDivergence { .. })),
        "{r:?}"
    );
}

#[test]
fn barriers_at_different_sites_are_divergent() {
    // The same call written twice, as an if/else with a barrier in each branch would be.
    #[allow(clippy::if_same_then_else)]
    let r = launch1(64, 0, || {
        if thread_idx_x() < 32 {
            sync_threads();
        } else {
            sync_threads();
        }
    });
    match r {
        Err(EmuError::BarrierDivergence { detail, .. }) => {
            assert!(detail.contains("errors.rs"), "{detail}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn warp_collectives_must_match_and_fill_the_warp() {
    let r = launch1(32, 0, || {
        if thread_idx_x() < 16 {
            shfl_xor_f32(1.0, 1);
        } else {
            vote_any(true);
        }
    });
    assert!(matches!(r, Err(EmuError::WarpDivergence { .. })), "{r:?}");
    let r = launch1(48, 0, || {
        shfl_xor_f32(1.0, 1);
    });
    match r {
        Err(EmuError::WarpDivergence { detail, thread, .. }) => {
            assert!(
                thread.0 >= 32 && detail.contains("partial warp"),
                "{detail}"
            )
        }
        other => panic!("{other:?}"),
    }
    let r = launch1(32, 0, || {
        if thread_idx_x() == 3 {
            return;
        }
        shfl_xor_f32(1.0, 1);
    });
    assert!(matches!(r, Err(EmuError::WarpDivergence { .. })), "{r:?}");
}

#[test]
fn a_barrier_against_a_shuffle_is_a_deadlock() {
    let r = launch1(32, 0, || {
        if thread_idx_x() < 16 {
            shfl_xor_f32(1.0, 1);
        } else {
            sync_threads();
        }
    });
    match r {
        Err(EmuError::Deadlock { detail, .. }) => {
            assert!(detail.contains("16 at sync_threads"), "{detail}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_panicking_thread_is_an_error_not_a_panic() {
    let r = launch1(64, 0, || {
        assert!(thread_idx_x() != 40, "thread 40 is unhappy");
        sync_threads();
    });
    match r {
        Err(EmuError::Panic {
            thread,
            message,
            block,
            ..
        }) => {
            assert_eq!((thread, block), ((40, 0, 0), (0, 0, 0)));
            assert!(message.contains("unhappy"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn misaligned_global_vector_access_is_an_error() {
    let buf = [0u128; 3];
    let p = emu::SyncPtr::of(&buf);
    let r = launch1(32, 0, || {
        // SAFETY: in bounds, but deliberately 4 bytes off alignment.
        unsafe { load_16b(p.get::<*const u8>().add(4)) };
    });
    assert!(
        matches!(r, Err(EmuError::Panic { ref message, .. }) if message.contains("16-byte aligned")),
        "{r:?}"
    );
}

#[test]
fn launches_the_gpu_would_refuse() {
    for (grid, block, smem) in [
        ((0, 1, 1), (32, 1, 1), 0),
        ((1, 1, 1), (MAX_BLOCK_THREADS + 1, 1, 1), 0),
        ((1, 1, 1), (32, 1, 1), emu::MAX_SHARED_BYTES + 1),
    ] {
        let r = emu::launch(grid, block, smem, "bad", || {});
        assert!(matches!(r, Err(EmuError::InvalidLaunch { .. })), "{r:?}");
    }
}

#[test]
fn primitives_outside_a_launch_panic_clearly() {
    let r = std::panic::catch_unwind(thread_idx_x);
    let payload = r.unwrap_err();
    let msg = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    assert!(
        msg.contains("outside nano_infer_kernels::emu::launch"),
        "{msg}"
    );
}
