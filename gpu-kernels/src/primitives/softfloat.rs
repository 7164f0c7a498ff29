//! Bit-exact host versions of the PTX conversions and flush-to-zero rules (host builds only).
//!
//! Written out with integer operations rather than taken from a crate so that the kernel crate
//! keeps no dependencies (its nested PTX build resolves nothing); `host/tests/emu_primitives.rs`
//! checks every f16 value and a dense sweep of f32 values against the `half` crate.

/// IEEE f16 bits → f32, exact (`cvt.f32.f16`). NaNs stay NaN with the quiet bit set.
pub fn f16_bits_to_f32(h: u16) -> f32 {
    let h = h as u32;
    let sign = (h & 0x8000) << 16;
    let exp = (h >> 10) & 0x1f;
    let man = h & 0x3ff;
    let bits = match (exp, man) {
        (0, 0) => sign,
        // Subnormal: man · 2^-24, exact in f32.
        (0, _) => {
            let v = man as f32 * f32::from_bits(0x3380_0000); // 2^-24
            sign | v.to_bits()
        }
        (0x1f, 0) => sign | 0x7f80_0000,
        (0x1f, _) => sign | 0x7fc0_0000 | (man << 13),
        _ => sign | ((exp + 112) << 23) | (man << 13),
    };
    f32::from_bits(bits)
}

/// f32 → IEEE f16 bits, round to nearest even (`cvt.rn.f16.f32`); overflow gives ±inf.
pub fn f32_to_f16_bits(v: f32) -> u16 {
    let x = v.to_bits();
    let sign = ((x >> 16) & 0x8000) as u16;
    let exp = ((x >> 23) & 0xff) as i32;
    let man = x & 0x7f_ffff;
    if exp == 0xff {
        return if man == 0 {
            sign | 0x7c00
        } else {
            sign | 0x7e00 | (man >> 13) as u16
        };
    }
    let e = exp - 127 + 15; // biased f16 exponent
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        // Subnormal (or zero) in f16: below 2^-25 everything rounds to zero.
        if e < -10 {
            return sign;
        }
        let m = man | 0x80_0000;
        let shift = (14 - e) as u32; // 14..=24
        let mut r = m >> shift;
        let rem = m & ((1 << shift) - 1);
        let half = 1 << (shift - 1);
        if rem > half || (rem == half && r & 1 == 1) {
            r += 1; // may carry into the smallest normal: still the right encoding
        }
        return sign | r as u16;
    }
    let mut r = ((e as u32) << 10) | (man >> 13);
    let rem = man & 0x1fff;
    if rem > 0x1000 || (rem == 0x1000 && r & 1 == 1) {
        r += 1; // may carry into the exponent, up to inf: the right encoding
    }
    sign | r as u16
}

/// f32 → bf16 bits, round to nearest even (`cvt.rn.bf16.f32`). NaNs stay NaN (quiet).
pub fn f32_to_bf16_bits(v: f32) -> u16 {
    let x = v.to_bits();
    if v.is_nan() {
        return ((x >> 16) | 0x40) as u16;
    }
    let round = 0x7fff + ((x >> 16) & 1);
    (x.wrapping_add(round) >> 16) as u16
}

/// `.ftz`: a subnormal becomes a zero of the same sign.
pub fn ftz(v: f32) -> f32 {
    if v.is_subnormal() {
        f32::from_bits(v.to_bits() & 0x8000_0000)
    } else {
        v
    }
}
