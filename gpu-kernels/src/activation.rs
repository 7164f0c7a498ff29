//! SiLU and SwiGLU.
//!
//! Variants: `silu_{f32,f16,bf16}` (`x * sigmoid(x)`), `swiglu_{f32,f16,bf16}`
//! (`silu(gate) * up`). Launch: grid-stride, `block.x = ELEMENTWISE_BLOCK`; 128-bit chunks when
//! aligned. Test: `cargo test --release --test gpu_vs_cpu -- --include-ignored swiglu`;
//! bench: `gpu_bench swiglu`.

use crate::elem::{BF16, Elem, F16};
use crate::elementwise::{map1, map2};
use crate::kernel_entries;
use crate::primitives::{exp_approx, rcp_approx};

/// `x * sigmoid(x)` in f32.
#[inline(always)]
pub fn silu_scalar(x: f32) -> f32 {
    x * rcp_approx(1.0 + exp_approx(-x))
}

/// `out = silu(x)`.
///
/// # Safety
/// `x` and `out` hold `n` elements (`out` may alias `x`).
#[inline(always)]
pub unsafe fn silu<E: Elem>(x: *const E, out: *mut E, n: u64) {
    // SAFETY: forwarded contract.
    unsafe { map1(x, out, n as usize, silu_scalar) }
}

/// `out = silu(gate) * up`.
///
/// # Safety
/// `gate`, `up`, `out` hold `n` elements (`out` may alias either input).
#[inline(always)]
pub unsafe fn swiglu<E: Elem>(gate: *const E, up: *const E, out: *mut E, n: u64) {
    // SAFETY: forwarded contract.
    unsafe { map2(gate, up, out, n as usize, |g, u| silu_scalar(g) * u) }
}

kernel_entries! { silu(x: *const E, out: *mut E, n: u64); silu_f32 = f32, silu_f16 = F16, silu_bf16 = BF16 }
kernel_entries! {
    swiglu(gate: *const E, up: *const E, out: *mut E, n: u64);
    swiglu_f32 = f32, swiglu_f16 = F16, swiglu_bf16 = BF16,
}
