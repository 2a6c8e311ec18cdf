//! The emitter's npm package, installed from its `npm pack` tarball: Node's
//! test runner pushes through the native receiver into the CloudWatch
//! emulator, and a JavaScript Worker bundled by wrangler runs in workerd and
//! flushes with `ctx.waitUntil` into the receiver Worker. Values are read
//! back exactly. A Lambda handler bundled by esbuild (as CDK does) pushes
//! through the receiver, and writes CloudWatch EMF to stdout, once, for what
//! it cannot push.

use std::process::Command;
use std::time::Duration;

use edgepush_receiver::limits::Limits;
use edgepush_receiver::sink::{Sink, influxdb};
use edgepush_receiver::tenant::{TenantConfig, Tenants};
use edgepush_tests::{
    Moto, Receiver, Workerd, cloudwatch_sink, eventually, free_port, npm_project, repo_root,
};
use serde_json::{Value, json};

fn by_name<'a>(metrics: &'a [Value], name: &str, dims: Value) -> &'a Value {
    metrics
        .iter()
        .find(|m| m["name"] == name && m["dimensions"] == dims)
        .unwrap_or_else(|| panic!("no {name} {dims} in {metrics:#?}"))
}

fn stats(m: &Value) -> Value {
    json!([m["sum"], m["count"], m["min"], m["max"], m["units"]])
}

/// The most each entry point's code (wasm and JavaScript, each file gzip
/// -9) may weigh. The Workers entry was 40.7 KB until Lambda's EMF fallback
/// (the wire v2 decoder, 21 KB, and the EMF writer, 7 KB, in the wasm:
/// 71.8 KB), then 77.6 KB with wire v3 (its set table, a hash table, in
/// the encoder; the decoder's check for repeated names in large sets), the
/// per-call index each emitter holds and the reusable deflate state; the
/// Node.js entry carries the wasm inlined as base64 (so bundlers take it
/// along), which gzip leaves 27% larger than the wasm.
const BUDGETS: &[(&str, &[&str], usize)] = &[
    (
        "workers.mjs",
        &[
            "workers.mjs",
            "with-metrics.mjs",
            "per-call.mjs",
            "edgepush.js",
            "push.js",
            "edgepush_bg.wasm",
        ],
        79_000,
    ),
    (
        "node.mjs",
        &[
            "node.mjs",
            "with-metrics.mjs",
            "per-call.mjs",
            "edgepush.js",
            "push.js",
            "edgepush_bg.wasm.base64.mjs",
        ],
        125_000,
    ),
];

#[test]
fn each_entry_point_stays_within_its_size_budget() {
    use std::io::Write as _;
    edgepush_tests::js_package();
    let pkg = repo_root().join("emitter/js/pkg");
    let mut files = Vec::new();
    let mut dirs = vec![pkg.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("package folder") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    let gzipped = |name: &str| {
        let file = files
            .iter()
            .find(|f| f.file_name().is_some_and(|n| n == name))
            .unwrap_or_else(|| panic!("no {name} in {files:?}"));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&std::fs::read(file).expect("read"))
            .expect("gzip");
        gz.finish().expect("gzip").len()
    };
    for (entry, names, budget) in BUDGETS {
        let sizes: Vec<(&str, usize)> = names.iter().map(|n| (*n, gzipped(n))).collect();
        let total: usize = sizes.iter().map(|(_, s)| s).sum();
        println!("{entry}: {total} bytes gzip -9 ({sizes:?})");
        assert!(
            total <= *budget,
            "{entry}'s code grew to {total} bytes gzip'd, over its budget of {budget}: {sizes:?}"
        );
    }
}

