//! Bytes on the wire per datapoint, the same data in each format users
//! would push it in.
//!
//! Two workloads:
//! - `distributions`: the emitter benchmark's flush workload, 10,000
//!   latencies (ms) over 1,000 series (10 names x 50 routes x 2 methods,
//!   a common `service` dimension);
//! - `counters`: 1,000 counter series (10 names x 100 hosts, `service`
//!   common), one value each.
//!
//! Formats, each as its usual client writes it:
//! - edgepush wire v3 (the default), v2 and v1, gzip'd: the emitter's own
//!   batches;
//! - CloudWatch EMF JSON lines, raw (what Lambda ships to CloudWatch Logs)
//!   and gzip'd: Powertools-style documents;
//! - OTLP/HTTP protobuf, gzip'd: the body OpenTelemetry's Rust SDK and its
//!   OTLP/HTTP exporter send (delta temporality, default histogram
//!   buckets), captured on a local server;
//! - StatsD (DogStatsD tags): one line per recorded value, uncompressed
//!   (UDP datagrams);
//! - line protocol, gzip'd: what the receiver writes to InfluxDB for the
//!   same points (a distribution becomes count, sum, min and max: its
//!   values are not kept);
//! - Prometheus text exposition, raw and gzip'd: a counter per series, a
//!   distribution as a histogram with client_golang's default buckets (in
//!   seconds).
//!
//! Writes JSON to `EDGEPUSH_BENCH_OUT` (default `target/bench/bytes.json`)
//! and prints the tables.
//!
//! `cargo run --release -p edgepush-tests --example compare_bytes`

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use edgepush::wire::Version;
use edgepush::{Config, Emitter, Metric, Unit};
use edgepush_bench::Workload;
use edgepush_tests::Background;
use opentelemetry::KeyValue;
use opentelemetry::metrics::MeterProvider as _;
use serde_json::json;

const TS_MS: i64 = 1_764_000_000_000;
/// Gzip'd size at the emitter's default level (the level every gzip'd
/// format here is compared at).
fn gzip(bytes: &[u8]) -> usize {
    edgepush_bench::gzip(bytes, edgepush_bench::GZIP_LEVEL).len()
}

/// One series of either workload: name, dimensions (common first), values.
struct Series {
    name: String,
    dims: Vec<(String, String)>,
    values: Vec<f64>,
}

fn distributions(w: &Workload) -> Vec<Series> {
    w.series
        .iter()
        .map(|s| Series {
            name: s.name.clone(),
            dims: w.common.iter().chain(&s.dimensions).cloned().collect(),
            values: s.values.clone(),
        })
        .collect()
}

fn counters() -> Vec<Series> {
    (0..1000)
        .map(|i| Series {
            name: format!("requests_{}", i % 10),
            dims: vec![
                ("service".into(), "api".into()),
                ("host".into(), format!("h{:03}", i / 10)),
            ],
            values: vec![((i * 104_729) % 100_000) as f64],
        })
        .collect()
}

/// The emitter's batch body (gzip'd) for `series`.
fn edgepush(series: &[Series], distribution: bool, format: Version) -> usize {
    let emitter = Emitter::new(
        Config::new("Bench")
            .and_then(|c| c.dimension("service", "api"))
            .expect("config")
            .wire_version(format)
            .gzip_from(0)
            .max_points_per_batch(1000)
            .max_batch_bytes(4 << 20),
    );
    for s in series {
        let mut metric = Metric::new(s.name.clone());
        for (n, v) in s.dims.iter().filter(|(n, _)| n != "service") {
            metric = metric.dimension(n.clone(), v.clone());
        }
        if distribution {
            let d = emitter
                .distribution(metric.unit(Unit::Milliseconds))
                .expect("distribution");
            s.values.iter().for_each(|v| d.record(*v));
        } else {
            let c = emitter.counter(metric.unit(Unit::Count)).expect("counter");
            s.values.iter().for_each(|v| c.add(*v));
        }
    }
    let batches = emitter.flush_at(TS_MS).expect("flush");
    batches.iter().map(|b| b.body().len()).sum()
}

/// EMF lines, Powertools-style: for counters one document per dimension
/// set holding its metrics (the distribution workload uses the bench
/// crate's encoder).
fn emf_counters(series: &[Series]) -> Vec<u8> {
    type Dimensions = Vec<(String, String)>;
    let mut groups: Vec<(Dimensions, Vec<&Series>)> = Vec::new();
    for s in series {
        match groups.iter_mut().find(|(d, _)| *d == s.dims) {
            Some((_, members)) => members.push(s),
            None => groups.push((s.dims.clone(), vec![s])),
        }
    }
    let mut out = Vec::new();
    for (dims, members) in groups {
        let mut doc = serde_json::Map::new();
        doc.insert(
            "_aws".into(),
            json!({
                "Timestamp": TS_MS,
                "CloudWatchMetrics": [{
                    "Namespace": "Bench",
                    "Dimensions": [dims.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>()],
                    "Metrics": members.iter().map(|s| json!({"Name": s.name, "Unit": "Count"})).collect::<Vec<_>>(),
                }],
            }),
        );
        for (n, v) in &dims {
            doc.insert(n.clone(), json!(v));
        }
        for s in members {
            doc.insert(s.name.clone(), json!(s.values[0]));
        }
        serde_json::to_writer(&mut out, &doc).expect("json");
        out.push(b'\n');
    }
    out
}

