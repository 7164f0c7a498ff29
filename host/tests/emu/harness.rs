//! Emulated launchers: the CUDA backend's launchers (`src/backend/cuda/launch.rs`) with host
//! buffers instead of device addresses and `emu::launch` instead of the driver. Same kernel
//! symbols (`{op}_{dtype}`), same argument order, same launch shapes (both take them from
//! `nano_infer_kernels::launch_shape`), so the emulator runs what the GPU runs.

use half::{bf16, f16};
use nano_infer_host::DType;
use nano_infer_host::Tensor;
use nano_infer_host::backend::cpu::testing::assert_close;
use nano_infer_host::tensor::Device;
use nano_infer_kernels::elem::Elem;
use nano_infer_kernels::emu::{self, EmuError, SyncPtr};
use nano_infer_kernels::launch_shape::{self, LaunchShape};
use nano_infer_kernels::params::{
    FlashAttnParams, MAX_RANK, RopeParams, SoftmaxParams, StridedCopy,
};
use nano_infer_kernels::weights::{QuantFormat, WeightFormat};
use nano_infer_kernels::{
    activation, attention_decode as attn, attention_flash as flash, elementwise, gemv, norm, rope,
    softmax,
};

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

/// `out = rmsnorm(x) * w` over rows of `cols` (`rmsnorm_{dt}`).
pub fn rms_norm(
    x: &DevBuf,
    w: &DevBuf,
    out: &DevBuf,
    rows: usize,
    cols: usize,
    eps: f32,
) -> Result<(), EmuError> {
    let (xp, wp, op, dt) = (x.ptr(), w.ptr(), out.ptr(), x.dt);
    let (r, c) = (rows as u32, cols as u32);
    let shape = launch_shape::rows(rows, cols).expect("grid fits");
    run(&format!("rmsnorm_{}", dt.name()), shape, || {
        // SAFETY: x and out hold rows * cols elements, w holds cols; launched with the row shape.
        unsafe {
            by_dtype!(
                dt,
                norm::rmsnorm_f32,
                norm::rmsnorm_f16,
                norm::rmsnorm_bf16,
                (xp.get(), wp.get(), op.get(), r, c, eps)
            )
        }
    })
}

/// `sum = x + r` (skipped when `sum` is `None`); `out = rmsnorm(sum) * w`.
#[allow(clippy::too_many_arguments)]
pub fn add_rms_norm(
    x: &DevBuf,
    res: &DevBuf,
    w: &DevBuf,
    sum: Option<&DevBuf>,
    out: &DevBuf,
    rows: usize,
    cols: usize,
    eps: f32,
) -> Result<(), EmuError> {
    let (xp, rp, wp, op, dt) = (x.ptr(), res.ptr(), w.ptr(), out.ptr(), x.dt);
    let sp = sum.map_or(SyncPtr::new(std::ptr::null_mut()), DevBuf::ptr);
    let (r, c) = (rows as u32, cols as u32);
    let shape = launch_shape::rows(rows, cols).expect("grid fits");
    run(&format!("add_rmsnorm_{}", dt.name()), shape, || {
        // SAFETY: every buffer holds rows * cols elements (w: cols); sum may be null.
        unsafe {
            by_dtype!(
                dt,
                norm::add_rmsnorm_f32,
                norm::add_rmsnorm_f16,
                norm::add_rmsnorm_bf16,
                (xp.get(), rp.get(), wp.get(), sp.get(), op.get(), r, c, eps)
            )
        }
    })
}

/// `out = silu(x)` over the first `n` elements, `x` and `out` given as element addresses.
pub fn silu(x: SyncPtr<u8>, out: SyncPtr<u8>, n: usize, dt: DType) -> Result<(), EmuError> {
    let shape = launch_shape::grid_stride(launch_shape::map_items(n), EMU_SM_COUNT);
    run(&format!("silu_{}", dt.name()), shape, || {
        // SAFETY: both addresses have n elements of dt behind them.
        unsafe {
            by_dtype!(
                dt,
                activation::silu_f32,
                activation::silu_f16,
                activation::silu_bf16,
                (x.get(), out.get(), n as u64)
            )
        }
    })
}

