//! The real `edgepush-extension` binary under this project's Lambda
//! Runtime, Extensions and Telemetry API (`edgepush_tests::lambda_api`),
//! beside a Python function (`tests/clients/statsd_function.py`) that
//! sends its metrics with the StatsD clients from PyPI (`statsd`, and
//! Datadog's `datadog` DogStatsD client) and OpenTelemetry's SDK with its
//! OTLP/HTTP exporter: invocations -> extension -> native receiver ->
//! moto, read back with boto3.

use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::process::Command;
use std::time::{Duration, Instant};

use edgepush_receiver::limits::Limits;
use edgepush_tests::lambda_api::{
    Capture, LambdaApi, emf_documents, emf_totals, start_extension_example,
};
use edgepush_tests::{
    Moto, Process, Receiver, cloudwatch_sink, debug_binary, free_port, repo_root,
};
use serde_json::{Value, json};

const KEY: &str = "extension-key";
const NAMESPACE: &str = "PyShop";

fn python() -> std::path::PathBuf {
    let venv = repo_root().join(".venv/bin/python");
    if venv.exists() {
        venv
    } else {
        "python3".into()
    }
}

/// An environment: the API, the extension (started first, as Lambda
/// starts extensions before the runtime, and ready), then the Python
/// function, whose memory the API watches. Dropped in that order
/// backwards: the processes, then the API (whose server waits for their
/// requests to end).
struct Environment {
    function: Process,
    extension: Process,
    api: LambdaApi,
    statsd_port: u16,
}

fn environment(dir: &std::path::Path, env: &[(&str, &str)], memory_mb: u64) -> Environment {
    let api = LambdaApi::start();
    api.set_memory_size(memory_mb);
    let statsd_port = free_port();
    let port = statsd_port.to_string();
    let otlp_port = free_port().to_string();
    let mut all = vec![
        ("EDGEPUSH_STATSD_PORT", port.as_str()),
        ("EDGEPUSH_OTLP_PORT", otlp_port.as_str()),
        ("EDGEPUSH_NAMESPACE", NAMESPACE),
        // OpenTelemetry SDKs export cumulative sums unless told.
        ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "delta"),
    ];
    all.extend_from_slice(env);
    let binary = debug_binary("edgepush-extension", "edgepush-extension");
    let extension = api.start_extension(dir, &binary, &all);
    let mut command = Command::new(python());
    command.arg(repo_root().join("tests/clients/statsd_function.py"));
    let function = api.spawn("python function", dir, command, &all);
    api.watch_runtime(function.child_id());
    Environment {
        api,
        extension,
        function,
        statsd_port,
    }
}

/// The StatsD calls of one invocation.
fn calls(n: usize) -> Value {
    let mut send = vec![
        json!(["statsd", "timing", "db.query", 12.5]),
        json!(["statsd", "gauge", "queue", 10]),
        json!(["statsd", "gauge", "queue", 5, {"delta": true}]),
        json!(["statsd", "set", "users", "alice"]),
        json!(["statsd", "set", "users", format!("user-{n}")]),
        json!(["statsd", "set", "users", "alice"]),
        json!(["dogstatsd", "increment", "checkout", {"tags": ["env:prod", "region:eu"]}]),
        json!(["dogstatsd", "increment", "checkout", {"value": 2, "tags": ["env:prod", "region:eu"]}]),
        json!(["dogstatsd", "distribution", "payment.ms", 40.25, {"tags": ["env:prod"]}]),
        json!(["dogstatsd", "histogram", "basket", 3, {"tags": ["env:prod", "canary"]}]),
        json!(["otel", "counter", "refunds", 2, {"reason": "damaged"}]),
        json!(["otel", "counter", "refunds", 1, {"reason": "late"}]),
        json!(["otel", "histogram", "render_ms", 12]),
        json!(["otel", "histogram", "render_ms", 30]),
        json!(["otel", "gauge", "stock", 40 + n, {"sku": "A1"}]),
    ];
    // Sampled: the client sends about half of these, marked @0.5.
    for _ in 0..10 {
        send.push(json!(["statsd", "incr", "orders", 2, 0.5]));
    }
    json!({"send": send})
}

/// The `orders` datagrams the `statsd` client sent (the sampled ones).
fn orders_sent(response: &Value) -> usize {
    response["sent"]
        .as_array()
        .expect("sent")
        .iter()
        .filter(|d| d.as_str().is_some_and(|d| d.starts_with("orders:2|c|@0.5")))
        .count()
}