fn statsd(series: &[Series], distribution: bool) -> usize {
    let mut bytes = 0;
    for s in series {
        let tags: Vec<String> = s.dims.iter().map(|(n, v)| format!("{n}:{v}")).collect();
        let kind = if distribution { "ms" } else { "c" };
        for v in &s.values {
            // One datagram per value: `name:value|type|#tags`.
            bytes += format!("{}:{v}|{kind}|#{}", s.name, tags.join(",")).len();
        }
    }
    bytes
}

fn line_protocol(series: &[Series], distribution: bool) -> Vec<u8> {
    let mut out = String::new();
    for s in series {
        out.push_str(&s.name);
        let mut tags: Vec<(String, String)> = s.dims.clone();
        tags.push(("namespace".into(), "Bench".into()));
        tags.push((
            "unit".into(),
            if distribution {
                "Milliseconds"
            } else {
                "Count"
            }
            .into(),
        ));
        tags.sort();
        for (n, v) in tags {
            out.push_str(&format!(",{n}={}", v.replace(' ', "\\ ")));
        }
        if distribution {
            let count = s.values.len() as f64;
            let sum: f64 = s.values.iter().sum();
            let min = s.values.iter().copied().fold(f64::INFINITY, f64::min);
            let max = s.values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            out.push_str(&format!(" count={count},sum={sum},min={min},max={max}"));
        } else {
            out.push_str(&format!(" value={}", s.values[0]));
        }
        out.push_str(&format!(" {}\n", TS_MS * 1_000_000));
    }
    out.into_bytes()
}

fn prometheus(series: &[Series], distribution: bool) -> Vec<u8> {
    // client_golang's default buckets, in seconds.
    const BUCKETS: [f64; 11] = [
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ];
    let mut out = String::new();
    let mut typed: Vec<&str> = Vec::new();
    let mut by_name: Vec<&Series> = series.iter().collect();
    by_name.sort_by(|a, b| a.name.cmp(&b.name));
    for s in by_name {
        let labels: Vec<String> = s.dims.iter().map(|(n, v)| format!("{n}=\"{v}\"")).collect();
        let labels = labels.join(",");
        if distribution {
            let name = format!("{}_seconds", s.name);
            if !typed.contains(&s.name.as_str()) {
                out.push_str(&format!("# TYPE {name} histogram\n"));
                typed.push(&s.name);
            }
            let secs: Vec<f64> = s.values.iter().map(|v| v / 1000.0).collect();
            for le in BUCKETS {
                let n = secs.iter().filter(|v| **v <= le).count();
                out.push_str(&format!("{name}_bucket{{{labels},le=\"{le}\"}} {n}\n"));
            }
            out.push_str(&format!(
                "{name}_bucket{{{labels},le=\"+Inf\"}} {}\n",
                secs.len()
            ));
            out.push_str(&format!(
                "{name}_sum{{{labels}}} {}\n",
                secs.iter().sum::<f64>()
            ));
            out.push_str(&format!("{name}_count{{{labels}}} {}\n", secs.len()));
        } else {
            let name = format!("{}_total", s.name);
            if !typed.contains(&s.name.as_str()) {
                out.push_str(&format!("# TYPE {name} counter\n"));
                typed.push(&s.name);
            }
            out.push_str(&format!("{name}{{{labels}}} {}\n", s.values[0]));
        }
    }
    out.into_bytes()
}

