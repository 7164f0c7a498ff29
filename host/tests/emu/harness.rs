//! What remains of the mirrored emulator harness, for `decode_step.rs` only: host buffers
//! ([`DevBuf`]) and a mirror of the decode-attention launcher. Every other kernel runs through
//! the real launchers on the emulated device (`tests/gpu_vs_cpu.rs`, `emu::*`); porting
//! `decode_step.rs` there too (its launchers are crate-internal, so as a test beside
//! `host/src/backend/emu/`) will delete this file.

use half::{bf16, f16};
use nano_infer_host::DType;
use nano_infer_host::Tensor;
use nano_infer_host::backend::cpu::testing::assert_close;
use nano_infer_host::tensor::Device;
use nano_infer_kernels::attention_decode as attn;
use nano_infer_kernels::emu::{self, EmuError, SyncPtr};
use nano_infer_kernels::launch_shape::{self, LaunchShape};

pub const DTYPES: [DType; 3] = [DType::F32, DType::F16, DType::BF16];

/// SMs the emulated grid-stride launches assume: grids of at most 16 blocks, so the kernels'
/// grid-stride loops take several turns on the larger test sizes.
pub const EMU_SM_COUNT: usize = 2;

/// `(atol, rtol)` for one rounding of an f32 result into `dt` plus f32 math differences — the
/// values of the GPU tests (`tests/common/mod.rs`).
pub fn tol(dt: DType) -> (f32, f32) {
    match dt {
        DType::F32 => (1e-5, 1e-4),
        DType::F16 => (2e-3, 2e-3),
        DType::BF16 => (1.6e-2, 1.6e-2),
    }
}

/// Random values already rounded to `dt`, exactly as the GPU tests make them.
pub fn input(len: usize, dt: DType, seed: u64) -> Vec<f32> {
    Tensor::randn([len], 1.0, seed, dt, &Device::Cpu)
        .and_then(|t| t.to_vec_f32())
        .expect("randn")
}

/// A "device" buffer: `len` elements of `dt` in 16-byte aligned host memory (as cudaMalloc
/// returns), so the kernels take their vector paths where the GPU would.
pub struct DevBuf {
    pub dt: DType,
    pub len: usize,
    words: Vec<u128>,
}

impl DevBuf {
    pub fn zeros(len: usize, dt: DType) -> Self {
        let bytes = len * dt.size_in_bytes();
        DevBuf {
            dt,
            len,
            words: vec![0; bytes.div_ceil(16).max(1)],
        }
    }

    /// `values` rounded to `dt`.
    pub fn from_f32(values: &[f32], dt: DType) -> Self {
        let mut b = DevBuf::zeros(values.len(), dt);
        let bytes = b.bytes_mut();
        for (i, &v) in values.iter().enumerate() {
            match dt {
                DType::F32 => bytes[4 * i..4 * i + 4].copy_from_slice(&v.to_le_bytes()),
                DType::F16 => {
                    bytes[2 * i..2 * i + 2].copy_from_slice(&f16::from_f32(v).to_le_bytes())
                }
                DType::BF16 => {
                    bytes[2 * i..2 * i + 2].copy_from_slice(&bf16::from_f32(v).to_le_bytes())
                }
            }
        }
        b
    }

    pub fn to_f32(&self) -> Vec<f32> {
        let bytes = self.bytes();
        (0..self.len)
            .map(|i| match self.dt {
                DType::F32 => f32::from_le_bytes(bytes[4 * i..4 * i + 4].try_into().unwrap()),
                DType::F16 => f16::from_le_bytes([bytes[2 * i], bytes[2 * i + 1]]).to_f32(),
                DType::BF16 => bf16::from_le_bytes([bytes[2 * i], bytes[2 * i + 1]]).to_f32(),
            })
            .collect()
    }

    fn bytes(&self) -> &[u8] {
        let n = self.len * self.dt.size_in_bytes();
        &bytemuck::cast_slice(&self.words)[..n]
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        let n = self.len * self.dt.size_in_bytes();
        &mut bytemuck::cast_slice_mut(&mut self.words)[..n]
    }

    /// The buffer's address, as a kernel argument.
    pub fn ptr(&self) -> SyncPtr<u8> {
        SyncPtr::new(self.words.as_ptr() as *mut u8)
    }

    /// The address of element `i` (a view that starts inside the buffer).
    pub fn ptr_at(&self, i: usize) -> SyncPtr<u8> {
        assert!(i <= self.len);
        // SAFETY: i <= len, so the offset stays inside (or one past) the allocation.
        SyncPtr::new(unsafe { (self.words.as_ptr() as *mut u8).add(i * self.dt.size_in_bytes()) })
    }
}

