//! What the decoder targets share: the receiver's clock, small limits (so
//! that bounds are reached), and the invariants every decoder keeps.

use edgepush_receiver::Result;
use edgepush_receiver::decode::Decoded;
use edgepush_receiver::limits::Limits;

/// The receiver's clock in every target.
pub const NOW: i64 = 1_700_000_000_000;

/// Limits small enough for fuzzed inputs to reach them.
pub fn limits() -> Limits {
    Limits {
        max_points: 64,
        max_series: 16,
        max_values_per_point: 200,
        ..Limits::default()
    }
}

/// A decoder's result obeys `limits`: a batch whose points (with the refused
/// ones) stay within the bound, each point naming a series it has and its
/// request position, each series within the dimension bound; or a 4xx.
pub fn check(result: Result<Decoded>, limits: &Limits) {
    match result {
        Ok(decoded) => {
            let batch = &decoded.batch;
            assert!(batch.points.len() + decoded.rejected.len() <= limits.max_points);
            assert_eq!(decoded.indices.len(), batch.points.len());
            for point in &batch.points {
                assert!(point.series < batch.series.len());
            }
            for series in &batch.series {
                assert!(series.dimensions.len() <= limits.max_dimensions);
            }
        }
        Err(e) => assert!((400..500).contains(&e.status), "{e}"),
    }
}
