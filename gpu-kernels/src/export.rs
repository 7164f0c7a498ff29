//! `kernel_entries!`: one generic kernel body, one exported PTX symbol per element type.
//!
//! ```ignore
//! kernel_entries! {
//!     rmsnorm(x: *const E, out: *mut E, rows: u32) => rmsnorm_body;
//!     rmsnorm_f32 = f32, rmsnorm_f16 = F16, rmsnorm_bf16 = BF16;
//! }
//! ```
//! expands on nvptx64 to `extern "ptx-kernel" fn rmsnorm_f16(x: *const F16, ...)` etc., each
//! calling `rmsnorm_body::<F16>(...)`. `E` in the signature names the element type;
//! `sym = [F16, 128]` passes const arguments after it (`decode_mma::<F16, 128>`);
//! `kernel_entries! { argmax(..); argmax_f32 }` exports a body without type parameters. On the
//! host it makes the same symbols as plain `pub unsafe fn`s (`norm::rmsnorm_f16`), and
//! registers each in the emulator's kernel table (`emu::find("rmsnorm_f16")`), so the host's
//! CUDA launchers run them under the emulator by the names and arguments they give the driver.

/// Generates the exported `extern "ptx-kernel"` entry points of a generic kernel body (and
/// their host twins). `sym = T` instantiates `body::<T>` with `E = T` in the signature;
/// `sym = [T, C...]` instantiates `body::<T, C...>` (const arguments `C`: a literal or a
/// `{ block }`) with `E = T`; `sym = S => D` instantiates `body::<S, D>` with `A = S`, `B = D`
/// (the casts).
#[macro_export]
macro_rules! kernel_entries {
    // `own_sync`: the body calls `grid_dependency_sync` itself (before its first access to memory
    // another grid may write), so it can issue loads of memory no neighbouring grid writes first.
    (own_sync $($rest:tt)+) => { $crate::kernel_entries!(@arms own_sync $($rest)+); };
    // Before the `ty` arms: their parser would take `[T, C]` for an array type and fail.
    (@arms $sync:ident $body:ident $args:tt; $($sym:ident = [$ty:ty $(, $c:tt)*]),+ $(,)?) => {
        $(
            $crate::kernel_entries!(@one $sync $body $args $sym [$ty $(, $c)*] { type E = $ty; });
            #[cfg(not(target_arch = "nvptx64"))]
            pub use self::$sym::$sym;
        )+
    };
    (@arms $sync:ident $body:ident $args:tt; $($sym:ident = $src:ty => $dst:ty),+ $(,)?) => {
        $(
            $crate::kernel_entries!(@one $sync $body $args $sym [$src, $dst] { type A = $src; type B = $dst; });
            #[cfg(not(target_arch = "nvptx64"))]
            pub use self::$sym::$sym;
        )+
    };
    (@arms $sync:ident $body:ident $args:tt; $($sym:ident = $ty:ty),+ $(,)?) => {
        $(
            $crate::kernel_entries!(@one $sync $body $args $sym [$ty] { type E = $ty; });
            #[cfg(not(target_arch = "nvptx64"))]
            pub use self::$sym::$sym;
        )+
    };
    // A body without type parameters, one symbol (`argmax_f32`); the host twin stays at
    // `module::sym::sym` (the symbol may be the body's own name).
    (@arms $sync:ident $body:ident $args:tt; $sym:ident $(,)?) => {
        $crate::kernel_entries!(@one $sync $body $args $sym [] {});
    };
    // Before any memory access: the previous grid may still be running under a programmatic
    // dependent launch.
    (@sync entry_sync) => { $crate::primitives::grid_dependency_sync(); };
    (@sync own_sync) => {};
    (@one $sync:ident $body:ident ( $($arg:ident : $t:ty),* $(,)? ) $sym:ident [$($gen:tt)*] { $($alias:item)* }) => {
        #[cfg(target_arch = "nvptx64")]
        #[allow(non_snake_case, dead_code)]
        mod $sym {
            #[allow(unused_imports)]
            use super::*;
            $($alias)*
            /// Exported entry; see the generic body for the contract.
            ///
            /// # Safety
            /// As the generic body: pointers valid for the sizes given, launch shape as documented.
            #[unsafe(no_mangle)]
            pub unsafe extern "ptx-kernel" fn $sym($($arg: $t),*) {
                $crate::kernel_entries!(@sync $sync);
                // SAFETY: the host launcher upholds the body's contract.
                unsafe { super::$body::<$($gen)*>($($arg),*) }
            }
        }

        #[cfg(not(target_arch = "nvptx64"))]
        #[allow(non_snake_case, dead_code)]
        mod $sym {
            #[allow(unused_imports)]
            use super::*;
            $($alias)*
            /// Host twin of the PTX entry of the same name, for `emu::launch`; see the generic
            /// body for the contract.
            ///
            /// # Safety
            /// As the generic body: pointers valid for the sizes given, launched under the
            /// emulator with the documented launch shape.
            #[allow(clippy::too_many_arguments)] // a kernel's signature, as in the PTX
            pub unsafe fn $sym($($arg: $t),*) {
                // SAFETY: the caller upholds the body's contract.
                unsafe { super::$body::<$($gen)*>($($arg),*) }
            }

            #[$crate::emu::linkme::distributed_slice($crate::emu::KERNELS)]
            #[linkme(crate = $crate::emu::linkme)]
            static ENTRY: $crate::emu::Kernel = $crate::emu::Kernel {
                name: stringify!($sym),
                params: &[$(core::mem::size_of::<$t>()),*],
                run,
            };

            /// Reads the launch arguments as this kernel's parameters and runs it under the
            /// emulator (the registry's `Kernel::run`).
            ///
            /// # Safety
            /// As `Kernel::launch`, which has checked each argument's size.
            unsafe fn run(
                shape: $crate::launch_shape::LaunchShape,
                args: &[$crate::emu::Arg<'_>],
            ) -> Result<(), $crate::emu::EmuError> {
                let mut next = args.iter();
                // SAFETY: Kernel::launch checked the count and that each argument has its
                // parameter's size.
                let all = $crate::emu::Shared(unsafe {
                    ($( next.next().expect("argument count checked").read::<$t>(), )*)
                });
                $crate::emu::launch_shape(stringify!($sym), shape, move || {
                    let ($($arg,)*) = all.get();
                    // SAFETY: the launcher upholds the body's contract (Kernel::launch).
                    unsafe { $sym($($arg),*) }
                })
            }
        }
    };
    // Every other entry list: the entry waits for the previous grid before the body runs.
    ($body:ident $($rest:tt)+) => { $crate::kernel_entries!(@arms entry_sync $body $($rest)+); };
}
