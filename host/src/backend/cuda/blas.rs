//! GEMM through cuBLAS (`cublasGemmStridedBatchedEx`), row-major on our side.
//!
//! cuBLAS is column-major, so a row-major `C[m,n] = A[m,k]·B` is computed as the column-major
//! `Cᵀ = Bᵀ·Aᵀ`: cuBLAS sees `B` as its first operand. f32 runs in exact f32 (no TF32);
//! f16/bf16 accumulate in f32 on tensor cores.

use cudarc::cublas::result::gemm_strided_batched_ex;
use cudarc::cublas::sys::{cublasComputeType_t, cublasGemmAlgo_t, cublasOperation_t, cudaDataType};

use super::context::CudaBackend;
use crate::error::{Error, Result};
use crate::tensor::DType;

/// One (possibly batched) row-major GEMM: `C[m,n] = A[m,k] · B`, where `B` is `[k,n]` or, with
/// `b_transposed`, a `[n,k]` matrix used transposed (a Linear weight). Element strides between
/// batch entries; a stride of 0 broadcasts that operand.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Gemm {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub b_transposed: bool,
    pub batch: usize,
    pub stride_a: usize,
    pub stride_b: usize,
    pub stride_c: usize,
}

fn cuda_type(dt: DType) -> cudaDataType {
    match dt {
        DType::F32 => cudaDataType::CUDA_R_32F,
        DType::F16 => cudaDataType::CUDA_R_16F,
        DType::BF16 => cudaDataType::CUDA_R_16BF,
    }
}

fn as_int(op: &'static str, v: usize) -> Result<i32> {
    i32::try_from(v)
        .map_err(|_| Error::invalid(op, format!("dimension {v} exceeds cuBLAS's int range")))
}

impl CudaBackend {
    /// Runs `g` on device addresses `a`, `b`, `c` of dtype `dt`.
    ///
    /// # Safety
    /// The buffers must hold what `g` addresses (batch, strides, dims).
    pub(crate) unsafe fn gemm(&self, g: Gemm, a: u64, b: u64, c: u64, dt: DType) -> Result<()> {
        let (m, n, k) = (
            as_int("gemm", g.m)?,
            as_int("gemm", g.n)?,
            as_int("gemm", g.k)?,
        );
        let (transa, lda) = if g.b_transposed {
            (cublasOperation_t::CUBLAS_OP_T, k)
        } else {
            (cublasOperation_t::CUBLAS_OP_N, n)
        };
        let (alpha, beta) = (1.0f32, 0.0f32);
        let ty = cuda_type(dt);
        // SAFETY: the caller guarantees the buffers; alpha/beta are host f32 as COMPUTE_32F wants.
        unsafe {
            gemm_strided_batched_ex(
                *self.blas().handle(),
                transa,
                cublasOperation_t::CUBLAS_OP_N,
                n,
                m,
                k,
                &alpha as *const f32 as *const _,
                b as *const _,
                ty,
                lda,
                g.stride_b as i64,
                a as *const _,
                ty,
                k,
                g.stride_a as i64,
                &beta as *const f32 as *const _,
                c as *mut _,
                ty,
                n,
                g.stride_c as i64,
                as_int("gemm", g.batch)?,
                cublasComputeType_t::CUBLAS_COMPUTE_32F,
                cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )
        }
        .map_err(|source| Error::Cublas { op: "gemm", source })
    }
}
