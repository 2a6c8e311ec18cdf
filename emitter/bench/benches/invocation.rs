//! A whole Lambda invocation's metrics: recording, then the bytes that leave
//! the process; and where gzip starts to pay for its CPU.
//!
//! The invocation (every library the same): 20 series on 3 dimensions
//! (`service=api` common, `route=/a`, `method=GET`): 10 counters
//! `count_0..9` incremented 10 times each, and 10 distributions
//! `latency_0..9` (milliseconds) given 10 values each from the benchmarks'
//! latency table: 200 recordings, then the flush to the bytes that leave the
//! process (a push body, or the EMF text Lambda ships from stdout).
//!
//! - `edgepush/per_call`: `Emitter::add`/`record` by `Key` per call (no
//!   handles kept, as Lambda handlers write it), `flush_at` to the push
//!   body as the default sends it (a body under `DEFAULT_GZIP_FROM` bytes
//!   goes as it is);
//! - `edgepush/per_call_gzip`: the same, every body gzip'd;
//! - `edgepush/handles`: handles registered once at start-up (as a
//!   metrique user declares a struct once), recorded per invocation, the
//!   default body;
//! - `edgepush/handles_10k_idle`: the same with 10,000 more series
//!   registered in the emitter and never recorded (a long-lived function's
//!   routes and tenants seen once): what idle series cost a flush;
//! - `metrique/emf`: AWS's `metrique` 0.1: a `#[metrics]` struct per
//!   invocation (10 `u64` counters, 10 exact `Histogram<f64, SortAndMerge>`
//!   distributions), closed and formatted as one EMF line by a reused `Emf`
//!   formatter into a `Vec`;
//! - `metrics_cwe/emf`: the `metrics` macros per call with
//!   metrics_cloudwatch_embedded, flushed into a `Vec` as EMF;
//! - `otel_sdk/collect`: the OpenTelemetry SDK's instruments with the three
//!   attributes per call, then a `ManualReader` collect: the aggregation a
//!   push starts from, without encoding it (OTLP's protobuf and gzip would
//!   come on top), so a lower bound of its cost.
//!
//! Each case runs its invocations in turn with the others, 15 rounds
//! (`EDGEPUSH_BENCH_ROUNDS`); medians of the per-round time per invocation
//! and the median per-round ratio to `metrique/emf`.
//!
//! Then the gzip crossover: wire v3 bodies like the invocation's grown to n
//! series (half counters, half distributions whose values come from five
//! lists of ten), each recorded and flushed with and without gzip (the
//! emitter's reused deflate state) and gzip'd by a fresh encoder; the link
//! speed below which gzip's saved bytes take longer to send than gzip took
//! is where it starts to pay.
//!
//! Writes `EDGEPUSH_BENCH_OUT` (JSON; default `target/bench/invocation.json`
//! in the workspace) and prints the tables.
//!
//! `cargo bench -p edgepush-bench --bench invocation`

use std::hint::black_box;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use edgepush::{Config, Emitter, Key, Unit};
use edgepush_bench::{COMMON_DIMENSION, GZIP_LEVEL, NAMESPACE, TIMESTAMP_MS, gzip, latencies};
use metrique::emf::Emf;
use metrique::unit::{Count, Millisecond};
use metrique::unit_of_work::metrics;
use metrique::writer::format::Format;
use metrique::writer::stream::MergeGlobals;
use metrique::writer::{Entry, FormatExt};
use metrique::{CloseValue, RootEntry};
use metrique_aggregation::histogram::{Histogram, SortAndMerge};
use opentelemetry::KeyValue;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{
    InstrumentKind, ManualReader, Pipeline, SdkMeterProvider, Temporality,
};

const COUNTS: [&str; 10] = [
    "count_0", "count_1", "count_2", "count_3", "count_4", "count_5", "count_6", "count_7",
    "count_8", "count_9",
];
const LATENCIES: [&str; 10] = [
    "latency_0",
    "latency_1",
    "latency_2",
    "latency_3",
    "latency_4",
    "latency_5",
    "latency_6",
    "latency_7",
    "latency_8",
    "latency_9",
];
const DIMENSIONS: [(&str, &str); 2] = [("route", "/a"), ("method", "GET")];

