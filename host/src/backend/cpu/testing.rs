//! Helpers for tests that compare a backend against [`super::reference`]: one tolerance rule
//! (`|got - want| <= atol + rtol * |want|`, as in llm.c's `validate_result`) and a tiny seeded
//! generator so that test inputs are reproducible without a `rand` dependency.
//!
//! These panic on purpose (they are assertions); nothing on a user-data path calls them.

/// Asserts `|got[i] - want[i]| <= atol + rtol * |want[i]|` for every `i` (NaN never passes).
///
/// On failure the message names the first and the worst mismatch (index, got, want) and how many
/// elements failed, which says at once whether a tail, one row or everything is off.
///
/// # Panics
/// If the lengths differ or any element is out of tolerance.
#[track_caller]
pub fn assert_close(name: &str, got: &[f32], want: &[f32], atol: f32, rtol: f32) {
    assert_eq!(got.len(), want.len(), "{name}: length mismatch");
    let mut first = None;
    let mut worst: Option<(usize, f32)> = None;
    let mut failed = 0usize;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g - w).abs();
        let ok = err <= atol + rtol * w.abs();
        if !ok {
            failed += 1;
            first.get_or_insert(i);
            // A NaN error is the worst there is.
            let excess = if err.is_nan() { f32::INFINITY } else { err };
            if worst.is_none_or(|(_, e)| excess > e) {
                worst = Some((i, excess));
            }
        }
    }
    if let (Some(f), Some((w, _))) = (first, worst) {
        panic!(
            "{name}: {failed}/{} elements out of tolerance (atol {atol:e}, rtol {rtol:e}); \
             first at [{f}]: got {} want {}; worst at [{w}]: got {} want {} (|diff| {:e})",
            got.len(),
            got[f],
            want[f],
            got[w],
            want[w],
            (got[w] - want[w]).abs(),
        );
    }
}

/// A seeded 64-bit linear congruential generator (Knuth's MMIX constants): plenty for test data.
#[derive(Clone, Debug)]
pub struct Lcg(u64);

impl Lcg {
    /// A generator whose sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        Lcg(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x2545_F491_4F6C_DD1D)
    }

    /// The next value, uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        // The top 24 bits make an exactly representable f32 in [0, 1).
        let unit = (self.0 >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * unit
    }

    /// `n` values uniform in `[lo, hi)`.
    pub fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
}