/// `out = op(a, b)` for `op` in `add`, `mul`, `swiglu`.
pub fn binary(
    op: &str,
    a: SyncPtr<u8>,
    b: SyncPtr<u8>,
    out: SyncPtr<u8>,
    n: usize,
    dt: DType,
) -> Result<(), EmuError> {
    let shape = launch_shape::grid_stride(launch_shape::map_items(n), EMU_SM_COUNT);
    let n = n as u64;
    run(&format!("{op}_{}", dt.name()), shape, || {
        // SAFETY: the three addresses have n elements of dt behind them.
        unsafe {
            match op {
                "add" => by_dtype!(
                    dt,
                    elementwise::add_f32,
                    elementwise::add_f16,
                    elementwise::add_bf16,
                    (a.get(), b.get(), out.get(), n)
                ),
                "mul" => by_dtype!(
                    dt,
                    elementwise::mul_f32,
                    elementwise::mul_f16,
                    elementwise::mul_bf16,
                    (a.get(), b.get(), out.get(), n)
                ),
                "swiglu" => by_dtype!(
                    dt,
                    activation::swiglu_f32,
                    activation::swiglu_f16,
                    activation::swiglu_bf16,
                    (a.get(), b.get(), out.get(), n)
                ),
                _ => unreachable!("unknown binary op {op}"),
            }
        }
    })
}

/// Rotary embedding (see `RopeParams`); `cos`/`sin` are f32 tables.
pub fn rope(
    x: &DevBuf,
    out: &DevBuf,
    cos: &[f32],
    sin: &[f32],
    p: RopeParams,
) -> Result<(), EmuError> {
    let (xp, op, cp, sp, dt) = (x.ptr(), out.ptr(), SyncPtr::of(cos), SyncPtr::of(sin), x.dt);
    let shape = launch_shape::grid_stride(
        launch_shape::rope_items(p.rows as usize, p.head_dim as usize),
        EMU_SM_COUNT,
    );
    run(&format!("rope_{}", dt.name()), shape, || {
        // SAFETY: x/out hold rows * head_dim elements, the tables cover every position.
        unsafe {
            by_dtype!(
                dt,
                rope::rope_f32,
                rope::rope_f16,
                rope::rope_bf16,
                (xp.get(), op.get(), cp.get(), sp.get(), p)
            )
        }
    })
}

/// Row softmax (see `SoftmaxParams`).
pub fn softmax(x: &DevBuf, out: &DevBuf, p: SoftmaxParams) -> Result<(), EmuError> {
    let (xp, op, dt) = (x.ptr(), out.ptr(), x.dt);
    let shape = launch_shape::rows(p.rows as usize, p.cols as usize).expect("grid fits");
    run(&format!("softmax_{}", dt.name()), shape, || {
        // SAFETY: x and out hold rows * cols elements.
        unsafe {
            by_dtype!(
                dt,
                softmax::softmax_f32,
                softmax::softmax_f16,
                softmax::softmax_bf16,
                (xp.get(), op.get(), p)
            )
        }
    })
}

/// Gathers the rows `ids` of `table` (`[vocab, cols]`) into `out`.
pub fn embedding(
    ids: &[u32],
    table: &DevBuf,
    out: &DevBuf,
    cols: usize,
    vocab: usize,
) -> Result<(), EmuError> {
    let (ip, tp, op, dt) = (SyncPtr::of(ids), table.ptr(), out.ptr(), table.dt);
    let (c, v) = (cols as u32, vocab as u32);
    run(
        &format!("embedding_{}", dt.name()),
        launch_shape::embedding(ids.len(), cols),
        || {
            // SAFETY: one block per id; out holds ids.len() * cols, table vocab * cols elements.
            unsafe {
                by_dtype!(
                    dt,
                    elementwise::embedding_f32,
                    elementwise::embedding_f16,
                    elementwise::embedding_bf16,
                    (ip.get(), tp.get(), op.get(), c, v)
                )
            }
        },
    )
}

/// Converts `src` into `dst` (`cast_{from}_{to}`, `from != to`).
pub fn cast(src: &DevBuf, dst: &DevBuf) -> Result<(), EmuError> {
    use elementwise::*;
    let (sp, dp, n) = (src.ptr(), dst.ptr(), src.len as u64);
    let shape = launch_shape::grid_stride(launch_shape::map_items(src.len), EMU_SM_COUNT);
    let name = format!("cast_{}_{}", src.dt.name(), dst.dt.name());
    let (from, to) = (src.dt, dst.dt);
    run(&name, shape, || {
        // SAFETY: src and dst hold n elements and do not overlap.
        unsafe {
            match (from, to) {
                (DType::F32, DType::F16) => cast_f32_f16(sp.get(), dp.get(), n),
                (DType::F32, DType::BF16) => cast_f32_bf16(sp.get(), dp.get(), n),
                (DType::F16, DType::F32) => cast_f16_f32(sp.get(), dp.get(), n),
                (DType::F16, DType::BF16) => cast_f16_bf16(sp.get(), dp.get(), n),
                (DType::BF16, DType::F32) => cast_bf16_f32(sp.get(), dp.get(), n),
                (DType::BF16, DType::F16) => cast_bf16_f16(sp.get(), dp.get(), n),
                _ => unreachable!("no cast kernel from {from:?} to {to:?}"),
            }
        }
    })
}

