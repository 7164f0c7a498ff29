//! [`CudaBackend`]: one device, one stream, the PTX module loaded once, cuBLAS and the caching
//! allocator. Cloning is cheap (a shared handle).
//!
//! cudarc loads `libcuda` lazily and panics when it is missing, so [`CudaBackend::new`] first
//! probes for the driver and cuBLAS libraries and returns [`Error::CudaUnavailable`] instead.
//!
//! [`CudaBackend::emulated`] is the same backend without a GPU: its memory is host memory and
//! its launches run the kernels' host twins under the SIMT emulator (`crate::backend::emu`).
//! Every launcher, launch shape and parameter struct is shared; only the memory operations
//! here, the launch step (`dispatch.rs`) and the GEMM (`blas.rs`) look at the [`Target`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use cudarc::cublas::CudaBlas;
use cudarc::driver::sys::CUfunction_attribute_enum;
use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaStream, result};
use cudarc::nvrtc::Ptx;

use super::allocator::{CachingAllocator, DeviceBuffer, Memory, MemoryStats, Reservation};
use super::dispatch::LastLaunch;
use super::storage::CudaStorage;
use crate::backend::emu;
use crate::error::{Error, Result};
use crate::tensor::DType;
use nano_infer_kernels::params::DECODE_COUNTERS;

/// Maps a driver error to [`Error::Cuda`] tagged with the op.
pub(crate) fn cuda_err(op: &'static str) -> impl FnOnce(cudarc::driver::DriverError) -> Error {
    move |source| Error::Cuda { op, source }
}

struct Inner {
    /// `DECODE_COUNTERS` zeroed words: the split counters of the decode-attention kernels,
    /// which leave them zero (see `gpu-kernels/src/attention_decode.rs`). One buffer for the
    /// backend's life, so CUDA graphs capture a fixed address.
    decode_counters: DeviceBuffer,
    ordinal: usize,
    name: String,
    sm_count: usize,
    // Field order is drop order: buffers' allocator and cuBLAS go before the context.
    allocator: Arc<CachingAllocator>,
    /// Host waits on the stream so far (each download waits once).
    syncs: AtomicUsize,
    target: Target,
}

/// What runs a backend's work: a GPU through the driver, or the emulator on the host.
pub(crate) enum Target {
    Driver(Driver),
    Emulator,
}

/// The kernels' PTX, as `build.rs` writes it: the portable sm_80 build, the Hopper build, whose
/// entries open with `griddepcontrol` (programmatic dependent launch), and the sm_90a build: the
/// sm_90 kernels plus those on `wgmma` (FlashAttention-3), which only a compute capability 9.0
/// device runs.
#[derive(Clone, Copy, Debug)]
pub struct KernelPtx {
    pub sm80: &'static str,
    pub sm90: &'static str,
    pub sm90a: &'static str,
}

/// Dynamic shared memory every kernel may take without an opt-in.
const DEFAULT_SHARED_MEM_BYTES: u32 = 48 * 1024;

/// A kernel of the module and the dynamic shared memory it has been allowed.
struct Loaded {
    function: CudaFunction,
    shared_mem_allowed: u32,
}

/// A GPU's driver objects.
pub(crate) struct Driver {
    // Field order is drop order: cuBLAS before the module and the stream.
    blas: CudaBlas,
    module: Arc<CudaModule>,
    /// Kernels launch with programmatic stream serialization (Hopper's sm_90 module): each may
    /// start while the previous kernel's last blocks run, and waits for it in
    /// `grid_dependency_sync` before touching memory.
    pdl: bool,
    /// The module is the sm_90a build, with the `wgmma` kernels.
    wgmma: bool,
    /// Kernels looked up so far, with the dynamic shared memory each may take (see
    /// [`Driver::allow_shared_mem`]).
    functions: Mutex<HashMap<String, Loaded>>,
    /// What the last kernel queued on `stream` was given (see [`LastLaunch`]).
    last_launch: Box<Mutex<LastLaunch>>,
    stream: Arc<CudaStream>,
}

impl Driver {
    /// The stream every op is queued on.
    pub(crate) fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// The cuBLAS handle (on our stream).
    pub(crate) fn blas(&self) -> &CudaBlas {
        &self.blas
    }

