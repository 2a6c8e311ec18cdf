//! The validation rules shared by the emitter (at registration) and the
//! receiver (at ingest), from CloudWatch's and line protocol's limits.

use core::fmt;

use crate::limits::{
    MAX_ABS_VALUE, MAX_DIMENSION_NAME_LEN, MAX_DIMENSION_VALUE_LEN, MAX_NAME_LEN,
    MAX_STRING_FIELD_BYTES, RESERVED_NAMESPACE_PREFIX,
};

/// Why a name, dimension or value was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Invalid {
    /// The string is empty.
    Empty,
    /// The string has more characters than allowed.
    TooLong {
        /// The most characters allowed.
        max: usize,
    },
    /// The string holds a control character (newline, tab, NUL, ...), which
    /// line protocol cannot carry.
    ControlCharacter,
    /// A backslash stands before a space, comma, `=` or another backslash, or
    /// at the end: line-protocol stores read it as an escape (and InfluxDB
    /// versions disagree on `\\`), so the text could not be stored as is.
    Backslash,
    /// The name starts with `_`, which line-protocol stores reserve.
    LeadingUnderscore,
    /// The namespace starts with `AWS/`, which CloudWatch reserves.
    ReservedNamespace,
    /// The value is NaN or infinite.
    NotFinite,
    /// The value lies outside -2^360 ..= 2^360.
    OutOfRange,
    /// A count is zero or negative.
    NonPositiveCount,
    /// The string has more bytes than allowed.
    TooManyBytes {
        /// The most bytes allowed.
        max: usize,
    },
    /// A statistic set's minimum is larger than its maximum.
    MinAboveMax,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Invalid::Empty => f.write_str("is empty"),
            Invalid::TooLong { max } => write!(f, "is longer than {max} characters"),
            Invalid::ControlCharacter => f.write_str("contains a control character"),
            Invalid::Backslash => f.write_str(
                "has a backslash before a space, comma, '=' or backslash, or at its end, which line protocol cannot store",
            ),
            Invalid::LeadingUnderscore => f.write_str("starts with '_', which is reserved"),
            Invalid::ReservedNamespace => f.write_str("starts with 'AWS/', which is reserved"),
            Invalid::NotFinite => f.write_str("is NaN or infinite"),
            Invalid::OutOfRange => f.write_str("is outside -2^360..2^360"),
            Invalid::NonPositiveCount => f.write_str("is not a positive count"),
            Invalid::TooManyBytes { max } => write!(f, "is longer than {max} bytes"),
            Invalid::MinAboveMax => f.write_str("minimum is larger than maximum"),
        }
    }
}

fn text(s: &str, max: usize) -> Result<(), Invalid> {
    if s.is_empty() {
        return Err(Invalid::Empty);
    }
    // Byte length bounds the character count from above: only count when needed.
    if s.len() > max && s.chars().count() > max {
        return Err(Invalid::TooLong { max });
    }
    // Most names and values are printable ASCII without a backslash: one
    // pass over the bytes settles them.
    if s.bytes().all(|b| (b' '..=b'~').contains(&b) && b != b'\\') {
        return Ok(());
    }
    if s.chars().any(char::is_control) {
        return Err(Invalid::ControlCharacter);
    }
    let bytes = s.as_bytes();
    let stray_backslash = bytes.iter().enumerate().any(|(i, b)| {
        *b == b'\\'
            && bytes
                .get(i + 1)
                .is_none_or(|n| matches!(n, b' ' | b',' | b'=' | b'\\'))
    });
    if stray_backslash {
        return Err(Invalid::Backslash);
    }
    Ok(())
}

fn name(s: &str, max: usize) -> Result<(), Invalid> {
    text(s, max)?;
    if s.starts_with('_') {
        return Err(Invalid::LeadingUnderscore);
    }
    Ok(())
}

/// A CloudWatch namespace: 1-255 characters, not `AWS/...`.
pub fn namespace(s: &str) -> Result<(), Invalid> {
    name(s, MAX_NAME_LEN)?;
    if s.starts_with(RESERVED_NAMESPACE_PREFIX) {
        return Err(Invalid::ReservedNamespace);
    }
    Ok(())
}

/// A metric name: 1-255 characters, no control characters, no leading `_`.
pub fn metric_name(s: &str) -> Result<(), Invalid> {
    name(s, MAX_NAME_LEN)
}

/// A dimension name: 1-255 characters, no control characters, no leading `_`.
pub fn dimension_name(s: &str) -> Result<(), Invalid> {
    name(s, MAX_DIMENSION_NAME_LEN)
}

/// A dimension value: 1-1024 characters, no control characters.
pub fn dimension_value(s: &str) -> Result<(), Invalid> {
    text(s, MAX_DIMENSION_VALUE_LEN)
}

/// A metric value: finite and within CloudWatch's range.
pub fn value(v: f64) -> Result<(), Invalid> {
    if !v.is_finite() {
        Err(Invalid::NotFinite)
    } else if v.abs() > MAX_ABS_VALUE {
        Err(Invalid::OutOfRange)
    } else {
        Ok(())
    }
}

/// A count in a distribution or statistic set: a positive, valid value.
pub fn count(c: f64) -> Result<(), Invalid> {
    value(c)?;
    if c > 0.0 {
        Ok(())
    } else {
        Err(Invalid::NonPositiveCount)
    }
}

/// A statistic set `[count, sum, min, max]`: a valid count, valid sum and
/// extremes, and `min <= max`. On failure, the index of the part at fault
/// (`None` for the set as a whole) and the rule it broke.
pub fn statistic_set(set: [f64; 4]) -> Result<(), (Option<usize>, Invalid)> {
    let [count_, sum, min, max] = set;
    count(count_).map_err(|r| (Some(0), r))?;
    for (i, v) in [(1, sum), (2, min), (3, max)] {
        value(v).map_err(|r| (Some(i), r))?;
    }
    if min > max {
        return Err((None, Invalid::MinAboveMax));
    }
    Ok(())
}

