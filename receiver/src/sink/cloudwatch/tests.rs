use std::ops::Range;
use std::time::SystemTime;

use edgepush_protocol::limits::MAX_REQUEST_BYTES;

use super::json::{json_string, needs_json_escape};
use super::*;
use crate::model::Value;
use crate::model::{Point, Series, StatisticSet};
use edgepush_protocol::wire::Kind;
use edgepush_protocol::{Resolution, Unit};

fn series(name: &str, kind: Kind) -> Series {
    Series {
        name: name.into(),
        kind,
        unit: Unit::Milliseconds,
        dimensions: vec![("service".into(), "checkout".into())],
        resolution: Resolution::High,
    }
}

fn parse(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).expect("valid JSON")
}

#[test]
fn datum_shapes() {
    let batch = Batch {
        id: "x".into(),
        namespace: "Shop".into(),
        series: vec![
            series("a", Kind::Counter),
            series("b", Kind::Distribution),
            series("c", Kind::Statistics),
            series("g", Kind::Gauge),
        ],
        points: vec![
            Point {
                series: 0,
                timestamp_ms: 1_700_000_000_500,
                value: Value::Counter(2.0),
            },
            Point {
                series: 1,
                timestamp_ms: 1_700_000_000_000,
                value: Value::Distribution {
                    values: vec![1.0, 2.0],
                    counts: vec![3.0, 1.0],
                },
            },
            Point {
                series: 2,
                timestamp_ms: 1_700_000_000_000,
                value: Value::Statistics(StatisticSet {
                    count: 4.0,
                    sum: 10.0,
                    min: 1.0,
                    max: 4.0,
                }),
            },
            Point {
                series: 3,
                timestamp_ms: 1_700_000_000_000,
                value: Value::Gauge {
                    last: 2.0,
                    stats: None,
                },
            },
            Point {
                series: 3,
                timestamp_ms: 1_700_000_001_000,
                value: Value::Gauge {
                    last: 2.0,
                    stats: Some(StatisticSet {
                        count: 2.0,
                        sum: 5.0,
                        min: 2.0,
                        max: 3.0,
                    }),
                },
            },
        ],
    };
    let bodies = bodies(&batch);
    assert_eq!(bodies.len(), 1);
    let want = serde_json::json!({
        "Namespace": "Shop",
        "MetricData": [
            {"MetricName": "a", "Dimensions": [{"Name": "service", "Value": "checkout"}], "Timestamp": 1700000000.5, "Unit": "Milliseconds", "StorageResolution": 1, "Value": 2},
            {"MetricName": "b", "Dimensions": [{"Name": "service", "Value": "checkout"}], "Timestamp": 1700000000, "Unit": "Milliseconds", "StorageResolution": 1, "Values": [1, 2], "Counts": [3, 1]},
            {"MetricName": "c", "Dimensions": [{"Name": "service", "Value": "checkout"}], "Timestamp": 1700000000, "Unit": "Milliseconds", "StorageResolution": 1, "StatisticValues": {"SampleCount": 4, "Sum": 10, "Minimum": 1, "Maximum": 4}},
            {"MetricName": "g", "Dimensions": [{"Name": "service", "Value": "checkout"}], "Timestamp": 1700000000, "Unit": "Milliseconds", "StorageResolution": 1, "Value": 2},
            {"MetricName": "g", "Dimensions": [{"Name": "service", "Value": "checkout"}], "Timestamp": 1700000001, "Unit": "Milliseconds", "StorageResolution": 1, "StatisticValues": {"SampleCount": 2, "Sum": 5, "Minimum": 2, "Maximum": 3}},
        ]
    });
    assert_eq!(parse(&bodies[0]), want);
}

#[test]
fn json_strings_are_what_serde_json_writes() {
    for s in [
        "",
        "plain",
        "/api/v1/resource0",
        "quote \" inside",
        "back\\slash",
        "tab\tnew\nline\u{1}",
        "del \u{7f} é 日本 🦀",
    ] {
        let mut ours = Vec::new();
        json_string(&mut ours, s);
        assert_eq!(ours, serde_json::to_vec(s).expect("json"), "{s:?}");
    }
}

