//! GPU storage: a [`DeviceBuffer`] with a dtype and an element count.

use half::{bf16, f16};

use super::allocator::DeviceBuffer;
use super::context::CudaBackend;
use crate::error::{Error, Result};
use crate::tensor::{CpuStorage, DType};

/// A tensor's memory on a CUDA device.
#[derive(Debug)]
pub struct CudaStorage {
    buf: DeviceBuffer,
    dtype: DType,
    len: usize,
    backend: CudaBackend,
}

impl CudaStorage {
    pub(crate) fn new(buf: DeviceBuffer, dtype: DType, len: usize, backend: CudaBackend) -> Self {
        CudaStorage {
            buf,
            dtype,
            len,
            backend,
        }
    }
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Device address of element 0.
    pub fn ptr(&self) -> u64 {
        self.buf.ptr()
    }

    /// The addresses of the whole buffer (every view of it lies inside).
    pub(crate) fn buffer_range(&self) -> std::ops::Range<u64> {
        self.buf.range()
    }

    /// Copies `n` elements from element `offset` to the host (waits for the stream).
    pub fn download(&self, offset: usize, n: usize) -> Result<CpuStorage> {
        if offset.checked_add(n).is_none_or(|end| end > self.len) {
            return Err(Error::invalid(
                "download",
                format!("range {offset}+{n} past {} elements", self.len),
            ));
        }
        let src = self.ptr() + (offset * self.dtype.size_in_bytes()) as u64;
        Ok(match self.dtype {
            DType::F32 => CpuStorage::F32(self.backend.download_into(src, vec![0f32; n])?),
            DType::F16 => CpuStorage::F16(self.backend.download_into(src, vec![f16::ZERO; n])?),
            DType::BF16 => CpuStorage::BF16(self.backend.download_into(src, vec![bf16::ZERO; n])?),
        })
    }
}
