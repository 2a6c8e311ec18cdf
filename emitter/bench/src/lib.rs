//! Shared pieces of the edgepush benchmarks (`benches/recording.rs` and
//! `benches/flush.rs`).
//!
//! - [`latencies`], a value table so every library records the same values;
//! - [`run_concurrent`], a timing harness for `criterion`'s `iter_custom` that
//!   runs the same operation on several threads at once;
//! - [`Workload`], the flush workload (1,000 distribution series, 10 values
//!   each), which it can record into an edgepush [`Emitter`] and encode as
//!   CloudWatch Embedded Metric Format (EMF) log lines the way AWS Lambda
//!   Powertools prints them ([`Workload::emf_lines`]);
//! - [`gzip`], to compress an EMF log stream at the level edgepush uses.
//!
//! Peer libraries are dev-dependencies of this crate only; nothing here
//! depends on them.

use std::hint::spin_loop;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use edgepush::{Config, Distribution, Emitter, Metric, Unit};
use serde::Serialize;
use serde::ser::SerializeMap;

/// Namespace (CloudWatch) / prefix (StatsD) / meter name used by every bench.
pub const NAMESPACE: &str = "Bench";
/// The dimension every series carries (an emitter-wide one where the library
/// has that notion): `service=api`.
pub const COMMON_DIMENSION: (&str, &str) = ("service", "api");
/// The two per-series dimensions of the recording benchmarks.
pub const SERIES_DIMENSIONS: [(&str, &str); 2] = [("route", "/a"), ("method", "GET")];
/// Timestamp stamped on every flush, milliseconds since the Unix epoch.
pub const TIMESTAMP_MS: i64 = 1_764_000_000_000;
/// gzip level edgepush uses by default; EMF streams are compressed with it too.
pub const GZIP_LEVEL: u32 = 5;

/// EMF: at most 100 metric definitions per document (per `CloudWatchMetrics`
/// directive).
pub const EMF_MAX_METRICS_PER_DOCUMENT: usize = 100;
/// EMF: at most 100 values in a metric's value array.
pub const EMF_MAX_VALUES_PER_METRIC: usize = 100;
/// EMF: at most 30 dimensions in a dimension set.
pub const EMF_MAX_DIMENSIONS: usize = 30;

/// `n` pseudo-random latencies in milliseconds, 1.0 to 1000.9 in steps of
/// 0.1 (so each prints as at most 6 characters), from a fixed seed.
pub fn latencies(n: usize, seed: u64) -> Vec<f64> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            // Knuth's MMIX LCG; the high bits are the good ones.
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let tenths = 10 + (x >> 33) % 10_000;
            tenths as f64 / 10.0
        })
        .collect()
}

/// A barrier whose waiters spin (then yield), so threads leave it within
/// nanoseconds of each other and their timed sections overlap. A blocking
/// barrier wakes sleepers microseconds apart, which would hide contention.
#[derive(Debug)]
pub struct SpinBarrier {
    threads: usize,
    arrived: AtomicUsize,
    generation: AtomicUsize,
}

impl SpinBarrier {
    /// A barrier for `threads` threads (at least 1).
    pub fn new(threads: usize) -> Self {
        SpinBarrier {
            threads: threads.max(1),
            arrived: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
        }
    }

    /// Returns once all threads have called `wait` for this generation.
    pub fn wait(&self) {
        let generation = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.threads {
            self.arrived.store(0, Ordering::Relaxed);
            self.generation.fetch_add(1, Ordering::Release);
            return;
        }
        let mut spins = 0u32;
        while self.generation.load(Ordering::Acquire) == generation {
            if spins < 20_000 {
                spins += 1;
                spin_loop();
            } else {
                // Another process may hold the other core: let it run.
                std::thread::yield_now();
            }
        }
    }
}