#[test]
fn the_word_test_finds_what_the_byte_test_finds() {
    let byte_rule = |s: &[u8]| s.iter().any(|&b| b < b' ' || b == b'"' || b == b'\\');
    // Every byte value at every position of words and tails, among
    // bytes that are fine (around the borrow edges: space, '!', '#',
    // '[', ']', 0x7f, 0x80, 0xff).
    for len in 1..=17 {
        for at in 0..len {
            for b in 0..=255u8 {
                for filler in [b' ', b'!', b'#', b'[', b']', 0x7f, 0x80, 0xff] {
                    let mut s = vec![filler; len];
                    s[at] = b;
                    assert_eq!(needs_json_escape(&s), byte_rule(&s), "{s:?}");
                }
            }
        }
    }
}

#[test]
fn standard_resolution_is_left_to_cloudwatch_default() {
    let mut standard = series("a", Kind::Counter);
    standard.resolution = Resolution::Standard;
    let batch = Batch {
        id: "x".into(),
        namespace: "Shop".into(),
        series: vec![standard, series("b", Kind::Counter)],
        points: (0..2)
            .map(|series| Point {
                series,
                timestamp_ms: 1_700_000_000_000,
                value: Value::Counter(1.0),
            })
            .collect(),
    };
    let body = parse(&bodies(&batch)[0]);
    let data = body["MetricData"].as_array().expect("datums");
    assert_eq!(data[0].get("StorageResolution"), None, "{body}");
    assert_eq!(data[1]["StorageResolution"], 1, "{body}");
}

#[test]
fn splits_by_count_values_and_bytes() {
    // 2,500 counters: 1000 + 1000 + 500 datums.
    let mut batch = Batch {
        id: "x".into(),
        namespace: "N".into(),
        series: vec![series("a", Kind::Counter)],
        points: vec![],
    };
    for i in 0..2500 {
        batch.points.push(Point {
            series: 0,
            timestamp_ms: i,
            value: Value::Counter(1.0),
        });
    }
    let counts: Vec<usize> = bodies(&batch)
        .iter()
        .map(|b| parse(b)["MetricData"].as_array().map_or(0, Vec::len))
        .collect();
    assert_eq!(counts, [1000, 1000, 500]);
    let ranges: Vec<Range<usize>> = body_parts(&batch).into_iter().map(|(r, _)| r).collect();
    assert_eq!(ranges, [0..1000, 1000..2000, 2000..2500]);

    // 400 values: 150 + 150 + 100 in three datums, nothing lost.
    let values: Vec<f64> = (0..400).map(f64::from).collect();
    batch.points = vec![Point {
        series: 0,
        timestamp_ms: 0,
        value: Value::Distribution {
            counts: vec![1.0; 400],
            values: values.clone(),
        },
    }];
    let body = parse(&bodies(&batch)[0]);
    let datums = body["MetricData"].as_array().expect("array");
    let sizes: Vec<usize> = datums
        .iter()
        .map(|d| d["Values"].as_array().map_or(0, Vec::len))
        .collect();
    assert_eq!(sizes, [150, 150, 100]);
    let all: Vec<f64> = datums
        .iter()
        .flat_map(|d| d["Values"].as_array().cloned().unwrap_or_default())
        .filter_map(|v| v.as_f64())
        .collect();
    assert_eq!(all, values);

    // Large datums (30 dimensions of 1024 characters) split by bytes.
    let mut wide = series("w", Kind::Counter);
    wide.dimensions = (0..30)
        .map(|i| (format!("d{i}"), "v".repeat(1024)))
        .collect();
    batch.series = vec![wide];
    batch.points = (0..100)
        .map(|i| Point {
            series: 0,
            timestamp_ms: i,
            value: Value::Counter(1.0),
        })
        .collect();
    let bodies = bodies(&batch);
    assert!(bodies.len() >= 4, "{}", bodies.len());
    let mut total = 0;
    for b in &bodies {
        assert!(b.len() <= MAX_REQUEST_BYTES, "{}", b.len());
        total += parse(b)["MetricData"].as_array().map_or(0, Vec::len);
    }
    assert_eq!(total, 100);
}

