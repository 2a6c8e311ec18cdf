//! OTLP/HTTP exports into their decoder: the first byte chooses protobuf
//! or JSON, the rest is the body. Any bytes give a batch with every bad
//! data point named, or a 4xx; never a panic, and what is accepted obeys
//! the limits.
#![no_main]

use edgepush_receiver::decode::otlp::{self, Encoding, Mapping};
use edgepush_receiver::limits::Limits;
use libfuzzer_sys::fuzz_target;

const NOW: i64 = 1_700_000_000_000;

fuzz_target!(|data: &[u8]| {
    let Some((first, body)) = data.split_first() else {
        return;
    };
    let encoding = if first % 2 == 0 {
        Encoding::Protobuf
    } else {
        Encoding::Json
    };
    let limits = Limits {
        max_points: 64,
        max_series: 16,
        max_values_per_point: 200,
        ..Limits::default()
    };
    match otlp::decode(body, encoding, "Fuzz", &Mapping::default(), NOW, &limits) {
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
});