/// Compares a buffer with reference values at `dt`'s tolerance.
pub fn check(name: &str, got: &DevBuf, want: &[f32], dt: DType) {
    let (atol, rtol) = tol(dt);
    assert_close(name, &got.to_f32(), want, atol, rtol);
}

/// Calls the f32, f16 or bf16 entry of a kernel, chosen by `$dt`, with `$args`.
macro_rules! by_dtype {
    ($dt:expr, $f32:path, $f16:path, $bf16:path, ($($arg:expr),* $(,)?)) => {
        match $dt {
            DType::F32 => $f32($($arg),*),
            DType::F16 => $f16($($arg),*),
            DType::BF16 => $bf16($($arg),*),
        }
    };
}

/// Runs a kernel body over `shape` under the emulator.
fn run(name: &str, shape: LaunchShape, body: impl Fn() + Sync) -> Result<(), EmuError> {
    emu::launch_shape(name, shape, body)
}

/// One token's attention (`q` `[heads, d]`) over the first rows of the caches `k`, `v`
/// (`[rows, kv_heads, d]`): `kv_len` rows, plus `kv_len_dev[0]` when the count is given in
/// "device" memory — then the grid is planned for `max_keys` rows, as the decode graph plans it.
/// The split-KV partial kernel, then the combine kernel, planned as
/// `CudaBackend::decode_attention` plans them.
#[allow(clippy::too_many_arguments)]
pub fn decode_attention(
    q: &DevBuf,
    k: &DevBuf,
    v: &DevBuf,
    out: &DevBuf,
    [heads, kv_heads, d]: [usize; 3],
    kv_len: usize,
    kv_len_dev: Option<&[u32]>,
    max_keys: usize,
    scale: f32,
) -> Result<(), EmuError> {
    let plan =
        launch_shape::decode_attention(heads, kv_heads, d, kv_len, max_keys, scale, EMU_SM_COUNT);
    let p = plan.params;
    let (acc, ml) = (
        DevBuf::zeros(plan.acc_len(), DType::F32),
        DevBuf::zeros(plan.ml_len(), DType::F32),
    );
    let (qp, kp, vp, op, dt) = (q.ptr(), k.ptr(), v.ptr(), out.ptr(), q.dt);
    let (ap, mp) = (acc.ptr(), ml.ptr());
    let lp = kv_len_dev.map_or(SyncPtr::new(std::ptr::null_mut()), SyncPtr::of);
    let g = p.heads_per_block;
    run(
        &format!("decode_attn_h{g}_{}", dt.name()),
        plan.partial,
        || {
            // SAFETY: extents and alignment as the plan computed them; G == p.heads_per_block.
            unsafe {
                let a = (qp, kp, vp, ap, mp, lp);
                match g {
                    1 => by_dtype!(
                        dt,
                        attn::decode_attn_h1_f32,
                        attn::decode_attn_h1_f16,
                        attn::decode_attn_h1_bf16,
                        (
                            a.0.get(),
                            a.1.get(),
                            a.2.get(),
                            a.3.get(),
                            a.4.get(),
                            a.5.get(),
                            p
                        )
                    ),
                    2 => by_dtype!(
                        dt,
                        attn::decode_attn_h2_f32,
                        attn::decode_attn_h2_f16,
                        attn::decode_attn_h2_bf16,
                        (
                            a.0.get(),
                            a.1.get(),
                            a.2.get(),
                            a.3.get(),
                            a.4.get(),
                            a.5.get(),
                            p
                        )
                    ),
                    3 => by_dtype!(
                        dt,
                        attn::decode_attn_h3_f32,
                        attn::decode_attn_h3_f16,
                        attn::decode_attn_h3_bf16,
                        (
                            a.0.get(),
                            a.1.get(),
                            a.2.get(),
                            a.3.get(),
                            a.4.get(),
                            a.5.get(),
                            p
                        )
                    ),
                    4 => by_dtype!(
                        dt,
                        attn::decode_attn_h4_f32,
                        attn::decode_attn_h4_f16,
                        attn::decode_attn_h4_bf16,
                        (
                            a.0.get(),
                            a.1.get(),
                            a.2.get(),
                            a.3.get(),
                            a.4.get(),
                            a.5.get(),
                            p
                        )
                    ),
                    _ => unreachable!("heads_per_block {g}"),
                }
            }
        },
    )?;
    run(
        &format!("decode_attn_combine_{}", dt.name()),
        plan.combine,
        || {
            // SAFETY: the partial kernel filled the scratch; out holds heads * d elements.
            unsafe {
                by_dtype!(
                    dt,
                    attn::decode_attn_combine_f32,
                    attn::decode_attn_combine_f16,
                    attn::decode_attn_combine_bf16,
                    (ap.get(), mp.get(), op.get(), lp.get(), p)
                )
            }
        },
    )
}
