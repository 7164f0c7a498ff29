//! NanoInfer's GPU kernels: plain Rust compiled to PTX by rustc's `nvptx64-nvidia-cuda` target.
//!
//! Each op family lives in its own file with one generic body per op and one exported symbol per
//! storage type (`{op}_{dtype}`, made by [`kernel_entries!`]). Kernel files reach the hardware
//! only through [`primitives`]. On the host this crate builds as a plain rlib that shares the
//! launch constants, parameter structs and launch shapes ([`launch_shape`]) with the host crate,
//! and runs the same kernels on the CPU: [`primitives`] has a host twin of every instruction,
//! built on the SIMT emulator [`emu`]. The `ptx-kernel` entries exist only on nvptx64; on the
//! host [`kernel_entries!`] makes plain `unsafe fn`s with the same symbol names
//! (`norm::rmsnorm_f16`) for [`emu::launch`].
//!
//! Build: the workspace's `build.rs` runs
//! `cargo rustc --release --target nvptx64-nvidia-cuda -Zbuild-std=core --crate-type cdylib
//! -- -C target-cpu=sm_80 --emit=asm` here and takes the `.s` file as the PTX.
#![no_std]
// `${concat(..)}` in macros: the GEMV entries' symbol names from body and format.
#![feature(macro_metavar_expr_concat)]
// Kernels index fixed-size arrays with range loops on purpose: array iterators keep the array
// in local memory (a stack frame in the PTX) where constant indices keep it in registers.
#![allow(clippy::needless_range_loop)]
#![cfg_attr(
    target_arch = "nvptx64",
    feature(abi_ptx, stdarch_nvptx, asm_experimental_arch)
)]

// The emulator (host builds only) uses threads, locks and collections.
#[cfg(not(target_arch = "nvptx64"))]
extern crate std;

pub mod params;

pub mod activation;
pub mod attention_decode;
pub mod attention_decode_f32;
pub mod attention_flash;
// `wgmma` is sm_90a-only: the Hopper-specific PTX and the host (emulator) have it.
#[cfg(any(not(target_arch = "nvptx64"), target_feature = "sm_90a"))]
pub mod attention_flash3;
pub mod decode_step;
pub mod elem;
pub mod elementwise;
#[cfg(not(target_arch = "nvptx64"))]
pub mod emu;
mod export;
pub mod gemv;
pub mod init;
pub mod launch_shape;
pub mod norm;
pub mod primitives;
#[cfg(feature = "probe")]
pub mod probe;
pub mod quantize;
pub mod reduce;
pub mod rope;
pub mod rope_kv;
pub mod softmax;
pub mod unroll;
pub mod weights;

#[cfg(target_arch = "nvptx64")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}