/// Runs `op(thread, i)` for `i in 0..iters` on each of `threads` threads
/// concurrently and returns the longest per-thread time spent in `op`, for
/// `criterion`'s `iter_custom`: the reported time per iteration is then the
/// wall time for every thread to do one operation each (equal to the
/// single-thread time when there is no contention).
///
/// Every `chunk` iterations the threads meet at a barrier, `between` runs on
/// one thread outside the timed sections, and they resume together. Pass
/// `u64::MAX` (and a no-op) to run without pauses; libraries that must be
/// drained every N values (metrics_cloudwatch_embedded keeps at most 100
/// unflushed histogram values) use it to drain without timing the drain.
///
/// Thread 0 is the calling thread; the others are scoped threads whose start
/// is not timed.
pub fn run_concurrent<O, B>(threads: usize, iters: u64, chunk: u64, op: O, between: B) -> Duration
where
    O: Fn(usize, u64) + Sync,
    B: Fn() + Sync,
{
    let threads = threads.max(1);
    let chunk = chunk.max(1);
    let barrier = SpinBarrier::new(threads);
    let worker = |thread: usize| -> Duration {
        let mut spent = Duration::ZERO;
        let mut start = 0u64;
        while start < iters {
            let end = start.saturating_add(chunk).min(iters);
            barrier.wait();
            let t0 = Instant::now();
            for i in start..end {
                op(thread, i);
            }
            spent += t0.elapsed();
            barrier.wait();
            if thread == 0 {
                // The others wait at the next round's barrier meanwhile.
                between();
            }
            start = end;
        }
        spent
    };
    std::thread::scope(|scope| {
        let others: Vec<_> = (1..threads)
            .map(|t| scope.spawn(move || worker(t)))
            .collect();
        let mut longest = worker(0);
        for handle in others {
            longest = longest.max(handle.join().expect("benchmark thread panicked"));
        }
        longest
    })
}

/// One series of the flush workload: a distribution and its recorded values.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Metric name.
    pub name: String,
    /// Dimensions besides the workload's common ones.
    pub dimensions: Vec<(String, String)>,
    /// Values recorded, in order.
    pub values: Vec<f64>,
    /// Stored at one-second resolution (EMF `StorageResolution: 1`).
    pub high_resolution: bool,
}

/// Metrics of one namespace, each a distribution in milliseconds, with their
/// recorded values: what a function records between two flushes.
#[derive(Clone, Debug, PartialEq)]
pub struct Workload {
    /// CloudWatch namespace.
    pub namespace: String,
    /// Dimensions common to every series.
    pub common: Vec<(String, String)>,
    /// The series.
    pub series: Vec<Series>,
}

/// Metric names of the flush workload.
const FLUSH_METRICS: [&str; 10] = [
    "latency",
    "db_time",
    "cache_time",
    "render_time",
    "queue_time",
    "auth_time",
    "upstream_time",
    "serialize_time",
    "io_wait",
    "cpu_time",
];

impl Workload {
    /// The flush workload: 10 metric names x 50 routes x 2 methods = 1,000
    /// distribution series (3 dimensions each: `service` common, `route` and
    /// `method` per series), 10 values each = 10,000 recorded values.
    pub fn flush() -> Self {
        let values = latencies(10_000, 42);
        let mut chunks = values.chunks(10);
        let mut series = Vec::with_capacity(1000);
        for route in 0..50 {
            for method in ["GET", "POST"] {
                for name in FLUSH_METRICS {
                    series.push(Series {
                        name: name.to_string(),
                        dimensions: vec![
                            ("route".to_string(), format!("/api/v1/resource{route}")),
                            ("method".to_string(), method.to_string()),
                        ],
                        values: chunks.next().expect("10,000 values").to_vec(),
                        high_resolution: false,
                    });
                }
            }
        }
        Workload {
            namespace: NAMESPACE.to_string(),
            common: vec![(
                COMMON_DIMENSION.0.to_string(),
                COMMON_DIMENSION.1.to_string(),
            )],
            series,
        }
    }

