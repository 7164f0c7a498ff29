//! Seeded random tensors, identical on every device and run: a normal generator on the host
//! ([`normal`], for `Tensor::randn`) and a uniform one that runs where the tensor lives
//! ([`Tensor::rand_uniform`](super::Tensor::rand_uniform), for random model weights).

/// `n` samples of N(0, std²): splitmix64 + Box–Muller.
pub fn normal(n: usize, std: f32, seed: u64) -> Vec<f32> {
    let mut state = seed ^ 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64 // in (0, 1)
    };
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let (u1, u2) = (next(), next());
        let r = (-2.0 * u1.ln()).sqrt();
        let t = 2.0 * std::f64::consts::PI * u2;
        out.push((r * t.cos()) as f32 * std);
        if out.len() < n {
            out.push((r * t.sin()) as f32 * std);
        }
    }
    out
}

impl super::Tensor {
    /// Values uniform on `[-std·√3, std·√3)` (standard deviation `std`), element `i` being
    /// `nano_infer_kernels::init::uniform(seed, i, std)`: computed where the tensor lives (a
    /// GPU fills 7B parameters in well under a second) and bit-identical on every device.
    pub fn rand_uniform(
        shape: impl Into<super::Shape>,
        std: f32,
        seed: u64,
        dtype: super::DType,
        device: &super::Device,
    ) -> crate::error::Result<super::Tensor> {
        use nano_infer_kernels::init::uniform;
        use rayon::prelude::*;
        let shape = shape.into();
        let n = shape.elem_count();
        match device {
            super::Device::Cpu => {
                let values = (0..n as u64)
                    .into_par_iter()
                    .map(|i| uniform(seed, i, std))
                    .collect();
                super::Tensor::from_f32(values, shape, dtype, device)
            }
            super::Device::Cuda(b) => {
                let storage = b.alloc(n, dtype)?;
                // SAFETY: the new storage holds n elements of dtype.
                unsafe { b.fill_uniform(storage.ptr(), n, seed, std, dtype)? };
                let storage = super::Storage::Cuda(storage);
                Ok(super::Tensor::from_storage(storage, shape, device.clone()))
            }
        }
    }
}
