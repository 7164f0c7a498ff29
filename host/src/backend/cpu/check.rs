//! Shape checks shared by [`super::reference`] and [`super::simd`].
//!
//! Both modules call the same function first, so one bad call returns one error whichever path
//! runs it, and the kernels after a check may rely on the sizes it established (every length a
//! whole number of rows, every product free of overflow).

use crate::{Error, Result};

/// `ShapeMismatch` for a buffer `what` that should hold `expected` elements.
fn mismatch(op: &'static str, what: &str, expected: usize, got: usize) -> Error {
    Error::ShapeMismatch {
        op,
        expected: format!("{what} of {expected} elements"),
        got: format!("{got} elements"),
    }
}

/// Checks `got == expected` for the buffer named `what`.
pub(crate) fn len(op: &'static str, what: &str, expected: usize, got: usize) -> Result<()> {
    if got == expected {
        Ok(())
    } else {
        Err(mismatch(op, what, expected, got))
    }
}

/// The number of rows of length `row` in a buffer of `total` elements; `row` must be non-zero
/// and divide `total`.
pub(crate) fn rows(op: &'static str, what: &str, total: usize, row: usize) -> Result<usize> {
    if row == 0 {
        return Err(Error::invalid(
            op,
            format!("{what}: row length must be > 0"),
        ));
    }
    if !total.is_multiple_of(row) {
        return Err(Error::ShapeMismatch {
            op,
            expected: format!("{what}: a multiple of the row length {row}"),
            got: format!("{total} elements"),
        });
    }
    Ok(total / row)
}

/// The product of `dims`, or `InvalidArgument` if it overflows `usize`.
pub(crate) fn product(op: &'static str, dims: &[usize]) -> Result<usize> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| Error::invalid(op, format!("shape {dims:?} overflows usize")))
}

/// `eps` of a norm must be finite and non-negative.
fn eps(op: &'static str, eps: f32) -> Result<()> {
    if eps.is_finite() && eps >= 0.0 {
        Ok(())
    } else {
        Err(Error::invalid(
            op,
            format!("eps must be finite and >= 0, got {eps}"),
        ))
    }
}

/// `rms_norm`: `x` and `out` are whole rows of `weight.len()`.
pub(crate) fn rms_norm(x: usize, weight: usize, e: f32, out: usize) -> Result<()> {
    const OP: &str = "rms_norm";
    eps(OP, e)?;
    rows(OP, "x", x, weight)?;
    len(OP, "out", x, out)
}

/// `add_rms_norm`: `rms_norm` plus `residual` and `sum_out` of `x`'s length.
pub(crate) fn add_rms_norm(
    x: usize,
    residual: usize,
    weight: usize,
    e: f32,
    sum_out: usize,
    norm_out: usize,
) -> Result<()> {
    const OP: &str = "add_rms_norm";
    eps(OP, e)?;
    rows(OP, "x", x, weight)?;
    len(OP, "residual", x, residual)?;
    len(OP, "sum_out", x, sum_out)?;
    len(OP, "norm_out", x, norm_out)
}

/// Elementwise ops: every buffer has the first one's length.
pub(crate) fn same(op: &'static str, first: usize, others: &[(&str, usize)]) -> Result<()> {
    others
        .iter()
        .try_for_each(|&(what, got)| len(op, what, first, got))
}

/// `softmax`: rows of `k_len`, a whole number of `q_len` blocks; causal needs `k_len >= q_len`.
pub(crate) fn softmax(
    x: usize,
    q_len: usize,
    k_len: usize,
    causal: bool,
    out: usize,
) -> Result<()> {
    const OP: &str = "softmax";
    let rows = rows(OP, "x", x, k_len)?;
    if q_len == 0 {
        return Err(Error::invalid(OP, "q_len must be > 0"));
    }
    if !rows.is_multiple_of(q_len) {
        return Err(Error::ShapeMismatch {
            op: OP,
            expected: format!("a multiple of q_len = {q_len} rows"),
            got: format!("{rows} rows"),
        });
    }
    if causal && k_len < q_len {
        return Err(Error::invalid(
            OP,
            format!("causal softmax needs k_len >= q_len, got k_len {k_len} < q_len {q_len}"),
        ));
    }
    len(OP, "out", x, out)
}

