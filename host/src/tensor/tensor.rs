//! [`Tensor`]: a shared handle to storage plus a [`Layout`] view of it.
//!
//! Cloning a tensor or taking a view (reshape, permute, transpose, narrow) shares the storage;
//! nothing is copied until an op needs contiguous data ([`Tensor::contiguous`]). Writes happen
//! only through [`Tensor::copy_from`], which fills a view in place (the KV cache uses it).

use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::{CpuStorage, DType, Device, Element, Layout, Shape, Storage};
use crate::error::{Error, Result};

/// An n-dimensional array on a [`Device`].
#[derive(Clone)]
pub struct Tensor {
    storage: Arc<RwLock<Storage>>,
    layout: Layout,
    dtype: DType,
    device: Device,
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Tensor(shape={}, dtype={:?}, device={})",
            self.shape(),
            self.dtype,
            self.device
        )
    }
}

impl Tensor {
    /// Wraps storage that holds exactly `shape.elem_count()` elements, row-major.
    pub(crate) fn from_storage(storage: Storage, shape: Shape, device: Device) -> Tensor {
        let dtype = storage.dtype();
        Tensor {
            storage: Arc::new(RwLock::new(storage)),
            layout: Layout::contiguous(shape),
            dtype,
            device,
        }
    }

    /// A tensor whose contents are unspecified (zeros on the CPU): the output buffer of an op.
    pub(crate) fn uninit(shape: impl Into<Shape>, dtype: DType, device: &Device) -> Result<Tensor> {
        let shape = shape.into();
        let n = shape.elem_count();
        let storage = match device {
            Device::Cpu => Storage::Cpu(CpuStorage::zeros(n, dtype)),
            Device::Cuda(b) => Storage::Cuda(b.alloc(n, dtype)?),
        };
        Ok(Tensor::from_storage(storage, shape, device.clone()))
    }

    /// A tensor holding `data` (row-major) with `shape`, on `device`.
    pub fn from_vec<T: Element>(
        data: Vec<T>,
        shape: impl Into<Shape>,
        device: &Device,
    ) -> Result<Tensor> {
        let shape = shape.into();
        check_len("from_vec", &shape, data.len())?;
        let cpu = CpuStorage::from_f32(data.iter().map(|v| v.to_f32()).collect(), T::DTYPE);
        Tensor::from_storage(Storage::Cpu(cpu), shape, Device::Cpu).to_device(device)
    }

    /// A tensor of `dtype` from f32 values (rounded to nearest even).
    pub fn from_f32(
        values: Vec<f32>,
        shape: impl Into<Shape>,
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        let shape = shape.into();
        check_len("from_f32", &shape, values.len())?;
        Tensor::from_storage(
            Storage::Cpu(CpuStorage::from_f32(values, dtype)),
            shape,
            Device::Cpu,
        )
        .to_device(device)
    }

    /// Zeros.
    pub fn zeros(shape: impl Into<Shape>, dtype: DType, device: &Device) -> Result<Tensor> {
        let shape = shape.into();
        let n = shape.elem_count();
        let storage = match device {
            Device::Cpu => Storage::Cpu(CpuStorage::zeros(n, dtype)),
            Device::Cuda(b) => Storage::Cuda(b.zeros(n, dtype)?),
        };
        Ok(Tensor::from_storage(storage, shape, device.clone()))
    }

    /// Values drawn from N(0, std²) by a seeded generator (identical on every device).
    pub fn randn(
        shape: impl Into<Shape>,
        std: f32,
        seed: u64,
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        let shape = shape.into();
        let values = super::random::normal(shape.elem_count(), std, seed);
        Tensor::from_f32(values, shape, dtype, device)
    }

    pub fn shape(&self) -> &Shape {
        self.layout.shape()
    }
    pub fn dims(&self) -> &[usize] {
        self.layout.shape().dims()
    }
    pub fn rank(&self) -> usize {
        self.dims().len()
    }
    pub fn elem_count(&self) -> usize {
        self.shape().elem_count()
    }
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    pub fn device(&self) -> &Device {
        &self.device
    }
    pub fn layout(&self) -> &Layout {
        &self.layout
    }
    pub fn is_contiguous(&self) -> bool {
        self.layout.is_contiguous()
    }

