//! With pushes running every 50 ms, both sinks go away: CloudWatch (taken
//! off the network between two requests by a [`Gate`], since stopping its
//! emulator would lose what it stored; moto over signed JSON, and fakecloud
//! through the AWS SDK, the native default) and InfluxDB (stopped). During the outage the receiver, the
//! binary with a spool directory, is killed (SIGKILL) and started again on
//! the same port. Then the sinks come back: every point pushed must arrive
//! exactly once in each, counted on the sink side.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use edgepush::{Config, Emitter, HttpTransport, Metric, Unit, send_all};
use edgepush_receiver::sink::cloudwatch::Protocol;
use edgepush_tests::aws::{Emulator, ReceiverProcess, protocol_name};
use edgepush_tests::{Gate, Influx, eventually, free_port, wait_for};
use serde_json::json;

#[test]
fn an_outage_and_a_receiver_restart_lose_nothing_and_duplicate_nothing_over_signed_json() {
    outage(Protocol::Json);
}

#[test]
fn an_outage_and_a_receiver_restart_lose_nothing_and_duplicate_nothing_through_the_sdk() {
    outage(Protocol::Sdk);
}

fn outage(protocol: Protocol) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cloudwatch = Emulator::start(protocol, dir.path());
    let addr = cloudwatch
        .url()
        .trim_start_matches("http://")
        .parse()
        .expect("addr");
    let gate = Gate::start(addr);
    let influx_port = free_port();
    let mut influx = Influx::start_on(dir.path(), influx_port);
    let config = dir.path().join("receiver.toml");
    std::fs::write(
        &config,
        format!(
            r#"spool_dir = "{spool}"
[[sinks]]
type = "cloudwatch"
region = "us-east-1"
endpoint = "{cloudwatch}/"
protocol = "{protocol}"
access_key_id = "testing"
secret_access_key = "testing"
[[sinks]]
type = "influxdb"
api = "v1"
url = "{influx}"
database = "edgepush"
"#,
            spool = dir.path().join("spool").display(),
            cloudwatch = gate.url,
            protocol = protocol_name(protocol),
            influx = influx.url,
        ),
    )
    .expect("config");
    let port = free_port();
    let args = ["--config", config.to_str().expect("utf-8")];
    let start = || ReceiverProcess::start_on(dir.path(), port, &args, &[]).expect("receiver");
    let mut receiver = start();
    let url = receiver.url.clone();

    // The pusher: one point per push; what a push could not send is sent
    // again before the next one. The lock lets the test restart the
    // receiver between two pushes (a receiver killed between spooling a
    // batch and answering would make the emitter send it again, and a new
    // receiver does not remember ids: see docs/durability.md).
    let running = Arc::new(AtomicBool::new(true));
    let turn = Arc::new(Mutex::new(()));
    // Pushes made, and pushes that failed, so far: each phase below waits
    // for the pushes it needs, not for a time.
    let pushes = Arc::new(AtomicU32::new(0));
    let failed = Arc::new(AtomicU32::new(0));
    let pusher = {
        let (running, turn) = (running.clone(), turn.clone());
        let (pushes, failed) = (pushes.clone(), failed.clone());
        std::thread::spawn(move || {
            let emitter = Emitter::new(Config::new("Outage").expect("namespace"));
            let ticks = emitter
                .counter(
                    Metric::new("ticks")
                        .unit(Unit::Count)
                        .dimension("run", "outage"),
                )
                .expect("counter");
            let transport = HttpTransport::new(&url).timeout(Duration::from_secs(10));
            let mut unsent = Vec::new();
            let mut pushed = 0u32;
            let mut failures = 0u32;
            while running.load(Ordering::SeqCst) {
                {
                    let _turn = turn.lock().expect("turn");
                    if !unsent.is_empty() {
                        match send_all(&transport, std::mem::take(&mut unsent)) {
                            Ok(_) => {}
                            Err(e) => unsent = e.unsent,
                        }
                    }
                    ticks.add(1.0);
                    pushed += 1;
                    if let Err(e) = emitter.push(&transport) {
                        failures += 1;
                        failed.fetch_add(1, Ordering::SeqCst);
                        unsent.extend(e.unsent);
                    }
                    pushes.fetch_add(1, Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let deadline = Instant::now() + Duration::from_secs(30);
            while !unsent.is_empty() && Instant::now() < deadline {
                match send_all(&transport, std::mem::take(&mut unsent)) {
                    Ok(_) => {}
                    Err(e) => unsent = e.unsent,
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            assert!(unsent.is_empty(), "batches never taken: {unsent:?}");
            (pushed, failures)
        })
    };

    // `more` pushes after this point, however long the machine takes.
    let after = |more: u32| {
        let from = pushes.load(Ordering::SeqCst);
        wait_for("pushes", Duration::from_secs(60), || {
            pushes.load(Ordering::SeqCst) >= from + more
        });
    };
    after(5);
    // The outage: pushes go on until the receiver has spooled one.
    gate.shut();
    influx.stop();
    wait_for("a spooled batch", Duration::from_secs(60), || {
        receiver.log_text().contains("spooled")
    });
    {
        let _turn = turn.lock().expect("turn");
        receiver.kill();
    }
    // Pushes fail while no receiver listens: the emitter keeps them.
    let failures_before = failed.load(Ordering::SeqCst);
    wait_for(
        "a push refused by no receiver",
        Duration::from_secs(60),
        || failed.load(Ordering::SeqCst) > failures_before,
    );
    {
        let _turn = turn.lock().expect("turn");
        receiver = start();
    }
    after(5);
    // The sinks come back.
    gate.open();
    let influx = Influx::start_on(dir.path(), influx_port);
    after(5);
    running.store(false, Ordering::SeqCst);
    let (pushed, failures) = pusher.join().expect("pusher");
    assert!(failures > 0, "no push failed: the receiver was never down");
    assert!(pushed >= 17, "{pushed}");

    let n = f64::from(pushed);
    let recovering = Instant::now();
    eventually(Duration::from_secs(60), || {
        let metrics = cloudwatch.metrics("Outage");
        assert_eq!(metrics.len(), 1, "{metrics:?}");
        assert_eq!(
            (&metrics[0]["sum"], &metrics[0]["count"]),
            (&json!(n), &json!(n)),
            "CloudWatch: every point once"
        );
        let rows = influx.rows(r#"SELECT count("value"), sum("value") FROM "ticks""#);
        assert_eq!(
            (&rows[0]["count"], &rows[0]["sum"]),
            (&json!(pushed), &json!(pushed)),
            "InfluxDB: every point once"
        );
    });
    let log = receiver.log_text();
    assert!(log.contains("batches wait from before"), "{log}");
    println!(
        "outage ({}): {pushed} pushes of one point each, {failures} failed at the emitter (kept and sent again); every point once in both sinks {:?} after the pushes stopped",
        protocol_name(protocol),
        recovering.elapsed()
    );
    cloudwatch.stop();
}