    /// How many values are recorded in all (the "data points" of the
    /// bytes-per-datapoint comparison).
    pub fn values(&self) -> usize {
        self.series.iter().map(|s| s.values.len()).sum()
    }

    /// An emitter with this workload's namespace and common dimensions that
    /// puts all 1,000 series of a flush in one batch, in wire `format`.
    pub fn emitter(&self, format: edgepush::wire::Version) -> edgepush::Result<Emitter> {
        let mut config = Config::new(self.namespace.clone())?
            .wire_version(format)
            .max_points_per_batch(1000)
            .max_batch_bytes(4 << 20)
            .gzip_level(GZIP_LEVEL);
        for (name, value) in &self.common {
            config = config.dimension(name.clone(), value.clone())?;
        }
        Ok(Emitter::new(config))
    }

    /// Registers every series with `emitter`, in order.
    pub fn register(&self, emitter: &Emitter) -> edgepush::Result<Vec<Distribution>> {
        self.series
            .iter()
            .map(|s| {
                let mut metric = Metric::new(s.name.clone()).unit(Unit::Milliseconds);
                for (name, value) in &s.dimensions {
                    metric = metric.dimension(name.clone(), value.clone());
                }
                if s.high_resolution {
                    metric = metric.high_resolution();
                }
                emitter.distribution(metric)
            })
            .collect()
    }

    /// Records every value into the handles [`Workload::register`] returned.
    pub fn record(&self, handles: &[Distribution]) {
        for (s, handle) in self.series.iter().zip(handles) {
            for &v in &s.values {
                handle.record(v);
            }
        }
    }

    /// The workload as CloudWatch EMF log lines, one JSON document per line
    /// (without the newline), the way AWS Lambda Powertools prints them:
    ///
    /// - compact JSON (Powertools prints with `separators=(",", ":")`);
    /// - one document per dimension set (top-level keys can hold one value
    ///   per dimension name), with every metric of that set in it, at most
    ///   [`EMF_MAX_METRICS_PER_DOCUMENT`] metric definitions per document;
    /// - a metric recorded several times carries its values as an array in
    ///   recording order, duplicates included (EMF has no counts), at most
    ///   [`EMF_MAX_VALUES_PER_METRIC`] per document; longer series continue
    ///   in further documents; a single value is written as a plain number;
    /// - `_aws` metadata: `Timestamp` (ms), and one `CloudWatchMetrics`
    ///   directive with `Namespace`, a single dimension set (common
    ///   dimensions first) and the metric definitions (`Name`, `Unit`, and
    ///   `StorageResolution` only when it is 1).
    ///
    /// Errors when a metric name equals a dimension name of its document (both
    /// would be the same top-level key) or a set has more than 30 dimensions.
    ///
    /// Spec: <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>
    pub fn emf_lines(&self, timestamp_ms: i64) -> Result<Vec<String>, String> {
        // Group series by dimension set, keeping first-seen order.
        type Dimensions = [(String, String)];
        let mut groups: Vec<(&Dimensions, Vec<&Series>)> = Vec::new();
        for s in &self.series {
            match groups
                .iter_mut()
                .find(|(dims, _)| *dims == s.dimensions.as_slice())
            {
                Some((_, members)) => members.push(s),
                None => groups.push((s.dimensions.as_slice(), vec![s])),
            }
        }
        let mut lines = Vec::new();
        for (dims, members) in groups {
            let dimensions: Vec<(&str, &str)> = self
                .common
                .iter()
                .chain(dims)
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            if dimensions.len() > EMF_MAX_DIMENSIONS {
                return Err(format!("{} dimensions in one set", dimensions.len()));
            }
            for s in &members {
                if dimensions.iter().any(|(n, _)| *n == s.name) {
                    return Err(format!("metric {:?} is also a dimension name", s.name));
                }
            }
            // Each document takes the next (up to) 100 values of (up to) 100
            // metrics that still have values left.
            let mut offset = 0;
            loop {
                let pending: Vec<&Series> = members
                    .iter()
                    .copied()
                    .filter(|s| s.values.len() > offset)
                    .collect();
                if pending.is_empty() {
                    break;
                }
                for batch in pending.chunks(EMF_MAX_METRICS_PER_DOCUMENT) {
                    let doc = EmfDocument {
                        namespace: &self.namespace,
                        timestamp_ms,
                        dimensions: &dimensions,
                        metrics: batch
                            .iter()
                            .map(|s| {
                                let end = (offset + EMF_MAX_VALUES_PER_METRIC).min(s.values.len());
                                (*s, &s.values[offset..end])
                            })
                            .collect(),
                    };
                    lines.push(serde_json::to_string(&doc).map_err(|e| e.to_string())?);
                }
                offset += EMF_MAX_VALUES_PER_METRIC;
            }
        }
        Ok(lines)
    }
}

