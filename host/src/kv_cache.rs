//! [`KvCache`]: the keys and values of every past position, per layer, for incremental decoding.
//!
//! The cache is static: each layer's K and V are allocated once, `[capacity, kv_heads, head_dim]`
//! on the model's device and in the model's dtype, and never grow. A forward pass of `seq` new
//! tokens writes their K/V rows at `[len, len + seq)` through a `narrow` view and
//! [`Tensor::copy_from`], attends over the view `[0, len + seq)`, and only when every layer has
//! succeeded does [`KvCache::advance`] move `len`. So a pass that fails half way leaves the cache
//! exactly as it was (rows past `len` are scratch), and a pass that would not fit is refused with
//! [`Error::ContextOverflow`] before anything is written.
//!
//! Rows of one position are contiguous (`kv_heads * head_dim` elements), so the view of the first
//! `n` positions is itself contiguous and attention reads it without a copy.
//!
//! A CUDA cache also keeps its length in device memory ([`DeviceU32`]), for one-token steps
//! whose kernels read the position there — so a CUDA graph captured once serves every step.
//! The host length stays the truth: the device copy is refreshed (a queued 4-byte memset)
//! whenever it may differ, and a graph step that advances it on the device says so with
//! [`KvCache::advance_on_device`].

use std::sync::atomic::{AtomicU64, Ordering};

use crate::backend::cuda::DeviceU32;
use crate::error::{Error, Result};
use crate::tensor::{DType, Device, Tensor};

/// Per-layer key/value storage for positions `0..len()` of one sequence.
#[derive(Debug)]
pub struct KvCache {
    /// Per layer: `[capacity, kv_heads, head_dim]`.
    keys: Vec<Tensor>,
    /// Per layer: `[capacity, kv_heads, head_dim]`.
    values: Vec<Tensor>,
    /// Positions filled (the next token's position).
    len: usize,
    capacity: usize,
    /// CUDA only: the length in device memory, and the value it holds when the host knows it.
    device_len: Option<(DeviceU32, Option<usize>)>,
    /// Unique per cache made (a CUDA graph checks that it is given the cache it writes).
    id: u64,
}

impl KvCache {
    /// Allocates a zeroed cache for `num_layers` layers of `capacity` positions each.
    pub fn new(
        num_layers: usize,
        capacity: usize,
        kv_heads: usize,
        head_dim: usize,
        dtype: DType,
        device: &Device,
    ) -> Result<KvCache> {
        if capacity == 0 || kv_heads == 0 || head_dim == 0 {
            return Err(Error::invalid(
                "KvCache::new",
                format!(
                    "capacity, kv_heads and head_dim must be positive, got {capacity}, {kv_heads}, {head_dim}"
                ),
            ));
        }
        let shape = [capacity, kv_heads, head_dim];
        let alloc = || Tensor::zeros(shape, dtype, device);
        let device_len = match device {
            Device::Cpu => None,
            // Unknown until a one-token step syncs it (only steps that read it do).
            Device::Cuda(b) => Some((DeviceU32::new(b, 0)?, None)),
        };
        Ok(KvCache {
            keys: (0..num_layers).map(|_| alloc()).collect::<Result<_>>()?,
            values: (0..num_layers).map(|_| alloc()).collect::<Result<_>>()?,
            len: 0,
            capacity,
            device_len,
            id: {
                static NEXT: AtomicU64 = AtomicU64::new(0);
                NEXT.fetch_add(1, Ordering::Relaxed)
            },
        })
    }

    /// Positions filled so far: the position of the next token.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True before the first forward pass (or after [`KvCache::reset`]).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The most positions the cache can hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Positions still free.
    pub fn remaining(&self) -> usize {
        self.capacity - self.len
    }

    /// The number of layers.
    pub fn num_layers(&self) -> usize {
        self.keys.len()
    }

    /// The element type of the stored keys and values.
    pub fn dtype(&self) -> Option<DType> {
        self.keys.first().map(Tensor::dtype)
    }

    /// Forgets every position (the memory is kept and reused).
    pub fn reset(&mut self) {
        self.len = 0;
    }

    /// Keeps the first `len` positions and forgets the rest (for reusing a shared prompt prefix).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Errors with [`Error::ContextOverflow`] unless `seq` more positions fit.
    pub fn check_room(&self, seq: usize) -> Result<()> {
        let needed = self.len.saturating_add(seq);
        if needed > self.capacity {
            return Err(Error::ContextOverflow {
                needed,
                capacity: self.capacity,
            });
        }
        Ok(())
    }

    /// Writes layer `layer`'s keys and values for positions `[len, len + seq)` (`k`, `v`:
    /// `[seq, kv_heads, head_dim]`) and returns views of positions `[0, len + seq)` to attend
    /// over. `len` does not move until [`KvCache::advance`].
    pub fn append(&self, layer: usize, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        const OP: &str = "KvCache::append";
        let (Some(keys), Some(values)) = (self.keys.get(layer), self.values.get(layer)) else {
            return Err(Error::invalid(
                OP,
                format!("layer {layer} of a {}-layer cache", self.keys.len()),
            ));
        };
        let seq = k.dims().first().copied().unwrap_or(0);
        if k.rank() != 3 || k.dims()[1..] != keys.dims()[1..] || v.dims() != k.dims() {
            return Err(Error::ShapeMismatch {
                op: OP,
                expected: format!("k and v [seq, {}, {}]", keys.dims()[1], keys.dims()[2]),
                got: format!("k {}, v {}", k.shape(), v.shape()),
            });
        }
        self.check_room(seq)?;
        keys.narrow(0, self.len, seq)?.copy_from(k)?;
        values.narrow(0, self.len, seq)?.copy_from(v)?;
        let end = self.len + seq;
        Ok((keys.narrow(0, 0, end)?, values.narrow(0, 0, end)?))
    }

