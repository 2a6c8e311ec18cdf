//! Many emitters pushing to a receiver that merges: the pushes the
//! aggregation tests make, and what they pushed, to compare read-backs with.

use std::collections::BTreeMap;
use std::sync::{Arc, Barrier, Mutex};

use edgepush::{Config, Emitter, HttpTransport, Metric, Unit};
use serde_json::Value;

/// The series each emitter has: `orders0..` counters at 60 s and
/// `latency0..` distributions at 1 s, `SERIES` of each.
pub const SERIES: usize = 10;
/// Values each distribution records per push.
pub const VALUES_PER_PUSH: usize = 3;

/// What the emitters pushed.
#[derive(Default)]
pub struct Pushed {
    /// Each counter's value in each push.
    pub counters: BTreeMap<String, Vec<f64>>,
    /// Each distribution's values, per 1 s period.
    pub distributions: BTreeMap<(String, i64), Vec<f64>>,
}

/// A counter's value in a push: whole numbers, so sums are exact.
pub fn counter_value(emitter: usize, batch: usize, series: usize) -> f64 {
    ((emitter * 1009 + batch + series) % 7 + 1) as f64
}

/// Values with about 4,000 distinct ones per series: more than the
/// aggregator keeps exactly in a period, so the merge compacts them.
pub fn distribution_value(emitter: usize, batch: usize, series: usize, i: usize) -> f64 {
    // 1009 is prime: every emitter adds values of its own.
    let n = ((emitter * 1009 + batch) * VALUES_PER_PUSH + i) * 7 + series * 13;
    (n % 4000) as f64 * 0.25 + 1.0
}