/// One EMF document, serialised with its keys in a fixed order: `_aws`, the
/// dimension values, then the metric values.
struct EmfDocument<'a> {
    namespace: &'a str,
    timestamp_ms: i64,
    dimensions: &'a [(&'a str, &'a str)],
    metrics: Vec<(&'a Series, &'a [f64])>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct EmfAws<'a> {
    timestamp: i64,
    cloud_watch_metrics: [EmfDirective<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct EmfDirective<'a> {
    namespace: &'a str,
    dimensions: [Vec<&'a str>; 1],
    metrics: Vec<EmfMetric<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct EmfMetric<'a> {
    name: &'a str,
    unit: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    storage_resolution: Option<u32>,
}

impl Serialize for EmfDocument<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let aws = EmfAws {
            timestamp: self.timestamp_ms,
            cloud_watch_metrics: [EmfDirective {
                namespace: self.namespace,
                dimensions: [self.dimensions.iter().map(|(n, _)| *n).collect()],
                metrics: self
                    .metrics
                    .iter()
                    .map(|(s, _)| EmfMetric {
                        name: &s.name,
                        unit: "Milliseconds",
                        storage_resolution: s.high_resolution.then_some(1),
                    })
                    .collect(),
            }],
        };
        let mut map =
            serializer.serialize_map(Some(1 + self.dimensions.len() + self.metrics.len()))?;
        map.serialize_entry("_aws", &aws)?;
        for (name, value) in self.dimensions {
            map.serialize_entry(name, value)?;
        }
        for (s, values) in &self.metrics {
            match values {
                [one] => map.serialize_entry(&s.name, one)?,
                many => map.serialize_entry(&s.name, many)?,
            }
        }
        map.end()
    }
}

/// `bytes` gzip-compressed at `level` (flate2's Rust backend, as edgepush).
pub fn gzip(bytes: &[u8], level: u32) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 4 + 64),
        flate2::Compression::new(level),
    );
    gz.write_all(bytes).expect("writing to a Vec cannot fail");
    gz.finish().expect("writing to a Vec cannot fail")
}

