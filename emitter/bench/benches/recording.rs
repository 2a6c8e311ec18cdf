//! Recording cost of edgepush and peer metrics libraries.
//!
//! One iteration is what a request handler typically does: one counter
//! increment (`requests`) and one histogram/distribution record (`latency`,
//! milliseconds) on a series with three dimensions: `service=api` (an
//! emitter-wide dimension where the library has that notion) plus `route=/a`
//! and `method=GET`. Recorded values come from a fixed table of 1,024
//! latencies shared by every library.
//!
//! Groups:
//! - `recording-1thread`: one thread;
//! - `recording-2threads`: two threads recording into the same two series at
//!   once; the time reported per iteration is the wall time for both threads
//!   to do one iteration each (equal to the 1-thread time when there is no
//!   contention), and the throughput counts both threads' iterations.
//!
//! Libraries:
//! - `edgepush/handle`: registered `Counter` and `Distribution` handles,
//!   never flushed: the recordings a thread stages are applied to the series
//!   whenever its buffer fills, inside the timed loop;
//! - `edgepush/handle_flushed_like_cwe`: the same, flushed (untimed) every
//!   100 values as metrics_cloudwatch_embedded is below, so that the staged
//!   recordings are applied at the flush: the cost of the recording call
//!   itself;
//! - `edgepush/per_call`: no handles: every call names its series by a
//!   `Key` (a `const` name and unit, the two dimensions given per call),
//!   as Lambda handlers write it; never flushed, like `edgepush/handle`;
//! - `edgepush/handle_64_distinct_values`: the same, recording only the
//!   first 64 values of the table. An edgepush distribution keeps distinct
//!   values (exactly up to a limit, then rounded), so its cost depends on
//!   how many distinct values an interval sees; the peers' does not
//!   (OpenTelemetry buckets, cadence formats, metrics_cloudwatch_embedded
//!   queues). It records into an emitter of its own.
//! - `metrics_cwe/handle`: the `metrics` 0.24 facade with
//!   `metrics_cloudwatch_embedded` 0.10 installed as the global recorder,
//!   through `Counter`/`Histogram` handles registered once with
//!   `counter!`/`histogram!`;
//! - `metrics_cwe/macro_per_call`: the same, but calling
//!   `counter!(..).increment(1)` and `histogram!(..).record(v)` every time,
//!   as most code using the facade is written (each call looks the key up in
//!   the recorder under its mutex);
//! - `cadence/nop_sink`: a cadence `StatsdClient` over `NopMetricSink` (the
//!   StatsD line is formatted, then dropped: no syscall), `service` as a
//!   client-wide tag and `route`/`method` per call;
//! - `otel_sdk/manual_reader`: `opentelemetry_sdk` 0.31 `Counter<u64>` and
//!   `Histogram<f64>` (default buckets) from an `SdkMeterProvider` whose only
//!   reader is a `ManualReader`, so nothing is exported; the three attributes
//!   are one `[KeyValue; 3]` built outside the loop.
//!
//! metrics_cloudwatch_embedded keeps a histogram's unflushed values in a
//! bounded channel of 100 and drops (and logs) values beyond that. Its
//! benchmarks therefore stop every 100 values (50 per thread with 2 threads),
//! flush to `io::sink()` outside the timed section, and go on. Nobody else
//! is flushed: edgepush and OpenTelemetry aggregate in bounded memory, and
//! cadence keeps nothing.
//!
//! Full run: `cargo bench -p edgepush-bench --bench recording`.

use std::hint::black_box;
use std::time::Duration;

use cadence::prelude::*;
use cadence::{NopMetricSink, StatsdClient};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput};
use edgepush::{Config, Emitter, Key, Metric, Unit};
use edgepush_bench::{COMMON_DIMENSION, NAMESPACE, SERIES_DIMENSIONS, latencies, run_concurrent};
use metrics_cloudwatch_embedded::Collector;
use opentelemetry::KeyValue;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::metrics::{ManualReader, SdkMeterProvider};

/// edgepush's per-call keys (the dimensions are given per call).
const REQUESTS: Key<'static> = Key::new("requests").unit(Unit::Count);
const LATENCY: Key<'static> = Key::new("latency").unit(Unit::Milliseconds);

/// Most histogram values metrics_cloudwatch_embedded holds between flushes.
const CWE_MAX_UNFLUSHED: u64 = 100;