#[test]
fn node_pushes_through_the_native_receiver() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut moto = Moto::start(dir.path());
    let receiver = Receiver::start(
        vec![cloudwatch_sink(&moto)],
        Limits::default(),
        vec!["node-key".into()],
    );
    // Its only sink is down: it answers 503 to every push.
    let down = Receiver::start(
        vec![Sink::Influxdb(influxdb::Target::V1 {
            url: format!("http://127.0.0.1:{}", free_port()),
            database: "down".into(),
            retention_policy: None,
            username: None,
            password: None,
            store_strings: true,
            quantiles: Default::default(),
        })],
        Limits::default(),
        vec!["node-key".into()],
    );
    // Its only tenant accepts signed requests only.
    let mut signing = TenantConfig::new("js", &["node-sign-key"], &["JsSigned"]);
    signing.require_signature = true;
    let signed = Receiver::start_with(
        vec![cloudwatch_sink(&moto)],
        Limits::default(),
        Tenants::new(vec![signing], 300).expect("tenants"),
    );
    let project = npm_project(dir.path());
    let out = Command::new(edgepush_tests::node())
        .args(["--test", "push.test.mjs"])
        .env("EDGEPUSH_SIGNED_URL", format!("{}/v1/metrics", signed.url))
        .env("EDGEPUSH_SIGNING_KEY", "node-sign-key")
        // The base URL, as for the Rust emitter (the signed one is a full
        // /v1/metrics URL, which works too).
        .env("EDGEPUSH_URL", &receiver.url)
        .env("EDGEPUSH_DOWN_URL", format!("{}/v1/metrics", down.url))
        .env("EDGEPUSH_API_KEY", "node-key")
        .current_dir(&project)
        .output()
        .expect("run node --test");
    assert!(
        out.status.success(),
        "node --test failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let metrics = moto.metrics("JsNode");
    let shop = |extra: &[(&str, &str)]| {
        let mut d = json!({"service": "shop"});
        for (k, v) in extra {
            d[*k] = json!(v);
        }
        d
    };
    assert_eq!(
        stats(by_name(&metrics, "orders", shop(&[("route", "/buy")]))),
        json!([7.0, 1.0, 7.0, 7.0, ["Count"]])
    );
    assert_eq!(
        stats(by_name(&metrics, "orders", shop(&[("route", "/cart")]))),
        json!([1.0, 1.0, 1.0, 1.0, ["Count"]])
    );
    // A gauge set twice: its statistics over the interval.
    assert_eq!(
        stats(by_name(&metrics, "queue_depth", shop(&[]))),
        json!([10.0, 2.0, 3.0, 7.0, ["None"]])
    );
    // 1.5, 2.5 twice, 40, and 10 six times.
    assert_eq!(
        stats(by_name(&metrics, "latency", shop(&[]))),
        json!([106.5, 10.0, 1.5, 40.0, ["Milliseconds"]])
    );
    assert_eq!(
        stats(by_name(&metrics, "payload", shop(&[]))),
        json!([100.0, 4.0, 10.0, 40.0, ["Bytes"]])
    );
    assert_eq!(
        stats(by_name(&metrics, "plain", shop(&[]))),
        json!([3.0, 1.0, 3.0, 3.0, ["None"]])
    );
    assert!(
        metrics.iter().all(|m| m["name"] != "refused"),
        "a batch refused for its key is not stored: {metrics:#?}"
    );
    assert_eq!(metrics.len(), 6, "{metrics:#?}");
    // Per call: one series for the same options in any key order or copy,
    // another once the options object was changed in place; a value out
    // of range registers nothing.
    let per_call = moto.metrics("JsPerCall");
    let route = |r: &str| json!({"service": "shop", "route": r, "method": "GET"});
    for (name, dims, expected) in [
        ("hits", route("/a"), json!([7.0, 1.0, 7.0, 7.0, ["Count"]])),
        ("hits", route("/b"), json!([8.0, 1.0, 8.0, 8.0, ["Count"]])),
        ("depth", shop(&[]), json!([14.0, 3.0, 3.0, 6.0, ["None"]])),
        ("shifty", shop(&[]), json!([1.0, 1.0, 1.0, 1.0, ["Count"]])),
        ("ones", shop(&[]), json!([2.0, 1.0, 2.0, 2.0, ["None"]])),
    ] {
        assert_eq!(stats(by_name(&per_call, name, dims)), expected, "{name}");
    }
    assert!(
        per_call.iter().all(|m| m["name"] != "huge"),
        "a refused value registers nothing: {per_call:#?}"
    );
    let signed = moto.metrics("JsSigned");
    assert_eq!(signed.len(), 1, "{signed:#?}");
    assert_eq!(
        stats(by_name(&signed, "signed_orders", json!({}))),
        json!([5.0, 2.0, 2.0, 3.0, ["Count"]])
    );
}

