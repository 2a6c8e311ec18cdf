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
