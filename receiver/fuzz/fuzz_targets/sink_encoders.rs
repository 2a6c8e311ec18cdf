//! Whatever the decoder accepts, each sink encodes without panicking:
//! line protocol gives exactly one line per point but those its sink
//! refuses by name (a measurement that would be a comment), and every line
//! reads back through InfluxDB's own parser; CloudWatch bodies are
//! JSON within the request limits carrying every point but the strings and
//! booleans, which CloudWatch sinks refuse by name.
#![no_main]

use edgepush_receiver::decode::wire::decode_v1;
use edgepush_receiver::limits::Limits;
use edgepush_receiver::sink::{cloudwatch, influxdb};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_points: 64,
        max_series: 16,
        max_values_per_point: 400,
        ..Limits::default()
    };
    let Ok(decoded) = decode_v1(data, 1_700_000_000_000, &limits) else {
        return;
    };
    let batch = &decoded.batch;
    let mut text = String::new();
    influxdb::encode(batch, &mut text);
    let refused: usize = influxdb::unstorable(batch, true)
        .iter()
        .map(|r| r.points.len())
        .sum();
    let lines = batch.points.len() - refused;
    assert_eq!(text.lines().count(), lines, "{text}");
    assert_eq!(text.matches('\n').count(), lines, "{text}");
    let parsed = influxdb_line_protocol::parse_lines(&text).count();
    assert_eq!(parsed, lines, "{text}");

    let mut covered = vec![false; batch.points.len()];
    for refusal in cloudwatch::unstorable(batch) {
        for p in refusal.points {
            assert!(batch.points[p].value.non_numeric().is_some());
            covered[p] = true;
        }
    }
    for (points, body) in cloudwatch::body_parts(batch) {
        assert!(body.len() <= edgepush_protocol::limits::MAX_REQUEST_BYTES);
        let json: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        let datums = json["MetricData"].as_array().expect("MetricData");
        assert!(datums.len() <= edgepush_protocol::limits::MAX_DATUMS_PER_REQUEST);
        for p in points {
            covered[p] = true;
        }
    }
    assert!(covered.iter().all(|c| *c));
});
