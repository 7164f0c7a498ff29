//! Kernel arguments as a launch passes them: by value, each as the bytes of one parameter —
//! the model of `cuLaunchKernel`'s `kernelParams` (an array of pointers to the values).
//!
//! The host's launch wrappers (`host/src/backend/cuda/launch.rs`) hand the same arguments to
//! the driver and to the emulator: device addresses as `u64`, sizes as `u32`/`u64`, the
//! `#[repr(C)]` parameter structs of [`crate::params`]. A kernel's entry ([`super::Kernel`])
//! reads each parameter back as the type its signature names, after checking that the sizes
//! agree. [`Param`] makes that read sound: every parameter type is plain data that any bit
//! pattern of its size is a valid value of, and pointers are rebuilt from their addresses with
//! exposed provenance (the emulated device's addresses are host pointers, exposed where the
//! memory was allocated).

use core::marker::PhantomData;
use core::mem::size_of;

use crate::params::{
    DecodeAttnParams, FlashAttnParams, GemvRopeParams, RopeKvParams, RopeParams, SoftmaxParams,
    StridedCopy,
};

/// A type a kernel parameter (or a launch argument) may have.
///
/// # Safety
/// The type has no padding and every bit pattern of `size_of::<Self>()` bytes is a valid value
/// (as `bytemuck::Pod`); `read` may override the default only to rebuild pointers.
pub unsafe trait Param: Copy + 'static {
    /// Reads a value from the `size_of::<Self>()` bytes at `src` (any alignment).
    ///
    /// # Safety
    /// `src` points to `size_of::<Self>()` initialised, readable bytes.
    unsafe fn read(src: *const u8) -> Self {
        // SAFETY: the caller gives size_of::<Self>() initialised bytes; every bit pattern is a
        // valid Self (the trait's contract).
        unsafe { src.cast::<Self>().read_unaligned() }
    }
}

macro_rules! plain_params {
    ($($t:ty),* $(,)?) => { $(
        // SAFETY: integers, floats and `#[repr(C)]` structs of 4- or 8-byte integer and float
        // fields without padding: every bit pattern is a value.
        unsafe impl Param for $t {}
    )* };
}
plain_params!(u32, u64, usize, f32);
plain_params!(
    StridedCopy,
    RopeParams,
    SoftmaxParams,
    DecodeAttnParams,
    FlashAttnParams,
    RopeKvParams,
    GemvRopeParams,
);

// SAFETY: any address is a valid raw pointer; `read` gives it the provenance exposed by the
// allocation it points into (dereferencing stays the kernel's contract, as on a GPU).
unsafe impl<T: 'static> Param for *const T {
    unsafe fn read(src: *const u8) -> Self {
        // SAFETY: forwarded contract; a usize has no invalid bit patterns.
        let addr = unsafe { usize::read(src) };
        core::ptr::with_exposed_provenance(addr)
    }
}

// SAFETY: as for `*const T`.
unsafe impl<T: 'static> Param for *mut T {
    unsafe fn read(src: *const u8) -> Self {
        // SAFETY: forwarded contract; a usize has no invalid bit patterns.
        let addr = unsafe { usize::read(src) };
        core::ptr::with_exposed_provenance_mut(addr)
    }
}

/// One launch argument: the address and size of a [`Param`] value the caller keeps alive for
/// the launch (`'a`).
#[derive(Clone, Copy, Debug)]
pub struct Arg<'a> {
    ptr: *const u8,
    size: usize,
    _value: PhantomData<&'a ()>,
}

impl<'a> Arg<'a> {
    /// The argument `value`.
    pub fn new<T: Param>(value: &'a T) -> Self {
        Arg {
            ptr: (value as *const T).cast(),
            size: size_of::<T>(),
            _value: PhantomData,
        }
    }

    /// Its size in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The value's 8-byte words (a trailing part shorter than 8 bytes left out): every device
    /// address it holds, as parameter structs keep addresses 8-byte aligned.
    pub fn words(&self) -> impl Iterator<Item = u64> + '_ {
        (0..self.size / 8).map(|i| {
            // SAFETY: bytes 8i..8i+8 lie inside the `size` initialised bytes of a live `Param`.
            unsafe { self.ptr.add(8 * i).cast::<u64>().read_unaligned() }
        })
    }

    /// The value as parameter type `T`.
    ///
    /// # Safety
    /// `size_of::<T>() == self.size()`.
    pub unsafe fn read<T: Param>(&self) -> T {
        debug_assert_eq!(size_of::<T>(), self.size);
        // SAFETY: `ptr` points to a live `Param` value of `size` bytes (no padding, so all are
        // initialised), which the caller says is T's size.
        unsafe { T::read(self.ptr) }
    }
}
