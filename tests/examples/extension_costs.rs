//! What the Lambda extension costs: init (process start to registered,
//! subscribed and ready for the first event), resident memory after
//! traffic, the duration each flush policy adds to an invocation (the
//! response posted to the environment frozen, against the same function
//! without the extension), and the layer's size.
//!
//! ```text
//! cargo run --release -p edgepush-tests --example extension_costs
//! ```
//!
//! Each environment runs under the project's Lambda API test server, with
//! the Python function of the extension's tests (`statsd`, `datadog` and
//! OpenTelemetry clients) sending 10 StatsD metrics per invocation, and a
//! native receiver without sinks on loopback; variants interleaved round
//! by round.

use std::process::Command;
use std::time::{Duration, Instant};

use edgepush_receiver::limits::Limits;
use edgepush_receiver::sink::Sink;
use edgepush_tests::lambda_api::LambdaApi;
use edgepush_tests::{Process, Receiver, free_port, median, proc_status_kib, quantile, repo_root};
use serde_json::{Value, json};

const INITS: usize = 30;
const INVOCATIONS: usize = 200;

fn cargo(args: &[&str]) {
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(args)
        .current_dir(repo_root())
        .status()
        .expect("cargo");
    assert!(status.success(), "cargo {args:?}");
}

/// One environment: the API, the extension (if `flush` is some), the
/// Python function (kept for as long as the environment, then stopped).
struct Environment {
    _function: Process,
    extension: Option<Process>,
    api: LambdaApi,
}

fn environment(
    dir: &std::path::Path,
    binary: &std::path::Path,
    flush: Option<&str>,
    url: &str,
) -> Environment {
    let api = LambdaApi::start();
    let statsd = free_port().to_string();
    let otlp = free_port().to_string();
    let mut env = vec![
        ("EDGEPUSH_URL", url),
        ("EDGEPUSH_STATSD_PORT", statsd.as_str()),
        ("EDGEPUSH_OTLP_PORT", otlp.as_str()),
    ];
    let extension = flush.map(|flush| {
        env.push(("EDGEPUSH_FLUSH", flush));
        api.start_extension(dir, binary, &env)
    });
    let mut python = Command::new(repo_root().join(".venv/bin/python"));
    python.arg(repo_root().join("tests/clients/statsd_function.py"));
    let function = api.spawn("python function", dir, python, &env);
    Environment {
        _function: function,
        extension,
        api,
    }
}

fn event(n: usize) -> Value {
    let mut send: Vec<Value> = (0..5)
        .map(|i| json!(["statsd", "incr", format!("orders.{i}")]))
        .collect();
    send.push(json!(["statsd", "timing", "db.query", 12.5]));
    send.push(json!(["statsd", "gauge", "queue", n % 50]));
    send.push(json!(["dogstatsd", "distribution", "payment.ms", 40.25, {"tags": ["env:prod"]}]));
    send.push(json!(["dogstatsd", "increment", "checkout", {"tags": ["env:prod", "region:eu"]}]));
    send.push(json!(["statsd", "set", "users", format!("user-{}", n % 7)]));
    json!({"send": send})
}

