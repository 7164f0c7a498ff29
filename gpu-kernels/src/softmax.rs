//! Row softmax with a scale and an optional causal mask.
//!
//! Variants: `softmax_{f32,f16,bf16}`; see [`SoftmaxParams`] for the mask rule. Numerically
//! stable (the row maximum is subtracted) and computed in the log2 domain with `ex2`.
//! Launch: as RMSNorm (`crate::norm`): `block.x` threads per row with about `CACHED_CHUNKS`
//! chunks each, `block.y` rows per block only for one-warp rows, dynamic shared memory
//! `REDUCE_SMEM_BYTES`. Rows of up to `CACHED_CHUNKS * 8 * block.x` elements stay in registers
//! between the passes.
//! Test: `cargo test --release --test gpu_vs_cpu -- --include-ignored softmax`;
//! bench: `gpu_bench softmax`.

use crate::elem::{BF16, CHUNK, Elem, F16, aligned16, max_of};
use crate::params::SoftmaxParams;
use crate::primitives::{block_dim_x, dyn_smem_base, exp2_approx, rcp_approx, thread_idx_x};
use crate::reduce::{row_max, row_of_thread, row_sum};
use crate::unroll::CACHED_CHUNKS;
use crate::{kernel_entries, unroll_cached};

/// Softmax of each row of `x` into `out` (which may alias `x`).
///
/// # Safety
/// `x` and `out` hold `p.rows * p.cols` elements; launched as the module doc says.
#[inline(always)]
pub unsafe fn softmax<E: Elem>(x: *const E, out: *mut E, p: SoftmaxParams) {
    let row = row_of_thread();
    if row >= p.rows as usize {
        return; // only in one-warp-per-row blocks, which have no barrier
    }
    let cols = p.cols as usize;
    let (t, bd) = (thread_idx_x() as usize, block_dim_x() as usize);
    let base = row * cols;
    let scratch = dyn_smem_base();
    // Columns at or past `limit` are masked.
    let limit = if p.causal != 0 {
        row % p.q_len as usize + cols - p.q_len as usize + 1
    } else {
        cols
    };
    let scale = p.scale * core::f32::consts::LOG2_E;
    let vector = cols.is_multiple_of(CHUNK) && aligned16(x) && aligned16(out);
    let chunks = cols / CHUNK;
    let masked = |i: usize, v: f32| {
        if i < limit {
            v * scale
        } else {
            f32::NEG_INFINITY
        }
    };

    // SAFETY (whole body): indices stay below rows*cols; chunked accesses only on aligned rows.
    unsafe {
        let load = |c: usize| -> [f32; CHUNK] {
            let mut v = E::load_chunk(x, base + c * CHUNK);
            for k in 0..CHUNK {
                v[k] = masked(c * CHUNK + k, v[k]);
            }
            v
        };
        // Pass 1: row maximum (scaled, log2 domain).
        let mut cache = [[f32::NEG_INFINITY; CHUNK]; CACHED_CHUNKS];
        let mut m = f32::NEG_INFINITY;
        if vector {
            unroll_cached!(k => {
                let c = t + k * bd;
                if c < chunks {
                    cache[k] = load(c);
                    m = m.max(max_of(&cache[k]));
                }
            });
            let mut c = t + CACHED_CHUNKS * bd;
            while c < chunks {
                m = m.max(max_of(&load(c)));
                c += bd;
            }
        } else {
            let mut i = t;
            while i < cols {
                m = m.max(masked(i, (*x.add(base + i)).load()));
                i += bd;
            }
        }
        let m = row_max(m, scratch);

        // Pass 2: sum of exponentials (cached chunks keep theirs for pass 3).
        let mut s = 0.0f32;
        if vector {
            unroll_cached!(k => {
                if t + k * bd < chunks {
                    for j in 0..CHUNK {
                        cache[k][j] = exp2_approx(cache[k][j] - m);
                        s += cache[k][j];
                    }
                }
            });
            let mut c = t + CACHED_CHUNKS * bd;
            while c < chunks {
                let v = load(c);
                for j in 0..CHUNK {
                    s += exp2_approx(v[j] - m);
                }
                c += bd;
            }
        } else {
            let mut i = t;
            while i < cols {
                s += exp2_approx(masked(i, (*x.add(base + i)).load()) - m);
                i += bd;
            }
        }
        let inv = rcp_approx(row_sum(s, scratch));

        // Pass 3: normalise and store.
        if vector {
            unroll_cached!(k => {
                let c = t + k * bd;
                if c < chunks {
                    let mut o = cache[k];
                    for j in 0..CHUNK {
                        o[j] *= inv;
                    }
                    E::store_chunk(out, base + c * CHUNK, o);
                }
            });
            let mut c = t + CACHED_CHUNKS * bd;
            while c < chunks {
                let mut o = load(c);
                for j in 0..CHUNK {
                    o[j] = exp2_approx(o[j] - m) * inv;
                }
                E::store_chunk(out, base + c * CHUNK, o);
                c += bd;
            }
        } else {
            let mut i = t;
            while i < cols {
                let v = masked(i, (*x.add(base + i)).load());
                *out.add(base + i) = E::store(exp2_approx(v - m) * inv);
                i += bd;
            }
        }
    }
}

kernel_entries! {
    softmax(x: *const E, out: *mut E, p: SoftmaxParams);
    softmax_f32 = f32, softmax_f16 = F16, softmax_bf16 = BF16,
}