/// Values recorded into histograms, indexed by iteration.
struct Values([f64; 1024]);

impl Values {
    fn new() -> Self {
        Values(latencies(1024, 7).try_into().expect("1024 values"))
    }

    #[inline(always)]
    fn get(&self, i: u64) -> f64 {
        black_box(self.0[(i & 1023) as usize])
    }
}

/// One benchmark of the interleaved mode: how long `iters` iterations take.
struct Case<'a> {
    threads: usize,
    name: &'static str,
    run: Box<dyn Fn(u64) -> Duration + 'a>,
}

/// Where the benchmarks go: a criterion group, or the interleaved runner's
/// list (`EDGEPUSH_BENCH_INTERLEAVED`).
enum Runs<'g, 'a> {
    Criterion(BenchmarkGroup<'g, WallTime>),
    Interleaved(&'g mut Vec<Case<'a>>),
}

/// Adds one benchmark: `op` on `threads` threads, with `drain` run
/// (untimed) every `chunk` iterations per thread.
fn bench<'a, O, D>(
    runs: &mut Runs<'_, 'a>,
    name: &'static str,
    threads: usize,
    chunk: u64,
    op: O,
    drain: D,
) where
    O: Fn(usize, u64) + Sync + 'a,
    D: Fn() + Sync + 'a,
{
    let group = match runs {
        Runs::Criterion(group) => group,
        Runs::Interleaved(cases) => {
            cases.push(Case {
                threads,
                name,
                run: Box::new(move |iters| run_concurrent(threads, iters, chunk, &op, &drain)),
            });
            return;
        }
    };
    group.bench_function(name, |b| {
        b.iter_custom(|iters| run_concurrent(threads, iters, chunk, &op, &drain));
    });
}

/// Installs metrics_cloudwatch_embedded as the `metrics` global recorder
/// (possible once per process) with `service=api` as a default dimension.
fn cwe_collector() -> &'static Collector {
    let collector = metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace(NAMESPACE)
        .with_dimension(COMMON_DIMENSION.0, COMMON_DIMENSION.1)
        .init()
        .expect("install the metrics_cloudwatch_embedded recorder");
    metrics::describe_counter!("requests", metrics::Unit::Count, "requests");
    metrics::describe_histogram!("latency", metrics::Unit::Milliseconds, "latency");
    collector
}

/// Checks that a drain interval of `CWE_MAX_UNFLUSHED` loses no value: the
/// benchmark would otherwise time metrics_cloudwatch_embedded's drop path.
fn check_cwe_keeps_every_value(collector: &Collector, histogram: &metrics::Histogram) {
    collector.flush(std::io::sink()).expect("flush");
    for i in 0..CWE_MAX_UNFLUSHED {
        histogram.record(i as f64);
    }
    let mut out = Vec::new();
    collector.flush(&mut out).expect("flush");
    let doc: serde_json::Value = serde_json::from_slice(&out).expect("one EMF document");
    let kept = doc["latency"].as_array().map_or(0, Vec::len) as u64;
    assert_eq!(
        kept, CWE_MAX_UNFLUSHED,
        "metrics_cloudwatch_embedded dropped values"
    );
}

/// An edgepush emitter with `service=api` and its `requests` counter and
/// `latency` distribution on `route=/a`, `method=GET`.
fn edgepush_handles() -> (Emitter, edgepush::Counter, edgepush::Distribution) {
    let [(route, route_value), (method, method_value)] = SERIES_DIMENSIONS;
    let emitter = Emitter::new(
        Config::new(NAMESPACE)
            .expect("namespace")
            .dimension(COMMON_DIMENSION.0, COMMON_DIMENSION.1)
            .expect("dimension")
            .max_points_per_batch(1000)
            .max_batch_bytes(4 << 20),
    );
    let counter = emitter
        .counter(
            Metric::new("requests")
                .unit(Unit::Count)
                .dimension(route, route_value)
                .dimension(method, method_value),
        )
        .expect("counter");
    let latency = emitter
        .distribution(
            Metric::new("latency")
                .unit(Unit::Milliseconds)
                .dimension(route, route_value)
                .dimension(method, method_value),
        )
        .expect("distribution");
    (emitter, counter, latency)
}

