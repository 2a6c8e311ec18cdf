//! The emitter's error type.

use alloc::string::String;
use core::fmt;

pub use edgepush_protocol::validate::Invalid;

/// What was being checked when a rule was broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Field {
    /// The namespace.
    Namespace,
    /// A metric name.
    MetricName,
    /// A dimension name.
    DimensionName,
    /// A dimension value.
    DimensionValue,
    /// A recorded value.
    Value,
    /// A count in a statistic set.
    Count,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Namespace => "namespace",
            Field::MetricName => "metric name",
            Field::DimensionName => "dimension name",
            Field::DimensionValue => "dimension value",
            Field::Value => "value",
            Field::Count => "count",
        })
    }
}

/// Everything that can go wrong in the emitter core.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// A name, dimension or value broke a CloudWatch or line-protocol rule.
    Invalid {
        /// What was checked.
        field: Field,
        /// The offending input (cut to 64 characters).
        input: String,
        /// The rule it broke.
        reason: Invalid,
    },
    /// A metric would have more dimensions (common ones included) than
    /// CloudWatch allows.
    TooManyDimensions {
        /// The metric.
        name: String,
        /// How many it would have.
        count: usize,
    },
    /// The same dimension name was given twice for one metric.
    DuplicateDimension {
        /// The repeated dimension name.
        name: String,
    },
    /// A dimension set names a dimension the metric does not have.
    UnknownDimension {
        /// The unknown dimension name.
        name: String,
    },
    /// The metric was registered before with another kind or unit.
    Conflict {
        /// The metric.
        name: String,
    },
    /// The batch could not be encoded.
    Encode(String),
    /// A setting (an environment variable, say) could not be read.
    Config(String),
}

impl Error {
    pub(crate) fn invalid(field: Field, input: &str, reason: Invalid) -> Self {
        Error::Invalid {
            field,
            input: input.chars().take(64).collect(),
            reason,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Invalid {
                field,
                input,
                reason,
            } => write!(f, "{field} {} {reason}", Quoted(input)),
            Error::TooManyDimensions { name, count } => write!(
                f,
                "metric {} would have {count} dimensions, more than the {} allowed",
                Quoted(name),
                edgepush_protocol::limits::MAX_DIMENSIONS
            ),
            Error::DuplicateDimension { name } => {
                write!(f, "dimension {} is given twice", Quoted(name))
            }
            Error::UnknownDimension { name } => write!(
                f,
                "dimension set names {}, which is not a dimension of the metric",
                Quoted(name)
            ),
            Error::Conflict { name } => write!(
                f,
                "metric {} is already registered with another kind or unit",
                Quoted(name)
            ),
            Error::Encode(message) => write!(f, "cannot encode batch: {message}"),
            Error::Config(message) => write!(f, "bad setting: {message}"),
        }
    }
}

impl core::error::Error for Error {}

/// Serializing names and dimensions to a string cannot fail; should it,
/// this says so without serde_json's error formatting (its code stays out
/// of the wasm).
pub(crate) fn not_json() -> Error {
    Error::Encode("a name or dimension did not encode as JSON".into())
}

/// A name as error messages show it: in double quotes, with quotes,
/// backslashes and control characters escaped (`\"`, `\\`, `\u{1b}`).
/// Unlike `{:?}`, it leaves other characters as they are, which keeps
/// core's Unicode tables out of a wasm build.
pub struct Quoted<'a>(pub &'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for c in self.0.chars() {
            match c {
                '"' | '\\' => write!(f, "\\{c}")?,
                c if c.is_control() => write!(f, "\\u{{{:x}}}", u32::from(c))?,
                c => fmt::Write::write_char(f, c)?,
            }
        }
        f.write_str("\"")
    }
}

/// The emitter's result type.
pub type Result<T, E = Error> = core::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn quoted_escapes_what_would_break_a_message_and_nothing_else() {
        for (name, shown) in [
            ("latency", r#""latency""#),
            (r#"say "hi""#, r#""say \"hi\"""#),
            (r"C:\tmp", r#""C:\\tmp""#),
            ("a\nb\u{1b}", r#""a\u{a}b\u{1b}""#),
            ("\u{85}", r#""\u{85}""#),
            ("héllo ✓", r#""héllo ✓""#),
            ("", r#""""#),
        ] {
            assert_eq!(format!("{}", Quoted(name)), shown, "{name:?}");
        }
    }
}
