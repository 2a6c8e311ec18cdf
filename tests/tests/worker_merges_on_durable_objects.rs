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
//! too) and started again on the same storage. During the first round and
//! the crash CloudWatch is unavailable (the relay answers 503), so the
//! crash finds every closed period waiting in an outbox: nothing is lost,
//! nothing counted twice. (A crash while a `PutMetricData` is on its way
//! sends it again: CloudWatch takes no idempotency key, so delivery across
//! a crash is at least once; `docs/durability.md`.)
//! CloudWatch's SampleCount, Sum, Minimum and Maximum, and InfluxDB's
//! counts and sums, equal what was pushed, exactly; p50, p90 and p99 from
//! the `Values`/`Counts` CloudWatch was sent and InfluxDB's quantile fields
//! lie within 2^-6 of the exact ones; the requests are at
//! most one per aggregator and period that closed, far fewer than the
//! pushes.

use std::collections::BTreeSet;
use std::time::Duration;

use edgepush_tests::merging::{Pushed, SERIES, push_from_many_emitters, sent_distributions};
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
    let mut settings = merging(&relay.url, &influx);
    settings["EDGEPUSH_AGGREGATION_SHARDS"] = SHARDS.to_string().into();
    let options = aggregators(dir.path());
    let mut worker = Workerd::start_with(dir.path(), &settings, &options);

    relay.refuse(true);
    let first = push_from_many_emitters(&worker.url, NAMESPACE, EMITTERS, 0..BATCHES);
    // Every push was answered 202: it is stored, held or in an outbox. A
    // crash now loses none of it.
    let port = worker.port();
    worker.crash();
    let worker = Workerd::start_on(dir.path(), port, &settings, &options);
    relay.refuse(false);
    let second = push_from_many_emitters(&worker.url, NAMESPACE, EMITTERS, BATCHES..2 * BATCHES);

    let mut pushed = first;
    for (name, values) in second.counters {
        pushed.counters.entry(name).or_default().extend(values);
    }
    for (key, values) in second.distributions {
        pushed.distributions.entry(key).or_default().extend(values);
    }
    assert_eq!(pushed.by_series().len(), 2 * SERIES);
    // The counters' minute goes out a flush interval after it ends (up to
    // 61 s from now); what CloudWatch refused is sent again after waits
    // that double up to 5 minutes (`MAX_RETRY_MS`); and the store's own lag
    // beside.
    let limit = Duration::from_secs(300 + 61 + 60);
    eventually(limit, || {
        pushed.assert_in_cloudwatch(&moto.metrics(NAMESPACE));
    });
    eventually(Duration::from_secs(30), || {
        pushed.assert_in_influxdb(&influx)
    });
    // Percentiles, from what CloudWatch was sent and in InfluxDB.
    let requests = relay.bodies();
    let (sent, datums) = sent_distributions(&requests);
    let (worst, _) = pushed.assert_percentiles_sent(&sent);
    let worst_influx = pushed.assert_distributions_in_influxdb(&influx);
    eprintln!(
        "percentiles, largest relative error: {worst:.5} in CloudWatch, {worst_influx:.5} in InfluxDB"
    );

    // Requests: at most one per aggregator and closing time (a period, or
    // a minute for the counters), and per 1,000 datums.
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
    // Each flush says what it did in the Worker's logs.
    let flushes = flush_lines(&worker.log_text());
    let saved: u64 = flushes
        .iter()
        .map(|f| f["sink_requests_saved"].as_u64().expect("saved"))
        .sum();
    assert!(!flushes.is_empty(), "no flush logged");
    assert!(saved > 0, "{flushes:?}");
    moto.stop();
}

