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

use cadence::prelude::*;
use cadence::{NopMetricSink, StatsdClient};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use edgepush::{Config, Emitter, Metric, Unit};
use edgepush_bench::{COMMON_DIMENSION, NAMESPACE, SERIES_DIMENSIONS, latencies, run_concurrent};
use metrics_cloudwatch_embedded::Collector;
use opentelemetry::KeyValue;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::metrics::{ManualReader, SdkMeterProvider};

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

/// Adds one benchmark to `group`: `op` on `threads` threads, with `drain`
/// run (untimed) every `chunk` iterations per thread.
fn bench<O, D>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    threads: usize,
    chunk: u64,
    op: O,
    drain: D,
) where
    O: Fn(usize, u64) + Sync,
    D: Fn() + Sync,
{
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

fn recording(c: &mut Criterion) {
    let values = Values::new();
    let [(route, route_value), (method, method_value)] = SERIES_DIMENSIONS;

    // edgepush: one emitter for the full value table, one for 64 values.
    let (_emitter, ep_counter, ep_latency) = edgepush_handles();
    let (_emitter64, ep64_counter, ep64_latency) = edgepush_handles();
    let (epf_emitter, epf_counter, epf_latency) = edgepush_handles();

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

    for threads in [1usize, 2] {
        let name = if threads == 1 {
            "recording-1thread".to_string()
        } else {
            format!("recording-{threads}threads")
        };
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Elements(threads as u64));
        let cwe_chunk = CWE_MAX_UNFLUSHED / threads as u64;

        bench(
            &mut group,
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
            &mut group,
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
            &mut group,
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
            &mut group,
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
            &mut group,
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
            &mut group,
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
            &mut group,
            "otel_sdk/manual_reader",
            threads,
            u64::MAX,
            |_, i| {
                otel_counter.add(1, &attributes);
                otel_latency.record(values.get(i), &attributes);
            },
            || {},
        );
        group.finish();
    }

    // The macro form above spells the labels out; make sure they are the
    // same series as the handles'.
    assert_eq!(SERIES_DIMENSIONS, [("route", "/a"), ("method", "GET")]);
    drop(provider);
}

criterion_group!(benches, recording);
criterion_main!(benches);
