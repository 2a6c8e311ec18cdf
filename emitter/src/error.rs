//! The emitter's error type.

use alloc::string::String;
use core::fmt;

pub use crate::validate::Invalid;

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
            } => write!(f, "{field} {input:?} {reason}"),
            Error::TooManyDimensions { name, count } => write!(
                f,
                "metric {name:?} would have {count} dimensions, more than the {} allowed",
                crate::limits::MAX_DIMENSIONS
            ),
            Error::DuplicateDimension { name } => write!(f, "dimension {name:?} is given twice"),
            Error::UnknownDimension { name } => write!(
                f,
                "dimension set names {name:?}, which is not a dimension of the metric"
            ),
            Error::Conflict { name } => write!(
                f,
                "metric {name:?} is already registered with another kind or unit"
            ),
            Error::Encode(message) => write!(f, "cannot encode batch: {message}"),
            Error::Config(message) => write!(f, "bad setting: {message}"),
        }
    }
}

impl core::error::Error for Error {}

/// The emitter's result type.
pub type Result<T, E = Error> = core::result::Result<T, E>;
