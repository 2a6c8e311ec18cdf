//! Cost of 1,000 points in each ingest format: the same 1,000 gauge points
//! (1,000 series, 2 dimensions) as wire v1, OTLP protobuf, OTLP JSON, line
//! protocol and Prometheus text, all gzip'd. Natively: CPU of decode and
//! validate, and of decode plus both sinks' requests (no network). In
//! workerd: the isolate thread's CPU per push forwarded to two stub sinks,
//! less a `GET /healthz`. Formats are interleaved, medians reported.
//!
//! ```text
//! cargo run --release -p edgepush-tests --example ingest_formats
//! ```

use std::time::{Duration, Instant, SystemTime};

use edgepush::{Config, Emitter, Metric};
use edgepush_receiver::decode::Format;
use edgepush_receiver::decode::otlp::proto;
use edgepush_receiver::ingest::{Headers, Ingest};
use edgepush_receiver::sink::Encoder as _;
use edgepush_tests::{StubSinks, Workerd, gzip, http_get, post};
use prost::Message as _;
use serde_json::json;

const POINTS: usize = 1000;

struct Case {
    name: &'static str,
    path: String,
    content_type: &'static str,
    /// Bodies, each different (so that none is a recognised retry).
    bodies: Vec<Vec<u8>>,
}

fn value(i: usize, round: usize) -> f64 {
    (i * 7 + round) as f64 * 0.25
}

fn wire(round: usize, format: edgepush::wire::Version) -> Vec<u8> {
    let emitter = Emitter::new(
        Config::new("Bench")
            .expect("ns")
            .max_batch_bytes(4 << 20)
            .wire_version(format),
    );
    for i in 0..POINTS {
        let m = Metric::new(format!("metric_{}", i % 20))
            .dimension("service", "api")
            .dimension("route", format!("/api/r{i}"));
        emitter.gauge(m).expect("gauge").set(value(i, round));
    }
    let batches = emitter.flush().expect("flush");
    batches[0].body().to_vec()
}

fn line_protocol_body(round: usize, now: i64) -> Vec<u8> {
    let mut text = String::new();
    for i in 0..POINTS {
        text.push_str(&format!(
            "metric_{},service=api,route=/api/r{i} value={} {now}\n",
            i % 20,
            value(i, round)
        ));
    }
    gzip(text.as_bytes())
}

fn prometheus_body(round: usize, now: i64) -> Vec<u8> {
    let mut text = String::new();
    for i in 0..POINTS {
        text.push_str(&format!(
            "metric_{}{{service=\"api\",route=\"/api/r{i}\"}} {} {now}\n",
            i % 20,
            value(i, round)
        ));
    }
    gzip(text.as_bytes())
}

fn otlp_request(round: usize, now: i64) -> proto::ExportMetricsServiceRequest {
    let kv = |k: &str, v: String| proto::KeyValue {
        key: k.into(),
        value: Some(proto::AnyValue {
            value: Some(proto::any_value::Value::StringValue(v)),
        }),
    };
    let time = (now as u64 + round as u64) * 1_000_000;
    let metrics = (0..20)
        .map(|m| proto::Metric {
            name: format!("metric_{m}"),
            unit: String::new(),
            data: Some(proto::metric::Data::Gauge(proto::Gauge {
                data_points: (0..POINTS / 20)
                    .map(|k| {
                        let i = k * 20 + m;
                        proto::NumberDataPoint {
                            attributes: vec![
                                kv("service", "api".into()),
                                kv("route", format!("/api/r{i}")),
                            ],
                            time_unix_nano: time,
                            value: Some(proto::number_data_point::Value::AsDouble(value(i, round))),
                        }
                    })
                    .collect(),
            })),
        })
        .collect();
    proto::ExportMetricsServiceRequest {
        resource_metrics: vec![proto::ResourceMetrics {
            resource: None,
            scope_metrics: vec![proto::ScopeMetrics {
                scope: None,
                metrics,
            }],
        }],
    }
}

