//! The merging receiver with a spool directory loses nothing to a crash:
//! the `edgepush-receiver` binary merges pushes from 20 emitters, journals
//! them, flushes 1 s periods every 2 s to moto's CloudWatch API and to
//! InfluxDB 1.x, and is killed with SIGKILL right after one of its flushes
//! (with 60 s periods still open and 1 s ones flushed); restarted on the
//! same port and spool, it takes more pushes and is stopped with SIGTERM.
//! moto and InfluxDB then hold exactly what was pushed: count, sum,
//! minimum and maximum of every counter and distribution, nothing lost,
//! nothing counted twice. (A crash in the middle of a flush is the journal's
//! unit tests' matter: `receiver/native/src/aggregation.rs`.)

use std::time::Duration;

use edgepush_tests::aws::ReceiverProcess;
use edgepush_tests::merging::{Pushed, push_from_many_emitters};
use edgepush_tests::{Influx, Moto, free_port, http_get_body, wait_for};

const NAMESPACE: &str = "Journal";
const EMITTERS: usize = 20;

fn flushes(url: &str) -> u64 {
    let text = http_get_body(&format!("{url}/metrics")).unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("edgepush_aggregation_flushes_total{reason=\"interval\"}"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|n| n as u64)
        .sum()
}

fn extend(into: &mut Pushed, more: Pushed) {
    for (k, v) in more.counters {
        into.counters.entry(k).or_default().extend(v);
    }
    for (k, v) in more.distributions {
        into.distributions.entry(k).or_default().extend(v);
    }
}

#[test]
fn a_sigkill_loses_nothing_the_merging_receiver_answered() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut moto = Moto::start(dir.path());
    let influx = Influx::start(dir.path());
    let spool = dir.path().join("spool");
    let endpoint = format!("{}/", moto.url);
    let spool_arg = spool.to_str().expect("utf-8").to_string();
    let args = [
        "--aggregation",
        "true",
        "--aggregation-flush-seconds",
        "2",
        "--spool-dir",
        &spool_arg,
        "--cloudwatch-region",
        "us-east-1",
        "--cloudwatch-endpoint",
        &endpoint,
        "--cloudwatch-protocol",
        "json",
        "--influxdb-url",
        &influx.url,
        "--influxdb-database",
        &influx.database,
    ];
    let env = [
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
    ];
    let port = free_port();
    let mut receiver = ReceiverProcess::start_on(dir.path(), port, &args, &env).expect("starts");
    let mut pushed = push_from_many_emitters(&receiver.url, NAMESPACE, EMITTERS, 0..10);
    // Right after a flush: 1 s periods went out, the minute's counters are
    // open, and the next flush is 2 s away.
    let seen = flushes(&receiver.url);
    wait_for("a flush", Duration::from_secs(30), || {
        flushes(&receiver.url) > seen
    });
    receiver.kill();

    let mut receiver = ReceiverProcess::start_on(dir.path(), port, &args, &env).expect("restarts");
    extend(
        &mut pushed,
        push_from_many_emitters(&receiver.url, NAMESPACE, EMITTERS, 10..20),
    );
    // The product's bound: connections drain, then the flush; 120 s of slack.
    receiver.shut_down(Duration::from_secs(120));

    pushed.assert_in_cloudwatch(&moto.metrics(NAMESPACE));
    pushed.assert_in_influxdb(&influx);
    moto.stop();
}