/// The values distribution `i` records: its own 10 of the table.
fn value(values: &[f64], i: usize, j: usize) -> f64 {
    black_box(values[(i * 10 + j) % values.len()])
}

// ---- edgepush ----

fn edgepush_config(gzip_from: usize) -> Config {
    Config::new(NAMESPACE)
        .and_then(|c| c.dimension(COMMON_DIMENSION.0, COMMON_DIMENSION.1))
        .expect("config")
        .gzip_from(gzip_from)
}

fn edgepush_emitter(gzip_from: usize) -> Emitter {
    Emitter::new(edgepush_config(gzip_from))
}

/// One invocation; the body bytes.
fn edgepush_invocation(emitter: &Emitter, values: &[f64]) -> usize {
    for i in 0..10 {
        let count = Key::new(COUNTS[i])
            .unit(Unit::Count)
            .dimensions(&DIMENSIONS);
        let latency = Key::new(LATENCIES[i])
            .unit(Unit::Milliseconds)
            .dimensions(&DIMENSIONS);
        for j in 0..10 {
            emitter.add(&count, 1.0).expect("counter");
            emitter
                .record(&latency, value(values, i, j))
                .expect("distribution");
        }
    }
    let batches = emitter.flush_at(TIMESTAMP_MS).expect("flush");
    batches.iter().map(|b| black_box(b.body()).len()).sum()
}

/// The invocation's series as handles, registered once at start-up.
struct Handles {
    counts: Vec<edgepush::Counter>,
    latencies: Vec<edgepush::Distribution>,
}

impl Handles {
    fn new(emitter: &Emitter) -> Self {
        let metric = |name: &str, unit| {
            let mut m = edgepush::Metric::new(name).unit(unit);
            for (n, v) in DIMENSIONS {
                m = m.dimension(n, v);
            }
            m
        };
        Handles {
            counts: COUNTS
                .iter()
                .map(|n| emitter.counter(metric(n, Unit::Count)).expect("counter"))
                .collect(),
            latencies: LATENCIES
                .iter()
                .map(|n| {
                    emitter
                        .distribution(metric(n, Unit::Milliseconds))
                        .expect("distribution")
                })
                .collect(),
        }
    }

    /// One invocation; the body bytes.
    fn invocation(&self, emitter: &Emitter, values: &[f64]) -> usize {
        for i in 0..10 {
            for j in 0..10 {
                self.counts[i].increment();
                self.latencies[i].record(value(values, i, j));
            }
        }
        let batches = emitter.flush_at(TIMESTAMP_MS).expect("flush");
        batches.iter().map(|b| black_box(b.body()).len()).sum()
    }
}

// ---- metrique ----

#[derive(Entry)]
struct Globals {
    service: &'static str,
}

type Latency = Histogram<f64, SortAndMerge>;

#[metrics(emf::dimension_sets = [["route", "method"]])]
struct InvocationMetrics {
    #[metrics(timestamp)]
    timestamp: SystemTime,
    route: &'static str,
    method: &'static str,
    #[metrics(unit = Count)]
    count_0: u64,
    #[metrics(unit = Count)]
    count_1: u64,
    #[metrics(unit = Count)]
    count_2: u64,
    #[metrics(unit = Count)]
    count_3: u64,
    #[metrics(unit = Count)]
    count_4: u64,
    #[metrics(unit = Count)]
    count_5: u64,
    #[metrics(unit = Count)]
    count_6: u64,
    #[metrics(unit = Count)]
    count_7: u64,
    #[metrics(unit = Count)]
    count_8: u64,
    #[metrics(unit = Count)]
    count_9: u64,
    #[metrics(unit = Millisecond)]
    latency_0: Latency,
    #[metrics(unit = Millisecond)]
    latency_1: Latency,
    #[metrics(unit = Millisecond)]
    latency_2: Latency,
    #[metrics(unit = Millisecond)]
    latency_3: Latency,
    #[metrics(unit = Millisecond)]
    latency_4: Latency,
    #[metrics(unit = Millisecond)]
    latency_5: Latency,
    #[metrics(unit = Millisecond)]
    latency_6: Latency,
    #[metrics(unit = Millisecond)]
    latency_7: Latency,
    #[metrics(unit = Millisecond)]
    latency_8: Latency,
    #[metrics(unit = Millisecond)]
    latency_9: Latency,
}

