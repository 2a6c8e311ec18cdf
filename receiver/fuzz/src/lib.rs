//! The fuzz targets (`fuzz_targets/<name>.rs` calls the function of its
//! name), what they share (the receiver's clock, small limits, the
//! invariants every decoder keeps), and [`TARGETS`], through which `cargo
//! test` replays every seed and every input that once crashed a target
//! (`receiver/tests/fuzz_inputs_replay.rs`).
//!
//! Built by cargo-fuzz, and included by that test as a module: it uses only
//! crates the receiver's tests also have.

use edgepush_protocol::sign;
use edgepush_protocol::wire::{v2, v3};
use edgepush_receiver::Result;
use edgepush_receiver::aggregate::Aggregator;
use edgepush_receiver::decode::line_protocol::{self, Params};
use edgepush_receiver::decode::otlp::{self, Encoding};
use edgepush_receiver::decode::wire::{decode_v1, decode_v2, decode_v3};
use edgepush_receiver::decode::{Decoded, Format, prometheus};
use edgepush_receiver::envelope;
use edgepush_receiver::ingest::{Headers, Ingest};
use edgepush_receiver::limits::Limits;
use edgepush_receiver::model::{Batch, Value};
use edgepush_receiver::packed;
use edgepush_receiver::sink::{self, SinkTag, cloudwatch, influxdb};
use edgepush_receiver::tenant::{TenantConfig, Tenants};
use influxdb_line_protocol::FieldValue;

/// A fuzz target: any bytes in, a panic when an invariant breaks.
pub type Target = fn(&[u8]);

/// Every target by name, as `fuzz_targets/` and `Cargo.toml` name them.
pub const TARGETS: &[(&str, Target)] = &[
    ("aggregate", aggregate),
    ("envelope", envelope),
    ("gzip_request", gzip_request),
    ("line_protocol", line_protocol),
    ("otlp", otlp),
    ("packed", packed),
    ("prometheus", prometheus),
    ("signature", signature),
    ("sink_encoders", sink_encoders),
    ("wire_v1", wire_v1),
    ("wire_v2", wire_v2),
    ("wire_v3", wire_v3),
];

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

/// Count, minimum and maximum over every number point of `batches`.
fn totals(batches: &[Batch]) -> (f64, f64, f64) {
    let (mut count, mut low, mut high) = (0.0, f64::INFINITY, f64::NEG_INFINITY);
    for b in batches {
        for p in &b.points {
            if let Some(s) = p.value.statistics() {
                count += s.count;
                low = low.min(s.min);
                high = high.max(s.max);
            }
        }
    }
    (count, low, high)
}

/// Each point's series and value (NaN-safe through their debug form).
fn points_of(b: &Batch) -> Vec<String> {
    b.points
        .iter()
        .map(|p| format!("{:?} {} {:?}", b.series[p.series], p.timestamp_ms, p.value))
        .collect()
}

/// The merge: whatever batch wire v1 accepts, merged split in two and in
/// the other order, keeps the count of every number point, and its minimum
/// and maximum (exactly when counts are whole numbers, as emitters send
/// them; within them otherwise), and each merged batch comes back whole
/// from an envelope.
pub fn aggregate(data: &[u8]) {
    let limits = Limits {
        max_points: 64,
        ..Limits::default()
    };
    let Ok(decoded) = decode_v1(data, NOW, &limits) else {
        return;
    };
    let batch = decoded.batch;
    let half = batch.points.len() / 2;
    let mut first = batch.clone();
    first.points.truncate(half);
    let second = batch.from_point(half).into_owned();
    let mut aggregator = Aggregator::new();
    aggregator.add(&second);
    aggregator.add(&first);
    let merged = aggregator.take_all(NOW);
    assert_eq!(aggregator.open(), 0);
    // A merged batch travels in envelopes (spools, queues) unchanged.
    for b in &merged {
        let messages = envelope::encode(b, SinkTag::CloudWatch);
        if messages.len() == 1 {
            let (_, back) = envelope::decode(&messages[0], NOW, &Limits::default())
                .unwrap_or_else(|e| panic!("{b:?}: {}", e.message));
            assert_eq!(&back, b);
        }
    }
    let (count, low, high) = totals(&merged);
    let (pushed, pushed_low, pushed_high) = totals(std::slice::from_ref(&batch));
    assert!(
        (count - pushed).abs() <= pushed.abs() * 1e-9,
        "{count} vs {pushed}"
    );
    let whole = batch.points.iter().all(|p| match &p.value {
        Value::Distribution { counts, .. } => counts.iter().all(|c| *c >= 1.0 && c.fract() == 0.0),
        _ => true,
    });
    if whole {
        assert_eq!((low, high), (pushed_low, pushed_high));
    } else {
        assert!(low >= pushed_low && high <= pushed_high);
    }
}

