//! `unroll2!` / `unroll4!` / `unroll8!` / `unroll_cached!`: repeat a block with its index bound to a literal, so per-thread
//! arrays are indexed by constants and stay in registers (LLVM's unroller gives up on these
//! bodies and would otherwise put the arrays in local memory).

pub use crate::params::CACHED_CHUNKS;

/// `unroll4!(k => { ... })` runs the block for `k = 0, 1, 2, 3`, each copy with `k` a literal.
#[macro_export]
macro_rules! unroll4 {
    ($k:ident => $body:block) => {{
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

/// `unroll2!(k => { ... })` runs the block for `k = 0, 1`, each copy with `k` a literal.
#[macro_export]
macro_rules! unroll2 {
    ($k:ident => $body:block) => {{
        {
            let $k: usize = 0;
            $body
        }
        {
            let $k: usize = 1;
            $body
        }
    }};
}

/// `unroll8!(k => { ... })` runs the block for `k = 0..8`, each copy with `k` a literal (guard
/// the body with `k < N` for a shorter constant `N`: the dead copies fold away).
#[macro_export]
macro_rules! unroll8 {
    ($k:ident => $body:block) => {{
        $crate::unroll4!(k4 => {
            let $k: usize = k4;
            $body
        });
        $crate::unroll4!(k4 => {
            let $k: usize = 4 + k4;
            $body
        });
    }};
}

/// `unroll_cached!(k => { ... })` runs the block once per register-cached chunk
/// (`CACHED_CHUNKS` times).
#[macro_export]
macro_rules! unroll_cached {
    ($k:ident => $body:block) => {{
        const _: () = assert!($crate::unroll::CACHED_CHUNKS == 4);
        $crate::unroll4!($k => $body)
    }};
}

/// `unroll16!(k => { ... })` runs the block for `k = 0..16`, each copy with `k` a constant.
#[macro_export]
macro_rules! unroll16 {
    ($k:ident => $body:block) => {{
        $crate::unroll4!(hi => {
            $crate::unroll4!(lo => {
                let $k: usize = hi * 4 + lo;
                $body
            })
        })
    }};
}