    /// The kernel `name` from the module (looked up once, then cached).
    pub(crate) fn function(&self, name: &str) -> Result<CudaFunction> {
        self.with_function(name, |loaded| Ok(loaded.function.clone()))
    }

    /// Lets kernel `name` take `bytes` of dynamic shared memory: past 48 KiB the driver wants
    /// an opt-in per function, asked for once per size (not at every launch: the attribute
    /// call costs host time).
    pub(crate) fn allow_shared_mem(&self, name: &str, bytes: u32) -> Result<()> {
        self.with_function(name, |loaded| {
            if bytes > loaded.shared_mem_allowed {
                loaded
                    .function
                    .set_attribute(
                        CUfunction_attribute_enum::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                        bytes as i32,
                    )
                    .map_err(cuda_err("cuFuncSetAttribute"))?;
                loaded.shared_mem_allowed = bytes;
            }
            Ok(())
        })
    }

    /// Runs `f` on kernel `name`'s cache entry, loading it from the module the first time.
    fn with_function<T>(&self, name: &str, f: impl FnOnce(&mut Loaded) -> Result<T>) -> Result<T> {
        let mut cache = self.functions.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(loaded) = cache.get_mut(name) {
            return f(loaded);
        }
        let function = self
            .module
            .load_function(name)
            .map_err(|_| Error::MissingKernel {
                name: name.to_string(),
            })?;
        let loaded = cache.entry(name.to_string()).or_insert(Loaded {
            function,
            shared_mem_allowed: DEFAULT_SHARED_MEM_BYTES,
        });
        f(loaded)
    }

    /// The record of the last kernel queued, locked for a launch (or a decision about one).
    pub(crate) fn last_launch(&self) -> MutexGuard<'_, LastLaunch> {
        self.last_launch.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether kernels launch as programmatic dependents (see [`Driver::pdl`]).
    pub(crate) fn pdl(&self) -> bool {
        self.pdl
    }

    /// Makes the context current on the calling thread (raw driver calls need it).
    pub(crate) fn bind(&self) -> Result<()> {
        self.stream
            .context()
            .bind_to_thread()
            .map_err(cuda_err("bind_to_thread"))
    }
}

/// A CUDA device, or its emulation, ready to run NanoInfer's kernels.
#[derive(Clone)]
pub struct CudaBackend {
    inner: Arc<Inner>,
    /// Prefill attention at head dim 128 runs the FlashAttention-3 kernel (`wgmma`); see
    /// [`CudaBackend::with_flash3`].
    flash3: bool,
}

impl std::fmt::Debug for CudaBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CudaBackend({self}, {})", self.inner.name)
    }
}

/// `cuda:N`, or `emu` for the emulated device.
impl std::fmt::Display for CudaBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.inner.target {
            Target::Driver(_) => write!(f, "cuda:{}", self.inner.ordinal),
            Target::Emulator => write!(f, "emu"),
        }
    }
}

/// Checks that the driver and cuBLAS libraries can be loaded, without touching cudarc's
/// panicking lazy loaders.
fn probe_libraries() -> Result<()> {
    // SAFETY: these only try to dlopen the library names; nothing is called.
    let driver = unsafe { cudarc::driver::sys::is_culib_present() };
    if !driver {
        return Err(Error::CudaUnavailable {
            reason: "no CUDA driver library (libcuda.so) could be loaded".into(),
        });
    }
    // SAFETY: as above.
    let blas = unsafe { cudarc::cublas::sys::is_culib_present() };
    if !blas {
        return Err(Error::CudaUnavailable {
            reason: "the CUDA driver is present but cuBLAS (libcublas.so.13) is not on the library path; \
                     add its folder to LD_LIBRARY_PATH"
                .into(),
        });
    }
    Ok(())
}