fn main() {
    cargo(&["build", "--release", "-q", "-p", "edgepush-extension"]);
    let binary = repo_root().join("target/release/edgepush-extension");
    let dir = tempfile::tempdir().expect("temp dir");
    let receiver = Receiver::start(Vec::<Sink>::new(), Limits::default(), vec![]);

    // Init: spawn to ready (registered, subscribed, asking for its first
    // event), as the API sees it.
    let mut init = Vec::new();
    for _ in 0..INITS {
        let api = LambdaApi::start();
        let statsd = free_port().to_string();
        let otlp = free_port().to_string();
        let env = [
            ("EDGEPUSH_URL", receiver.url.as_str()),
            ("EDGEPUSH_STATSD_PORT", statsd.as_str()),
            ("EDGEPUSH_OTLP_PORT", otlp.as_str()),
        ];
        let start = Instant::now();
        let mut extension = api.spawn("extension", dir.path(), Command::new(&binary), &env);
        loop {
            if api.extensions_ready() == 1 {
                break;
            }
            extension.assert_running();
            assert!(start.elapsed() < Duration::from_secs(30), "no init");
            std::thread::sleep(Duration::from_micros(100));
        }
        init.push(start.elapsed().as_secs_f64() * 1e3);
        extension.stop();
    }

    // Added duration per policy, interleaved: response posted to frozen.
    let variants: [(&str, Option<&str>); 4] = [
        ("no extension", None),
        (
            "end of invocation (push every time)",
            Some("end-of-invocation"),
        ),
        ("adaptive (default)", Some("adaptive")),
        ("periodic, 60 s", Some("periodic:60")),
    ];
    let envs: Vec<Environment> = variants
        .iter()
        .map(|(_, flush)| environment(dir.path(), &binary, *flush, &receiver.url))
        .collect();
    let mut added = vec![Vec::new(); variants.len()];
    for n in 0..INVOCATIONS {
        for (i, env) in envs.iter().enumerate() {
            let inv = env.api.invoke(event(n), Duration::from_secs(10));
            let (answered, _) = inv.response.expect("a response");
            let frozen = env
                .api
                .frozen(&inv.request_id, Duration::from_secs(10))
                .expect("frozen");
            added[i].push((frozen - answered).as_secs_f64() * 1e3);
        }
    }
    let rss: Vec<Option<(u64, u64)>> = envs
        .iter()
        .map(|e| {
            e.extension.as_ref().map(|x| {
                let pid = x.child_id();
                (
                    proc_status_kib(pid, "VmRSS").unwrap_or(0),
                    proc_status_kib(pid, "VmHWM").unwrap_or(0),
                )
            })
        })
        .collect();
    drop(envs);

    let size = std::fs::metadata(&binary).expect("binary").len();
    let zipped = {
        let zip = dir.path().join("layer.zip");
        let status = Command::new("zip")
            .args(["-q", "-9", "-j"])
            .arg(&zip)
            .arg(&binary)
            .status()
            .expect("zip");
        assert!(status.success());
        std::fs::metadata(&zip).expect("zip").len()
    };

    let mut out = String::new();
    use std::fmt::Write as _;
    let _ = writeln!(
        out,
        "Init, process start to ready for its first event (registered with the Extensions API, \
         subscribed to the Telemetry API, listening on UDP 8125 and TCP 4318), {INITS} starts: \
         median {:.1} ms, p90 {:.1} ms.\n",
        median(&mut init.clone()),
        quantile(&mut init.clone(), 0.9)
    );
    let _ = writeln!(
        out,
        "Duration added per invocation: the runtime's response posted to the environment \
         frozen, {INVOCATIONS} invocations each, interleaved; 10 StatsD metrics per \
         invocation, a native receiver on loopback:\n"
    );
    let _ = writeln!(
        out,
        "| flush policy | median ms | p90 ms | p99 ms | resident memory after (peak) |"
    );
    let _ = writeln!(out, "| --- | ---: | ---: | ---: | ---: |");
    for (((name, _), times), rss) in variants.iter().zip(&mut added).zip(&rss) {
        let memory = rss.map_or("-".to_string(), |(now, peak)| {
            format!(
                "{:.1} MB ({:.1} MB)",
                now as f64 / 1024.0,
                peak as f64 / 1024.0
            )
        });
        let _ = writeln!(
            out,
            "| {name} | {:.2} | {:.2} | {:.2} | {memory} |",
            median(times),
            quantile(times, 0.9),
            quantile(times, 0.99)
        );
    }
    let _ = writeln!(
        out,
        "\nLayer: the release binary (x86_64 here) {size} B, {zipped} B zipped (`zip -9`)."
    );
    print!("{out}");
}