/// A string field value (passed to line-protocol stores): at most
/// [`MAX_STRING_FIELD_BYTES`], no control character but tab (a newline
/// would end the line). Empty is allowed, and quotes and backslashes are
/// escaped when written.
pub fn string_field(s: &str) -> Result<(), Invalid> {
    if s.len() > MAX_STRING_FIELD_BYTES {
        return Err(Invalid::TooManyBytes {
            max: MAX_STRING_FIELD_BYTES,
        });
    }
    if s.chars().any(|c| c.is_control() && c != '\t') {
        return Err(Invalid::ControlCharacter);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;

    #[test]
    fn statistic_sets_table() {
        type Outcome = Result<(), (Option<usize>, Invalid)>;
        let cases: &[([f64; 4], Outcome)] = &[
            ([3.0, 6.0, 1.0, 3.0], Ok(())),
            ([1.0, 2.0, 2.0, 2.0], Ok(())),
            (
                [0.0, 0.0, 0.0, 0.0],
                Err((Some(0), Invalid::NonPositiveCount)),
            ),
            (
                [-1.0, 0.0, 0.0, 0.0],
                Err((Some(0), Invalid::NonPositiveCount)),
            ),
            (
                [f64::NAN, 0.0, 0.0, 0.0],
                Err((Some(0), Invalid::NotFinite)),
            ),
            (
                [1.0, f64::INFINITY, 0.0, 0.0],
                Err((Some(1), Invalid::NotFinite)),
            ),
            (
                [1.0, 0.0, f64::NAN, 0.0],
                Err((Some(2), Invalid::NotFinite)),
            ),
            ([1.0, 0.0, 0.0, 1e300], Err((Some(3), Invalid::OutOfRange))),
            ([1.0, 1.0, 3.0, 2.0], Err((None, Invalid::MinAboveMax))),
        ];
        for (set, want) in cases {
            assert_eq!(statistic_set(*set), *want, "{set:?}");
        }
    }

    #[test]
    fn names_table() {
        let long = "x".repeat(256);
        let just = "é".repeat(255); // 510 bytes, 255 characters
        let cases: &[(&str, Result<(), Invalid>)] = &[
            ("latency", Ok(())),
            ("Latency/p99 ms", Ok(())),
            (&just, Ok(())),
            ("", Err(Invalid::Empty)),
            (&long, Err(Invalid::TooLong { max: 255 })),
            ("a\nb", Err(Invalid::ControlCharacter)),
            ("a\tb", Err(Invalid::ControlCharacter)),
            ("_internal", Err(Invalid::LeadingUnderscore)),
            ("C:\\temp", Ok(())),
            ("a\\\\b", Err(Invalid::Backslash)),
            ("ends\\", Err(Invalid::Backslash)),
            ("a\\ b", Err(Invalid::Backslash)),
            ("a\\,b", Err(Invalid::Backslash)),
            ("a\\=b", Err(Invalid::Backslash)),
        ];
        for (input, want) in cases {
            assert_eq!(metric_name(input), *want, "{input:?}");
            assert_eq!(dimension_name(input), *want, "{input:?}");
        }
    }

    #[test]
    fn namespace_refuses_aws_prefix() {
        assert_eq!(namespace("AWS/Lambda"), Err(Invalid::ReservedNamespace));
        assert_eq!(namespace("MyApp/AWS"), Ok(()));
    }

    #[test]
    fn dimension_values_may_start_with_underscore_but_not_be_empty() {
        assert_eq!(dimension_value("_x"), Ok(()));
        assert_eq!(dimension_value(""), Err(Invalid::Empty));
        let v: String = "v".repeat(1024);
        assert_eq!(dimension_value(&v), Ok(()));
        let v: String = "v".repeat(1025);
        assert_eq!(dimension_value(&v), Err(Invalid::TooLong { max: 1024 }));
    }

    #[test]
    fn values_table() {
        assert_eq!(value(0.0), Ok(()));
        assert_eq!(value(-1e108), Ok(()));
        assert_eq!(value(MAX_ABS_VALUE), Ok(()));
        assert_eq!(value(1e109), Err(Invalid::OutOfRange));
        assert_eq!(value(f64::NAN), Err(Invalid::NotFinite));
        assert_eq!(value(f64::INFINITY), Err(Invalid::NotFinite));
        assert_eq!(value(f64::NEG_INFINITY), Err(Invalid::NotFinite));
        assert_eq!(count(1.0), Ok(()));
        assert_eq!(count(0.0), Err(Invalid::NonPositiveCount));
        assert_eq!(count(-2.0), Err(Invalid::NonPositiveCount));
    }

    #[test]
    fn string_fields_table() {
        let max: String = "s".repeat(MAX_STRING_FIELD_BYTES);
        let over: String = "s".repeat(MAX_STRING_FIELD_BYTES + 1);
        let cases: &[(&str, Result<(), Invalid>)] = &[
            ("", Ok(())),
            ("ok", Ok(())),
            ("say \"hi\" C:\\temp\\", Ok(())),
            ("a\tb", Ok(())),
            (&max, Ok(())),
            (
                &over,
                Err(Invalid::TooManyBytes {
                    max: MAX_STRING_FIELD_BYTES,
                }),
            ),
            ("a\nb", Err(Invalid::ControlCharacter)),
            ("a\rb", Err(Invalid::ControlCharacter)),
            ("a\u{0}b", Err(Invalid::ControlCharacter)),
        ];
        for (s, want) in cases {
            assert_eq!(string_field(s), *want, "{s:?}");
        }
    }
}