/// The OTLP/HTTP protobuf bodies (as sent, gzip'd) OpenTelemetry's SDK
/// exports for `series`, captured on a local server.
fn otlp(series: &[Series], distribution: bool) -> usize {
    use opentelemetry_otlp::{
        Compression, MetricExporter, Protocol, WithExportConfig, WithHttpConfig,
    };
    use opentelemetry_sdk::Resource;
    use opentelemetry_sdk::metrics::{SdkMeterProvider, Temporality};

    let bodies: Arc<Mutex<Vec<usize>>> = Arc::default();
    let seen = Arc::clone(&bodies);
    let server = Background::start(move |listener, stop| async move {
        let app = axum::Router::new().route(
            "/v1/metrics",
            axum::routing::post(move |body: axum::body::Bytes| {
                let seen = Arc::clone(&seen);
                async move {
                    seen.lock().expect("lock").push(body.len());
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/x-protobuf")],
                        Vec::<u8>::new(),
                    )
                }
            }),
        );
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stop.await;
            })
            .await
            .expect("serve");
    });
    let exporter = MetricExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(format!("http://{}/v1/metrics", server.addr))
        .with_compression(Compression::Gzip)
        .with_headers(HashMap::new())
        .with_temporality(Temporality::Delta)
        .build()
        .expect("exporter");
    let provider = SdkMeterProvider::builder()
        .with_periodic_exporter(exporter)
        .with_resource(Resource::builder().with_service_name("api").build())
        .build();
    let meter = provider.meter("bench");
    let attributes = |s: &Series| -> Vec<KeyValue> {
        s.dims
            .iter()
            .map(|(n, v)| KeyValue::new(n.clone(), v.clone()))
            .collect()
    };
    // One instrument per name: a histogram for distributions, a counter
    // for counters.
    type Record = Box<dyn Fn(f64, &[KeyValue])>;
    let mut instruments: HashMap<String, Record> = HashMap::new();
    for s in series {
        let record = instruments.entry(s.name.clone()).or_insert_with(|| {
            if distribution {
                let h = meter.f64_histogram(s.name.clone()).with_unit("ms").build();
                Box::new(move |v, a| h.record(v, a))
            } else {
                let c = meter.f64_counter(s.name.clone()).with_unit("1").build();
                Box::new(move |v, a| c.add(v, a))
            }
        });
        let a = attributes(s);
        s.values.iter().for_each(|v| record(*v, &a));
    }
    provider.shutdown().expect("export and shut down");
    drop(server);
    let sizes = bodies.lock().expect("lock").clone();
    assert!(!sizes.is_empty(), "the exporter sent nothing");
    sizes.iter().sum()
}

fn main() {
    let out_path = std::env::var_os("EDGEPUSH_BENCH_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| edgepush_tests::repo_root().join("target/bench/bytes.json"));
    let w = Workload::flush();
    let mut workloads = Vec::new();
    for (name, series, distribution) in [
        ("distributions", distributions(&w), true),
        ("counters", counters(), false),
    ] {
        let datapoints: usize = series.iter().map(|s| s.values.len()).sum();
        let emf = if distribution {
            let lines = w.emf_lines(TS_MS).expect("EMF");
            edgepush_bench::emf_stream(&lines)
        } else {
            emf_counters(&series)
        };
        let lp = line_protocol(&series, distribution);
        let prom = prometheus(&series, distribution);
        let rows: Vec<(&str, usize)> = vec![
            (
                "edgepush wire v3, gzip",
                edgepush(&series, distribution, Version::V3),
            ),
            (
                "edgepush wire v2, gzip",
                edgepush(&series, distribution, Version::V2),
            ),
            (
                "edgepush wire v1, gzip",
                edgepush(&series, distribution, Version::V1),
            ),
            ("CloudWatch EMF JSON lines, raw", emf.len()),
            ("CloudWatch EMF JSON lines, gzip", gzip(&emf)),
            (
                "OTLP/HTTP protobuf, gzip (OpenTelemetry SDK)",
                otlp(&series, distribution),
            ),
            (
                "StatsD (DogStatsD tags), one datagram per value",
                statsd(&series, distribution),
            ),
            ("line protocol, gzip", gzip(&lp)),
            ("Prometheus text, raw", prom.len()),
            ("Prometheus text, gzip", gzip(&prom)),
        ];
        let emf_raw = emf.len() as f64;
        println!(
            "\n{name}: {datapoints} datapoints over {} series",
            series.len()
        );
        println!("| encoding | bytes | per datapoint | vs EMF raw |");
        println!("| --- | ---: | ---: | ---: |");
        for (encoding, bytes) in &rows {
            println!(
                "| {encoding} | {bytes} | {:.2} | {:.3} |",
                *bytes as f64 / datapoints as f64,
                *bytes as f64 / emf_raw
            );
        }
        workloads.push(json!({
            "workload": name,
            "datapoints": datapoints,
            "series": series.len(),
            "rows": rows.iter().map(|(e, b)| json!({
                "encoding": e,
                "bytes": b,
                "per_datapoint": *b as f64 / datapoints as f64,
            })).collect::<Vec<_>>(),
        }));
    }
    if let Some(parent) = out_path.parent() {
        std::fs::create_dir_all(parent).expect("output dir");
    }
    std::fs::write(
        &out_path,
        serde_json::to_vec_pretty(&json!({ "workloads": workloads })).expect("json"),
    )
    .expect("write");
    eprintln!("wrote {}", out_path.display());
}