fn metrique_format() -> MergeGlobals<Emf, Globals> {
    Emf::builder(NAMESPACE.to_string(), vec![vec!["service".to_string()]])
        .build()
        .merge_globals(Globals {
            service: COMMON_DIMENSION.1,
        })
}

/// One invocation into `out` (cleared first); its bytes.
fn metrique_invocation(
    format: &mut MergeGlobals<Emf, Globals>,
    values: &[f64],
    out: &mut Vec<u8>,
) -> usize {
    let mut m = InvocationMetrics {
        timestamp: UNIX_EPOCH + Duration::from_millis(TIMESTAMP_MS as u64),
        route: DIMENSIONS[0].1,
        method: DIMENSIONS[1].1,
        count_0: 0,
        count_1: 0,
        count_2: 0,
        count_3: 0,
        count_4: 0,
        count_5: 0,
        count_6: 0,
        count_7: 0,
        count_8: 0,
        count_9: 0,
        latency_0: Latency::default(),
        latency_1: Latency::default(),
        latency_2: Latency::default(),
        latency_3: Latency::default(),
        latency_4: Latency::default(),
        latency_5: Latency::default(),
        latency_6: Latency::default(),
        latency_7: Latency::default(),
        latency_8: Latency::default(),
        latency_9: Latency::default(),
    };
    {
        let counters = [
            &mut m.count_0,
            &mut m.count_1,
            &mut m.count_2,
            &mut m.count_3,
            &mut m.count_4,
            &mut m.count_5,
            &mut m.count_6,
            &mut m.count_7,
            &mut m.count_8,
            &mut m.count_9,
        ];
        for c in counters {
            for _ in 0..10 {
                *black_box(&mut *c) += 1;
            }
        }
        let latencies = [
            &mut m.latency_0,
            &mut m.latency_1,
            &mut m.latency_2,
            &mut m.latency_3,
            &mut m.latency_4,
            &mut m.latency_5,
            &mut m.latency_6,
            &mut m.latency_7,
            &mut m.latency_8,
            &mut m.latency_9,
        ];
        for (i, h) in latencies.into_iter().enumerate() {
            for j in 0..10 {
                h.add_value(value(values, i, j));
            }
        }
    }
    out.clear();
    format.format(&RootEntry::new(m.close()), out).expect("EMF");
    out.len()
}

// ---- metrics + metrics_cloudwatch_embedded ----

fn cwe_invocation(
    collector: &metrics_cloudwatch_embedded::Collector,
    values: &[f64],
    out: &mut Vec<u8>,
) -> usize {
    for i in 0..10 {
        for j in 0..10 {
            metrics::counter!(COUNTS[i], "route" => "/a", "method" => "GET").increment(1);
            metrics::histogram!(LATENCIES[i], "route" => "/a", "method" => "GET")
                .record(value(values, i, j));
        }
    }
    out.clear();
    collector.flush(&mut *out).expect("flush");
    out.len()
}

// ---- OpenTelemetry SDK ----

/// A `ManualReader` the benchmark can collect from after handing it to
/// the provider.
#[derive(Debug, Clone)]
struct SharedReader(Arc<ManualReader>);

impl MetricReader for SharedReader {
    fn register_pipeline(&self, pipeline: Weak<Pipeline>) {
        self.0.register_pipeline(pipeline);
    }
    fn collect(&self, rm: &mut ResourceMetrics) -> OTelSdkResult {
        self.0.collect(rm)
    }
    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }
    fn temporality(&self, kind: InstrumentKind) -> Temporality {
        self.0.temporality(kind)
    }
}