/// Runs every benchmark with criterion (`c`), or interleaved when `c` is
/// `None`: each case once per round, in turn, for `EDGEPUSH_BENCH_ROUNDS`
/// rounds (default 15) of about 40 ms a case; the medians and the median
/// per-round ratio to the fastest peer go to `out` as JSON.
fn recording(mut c: Option<&mut Criterion>, out: Option<&std::path::Path>) {
    let values = Values::new();
    let [(route, route_value), (method, method_value)] = SERIES_DIMENSIONS;

    // edgepush: one emitter for the full value table, one for 64 values.
    let (_emitter, ep_counter, ep_latency) = edgepush_handles();
    let (_emitter64, ep64_counter, ep64_latency) = edgepush_handles();
    let (epf_emitter, epf_counter, epf_latency) = edgepush_handles();
    let (ep_keys, _, _) = edgepush_handles();

    // metrics + metrics_cloudwatch_embedded.
    let collector = cwe_collector();
    let cwe_counter = metrics::counter!("requests", route => route_value, method => method_value);
    let cwe_latency = metrics::histogram!("latency", route => route_value, method => method_value);
    check_cwe_keeps_every_value(collector, &cwe_latency);
    let cwe_drain = || collector.flush(std::io::sink()).expect("flush");

    // cadence.
    let statsd = StatsdClient::builder(NAMESPACE, NopMetricSink)
        .with_tag(COMMON_DIMENSION.0, COMMON_DIMENSION.1)
        .build();

    // OpenTelemetry SDK.
    let provider = SdkMeterProvider::builder()
        .with_reader(ManualReader::builder().build())
        .build();
    let meter = provider.meter("edgepush-bench");
    let otel_counter = meter.u64_counter("requests").with_unit("1").build();
    let otel_latency = meter.f64_histogram("latency").with_unit("ms").build();
    let attributes = [
        KeyValue::new(COMMON_DIMENSION.0, COMMON_DIMENSION.1),
        KeyValue::new(route, route_value),
        KeyValue::new(method, method_value),
    ];

    let mut cases: Vec<Case<'_>> = Vec::new();
    for threads in [1usize, 2] {
        let name = if threads == 1 {
            "recording-1thread".to_string()
        } else {
            format!("recording-{threads}threads")
        };
        let mut runs = match c.as_deref_mut() {
            Some(c) => {
                let mut group = c.benchmark_group(name);
                group.throughput(Throughput::Elements(threads as u64));
                Runs::Criterion(group)
            }
            None => Runs::Interleaved(&mut cases),
        };
        let cwe_chunk = CWE_MAX_UNFLUSHED / threads as u64;

        bench(
            &mut runs,
            "edgepush/handle",
            threads,
            u64::MAX,
            |_, i| {
                ep_counter.increment();
                ep_latency.record(values.get(i));
            },
            || {},
        );
        bench(
            &mut runs,
            "edgepush/handle_flushed_like_cwe",
            threads,
            cwe_chunk,
            |_, i| {
                epf_counter.increment();
                epf_latency.record(values.get(i));
            },
            || drop(epf_emitter.flush_at(0).expect("flush")),
        );
        bench(
            &mut runs,
            "edgepush/per_call",
            threads,
            u64::MAX,
            |_, i| {
                let dims = [("route", "/a"), ("method", "GET")];
                ep_keys
                    .add(&REQUESTS.dimensions(&dims), 1.0)
                    .expect("counter");
                ep_keys
                    .record(&LATENCY.dimensions(&dims), values.get(i))
                    .expect("distribution");
            },
            || {},
        );
        bench(
            &mut runs,
            "edgepush/handle_64_distinct_values",
            threads,
            u64::MAX,
            |_, i| {
                ep64_counter.increment();
                ep64_latency.record(values.get(i & 63));
            },
            || {},
        );
        bench(
            &mut runs,
            "metrics_cwe/handle",
            threads,
            cwe_chunk,
            |_, i| {
                cwe_counter.increment(1);
                cwe_latency.record(values.get(i));
            },
            cwe_drain,
        );
        bench(
            &mut runs,
            "metrics_cwe/macro_per_call",
            threads,
            cwe_chunk,
            |_, i| {
                metrics::counter!("requests", "route" => "/a", "method" => "GET").increment(1);
                metrics::histogram!("latency", "route" => "/a", "method" => "GET")
                    .record(values.get(i));
            },
            cwe_drain,
        );
        bench(
            &mut runs,
            "cadence/nop_sink",
            threads,
            u64::MAX,
            |_, i| {
                statsd
                    .count_with_tags("requests", 1_i64)
                    .with_tag(route, route_value)
                    .with_tag(method, method_value)
                    .send();
                statsd
                    .histogram_with_tags("latency", values.get(i))
                    .with_tag(route, route_value)
                    .with_tag(method, method_value)
                    .send();
            },
            || {},
        );
        bench(
            &mut runs,
            "otel_sdk/manual_reader",
            threads,
            u64::MAX,
            |_, i| {
                otel_counter.add(1, &attributes);
                otel_latency.record(values.get(i), &attributes);
            },
            || {},
        );
        if let Runs::Criterion(group) = runs {
            group.finish();
        }
    }
    if let Some(out) = out {
        interleaved(&cases, out);
    }
    drop(cases);

    // The macro form above spells the labels out; make sure they are the
    // same series as the handles'.
    assert_eq!(SERIES_DIMENSIONS, [("route", "/a"), ("method", "GET")]);
    drop(provider);
}

