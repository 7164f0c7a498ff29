//! GEMM through cuBLAS (`cublasGemmStridedBatchedEx`), row-major on our side.
//!
//! cuBLAS is column-major, so a row-major `C[m,n] = A[m,k]·B` is computed as the column-major
//! `Cᵀ = Bᵀ·Aᵀ`: cuBLAS sees `B` as its first operand. f32 runs in exact f32 (no TF32);
//! f16/bf16 accumulate in f32 on tensor cores. The emulated device runs a scalar GEMM on the
//! same call's arguments ([`CublasGemm`], `backend/emu/gemm.rs`), so the mapping is tested
//! on CPU-only CI too.

use cudarc::cublas::result::gemm_strided_batched_ex;
use cudarc::cublas::sys::{cublasComputeType_t, cublasGemmAlgo_t, cublasOperation_t, cudaDataType};

use super::context::{CudaBackend, Driver, Target};
use crate::backend::emu;
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

fn as_int(v: usize) -> Result<i32> {
    i32::try_from(v)
        .map_err(|_| Error::invalid("gemm", format!("dimension {v} exceeds cuBLAS's int range")))
}

/// The arguments of the `cublasGemmStridedBatchedEx` call computing a [`Gemm`]: column-major
/// `C = op(A) · B` per batch entry, where cuBLAS's `A` is our `B` (transposed when
/// `b_transposed`), its `B` is our `A`, and its `m`, `n` are our `n`, `m`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CublasGemm {
    /// `op(A) = Aᵀ`.
    pub transa: bool,
    pub m: i32,
    pub n: i32,
    pub k: i32,
    pub lda: i32,
    pub ldb: i32,
    pub ldc: i32,
    pub stride_a: i64,
    pub stride_b: i64,
    pub stride_c: i64,
    pub batch: i32,
}

impl Gemm {
    /// The cuBLAS call for this product.
    fn cublas(&self) -> Result<CublasGemm> {
        let (m, n, k) = (as_int(self.m)?, as_int(self.n)?, as_int(self.k)?);
        Ok(CublasGemm {
            transa: self.b_transposed,
            m: n,
            n: m,
            k,
            lda: if self.b_transposed { k } else { n },
            ldb: k,
            ldc: n,
            stride_a: self.stride_b as i64,
            stride_b: self.stride_a as i64,
            stride_c: self.stride_c as i64,
            batch: as_int(self.batch)?,
        })
    }
}

impl CudaBackend {
    /// Runs `g` on device addresses `a`, `b`, `c` of dtype `dt`.
    ///
    /// # Safety
    /// The buffers must hold what `g` addresses (batch, strides, dims).
    pub(crate) unsafe fn gemm(&self, g: Gemm, a: u64, b: u64, c: u64, dt: DType) -> Result<()> {
        let call = g.cublas()?;
        match self.target() {
            // SAFETY: the caller's contract; cuBLAS's A is our b and its B our a.
            // cuBLAS runs kernels we did not launch.
            Target::Driver(d) => {
                self.queue_foreign(|| unsafe { cublas_gemm(d, &call, b, a, c, dt) })
            }
            Target::Emulator => {
                // SAFETY: as above, on emulated device addresses.
                unsafe { emu::gemm::gemm(&call, b, a, c, dt) };
                Ok(())
            }
        }
    }
}

/// Makes the cuBLAS call `g` with cuBLAS's operands `a`, `b` and result `c`.
///
/// # Safety
/// The buffers hold what `g` addresses.
unsafe fn cublas_gemm(d: &Driver, g: &CublasGemm, a: u64, b: u64, c: u64, dt: DType) -> Result<()> {
    let transa = if g.transa {
        cublasOperation_t::CUBLAS_OP_T
    } else {
        cublasOperation_t::CUBLAS_OP_N
    };
    let (alpha, beta) = (1.0f32, 0.0f32);
    let ty = cuda_type(dt);
    // SAFETY: the caller guarantees the buffers; alpha/beta are host f32 as COMPUTE_32F wants.
    unsafe {
        gemm_strided_batched_ex(
            *d.blas().handle(),
            transa,
            cublasOperation_t::CUBLAS_OP_N,
            g.m,
            g.n,
            g.k,
            &alpha as *const f32 as *const _,
            a as *const _,
            ty,
            g.lda,
            g.stride_a,
            b as *const _,
            ty,
            g.ldb,
            g.stride_b,
            &beta as *const f32 as *const _,
            c as *mut _,
            ty,
            g.ldc,
            g.stride_c,
            g.batch,
            cublasComputeType_t::CUBLAS_COMPUTE_32F,
            cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
        )
    }
    .map_err(|source| Error::Cublas { op: "gemm", source })
}
