//! GEMM on the emulated device: a scalar column-major strided-batched GEMM on exactly the
//! arguments the GPU gives cuBLAS ([`CublasGemm`]), accumulating in f32 as
//! `CUBLAS_COMPUTE_32F` does and rounding once to the dtype. cuBLAS is not a Rust kernel, so
//! there is nothing of ours to emulate inside it; what this checks is the call we make.

use half::{bf16, f16};

use super::memory::ptr;
use crate::backend::cuda::CublasGemm;
use crate::tensor::DType;

/// Element `i` of dtype `dt` at device address `base`.
///
/// # Safety
/// The element lies in a live emulated block.
unsafe fn load(dt: DType, base: u64, i: i64) -> f32 {
    let p = ptr(base);
    // SAFETY: the caller's contract; emulated blocks hold no uninitialised bytes.
    unsafe {
        match dt {
            DType::F32 => p.cast::<f32>().offset(i as isize).read_unaligned(),
            DType::F16 => p.cast::<f16>().offset(i as isize).read_unaligned().to_f32(),
            DType::BF16 => p
                .cast::<bf16>()
                .offset(i as isize)
                .read_unaligned()
                .to_f32(),
        }
    }
}

/// Stores `v` rounded to `dt` as element `i` at device address `base`.
///
/// # Safety
/// The element lies in a live emulated block nothing else accesses meanwhile.
unsafe fn store(dt: DType, base: u64, i: i64, v: f32) {
    let p = ptr(base);
    // SAFETY: the caller's contract.
    unsafe {
        match dt {
            DType::F32 => p.cast::<f32>().offset(i as isize).write_unaligned(v),
            DType::F16 => p
                .cast::<f16>()
                .offset(i as isize)
                .write_unaligned(f16::from_f32(v)),
            DType::BF16 => p
                .cast::<bf16>()
                .offset(i as isize)
                .write_unaligned(bf16::from_f32(v)),
        }
    }
}

/// `C = op(A) · B` (column-major, per batch entry) with cuBLAS's arguments `g`.
///
/// # Safety
/// `a`, `b`, `c` are emulated device addresses of buffers holding what `g` addresses; `c`
/// overlaps neither input.
pub(crate) unsafe fn gemm(g: &CublasGemm, a: u64, b: u64, c: u64, dt: DType) {
    let (lda, ldb, ldc) = (g.lda as i64, g.ldb as i64, g.ldc as i64);
    for batch in 0..g.batch as i64 {
        let (a0, b0, c0) = (batch * g.stride_a, batch * g.stride_b, batch * g.stride_c);
        for j in 0..g.n as i64 {
            for i in 0..g.m as i64 {
                let mut acc = 0.0f32;
                for p in 0..g.k as i64 {
                    let a_ip = if g.transa { p + i * lda } else { i + p * lda };
                    // SAFETY: indices inside the extents `g` describes (the caller's contract).
                    acc += unsafe { load(dt, a, a0 + a_ip) * load(dt, b, b0 + p + j * ldb) };
                }
                // SAFETY: as above.
                unsafe { store(dt, c, c0 + i + j * ldc, acc) };
            }
        }
    }
}
