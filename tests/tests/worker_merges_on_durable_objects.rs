//! The Worker merges pushes on Durable Objects (`MergeShard`, SQLite
//! storage, alarms), in workerd through Miniflare with its storage
//! persisted on disk: emitters (threads, each the real `edgepush` emitter
//! over HTTP) push 20 series (10 counters at 60 s, 10 distributions at
//! 1 s) to the Worker, which hands each push to the aggregators of its
//! namespace (two shards here) and answers once they stored it; their
//! alarms send each period out once it is over, to moto's CloudWatch API
//! (through a relay that counts the `PutMetricData` requests) and to
//! InfluxDB 1.x.
//!
//! Between two rounds of pushes workerd is killed (SIGKILL, Miniflare
//! too) and started again on the same storage, before the alarms of the
//! first round's periods: nothing is lost, nothing counted twice.
//! CloudWatch's SampleCount, Sum, Minimum and Maximum, and InfluxDB's
//! counts and sums, equal what was pushed, exactly; the requests are at
//! most one per aggregator and period that closed, far fewer than the
//! pushes.

use std::collections::BTreeSet;
use std::time::Duration;

use edgepush_tests::merging::{Pushed, SERIES, push_from_many_emitters};
use edgepush_tests::{Influx, Moto, Relay, Workerd, eventually};
use serde_json::{Value, json};

const EMITTERS: usize = 20;
const BATCHES: usize = 5;
const SHARDS: usize = 2;
const NAMESPACE: &str = "EdgeMerged";

/// The aggregators as wrangler.toml binds them, with SQLite storage, kept
/// on disk under `dir` so that a restarted workerd finds them.
fn aggregators(dir: &std::path::Path) -> Value {
    json!({
        "durableObjects": {
            "EDGEPUSH_SHARDS": { "className": "MergeShard", "useSQLite": true }
        },
        "durableObjectsPersist": dir.join("durable-objects").to_string_lossy(),
    })
}

#[test]
fn pushes_merge_on_durable_objects_and_survive_a_workerd_crash() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut moto = Moto::start(dir.path());
    let influx = Influx::start(dir.path());
    let relay = Relay::start(&moto.url);
    let mut settings = moto.worker_settings();
    for (name, value) in [
        ("CLOUDWATCH_ENDPOINT", format!("{}/", relay.url)),
        ("INFLUXDB_URL", influx.url.clone()),
        ("INFLUXDB_DATABASE", influx.database.clone()),
        ("EDGEPUSH_AGGREGATION", "true".into()),
        ("EDGEPUSH_AGGREGATION_FLUSH_SECONDS", "1".into()),
        ("EDGEPUSH_AGGREGATION_SHARDS", SHARDS.to_string()),
    ] {
        settings.insert(name.into(), value.into());
    }
    let settings = Value::Object(settings);
    let options = aggregators(dir.path());
    let mut worker = Workerd::start_with(dir.path(), &settings, &options);

    let first = push_from_many_emitters(&worker.url, NAMESPACE, EMITTERS, 0..BATCHES);
    // Every push was answered 202: it is stored. A crash now, before the
    // alarms of its periods, loses none of it.
    let port = worker.port();
    worker.crash();
    let worker = Workerd::start_on(dir.path(), port, &settings, &options);
    let second = push_from_many_emitters(&worker.url, NAMESPACE, EMITTERS, BATCHES..2 * BATCHES);

    let mut pushed = first;
    for (name, values) in second.counters {
        pushed.counters.entry(name).or_default().extend(values);
    }
    for (key, values) in second.distributions {
        pushed.distributions.entry(key).or_default().extend(values);
    }
    assert_eq!(pushed.by_series().len(), 2 * SERIES);
    // The counters' minute goes out a flush interval after it ends: up to
    // 61 s from now, and the store's own lag beside.
    let limit = Duration::from_secs(61 + 60);
    eventually(limit, || {
        pushed.assert_in_cloudwatch(&moto.metrics(NAMESPACE));
    });
    eventually(Duration::from_secs(30), || {
        pushed.assert_in_influxdb(&influx)
    });

    // Requests: at most one per aggregator and closing time (a period, or
    // a minute for the counters), and per 1,000 datums.
    let requests = relay.bodies();
    let datums: usize = requests
        .iter()
        .map(|body| {
            let request: Value = serde_json::from_slice(body).expect("PutMetricData JSON");
            request["MetricData"].as_array().map_or(0, Vec::len)
        })
        .sum();
    let closings = closings(&pushed);
    let bound = SHARDS * closings + datums.div_ceil(1000);
    let pushes = 2 * EMITTERS * BATCHES;
    eprintln!(
        "{pushes} pushes became {} PutMetricData requests ({datums} datums, {closings} periods)",
        requests.len()
    );
    assert!(
        requests.len() <= bound,
        "{} requests for {pushes} pushes: more than {bound}",
        requests.len()
    );
    assert!(
        requests.len() * 2 < pushes,
        "{} requests for {pushes} pushes: barely merged",
        requests.len()
    );
    moto.stop();
}

/// The distinct periods the pushes fell in: the distributions' seconds and
/// the counters' minutes (counters were pushed in the same seconds).
fn closings(pushed: &Pushed) -> usize {
    let seconds: BTreeSet<i64> = pushed.distributions.keys().map(|(_, s)| *s).collect();
    let minutes: BTreeSet<i64> = seconds.iter().map(|s| s - s % 60_000).collect();
    seconds.len() + minutes.len()
}