/// A crash after the last push, before any alarm: nothing pushes again,
/// yet the aggregators' persisted alarms wake them on the restarted
/// workerd, and everything arrives.
#[test]
fn held_points_go_out_after_a_crash_with_no_push_to_follow() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut moto = Moto::start(dir.path());
    let influx = Influx::start(dir.path());
    let settings = merging(&moto.url, &influx);
    let options = aggregators(dir.path());
    let mut worker = Workerd::start_with(dir.path(), &settings, &options);
    let pushed = push_from_many_emitters(&worker.url, "EdgeQuiet", EMITTERS / 2, 0..BATCHES);
    let port = worker.port();
    worker.crash();
    let _worker = Workerd::start_on(dir.path(), port, &settings, &options);
    eventually(Duration::from_secs(61 + 60), || {
        pushed.assert_in_cloudwatch(&moto.metrics("EdgeQuiet"));
    });
    eventually(Duration::from_secs(30), || {
        pushed.assert_in_influxdb(&influx)
    });
    moto.stop();
}

/// The aggregators' flush lines in a Worker's log.
fn flush_lines(log: &str) -> Vec<Value> {
    log.lines()
        .filter_map(|line| {
            line.find(r#"{"edgepush":"aggregation""#)
                .map(|at| &line[at..])
        })
        .map(|json| serde_json::from_str(json.trim()).expect("a flush line is JSON"))
        .collect()
}

/// The Worker's settings, merging with a 1 s flush interval, for
/// CloudWatch at `cloudwatch` (moto, or a relay in front of it; the
/// credentials moto takes when it does not check them) and InfluxDB.
fn merging(cloudwatch: &str, influx: &Influx) -> Value {
    json!({
        "EDGEPUSH_CLOUDWATCH_REGION": "us-east-1",
        "EDGEPUSH_CLOUDWATCH_ENDPOINT": format!("{cloudwatch}/"),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "EDGEPUSH_INFLUXDB_URL": influx.url,
        "EDGEPUSH_INFLUXDB_DATABASE": influx.database,
        "EDGEPUSH_AGGREGATION": "true",
        "EDGEPUSH_AGGREGATION_FLUSH_SECONDS": "1",
        "EDGEPUSH_RETRY_DELAY_SECONDS": "1",
    })
}

/// With a queue bound, the aggregators' alarms send merged batches to the
/// queue, and its consumer merges each message batch again before the
/// sinks: still exact.
#[test]
fn merged_batches_go_through_the_queue_exactly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut moto = Moto::start(dir.path());
    let influx = Influx::start(dir.path());
    let settings = merging(&moto.url, &influx);
    let mut options = aggregators(dir.path());
    let queues = json!({
        "queueProducers": { "EDGEPUSH_QUEUE": "edgepush" },
        "queueConsumers": {
            "edgepush": { "maxBatchSize": 10, "maxBatchTimeout": 1, "maxRetries": 10 }
        }
    });
    for (name, value) in queues.as_object().expect("options") {
        options[name] = value.clone();
    }
    let worker = Workerd::start_with(dir.path(), &settings, &options);
    let pushed = push_from_many_emitters(&worker.url, "EdgeQueued", EMITTERS / 2, 0..BATCHES);
    eventually(Duration::from_secs(61 + 60), || {
        pushed.assert_in_cloudwatch(&moto.metrics("EdgeQueued"));
    });
    eventually(Duration::from_secs(30), || {
        pushed.assert_in_influxdb(&influx)
    });
    moto.stop();
}

/// CloudWatch down when the aggregators' alarms send: the merged batches
/// wait in their outbox, are tried again, and arrive once it is back,
/// exactly once.
#[test]
fn merged_batches_wait_for_a_sink_that_is_down() {
    let dir = tempfile::tempdir().expect("temp dir");
    let influx = Influx::start(dir.path());
    let port = edgepush_tests::free_port();
    // Where CloudWatch will be, not started yet.
    let settings = merging(&format!("http://127.0.0.1:{port}"), &influx);
    let worker = Workerd::start_with(dir.path(), &settings, &aggregators(dir.path()));
    let pushed = push_from_many_emitters(&worker.url, "EdgeOutage", EMITTERS / 2, 0..BATCHES);
    // The first period's alarm finds CloudWatch down.
    eventually(Duration::from_secs(30), || {
        assert!(
            worker.log_text().contains("a merged batch waits"),
            "no failed send yet"
        );
    });
    let mut moto = Moto::start_on(dir.path(), port);
    eventually(Duration::from_secs(61 + 60), || {
        pushed.assert_in_cloudwatch(&moto.metrics("EdgeOutage"));
    });
    pushed.assert_in_influxdb(&influx);
    moto.stop();
}