struct Otel {
    reader: SharedReader,
    _provider: SdkMeterProvider,
    counters: Vec<opentelemetry::metrics::Counter<u64>>,
    histograms: Vec<opentelemetry::metrics::Histogram<f64>>,
    attributes: [KeyValue; 3],
}

impl Otel {
    fn new() -> Self {
        let reader = SharedReader(Arc::new(
            ManualReader::builder()
                .with_temporality(Temporality::Delta)
                .build(),
        ));
        let provider = SdkMeterProvider::builder()
            .with_reader(reader.clone())
            .build();
        let meter = provider.meter("edgepush-bench");
        Otel {
            counters: COUNTS
                .iter()
                .map(|n| meter.u64_counter(*n).with_unit("1").build())
                .collect(),
            histograms: LATENCIES
                .iter()
                .map(|n| meter.f64_histogram(*n).with_unit("ms").build())
                .collect(),
            attributes: [
                KeyValue::new(COMMON_DIMENSION.0, COMMON_DIMENSION.1),
                KeyValue::new(DIMENSIONS[0].0, DIMENSIONS[0].1),
                KeyValue::new(DIMENSIONS[1].0, DIMENSIONS[1].1),
            ],
            reader,
            _provider: provider,
        }
    }

    fn invocation(&self, values: &[f64], rm: &mut ResourceMetrics) -> usize {
        for i in 0..10 {
            for j in 0..10 {
                self.counters[i].add(1, &self.attributes);
                self.histograms[i].record(value(values, i, j), &self.attributes);
            }
        }
        self.reader.collect(rm).expect("collect");
        black_box(rm.scope_metrics().count())
    }
}

// ---- the run ----

/// One case: runs `n` invocations, returns their time and the bytes of the
/// last.
struct Case<'a> {
    name: &'static str,
    run: Box<dyn FnMut(u64) -> (Duration, usize) + 'a>,
}