/// The metric `name` with exactly `dims` (besides the function's own).
fn metric<'a>(metrics: &'a [Value], name: &str, dims: &[(&str, &str)]) -> &'a Value {
    let mut want: BTreeMap<String, String> = dims
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    want.insert("FunctionName".into(), "orders".into());
    want.insert("FunctionVersion".into(), "$LATEST".into());
    let want = serde_json::to_value(want).expect("dims");
    metrics
        .iter()
        .find(|m| m["name"] == name && m["dimensions"] == want)
        .unwrap_or_else(|| panic!("no {name} {want} in {metrics:#?}"))
}

fn sum(metrics: &[Value], name: &str, dims: &[(&str, &str)]) -> f64 {
    metric(metrics, name, dims)["sum"].as_f64().expect("sum")
}

fn count(metrics: &[Value], name: &str, dims: &[(&str, &str)]) -> f64 {
    metric(metrics, name, dims)["count"]
        .as_f64()
        .expect("count")
}

/// Sends SHUTDOWN; the extension must exit within the two seconds Lambda
/// gives (the last report, 500 ms at most; the last push, cut at 1 s; EMF),
/// plus 500 ms of slack for a loaded machine.
fn shut_down(api: &LambdaApi, extension: &mut Process) {
    api.shutdown();
    assert!(
        extension
            .exited_within(Duration::from_millis(2500))
            .is_some(),
        "still running after SHUTDOWN:\n{}",
        extension.log_text()
    );
}

/// moto, and a native receiver forwarding to it, taking [`KEY`].
fn cloudwatch_receiver(dir: &std::path::Path) -> (Moto, Receiver) {
    let moto = Moto::start(dir);
    let receiver = Receiver::start(
        vec![cloudwatch_sink(&moto)],
        Limits::default(),
        vec![KEY.into()],
    );
    (moto, receiver)
}

/// The platform events of `kind` the API sent.
fn reported(api: &LambdaApi, kind: &str) -> Vec<Value> {
    api.platform_events()
        .into_iter()
        .filter(|e| e["type"] == kind)
        .map(|e| e["record"].clone())
        .collect()
}

