//! The host twins of the f16/bf16 conversions are bit-exact: every f16 value, and f32 values
//! densely around every f16/bf16 rounding boundary, against the `half` crate; and the Q8_0
//! quantizer rounds halves away from zero, as ggml's `roundf`.

use half::{bf16, f16};
use nano_infer_kernels::primitives::softfloat::ftz;
use nano_infer_kernels::primitives::{bf16_to_f32, f16_to_f32, f32_to_bf16, f32_to_f16};
use nano_infer_kernels::quantize::round_half_away;

fn same(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

#[test]
fn f16_to_f32_is_exact_for_every_value() {
    for h in 0..=u16::MAX {
        let want = f16::from_bits(h).to_f32();
        assert!(
            same(f16_to_f32(h), want),
            "{h:#06x}: {} vs {want}",
            f16_to_f32(h)
        );
    }
}

/// f32 values at, next to and halfway between the representable values of a 16-bit format.
fn boundary_values(decode: impl Fn(u16) -> f32) -> Vec<f32> {
    let mut v = vec![
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        f32::MAX,
        f32::MIN,
    ];
    // The f16 overflow boundary: 65520 is halfway between 65504 (max) and the next step (inf).
    v.extend([65504.0f32, 65519.996, 65520.0, 65520.004, -65520.0, 65536.0]);
    for h in 0..=u16::MAX {
        let (a, b) = (decode(h), decode(h.wrapping_add(1)));
        if !a.is_finite() || !b.is_finite() || a.is_sign_negative() != b.is_sign_negative() {
            continue;
        }
        let mid = ((a as f64 + b as f64) / 2.0) as f32; // exact: one more bit than f32 needs
        for x in [a, mid, b] {
            let bits = x.to_bits();
            v.extend([
                x,
                f32::from_bits(bits.wrapping_sub(1)),
                f32::from_bits(bits + 1),
            ]);
        }
    }
    // A coarse sweep of all f32 bit patterns (subnormals, huge values, NaN payloads).
    v.extend((0..=u32::MAX).step_by(65_537).map(f32::from_bits));
    v
}

#[test]
fn f32_to_f16_rounds_to_nearest_even_like_half() {
    for x in boundary_values(|h| f16::from_bits(h).to_f32()) {
        let (got, want) = (f32_to_f16(x), f16::from_f32(x).to_bits());
        let ok = got == want || (f16::from_bits(got).is_nan() && f16::from_bits(want).is_nan());
        assert!(
            ok,
            "{x:e} ({:#010x}): got {got:#06x}, want {want:#06x}",
            x.to_bits()
        );
    }
}

#[test]
fn f32_to_bf16_rounds_to_nearest_even_like_half() {
    for x in boundary_values(|h| bf16::from_bits(h).to_f32()) {
        let (got, want) = (f32_to_bf16(x), bf16::from_f32(x).to_bits());
        let ok = got == want || (bf16::from_bits(got).is_nan() && bf16::from_bits(want).is_nan());
        assert!(
            ok,
            "{x:e} ({:#010x}): got {got:#06x}, want {want:#06x}",
            x.to_bits()
        );
        assert!(same(bf16_to_f32(want), bf16::from_bits(want).to_f32()));
    }
}

#[test]
fn ftz_flushes_only_subnormals() {
    assert_eq!(ftz(1e-40).to_bits(), 0);
    assert_eq!(ftz(-1e-40).to_bits(), 0x8000_0000);
    assert_eq!(ftz(f32::MIN_POSITIVE), f32::MIN_POSITIVE);
    assert_eq!(ftz(-3.5), -3.5);
}

#[test]
fn quantizer_rounds_halves_away_from_zero() {
    for (v, want) in [
        (0.5, 1),
        (-0.5, -1),
        (1.49, 1),
        (-2.5, -3),
        (126.6, 127),
        (0.0, 0),
    ] {
        assert_eq!(round_half_away(v), want, "{v}");
    }
    // The largest f32 below 0.5 stays 0 (adding 0.5 first would round it up to 1).
    assert_eq!(round_half_away(0.499_999_97), 0);
}