impl CudaBackend {
    /// Opens GPU `ordinal` and loads the kernels of `gpu-kernels/`: on Hopper (compute
    /// capability 9+) the sm_90 build, launched as programmatic dependents, unless
    /// `NANO_INFER_PDL=0` asks for the sm_80 build and plain launches (to measure the
    /// difference); elsewhere the sm_80 build. On compute capability 9.0 exactly (H100, H200)
    /// the sm_90a build instead, and prefill attention at head dim 128 takes its
    /// FlashAttention-3 kernel unless `NANO_INFER_FLASH3=0` keeps FlashAttention-2.
    pub fn new(ordinal: usize, ptx: KernelPtx) -> Result<CudaBackend> {
        probe_libraries()?;
        let count = CudaContext::device_count().map_err(cuda_err("device_count"))?;
        if ordinal >= count.max(0) as usize {
            return Err(Error::CudaUnavailable {
                reason: format!("no CUDA device {ordinal} ({count} present)"),
            });
        }
        let ctx = CudaContext::new(ordinal).map_err(cuda_err("context"))?;
        // A non-default stream, so that the decode step can be captured in a CUDA graph later.
        let stream = ctx.new_stream().map_err(cuda_err("new_stream"))?;
        let (major, minor) = ctx
            .compute_capability()
            .map_err(cuda_err("compute_capability"))?;
        let pdl = major >= 9 && std::env::var("NANO_INFER_PDL").map_or(true, |v| v != "0");
        // sm_90a code runs on compute capability 9.0 only.
        let wgmma = pdl && (major, minor) == (9, 0);
        let flash3 = wgmma && std::env::var("NANO_INFER_FLASH3").map_or(true, |v| v != "0");
        let src = match (pdl, wgmma) {
            (_, true) => ptx.sm90a,
            (true, false) => ptx.sm90,
            (false, _) => ptx.sm80,
        };
        let module = ctx
            .load_module(Ptx::from_src(src))
            .map_err(cuda_err("load_module"))?;
        let blas = CudaBlas::new(stream.clone()).map_err(|source| Error::Cublas {
            op: "cublas_create",
            source,
        })?;
        // cuBLAS may otherwise sum split-K partials of f16/bf16 GEMMs in the output type (a
        // 7% error on a skinny K = 4096 product was seen); keep every reduction in f32.
        // SAFETY: the handle is live (owned by `blas`); setting its math mode has no other effect.
        let status = unsafe {
            cudarc::cublas::sys::cublasSetMathMode(
                *blas.handle(),
                cudarc::cublas::sys::cublasMath_t::CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION,
            )
        };
        if status != cudarc::cublas::sys::cublasStatus_t::CUBLAS_STATUS_SUCCESS {
            return Err(Error::invalid("cublasSetMathMode", format!("{status:?}")));
        }
        let name = ctx.name().unwrap_or_else(|_| "unknown GPU".into());
        let sm_count = ctx
            .attribute(
                cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
            )
            .map_err(cuda_err("attribute"))? as usize;
        let allocator = CachingAllocator::new(Memory::Driver(ctx.clone()));
        let decode_counters = allocator.alloc(DECODE_COUNTERS * 4)?;
        ctx.bind_to_thread().map_err(cuda_err("bind_to_thread"))?;
        // SAFETY: the buffer holds `DECODE_COUNTERS * 4` bytes; the memset is ordered on the
        // stream before any kernel.
        unsafe {
            result::memset_d8_async(
                decode_counters.ptr(),
                0,
                DECODE_COUNTERS * 4,
                stream.cu_stream(),
            )
        }
        .map_err(cuda_err("memset"))?;
        Ok(CudaBackend {
            inner: Arc::new(Inner {
                decode_counters,
                ordinal,
                name,
                sm_count,
                allocator,
                syncs: AtomicUsize::new(0),
                target: Target::Driver(Driver {
                    blas,
                    module,
                    pdl,
                    wgmma,
                    functions: Mutex::new(HashMap::new()),
                    last_launch: Box::default(),
                    stream,
                }),
            }),
            flash3,
        })
    }