/// `emitters` threads, each the real emitter in namespace `namespace`,
/// push the batches numbered `batches` each to `url` (other numbers, other
/// values: for later rounds), all starting together.
pub fn push_from_many_emitters(
    url: &str,
    namespace: &str,
    emitters: usize,
    batches: std::ops::Range<usize>,
) -> Pushed {
    let pushed = Arc::new(Mutex::new(Pushed::default()));
    let start = Arc::new(Barrier::new(emitters));
    let threads: Vec<_> = (0..emitters)
        .map(|e| {
            let (url, pushed, start) = (url.to_string(), pushed.clone(), start.clone());
            let (namespace, batches) = (namespace.to_string(), batches.clone());
            std::thread::spawn(move || {
                let emitter = Emitter::new(Config::new(namespace).expect("namespace"));
                let counters: Vec<_> = (0..SERIES)
                    .map(|s| {
                        emitter
                            .counter(
                                Metric::new(format!("orders{s}"))
                                    .unit(Unit::Count)
                                    .dimension("service", "shop"),
                            )
                            .expect("counter")
                    })
                    .collect();
                let distributions: Vec<_> = (0..SERIES)
                    .map(|s| {
                        emitter
                            .distribution(
                                Metric::new(format!("latency{s}"))
                                    .unit(Unit::Milliseconds)
                                    .dimension("service", "shop")
                                    .high_resolution(),
                            )
                            .expect("distribution")
                    })
                    .collect();
                let transport = HttpTransport::new(&url);
                let mut mine = Pushed::default();
                start.wait();
                for b in batches {
                    for (s, counter) in counters.iter().enumerate() {
                        let v = counter_value(e, b, s);
                        counter.add(v);
                        mine.counters
                            .entry(format!("orders{s}"))
                            .or_default()
                            .push(v);
                    }
                    let now = crate::bad_input::now_ms();
                    for (s, distribution) in distributions.iter().enumerate() {
                        let period = now - now % 1000;
                        for i in 0..VALUES_PER_PUSH {
                            let v = distribution_value(e, b, s, i);
                            distribution.record(v);
                            mine.distributions
                                .entry((format!("latency{s}"), period))
                                .or_default()
                                .push(v);
                        }
                    }
                    let payloads = emitter.flush_at(now).expect("flush");
                    emitter
                        .send(&transport, payloads)
                        .expect("the receiver takes the push");
                }
                let mut all = pushed.lock().expect("lock");
                for (k, v) in mine.counters {
                    all.counters.entry(k).or_default().extend(v);
                }
                for (k, v) in mine.distributions {
                    all.distributions.entry(k).or_default().extend(v);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("an emitter thread");
    }
    Arc::try_unwrap(pushed)
        .ok()
        .expect("every thread ended")
        .into_inner()
        .expect("lock")
}

impl Pushed {
    /// Every series' values, by name: each counter's per push, each
    /// distribution's over all periods.
    pub fn by_series(&self) -> BTreeMap<String, Vec<f64>> {
        let mut all = self.counters.clone();
        for ((name, _), values) in &self.distributions {
            all.entry(name.clone()).or_default().extend(values);
        }
        all
    }

    /// Asserts that a CloudWatch read-back (`Moto::metrics`) holds every
    /// series and no other, each with the SampleCount, Sum (up to rounding),
    /// Minimum and Maximum of its values.
    pub fn assert_in_cloudwatch(&self, metrics: &[Value]) {
        let by_name: BTreeMap<&str, &Value> = metrics
            .iter()
            .map(|m| (m["name"].as_str().expect("name"), m))
            .collect();
        let all = self.by_series();
        assert_eq!(by_name.len(), all.len(), "{metrics:#?}");
        for (name, values) in &all {
            let m = by_name[name.as_str()];
            let sum: f64 = values.iter().sum();
            let min = values.iter().copied().fold(f64::INFINITY, f64::min);
            let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            assert_eq!(
                m["count"].as_f64(),
                Some(values.len() as f64),
                "{name}: {m}"
            );
            let got = m["sum"].as_f64().expect("sum");
            assert!(
                (got - sum).abs() <= sum * 1e-12,
                "{name}: sum {got} for {sum}"
            );
            assert_eq!(
                (m["min"].as_f64(), m["max"].as_f64()),
                (Some(min), Some(max)),
                "{name}"
            );
        }
    }

    /// Asserts that InfluxDB's rows of every series add up to its values:
    /// the counts and sums of all its rows (none overwrote another).
    pub fn assert_in_influxdb(&self, influx: &crate::Influx) {
        for (name, values) in &self.by_series() {
            let rows = influx.rows(&format!("SELECT \"count\", \"sum\" FROM \"{name}\""));
            let count: f64 = rows
                .iter()
                .map(|r| r["count"].as_f64().expect("count"))
                .sum();
            let sum: f64 = rows.iter().map(|r| r["sum"].as_f64().expect("sum")).sum();
            let exact: f64 = values.iter().sum();
            assert_eq!(count, values.len() as f64, "{name}: {rows:?}");
            assert!(
                (sum - exact).abs() <= exact * 1e-12,
                "{name}: {sum} for {exact}"
            );
        }
    }
}

/// How far a percentile read from compacted values may be from the exact
/// one, relative: twice the width of a compaction bucket (2^-7).
pub const PERCENTILE_ERROR: f64 = 1.0 / 64.0;

/// The value at rank ceil(q × n) of `values` (sorted, with counts).
pub fn nearest_rank(sorted: &[(f64, f64)], q: f64) -> f64 {
    let total: f64 = sorted.iter().map(|(_, c)| c).sum();
    let rank = (q * total).ceil().max(1.0);
    let mut seen = 0.0;
    for &(v, c) in sorted {
        seen += c;
        if seen >= rank {
            return v;
        }
    }
    sorted.last().map_or(f64::NAN, |(v, _)| *v)
}

/// The nearest-rank percentile `q` of `values`.
pub fn exact_percentile(values: &[f64], q: f64) -> f64 {
    let mut pairs: Vec<(f64, f64)> = values.iter().map(|v| (*v, 1.0)).collect();
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    nearest_rank(&pairs, q)
}

/// Asserts `got` within [`PERCENTILE_ERROR`] of `exact`; its relative error.
pub fn assert_close(what: &str, got: f64, exact: f64) -> f64 {
    let error = (got - exact).abs() / exact.abs();
    assert!(
        error <= PERCENTILE_ERROR,
        "{what}: {got} is more than 2^-6 from the exact {exact}"
    );
    error
}

/// Values and their counts, per distribution and 1 s period.
pub type Weighted = BTreeMap<(String, i64), Vec<(f64, f64)>>;

/// The `Values` and `Counts` CloudWatch was sent, per distribution and
/// 1 s period, sorted; and how many datums there were in all.
pub fn sent_distributions(bodies: &[Vec<u8>]) -> (Weighted, usize) {
    let mut out: Weighted = BTreeMap::new();
    let mut datums = 0;
    for body in bodies {
        let request: Value = serde_json::from_slice(body).expect("PutMetricData JSON");
        for datum in request["MetricData"].as_array().expect("MetricData") {
            datums += 1;
            let Some(values) = datum["Values"].as_array() else {
                continue;
            };
            let name = datum["MetricName"].as_str().expect("name").to_string();
            let ms = (datum["Timestamp"].as_f64().expect("time") * 1000.0).round() as i64;
            let counts = datum["Counts"].as_array().expect("Counts");
            let pairs = out.entry((name, ms - ms % 1000)).or_default();
            for (v, c) in values.iter().zip(counts) {
                pairs.push((v.as_f64().expect("value"), c.as_f64().expect("count")));
            }
        }
    }
    for pairs in out.values_mut() {
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    (out, datums)
}

impl Pushed {
    /// Asserts that the `Values`/`Counts` sent to CloudWatch
    /// ([`sent_distributions`]) hold every distribution's periods and no
    /// other, each with its count, and p50/p90/p99 within
    /// [`PERCENTILE_ERROR`] of the exact ones; the largest relative error
    /// seen, and how many periods were compacted.
    pub fn assert_percentiles_sent(&self, sent: &Weighted) -> (f64, usize) {
        assert_eq!(
            sent.keys().collect::<Vec<_>>(),
            self.distributions.keys().collect::<Vec<_>>(),
            "every distribution's periods, and no other"
        );
        let mut compacted = 0;
        let mut worst: f64 = 0.0;
        for (key, values) in &self.distributions {
            let got = &sent[key];
            let total: f64 = got.iter().map(|(_, c)| c).sum();
            assert_eq!(total, values.len() as f64, "{key:?}: the count");
            let mut distinct = values.clone();
            distinct.sort_by(f64::total_cmp);
            distinct.dedup();
            if got.len() < distinct.len() {
                compacted += 1;
            }
            for q in [0.5, 0.9, 0.99] {
                worst = worst.max(assert_close(
                    &format!("{key:?} p{} in CloudWatch", q * 100.0),
                    nearest_rank(got, q),
                    exact_percentile(values, q),
                ));
            }
        }
        (worst, compacted)
    }

    /// Asserts that InfluxDB's rows of each distribution and period add up
    /// to what was pushed (none overwrote another), and that a period sent
    /// once has quantile fields within [`PERCENTILE_ERROR`] of the exact
    /// ones; the largest relative error seen.
    pub fn assert_distributions_in_influxdb(&self, influx: &crate::Influx) -> f64 {
        let mut rows_of: BTreeMap<(String, i64), Vec<serde_json::Map<String, Value>>> =
            BTreeMap::new();
        for row in influx.rows("SELECT * FROM /^latency/") {
            let name = row["_measurement"]
                .as_str()
                .expect("measurement")
                .to_string();
            let ns = row["time"].as_i64().expect("time");
            let ms = ns / 1_000_000;
            rows_of.entry((name, ms - ms % 1000)).or_default().push(row);
        }
        assert_eq!(
            rows_of.keys().collect::<Vec<_>>(),
            self.distributions.keys().collect::<Vec<_>>()
        );
        let mut worst: f64 = 0.0;
        for (key, values) in &self.distributions {
            let rows = &rows_of[key];
            let count: f64 = rows
                .iter()
                .map(|r| r["count"].as_f64().expect("count"))
                .sum();
            let sum: f64 = rows.iter().map(|r| r["sum"].as_f64().expect("sum")).sum();
            let exact_sum: f64 = values.iter().sum();
            assert_eq!(count, values.len() as f64, "{key:?}: {rows:?}");
            assert!((sum - exact_sum).abs() <= exact_sum * 1e-12, "{key:?}");
            // A period emitted once (no point came late) has its quantiles.
            if let [row] = &rows[..] {
                for (field, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99)] {
                    worst = worst.max(assert_close(
                        &format!("{key:?} {field} in InfluxDB"),
                        row[field].as_f64().expect("quantile"),
                        exact_percentile(values, q),
                    ));
                }
            }
        }
        worst
    }
}

/// One function instance of the request-count benchmarks: its emitter (in
/// namespace `Bench`) and its 50 series, 25 counters and 25 distributions
/// with three dimensions.
pub struct Instance {
    /// The emitter.
    pub emitter: Emitter,
    counters: Vec<edgepush::Counter>,
    distributions: Vec<edgepush::Distribution>,
}

/// Series per [`Instance`].
pub const INSTANCE_SERIES: usize = 50;

impl Instance {
    /// A new instance.
    pub fn new() -> Self {
        let emitter = Emitter::new(Config::new("Bench").expect("namespace"));
        let metric = |name: String| {
            Metric::new(name)
                .dimension("service", "checkout")
                .dimension("region", "eu-west-1")
                .dimension("version", "42")
        };
        let counters = (0..INSTANCE_SERIES / 2)
            .map(|i| {
                emitter
                    .counter(metric(format!("orders_{i}")).unit(Unit::Count))
                    .expect("counter")
            })
            .collect();
        let distributions = (0..INSTANCE_SERIES / 2)
            .map(|i| {
                emitter
                    .distribution(metric(format!("latency_{i}")).unit(Unit::Milliseconds))
                    .expect("distribution")
            })
            .collect();
        Instance {
            emitter,
            counters,
            distributions,
        }
    }

    /// Invocation `n`: one value in every series.
    pub fn invoke(&self, n: usize) {
        for (i, c) in self.counters.iter().enumerate() {
            c.add(((n + i) % 5 + 1) as f64);
        }
        for (i, d) in self.distributions.iter().enumerate() {
            d.record(((n * 7 + i * 13) % 400) as f64 * 0.5);
        }
    }
}

impl Default for Instance {
    fn default() -> Self {
        Self::new()
    }
}

/// `threads` threads, each standing for `instances` function instances in
/// turn, run `invocations` invocations per instance against `url`, each
/// pushed at its end, paced over `seconds` (0: as fast as they go); the
/// pushes made and how long they took.
pub fn push_invocations(
    url: &str,
    threads: usize,
    instances: usize,
    invocations: usize,
    seconds: f64,
) -> (usize, std::time::Duration) {
    use std::time::{Duration, Instant};
    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let url = url.to_string();
            std::thread::spawn(move || {
                let transport = HttpTransport::new(&url);
                let mine: Vec<Instance> = (0..instances).map(|_| Instance::new()).collect();
                let total = instances * invocations;
                for k in 0..total {
                    // Paced: invocation k of this thread is due at k/total
                    // of the run.
                    let due = Duration::from_secs_f64(seconds * k as f64 / total as f64);
                    if let Some(wait) = due.checked_sub(started.elapsed()) {
                        std::thread::sleep(wait);
                    }
                    let instance = &mine[k % instances];
                    instance.invoke(t * total + k);
                    instance.emitter.push(&transport).expect("pushed");
                }
                total
            })
        })
        .collect();
    let pushes = handles.into_iter().map(|t| t.join().expect("thread")).sum();
    (pushes, started.elapsed())
}
