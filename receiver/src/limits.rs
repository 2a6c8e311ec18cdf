//! Configurable bounds on what one request may carry.

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
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1 << 20,
            max_decompressed_bytes: 8 << 20,
            max_points: 10_000,
            max_series: 10_000,
            max_values_per_point: 3_000,
        }
    }
}