/// EMF log lines as the log stream holds them: each line followed by `\n`.
pub fn emf_stream(lines: &[String]) -> Vec<u8> {
    let mut out = Vec::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
    for line in lines {
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// The CloudWatch units (`MetricDatum.Unit`) EMF accepts.
    const UNITS: [&str; 27] = [
        "Seconds",
        "Microseconds",
        "Milliseconds",
        "Bytes",
        "Kilobytes",
        "Megabytes",
        "Gigabytes",
        "Terabytes",
        "Bits",
        "Kilobits",
        "Megabits",
        "Gigabits",
        "Terabits",
        "Percent",
        "Count",
        "Bytes/Second",
        "Kilobytes/Second",
        "Megabytes/Second",
        "Gigabytes/Second",
        "Terabytes/Second",
        "Bits/Second",
        "Kilobits/Second",
        "Megabits/Second",
        "Gigabits/Second",
        "Terabits/Second",
        "Count/Second",
        "None",
    ];

    /// Checks one document against the EMF specification's shape and returns
    /// it parsed: the root is an object with `_aws`; `_aws.Timestamp` is a
    /// non-negative integer; `CloudWatchMetrics` is an array of directives,
    /// each with a non-empty `Namespace`, `Dimensions` (an array of dimension
    /// sets, each an array of at most 30 names whose top-level values are
    /// strings) and `Metrics` (at most 100 definitions, each with a `Name`
    /// whose top-level value is a number or an array of at most 100 numbers,
    /// an optional valid `Unit` and an optional `StorageResolution` of 1 or
    /// 60). Other top-level keys are not allowed in these documents.
    fn check_emf(line: &str) -> Value {
        assert!(!line.contains('\n'), "one document per line");
        let doc: Value = serde_json::from_str(line).expect("valid JSON");
        let root = doc.as_object().expect("root is an object");
        let aws = root["_aws"].as_object().expect("_aws is an object");
        assert!(aws["Timestamp"].is_u64(), "Timestamp is an integer");
        let directives = aws["CloudWatchMetrics"].as_array().expect("directives");
        assert!(!directives.is_empty());
        let mut referenced = vec!["_aws".to_string()];
        for directive in directives {
            let ns = directive["Namespace"].as_str().expect("Namespace");
            assert!((1..=255).contains(&ns.len()));
            for set in directive["Dimensions"].as_array().expect("Dimensions") {
                let set = set.as_array().expect("dimension set is an array");
                assert!(set.len() <= EMF_MAX_DIMENSIONS);
                for name in set {
                    let name = name.as_str().expect("dimension name is a string");
                    assert!(
                        root[name].is_string(),
                        "dimension {name} has a string value"
                    );
                    referenced.push(name.to_string());
                }
            }
            let metrics = directive["Metrics"].as_array().expect("Metrics");
            assert!(metrics.len() <= EMF_MAX_METRICS_PER_DOCUMENT);
            for metric in metrics {
                let metric = metric.as_object().expect("metric definition");
                for key in metric.keys() {
                    assert!(["Name", "Unit", "StorageResolution"].contains(&key.as_str()));
                }
                let name = metric["Name"].as_str().expect("Name");
                if let Some(unit) = metric.get("Unit") {
                    assert!(UNITS.contains(&unit.as_str().expect("Unit is a string")));
                }
                if let Some(res) = metric.get("StorageResolution") {
                    assert!([1, 60].contains(&res.as_u64().expect("integer")));
                }
                match &root[name] {
                    Value::Number(_) => {}
                    Value::Array(values) => {
                        assert!(!values.is_empty() && values.len() <= EMF_MAX_VALUES_PER_METRIC);
                        assert!(values.iter().all(Value::is_number));
                    }
                    other => panic!("metric {name} has value {other}"),
                }
                referenced.push(name.to_string());
            }
        }
        for key in root.keys() {
            assert!(referenced.contains(key), "unreferenced top-level key {key}");
        }
        doc
    }

    #[test]
    fn flush_workload_is_10k_values_over_1k_series() {
        let w = Workload::flush();
        assert_eq!(w.series.len(), 1000);
        assert_eq!(w.values(), 10_000);
        assert!(
            w.series
                .iter()
                .all(|s| s.dimensions.len() + w.common.len() == 3)
        );
        assert!(
            latencies(1000, 1)
                .iter()
                .all(|v| (1.0..=1000.9).contains(v))
        );
    }

    #[test]
    fn emf_document_has_the_spec_shape() {
        let w = Workload::flush();
        let lines = w.emf_lines(TIMESTAMP_MS).expect("encodes");
        // 100 dimension sets (50 routes x 2 methods) of 10 metrics each.
        assert_eq!(lines.len(), 100);
        let doc = check_emf(&lines[0]);
        let expected = concat!(
            r#"{"_aws":{"Timestamp":1764000000000,"CloudWatchMetrics":[{"Namespace":"Bench","#,
            r#""Dimensions":[["service","route","method"]],"Metrics":[{"Name":"latency","Unit":"Milliseconds"},"#
        );
        assert!(lines[0].starts_with(expected), "{}", lines[0]);
        assert_eq!(doc["service"], "api");
        assert_eq!(doc["route"], "/api/v1/resource0");
        assert_eq!(doc["method"], "GET");
        let latency: Vec<f64> = doc["latency"]
            .as_array()
            .expect("array")
            .iter()
            .map(|v| v.as_f64().expect("number"))
            .collect();
        assert_eq!(latency, w.series[0].values);
        for line in &lines {
            check_emf(line);
        }
    }

    #[test]
    fn emf_splits_at_100_metrics_and_100_values() {
        let series = (0..150)
            .map(|i| Series {
                name: format!("m{i}"),
                dimensions: vec![("route".into(), "/x".into())],
                values: if i == 0 {
                    (0..250).map(f64::from).collect()
                } else {
                    vec![1.5]
                },
                high_resolution: i == 1,
            })
            .collect();
        let w = Workload {
            namespace: "N".into(),
            common: vec![],
            series,
        };
        let lines = w.emf_lines(0).expect("encodes");
        // 150 metrics -> 2 documents; m0's 250 values need 2 more.
        assert_eq!(lines.len(), 4);
        let docs: Vec<Value> = lines.iter().map(|l| check_emf(l)).collect();
        let metrics = |d: &Value| {
            d["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                .as_array()
                .map_or(0, Vec::len)
        };
        assert_eq!(
            docs.iter().map(metrics).collect::<Vec<_>>(),
            [100, 50, 1, 1]
        );
        assert_eq!(docs[0]["m0"].as_array().map(Vec::len), Some(100));
        assert_eq!(docs[3]["m0"].as_array().map(Vec::len), Some(50));
        assert_eq!(docs[0]["m5"], 1.5, "a single value is a plain number");
        assert_eq!(
            docs[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"][1]["StorageResolution"],
            1
        );
    }

    #[test]
    fn emf_refuses_a_metric_named_like_a_dimension() {
        let mut w = Workload::flush();
        w.series[0].name = "route".into();
        assert!(w.emf_lines(0).is_err());
    }

    #[test]
    fn edgepush_flush_carries_every_value() {
        let w = Workload::flush();
        let emitter = w.emitter(edgepush::wire::Version::V2).expect("config");
        let handles = w.register(&emitter).expect("registers");
        w.record(&handles);
        let batches = emitter.flush_at(TIMESTAMP_MS).expect("flushes");
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].points(), 1000);
        let json: Value =
            serde_json::from_slice(&batches[0].json().expect("json")).expect("parses");
        let values: usize = json["points"]
            .as_array()
            .expect("points")
            .iter()
            .map(|p| match p["cs"].as_array() {
                // Repeated values are sent once, with their counts.
                Some(counts) => counts.iter().filter_map(Value::as_f64).sum::<f64>() as usize,
                None => p["vs"].as_array().map_or(0, Vec::len),
            })
            .sum();
        assert_eq!(values, 10_000);
    }

    #[test]
    fn concurrent_runs_count_every_iteration() {
        let done = AtomicUsize::new(0);
        let drains = AtomicUsize::new(0);
        run_concurrent(
            2,
            250,
            100,
            |_, _| {
                done.fetch_add(1, Ordering::Relaxed);
            },
            || {
                drains.fetch_add(1, Ordering::Relaxed);
            },
        );
        assert_eq!(done.load(Ordering::Relaxed), 500);
        assert_eq!(drains.load(Ordering::Relaxed), 3);
    }
}