/// Runs `cases` interleaved and writes the results to `out`.
fn interleaved(cases: &[Case<'_>], out: &std::path::Path) {
    let rounds: usize = std::env::var("EDGEPUSH_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(15);
    // Iterations per turn: about 40 ms each, from a first timing.
    let iters: Vec<u64> = cases
        .iter()
        .map(|case| {
            let probe = 20_000;
            let t = (case.run)(probe).as_secs_f64().max(1e-6);
            ((0.04 / t * probe as f64) as u64).clamp(1_000, 50_000_000)
        })
        .collect();
    let mut ns: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    for _ in 0..rounds {
        for (i, case) in cases.iter().enumerate() {
            let t = (case.run)(iters[i]);
            ns[i].push(t.as_secs_f64() * 1e9 / iters[i] as f64);
        }
    }
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let is_peer = |name: &str| !name.starts_with("edgepush");
    // Cases that find their series on every call: edgepush by key, the
    // `metrics` macros, cadence (a line per call) and OpenTelemetry (which
    // has no bound instruments: attributes are looked up per call).
    let per_call = |name: &str| {
        name.contains("per_call") || name.starts_with("cadence") || name.starts_with("otel")
    };
    let mut results = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        // Per round, this case against the fastest peer of that round.
        let ratios: Vec<f64> = (0..rounds)
            .map(|r| {
                let fastest = cases
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.threads == case.threads && is_peer(c.name))
                    .map(|(j, _)| ns[j][r])
                    .fold(f64::INFINITY, f64::min);
                ns[i][r] / fastest
            })
            .collect();
        // Per-call cases also against the fastest per-call peer.
        let per_call_ratio = per_call(case.name).then(|| {
            let ratios: Vec<f64> = (0..rounds)
                .map(|r| {
                    let fastest = cases
                        .iter()
                        .enumerate()
                        .filter(|(_, c)| {
                            c.threads == case.threads && is_peer(c.name) && per_call(c.name)
                        })
                        .map(|(j, _)| ns[j][r])
                        .fold(f64::INFINITY, f64::min);
                    ns[i][r] / fastest
                })
                .collect();
            median(&ratios)
        });
        let m = median(&ns[i]);
        println!(
            "{} thread(s) {:<40} {m:>9.2} ns  {:.2}x the fastest peer{}",
            case.threads,
            case.name,
            median(&ratios),
            per_call_ratio.map_or(String::new(), |r| format!(
                ", {r:.2}x the fastest per-call peer"
            ))
        );
        results.push(serde_json::json!({
            "threads": case.threads,
            "name": case.name,
            "ns_median": m,
            "ns_rounds": ns[i],
            "ratio_to_fastest_peer": median(&ratios),
            "ratio_to_fastest_per_call_peer": per_call_ratio,
        }));
    }
    let doc = serde_json::json!({ "rounds": rounds, "cases": results });
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent).expect("output dir");
    }
    std::fs::write(out, serde_json::to_vec_pretty(&doc).expect("json")).expect("write");
    eprintln!("wrote {}", out.display());
}

fn main() {
    match std::env::var_os("EDGEPUSH_BENCH_INTERLEAVED") {
        Some(out) => {
            // Relative to the workspace, not to this crate (cargo's cwd).
            let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
            recording(None, Some(&root.join(out)))
        }
        None => {
            let mut c = Criterion::default().configure_from_args();
            recording(Some(&mut c), None);
            c.final_summary();
        }
    }
}