#[test]
fn python_statsd_clients_reach_cloudwatch_with_the_platform_metrics() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut moto, receiver) = cloudwatch_receiver(dir.path());
    // Periodic with a long interval: everything waits for SHUTDOWN, which
    // must push it all within its budget.
    let mut env = environment(
        dir.path(),
        &[
            ("EDGEPUSH_URL", &receiver.url),
            ("EDGEPUSH_API_KEY", KEY),
            ("EDGEPUSH_FLUSH", "periodic:3600"),
        ],
        256,
    );

    // What a broken client or a stranger sends: refused line by line, the
    // extension carries on. Five lines: unknown type, no value, not UTF-8,
    // a datagram as large as UDP carries with one line and no value, and
    // a name longer than CloudWatch takes.
    let udp = UdpSocket::bind("127.0.0.1:0").expect("udp");
    let to = ("127.0.0.1", env.statsd_port);
    udp.send_to(b"odd:1|x\nnovalue|c", to).expect("send");
    udp.send_to(b"\xff\xfe:1|c", to).expect("send");
    udp.send_to(&vec![b'a'; 65_507], to).expect("send");
    udp.send_to(format!("{}:1|c", "n".repeat(300)).as_bytes(), to)
        .expect("send");

    let mut orders = 0;
    for n in 0..3 {
        let inv = env.api.invoke(calls(n), Duration::from_secs(10));
        let (_, response) = inv.response.expect("a response");
        orders += orders_sent(&response);
        env.api
            .frozen(&inv.request_id, Duration::from_secs(10))
            .expect("the environment froze");
    }
    let failed = env
        .api
        .invoke(json!({"fail": true}), Duration::from_secs(10));
    env.api
        .frozen(&failed.request_id, Duration::from_secs(10))
        .expect("frozen");
    env.extension.assert_running();

    let shutdown = Instant::now();
    env.api.shutdown();
    // Lambda gives it until the SHUTDOWN deadline (two seconds here).
    let status = env
        .extension
        .exited_within(Duration::from_secs(2) + Duration::from_millis(500))
        .unwrap_or_else(|| {
            panic!(
                "still running after SHUTDOWN:\n{}",
                env.extension.log_text()
            )
        });
    assert!(status.success(), "{status}\n{}", env.extension.log_text());
    eprintln!("SHUTDOWN to exit: {:?}", shutdown.elapsed());
    env.function.stop();

    let log = env.extension.log_text();
    assert!(
        emf_documents(&log).is_empty(),
        "nothing should be written as EMF:\n{log}"
    );
    let m = moto.metrics(NAMESPACE);
    // The function's metrics, as its clients sent them.
    assert_eq!(
        sum(&m, "orders", &[]),
        4.0 * orders as f64,
        "sampled counter"
    );
    assert_eq!(
        (sum(&m, "db.query", &[]), count(&m, "db.query", &[])),
        (3.0 * 12.5, 3.0)
    );
    assert_eq!(
        metric(&m, "db.query", &[])["units"],
        json!(["Milliseconds"])
    );
    assert_eq!(metric(&m, "queue", &[])["max"], json!(15.0), "10, then +5");
    // Members new since the last push: alice and user-0..2.
    assert_eq!(sum(&m, "users", &[]), 4.0);
    let eu = [("env", "prod"), ("region", "eu")];
    assert_eq!(sum(&m, "checkout", &eu), 9.0);
    assert_eq!(
        (
            sum(&m, "payment.ms", &[("env", "prod")]),
            count(&m, "payment.ms", &[("env", "prod")])
        ),
        (3.0 * 40.25, 3.0)
    );
    assert_eq!(
        sum(&m, "basket", &[("canary", "true"), ("env", "prod")]),
        9.0
    );
    assert_eq!(sum(&m, "StatsDRefused", &[]), 5.0, "{log}");
    // The OpenTelemetry SDK's, exported once per invocation.
    assert_eq!(sum(&m, "refunds", &[("reason", "damaged")]), 6.0);
    assert_eq!(sum(&m, "refunds", &[("reason", "late")]), 3.0);
    assert_eq!(count(&m, "render_ms", &[]), 6.0);
    assert_eq!(metric(&m, "stock", &[("sku", "A1")])["max"], json!(42.0));

    // The platform's, as the API reported them.
    let reports = reported(&env.api, "platform.report");
    assert_eq!(reports.len(), 4);
    let total = |field: &str| -> f64 {
        reports
            .iter()
            .map(|r| r["metrics"][field].as_f64().expect("metric"))
            .sum()
    };
    assert_eq!(sum(&m, "Invocations", &[]), 4.0);
    assert_eq!(sum(&m, "Errors", &[]), 1.0);
    assert_eq!(sum(&m, "ColdStart", &[]), 1.0);
    let close = |got: f64, want: f64| (got - want).abs() < 1e-6 * want.max(1.0);
    assert!(
        close(sum(&m, "Duration", &[]), total("durationMs")),
        "{} vs {}",
        sum(&m, "Duration", &[]),
        total("durationMs")
    );
    assert_eq!(count(&m, "Duration", &[]), 4.0);
    assert_eq!(sum(&m, "BilledDuration", &[]), total("billedDurationMs"));
    assert_eq!(sum(&m, "MaxMemoryUsed", &[]), total("maxMemoryUsedMB"));
    assert!(
        total("maxMemoryUsedMB") > 0.0,
        "the runtime's peak was read"
    );
    assert_eq!(metric(&m, "MemorySize", &[])["max"], json!(256.0));
    let init = reported(&env.api, "platform.initReport");
    assert!(close(
        sum(&m, "InitDuration", &[]),
        init[0]["metrics"]["durationMs"].as_f64().expect("init")
    ));
    assert!(
        reported(&env.api, "platform.runtimeDone")
            .iter()
            .any(|r| r["status"] == "error" && r["errorType"] == "ValueError")
    );
}

