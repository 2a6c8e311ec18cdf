//! Pushgateway-style pushes: the first line is the request path (routed as
//! a PUT), the rest the Prometheus text body. Any bytes give a batch with
//! every bad sample named, or a 4xx; never a panic.
#![no_main]

use edgepush_receiver::decode::{Format, prometheus};
use edgepush_receiver::limits::Limits;
use libfuzzer_sys::fuzz_target;

const NOW: i64 = 1_700_000_000_000;

fuzz_target!(|data: &[u8]| {
    let (path, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b"/metrics/job/j"[..], data),
    };
    let path = String::from_utf8_lossy(path);
    let grouping = match Format::route("PUT", &path, None, Some("text/plain")) {
        Ok(Some(Format::Prometheus(g))) => g,
        Ok(_) => return,
        Err(e) => {
            assert!((400..500).contains(&e.status), "{e}");
            return;
        }
    };
    let limits = Limits {
        max_points: 64,
        max_series: 16,
        max_values_per_point: 200,
        ..Limits::default()
    };
    match prometheus::decode(body, &grouping, "Fuzz", NOW, &limits) {
        Ok(decoded) => {
            let batch = &decoded.batch;
            assert!(batch.points.len() + decoded.rejected.len() <= limits.max_points);
            assert_eq!(decoded.indices.len(), batch.points.len());
            for point in &batch.points {
                assert!(point.series < batch.series.len());
            }
        }
        Err(e) => assert!((400..500).contains(&e.status), "{e}"),
    }
});