/// OTLP/JSON of the same request, written out as an exporter would.
fn otlp_json(request: &proto::ExportMetricsServiceRequest) -> Vec<u8> {
    let metrics: Vec<serde_json::Value> = request.resource_metrics[0].scope_metrics[0]
        .metrics
        .iter()
        .map(|m| {
            let Some(proto::metric::Data::Gauge(g)) = &m.data else {
                unreachable!("gauges only")
            };
            let points: Vec<serde_json::Value> = g
                .data_points
                .iter()
                .map(|p| {
                    let attributes: Vec<serde_json::Value> = p
                        .attributes
                        .iter()
                        .map(|kv| match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                            Some(proto::any_value::Value::StringValue(s)) => {
                                json!({"key": kv.key, "value": {"stringValue": s}})
                            }
                            _ => unreachable!("strings only"),
                        })
                        .collect();
                    let Some(proto::number_data_point::Value::AsDouble(v)) = p.value else {
                        unreachable!("doubles only")
                    };
                    json!({"attributes": attributes, "timeUnixNano": p.time_unix_nano.to_string(), "asDouble": v})
                })
                .collect();
            json!({"name": m.name, "gauge": {"dataPoints": points}})
        })
        .collect();
    gzip(
        json!({"resourceMetrics": [{"scopeMetrics": [{"metrics": metrics}]}]})
            .to_string()
            .as_bytes(),
    )
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let rounds = 60;
    let now = edgepush::now_ms();
    let otlp: Vec<proto::ExportMetricsServiceRequest> =
        (0..rounds).map(|r| otlp_request(r, now)).collect();
    let cases = [
        Case {
            name: "wire v2 (edgepush)",
            path: "/v1/metrics".into(),
            content_type: edgepush::wire::v2::CONTENT_TYPE,
            bodies: (0..rounds)
                .map(|r| wire(r, edgepush::wire::Version::V2))
                .collect(),
        },
        Case {
            name: "wire v1 (edgepush)",
            path: "/v1/metrics".into(),
            content_type: edgepush::wire::v1::CONTENT_TYPE,
            bodies: (0..rounds)
                .map(|r| wire(r, edgepush::wire::Version::V1))
                .collect(),
        },
        Case {
            name: "OTLP protobuf",
            path: "/v1/metrics".into(),
            content_type: "application/x-protobuf",
            bodies: otlp.iter().map(|r| gzip(&r.encode_to_vec())).collect(),
        },
        Case {
            name: "OTLP JSON",
            path: "/v1/metrics".into(),
            content_type: "application/json",
            bodies: otlp.iter().map(otlp_json).collect(),
        },
        Case {
            name: "line protocol",
            path: "/write?db=Bench&precision=ms".into(),
            content_type: "text/plain",
            bodies: (0..rounds).map(|r| line_protocol_body(r, now)).collect(),
        },
        Case {
            name: "Prometheus text",
            path: "/metrics/job/bench".into(),
            content_type: "text/plain; version=0.0.4",
            bodies: (0..rounds).map(|r| prometheus_body(r, now)).collect(),
        },
    ];

    let stub = StubSinks::start();
    let sinks = stub.sinks();

    // Natively: interleaved rounds over the formats.
    let ingest = Ingest::default();
    let mut decode = vec![Vec::new(); cases.len()];
    let mut full = vec![Vec::new(); cases.len()];
    for round in 0..rounds {
        for (c, case) in cases.iter().enumerate() {
            let (path, query) = case
                .path
                .split_once('?')
                .map_or((case.path.as_str(), None), |(p, q)| (p, Some(q)));
            let format = Format::route("POST", path, query, Some(case.content_type))
                .expect("route")
                .expect("a push path");
            let headers = Headers {
                content_type: Some(case.content_type),
                content_encoding: Some("gzip"),
                ..Headers::default()
            };
            let caller = ingest.authenticate(headers, b"", now).expect("open");
            let body = &case.bodies[round];
            let start = Instant::now();
            let decoded = ingest
                .decode_for(&caller, &format, headers, body, now)
                .expect("decoded");
            decode[c].push(start.elapsed());
            assert_eq!(decoded.batch.points.len(), POINTS, "{}", case.name);
            assert!(decoded.rejected.is_empty(), "{}", case.name);
            for sink in &sinks {
                sink.parts(&decoded.batch, SystemTime::now())
                    .expect("requests");
            }
            full[c].push(start.elapsed());
        }
    }

    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = stub.worker_settings();
    settings.insert(
        "EDGEPUSH_FORMATS".into(),
        json!({"namespace": "Bench"}).to_string().into(),
    );
    // Miniflare's Cache API runs in JavaScript in the same workerd, which
    // Cloudflare's does not (see edge_cpu).
    settings.insert("EDGEPUSH_DEDUPE_SECONDS".into(), "0".into());
    let worker = Workerd::start(dir.path(), &settings.into());
    // /proc counts CPU in clock ticks (10 ms): per push the reading is 0
    // or a tick, so the figure is the mean over many pushes, interleaved
    // (dedupe is off, so a body sent again is forwarded again).
    let passes = 4;
    let health = || {
        let (before, _) = worker.isolate_cpu_time();
        let n = 100;
        for _ in 0..n {
            assert_eq!(http_get(&format!("{}/healthz", worker.url)), Ok(200));
        }
        (worker.isolate_cpu_time().0 - before) / n
    };
    let mut edge = vec![Duration::ZERO; cases.len()];
    for _ in 0..passes {
        for round in 0..rounds {
            for (c, case) in cases.iter().enumerate() {
                let url = format!("{}{}", worker.url, case.path);
                let headers = [
                    ("content-type", case.content_type),
                    ("content-encoding", "gzip"),
                ];
                let (before, _) = worker.isolate_cpu_time();
                let (status, answer) = post(&url, &headers, &case.bodies[round]);
                edge[c] += worker.isolate_cpu_time().0 - before;
                assert!(
                    (200..300).contains(&status),
                    "{}: {status} {answer}",
                    case.name
                );
            }
        }
    }
    let idle = health();

    println!(
        "1,000 gauge points, 1,000 series, 2 dimensions; native: medians of {rounds} interleaved rounds; workerd: means of {} interleaved pushes",
        passes * rounds
    );
    println!(
        "| format | gzip'd bytes | native decode + validate | native + both sinks' requests | points/s per core (decode) | workerd isolate CPU per push less /healthz (mean) |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for (c, case) in cases.iter().enumerate() {
        let d = median(decode[c].clone());
        println!(
            "| {} | {} | {:.3} ms | {:.3} ms | {:.0}k | {:.2} ms |",
            case.name,
            case.bodies[0].len(),
            ms(d),
            ms(median(full[c].clone())),
            POINTS as f64 / d.as_secs_f64() / 1e3,
            ms((edge[c] / (passes * rounds) as u32).saturating_sub(idle)),
        );
    }
}