/// A strided view: dims (outermost first), strides and offset in elements.
pub struct View<'a> {
    pub dims: &'a [usize],
    pub strides: &'a [usize],
    pub offset: usize,
}

/// Copies the view `sv` of `src` into the view `dv` of `dst` (same dims), packing the params
/// as `CudaBackend::copy_strided` does.
pub fn copy_strided(src: &DevBuf, sv: &View, dst: &DevBuf, dv: &View) -> Result<(), EmuError> {
    let rank = sv.dims.len();
    assert!(rank <= MAX_RANK && dv.dims == sv.dims);
    let mut p = StridedCopy {
        shape: [1; MAX_RANK],
        ..Default::default()
    };
    let pad = MAX_RANK - rank;
    for d in 0..rank {
        p.shape[pad + d] = sv.dims[d] as u64;
        p.src_strides[pad + d] = sv.strides[d] as u64;
        p.dst_strides[pad + d] = dv.strides[d] as u64;
    }
    p.src_offset = sv.offset as u64;
    p.dst_offset = dv.offset as u64;
    p.n = sv.dims.iter().product::<usize>() as u64;
    let (sp, dp, dt) = (src.ptr(), dst.ptr(), src.dt);
    let shape = launch_shape::grid_stride(p.n as usize, EMU_SM_COUNT);
    run(&format!("copy_strided_{}", dt.name()), shape, || {
        // SAFETY: both views stay inside their buffers (the test builds them so).
        unsafe {
            by_dtype!(
                dt,
                elementwise::copy_strided_f32,
                elementwise::copy_strided_f16,
                elementwise::copy_strided_bf16,
                (sp.get(), dp.get(), p)
            )
        }
    })
}

/// 16-byte aligned raw bytes (a repacked quantized weight), as cudaMalloc returns them.
pub struct RawBuf(Vec<u128>);

impl RawBuf {
    pub fn new(bytes: &[u8]) -> Self {
        let mut words = vec![0u128; bytes.len().div_ceil(16).max(1)];
        bytemuck::cast_slice_mut::<u128, u8>(&mut words)[..bytes.len()].copy_from_slice(bytes);
        RawBuf(words)
    }
    pub fn ptr(&self) -> SyncPtr<u8> {
        SyncPtr::new(self.0.as_ptr() as *mut u8)
    }
}

