//! The clients users already have push through the receiver unchanged, and
//! their values come back exactly from CloudWatch (moto) and InfluxDB:
//! InfluxDB's Python client writing line protocol, Prometheus' Python client
//! pushing as to a Pushgateway, and OpenTelemetry's Rust OTLP/HTTP exporter
//! (protobuf and JSON, gzip); each against the native receiver and against
//! the Worker in workerd. Then Prometheus (Debian) scrapes the native
//! receiver's own metrics and finds the counts of what was pushed.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use edgepush_receiver::limits::Limits;
use edgepush_receiver::sink::Sink;
use edgepush_receiver::tenant::{TenantConfig, Tenants};
use edgepush_tests::{
    Influx, Moto, Process, Receiver, Workerd, cloudwatch_sink, eventually, free_port, get_with_key,
    http_get, http_get_body, post, repo_root, scenario, wait_for,
};
use serde_json::{Value, json};

const KEY: &str = "interop-key";

fn python() -> String {
    let venv = repo_root().join(".venv/bin/python");
    if venv.exists() {
        venv.display().to_string()
    } else {
        "python3".into()
    }
}

/// Runs a client script from `tests/clients`; its standard output.
fn client(script: &str, args: &[&str]) -> String {
    let out = Command::new(python())
        .arg(repo_root().join("tests/clients").join(script))
        .args(args)
        .output()
        .expect("run the client script");
    assert!(
        out.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn now_ms() -> i64 {
    edgepush::now_ms()
}

/// A receiver with its two sinks.
struct Stack {
    moto: Moto,
    influx: Influx,
    /// The receiver's base URL.
    url: String,
    _receiver: Option<Receiver>,
    _worker: Option<Workerd>,
}

/// The native receiver forwarding to moto and InfluxDB.
fn native(dir: &Path) -> Stack {
    let moto = Moto::start(dir);
    let influx = Influx::start(dir);
    let sinks = vec![cloudwatch_sink(&moto), Sink::Influxdb(influx.target())];
    let receiver = Receiver::start(sinks, Limits::default(), vec![KEY.into()]);
    Stack {
        url: receiver.url.clone(),
        moto,
        influx,
        _receiver: Some(receiver),
        _worker: None,
    }
}

/// The Worker in workerd forwarding to moto and InfluxDB.
fn worker(dir: &Path) -> Stack {
    let moto = Moto::start(dir);
    let influx = Influx::start(dir);
    let mut settings = scenario::worker_settings(&moto, &influx);
    settings.insert("EDGEPUSH_API_KEYS".into(), KEY.into());
    let worker = Workerd::start(dir, &settings.into());
    Stack {
        url: worker.url.clone(),
        moto,
        influx,
        _receiver: None,
        _worker: Some(worker),
    }
}

/// CloudWatch's statistics of each metric of `namespace`, by name and
/// dimensions (`name{dim=value,...}`): [sum, count, min, max].
fn cloudwatch(moto: &mut Moto, namespace: &str) -> HashMap<String, [f64; 4]> {
    moto.metrics(namespace)
        .into_iter()
        .map(|m| {
            let mut dims: Vec<String> = m["dimensions"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect();
            dims.sort();
            let name = format!(
                "{}{{{}}}",
                m["name"].as_str().unwrap_or_default(),
                dims.join(",")
            );
            let f = |k: &str| m[k].as_f64().unwrap_or(f64::NAN);
            (name, [f("sum"), f("count"), f("min"), f("max")])
        })
        .collect()
}

/// InfluxDB's sum and count of the field `field` of `measurement` in `namespace`.
fn influx_sum(influx: &Influx, measurement: &str, field: &str, namespace: &str) -> (f64, u64) {
    let rows = influx.rows(&format!(
        "SELECT sum(\"{field}\"), count(\"{field}\") FROM \"{measurement}\" WHERE \"namespace\" = '{namespace}'"
    ));
    let row = rows.first().cloned().unwrap_or_default();
    (
        row.get("sum").and_then(Value::as_f64).unwrap_or(f64::NAN),
        row.get("count").and_then(Value::as_u64).unwrap_or(0),
    )
}

#[test]
fn influxdb_client_writes_line_protocol() {
    let dir = tempfile::tempdir().expect("temp dir");
    influxdb_client(native(dir.path()));
}

#[test]
fn influxdb_client_writes_line_protocol_to_the_worker() {
    let dir = tempfile::tempdir().expect("temp dir");
    influxdb_client(worker(dir.path()));
}

fn influxdb_client(mut s: Stack) {
    // Influx clients and Telegraf ping first.
    assert_eq!(
        edgepush_tests::http_get(&format!("{}/ping", s.url)),
        Ok(204)
    );
    let t = now_ms();
    let out: Value = serde_json::from_str(&client(
        "influx_write.py",
        &[&s.url, KEY, "shop-metrics", &t.to_string()],
    ))
    .expect("client output");
    assert_eq!(out["written"], true, "{out}");
    // String and boolean fields: stored by InfluxDB, refused by CloudWatch
    // (numbers only), each named by its line; a partial write.
    let typed = &out["typed"];
    assert_eq!(typed["status"], 400, "{out}");
    let refused: Vec<(&Value, &Value, &str)> = typed["body"]["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            let message = l["error_message"].as_str().unwrap_or_default();
            (
                &l["line"],
                &l["field"],
                message.split(':').next().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        refused,
        [
            (&json!(1), &json!("sinks.cloudwatch"), "string value"),
            (&json!(1), &json!("sinks.cloudwatch"), "boolean value"),
        ],
        "{out}"
    );
    assert!(
        typed["body"]["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("partial write: 2 points refused, 1 written to every sink"),
        "{out}"
    );
    // A line the receiver refuses (a reserved tag name), named by its line;
    // the other line of that write is stored.
    let partial = &out["partial"];
    assert_eq!(partial["status"], 400, "{out}");
    assert_eq!(partial["body"]["data"][0]["line"], 2, "{out}");
    assert_eq!(
        partial["body"]["data"][0]["field"], "lines[1].fields.level.dimensions._private",
        "{out}"
    );
    assert!(
        partial["body"]["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("partial write: 1 points refused, 1 written"),
        "{out}"
    );

    // InfluxDB v1's /write, with the key as the password and seconds.
    let (status, answer) = post(
        &format!("{}/write?db=shop-metrics&precision=s&u=any&p={KEY}", s.url),
        &[],
        format!("queue,shop=us value=2 {}", t / 1000).as_bytes(),
    );
    assert_eq!(status, 204, "{answer}");

    let expected: HashMap<String, [f64; 4]> = [
        ("checkout_latency{shop=eu}", [20.0, 2.0, 7.5, 12.5]),
        ("checkout_items{shop=eu}", [4.0, 2.0, 1.0, 3.0]),
        ("queue{shop=eu}", [7.0, 1.0, 7.0, 7.0]),
        ("queue{shop=us}", [2.0, 1.0, 2.0, 2.0]),
        ("stock_level{shop=eu}", [9.0, 2.0, 4.0, 5.0]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    eventually(Duration::from_secs(20), || {
        assert_eq!(cloudwatch(&mut s.moto, "shop-metrics"), expected);
    });
    assert_eq!(
        influx_sum(&s.influx, "checkout_latency", "value", "shop-metrics"),
        (20.0, 2)
    );
    assert_eq!(
        influx_sum(&s.influx, "queue", "value", "shop-metrics"),
        (9.0, 2)
    );
    assert_eq!(
        influx_sum(&s.influx, "stock_level", "value", "shop-metrics"),
        (9.0, 2)
    );
    // The string and boolean, exactly as the client wrote them.
    for (measurement, value) in [
        ("stock_note", json!("low \"now\", C:\\x")),
        ("stock_restocked", json!(true)),
    ] {
        let rows = s.influx.rows(&format!(
            "SELECT \"value\", \"shop\" FROM \"{measurement}\" WHERE \"namespace\" = 'shop-metrics'"
        ));
        assert_eq!(rows.len(), 1, "{measurement}: {rows:?}");
        assert_eq!(
            (&rows[0]["value"], &rows[0]["shop"]),
            (&value, &json!("eu")),
            "{measurement}"
        );
    }
}

#[test]
fn prometheus_client_pushes_as_to_a_pushgateway() {
    let dir = tempfile::tempdir().expect("temp dir");
    prometheus_client(native(dir.path()));
}

#[test]
fn prometheus_client_pushes_to_the_worker() {
    let dir = tempfile::tempdir().expect("temp dir");
    prometheus_client(worker(dir.path()));
}

fn prometheus_client(mut s: Stack) {
    assert_eq!(
        client("prometheus_push.py", &[&s.url, KEY]).trim(),
        "pushed"
    );
    // Observations 0.05, 0.3, 0.3 and 2.0 in buckets 0.1, 0.5, 1, +Inf: at
    // the buckets' middles (the first at its bound, +Inf at the last bound).
    let group = "instance=host/a,job=nightly";
    let expected: HashMap<String, [f64; 4]> = [
        (
            format!("jobs_processed_total{{{group},queue=emails}}"),
            [5.0, 1.0, 5.0, 5.0],
        ),
        (
            format!("job_duration_seconds{{{group}}}"),
            [0.1 + 0.3 + 0.3 + 1.0, 4.0, 0.1, 1.0],
        ),
        (
            format!("job_duration_seconds_sum{{{group}}}"),
            [2.65, 1.0, 2.65, 2.65],
        ),
        (
            format!("job_duration_seconds_count{{{group}}}"),
            [4.0, 1.0, 4.0, 4.0],
        ),
        (
            format!("last_success_seconds{{{group}}}"),
            [1234.5, 1.0, 1234.5, 1234.5],
        ),
    ]
    .into_iter()
    .collect();
    eventually(Duration::from_secs(20), || {
        let got = cloudwatch(&mut s.moto, "edgepush");
        assert_eq!(got.len(), expected.len(), "{got:?}");
        for (name, want) in &expected {
            let have = got.get(name).unwrap_or_else(|| panic!("{name} in {got:?}"));
            for (h, w) in have.iter().zip(want) {
                assert!((h - w).abs() < 1e-9, "{name}: {have:?} != {want:?}");
            }
        }
    });
    assert_eq!(
        influx_sum(&s.influx, "jobs_processed_total", "value", "edgepush"),
        (5.0, 1)
    );
    assert_eq!(
        influx_sum(&s.influx, "job_duration_seconds", "count", "edgepush"),
        (4.0, 1)
    );
}

#[test]
fn opentelemetry_exporter_pushes_otlp() {
    let dir = tempfile::tempdir().expect("temp dir");
    opentelemetry_exporter(native(dir.path()));
}

#[test]
fn opentelemetry_exporter_pushes_otlp_to_the_worker() {
    let dir = tempfile::tempdir().expect("temp dir");
    opentelemetry_exporter(worker(dir.path()));
}

fn opentelemetry_exporter(mut s: Stack) {
    use opentelemetry::KeyValue;
    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry_otlp::{
        Compression, MetricExporter, Protocol, WithExportConfig, WithHttpConfig,
    };
    use opentelemetry_sdk::Resource;
    use opentelemetry_sdk::metrics::{SdkMeterProvider, Temporality};

    for (protocol, namespace) in [
        (Protocol::HttpBinary, "otlp-protobuf"),
        (Protocol::HttpJson, "otlp-json"),
    ] {
        let exporter = MetricExporter::builder()
            .with_http()
            .with_protocol(protocol)
            .with_endpoint(format!("{}/v1/metrics", s.url))
            .with_compression(Compression::Gzip)
            .with_headers(HashMap::from([
                ("authorization".to_string(), format!("Bearer {KEY}")),
                ("edgepush-namespace".to_string(), namespace.to_string()),
            ]))
            .with_temporality(Temporality::Delta)
            .build()
            .expect("exporter");
        let provider = SdkMeterProvider::builder()
            .with_periodic_exporter(exporter)
            .with_resource(Resource::builder().with_service_name("shop").build())
            .build();
        let meter = provider.meter("interop");
        let orders = meter.u64_counter("orders").with_unit("1").build();
        orders.add(3, &[KeyValue::new("region", "eu")]);
        orders.add(4, &[KeyValue::new("region", "eu")]);
        let latency = meter
            .f64_histogram("latency")
            .with_unit("ms")
            .with_boundaries(vec![10.0, 50.0, 100.0])
            .build();
        for ms in [5.0, 20.0, 40.0, 70.0] {
            latency.record(ms, &[]);
        }
        let depth = meter.i64_up_down_counter("queue_depth").build();
        depth.add(6, &[]);
        depth.add(-2, &[]);
        let temperature = meter.f64_gauge("temperature").with_unit("%").build();
        temperature.record(21.5, &[]);
        // Shutting down exports once (a flush before it would export the
        // up-down counter's cumulative value twice: two gauge samples).
        provider.shutdown().expect("export and shut down");

        // The histogram: 5 in (-inf, 10] at its minimum 5; 20 and 40 in
        // (10, 50] at 30; 70 in (50, 100] at its middle 75, within the
        // maximum: 70.
        let expected: HashMap<String, [f64; 4]> = [
            ("orders{region=eu,service.name=shop}", [7.0, 1.0, 7.0, 7.0]),
            (
                "latency{service.name=shop}",
                [5.0 + 30.0 * 2.0 + 70.0, 4.0, 5.0, 70.0],
            ),
            ("queue_depth{service.name=shop}", [4.0, 1.0, 4.0, 4.0]),
            ("temperature{service.name=shop}", [21.5, 1.0, 21.5, 21.5]),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        eventually(Duration::from_secs(20), || {
            assert_eq!(cloudwatch(&mut s.moto, namespace), expected, "{namespace}");
        });
        assert_eq!(
            influx_sum(&s.influx, "orders", "value", namespace),
            (7.0, 1),
            "{namespace}"
        );
        assert_eq!(
            influx_sum(&s.influx, "latency", "sum", namespace),
            (135.0, 1),
            "{namespace}"
        );
    }

    // A cumulative exporter is told what to change.
    let cumulative = json!({"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"c",
        "sum":{"aggregationTemporality":2,"isMonotonic":true,
          "dataPoints":[{"asInt":"1","timeUnixNano":(now_ms() as u64 * 1_000_000).to_string()}]}}]}]}]});
    let (status, answer) = post(
        &format!("{}/v1/metrics", s.url),
        &[
            ("content-type", "application/json"),
            ("authorization", &format!("Bearer {KEY}")),
        ],
        cumulative.to_string().as_bytes(),
    );
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap_or_default()
            .contains("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=delta"),
        "{answer}"
    );
}

#[test]
fn prometheus_scrapes_the_receivers_own_metrics() {
    let dir = tempfile::tempdir().expect("temp dir");
    let influx = Influx::start(dir.path());
    let tenants = Tenants::with_api_keys(
        vec![KEY.into()],
        vec![TenantConfig::new("shop", &["shop-key"], &["Shop"])],
        300,
    )
    .expect("tenants");
    let receiver = Receiver::start_with(
        vec![Sink::Influxdb(influx.target())],
        Limits::default(),
        tenants,
    );
    let auth = format!("Bearer {KEY}");
    let t = now_ms();
    // 3 line-protocol writes of 2 points, one of them with a third point
    // that is refused; 2 Prometheus pushes of 1 sample; 1 unauthorised push.
    for i in 0..3 {
        let extra = if i == 0 { ",bad=1e400" } else { "" };
        let (status, answer) = post(
            &format!("{}/api/v2/write?bucket=own&precision=ms", receiver.url),
            &[("authorization", &auth)],
            format!("m,i={i} a=1,b=2{extra} {t}").as_bytes(),
        );
        // The first write's infinite field is refused: a partial write.
        let expected = if i == 0 { 400 } else { 204 };
        assert_eq!(status, expected, "{answer}");
    }
    for job in ["a", "b"] {
        let (status, answer) = post(
            &format!("{}/metrics/job/{job}", receiver.url),
            &[("authorization", &auth)],
            b"up 1\n",
        );
        assert_eq!(status, 200, "{answer}");
    }
    let (status, _) = post(&format!("{}/metrics/job/x", receiver.url), &[], b"up 1\n");
    assert_eq!(status, 401);
    // The receiver's own metrics name its tenants: they need a key of a
    // tenant that may write every namespace.
    assert_eq!(http_get(&format!("{}/metrics", receiver.url)), Ok(401));
    let (status, answer) = get_with_key(&format!("{}/metrics", receiver.url), "shop-key");
    assert_eq!(status, 403, "{answer}");

    let port = free_port();
    let target = receiver.url.trim_start_matches("http://");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: edgepush\n    \
             authorization:\n      credentials: {KEY}\n    \
             static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .expect("write prometheus.yml");
    let mut command = Command::new("prometheus");
    command
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("prometheus").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"));
    let mut prometheus = Process::spawn("prometheus", command, dir.path().join("prometheus.log"));
    let api = format!("http://127.0.0.1:{port}");
    wait_for("prometheus", Duration::from_secs(60), || {
        prometheus.assert_running();
        http_get_body(&format!("{api}/-/ready")).is_ok()
    });
    let query = |q: &str| -> f64 {
        let url = format!(
            "{api}/api/v1/query?query={}",
            q.replace('{', "%7B")
                .replace('}', "%7D")
                .replace('"', "%22")
                .replace('=', "%3D")
                .replace(',', "%2C")
        );
        let body = http_get_body(&url).unwrap_or_default();
        let answer: Value = serde_json::from_str(&body).unwrap_or_default();
        answer["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    };
    eventually(Duration::from_secs(60), || {
        assert_eq!(
            query(r#"edgepush_points_accepted_total{format="line_protocol",tenant="default"}"#),
            6.0
        );
        assert_eq!(
            query(r#"edgepush_points_refused_total{format="line_protocol",reason="value"}"#),
            1.0
        );
        assert_eq!(
            query(r#"edgepush_requests_total{format="line_protocol",status="204"}"#),
            2.0
        );
        assert_eq!(
            query(r#"edgepush_requests_total{format="line_protocol",status="400"}"#),
            1.0
        );
        assert_eq!(
            query(r#"edgepush_points_accepted_total{format="prometheus"}"#),
            2.0
        );
        assert_eq!(
            query(r#"edgepush_requests_refused_total{format="prometheus",reason="unauthorized"}"#),
            1.0
        );
        assert_eq!(
            query(r#"edgepush_sink_requests_total{sink="influxdb",outcome="2xx"}"#),
            5.0
        );
    });
    prometheus.stop();
}
