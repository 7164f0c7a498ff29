//! `unroll_cached!`: repeats a block once per register-cached chunk with the index bound to a
//! literal, so per-thread arrays are indexed by constants and stay in registers (LLVM's unroller
//! gives up on these bodies and would otherwise put the arrays in local memory).

pub use crate::params::CACHED_CHUNKS;

/// `unroll_cached!(k => { ... })` runs the block for `k = 0, 1, 2, 3` (`CACHED_CHUNKS` times).
#[macro_export]
macro_rules! unroll_cached {
    ($k:ident => $body:block) => {{
        const _: () = assert!($crate::unroll::CACHED_CHUNKS == 4);
        {
            let $k: usize = 0;
            $body
        }
        {
            let $k: usize = 1;
            $body
        }
        {
            let $k: usize = 2;
            $body
        }
        {
            let $k: usize = 3;
            $body
        }
    }};
}
