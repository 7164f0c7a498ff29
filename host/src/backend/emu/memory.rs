//! The emulated device's memory: host blocks addressed by `u64`, like device memory.
//!
//! A block is a host allocation aligned like `cudaMalloc` (256 bytes), so the kernels take the
//! vector paths they take on a GPU. Its address is the pointer's exposed address
//! (`expose_provenance`): the kernels' entries rebuild pointers from it with
//! `with_exposed_provenance` (`nano_infer_kernels::emu::Param`), and so do the copies here,
//! so every access has the provenance of the allocation it lands in. Fresh blocks are filled
//! with `0xff` bytes (NaN in every float type), as shared memory is: an output a kernel forgets
//! to write fails the comparison instead of reading as zero, and no byte is ever uninitialised.

use std::alloc::Layout;

use crate::error::{Error, Result};

/// `cudaMalloc`'s alignment.
const ALIGN: usize = 256;

fn layout(bytes: usize) -> Result<Layout> {
    Layout::from_size_align(bytes.max(1), ALIGN)
        .map_err(|_| Error::invalid("alloc", format!("{bytes} bytes exceed the address space")))
}

/// A new block of `bytes` bytes, filled with `0xff`.
pub(crate) fn alloc(bytes: usize) -> Result<u64> {
    let layout = layout(bytes)?;
    // SAFETY: the layout has a non-zero size.
    let p = unsafe { std::alloc::alloc(layout) };
    if p.is_null() {
        return Err(Error::invalid(
            "alloc",
            format!("the host cannot allocate {bytes} bytes for the emulated device"),
        ));
    }
    // SAFETY: p is a fresh allocation of layout.size() bytes.
    unsafe { p.write_bytes(0xff, layout.size()) };
    Ok(p.expose_provenance() as u64)
}

/// Frees a block.
///
/// # Safety
/// `addr` came from `alloc(bytes)`, is freed once, and nothing uses it afterwards.
pub(crate) unsafe fn free(addr: u64, bytes: usize) {
    let layout = layout(bytes).expect("alloc accepted this size");
    // SAFETY: the caller's contract: addr is the exposed address of an allocation of this
    // layout.
    unsafe { std::alloc::dealloc(std::ptr::with_exposed_provenance_mut(addr as usize), layout) }
}

/// The pointer at device address `addr`.
pub(crate) fn ptr(addr: u64) -> *mut u8 {
    std::ptr::with_exposed_provenance_mut(addr as usize)
}

/// Sets `bytes` bytes from `addr` to `value`.
///
/// # Safety
/// `addr..addr + bytes` lies in one live block and nothing else accesses it meanwhile.
pub(crate) unsafe fn fill(addr: u64, value: u8, bytes: usize) {
    // SAFETY: the caller's contract.
    unsafe { ptr(addr).write_bytes(value, bytes) }
}

/// Copies `src` to device address `dst`.
///
/// # Safety
/// `dst..dst + src.len()` lies in one live block and nothing else accesses it meanwhile.
pub(crate) unsafe fn write(dst: u64, src: &[u8]) {
    // SAFETY: the caller's contract; a host slice cannot overlap a block we own.
    unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), ptr(dst), src.len()) }
}

/// Copies `dst.len()` bytes from device address `src` into `dst`.
///
/// # Safety
/// `src..src + dst.len()` lies in one live block that nothing writes meanwhile (blocks hold
/// no uninitialised bytes: see the module docs).
pub(crate) unsafe fn read(src: u64, dst: &mut [u8]) {
    // SAFETY: the caller's contract.
    unsafe { std::ptr::copy_nonoverlapping(ptr(src), dst.as_mut_ptr(), dst.len()) }
}