/// A GEMV weight: plain (`gemv_{dt}`, the activation type) or quantized and repacked
/// (`gemv_{format}_{dt}`).
pub enum GemvWeight<'a> {
    Plain(&'a DevBuf),
    Quant(QuantFormat, &'a RawBuf),
}

/// `y[m, n] = x[m, k] · w[n, k]ᵀ` for `m <= GEMV_MAX_M`, or with `swiglu` `y[m, j] =
/// silu(x·gate_jᵀ)·(x·up_jᵀ)` for `w = [gate; up]` (`[2n, k]`): `gemv[_swiglu]_{format_}{dt}`.
#[allow(clippy::too_many_arguments)]
pub fn gemv(
    w: GemvWeight,
    x: &DevBuf,
    y: &DevBuf,
    m: usize,
    n: usize,
    k: usize,
    swiglu: bool,
) -> Result<(), EmuError> {
    let (xp, yp, dt) = (x.ptr(), y.ptr(), x.dt);
    let (wp, fmt) = match w {
        GemvWeight::Plain(b) => (b.ptr(), None),
        GemvWeight::Quant(f, b) => (b.ptr(), Some(f)),
    };
    let (mu, nu, ku) = (m as u32, n as u32, k as u32);
    let width = launch_shape::gemv_width(m);
    let name = format!(
        "gemv_{}m{width}_{}{}",
        if swiglu { "swiglu_" } else { "" },
        fmt.map(|f| format!("{}_", f.name())).unwrap_or_default(),
        dt.name()
    );
    let shape = launch_shape::gemv(n, k, swiglu).expect("grid fits");
    run(&name, shape, || {
        let (w, x, y): (*const u8, *mut u8, *mut u8) = (wp.get(), xp.get(), yp.get());
        let (x, y) = (x as *const u8, y);
        // SAFETY: w holds the [n (2n with swiglu), k] weight, x m * k elements, y m * n; y
        // aliases neither.
        unsafe {
            use QuantFormat as Q;
            use nano_infer_kernels::elem::{BF16, F16};
            use nano_infer_kernels::weights::{Q4_0, Q4_1, Q8_0};
            let a = (w, x, y, width, swiglu, (mu, nu, ku));
            match (fmt, dt) {
                (None, DType::F32) if !swiglu => gemv_body::<f32, f32>(a),
                (None, DType::F16) => gemv_body::<F16, F16>(a),
                (None, DType::BF16) => gemv_body::<BF16, BF16>(a),
                (Some(Q::Q8_0), DType::F16) => gemv_body::<Q8_0, F16>(a),
                (Some(Q::Q4_0), DType::F16) => gemv_body::<Q4_0, F16>(a),
                (Some(Q::Q4_1), DType::F16) => gemv_body::<Q4_1, F16>(a),
                _ => panic!("no kernel {name} (see gpu-kernels/src/gemv.rs)"),
            }
        }
    })
}

/// Arguments of [`gemv_body`]: weight, x, y, width, SwiGLU, (m, n, k).
type GemvArgs = (*const u8, *const u8, *mut u8, usize, bool, (u32, u32, u32));

/// The body behind the symbol `gemv_[swiglu_]m{width}_{..}` for weight format `A` and
/// activation type `B` (the entries are these bodies, instantiated by `kernel_entries!`).
///
/// # Safety
/// As the kernels: see `gemv::gemv_m1`.
unsafe fn gemv_body<A: WeightFormat, B: Elem>((w, x, y, width, swiglu, (m, n, k)): GemvArgs) {
    let (x, y) = (x as *const B, y as *mut B);
    // SAFETY: forwarded contract.
    unsafe {
        match (swiglu, width) {
            (false, 1) => gemv::gemv_m1::<A, B>(w, x, y, m, n, k),
            (false, 2) => gemv::gemv_m2::<A, B>(w, x, y, m, n, k),
            (false, 4) => gemv::gemv_m4::<A, B>(w, x, y, m, n, k),
            (false, _) => gemv::gemv_m8::<A, B>(w, x, y, m, n, k),
            (true, 1) => gemv::gemv_swiglu_m1::<A, B>(w, x, y, m, n, k),
            (true, 2) => gemv::gemv_swiglu_m2::<A, B>(w, x, y, m, n, k),
            (true, 4) => gemv::gemv_swiglu_m4::<A, B>(w, x, y, m, n, k),
            (true, _) => gemv::gemv_swiglu_m8::<A, B>(w, x, y, m, n, k),
        }
    }
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

/// FlashAttention-2 prefill (`flash_attn_d{d}_{dt}`) of `batch` sequences as `p` describes;
/// `lse` receives the rows' log-sum-exp when given.
pub fn flash_attention(
    q: &DevBuf,
    k: &DevBuf,
    v: &DevBuf,
    out: &DevBuf,
    lse: Option<&DevBuf>,
    p: FlashAttnParams,
    d: usize,
    batch: usize,
) -> Result<(), EmuError> {
    let shape = launch_shape::flash_attention(p.heads as usize, p.q_len as usize, batch, d)
        .expect("grid within limits");
    let (qp, kp, vp, op, dt) = (q.ptr(), k.ptr(), v.ptr(), out.ptr(), q.dt);
    let lp = lse.map_or(SyncPtr::new(std::ptr::null_mut()), |l| l.ptr());
    run(&format!("flash_attn_d{d}_{}", dt.name()), shape, || {
        let l = lp.get();
        // SAFETY: the buffers hold the extents `p` names, 16-byte aligned; shape as planned.
        unsafe {
            match (d, dt) {
                (64, DType::F16) => {
                    flash::flash_attn_d64_f16(qp.get(), kp.get(), vp.get(), op.get(), l, p)
                }
                (64, DType::BF16) => {
                    flash::flash_attn_d64_bf16(qp.get(), kp.get(), vp.get(), op.get(), l, p)
                }
                (128, DType::F16) => {
                    flash::flash_attn_d128_f16(qp.get(), kp.get(), vp.get(), op.get(), l, p)
                }
                (128, DType::BF16) => {
                    flash::flash_attn_d128_bf16(qp.get(), kp.get(), vp.get(), op.get(), l, p)
                }
                _ => panic!("no flash_attn kernel for d {d} {dt:?}"),
            }
        }
    })
}