#[test]
fn a_worker_flushes_with_wait_until_into_the_receiver_worker() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut moto = Moto::start(dir.path());
    let receiver = Workerd::start(dir.path(), &moto.worker_settings().into());

    // Bundled the way users deploy it: wrangler resolves the package's
    // `workerd` entry point and the .wasm module.
    let project = npm_project(dir.path());
    std::fs::write(
        project.join("wrangler.toml"),
        "name = \"edgepush-js-test\"\nmain = \"worker.mjs\"\ncompatibility_date = \"2026-04-26\"\n",
    )
    .expect("wrangler.toml");
    let wrangler = repo_root().join("tests/workerd/node_modules/.bin/wrangler");
    let bundled = Command::new(&wrangler)
        .args(["deploy", "--dry-run", "--outdir", "dist"])
        .env("WRANGLER_SEND_METRICS", "false")
        .env("CI", "true")
        .current_dir(&project)
        .output()
        .expect("run wrangler");
    assert!(
        bundled.status.success(),
        "wrangler deploy --dry-run failed:\n{}\n{}",
        String::from_utf8_lossy(&bundled.stdout),
        String::from_utf8_lossy(&bundled.stderr)
    );
    let app = Workerd::start_with(
        dir.path(),
        &json!({ "EDGEPUSH_URL": format!("{}/v1/metrics", receiver.url) }),
        &json!({
            "scriptPath": project.join("dist/worker.js"),
            "modulesRoot": project.join("dist"),
            "modulesRules": [{ "type": "CompiledWasm", "include": ["**/*.wasm"] }],
        }),
    );

    for (path, size) in [("/buy", 10), ("/buy", 20), ("/cart", 30), ("/buy", 40)] {
        let body = edgepush_tests::http_get_body(&format!("{}{path}?size={size}", app.url));
        assert_eq!(body.as_deref(), Ok("ok"), "{path}");
    }

    let dims = |route: &str| json!({"service": "shop", "route": route});
    eventually(Duration::from_secs(20), || {
        let metrics = moto.metrics("JsWorker");
        assert_eq!(
            stats(by_name(&metrics, "requests", dims("/buy"))),
            json!([3.0, 3.0, 1.0, 1.0, ["Count"]]),
            "one flush per request"
        );
        assert_eq!(
            stats(by_name(&metrics, "requests", dims("/cart"))),
            json!([1.0, 1.0, 1.0, 1.0, ["Count"]])
        );
        assert_eq!(
            stats(by_name(&metrics, "body_size", json!({"service": "shop"}))),
            json!([100.0, 4.0, 10.0, 40.0, ["Bytes"]])
        );
        assert_eq!(metrics.len(), 3, "{metrics:#?}");
    });
}

