//! The Lambda extension's examples, run locally: the native receiver
//! (forwarding line protocol to stdout, its local default), the project's
//! Lambda Runtime, Extensions and Telemetry API, the extension, and the
//! example function in Python or Node.js under its bootstrap; three
//! invocations, then SHUTDOWN, then what the receiver forwarded.
//!
//! ```text
//! .ci/setup   # the Python clients and Node.js packages the examples use
//! cargo run -p edgepush-tests --example extension_local -- python
//! cargo run -p edgepush-tests --example extension_local -- node
//! ```

use std::process::Command;
use std::time::Duration;

use edgepush_tests::lambda_api::{LambdaApi, start_extension_example};
use edgepush_tests::{Process, debug_binary, free_port, http_get, wait_for};
use serde_json::json;

fn main() {
    let language = std::env::args().nth(1).unwrap_or_else(|| "python".into());
    let dir = tempfile::tempdir().expect("temp dir");
    let receiver_bin = debug_binary("edgepush-receiver-native", "edgepush-receiver");
    let extension_bin = debug_binary("edgepush-extension", "edgepush-extension");

    let listen = format!("127.0.0.1:{}", free_port());
    let mut receiver_cmd = Command::new(receiver_bin);
    receiver_cmd.env("EDGEPUSH_LISTEN", &listen);
    let forwarded = dir.path().join("forwarded.log");
    let mut receiver = Process::spawn("receiver", receiver_cmd, forwarded.clone());
    let url = format!("http://{listen}");
    wait_for("the receiver", Duration::from_secs(30), || {
        receiver.assert_running();
        http_get(&format!("{url}/healthz")).is_ok()
    });

    let api = LambdaApi::start();
    let statsd = free_port().to_string();
    let otlp = free_port().to_string();
    let endpoint = format!("http://127.0.0.1:{otlp}/v1/metrics");
    let env = [
        ("EDGEPUSH_URL", url.as_str()),
        ("EDGEPUSH_NAMESPACE", "Shop"),
        ("EDGEPUSH_STATSD_PORT", statsd.as_str()),
        ("EDGEPUSH_OTLP_PORT", otlp.as_str()),
        ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", endpoint.as_str()),
    ];
    let mut extension = api.start_extension(dir.path(), &extension_bin, &env);
    let function = start_extension_example(&api, dir.path(), &language, &env);
    for cents in [250, 100, 475] {
        let event = json!({"tenant": "acme", "items": [{"cents": cents}], "cents": cents});
        let inv = api.invoke(event, Duration::from_secs(20));
        let answer = inv.response.map(|(_, a)| a);
        eprintln!("invocation {}: {answer:?}", inv.request_id);
        api.frozen(&inv.request_id, Duration::from_secs(10));
    }
    drop(function);
    api.shutdown();
    extension.exited_within(Duration::from_secs(3));
    receiver.terminate();
    println!("\nExtension's log:\n{}", extension.log_text());
    println!("Forwarded by the receiver (line protocol, as InfluxDB would receive it):");
    for line in receiver
        .log_text()
        .lines()
        .filter(|l| !l.starts_with('{') && l.contains(' '))
    {
        println!("{line}");
    }
}
