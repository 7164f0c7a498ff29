//! The decode step's bookkeeping on the device, so a CUDA graph of the step needs nothing from
//! the host but the launch: greedy sampling and moving the position on.
//!
//! Kernels: `argmax_f32` (the index of the largest logit, written where the next step's
//! embedding reads its token id; launch: [`crate::launch_shape::argmax`], one block) and
//! `add_u32` (adds to a device-side counter — the cache length; launch:
//! [`crate::launch_shape::single`]).
//! Test: `cargo test --release -p nano-infer-host --lib decode_step` (the emulated device).

use crate::elem::{aligned16, load4_f32};
use crate::kernel_entries;
use crate::params::ARGMAX_BLOCK;
use crate::primitives::{
    dyn_smem_base, shfl_xor_f32, smem_load_f32, smem_load_u32, smem_store_f32, smem_store_u32,
    sync_threads, thread_idx_x,
};

/// A candidate of the argmax: the larger value wins, the lower index breaks ties. NaN never
/// wins (every comparison with it is false), so `index` stays `u32::MAX` only when every
/// value is NaN.
#[derive(Clone, Copy)]
struct Best {
    value: f32,
    index: u32,
}

impl Best {
    const NONE: Best = Best {
        value: f32::NEG_INFINITY,
        index: u32::MAX,
    };

    #[inline(always)]
    fn offer(&mut self, value: f32, index: u32) {
        if value > self.value || (value == self.value && index < self.index) {
            *self = Best { value, index };
        }
    }

    /// Keeps the best of the 32 lanes (on every lane). The index travels as f32 bits.
    #[inline(always)]
    fn warp_reduce(&mut self) {
        let mut m = 16;
        while m > 0 {
            let value = shfl_xor_f32(self.value, m);
            let index = shfl_xor_f32(f32::from_bits(self.index), m).to_bits();
            self.offer(value, index);
            m >>= 1;
        }
    }
}

/// `out[0] = argmax(x[..n])`: the first index of the largest value, as the host's
/// `sampler::argmax` picks it (0 when every value is NaN).
///
/// # Safety
/// One block of [`ARGMAX_BLOCK`] threads with `ARGMAX_BLOCK / 32 * 8` bytes of dynamic shared
/// memory; `x` holds `n` f32, `out` one `u32`.
#[inline(always)]
pub unsafe fn argmax(x: *const f32, n: u32, out: *mut u32) {
    let t = thread_idx_x();
    let mut best = Best::NONE;
    // Each thread walks 4-float chunks block-strided (coalesced 16-byte loads), then the tail.
    let chunks = if aligned16(x) { n / 4 } else { 0 };
    let mut c = t;
    // SAFETY: chunk c covers 4c..4c + 4 <= n, 16-byte aligned as the base is; tail i < n.
    unsafe {
        while c < chunks {
            let v = load4_f32(x, 4 * c as usize);
            for e in 0..4 {
                best.offer(v[e], 4 * c + e as u32);
            }
            c += ARGMAX_BLOCK;
        }
        let mut i = 4 * chunks + t;
        while i < n {
            best.offer(*x.add(i as usize), i);
            i += ARGMAX_BLOCK;
        }
    }
    best.warp_reduce();
    let (lane, warp) = (t & 31, t / 32);
    let slot = |w: u32| dyn_smem_base() + w * 8;
    // SAFETY: warp < ARGMAX_BLOCK / 32, so every slot lies in the launch's shared memory.
    unsafe {
        if lane == 0 {
            smem_store_f32(slot(warp), best.value);
            smem_store_u32(slot(warp) + 4, best.index);
        }
        sync_threads();
        if warp == 0 {
            let mut total = Best::NONE;
            if lane < ARGMAX_BLOCK / 32 {
                total = Best {
                    value: smem_load_f32(slot(lane)),
                    index: smem_load_u32(slot(lane) + 4),
                };
            }
            total.warp_reduce();
            if lane == 0 {
                *out = if total.index == u32::MAX {
                    0
                } else {
                    total.index
                };
            }
        }
    }
}

/// `*counter += by`.
///
/// # Safety
/// One thread; `counter` points at a `u32`.
#[inline(always)]
pub unsafe fn add_u32(counter: *mut u32, by: u32) {
    // SAFETY: the caller's contract.
    unsafe { *counter = (*counter).wrapping_add(by) };
}

kernel_entries! { argmax(x: *const f32, n: u32, out: *mut u32); argmax_f32 }
kernel_entries! { add_u32(counter: *mut u32, by: u32); add_u32 }
