//! With pushes running every 50 ms, both sinks go away: CloudWatch (moto,
//! taken off the network between two requests by a [`Gate`], since stopping
//! moto would lose what it stored) and InfluxDB (stopped). During the outage the receiver, the
//! binary with a spool directory, is killed (SIGKILL) and started again on
//! the same port. Then the sinks come back: every point pushed must arrive
//! exactly once in each, counted on the sink side.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use edgepush::{Config, Emitter, HttpTransport, Metric, Unit, send_all};
use edgepush_tests::aws::ReceiverProcess;
use edgepush_tests::{Gate, Influx, Moto, eventually, free_port};
use serde_json::json;

#[test]
fn an_outage_and_a_receiver_restart_lose_nothing_and_duplicate_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut moto = Moto::start(dir.path());
    let moto_addr = moto
        .url
        .trim_start_matches("http://")
        .parse()
        .expect("addr");
    let gate = Gate::start(moto_addr);
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
protocol = "json"
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
    let pusher = {
        let (running, turn) = (running.clone(), turn.clone());
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
                        unsent.extend(e.unsent);
                    }
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

    std::thread::sleep(Duration::from_millis(800));
    // The outage.
    gate.shut();
    influx.stop();
    std::thread::sleep(Duration::from_millis(800));
    {
        let _turn = turn.lock().expect("turn");
        let before = receiver.log_text();
        assert!(before.contains("spooled"), "nothing spooled:\n{before}");
        receiver.kill();
    }
    // Pushes fail while no receiver listens: the emitter keeps them.
    std::thread::sleep(Duration::from_millis(300));
    {
        let _turn = turn.lock().expect("turn");
        receiver = start();
    }
    std::thread::sleep(Duration::from_millis(800));
    // The sinks come back.
    gate.open();
    let influx = Influx::start_on(dir.path(), influx_port);
    std::thread::sleep(Duration::from_millis(800));
    running.store(false, Ordering::SeqCst);
    let (pushed, failures) = pusher.join().expect("pusher");
    assert!(failures > 0, "no push failed: the receiver was never down");
    assert!(pushed > 40, "{pushed}");

    let n = f64::from(pushed);
    let recovering = Instant::now();
    eventually(Duration::from_secs(60), || {
        let metrics = moto.metrics("Outage");
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
        "outage: {pushed} pushes of one point each, {failures} failed at the emitter (kept and sent again); every point once in both sinks {:?} after the pushes stopped",
        recovering.elapsed()
    );
    moto.stop();
}