    /// Commits `seq` positions written by [`KvCache::append`] in every layer.
    pub fn advance(&mut self, seq: usize) -> Result<()> {
        self.check_room(seq)?;
        self.len += seq;
        Ok(())
    }

    /// A number no other cache of this process has.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Layer `layer`'s whole key and value caches, `[capacity, kv_heads, head_dim]` (for the
    /// device-position kernels, which write and read rows by the device-side length).
    pub(crate) fn layer(&self, layer: usize) -> Result<(&Tensor, &Tensor)> {
        match (self.keys.get(layer), self.values.get(layer)) {
            (Some(k), Some(v)) => Ok((k, v)),
            _ => Err(Error::invalid(
                "KvCache::layer",
                format!("layer {layer} of a {}-layer cache", self.keys.len()),
            )),
        }
    }

    /// Makes the device-side length equal [`KvCache::len`] (queueing a memset only when it
    /// may differ). A no-op for a CPU cache.
    pub(crate) fn sync_device_len(&mut self) -> Result<()> {
        if let Some((value, holds)) = &mut self.device_len
            && *holds != Some(self.len)
        {
            value.set(self.len as u32)?;
            *holds = Some(self.len);
        }
        Ok(())
    }

    /// The device-side length, when it is known to equal [`KvCache::len`] (after
    /// [`KvCache::sync_device_len`]); `None` for a CPU cache or a stale copy.
    pub(crate) fn device_len(&self) -> Option<&DeviceU32> {
        match &self.device_len {
            Some((value, Some(holds))) if *holds == self.len => Some(value),
            _ => None,
        }
    }

    /// Commits one position after a step that also advanced the device-side length itself (a
    /// decode graph's replay).
    pub(crate) fn advance_on_device(&mut self) -> Result<()> {
        self.check_room(1)?;
        let synced = self.device_len().is_some();
        let Some((_, holds)) = &mut self.device_len else {
            return Err(Error::invalid(
                "KvCache::advance_on_device",
                "a CPU cache has no device-side length",
            ));
        };
        if !synced {
            *holds = None;
            return Err(Error::invalid(
                "KvCache::advance_on_device",
                "the device-side length was not in sync before the step",
            ));
        }
        self.len += 1;
        *holds = Some(self.len);
        Ok(())
    }

    /// Marks the device-side length unknown (a step that may have advanced it failed), so the
    /// next step sets it again.
    pub(crate) fn forget_device_len(&mut self) {
        if let Some((_, holds)) = &mut self.device_len {
            *holds = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(seq: usize, start: f32) -> Tensor {
        let values = (0..seq * 2 * 3).map(|i| start + i as f32).collect();
        Tensor::from_f32(values, [seq, 2, 3], DType::F32, &Device::Cpu).unwrap()
    }

    #[test]
    fn append_fills_in_order_and_views_the_prefix() {
        let mut cache = KvCache::new(2, 5, 2, 3, DType::F32, &Device::Cpu).unwrap();
        let (k, _) = cache.append(0, &rows(2, 0.0), &rows(2, 100.0)).unwrap();
        assert_eq!(k.dims(), &[2, 2, 3]);
        cache.advance(2).unwrap();
        let (k, v) = cache.append(0, &rows(1, 50.0), &rows(1, 150.0)).unwrap();
        cache.advance(1).unwrap();
        assert_eq!(cache.len(), 3);
        let kv = k.to_vec_f32().unwrap();
        assert_eq!(
            &kv[..12],
            &(0..12).map(|i| i as f32).collect::<Vec<_>>()[..]
        );
        assert_eq!(&kv[12..], &[50.0, 51.0, 52.0, 53.0, 54.0, 55.0]);
        assert_eq!(v.to_vec_f32().unwrap()[12], 150.0);
        assert!(k.is_contiguous());
    }

    #[test]
    fn overflow_is_refused_before_writing() {
        let mut cache = KvCache::new(1, 4, 2, 3, DType::F32, &Device::Cpu).unwrap();
        cache.append(0, &rows(3, 1.0), &rows(3, 1.0)).unwrap();
        cache.advance(3).unwrap();
        let err = cache.append(0, &rows(2, -1.0), &rows(2, -1.0)).unwrap_err();
        assert!(matches!(
            err,
            Error::ContextOverflow {
                needed: 5,
                capacity: 4
            }
        ));
        assert_eq!(cache.len(), 3);
        // Position 3 (the only free one) was not touched.
        let all = cache.keys[0].to_vec_f32().unwrap();
        assert!(all[18..].iter().all(|&x| x == 0.0));
        assert!(cache.advance(2).is_err());
    }

    #[test]
    fn bad_shapes_and_layers_are_errors() {
        let cache = KvCache::new(1, 4, 2, 3, DType::F32, &Device::Cpu).unwrap();
        assert!(cache.append(1, &rows(1, 0.0), &rows(1, 0.0)).is_err());
        let wrong = Tensor::zeros([1, 3, 2], DType::F32, &Device::Cpu).unwrap();
        assert!(cache.append(0, &wrong, &wrong).is_err());
        assert!(KvCache::new(1, 0, 2, 3, DType::F32, &Device::Cpu).is_err());
    }

    #[test]
    fn reset_and_truncate() {
        let mut cache = KvCache::new(1, 4, 2, 3, DType::F32, &Device::Cpu).unwrap();
        cache.advance(3).unwrap();
        cache.truncate(5);
        assert_eq!(cache.len(), 3);
        cache.truncate(1);
        assert_eq!(cache.len(), 1);
        cache.reset();
        assert!(cache.is_empty());
        assert_eq!(cache.remaining(), 4);
    }
}