/// Queue messages and spool records (the same encoding): any bytes decode
/// to a batch or an error, and what the encoder writes decodes to itself.
pub fn envelope(data: &[u8]) {
    let limits = Limits {
        max_points: 64,
        ..Limits::default()
    };
    let _ = envelope::peek(data);
    let _ = envelope::decode(data, NOW, &limits);
    // Round trip of whatever wire v1 accepts.
    if let Ok(decoded) = decode_v1(data, NOW, &limits) {
        let mut points = 0;
        for message in envelope::encode(&decoded.batch, SinkTag::CloudWatch) {
            let (tag, batch) = envelope::decode(&message, NOW, &limits).expect("round trip");
            assert_eq!(tag, SinkTag::CloudWatch);
            points += batch.points.len();
        }
        assert_eq!(points, decoded.batch.points.len());
    }
}

/// A whole request body through ingest: gzip (or identity) then wire v1,
/// with tight size caps, so gzip bombs and truncated streams are explored.
pub fn gzip_request(data: &[u8]) {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let ingest = Ingest {
        limits: Limits {
            max_body_bytes: 64 * 1024,
            max_decompressed_bytes: 256 * 1024,
            max_points: 64,
            ..Limits::default()
        },
        ..Ingest::default()
    };
    let headers = Headers {
        content_type: Some("application/vnd.edgepush.v1+json"),
        content_encoding: (first & 1 == 1).then_some("gzip"),
        ..Headers::default()
    };
    if let Err(e) = ingest.decode(headers, body, NOW) {
        assert!((400..500).contains(&e.status), "{e}");
    }
}

/// Line protocol into its decoder: the first line is the write's query
/// string (`db=...&precision=...`, v1 or v2 by its first byte), the rest the
/// body. Any bytes give a batch with every bad line named, or a 4xx; never
/// a panic, and what is accepted obeys the limits. What is accepted, the
/// line-protocol sink writes so that InfluxDB's parser reads it back: one
/// line per point, strings and booleans as they came.
pub fn line_protocol(data: &[u8]) {
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
    let limits = limits();
    let decoded = line_protocol::decode(
        body,
        &params,
        &line_protocol::Mapping::default(),
        None,
        NOW,
        &limits,
    );
    if let Ok(d) = &decoded {
        let mut text = String::new();
        sink::influxdb::encode(&d.batch, &mut text);
        let lines: Vec<_> = influxdb_line_protocol::parse_lines(&text)
            .map(|l| l.expect("the sink's line parses"))
            .collect();
        assert_eq!(lines.len(), d.batch.points.len(), "{text}");
        for (line, point) in lines.iter().zip(&d.batch.points) {
            let written = &line.field_set[0].1;
            match &point.value {
                Value::Text(s) => assert_eq!(written, &FieldValue::String(s.as_str().into())),
                Value::Boolean(b) => assert_eq!(written, &FieldValue::Boolean(*b)),
                _ => assert!(matches!(written, FieldValue::F64(_)), "{text}"),
            }
        }
    }
    check(decoded, &limits);
}

/// OTLP/HTTP exports into their decoder: the first byte chooses protobuf
/// or JSON, the rest is the body. Any bytes give a batch with every bad
/// data point named, or a 4xx; never a panic, and what is accepted obeys
/// the limits.
pub fn otlp(data: &[u8]) {
    let Some((first, body)) = data.split_first() else {
        return;
    };
    let encoding = if first % 2 == 0 {
        Encoding::Protobuf
    } else {
        Encoding::Json
    };
    let limits = limits();
    let result = otlp::decode(
        body,
        encoding,
        "Fuzz",
        &otlp::Mapping::default(),
        NOW,
        &limits,
    );
    check(result, &limits);
}