/// `rope`: `x` is `[batch, seq, heads, head_dim]`, the tables `[max_pos, head_dim/2]` with every
/// position `pos_offset + s` inside them.
#[allow(clippy::too_many_arguments)]
pub(crate) fn rope(
    x: usize,
    seq: usize,
    heads: usize,
    head_dim: usize,
    cos: usize,
    sin: usize,
    pos_offset: usize,
    out: usize,
) -> Result<()> {
    const OP: &str = "rope";
    if head_dim == 0 || !head_dim.is_multiple_of(2) {
        return Err(Error::invalid(
            OP,
            format!("head_dim must be even and > 0, got {head_dim}"),
        ));
    }
    let token = product(OP, &[seq, heads, head_dim])?;
    rows(OP, "x (batch of seq*heads*head_dim)", x, token)?;
    len(OP, "out", x, out)?;
    len(OP, "sin (same as cos)", cos, sin)?;
    let max_pos = rows(OP, "cos table", cos, head_dim / 2)?;
    let needed = pos_offset
        .checked_add(seq)
        .ok_or_else(|| Error::invalid(OP, "pos_offset + seq overflows usize"))?;
    if needed > max_pos {
        return Err(Error::ContextOverflow {
            needed,
            capacity: max_pos,
        });
    }
    Ok(())
}

/// `matmul`: `a` is `[m, k]`, `b` is `[k, n]` (or `[n, k]` when transposed), `out` is `[m, n]`.
pub(crate) fn matmul(a: usize, b: usize, m: usize, k: usize, n: usize, out: usize) -> Result<()> {
    const OP: &str = "matmul";
    len(OP, "a [m, k]", product(OP, &[m, k])?, a)?;
    len(OP, "b [k, n]", product(OP, &[k, n])?, b)?;
    len(OP, "out [m, n]", product(OP, &[m, n])?, out)
}

/// `attention`: q/out `[q_len, num_heads, head_dim]`, k/v `[k_len, num_kv_heads, head_dim]`,
/// `num_heads` a multiple of `num_kv_heads`, at least one key, causal needs `k_len >= q_len`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attention(
    q: usize,
    k: usize,
    v: usize,
    q_len: usize,
    k_len: usize,
    num_heads: usize,
    num_kv_heads: usize,
    head_dim: usize,
    causal: bool,
    out: usize,
) -> Result<()> {
    const OP: &str = "attention";
    if num_heads == 0 || num_kv_heads == 0 || head_dim == 0 {
        return Err(Error::invalid(
            OP,
            "num_heads, num_kv_heads and head_dim must be > 0",
        ));
    }
    if !num_heads.is_multiple_of(num_kv_heads) {
        return Err(Error::invalid(
            OP,
            format!("num_heads {num_heads} is not a multiple of num_kv_heads {num_kv_heads}"),
        ));
    }
    if q_len > 0 && k_len == 0 {
        return Err(Error::invalid(
            OP,
            "k_len must be > 0: a query needs a key to attend to",
        ));
    }
    if causal && k_len < q_len {
        return Err(Error::invalid(
            OP,
            format!("causal attention needs k_len >= q_len, got k_len {k_len} < q_len {q_len}"),
        ));
    }
    let q_want = product(OP, &[q_len, num_heads, head_dim])?;
    let kv_want = product(OP, &[k_len, num_kv_heads, head_dim])?;
    len(OP, "q [q_len, num_heads, head_dim]", q_want, q)?;
    len(OP, "k [k_len, num_kv_heads, head_dim]", kv_want, k)?;
    len(OP, "v [k_len, num_kv_heads, head_dim]", kv_want, v)?;
    len(OP, "out [q_len, num_heads, head_dim]", q_want, out)
}

/// How many keys query `i` sees: all of them, or under a causal mask those `j <= i + k_len -
/// q_len` (the queries are the last `q_len` of the `k_len` positions). Needs `k_len >= q_len`
/// when causal, which the checks above guarantee.
pub(crate) fn visible_keys(i: usize, q_len: usize, k_len: usize, causal: bool) -> usize {
    if causal {
        (i + 1 + (k_len - q_len)).min(k_len)
    } else {
        k_len
    }
}
