//! The emitter in a Rust Cloudflare Worker (`worker-example/`): built with
//! its own `build.sh` (worker-build, stable Rust), run in workerd, it
//! records per request with the JavaScript clock (std has none on
//! `wasm32-unknown-unknown`) and pushes after each response with
//! `ctx.wait_until` into the native receiver; read back from the CloudWatch
//! emulator.

use std::process::Command;
use std::time::Duration;

use edgepush_receiver::limits::Limits;
use edgepush_tests::{
    Moto, Receiver, Relay, Workerd, cloudwatch_sink, eventually, repo_root, wait_for,
};
use serde_json::{Value, json};

fn stats(metrics: &[Value], name: &str, dims: &Value) -> Value {
    let m = metrics
        .iter()
        .find(|m| m["name"] == name && &m["dimensions"] == dims)
        .unwrap_or_else(|| panic!("no {name} {dims} in {metrics:#?}"));
    json!([m["sum"], m["count"], m["min"], m["max"], m["units"]])
}

#[test]
fn a_rust_worker_records_and_pushes_after_the_response() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("build");
    edgepush_tests::run_ok(
        Command::new("bash")
            .arg(repo_root().join("worker-example/build.sh"))
            .arg(&out),
        "worker-example/build.sh",
    );

    let mut moto = Moto::start(dir.path());
    let receiver = Receiver::start(
        vec![cloudwatch_sink(&moto)],
        Limits::default(),
        vec!["example-key".into()],
    );
    // The receiver behind a relay that can hold pushes unanswered.
    let relay = Relay::start(&receiver.url);
    let worker = Workerd::start_with(
        dir.path(),
        &json!({ "EDGEPUSH_URL": relay.url, "EDGEPUSH_API_KEY": "example-key" }),
        &json!({
            "scriptPath": out.join("index.js"),
            "modulesRoot": out,
            "modulesRules": [{ "type": "CompiledWasm", "include": ["**/*.wasm"] }],
        }),
    );
    // After the response: with the push held, the visitor is answered, and
    // the push is under way.
    let before = relay.arrived();
    relay.hold(true);
    let body = edgepush_tests::http_get_body(&format!("{}/buy?size=10", worker.url));
    assert_eq!(body.as_deref(), Ok("ok"), "answered while its push is held");
    wait_for(
        "the push after the response",
        Duration::from_secs(20),
        || relay.arrived() > before,
    );
    relay.hold(false);
    for (path, size) in [("/buy", 20), ("/cart", 30), ("/buy", 40)] {
        let body = edgepush_tests::http_get_body(&format!("{}{path}?size={size}", worker.url));
        assert_eq!(body.as_deref(), Ok("ok"), "{path}");
    }

    // The read-back takes datapoints of the last and next day only: points
    // stamped by a clock that is not the JavaScript one would be missing.
    let route = |r: &str| json!({ "worker": "example", "route": r });
    eventually(Duration::from_secs(20), || {
        let metrics = moto.metrics("EdgeExample");
        assert_eq!(
            stats(&metrics, "requests", &route("/buy")),
            json!([3.0, 3.0, 1.0, 1.0, ["Count"]]),
            "one push per request: {}",
            worker.log_text()
        );
        assert_eq!(
            stats(&metrics, "requests", &route("/cart")),
            json!([1.0, 1.0, 1.0, 1.0, ["Count"]])
        );
        // The start-up probes (GET /healthz, size 0) are requests too.
        let probes = metrics
            .iter()
            .find(|m| m["name"] == "requests" && m["dimensions"] == route("/healthz"))
            .map_or(0.0, |m| m["count"].as_f64().expect("count"));
        assert_eq!(
            stats(&metrics, "body_size", &json!({ "worker": "example" })),
            json!([
                100.0,
                4.0 + probes,
                if probes > 0.0 { 0.0 } else { 10.0 },
                40.0,
                ["Bytes"]
            ])
        );
    });
}
