//! Ingest on loopback, side by side: the same datapoints pushed to the
//! native edgepush receiver and to the stores users would push to instead.
//!
//! Every request carries 1,000 datapoints (10 counters x 100 hosts, a
//! `service` dimension, one value each), cycling through 16 bodies:
//! - `edgepush -> counting sink`: the release receiver, wire v3 gzip'd as
//!   the emitter sends it, authenticated, forwarding to its stdout sink
//!   (line protocol written to `/dev/null`; the receiver's own counters
//!   count the points);
//! - `edgepush -> InfluxDB`: the same, forwarding to InfluxDB 1.x (Debian)
//!   before it answers (receiver CPU reported; the store's apart);
//! - `Pushgateway`: `prometheus-pushgateway` (Debian) receiving the same
//!   samples as Prometheus text (`PUT /metrics/job/bench/instance/<n>`);
//! - `InfluxDB /write` and `VictoriaMetrics /write`: the line protocol the
//!   receiver writes for those datapoints, gzip'd, straight to each store.
//!
//! `wrk` (1 thread, 8 connections) drives each target in turn, for
//! `EDGEPUSH_BENCH_SECONDS` (default 4) per turn, `EDGEPUSH_BENCH_ROUNDS`
//! (default 3) rounds interleaved (A B C D E, A B C D E, ...). For each
//! turn: datapoints/s, the server's CPU seconds per million datapoints (from
//! `/proc/<pid>/stat`), and datapoints per CPU-second ("per core"). Medians
//! over the rounds; peak RSS at the end. No turn may see a socket error or
//! a non-2xx answer.
//!
//! Also the physical limit: the raw inflate rate of the edgepush bodies
//! with flate2, against the receiver's in-process decode of the same bodies.
//!
//! Writes its results as JSON to `EDGEPUSH_BENCH_OUT` (default
//! `target/bench/ingest.json`) for the report, and prints a table.
//!
//! `cargo run --release -p edgepush-tests --example compare_ingest` (after
//! `cargo build --release -p edgepush-receiver-native`; `.ci/bench` does both).
//! `EDGEPUSH_RECEIVER_BIN` names the receiver binary; `EDGEPUSH_RECEIVER_BIN_B`
//! another one (a build to compare with), which then takes its turns as
//! `edgepush (B) -> counting sink`; `EDGEPUSH_BENCH_ONLY=edgepush` runs the
//! counting receivers alone, without starting the stores.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use edgepush::{Config, Emitter, Metric, Unit};
use edgepush_receiver::decode::Format;
use edgepush_receiver::ingest::{Headers, Ingest};
use edgepush_tests::{Influx, Process, Victoria, free_port, http_get, proc_status_kib, wait_for};
use serde_json::json;

/// Datapoints per request.
const POINTS: usize = 1000;
/// Distinct bodies per target.
const BODIES: usize = 16;
/// Timestamp of every datapoint, ms: the start of the run (the receiver,
/// like CloudWatch, refuses points more than two weeks old).
fn ts_ms() -> i64 {
    static NOW: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *NOW.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    })
}
const NAMESPACE: &str = "Bench/ingest";
const KEY: &str = "bench-key-0123456789";

/// Body `b`'s datapoints: (metric, host, value).
fn samples(b: usize) -> Vec<(String, String, f64)> {
    (0..POINTS)
        .map(|i| {
            let v = ((b * 7919 + i * 104_729) % 1_000_000) as f64 / 100.0;
            (format!("requests_{}", i % 10), format!("h{:03}", i / 10), v)
        })
        .collect()
}

/// As the emitter sends them: wire v3, gzip'd.
fn edgepush_body(b: usize) -> Vec<u8> {
    let config = Config::new(NAMESPACE)
        .and_then(|c| c.dimension("service", "api"))
        .expect("config")
        .gzip_from(0)
        .max_points_per_batch(POINTS)
        .max_batch_bytes(4 << 20);
    let emitter = Emitter::new(config);
    for (metric, host, v) in samples(b) {
        emitter
            .counter(
                Metric::new(metric)
                    .unit(Unit::Count)
                    .dimension("host", host),
            )
            .expect("counter")
            .add(v);
    }
    let batches = emitter.flush_at(ts_ms()).expect("flush");
    assert_eq!(batches.len(), 1, "one batch of {POINTS} points");
    assert_eq!(batches[0].points(), POINTS);
    batches[0].body().to_vec()
}

