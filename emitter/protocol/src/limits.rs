//! Platform limits edgepush enforces, named after the fact they come from.
//!
//! The CloudWatch figures are those of `PutMetricData`; the line-protocol rules
//! are InfluxDB's. Both the emitter (at registration) and the receiver (at
//! ingest) check against these constants, so the two can never disagree.

/// CloudWatch: `MetricName` and `Namespace` are 1 to 255 characters.
pub const MAX_NAME_LEN: usize = 255;
/// CloudWatch: a dimension name is 1 to 255 characters.
pub const MAX_DIMENSION_NAME_LEN: usize = 255;
/// CloudWatch: a dimension value is 1 to 1024 characters.
pub const MAX_DIMENSION_VALUE_LEN: usize = 1024;
/// CloudWatch: at most 30 dimensions per datum.
pub const MAX_DIMENSIONS: usize = 30;
/// CloudWatch: at most 150 entries in `Values`/`Counts` per datum.
pub const MAX_VALUES_PER_DATUM: usize = 150;
/// CloudWatch: at most 1000 `MetricData` entries per `PutMetricData` request.
pub const MAX_DATUMS_PER_REQUEST: usize = 1000;
/// CloudWatch: at most 1 MB per `PutMetricData` HTTP POST. The receiver keeps
/// every request body (before gzip) under this, as the CloudWatch agent does.
pub const MAX_REQUEST_BYTES: usize = 999_000;
/// CloudWatch: values must lie within -2^360 ..= 2^360 (and be finite).
pub const MAX_ABS_VALUE: f64 = 2.348_542_582_773_833_2e108;
/// CloudWatch: a timestamp may be at most 14 days old.
pub const MAX_PAST_MS: i64 = 14 * 24 * 3600 * 1000;
/// CloudWatch: a timestamp may be at most 2 hours in the future.
pub const MAX_FUTURE_MS: i64 = 2 * 3600 * 1000;
/// Line protocol: a string field value is at most 64 KB (InfluxDB's limit).
pub const MAX_STRING_FIELD_BYTES: usize = 64 * 1024;
/// CloudWatch: a namespace must not start with `AWS/`.
pub const RESERVED_NAMESPACE_PREFIX: &str = "AWS/";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_abs_value_is_two_to_the_360() {
        assert_eq!(MAX_ABS_VALUE, 2f64.powi(360));
    }
}
