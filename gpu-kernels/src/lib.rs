//! NanoInfer's GPU kernels: plain Rust compiled to PTX by rustc's `nvptx64-nvidia-cuda` target.
//!
//! Each op family lives in its own file with one generic body per op and one exported symbol per
//! storage type (`{op}_{dtype}`, made by [`kernel_entries!`]). Kernel files reach the hardware
//! only through [`primitives`]. On the host this crate builds as a plain rlib that shares the
//! launch constants and parameter structs with the host crate; the `ptx-kernel` entries exist
//! only on nvptx64.
//!
//! Build: the workspace's `build.rs` runs
//! `cargo rustc --release --target nvptx64-nvidia-cuda -Zbuild-std=core --crate-type cdylib
//! -- -C target-cpu=sm_80 --emit=asm` here and takes the `.s` file as the PTX.
#![no_std]
// Kernels index fixed-size arrays with range loops on purpose: array iterators keep the array
// in local memory (a stack frame in the PTX) where constant indices keep it in registers.
#![allow(clippy::needless_range_loop)]
#![cfg_attr(
    target_arch = "nvptx64",
    feature(abi_ptx, stdarch_nvptx, asm_experimental_arch)
)]

pub mod launch_shape;
pub mod params;

// The kernels need the nvptx primitives; the CPU twin of `primitives` (the kernel emulator) will
// lift these cfgs.
#[cfg(target_arch = "nvptx64")]
pub mod activation;
#[cfg(target_arch = "nvptx64")]
pub mod attention_decode;
#[cfg(target_arch = "nvptx64")]
pub mod elem;
#[cfg(target_arch = "nvptx64")]
pub mod elementwise;
#[cfg(target_arch = "nvptx64")]
mod export;
#[cfg(target_arch = "nvptx64")]
pub mod gemv;
#[cfg(target_arch = "nvptx64")]
pub mod norm;
#[cfg(target_arch = "nvptx64")]
pub mod primitives;
#[cfg(target_arch = "nvptx64")]
pub mod reduce;
#[cfg(target_arch = "nvptx64")]
pub mod rope;
#[cfg(target_arch = "nvptx64")]
pub mod softmax;
pub mod unroll;

#[cfg(target_arch = "nvptx64")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}