fn timed(mut op: impl FnMut() -> usize) -> impl FnMut(u64) -> (Duration, usize) {
    move |n| {
        let start = Instant::now();
        let mut bytes = 0;
        for _ in 0..n {
            bytes = op();
        }
        (start.elapsed(), bytes)
    }
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn invocations(values: &[f64]) -> serde_json::Value {
    let rounds: usize = std::env::var("EDGEPUSH_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(15);
    let by_default = edgepush_emitter(edgepush::DEFAULT_GZIP_FROM);
    let always = edgepush_emitter(0);
    let with_handles = edgepush_emitter(edgepush::DEFAULT_GZIP_FROM);
    let handles = Handles::new(&with_handles);
    let with_idle = Emitter::new(edgepush_config(edgepush::DEFAULT_GZIP_FROM).max_series(20_000));
    let idle_handles = Handles::new(&with_idle);
    for i in 0..10_000 {
        let idle = with_idle
            .counter(edgepush::Metric::new(format!("idle_{i}")))
            .expect("idle series");
        idle.increment();
    }
    with_idle.flush_at(TIMESTAMP_MS).expect("flush");
    let mut format = metrique_format();
    let mut metrique_out = Vec::new();
    let collector = metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace(NAMESPACE)
        .with_dimension(COMMON_DIMENSION.0, COMMON_DIMENSION.1)
        .init()
        .expect("install the metrics_cloudwatch_embedded recorder");
    metrics::describe_histogram!("latency_0", metrics::Unit::Milliseconds, "latency");
    let mut cwe_out = Vec::new();
    let otel = Otel::new();
    let mut rm = ResourceMetrics::default();

    let mut cases = vec![
        Case {
            name: "edgepush/per_call",
            run: Box::new(timed(|| edgepush_invocation(&by_default, values))),
        },
        Case {
            name: "edgepush/per_call_gzip",
            run: Box::new(timed(|| edgepush_invocation(&always, values))),
        },
        Case {
            name: "edgepush/handles",
            run: Box::new(timed(|| handles.invocation(&with_handles, values))),
        },
        Case {
            name: "edgepush/handles_10k_idle",
            run: Box::new(timed(|| idle_handles.invocation(&with_idle, values))),
        },
        Case {
            name: "metrique/emf",
            run: Box::new(timed(|| {
                metrique_invocation(&mut format, values, &mut metrique_out)
            })),
        },
        Case {
            name: "metrics_cwe/emf",
            run: Box::new(timed(|| cwe_invocation(collector, values, &mut cwe_out))),
        },
        Case {
            name: "otel_sdk/collect",
            run: Box::new(timed(|| otel.invocation(values, &mut rm))),
        },
    ];
    // `EDGEPUSH_BENCH_CASE=<part of a name>`: only those cases (to profile one).
    if let Ok(only) = std::env::var("EDGEPUSH_BENCH_CASE") {
        cases.retain(|c| c.name.contains(&only));
    }
    // Invocations per turn: about 50 ms each, from a first timing.
    let per_turn: Vec<u64> = cases
        .iter_mut()
        .map(|c| {
            let (t, _) = (c.run)(200);
            ((0.05 / t.as_secs_f64().max(1e-6) * 200.0) as u64).clamp(50, 1_000_000)
        })
        .collect();
    let mut us: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    let mut bytes = vec![0usize; cases.len()];
    for _ in 0..rounds {
        for (i, c) in cases.iter_mut().enumerate() {
            let (t, b) = (c.run)(per_turn[i]);
            us[i].push(t.as_secs_f64() * 1e6 / per_turn[i] as f64);
            bytes[i] = b;
        }
    }
    let reference = cases
        .iter()
        .position(|c| c.name == "metrique/emf")
        .unwrap_or(0);
    let mut out = Vec::new();
    println!(
        "\nA whole invocation (20 series, 200 recordings, flushed to bytes), {rounds} rounds:"
    );
    for (i, c) in cases.iter().enumerate() {
        let ratios: Vec<f64> = (0..rounds).map(|r| us[i][r] / us[reference][r]).collect();
        let (m, ratio) = (median(&us[i]), median(&ratios));
        println!(
            "{:<28} {m:>9.2} us  {:>6} B  {ratio:.2}x metrique/emf",
            c.name, bytes[i]
        );
        out.push(serde_json::json!({
            "name": c.name,
            "us_median": m,
            "us_rounds": us[i],
            "bytes": bytes[i],
            "ratio_to_metrique": ratio,
        }));
    }
    serde_json::json!({ "rounds": rounds, "cases": out })
}

/// The body of [`grown`].
fn body(emitter: &Emitter, n: usize, values: &[f64]) -> Vec<u8> {
    record_grown(emitter, n, values);
    let batches = emitter.flush_at(TIMESTAMP_MS).expect("flush");
    assert_eq!(batches.len(), 1, "one batch");
    batches[0].body().to_vec()
}

/// A wire v3 body of `n` series of the invocation workload (half counters,
/// half distributions), flushed by `emitter`; its bytes.
fn grown(emitter: &Emitter, n: usize, values: &[f64]) -> usize {
    record_grown(emitter, n, values);
    let batches = emitter.flush_at(TIMESTAMP_MS).expect("flush");
    batches.iter().map(|b| b.body().len()).sum()
}

/// Records [`grown`]'s workload.
fn record_grown(emitter: &Emitter, n: usize, values: &[f64]) {
    let names: Vec<String> = (0..n).map(|i| format!("metric_{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        if i % 2 == 0 {
            let key = Key::new(name).unit(Unit::Count).dimensions(&DIMENSIONS);
            for _ in 0..10 {
                emitter.add(&key, 1.0).expect("counter");
            }
        } else {
            let key = Key::new(name)
                .unit(Unit::Milliseconds)
                .dimensions(&DIMENSIONS);
            for j in 0..10 {
                emitter
                    .record(&key, value(values, i % 10, j))
                    .expect("distribution");
            }
        }
    }
}

/// Median time of `runs` runs of `op`, in microseconds.
fn time_us(runs: usize, mut op: impl FnMut()) -> f64 {
    let mut t = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        op();
        t.push(start.elapsed().as_secs_f64() * 1e6);
    }
    median(&t)
}

fn crossover(values: &[f64]) -> serde_json::Value {
    println!(
        "\nWhere gzip (level {GZIP_LEVEL}) pays: wire v3 bodies of n series; flush time with and without gzip (reused deflate state), a fresh encoder's gzip alone, and the link speed below which the bytes gzip saves take longer to send than gzip took:"
    );
    println!(
        "{:>6} {:>9} {:>9} {:>12} {:>12} {:>12} {:>14}",
        "series", "raw B", "gzip B", "rec+flush raw", "rec+flush gz", "fresh gzip", "pays below"
    );
    let mut rows = Vec::new();
    for n in [2usize, 6, 20, 60, 200, 1000] {
        let raw = edgepush_emitter(usize::MAX);
        let gz = edgepush_emitter(0);
        let raw_bytes = grown(&raw, n, values);
        let gz_bytes = grown(&gz, n, values);
        let runs = (20_000 / n).clamp(30, 2_000);
        let mut t_raw = Vec::new();
        let mut t_gz = Vec::new();
        // Interleaved: one timing of each in turn.
        for _ in 0..5 {
            t_raw.push(time_us(runs, || {
                black_box(grown(&raw, n, values));
            }));
            t_gz.push(time_us(runs, || {
                black_box(grown(&gz, n, values));
            }));
        }
        let (t_raw, t_gz) = (median(&t_raw), median(&t_gz));
        // A fresh encoder over the same encoded body (the raw body is the
        // encoded batch).
        let sample = body(&edgepush_emitter(usize::MAX), n, values);
        let fresh = time_us(runs, || drop(black_box(gzip(&sample, GZIP_LEVEL))));
        let fast = time_us(runs, || drop(black_box(gzip(&sample, 1))));
        let fast_bytes = gzip(&sample, 1).len();
        let gzip_us = (t_gz - t_raw).max(0.01);
        let saved = raw_bytes.saturating_sub(gz_bytes);
        // bits / microsecond = Mbit/s.
        let pays_below_mbps = saved as f64 * 8.0 / gzip_us;
        println!(
            "{n:>6} {raw_bytes:>9} {gz_bytes:>9} {t_raw:>9.2} us {t_gz:>9.2} us {fresh:>9.2} us {pays_below_mbps:>9.0} Mbit/s   level 1: {fast:.2} us {fast_bytes} B"
        );
        rows.push(serde_json::json!({
            "series": n,
            "raw_bytes": raw_bytes,
            "gzip_bytes": gz_bytes,
            "flush_raw_us": t_raw,
            "flush_gzip_us": t_gz,
            "fresh_gzip_us": fresh,
            "fresh_gzip_level1_us": fast,
            "gzip_level1_bytes": fast_bytes,
            "pays_below_mbit_s": pays_below_mbps,
        }));
    }
    serde_json::Value::Array(rows)
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken.
    let values = latencies(1024, 11);
    if std::env::var_os("EDGEPUSH_BENCH_CASE").is_some() {
        invocations(&values);
        return;
    }
    let doc = serde_json::json!({
        "invocation": invocations(&values),
        "crossover": crossover(&values),
        "default_gzip_from": edgepush::DEFAULT_GZIP_FROM,
    });
    let out = std::env::var_os("EDGEPUSH_BENCH_OUT").map_or_else(
        || {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/bench/invocation.json")
        },
        |p| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../..")
                .join(p)
        },
    );
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent).expect("output dir");
    }
    std::fs::write(&out, serde_json::to_vec_pretty(&doc).expect("json")).expect("write");
    eprintln!("wrote {}", out.display());
}