/// The distinct periods the pushes fell in: the distributions' seconds and
/// the counters' minutes (counters were pushed in the same seconds).
fn closings(pushed: &Pushed) -> usize {
    let seconds: BTreeSet<i64> = pushed.distributions.keys().map(|(_, s)| *s).collect();
    let minutes: BTreeSet<i64> = seconds.iter().map(|s| s - s % 60_000).collect();
    seconds.len() + minutes.len()
}

/// An aggregator at its memory bound answers `503` with `Retry-After`,
/// flushes everything it holds at once, and takes the push when it is sent
/// again: every point of every push reaches InfluxDB.
#[test]
fn a_full_aggregator_refuses_with_retry_after_then_takes_the_push() {
    const PUSHES: usize = 10;
    const SERIES_PER_PUSH: usize = 100;
    let dir = tempfile::tempdir().expect("temp dir");
    let influx = Influx::start(dir.path());
    let settings = json!({
        "EDGEPUSH_INFLUXDB_URL": influx.url,
        "EDGEPUSH_INFLUXDB_DATABASE": influx.database,
        "EDGEPUSH_AGGREGATION": "true",
        // The smallest bound; each push below opens about 230 KB of it.
        "EDGEPUSH_AGGREGATION_MAX_BYTES": "1048576",
    });
    let worker = Workerd::start_with(dir.path(), &settings, &aggregators(dir.path()));
    let url = format!("{}/v1/metrics", worker.url);
    let mut refused = 0;
    for push in 0..PUSHES {
        let emitter = edgepush::Emitter::new(edgepush::Config::new("EdgeFull").expect("ns"));
        // Series of their own in every push (a long dimension value makes
        // each weigh about 2 KB), so the aggregator only grows.
        let long = format!("{push}-{}", "x".repeat(1000));
        for s in 0..SERIES_PER_PUSH {
            emitter
                .counter(edgepush::Metric::new(format!("c{s}")).dimension("push", long.clone()))
                .expect("counter")
                .add(1.0);
        }
        let payloads = emitter.flush().expect("flush");
        assert_eq!(payloads.len(), 1);
        let headers = [
            ("content-type", payloads[0].content_type()),
            (
                "content-encoding",
                payloads[0].content_encoding().unwrap_or("identity"),
            ),
        ];
        let (status, retry_after, answer) =
            edgepush_tests::post_retry_after(&url, &headers, payloads[0].body());
        if status == 503 {
            refused += 1;
            assert_eq!(answer["error"], "aggregator_unavailable", "{answer}");
            assert!(
                answer["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("aggregator_full")),
                "{answer}"
            );
            assert!(retry_after.is_some(), "no Retry-After: {answer}");
            // Sent again, as the emitter would, once the flush made room.
            eventually(Duration::from_secs(30), || {
                let (status, _, answer) =
                    edgepush_tests::post_retry_after(&url, &headers, payloads[0].body());
                assert_eq!(status, 202, "{answer}");
            });
        } else {
            assert_eq!(status, 202, "{answer}");
        }
    }
    assert!(refused > 0, "the bound was never reached");
    // Everything goes out: the flushes the bound forced, and the minute's
    // end for the rest.
    eventually(Duration::from_secs(61 + 30), || {
        let rows = influx.rows("SELECT \"count\" FROM /^c/");
        let count: f64 = rows
            .iter()
            .map(|r| r["count"].as_f64().expect("count"))
            .sum();
        assert_eq!(
            count,
            (PUSHES * SERIES_PER_PUSH) as f64,
            "{} rows",
            rows.len()
        );
    });
}