#[test]
fn a_timeout_and_an_out_of_memory_show_as_such() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut moto, receiver) = cloudwatch_receiver(dir.path());
    let settings = [
        ("EDGEPUSH_URL", receiver.url.as_str()),
        ("EDGEPUSH_API_KEY", KEY),
    ];

    // Times out: the API ends it at its deadline and shuts the
    // environment down. Its receiver takes pushes and never answers, so a
    // push held past the deadline would show.
    let hanging = LambdaApi::start();
    hanging.set_capture(Capture::Hang);
    let hanging_url = hanging.receiver_url();
    let mut env = environment(dir.path(), &[("EDGEPUSH_URL", &hanging_url)], 256);
    let inv = env.api.invoke(
        json!({"send": [["statsd", "incr", "started"]], "sleep": 30}),
        Duration::from_secs(2),
    );
    assert_eq!(
        inv.response.expect("ended").1["errorType"],
        "Sandbox.Timedout"
    );
    // The extension gave way by the deadline less its margin (100 ms),
    // holding nothing past it: 500 ms of slack for a loaded machine.
    let idle = env
        .api
        .invocation(&inv.request_id)
        .extensions_idle
        .expect("the extension asked for its next event before the timeout");
    assert!(
        idle <= inv.deadline + Duration::from_millis(500),
        "idle {:?} after the deadline",
        idle - inv.deadline
    );
    assert!(
        env.extension
            .exited_within(Duration::from_secs(3))
            .is_some_and(|s| s.success()),
        "{}",
        env.extension.log_text()
    );

    // Everything went out as EMF, once: the push at SHUTDOWN was cut.
    let log = env.extension.log_text();
    let totals = emf_totals(&emf_documents(&log));
    for (name, value) in [
        ("started", 1.0),
        ("Invocations", 1.0),
        ("Errors", 1.0),
        ("Timeouts", 1.0),
    ] {
        assert_eq!(totals.get(name).map(|t| t.0), Some(value), "{name}:\n{log}");
    }
    assert!(!totals.contains_key("OutOfMemory"), "{log}");

    // Out of memory: the runtime grows past the memory size, the API kills
    // it as Lambda does.
    let mut env = environment(dir.path(), &settings, 96);
    let inv = env.api.invoke(
        json!({"send": [["statsd", "incr", "started"]], "grow_mb": 256}),
        Duration::from_secs(20),
    );
    assert_eq!(
        inv.response.expect("ended").1["errorType"],
        "Runtime.OutOfMemory"
    );
    assert!(
        env.extension
            .exited_within(Duration::from_secs(3))
            .is_some_and(|s| s.success()),
        "{}",
        env.extension.log_text()
    );
    assert!(
        env.function.exited_within(Duration::from_secs(1)).is_some(),
        "killed"
    );

    let m = moto.metrics(NAMESPACE);
    assert_eq!(
        sum(&m, "started", &[]),
        1.0,
        "what the function sent before the end"
    );
    assert_eq!(sum(&m, "Invocations", &[]), 1.0);
    assert_eq!(sum(&m, "Errors", &[]), 1.0);
    assert_eq!(sum(&m, "OutOfMemory", &[]), 1.0);
    assert!(m.iter().all(|x| x["name"] != "Timeouts"), "{m:#?}");
}

#[test]
fn with_the_receiver_unreachable_the_freeze_keeps_its_deadline_and_emf_carries_each_point_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let api_for_receiver = LambdaApi::start();
    // A receiver that takes the request and never answers.
    api_for_receiver.set_capture(Capture::Hang);
    let url = api_for_receiver.receiver_url();
    let mut env = environment(dir.path(), &[("EDGEPUSH_URL", &url)], 256);
    let timeout = Duration::from_secs(2);
    let mut orders = 0;
    for n in 0..2 {
        let inv = env.api.invoke(calls(n), timeout);
        let (answered, response) = inv.response.clone().expect("a response");
        orders += orders_sent(&response);
        let frozen = env
            .api
            .frozen(&inv.request_id, timeout + Duration::from_secs(5))
            .expect("froze");
        // The push gives way at the deadline less the margin (100 ms); the
        // EMF is written and the extension asks for its next event: 500 ms
        // of slack for a loaded machine.
        assert!(
            frozen <= inv.deadline + Duration::from_millis(500),
            "froze {:?} after the deadline",
            frozen - inv.deadline
        );
        // The response never waits for the extension: the handler's own
        // time, well before the 2 s deadline the push runs into.
        assert!(
            answered - inv.sent < Duration::from_secs(1),
            "answered after {:?}",
            answered - inv.sent
        );
    }
    shut_down(&env.api, &mut env.extension);
    // Each push was tried (one per invocation, and the last at SHUTDOWN),
    // and none was answered.
    assert!(
        api_for_receiver.hung() >= 3,
        "{} pushes tried",
        api_for_receiver.hung()
    );
    assert!(api_for_receiver.captured().is_empty());

    let log = env.extension.log_text();
    let totals = emf_totals(&emf_documents(&log));
    assert_eq!(totals["orders"].0, 4.0 * orders as f64, "{log}");
    assert_eq!(totals["db.query"], (2.0 * 12.5, 2));
    assert_eq!(totals["checkout"].0, 6.0);
    assert_eq!(totals["payment.ms"], (2.0 * 40.25, 2));
    assert_eq!(totals["Invocations"].0, 2.0);
    assert_eq!(totals["Duration"].1, 2, "both reports, once each");
}