    /// Read access to the storage (poisoning is ignored: storage has no invariants to break).
    pub(crate) fn storage(&self) -> RwLockReadGuard<'_, Storage> {
        self.storage.read().unwrap_or_else(|e| e.into_inner())
    }
    fn storage_mut(&self) -> RwLockWriteGuard<'_, Storage> {
        self.storage.write().unwrap_or_else(|e| e.into_inner())
    }
    /// Device address of the first element of a CUDA tensor's view (None on the CPU), for
    /// interop and benchmarks. The address is valid while the tensor lives.
    pub fn device_ptr(&self) -> Option<u64> {
        match &*self.storage() {
            Storage::Cuda(s) => {
                Some(s.ptr() + (self.layout.offset() * self.dtype.size_in_bytes()) as u64)
            }
            Storage::Cpu(_) => None,
        }
    }
    /// True when both tensors view the same storage.
    pub fn shares_storage(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.storage, &other.storage)
    }

    fn with_layout(&self, layout: Layout) -> Tensor {
        Tensor {
            storage: self.storage.clone(),
            layout,
            dtype: self.dtype,
            device: self.device.clone(),
        }
    }

    /// Same data, new shape (contiguous tensors only; call [`Tensor::contiguous`] first).
    pub fn reshape(&self, shape: impl Into<Shape>) -> Result<Tensor> {
        Ok(self.with_layout(self.layout.reshape(shape.into())?))
    }
    /// Reorders dimensions without copying.
    pub fn permute(&self, perm: &[usize]) -> Result<Tensor> {
        Ok(self.with_layout(self.layout.permute(perm)?))
    }
    /// Swaps two dimensions without copying.
    pub fn transpose(&self, a: usize, b: usize) -> Result<Tensor> {
        let rank = self.rank();
        if a >= rank || b >= rank {
            return Err(Error::InvalidView {
                op: "transpose",
                reason: format!("dimensions ({a}, {b}) out of range for rank {rank}"),
            });
        }
        let mut perm: Vec<usize> = (0..rank).collect();
        perm.swap(a, b);
        self.permute(&perm)
    }
    /// Keeps `len` entries of `dim` from `start`, without copying.
    pub fn narrow(&self, dim: usize, start: usize, len: usize) -> Result<Tensor> {
        Ok(self.with_layout(self.layout.narrow(dim, start, len)?))
    }

    /// This tensor if it is contiguous, else a contiguous copy on the same device.
    pub fn contiguous(&self) -> Result<Tensor> {
        if self.is_contiguous() {
            return Ok(self.clone());
        }
        let out = Tensor::zeros(self.shape().clone(), self.dtype, &self.device)?;
        out.copy_from(self)?;
        Ok(out)
    }

    /// Copies `src` (same shape and dtype, same device) into this view, in place.
    pub fn copy_from(&self, src: &Tensor) -> Result<()> {
        if src.shape() != self.shape() {
            return Err(Error::ShapeMismatch {
                op: "copy_from",
                expected: self.shape().to_string(),
                got: src.shape().to_string(),
            });
        }
        if src.dtype != self.dtype {
            return Err(Error::DTypeMismatch {
                op: "copy_from",
                expected: self.dtype,
                got: src.dtype,
            });
        }
        check_same_device("copy_from", self, src)?;
        match &self.device {
            Device::Cpu => {
                // Gather first, so that a source sharing this storage is read before we write.
                let values = src.gather_cpu();
                let mut dst = self.storage_mut();
                let Storage::Cpu(dst) = &mut *dst else {
                    unreachable!("a CPU tensor has CPU storage")
                };
                for (i, d) in self.layout.storage_indices().enumerate() {
                    set_cpu(dst, d, values.get_f32(i));
                }
                Ok(())
            }
            Device::Cuda(b) => {
                let src_guard = src.storage();
                let Storage::Cuda(s) = &*src_guard else {
                    unreachable!("a CUDA tensor has CUDA storage")
                };
                let src_ptr = s.ptr();
                drop(src_guard);
                let dst_guard = self.storage();
                let Storage::Cuda(d) = &*dst_guard else {
                    unreachable!("a CUDA tensor has CUDA storage")
                };
                // SAFETY: both layouts were validated against their storage when the views were made.
                unsafe { b.copy_strided(src_ptr, src.layout(), d.ptr(), self.layout(), self.dtype) }
            }
        }
    }

    /// The elements in logical order, as CPU storage of this dtype (CPU tensors only).
    fn gather_cpu(&self) -> CpuStorage {
        let guard = self.storage();
        let Storage::Cpu(s) = &*guard else {
            unreachable!("gather_cpu on a CPU tensor")
        };
        let values: Vec<f32> = self
            .layout
            .storage_indices()
            .map(|i| s.get_f32(i))
            .collect();
        CpuStorage::from_f32(values, self.dtype)
    }

    /// Copies the tensor to `device` (a no-op clone when it is already there).
    pub fn to_device(&self, device: &Device) -> Result<Tensor> {
        if self.device.same(device) {
            return Ok(self.clone());
        }
        let src = self.contiguous()?;
        let storage = match (&src.device, device) {
            (Device::Cpu, Device::Cuda(b)) => {
                let guard = src.storage();
                let Storage::Cpu(s) = &*guard else {
                    unreachable!("a CPU tensor has CPU storage")
                };
                let bytes = s.as_bytes();
                let esize = self.dtype.size_in_bytes();
                let off = src.layout.offset() * esize;
                Storage::Cuda(b.upload(&bytes[off..off + src.elem_count() * esize], self.dtype)?)
            }
            (Device::Cuda(_), _) => Storage::Cpu(src.download()?),
            (Device::Cpu, Device::Cpu) => unreachable!("same device handled above"),
        };
        let moved = Tensor::from_storage(storage, src.shape().clone(), Device::Cpu);
        match device {
            Device::Cpu => Ok(moved),
            Device::Cuda(_) => Ok(Tensor {
                device: device.clone(),
                ..moved
            }),
        }
    }

    /// Downloads a contiguous CUDA tensor.
    fn download(&self) -> Result<CpuStorage> {
        let guard = self.storage();
        let Storage::Cuda(s) = &*guard else {
            unreachable!("download of a CUDA tensor")
        };
        s.download(self.layout.offset(), self.elem_count())
    }

    /// Converts the elements to `dtype` (a clone when already of that dtype).
    pub fn to_dtype(&self, dtype: DType) -> Result<Tensor> {
        if dtype == self.dtype {
            return Ok(self.clone());
        }
        let src = self.contiguous()?;
        match &self.device {
            Device::Cpu => {
                Tensor::from_f32(src.to_vec_f32()?, src.shape().clone(), dtype, &Device::Cpu)
            }
            Device::Cuda(b) => {
                let guard = src.storage();
                let Storage::Cuda(s) = &*guard else {
                    unreachable!("a CUDA tensor has CUDA storage")
                };
                let ptr = s.ptr() + (src.layout.offset() * self.dtype.size_in_bytes()) as u64;
                let out = b.cast(ptr, self.dtype, dtype, src.elem_count())?;
                Ok(Tensor::from_storage(
                    Storage::Cuda(out),
                    src.shape().clone(),
                    self.device.clone(),
                ))
            }
        }
    }

    /// The elements in logical (row-major) order as f32, from any device and dtype.
    pub fn to_vec_f32(&self) -> Result<Vec<f32>> {
        let cpu = self.to_device(&Device::Cpu)?;
        let guard = cpu.storage();
        let Storage::Cpu(s) = &*guard else {
            unreachable!("to_device(Cpu) gives CPU storage")
        };
        // Contiguous f32 (the logits of every decode step) is one copy, not a gather.
        if let CpuStorage::F32(v) = s
            && cpu.layout.is_contiguous()
        {
            let start = cpu.layout.offset();
            return Ok(v[start..start + cpu.elem_count()].to_vec());
        }
        Ok(cpu.layout.storage_indices().map(|i| s.get_f32(i)).collect())
    }

    /// The elements as `T`, which must be the tensor's dtype.
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        if T::DTYPE != self.dtype {
            return Err(Error::DTypeMismatch {
                op: "to_vec",
                expected: self.dtype,
                got: T::DTYPE,
            });
        }
        Ok(self.to_vec_f32()?.into_iter().map(T::from_f32).collect())
    }
}

/// Errors unless `a` and `b` live on the same device.
pub(crate) fn check_same_device(op: &'static str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.device.same(&b.device) {
        Ok(())
    } else {
        Err(Error::DeviceMismatch {
            op,
            lhs: a.device.to_string(),
            rhs: b.device.to_string(),
        })
    }
}

fn check_len(op: &'static str, shape: &Shape, len: usize) -> Result<()> {
    if shape.elem_count() == len {
        Ok(())
    } else {
        Err(Error::ShapeMismatch {
            op,
            expected: format!("{} elements for shape {shape}", shape.elem_count()),
            got: format!("{len} elements"),
        })
    }
}

fn set_cpu(s: &mut CpuStorage, i: usize, v: f32) {
    match s {
        CpuStorage::F32(d) => d[i] = v,
        CpuStorage::F16(d) => d[i] = half::f16::from_f32(v),
        CpuStorage::BF16(d) => d[i] = half::bf16::from_f32(v),
    }
}
