//! Load: `wrk` (Debian) against the native receiver binary on loopback,
//! pushing realistic gzip'd batches (what the emitter sends after a Lambda
//! invocation) as an authenticated tenant, forwarded to InfluxDB. Bounded
//! (`EDGEPUSH_LOAD_SECONDS`, default 10): no errors, no non-2xx answers,
//! resident memory flat, every distinct batch in InfluxDB exactly once
//! (counts and sums read back: the load cycles through 2,000 batches, each
//! forwarded once and its repeats recognised as retries), and the latency
//! percentiles printed (the figures
//! in docs/BENCHMARKS.md come from a release build: set
//! `EDGEPUSH_RECEIVER_BIN=target/release/edgepush-receiver`).

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use edgepush::{Config, Emitter, Metric, Unit};
use edgepush_tests::aws::ReceiverProcess;
use edgepush_tests::{Influx, proc_status_kib};

/// Distinct bodies the load cycles through.
const BODIES: usize = 2000;

/// One invocation's worth of metrics: 10 counters, 5 gauges and 5
/// distributions of 20 values, with a function dimension.
fn bodies() -> Vec<Vec<u8>> {
    (0..BODIES)
        .map(|i| {
            let config = Config::new("Load/api")
                .and_then(|c| c.dimension("FunctionName", "checkout"))
                .expect("config");
            // Gzip'd whatever their size: the script says so.
            let emitter = Emitter::new(config.gzip_from(0));
            for m in 0..10 {
                let c = emitter
                    .counter(Metric::new(format!("count_{m}")).unit(Unit::Count))
                    .expect("counter");
                c.add((i + m) as f64);
            }
            for m in 0..5 {
                let g = emitter
                    .gauge(Metric::new(format!("gauge_{m}")).unit(Unit::Percent))
                    .expect("gauge");
                g.set(m as f64 * 1.5);
            }
            for m in 0..5 {
                let d = emitter
                    .distribution(Metric::new(format!("latency_{m}")).unit(Unit::Milliseconds))
                    .expect("distribution");
                for v in 0..20 {
                    d.record(f64::from(v) * 3.7 + m as f64);
                }
            }
            // A millisecond of its own: no two batches' points can share
            // a line-protocol timestamp.
            let batches = emitter
                .flush_at(edgepush::now_ms() - 3_600_000 + i as i64)
                .expect("flush");
            assert_eq!(batches.len(), 1);
            batches[0].body().to_vec()
        })
        .collect()
}

/// The value after `label` on the line that starts with it (`50%`, ...).
fn field<'a>(report: &'a str, label: &str) -> Option<&'a str> {
    report
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
}