    /// The emulated device: host memory, kernels run by the SIMT emulator, GEMM by a scalar
    /// GEMM on the cuBLAS call's arguments (see `crate::backend::emu`). Needs no GPU; slow, so
    /// meant for tests and debugging on small shapes.
    pub fn emulated() -> CudaBackend {
        let allocator = CachingAllocator::new(Memory::Host);
        let decode_counters = allocator
            .alloc(DECODE_COUNTERS * 4)
            .expect("host memory for the decode counters");
        // SAFETY: a live host buffer of `DECODE_COUNTERS * 4` bytes that nothing else uses.
        unsafe { emu::memory::fill(decode_counters.ptr(), 0, DECODE_COUNTERS * 4) };
        CudaBackend {
            inner: Arc::new(Inner {
                decode_counters,
                ordinal: 0,
                name: "SIMT emulator".into(),
                sm_count: emu::SM_COUNT,
                allocator,
                syncs: AtomicUsize::new(0),
                target: Target::Emulator,
            }),
            flash3: false,
        }
    }

    /// This backend with prefill attention at head dim 128 on the FlashAttention-3 kernel
    /// (`on`), or on FlashAttention-2. FlashAttention-3 needs the sm_90a module (a compute
    /// capability 9.0 GPU) or the emulated device, else [`Error::InvalidArgument`]. The handle
    /// shares the device, memory and stream with `self`.
    pub fn with_flash3(&self, on: bool) -> Result<CudaBackend> {
        let can = match &self.inner.target {
            Target::Driver(d) => d.wgmma,
            Target::Emulator => true,
        };
        if on && !can {
            return Err(Error::InvalidArgument {
                op: "with_flash3",
                reason: format!(
                    "{} has no FlashAttention-3 (it needs compute capability 9.0: sm_90a)",
                    self.inner.name
                ),
            });
        }
        Ok(CudaBackend {
            inner: self.inner.clone(),
            flash3: on,
        })
    }

    /// Whether prefill attention at head dim 128 runs the FlashAttention-3 kernel.
    pub fn flash3(&self) -> bool {
        self.flash3
    }

    /// The decode-attention split counters (`DECODE_COUNTERS` words, zero between launches).
    pub(crate) fn decode_counters(&self) -> u64 {
        self.inner.decode_counters.ptr()
    }

    /// True for the emulated device.
    pub fn is_emulated(&self) -> bool {
        matches!(self.inner.target, Target::Emulator)
    }
    /// The device ordinal.
    pub fn ordinal(&self) -> usize {
        self.inner.ordinal
    }
    /// The device's marketing name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }
    /// Streaming multiprocessors on the device (the emulated device claims a few, so that
    /// grid-stride grids stay small and their loops take several turns).
    pub fn sm_count(&self) -> usize {
        self.inner.sm_count
    }
    /// True when both handles are the same backend.
    pub fn same(&self, other: &CudaBackend) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
    /// What runs this backend's work.
    pub(crate) fn target(&self) -> &Target {
        &self.inner.target
    }
    /// The GPU's driver objects; [`Error::NeedsGpu`] on the emulated device.
    fn driver(&self, op: &'static str) -> Result<&Driver> {
        match &self.inner.target {
            Target::Driver(d) => Ok(d),
            Target::Emulator => Err(Error::NeedsGpu { op }),
        }
    }
    /// The stream every op of this backend is queued on ([`Error::NeedsGpu`] when emulated).
    pub fn stream(&self) -> Result<&Arc<CudaStream>> {
        Ok(self.driver("stream")?.stream())
    }
    /// Makes the context current on the calling thread (raw driver calls need it).
    pub(crate) fn bind(&self) -> Result<()> {
        self.driver("bind_to_thread")?.bind()
    }
    /// Waits for all queued work (emulated work is done when its call returns).
    pub fn synchronize(&self) -> Result<()> {
        self.inner.syncs.fetch_add(1, Ordering::Relaxed);
        match &self.inner.target {
            Target::Driver(d) => d.stream.synchronize().map_err(cuda_err("synchronize")),
            Target::Emulator => Ok(()),
        }
    }
    /// Times the host has waited for the stream (synchronisations, downloads and uploads):
    /// a decode loop that only launches graphs and reads one token adds one per step.
    pub fn sync_count(&self) -> usize {
        self.inner.syncs.load(Ordering::Relaxed)
    }
    /// Allocator statistics.
    pub fn memory_stats(&self) -> MemoryStats {
        self.inner.allocator.stats()
    }
    /// Returns cached blocks to the driver (or the host).
    pub fn empty_cache(&self) -> Result<()> {
        self.synchronize()?;
        self.inner.allocator.empty_cache();
        Ok(())
    }