/// The line protocol the receiver writes for those datapoints.
fn line_protocol(b: usize) -> String {
    samples(b)
        .iter()
        .map(|(metric, host, v)| {
            format!(
                "{metric},host={host},namespace={NAMESPACE},service=api,unit=Count value={v} {}\n",
                ts_ms() * 1_000_000
            )
        })
        .collect()
}

/// The same samples as Prometheus text, as a client library pushes them.
fn prometheus_text(b: usize) -> String {
    let mut out = String::new();
    for m in 0..10 {
        out.push_str(&format!("# TYPE requests_{m} untyped\n"));
        for (metric, host, v) in samples(b).iter().filter(|s| s.0 == format!("requests_{m}")) {
            out.push_str(&format!(
                "{metric}{{host=\"{host}\",namespace=\"{NAMESPACE}\",service=\"api\",unit=\"Count\"}} {v}\n"
            ));
        }
    }
    out
}

/// Gzip'd at the emitter's default level, as edgepush's own bodies are.
fn gzip(bytes: &[u8]) -> Vec<u8> {
    edgepush_bench::gzip(bytes, edgepush_bench::GZIP_LEVEL)
}

/// One load target.
struct Target {
    name: &'static str,
    /// Base URL, paths appended.
    url: String,
    method: &'static str,
    headers: Vec<(&'static str, String)>,
    /// One path and body per distinct request.
    requests: Vec<(String, Vec<u8>)>,
    /// The server process whose CPU and memory count.
    pid: u32,
    /// Other processes that work for this target (the store behind the
    /// receiver), reported apart.
    behind: Option<u32>,
}

/// utime + stime of `pid`, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("proc stat");
    // Fields after the command name, which is in parentheses.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields[i].parse::<f64>().expect("ticks");
    // utime and stime are fields 14 and 15 (1-based), 11 and 12 after ')'.
    let per_second = TICKS.get_or_init(|| {
        let out = Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .expect("getconf");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(100.0)
    });
    (ticks(11) + ticks(12)) / per_second
}

/// What one turn measured.
struct Turn {
    requests: f64,
    seconds: f64,
    cpu: f64,
    behind_cpu: f64,
}

/// Writes `target`'s bodies and wrk script under `dir`.
fn prepare(dir: &Path, i: usize, target: &Target) -> PathBuf {
    let bodies = dir.join(format!("bodies-{i}"));
    std::fs::create_dir_all(&bodies).expect("dir");
    for (n, (_, body)) in target.requests.iter().enumerate() {
        std::fs::write(bodies.join(format!("{}", n + 1)), body).expect("body");
    }
    let headers: String = target
        .headers
        .iter()
        .map(|(k, v)| format!("wrk.headers[\"{k}\"] = \"{v}\"\n"))
        .collect();
    let paths: String = target
        .requests
        .iter()
        .map(|(p, _)| format!("\"{p}\","))
        .collect();
    let script = dir.join(format!("load-{i}.lua"));
    std::fs::write(
        &script,
        format!(
            r#"
local bodies, paths = {{}}, {{{paths}}}
for i = 1, {n} do
  local f = assert(io.open("{dir}/" .. i, "rb"))
  bodies[i] = f:read("*all")
  f:close()
end
wrk.method = "{method}"
{headers}
local n = 0
request = function()
  n = n % {n} + 1
  return wrk.format(nil, paths[n], nil, bodies[n])
end
"#,
            n = target.requests.len(),
            dir = bodies.display(),
            method = target.method,
        ),
    )
    .expect("script");
    script
}

