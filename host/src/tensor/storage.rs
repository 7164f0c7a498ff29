//! Where a tensor's elements live: a host vector or a block of GPU memory.

use half::{bf16, f16};

use super::DType;
use crate::backend::cuda::CudaStorage;

/// Host memory of one of the storage dtypes.
#[derive(Clone, Debug)]
pub enum CpuStorage {
    F32(Vec<f32>),
    F16(Vec<f16>),
    BF16(Vec<bf16>),
}

impl CpuStorage {
    pub fn dtype(&self) -> DType {
        match self {
            CpuStorage::F32(_) => DType::F32,
            CpuStorage::F16(_) => DType::F16,
            CpuStorage::BF16(_) => DType::BF16,
        }
    }
    pub fn len(&self) -> usize {
        match self {
            CpuStorage::F32(v) => v.len(),
            CpuStorage::F16(v) => v.len(),
            CpuStorage::BF16(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The raw bytes (little-endian element bits), for uploads.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            CpuStorage::F32(v) => bytemuck::cast_slice(v),
            CpuStorage::F16(v) => bytemuck::cast_slice(v),
            CpuStorage::BF16(v) => bytemuck::cast_slice(v),
        }
    }
    /// Element `i` as f32.
    pub fn get_f32(&self, i: usize) -> f32 {
        match self {
            CpuStorage::F32(v) => v[i],
            CpuStorage::F16(v) => v[i].to_f32(),
            CpuStorage::BF16(v) => v[i].to_f32(),
        }
    }
    /// Builds storage of `dtype` from f32 values (rounding to nearest even).
    pub fn from_f32(values: Vec<f32>, dtype: DType) -> CpuStorage {
        match dtype {
            DType::F32 => CpuStorage::F32(values),
            DType::F16 => CpuStorage::F16(values.iter().map(|&v| f16::from_f32(v)).collect()),
            DType::BF16 => CpuStorage::BF16(values.iter().map(|&v| bf16::from_f32(v)).collect()),
        }
    }
    /// Zeros of `dtype`.
    pub fn zeros(len: usize, dtype: DType) -> CpuStorage {
        match dtype {
            DType::F32 => CpuStorage::F32(vec![0.0; len]),
            DType::F16 => CpuStorage::F16(vec![f16::ZERO; len]),
            DType::BF16 => CpuStorage::BF16(vec![bf16::ZERO; len]),
        }
    }
}

/// A tensor's backing memory.
#[derive(Debug)]
pub enum Storage {
    Cpu(CpuStorage),
    Cuda(CudaStorage),
}

impl Storage {
    pub fn dtype(&self) -> DType {
        match self {
            Storage::Cpu(s) => s.dtype(),
            Storage::Cuda(s) => s.dtype(),
        }
    }
}
