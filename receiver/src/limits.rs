//! Configurable bounds on what one request may carry.

use edgepush_protocol::limits::{MAX_DIMENSION_VALUE_LEN, MAX_DIMENSIONS};
use serde::Deserialize;

/// Bounds on one request. Every one is checked before the work it bounds.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Most bytes of request body as sent (compressed). Default 1 MiB.
    pub max_body_bytes: usize,
    /// Most bytes of body after decompression, checked while inflating, so a
    /// gzip bomb costs at most this much memory. Default 8 MiB.
    pub max_decompressed_bytes: usize,
    /// Most points in one batch. Default 10,000.
    pub max_points: usize,
    /// Most series in one batch. Default 10,000.
    pub max_series: usize,
    /// Most distinct values in one distribution point. Default 3,000.
    pub max_values_per_point: usize,
    /// Most dimensions of one series, the batch's common ones included.
    /// Default and most: 30 (CloudWatch's limit).
    pub max_dimensions: usize,
    /// Most bytes of one dimension value. Default and most: 1,024
    /// (CloudWatch's limit).
    pub max_dimension_value_bytes: usize,
}

impl Limits {
    /// Refuses bounds that are zero or above what the sinks accept.
    pub fn check(&self) -> Result<(), String> {
        let fields = [
            ("max_body_bytes", self.max_body_bytes, usize::MAX),
            (
                "max_decompressed_bytes",
                self.max_decompressed_bytes,
                usize::MAX,
            ),
            ("max_points", self.max_points, usize::MAX),
            ("max_series", self.max_series, usize::MAX),
            (
                "max_values_per_point",
                self.max_values_per_point,
                usize::MAX,
            ),
            ("max_dimensions", self.max_dimensions, MAX_DIMENSIONS),
            (
                "max_dimension_value_bytes",
                self.max_dimension_value_bytes,
                MAX_DIMENSION_VALUE_LEN,
            ),
        ];
        for (name, value, most) in fields {
            if value == 0 || value > most {
                return Err(format!(
                    "limits.{name} must be between 1 and {most}, not {value}"
                ));
            }
        }
        Ok(())
    }
}

impl Limits {
    /// Bounds for reading back what the receiver itself stored or queued
    /// (spools, journals, queue messages, aggregators): checked on the way
    /// in, or merged here, so only a corrupt record exceeds them. A merged
    /// batch may hold more points and series than one push may.
    pub fn stored() -> Limits {
        Limits {
            // Records are split at 120 KB (envelope::MAX_ENVELOPE_BYTES); the
            // Worker's zlib refuses caps of 256 MiB and more.
            max_decompressed_bytes: 64 << 20,
            max_points: 1 << 24,
            max_series: 1 << 24,
            max_values_per_point: 1 << 20,
            ..Limits::default()
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1 << 20,
            max_decompressed_bytes: 8 << 20,
            max_points: 10_000,
            max_series: 10_000,
            max_values_per_point: 3_000,
            max_dimensions: MAX_DIMENSIONS,
            max_dimension_value_bytes: MAX_DIMENSION_VALUE_LEN,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_beyond_the_sinks_are_refused() {
        assert_eq!(Limits::default().check(), Ok(()));
        let over = Limits {
            max_dimensions: 31,
            ..Limits::default()
        };
        assert_eq!(
            over.check(),
            Err("limits.max_dimensions must be between 1 and 30, not 31".into())
        );
        let zero = Limits {
            max_points: 0,
            ..Limits::default()
        };
        assert!(zero.check().is_err_and(|e| e.contains("max_points")));
    }
}