fn turn(target: &Target, script: &Path, seconds: u64) -> Turn {
    let cpu0 = cpu_seconds(target.pid);
    let behind0 = target.behind.map_or(0.0, cpu_seconds);
    let out = Command::new(std::env::var("EDGEPUSH_WRK").unwrap_or_else(|_| "wrk".into()))
        .args(["-t1", "-c8", &format!("-d{seconds}s"), "-s"])
        .arg(script)
        .arg(&target.url)
        .output()
        .expect("run wrk (Debian package wrk; .ci/setup installs it)");
    let cpu = cpu_seconds(target.pid) - cpu0;
    let behind_cpu = target.behind.map_or(0.0, cpu_seconds) - behind0;
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "wrk failed: {report}");
    assert!(
        !report.contains("Socket errors"),
        "{}: socket errors\n{report}",
        target.name
    );
    // wrk counts answers outside 2xx and 3xx itself.
    assert!(
        !report.contains("Non-2xx"),
        "{}: non-2xx answers\n{report}",
        target.name
    );
    // "12345 requests in 4.00s, ..."
    let (requests, secs) = report
        .lines()
        .find_map(|l| {
            let l = l.trim();
            let (n, rest) = l.split_once(" requests in ")?;
            let secs = rest.split_once("s,")?.0;
            let secs = if let Some(ms) = secs.strip_suffix('m') {
                ms.parse::<f64>().ok()? / 1000.0
            } else {
                secs.parse::<f64>().ok()?
            };
            Some((n.parse::<f64>().ok()?, secs))
        })
        .unwrap_or_else(|| panic!("no request count in\n{report}"));
    Turn {
        requests,
        seconds: secs,
        cpu,
        behind_cpu,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The receiver's decode of each body in process, against flate2's raw
/// inflate of it: (inflate MB/s of compressed input, inflate datapoints/s,
/// decode datapoints/s).
fn physical_limit(bodies: &[Vec<u8>]) -> (f64, f64, f64) {
    let rounds = 200;
    let inflate = || {
        let start = Instant::now();
        for _ in 0..rounds {
            for body in bodies {
                let mut out = Vec::with_capacity(64 << 10);
                flate2::read::GzDecoder::new(&body[..])
                    .read_to_end(&mut out)
                    .expect("inflate");
                std::hint::black_box(out);
            }
        }
        start.elapsed().as_secs_f64()
    };
    let ingest = Ingest::default();
    let headers = Headers {
        content_type: Some(edgepush::wire::v3::CONTENT_TYPE),
        content_encoding: Some("gzip"),
        ..Headers::default()
    };
    let format = Format::route("POST", "/v1/metrics", None, headers.content_type)
        .expect("route")
        .expect("a push path");
    let caller = ingest.authenticate(headers, b"", ts_ms()).expect("open");
    let decode = || {
        let start = Instant::now();
        for _ in 0..rounds {
            for body in bodies {
                let decoded = ingest
                    .decode_for(&caller, &format, headers, body, ts_ms())
                    .expect("decoded");
                assert_eq!(decoded.batch.points.len(), POINTS);
                std::hint::black_box(decoded);
            }
        }
        start.elapsed().as_secs_f64()
    };
    // Interleaved, medians of 5.
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        a.push(inflate());
        b.push(decode());
    }
    let (ta, tb) = (median(a), median(b));
    let bytes: usize = bodies.iter().map(Vec::len).sum();
    let points = (rounds * bodies.len() * POINTS) as f64;
    ((rounds * bytes) as f64 / ta / 1e6, points / ta, points / tb)
}