/// Packed batches (what the Worker's aggregators store): any bytes are an
/// error or a batch, never a panic; a batch read back packs and reads back
/// to the same points.
pub fn packed(data: &[u8]) {
    if let Ok(batch) = packed::decode(data) {
        let again = packed::decode(&packed::encode(&batch)).expect("a packed batch reads back");
        assert_eq!((&again.id, &again.namespace), (&batch.id, &batch.namespace));
        assert_eq!(points_of(&again), points_of(&batch));
    }
}

/// Pushgateway-style pushes: the first line is the request path (routed as
/// a PUT), the rest the Prometheus text body. Any bytes give a batch with
/// every bad sample named, or a 4xx; never a panic.
pub fn prometheus(data: &[u8]) {
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
    let limits = limits();
    check(
        prometheus::decode(body, &grouping, "Fuzz", NOW, &limits),
        &limits,
    );
}

/// `Edgepush-Signature` headers: any text parses or is refused with a
/// reason, and authentication never panics whatever the header and body.
pub fn signature(data: &[u8]) {
    let split = data.iter().position(|b| *b == 0).unwrap_or(data.len());
    let (header, body) = data.split_at(split);
    let Ok(header) = std::str::from_utf8(header) else {
        return;
    };
    if let Ok(parsed) = sign::parse(header) {
        assert!(sign::valid_nonce(parsed.nonce));
        let _ = parsed.verify("key", body);
    }
    let tenants =
        Tenants::new(vec![TenantConfig::new("t", &["key"], &["*"])], 300).expect("valid tenants");
    let _ = tenants.authenticate(Some(header), Some(header), body, NOW);
    let _ = tenants.authenticate(Some(header), None, body, NOW);
}

/// Whatever the decoder accepts, each sink encodes without panicking:
/// line protocol gives exactly one line per point but those its sink
/// refuses by name (a measurement that would be a comment), and every line
/// reads back through InfluxDB's own parser; CloudWatch bodies are
/// JSON within the request limits carrying every point but the strings and
/// booleans, which CloudWatch sinks refuse by name.
pub fn sink_encoders(data: &[u8]) {
    let limits = Limits {
        max_points: 64,
        max_series: 16,
        max_values_per_point: 400,
        ..Limits::default()
    };
    let Ok(decoded) = decode_v1(data, NOW, &limits) else {
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
}

/// Wire v1 JSON straight into the decoder: any bytes give a batch or a 4xx
/// naming a field, never a panic; what is accepted obeys the limits.
pub fn wire_v1(data: &[u8]) {
    let limits = limits();
    check(decode_v1(data, NOW, &limits), &limits);
}

/// Wire v2 bytes straight into the decoder: any bytes give a batch or a 4xx
/// naming a field, never a panic; what is accepted obeys the limits and
/// encodes back to a body that decodes to the same batch.
pub fn wire_v2(data: &[u8]) {
    let limits = limits();
    if let Ok(batch) = v2::decode_within(data, limits.max_series, limits.max_points) {
        let again = v2::encode(&batch);
        assert_eq!(v2::decode(&again).as_ref(), Ok(&batch), "re-encoded");
    }
    check(decode_v2(data, NOW, &limits), &limits);
}

/// Wire v3 bytes straight into the decoder: any bytes give a batch or a 4xx
/// naming a field, never a panic; what is accepted obeys the limits (its
/// series counted before they are made) and encodes back to a body that
/// decodes to the same batch.
pub fn wire_v3(data: &[u8]) {
    let limits = limits();
    if let Ok(batch) = v3::decode_within(data, limits.max_series, limits.max_points) {
        let again = v3::encode(&batch);
        assert_eq!(v3::decode(&again).as_ref(), Ok(&batch), "re-encoded");
    }
    check(decode_v3(data, NOW, &limits), &limits);
}