#[test]
fn sustained_load_has_no_errors_and_flat_memory() {
    let seconds: u64 = std::env::var("EDGEPUSH_LOAD_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let dir = tempfile::tempdir().expect("temp dir");
    let influx = Influx::start(dir.path());
    let config = dir.path().join("receiver.toml");
    std::fs::write(
        &config,
        format!(
            r#"
# The load repeats its bodies: each is forwarded once, its repeats are
# answered 202 as duplicates (the default dedupe window).
[[tenants]]
name = "load"
keys = ["load-key-0123456789"]
namespaces = ["Load/*"]
[[sinks]]
type = "influxdb"
api = "v1"
url = "{}"
database = "{}"
"#,
            influx.url, influx.database
        ),
    )
    .expect("config");
    let receiver = ReceiverProcess::start(
        dir.path(),
        &["--config", config.to_str().expect("utf-8 path")],
        &[("EDGEPUSH_LOG", "warn")],
    )
    .expect("receiver starts");

    let bodies_dir = dir.path().join("bodies");
    std::fs::create_dir_all(&bodies_dir).expect("dir");
    let bodies = bodies();
    let mean = bodies.iter().map(Vec::len).sum::<usize>() / bodies.len();
    for (i, body) in bodies.iter().enumerate() {
        std::fs::write(bodies_dir.join(format!("{}.gz", i + 1)), body).expect("body");
    }
    // The emitter's default format, as the bodies were flushed.
    let content_type = edgepush::wire::v3::CONTENT_TYPE;
    let script = dir.path().join("push.lua");
    std::fs::write(
        &script,
        format!(
            r#"
local bodies = {{}}
for i = 1, {BODIES} do
  local f = assert(io.open("{dir}/" .. i .. ".gz", "rb"))
  bodies[i] = f:read("*a")
  f:close()
end
local n = 0
wrk.method = "POST"
wrk.headers["content-type"] = "{content_type}"
wrk.headers["content-encoding"] = "gzip"
wrk.headers["authorization"] = "Bearer load-key-0123456789"
request = function()
  n = n % {BODIES} + 1
  return wrk.format(nil, nil, nil, bodies[n])
end
"#,
            dir = bodies_dir.display()
        ),
    )
    .expect("script");

    // Resident memory, sampled through the run.
    let pid = receiver.pid();
    let running = Arc::new(AtomicBool::new(true));
    let samples = Arc::new(Mutex::new(Vec::new()));
    let sampler = {
        let (running, samples) = (running.clone(), samples.clone());
        std::thread::spawn(move || {
            while running.load(Ordering::Relaxed) {
                if let (Some(rss), Ok(mut s)) = (proc_status_kib(pid, "VmRSS"), samples.lock()) {
                    s.push(rss);
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    let output = Command::new(std::env::var("EDGEPUSH_WRK").unwrap_or_else(|_| "wrk".into()))
        .args(["-t2", "-c16", &format!("-d{seconds}s"), "--latency", "-s"])
        .arg(&script)
        .arg(format!("{}/v1/metrics", receiver.url))
        .output()
        .expect("run wrk (Debian package wrk; .ci/setup installs it)");
    running.store(false, Ordering::Relaxed);
    sampler.join().expect("sampler");
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "wrk: {report}{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let rss = samples.lock().expect("samples").clone();
    println!(
        "wrk, {seconds} s, 2 threads, 16 connections, {mean} B gzip bodies of 20 points (5 distributions of 20 values):\n{report}"
    );
    println!(
        "receiver RSS (KiB): min {:?}, max {:?}, first third max {:?}, last third max {:?}",
        rss.iter().min(),
        rss.iter().max(),
        rss[..rss.len() / 3].iter().max(),
        rss[rss.len() * 2 / 3..].iter().max()
    );

    assert!(
        !report.contains("Non-2xx"),
        "answers other than 2xx: {report}"
    );
    assert!(!report.contains("Socket errors"), "socket errors: {report}");
    let requests: u64 = report
        .lines()
        .find_map(|l| l.trim().split_once(" requests in "))
        .and_then(|(n, _)| n.trim().parse().ok())
        .expect("request count");
    assert!(
        requests >= BODIES as u64,
        "only {requests} requests, fewer than the {BODIES} bodies: {report}"
    );
    for p in ["50%", "99%"] {
        assert!(field(&report, p).is_some(), "no {p} latency: {report}");
    }
    // Flat: the last third of the run uses no more memory than the first
    // third did, give or take allocator slack.
    assert!(rss.len() >= 6, "{rss:?}");
    let early = rss[..rss.len() / 3].iter().max().copied().unwrap_or(0);
    let late = rss[rss.len() * 2 / 3..].iter().max().copied().unwrap_or(0);
    assert!(
        late <= early + early / 4 + 8 * 1024,
        "RSS grew from {early} KiB to {late} KiB"
    );
    // Everything answered 202 was forwarded, once: each body's counter
    // `count_m` holds i + m and each distribution 20 values.
    let n = BODIES as f64;
    let rows = influx.rows(r#"SELECT count("value"), sum("value") FROM "count_3""#);
    assert_eq!(rows.len(), 1, "nothing reached InfluxDB");
    assert_eq!(
        (rows[0]["count"].as_f64(), rows[0]["sum"].as_f64()),
        (Some(n), Some(n * (n - 1.0) / 2.0 + 3.0 * n)),
        "count_3: {rows:?}"
    );
    let rows = influx.rows(r#"SELECT count("count"), sum("count") FROM "latency_4""#);
    assert_eq!(
        (rows[0]["count"].as_f64(), rows[0]["sum"].as_f64()),
        (Some(n), Some(20.0 * n)),
        "latency_4: {rows:?}"
    );
    drop(receiver);
}
