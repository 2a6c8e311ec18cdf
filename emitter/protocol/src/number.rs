//! Numbers as edgepush writes them, in wire v1 and in the sinks' formats.

/// Formats a finite `v` as edgepush writes numbers, in wire v1 and in the
/// sinks' formats, and hands the text to `f`: whole numbers (below 2^53)
/// without a fraction, others as the shortest decimal that reads back to
/// the same f64. Formatted on the stack, nothing copied.
pub fn format_number<R>(v: f64, f: impl FnOnce(&str) -> R) -> R {
    if let Some(i) = whole(v) {
        return f(itoa::Buffer::new().format(i));
    }
    let mut short = ShortDecimal::default();
    match short.format(v) {
        Some(text) => f(text),
        None => f(zmij::Buffer::new().format_finite(v)),
    }
}

/// `vs` as a JSON array, each number written by [`format_number`]: what
/// wire v1 and CloudWatch's `Values` and `Counts` are made of.
pub fn json_numbers(out: &mut alloc::vec::Vec<u8>, vs: &[f64]) {
    out.push(b'[');
    for (i, v) in vs.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        format_number(*v, |text| out.extend_from_slice(text.as_bytes()));
    }
    out.push(b']');
}

/// The text of a number with at most four decimals (`12.25`, `-0.5`), the
/// common case, without a shortest-float search (128-bit multiplications,
/// slow in wasm).
struct ShortDecimal([u8; 40]);

impl Default for ShortDecimal {
    fn default() -> Self {
        ShortDecimal([0; 40])
    }
}

impl ShortDecimal {
    /// `v` with k <= 4 decimals if `n / 10^k` for a whole `n` is exactly
    /// `v`. Below 10^11 a double's spacing is under half of 10^-4, so no
    /// other decimal of at most four places reads back to `v`: this is the
    /// shortest text, as the float formatter would write it (tested).
    fn format(&mut self, v: f64) -> Option<&str> {
        const SCALES: [f64; 4] = [10.0, 100.0, 1_000.0, 10_000.0];
        if v.is_nan() || v.abs() >= 1e11 {
            return None;
        }
        let (k, n) = SCALES.iter().enumerate().find_map(|(k, &scale)| {
            let n = (v * scale) as i64;
            (n as f64 / scale == v).then_some((k + 1, n.unsigned_abs()))
        })?;
        let divisor = 10u64.pow(k as u32);
        let mut fraction = n % divisor;
        if fraction == 0 {
            // Whole: not this writer's to format.
            return None;
        }
        let mut len = 0;
        if v < 0.0 {
            self.0[0] = b'-';
            len = 1;
        }
        let mut integer = itoa::Buffer::new();
        let integer = integer.format(n / divisor).as_bytes();
        self.0[len..len + integer.len()].copy_from_slice(integer);
        len += integer.len();
        self.0[len] = b'.';
        len += 1;
        let mut digits = k;
        while fraction.is_multiple_of(10) {
            fraction /= 10;
            digits -= 1;
        }
        for i in (0..digits).rev() {
            self.0[len + i] = b'0' + (fraction % 10) as u8;
            fraction /= 10;
        }
        len += digits;
        core::str::from_utf8(&self.0[..len]).ok()
    }
}

/// Largest integer below which every integer is an exact f64 (2^53).
pub(crate) const EXACT_INTEGERS: f64 = 9_007_199_254_740_992.0;

/// `v` as an integer if it is a whole number below 2^53, which edgepush
/// writes without a fraction.
pub(crate) fn whole(v: f64) -> Option<i64> {
    // `f64::fract` needs std; a round trip through i64 tells the same.
    (v.abs() < EXACT_INTEGERS && (v as i64) as f64 == v).then_some(v as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::borrow::ToOwned;

    #[test]
    fn numbers_are_short_and_exact() {
        for (v, want) in [(3.0, "3"), (-0.5, "-0.5"), (0.001, "0.001"), (-42.0, "-42")] {
            assert_eq!(format_number(v, str::to_owned), want);
        }
        for v in [
            1e300,
            -2.5e-8,
            9_007_199_254_740_992.0,
            f64::MAX,
            f64::MIN_POSITIVE,
            0.1 + 0.2,
        ] {
            let text = format_number(v, str::to_owned);
            assert_eq!(text.parse::<f64>(), Ok(v), "{text:?}");
            assert!(text.len() <= 24, "{text:?}");
        }
    }

    /// The short-decimal path writes what the shortest-float formatter
    /// writes, for every number it takes.
    #[test]
    fn short_decimals_are_the_float_formatter_s_text() {
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut taken = 0;
        let mut check = |v: f64| {
            if let Some(text) = ShortDecimal::default().format(v) {
                taken += 1;
                assert_eq!(text, zmij::Buffer::new().format_finite(v), "{v:?}");
            }
        };
        for v in [
            0.5,
            -0.5,
            0.0001,
            -0.0001,
            1.25,
            99_999_999_999.999_9,
            0.3,
            0.1 + 0.2,
            1e-5,
        ] {
            check(v);
        }
        for _ in 0..200_000 {
            let r = next();
            // Decimals of 1 to 4 places over many magnitudes, and raw doubles.
            let places = 10f64.powi((r % 5) as i32);
            let whole =
                ((r >> 8) % 1_000_000_000_000_000) as f64 / 10f64.powi(((r >> 4) % 12) as i32);
            let sign = if r & 1 == 0 { 1.0 } else { -1.0 };
            check(sign * (whole * places).round() / places);
            check(f64::from_bits(next()));
        }
        assert!(taken > 100_000, "{taken}");
    }
}