#[test]
fn the_python_and_node_examples_push_through_the_extension() {
    for language in ["python", "node"] {
        let dir = tempfile::tempdir().expect("temp dir");
        let api = LambdaApi::start();
        let url = api.receiver_url();
        let statsd = free_port().to_string();
        let otlp = free_port().to_string();
        let endpoint = format!("http://127.0.0.1:{otlp}/v1/metrics");
        let env = [
            ("EDGEPUSH_URL", url.as_str()),
            ("EDGEPUSH_STATSD_PORT", statsd.as_str()),
            ("EDGEPUSH_OTLP_PORT", otlp.as_str()),
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", endpoint.as_str()),
        ];
        let binary = debug_binary("edgepush-extension", "edgepush-extension");
        let mut extension = api.start_extension(dir.path(), &binary, &env);
        let mut function = start_extension_example(&api, dir.path(), language, &env);
        let event =
            json!({"tenant": "acme", "items": [{"cents": 250}, {"cents": 100}], "cents": 350});
        for _ in 0..2 {
            let inv = api.invoke(event.clone(), Duration::from_secs(20));
            let response = inv
                .response
                .clone()
                .unwrap_or_else(|| panic!("{language}: no response:\n{}", function.log_text()));
            assert!(
                response.1.get("errorType").is_none(),
                "{language}: {}\n{}",
                response.1,
                function.log_text()
            );
            api.frozen(&inv.request_id, Duration::from_secs(10))
                .expect("frozen");
        }
        function.stop();
        shut_down(&api, &mut extension);
        let totals = api.captured_totals();
        assert_eq!(
            totals.get("orders").map(|t| t.0),
            Some(2.0),
            "{language}: {totals:?}\n{}",
            extension.log_text()
        );
        assert_eq!(
            totals.get("basket_value").map(|t| t.1),
            Some(2),
            "{language}: {totals:?}"
        );
        if language == "python" {
            assert_eq!(totals["basket_value"].0, 700.0);
            assert_eq!(totals.get("checkout").map(|t| t.1), Some(2), "the timer");
        }
    }
}

#[test]
fn without_the_telemetry_api_nothing_is_held_and_everything_arrives() {
    // An emulator without the Telemetry API: the extension never learns
    // when an invocation ends, so it holds no freeze and pushes when an
    // invocation begins, and at SHUTDOWN.
    let dir = tempfile::tempdir().expect("temp dir");
    let api = LambdaApi::start();
    api.without_telemetry();
    let url = api.receiver_url();
    let statsd = free_port().to_string();
    let otlp = free_port().to_string();
    let env = [
        ("EDGEPUSH_URL", url.as_str()),
        ("EDGEPUSH_STATSD_PORT", statsd.as_str()),
        ("EDGEPUSH_OTLP_PORT", otlp.as_str()),
    ];
    let binary = debug_binary("edgepush-extension", "edgepush-extension");
    let mut extension = api.start_extension(dir.path(), &binary, &env);
    let mut python = Command::new(python());
    python.arg(repo_root().join("tests/clients/statsd_function.py"));
    let function = api.spawn("python function", dir.path(), python, &env);
    for _ in 0..3 {
        let inv = api.invoke(
            json!({"send": [["statsd", "incr", "orders", 2]]}),
            Duration::from_secs(10),
        );
        let (answered, _) = inv.response.clone().expect("a response");
        let frozen = api
            .frozen(&inv.request_id, Duration::from_secs(10))
            .expect("frozen");
        // Nothing to wait for: the freeze follows the response (1 s of
        // slack for a loaded machine, against a 10 s deadline).
        assert!(
            frozen - answered < Duration::from_secs(1),
            "held {:?}",
            frozen - answered
        );
    }
    drop(function);
    shut_down(&api, &mut extension);
    let totals = api.captured_totals();
    assert_eq!(
        totals.get("orders").map(|t| t.0),
        Some(6.0),
        "{totals:?}\n{}",
        extension.log_text()
    );
    assert!(!totals.contains_key("Invocations"), "no platform metrics");
    assert!(emf_documents(&extension.log_text()).is_empty());
}
