//! Timing GPU work with CUDA events, as the torch anchors do (median of single timed runs).

use cudarc::driver::{result, sys::CUevent_flags};

use super::context::{CudaBackend, cuda_err};
use crate::error::Result;

impl CudaBackend {
    /// Runs `f` `warmup` times, then times `reps` runs one by one with events on the stream and
    /// returns the median in milliseconds.
    pub fn time_median_ms(
        &self,
        warmup: usize,
        reps: usize,
        mut f: impl FnMut() -> Result<()>,
    ) -> Result<f64> {
        for _ in 0..warmup {
            f()?;
        }
        self.synchronize()?;
        let mut times = Vec::with_capacity(reps);
        for _ in 0..reps.max(1) {
            let flags = Some(CUevent_flags::CU_EVENT_DEFAULT);
            let start = self
                .stream()?
                .record_event(flags)
                .map_err(cuda_err("event"))?;
            f()?;
            let end = self
                .stream()?
                .record_event(flags)
                .map_err(cuda_err("event"))?;
            end.synchronize().map_err(cuda_err("event"))?;
            times.push(start.elapsed_ms(&end).map_err(cuda_err("event"))? as f64);
        }
        times.sort_by(f64::total_cmp);
        Ok(times[times.len() / 2])
    }

    /// Device-to-device copy of `bytes` bytes (the practical-bandwidth probe).
    ///
    /// # Safety
    /// Both addresses must hold `bytes` bytes.
    pub unsafe fn copy_device(&self, dst: u64, src: u64, bytes: usize) -> Result<()> {
        self.bind()?;
        // SAFETY: the caller guarantees both ranges; ordered on our stream.
        unsafe { result::memcpy_dtod_async(dst, src, bytes, self.stream()?.cu_stream()) }
            .map_err(cuda_err("copy"))
    }
}
