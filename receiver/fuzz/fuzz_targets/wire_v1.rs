//! Wire v1 JSON straight into the decoder: any bytes give a batch or a 4xx
//! naming a field, never a panic; what is accepted obeys the limits.
#![no_main]

use edgepush_receiver::decode::wire_v1;
use edgepush_receiver::limits::Limits;
use libfuzzer_sys::fuzz_target;

const NOW: i64 = 1_700_000_000_000;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_points: 64,
        max_series: 16,
        max_values_per_point: 200,
        ..Limits::default()
    };
    match wire_v1::decode(data, NOW, &limits) {
        Ok(decoded) => {
            let batch = &decoded.batch;
            assert!(batch.points.len() <= limits.max_points);
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
