//! Line protocol into its decoder: the first line is the write's query
//! string (`db=...&precision=...`, v1 or v2 by its first byte), the rest the
//! body. Any bytes give a batch with every bad line named, or a 4xx; never
//! a panic, and what is accepted obeys the limits.
#![no_main]

use edgepush_receiver::decode::line_protocol::{self, Mapping, Params};
use edgepush_receiver::limits::Limits;
use libfuzzer_sys::fuzz_target;

const NOW: i64 = 1_700_000_000_000;

fuzz_target!(|data: &[u8]| {
    let (query, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b""[..], data),
    };
    let v2 = query.first().is_some_and(|b| b % 2 == 1);
    let query = String::from_utf8_lossy(query);
    let params = match Params::from_query(v2, Some(&query)) {
        Ok(p) => p,
        Err(e) => {
            assert!((400..500).contains(&e.status), "{e}");
            return;
        }
    };
    let limits = Limits {
        max_points: 64,
        max_series: 16,
        ..Limits::default()
    };
    match line_protocol::decode(body, &params, &Mapping::default(), NOW, &limits) {
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
