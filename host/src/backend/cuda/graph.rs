//! CUDA graphs: capture the work a closure queues on the backend's stream once, replay it with
//! one launch ([`CapturedGraph`]), and the small device-side values ([`DeviceU32`]) that let
//! one captured decode step serve every step — its token id and the cache length live in device
//! memory, where the step's own kernels read and update them.
//!
//! A graph replays on the addresses it was captured with, so the capture records every
//! allocation into a [`Reservation`] that the graph holds (see `allocator.rs`): no other tensor
//! can be handed memory the graph writes. Buffers allocated before the capture (weights, the KV
//! cache, the [`DeviceU32`]s) must outlive the graph's replays; the decode graph
//! (`models/llama/decode_graph.rs`) borrows the model, owns its token id and replays only when
//! handed the very cache it was captured with.

use cudarc::driver::sys::{self, CUgraphInstantiate_flags, CUstreamCaptureMode};
use cudarc::driver::{CudaGraph, DriverError};

use super::allocator::{DeviceBuffer, Reservation};
use super::context::{CudaBackend, cuda_err};
use crate::error::{Error, Result};

/// One `u32` in device memory (a decode step's token id or cache length). Setting it queues a
/// 4-byte memset on the stream (no synchronisation); reading it waits for the stream.
#[derive(Debug)]
pub struct DeviceU32 {
    buf: DeviceBuffer,
    backend: CudaBackend,
}

impl DeviceU32 {
    /// A new value, set to `value` (queued).
    pub fn new(backend: &CudaBackend, value: u32) -> Result<DeviceU32> {
        let buf = backend.alloc_buffer(4)?;
        let v = DeviceU32 {
            buf,
            backend: backend.clone(),
        };
        v.set(value)?;
        Ok(v)
    }

    /// The device address (a kernel argument).
    pub fn ptr(&self) -> u64 {
        self.buf.ptr()
    }

    /// The backend it lives on.
    pub fn backend(&self) -> &CudaBackend {
        &self.backend
    }

    /// Queues `*self = value` on the stream (on the emulated device: writes it).
    pub fn set(&self, value: u32) -> Result<()> {
        if self.backend.is_emulated() {
            // SAFETY: the buffer holds one u32 of this emulated device; emulated launches are
            // synchronous, so nothing else touches it meanwhile.
            unsafe { crate::backend::emu::memory::write(self.ptr(), &value.to_ne_bytes()) };
            return Ok(());
        }
        let stream = self.backend.stream()?;
        self.backend.bind()?;
        // SAFETY: the buffer holds one u32; the memset is ordered on the backend's stream.
        unsafe { sys::cuMemsetD32Async(self.ptr(), value, 1, stream.cu_stream()).result() }
            .map_err(cuda_err("memset_d32"))
    }

    /// Queues `*self += by` (a one-thread kernel, so it can be captured in a graph).
    pub fn add(&self, by: u32) -> Result<()> {
        // SAFETY: the address holds a u32.
        unsafe { self.backend.add_u32(self.ptr(), by) }
    }

    /// Waits for the stream and reads the value (one synchronisation).
    pub fn get(&self) -> Result<u32> {
        Ok(self.backend.download_into(self.ptr(), vec![0u32])?[0])
    }
}

/// An instantiated CUDA graph and the memory it was captured with (see the module docs).
pub struct CapturedGraph {
    // Field order is drop order: the executable graph goes before its memory.
    graph: CudaGraph,
    _memory: Reservation,
    backend: CudaBackend,
}

impl std::fmt::Debug for CapturedGraph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CapturedGraph({:?})", self._memory)
    }
}

impl CapturedGraph {
    /// Queues one replay on the stream it was captured on.
    pub fn launch(&self) -> Result<()> {
        self.backend
            .queue_foreign(|| self.graph.launch())
            .map_err(cuda_err("graph_launch"))
    }
}

/// A driver error during capture or instantiation, as the typed "no graph here" error.
fn unavailable(what: &str) -> impl FnOnce(DriverError) -> Error + '_ {
    move |e| Error::GraphUnavailable {
        reason: format!("{what}: {e}"),
    }
}

impl CudaBackend {
    /// Captures the work `f` queues on the stream (nothing runs) into a graph, with every
    /// allocation made or freed meanwhile reserved for it, and returns the graph and `f`'s
    /// result. `f` must only queue work: a synchronisation, a host copy or another stream's
    /// work invalidates the capture. Errors from the driver are [`Error::GraphUnavailable`];
    /// an error of `f` is returned as it is, after the capture is abandoned.
    pub fn capture<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<(CapturedGraph, T)> {
        // The emulated device has no stream to capture: a typed "stay eager".
        let stream = self.stream().map_err(|e| Error::GraphUnavailable {
            reason: e.to_string(),
        })?;
        let memory = self.reserve()?;

        // Relaxed: the capture may meet an allocator miss (cuMemAlloc), which is no stream work.
        // The graph's first kernel follows nothing we launched; after the capture, the
        // stream's next kernel follows what came before it, not the captured kernels.
        self.queue_foreign(|| {
            stream.begin_capture(CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_RELAXED)
        })
        .map_err(unavailable("begin capture"))?;
        let result = f();
        let graph = self.queue_foreign(|| stream.end_capture(CUgraphInstantiate_flags(0)));
        memory.stop();
        let value = result?;
        let graph =
            graph
                .map_err(unavailable("end capture"))?
                .ok_or_else(|| Error::GraphUnavailable {
                    reason: "the capture recorded no work".into(),
                })?;
        graph.upload().map_err(unavailable("graph upload"))?;
        Ok((
            CapturedGraph {
                graph,
                _memory: memory,
                backend: self.clone(),
            },
            value,
        ))
    }
}