fn main() {
    let seconds: u64 = std::env::var("EDGEPUSH_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4);
    let rounds: usize = std::env::var("EDGEPUSH_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let out_path = std::env::var_os("EDGEPUSH_BENCH_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| edgepush_tests::repo_root().join("target/bench/ingest.json"));
    let dir = tempfile::tempdir().expect("temp dir");

    let edgepush_bodies: Vec<Vec<u8>> = (0..BODIES).map(edgepush_body).collect();
    let lp_bodies: Vec<Vec<u8>> = (0..BODIES)
        .map(|b| gzip(line_protocol(b).as_bytes()))
        .collect();
    let prom_bodies: Vec<Vec<u8>> = (0..BODIES)
        .map(|b| prometheus_text(b).into_bytes())
        .collect();

    // Receivers: one or two forwarding to stdout (/dev/null), and with the
    // peers one to InfluxDB.
    let receiver = |name: &str, bin: &Path, sink: &str, log: PathBuf| -> (Process, String) {
        let config = dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!(
                "dedupe_seconds = 0  # the load repeats its bodies: forward each one\n\
                 [[tenants]]\nname = \"bench\"\nkeys = [\"{KEY}\"]\nnamespaces = [\"Bench/*\"]\n{sink}"
            ),
        )
        .expect("config");
        let port = free_port();
        let mut command = Command::new(bin);
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("EDGEPUSH_LOG", "warn")
            .args(["--listen", &format!("127.0.0.1:{port}"), "--config"])
            .arg(&config);
        let mut process = Process::spawn("edgepush-receiver", command, log);
        let url = format!("http://127.0.0.1:{port}");
        wait_for("edgepush-receiver", Duration::from_secs(30), || {
            process.assert_running();
            http_get(&format!("{url}/healthz")).is_ok()
        });
        (process, url)
    };
    let edgepush_headers = vec![
        ("content-type", edgepush::wire::v3::CONTENT_TYPE.to_string()),
        ("content-encoding", "gzip".to_string()),
        ("authorization", format!("Bearer {KEY}")),
    ];
    let with_path = |path: &dyn Fn(usize) -> String, bodies: &[Vec<u8>]| {
        bodies
            .iter()
            .enumerate()
            .map(|(i, b)| (path(i), b.clone()))
            .collect::<Vec<_>>()
    };
    // The counting receivers' stdout is their sink's output: discarded.
    let counting = |name: &'static str, bin: &Path| {
        let (process, url) = receiver(
            name,
            bin,
            "[[sinks]]\ntype = \"stdout\"\n",
            PathBuf::from("/dev/null"),
        );
        let target = Target {
            name,
            url,
            method: "POST",
            headers: edgepush_headers.clone(),
            requests: with_path(&|_| "/v1/metrics".into(), &edgepush_bodies),
            pid: process.child_id(),
            behind: None,
        };
        (process, target)
    };
    let (counting_a, target) = counting(
        "edgepush -> counting sink",
        &edgepush_tests::aws::receiver_binary(),
    );
    let mut targets = vec![target];
    let counting_b = std::env::var_os("EDGEPUSH_RECEIVER_BIN_B").map(|bin| {
        let (process, target) = counting("edgepush (B) -> counting sink", Path::new(&bin));
        targets.push(target);
        process
    });

    // The peers, unless only edgepush's counting receivers are wanted.
    let only_edgepush = std::env::var("EDGEPUSH_BENCH_ONLY").is_ok_and(|v| v == "edgepush");
    let peers = (!only_edgepush).then(|| {
        let influx = Influx::start(dir.path());
        let victoria = Victoria::start(dir.path());
        let gateway_port = free_port();
        let mut gateway = Process::spawn(
            "prometheus-pushgateway",
            {
                let mut c = Command::new("prometheus-pushgateway");
                c.arg(format!("--web.listen-address=127.0.0.1:{gateway_port}"))
                    .arg("--log.level=warn");
                c
            },
            dir.path().join("pushgateway.log"),
        );
        let gateway_url = format!("http://127.0.0.1:{gateway_port}");
        wait_for("prometheus-pushgateway", Duration::from_secs(30), || {
            gateway.assert_running();
            http_get(&format!("{gateway_url}/-/ready")).is_ok()
        });
        let (forwarding, forwarding_url) = receiver(
            "influx",
            &edgepush_tests::aws::receiver_binary(),
            &format!(
                "[[sinks]]\ntype = \"influxdb\"\napi = \"v1\"\nurl = \"{}\"\ndatabase = \"{}\"\n",
                influx.url, influx.database
            ),
            dir.path().join("receiver-influx.log"),
        );
        influx.query("CREATE DATABASE direct");
        let lp_headers = vec![
            ("content-type", "text/plain; charset=utf-8".to_string()),
            ("content-encoding", "gzip".to_string()),
        ];
        targets.extend([
            Target {
                name: "edgepush -> InfluxDB",
                url: forwarding_url,
                method: "POST",
                headers: edgepush_headers.clone(),
                requests: with_path(&|_| "/v1/metrics".into(), &edgepush_bodies),
                pid: forwarding.child_id(),
                behind: Some(influx.pid()),
            },
            Target {
                name: "Pushgateway (Prometheus text)",
                url: gateway_url,
                method: "PUT",
                headers: vec![("content-type", "text/plain; version=0.0.4".to_string())],
                requests: with_path(
                    &|i| format!("/metrics/job/bench/instance/i{i}"),
                    &prom_bodies,
                ),
                pid: gateway.child_id(),
                behind: None,
            },
            Target {
                name: "InfluxDB 1.x /write (line protocol)",
                url: influx.url.clone(),
                method: "POST",
                headers: lp_headers.clone(),
                // A database of its own: the receiver writes the same series.
                requests: with_path(&|_| "/write?db=direct".into(), &lp_bodies),
                pid: influx.pid(),
                behind: None,
            },
            Target {
                name: "VictoriaMetrics /write (line protocol)",
                url: victoria.url.clone(),
                method: "POST",
                headers: lp_headers,
                requests: with_path(&|_| "/write".into(), &lp_bodies),
                pid: victoria.pid(),
                behind: None,
            },
        ]);
        (influx, victoria, gateway, forwarding)
    });
    let scripts: Vec<PathBuf> = targets
        .iter()
        .enumerate()
        .map(|(i, t)| prepare(dir.path(), i, t))
        .collect();

    // Warm-up turn each, then the interleaved rounds.
    for (t, s) in targets.iter().zip(&scripts) {
        turn(t, s, 1);
    }
    if let Some((influx, _, _, forwarding)) = &peers {
        let forwarded = influx.rows("SELECT count(\"value\") FROM \"requests_0\"");
        assert!(
            forwarded.first().and_then(|r| r["count"].as_f64()) > Some(0.0),
            "the receiver forwarded nothing to InfluxDB: {forwarded:?}\n{}",
            forwarding.log_text()
        );
    }
    let mut turns: Vec<Vec<Turn>> = targets.iter().map(|_| Vec::new()).collect();
    for round in 0..rounds {
        for (i, (t, s)) in targets.iter().zip(&scripts).enumerate() {
            let r = turn(t, s, seconds);
            eprintln!(
                "round {}: {}: {:.0} datapoints/s, {:.2} CPU s",
                round + 1,
                t.name,
                r.requests * POINTS as f64 / r.seconds,
                r.cpu
            );
            turns[i].push(r);
        }
    }

    let mut rows = Vec::new();
    println!(
        "| target | datapoints/s | CPU s per M datapoints | datapoints/s per core | peak RSS |"
    );
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (t, turns) in targets.iter().zip(&turns) {
        let dps = median(
            turns
                .iter()
                .map(|r| r.requests * POINTS as f64 / r.seconds)
                .collect(),
        );
        let cpu_per_m = median(
            turns
                .iter()
                .map(|r| r.cpu / (r.requests * POINTS as f64) * 1e6)
                .collect(),
        );
        let behind_per_m = t.behind.map(|_| {
            median(
                turns
                    .iter()
                    .map(|r| r.behind_cpu / (r.requests * POINTS as f64) * 1e6)
                    .collect(),
            )
        });
        let per_core = 1e6 / cpu_per_m;
        let rss = proc_status_kib(t.pid, "VmHWM").unwrap_or(0);
        println!(
            "| {} | {dps:.0} | {cpu_per_m:.3}{} | {per_core:.0} | {:.1} MiB |",
            t.name,
            behind_per_m.map_or(String::new(), |b| format!(" (+{b:.3} the store)")),
            rss as f64 / 1024.0
        );
        rows.push(json!({
            "target": t.name,
            "datapoints_per_s": dps,
            "cpu_s_per_million": cpu_per_m,
            "store_cpu_s_per_million": behind_per_m,
            "datapoints_per_core_s": per_core,
            "peak_rss_kib": rss,
            "rounds": turns.iter().map(|r| json!({
                "datapoints_per_s": r.requests * POINTS as f64 / r.seconds,
                "cpu_s": r.cpu,
                "seconds": r.seconds,
            })).collect::<Vec<_>>(),
        }));
    }

    let (inflate_mb, inflate_dps, decode_dps) = physical_limit(&edgepush_bodies);
    println!(
        "\nphysical limit: flate2 inflates the edgepush bodies at {inflate_mb:.0} MB/s of gzip \
         ({inflate_dps:.0} datapoints/s); the receiver decodes them (inflate + wire v3 + \
         validation) at {decode_dps:.0} datapoints/s, {:.0} % of the inflate rate",
        decode_dps / inflate_dps * 100.0
    );

    let body_bytes = |b: &[Vec<u8>]| b.iter().map(Vec::len).sum::<usize>() as f64 / b.len() as f64;
    let result = json!({
        "points_per_request": POINTS,
        "seconds_per_turn": seconds,
        "rounds": rounds,
        "mean_body_bytes": {
            "edgepush_wire_v3_gzip": body_bytes(&edgepush_bodies),
            "line_protocol_gzip": body_bytes(&lp_bodies),
            "prometheus_text": body_bytes(&prom_bodies),
        },
        "targets": rows,
        "physical_limit": {
            "inflate_mb_per_s": inflate_mb,
            "inflate_datapoints_per_s": inflate_dps,
            "decode_datapoints_per_s": decode_dps,
        },
    });
    if let Some(parent) = out_path.parent() {
        std::fs::create_dir_all(parent).expect("output dir");
    }
    std::fs::write(&out_path, serde_json::to_vec_pretty(&result).expect("json")).expect("write");
    eprintln!("wrote {}", out_path.display());
    drop((counting_a, counting_b, peers));
}