#[test]
fn a_point_stays_in_one_request_unless_it_alone_overflows_one() {
    // Points of 400 datums each (3 values): a request holds 2 whole
    // points, never part of a third.
    let items = (0..5).flat_map(|p| (0..400).map(move |d| (p, (p, d), 10)));
    let parts = split(items, 0);
    let ranges: Vec<Range<usize>> = parts.iter().map(|(r, _)| r.clone()).collect();
    assert_eq!(ranges, [0..2, 2..4, 4..5]);
    for (range, items) in &parts {
        assert!(items.iter().all(|(p, _)| range.contains(p)));
        assert_eq!(items.len(), range.len() * 400);
    }
    // A point of 2,500 datums fills requests of its own, named in each.
    let items = [(0, 0, 10)]
        .into_iter()
        .chain((0..2500).map(|d| (1, d, 10)))
        .chain([(2, 0, 10)]);
    let parts = split(items, 0);
    let shape: Vec<(Range<usize>, usize)> = parts
        .iter()
        .map(|(r, items)| (r.clone(), items.len()))
        .collect();
    assert_eq!(shape, [(0..1, 1), (1..2, 1000), (1..2, 1000), (1..3, 501)]);
}

#[test]
fn request_is_signed_gzip_json() {
    let config = Config {
        endpoint: Some("http://127.0.0.1:5000/".into()),
        ..Config::new("us-east-1")
    };
    let keys = Keys {
        access_key_id: "AKIDEXAMPLE".into(),
        secret_access_key: "secret".into(),
        session_token: Some("tok".into()),
    };
    let time = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
    let r = request(
        &config,
        &keys,
        br#"{"Namespace":"N","MetricData":[]}"#,
        time,
    )
    .expect("request");
    let h = r.headers();
    assert_eq!(h["x-amz-target"], TARGET);
    assert_eq!(h["content-type"], "application/x-amz-json-1.0");
    assert_eq!(h["content-encoding"], "gzip");
    assert_eq!(h["x-amz-date"], "20231114T221320Z");
    assert_eq!(h["x-amz-security-token"], "tok");
    let auth = h["authorization"].to_str().expect("ascii");
    assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20231114/us-east-1/monitoring/aws4_request, SignedHeaders="), "{auth}");
    assert!(
        auth.contains(
            "content-encoding;content-type;host;x-amz-date;x-amz-security-token;x-amz-target"
        ),
        "{auth}"
    );
    // The same input signs the same way; another body does not.
    let again = request(
        &config,
        &keys,
        br#"{"Namespace":"N","MetricData":[]}"#,
        time,
    )
    .expect("request");
    assert_eq!(again.headers()["authorization"], h["authorization"]);
    let other = request(
        &config,
        &keys,
        br#"{"Namespace":"M","MetricData":[]}"#,
        time,
    )
    .expect("request");
    assert_ne!(other.headers()["authorization"], h["authorization"]);
}

#[test]
fn endpoints_without_scheme_or_host_are_errors_not_panics() {
    let keys = Keys {
        access_key_id: "a".into(),
        secret_access_key: "s".into(),
        session_token: None,
    };
    for endpoint in ["localhost:4566", "/just/a/path", "http://", "not a uri"] {
        let config = Config {
            endpoint: Some(endpoint.into()),
            compress: false,
            ..Config::new("r")
        };
        let err = request(&config, &keys, b"{}", SystemTime::UNIX_EPOCH).expect_err(endpoint);
        assert!(matches!(err, BuildError::Endpoint(_)), "{endpoint}: {err}");
    }
}

#[test]
fn error_types() {
    assert_eq!(
        error_type(br#"{"__type":"com.amazonaws#Throttling","message":"x"}"#).as_deref(),
        Some("Throttling")
    );
    assert_eq!(
        error_type(br#"{"__type":"InvalidParameterValue"}"#).as_deref(),
        Some("InvalidParameterValue")
    );
    assert_eq!(error_type(b"<xml/>"), None);
}