/// Runs the bundled handler `bundle` under Node.js with `events`, in AWS
/// Lambda's environment, pushing to `url`; returns its stdout (the log).
fn invoke(bundle: &std::path::Path, url: &str, events: &Value) -> String {
    let out = edgepush_tests::run_ok(
        Command::new(edgepush_tests::node())
            .arg("invoke.cjs")
            .arg(bundle)
            .arg(events.to_string())
            .current_dir(bundle.parent().expect("bundle folder"))
            .env("AWS_LAMBDA_FUNCTION_NAME", "orders")
            .env("EDGEPUSH_URL", url)
            .env("EDGEPUSH_API_KEY", "lambda-key"),
        "the bundled handler",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.lines().filter(|l| *l == r#"{"ok":true}"#).count(),
        events.as_array().map_or(0, Vec::len),
        "every invocation returns: {stderr}"
    );
    String::from_utf8(out.stdout).expect("UTF-8 stdout")
}

/// The values of metric `name` in the EMF documents of `log` whose
/// `requestId` is `request`, read as CloudWatch Logs reads them: each line
/// a JSON document with `_aws.CloudWatchMetrics`, values a number or a list.
fn emf_values(log: &str, name: &str, request: &str) -> Vec<f64> {
    let mut values = Vec::new();
    for line in log.lines() {
        let doc: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("stdout holds only EMF documents: {e}: {line}"));
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "JsLambda", "{line}");
        if doc["requestId"] != request {
            continue;
        }
        match &doc[name] {
            Value::Number(n) => values.push(n.as_f64().expect("f64")),
            Value::Array(a) => values.extend(a.iter().filter_map(Value::as_f64)),
            _ => {}
        }
    }
    values.sort_by(f64::total_cmp);
    values
}

#[test]
fn a_lambda_handler_bundled_by_esbuild_pushes_or_writes_emf_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut moto = Moto::start(dir.path());
    let receiver = Receiver::start(
        vec![cloudwatch_sink(&moto)],
        Limits::default(),
        vec!["lambda-key".into()],
    );
    // Bundled as CDK's NodejsFunction bundles (CommonJS for Node 22, every
    // import inlined), then run from a folder with no node_modules.
    let project = npm_project(dir.path());
    let lambda = dir.path().join("lambda");
    edgepush_tests::run_ok(
        Command::new(edgepush_tests::esbuild())
            .args([
                "handler.mjs",
                "--bundle",
                "--platform=node",
                "--format=cjs",
                "--target=node22",
                "--log-level=error",
            ])
            .arg(format!("--outfile={}", lambda.join("index.js").display()))
            .current_dir(&project),
        "esbuild",
    );
    std::fs::copy(project.join("invoke.cjs"), lambda.join("invoke.cjs")).expect("invoke.cjs");
    let bundle = lambda.join("index.js");

    // Up: pushed, nothing in the log.
    let events = json!([
        { "orders": 2, "latencies": [10, 20] },
        { "orders": 3, "latencies": [30] },
    ]);
    let log = invoke(&bundle, &receiver.url, &events);
    assert_eq!(
        log, "",
        "nothing written as EMF while the receiver takes it"
    );
    let metrics = moto.metrics("JsLambda");
    let shop = json!({ "service": "shop" });
    assert_eq!(
        stats(by_name(&metrics, "orders", shop.clone())),
        json!([5.0, 2.0, 2.0, 3.0, ["Count"]]),
        "one flush per invocation"
    );
    assert_eq!(
        stats(by_name(&metrics, "latency", shop)),
        json!([60.0, 3.0, 10.0, 30.0, ["Milliseconds"]])
    );

    // Receiver unreachable, then a URL that is not a receiver (404): each
    // invocation's points are written as EMF with its request id, once.
    let down = format!("http://127.0.0.1:{}", free_port());
    let missing = format!("{}/not-edgepush", receiver.url);
    for url in [down, missing] {
        let events = json!([
            { "orders": 4, "latencies": [5, 5, 7] },
            { "orders": 1, "latencies": [9] },
        ]);
        let log = invoke(&bundle, &url, &events);
        assert_eq!(emf_values(&log, "orders", "req-1"), [4.0], "{log}");
        assert_eq!(
            emf_values(&log, "latency", "req-1"),
            [5.0, 5.0, 7.0],
            "{log}"
        );
        assert_eq!(emf_values(&log, "orders", "req-2"), [1.0], "{log}");
        assert_eq!(emf_values(&log, "latency", "req-2"), [9.0], "{log}");
        assert_eq!(log.lines().count(), 2, "one document per invocation: {log}");
    }
}