    /// Starts reserving allocations for a CUDA graph capture (see `allocator.rs`).
    pub(crate) fn reserve(&self) -> Result<Reservation> {
        self.inner.allocator.reserve()
    }

    /// An uninitialised buffer of `bytes` bytes.
    pub(crate) fn alloc_buffer(&self, bytes: usize) -> Result<DeviceBuffer> {
        self.inner.allocator.alloc(bytes)
    }

    /// Uninitialised storage of `n` elements.
    pub(crate) fn alloc(&self, n: usize, dtype: DType) -> Result<CudaStorage> {
        let bytes = n
            .checked_mul(dtype.size_in_bytes())
            .ok_or_else(|| Error::invalid("alloc", "size overflows"))?;
        let buf: DeviceBuffer = self.inner.allocator.alloc(bytes)?;
        Ok(CudaStorage::new(buf, dtype, n, self.clone()))
    }

    /// Zero-filled storage of `n` elements.
    pub(crate) fn zeros(&self, n: usize, dtype: DType) -> Result<CudaStorage> {
        let s = self.alloc(n, dtype)?;
        let bytes = n * dtype.size_in_bytes();
        match &self.inner.target {
            Target::Driver(d) => {
                d.bind()?;
                // SAFETY: the buffer holds at least `bytes` bytes; the memset is ordered on
                // our stream.
                unsafe { result::memset_d8_async(s.ptr(), 0, bytes, d.stream.cu_stream()) }
                    .map_err(cuda_err("memset"))?;
            }
            // SAFETY: a live emulated buffer of at least `bytes` bytes that nothing else uses.
            Target::Emulator => unsafe { emu::memory::fill(s.ptr(), 0, bytes) },
        }
        Ok(s)
    }

    /// Copies host bytes into a new device buffer (waits for the copy).
    pub(crate) fn upload_buffer(&self, bytes: &[u8]) -> Result<DeviceBuffer> {
        let buf = self.inner.allocator.alloc(bytes.len())?;
        match &self.inner.target {
            Target::Driver(d) => {
                d.bind()?;
                // SAFETY: the buffer holds bytes.len() bytes; we wait for the copy before
                // `bytes` can go.
                unsafe { result::memcpy_htod_async(buf.ptr(), bytes, d.stream.cu_stream()) }
                    .map_err(cuda_err("upload"))?;
            }
            // SAFETY: a fresh emulated buffer of at least bytes.len() bytes.
            Target::Emulator => unsafe { emu::memory::write(buf.ptr(), bytes) },
        }
        self.synchronize()?;
        Ok(buf)
    }

    /// Copies host bytes (elements of `dtype`) into new storage.
    pub(crate) fn upload(&self, bytes: &[u8], dtype: DType) -> Result<CudaStorage> {
        let n = bytes.len() / dtype.size_in_bytes();
        Ok(CudaStorage::new(
            self.upload_buffer(bytes)?,
            dtype,
            n,
            self.clone(),
        ))
    }

    /// Copies `dst.len()` elements from device address `src` into `dst` (waits for the stream).
    pub(crate) fn download_into<T: bytemuck::Pod>(
        &self,
        src: u64,
        mut dst: Vec<T>,
    ) -> Result<Vec<T>> {
        match &self.inner.target {
            Target::Driver(d) => {
                d.bind()?;
                // SAFETY: the caller passes an address with dst.len() elements of T; we wait
                // before returning.
                unsafe { result::memcpy_dtoh_async(&mut dst, src, d.stream.cu_stream()) }
                    .map_err(cuda_err("download"))?;
            }
            // SAFETY: the caller passes an address of this emulated device with dst.len()
            // elements of T behind it.
            Target::Emulator => unsafe {
                emu::memory::read(src, bytemuck::cast_slice_mut(&mut dst))
            },
        }
        self.synchronize()?;
        Ok(dst)
    }
}
