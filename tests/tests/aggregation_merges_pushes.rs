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

use std::time::Instant;

use edgepush_receiver::aggregate::Settings;
use edgepush_receiver::sink::Sink;
use edgepush_tests::merging::{SERIES, push_from_many_emitters, sent_distributions};
use edgepush_tests::{Influx, Moto, Receiver, Relay, cloudwatch_sink};

const EMITTERS: usize = 200;
const BATCHES: usize = 50;
/// Short, so that 1 s periods go out while the emitters still push.
const INTERVAL_SECONDS: u64 = 1;
const NAMESPACE: &str = "Merged";
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

    // Percentiles from what CloudWatch was sent, and in InfluxDB, per
    // series and period; InfluxDB's rows of each add up to what was pushed.
    let (worst, compacted) = pushed.assert_percentiles_sent(&sent);
    assert!(
        compacted > 0,
        "no period held enough values to be compacted"
    );
    let worst_influx = pushed.assert_distributions_in_influxdb(&influx);
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
