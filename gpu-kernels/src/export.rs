//! `kernel_entries!`: one generic kernel body, one exported PTX symbol per element type.
//!
//! ```ignore
//! kernel_entries! {
//!     rmsnorm(x: *const E, out: *mut E, rows: u32) => rmsnorm_body;
//!     rmsnorm_f32 = f32, rmsnorm_f16 = F16, rmsnorm_bf16 = BF16;
//! }
//! ```
//! expands (on nvptx64 only) to `extern "ptx-kernel" fn rmsnorm_f16(x: *const F16, ...)` etc.,
//! each calling `rmsnorm_body::<F16>(...)`. `E` in the signature names the element type.

/// Generates the exported `extern "ptx-kernel"` entry points of a generic kernel body.
#[macro_export]
macro_rules! kernel_entries {
    ($body:ident $args:tt; $($sym:ident = $ty:ty),+ $(,)?) => {
        $( $crate::kernel_entries!(@one $body $args $sym $ty); )+
    };
    (@one $body:ident ( $($arg:ident : $t:ty),* $(,)? ) $sym:ident $ty:ty) => {
        #[cfg(target_arch = "nvptx64")]
        #[allow(non_snake_case)]
        mod $sym {
            #[allow(unused_imports)]
            use super::*;
            #[allow(dead_code)]
            type E = $ty;
            /// Exported entry; see the generic body for the contract.
            ///
            /// # Safety
            /// As the generic body: pointers valid for the sizes given, launch shape as documented.
            #[unsafe(no_mangle)]
            pub unsafe extern "ptx-kernel" fn $sym($($arg: $t),*) {
                // SAFETY: the host launcher upholds the body's contract.
                unsafe { super::$body::<$ty>($($arg),*) }
            }
        }
    };
}
