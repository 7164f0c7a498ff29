//! Random initialisation where the tensor lives: benchmark models of 7-8B parameters are made
//! on the GPU in a fraction of a second instead of drawn on the CPU and uploaded.
//!
//! Variants: `fill_uniform_{f32,f16,bf16}`. Element `i` is [`uniform`]`(seed, i, std)`: a
//! counter-based hash of `(seed, i)` turned into a value with integer math and one f32
//! multiply, so the host (which calls the same function) and the GPU produce the same bits —
//! random models are identical on every device.
//! Launch: grid-stride over [`crate::launch_shape::map_items`]`(n)` items of 8 elements.
//! Test: `cargo test --release -p nano-infer-host --lib uniform` (the emulated device).

use crate::elem::{BF16, CHUNK, Elem, F16};
use crate::kernel_entries;
use crate::primitives::{block_dim_x, block_idx_x, grid_dim_x, thread_idx_x};

/// Element `i` of the uniform distribution on `[-std·√3, std·√3)` (standard deviation `std`)
/// for `seed`: 24 random bits as an odd integer in `(-2^24, 2^24)` (exact in f32), times one
/// scale.
#[inline(always)]
pub fn uniform(seed: u64, i: u64, std: f32) -> f32 {
    // splitmix64's finaliser over a Weyl sequence.
    let mut z = seed
        .wrapping_add(i.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(0x632B_E59B_D9B4_E019);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    let odd = (2 * (z >> 40) as i32 + 1) - (1 << 24);
    // √3 / 2^24: one rounding of an exact integer, the same on every IEEE machine.
    odd as f32 * (std * (1.732_050_8 / 16_777_216.0))
}

/// `out[i] = uniform(seed, i, std)` for `i < n`, rounded to `E`.
///
/// # Safety
/// `out` holds `n` elements.
#[inline(always)]
pub unsafe fn fill_uniform<E: Elem>(out: *mut E, n: u64, seed: u64, std: f32) {
    let bd = block_dim_x() as u64;
    let mut i = block_idx_x() as u64 * bd + thread_idx_x() as u64;
    let stride = grid_dim_x() as u64 * bd;
    // Chunks of 8 consecutive elements per item; the last chunk may be partial.
    while i * (CHUNK as u64) < n {
        let start = i * CHUNK as u64;
        for e in 0..CHUNK as u64 {
            if start + e < n {
                // SAFETY: start + e < n.
                unsafe { *out.add((start + e) as usize) = E::store(uniform(seed, start + e, std)) };
            }
        }
        i += stride;
    }
}

kernel_entries! {
    fill_uniform(out: *mut E, n: u64, seed: u64, std: f32);
    fill_uniform_f32 = f32, fill_uniform_f16 = F16, fill_uniform_bf16 = BF16,
}
