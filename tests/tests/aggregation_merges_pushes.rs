//! The receiver merges pushes from many functions: 200 emitters (threads,
//! each the real `edgepush` emitter over HTTP) push 50 batches each over 20
//! series (10 counters at 60 s resolution, 10 distributions at 1 s) to the
//! native receiver, which merges them per series and period and forwards to
//! moto's CloudWatch API, through a relay that counts and keeps the
//! `PutMetricData` requests, and to InfluxDB 1.x.
//!
//! Read back: moto's SampleCount, Sum, Minimum and Maximum equal what was
//! pushed, exactly; the requests are at most one per flush (and one per
//! 1,000 datums), not one per push; the p50, p90 and p99 read from the
//! `Values` and `Counts` CloudWatch was sent, and InfluxDB's quantile
//! fields, lie within 2^-6 (twice the compaction's bucket width) of the
//! exact percentiles of the values pushed in each period; InfluxDB's rows
//! of each series and period add up to what was pushed, so none
//! overwrote another.

use std::collections::BTreeMap;
use std::time::Instant;

use edgepush_receiver::aggregate::Settings;
use edgepush_receiver::sink::Sink;
use edgepush_tests::merging::{SERIES, push_from_many_emitters};
use edgepush_tests::{Influx, Moto, Receiver, Relay, cloudwatch_sink};
use serde_json::Value;

const EMITTERS: usize = 200;
const BATCHES: usize = 50;
/// Short, so that 1 s periods go out while the emitters still push.
const INTERVAL_SECONDS: u64 = 1;
const NAMESPACE: &str = "Merged";
/// How far a percentile read from compacted values may be from the exact
/// one, relative: twice the width of a compaction bucket (2^-7).
const PERCENTILE_ERROR: f64 = 1.0 / 64.0;

/// The value at rank ceil(q × n) of `values` (sorted, with counts).
fn nearest_rank(sorted: &[(f64, f64)], q: f64) -> f64 {
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

fn exact_percentile(values: &[f64], q: f64) -> f64 {
    let mut pairs: Vec<(f64, f64)> = values.iter().map(|v| (*v, 1.0)).collect();
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    nearest_rank(&pairs, q)
}

/// Asserts `got` within [`PERCENTILE_ERROR`] of `exact`; its relative error.
fn assert_close(what: &str, got: f64, exact: f64) -> f64 {
    let error = (got - exact).abs() / exact.abs();
    assert!(
        error <= PERCENTILE_ERROR,
        "{what}: {got} is more than 2^-6 from the exact {exact}"
    );
    error
}

/// Values and their counts, per distribution and 1 s period.
type Weighted = BTreeMap<(String, i64), Vec<(f64, f64)>>;

/// The `Values` and `Counts` CloudWatch was sent, per distribution and
/// 1 s period, sorted; and how many datums there were in all.
fn sent_distributions(bodies: &[Vec<u8>]) -> (Weighted, usize) {
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

#[test]
fn pushes_from_200_emitters_merge_into_few_requests_with_exact_statistics() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut moto = Moto::start(dir.path());
    let influx = Influx::start(dir.path());
    let relay = Relay::start(&moto.url);
    let mut cloudwatch = cloudwatch_sink(&moto);
    if let Sink::CloudWatch(config, _) = &mut cloudwatch {
        config.endpoint = Some(format!("{}/", relay.url));
    }
    let started = Instant::now();
    let receiver = Receiver::start_aggregating(
        vec![cloudwatch, Sink::Influxdb(influx.target())],
        Settings {
            enabled: true,
            flush_interval_seconds: INTERVAL_SECONDS,
            ..Settings::default()
        },
    );
    let pushed = push_from_many_emitters(&receiver.url, NAMESPACE, EMITTERS, 0..BATCHES);
    // Shutting down sends what is still open (the 60 s counters' minutes).
    drop(receiver);
    let elapsed = started.elapsed();

    // Requests: at most one per flush and per 1,000 datums.
    let bodies = relay.bodies();
    let (sent, datums) = sent_distributions(&bodies);
    let flushes = elapsed.as_secs() / INTERVAL_SECONDS + 2;
    let bound = flushes as usize + datums.div_ceil(1000);
    let pushes = EMITTERS * BATCHES;
    eprintln!(
        "{pushes} pushes became {} PutMetricData requests ({datums} datums) in {elapsed:?}",
        bodies.len()
    );
    assert!(
        bodies.len() >= 2,
        "periods went out at the flush interval, not only at shutdown"
    );
    assert!(
        bodies.len() <= bound,
        "{} requests for {pushes} pushes: more than {bound}",
        bodies.len()
    );

    // CloudWatch's statistics equal those of what was pushed, exactly.
    assert_eq!(pushed.by_series().len(), 2 * SERIES);
    pushed.assert_in_cloudwatch(&moto.metrics(NAMESPACE));

    // Percentiles from what CloudWatch was sent, per series and period.
    assert_eq!(
        sent.keys().collect::<Vec<_>>(),
        pushed.distributions.keys().collect::<Vec<_>>(),
        "every distribution's periods, and no other"
    );
    let mut compacted = 0;
    let mut worst: f64 = 0.0;
    for (key, values) in &pushed.distributions {
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
    assert!(
        compacted > 0,
        "no period held enough values to be compacted"
    );
    let mut worst_influx: f64 = 0.0;

    // InfluxDB: each series and period's rows add up to what was pushed
    // (none overwrote another), with quantiles close to the exact ones.
    let mut rows_of: BTreeMap<(String, i64), Vec<serde_json::Map<String, Value>>> = BTreeMap::new();
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
        pushed.distributions.keys().collect::<Vec<_>>()
    );
    for (key, values) in &pushed.distributions {
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
                worst_influx = worst_influx.max(assert_close(
                    &format!("{key:?} {field} in InfluxDB"),
                    row[field].as_f64().expect("quantile"),
                    exact_percentile(values, q),
                ));
            }
        }
    }
    eprintln!(
        "percentiles, largest relative error: {worst:.5} from CloudWatch's Values/Counts, {worst_influx:.5} in InfluxDB ({compacted} of {} periods compacted)",
        pushed.distributions.len()
    );
    for (name, values) in &pushed.counters {
        let rows = influx.rows(&format!(
            "SELECT \"count\", \"sum\", \"value\" FROM \"{name}\""
        ));
        let count: f64 = rows
            .iter()
            .map(|r| r["count"].as_f64().expect("count"))
            .sum();
        let value: f64 = rows
            .iter()
            .map(|r| r["value"].as_f64().expect("value"))
            .sum();
        assert_eq!(count, values.len() as f64, "{name}: {rows:?}");
        assert_eq!(value, values.iter().sum::<f64>(), "{name}: {rows:?}");
    }
    moto.stop();
}
