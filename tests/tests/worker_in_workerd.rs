//! The receiver built as a Cloudflare Worker, running in workerd (Miniflare):
//! the same read-back scenario and the same bad-input table as the native
//! server, forwarding over `fetch` with SigV4 signed inside wasm.

use std::time::Duration;

use edgepush_tests::bad_input::{V1, assert_only_kept_arrived, batch, check_refusals};
use edgepush_tests::{Influx, Moto, Workerd, gzip, post, scenario, security};
use serde_json::json;

/// What the Worker's wasm may weigh, gzip -9 (what Cloudflare counts),
/// with every ingest format: the project's target, 300 KB, built on the
/// pinned nightly (`.ci/wasm-tools`) as deploys are; STABLE_GZIP_BUDGET
/// when the build fell back to stable (docs/BENCHMARKS.md has the sizes).
const WASM_GZIP_BUDGET: usize = 300_000;
/// The same Worker built on stable (no std rebuilt for size, panics that
/// format their message): STABLE_MEASURED bytes, budget with 1% slack.
const STABLE_GZIP_BUDGET: usize = STABLE_MEASURED * 101 / 100;
const STABLE_MEASURED: usize = 338_531;

#[test]
fn the_worker_stays_within_its_size_budget() {
    use std::io::Write as _;
    let wasm = std::fs::read(edgepush_tests::worker_wasm()).expect("the Worker's wasm");
    let toolchain = edgepush_tests::worker_toolchain("build");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&wasm).expect("gzip");
    let gzipped = gz.finish().expect("gzip").len();
    println!(
        "Worker wasm built with {toolchain}: {} bytes, {gzipped} gzip -9",
        wasm.len()
    );
    let budget = if toolchain == "stable" {
        STABLE_GZIP_BUDGET
    } else {
        WASM_GZIP_BUDGET
    };
    assert!(
        gzipped <= budget,
        "the Worker's wasm built with {toolchain} grew to {gzipped} bytes gzip'd, over its budget of {budget}"
    );
}

/// The smallest build, edgepush's wire formats only
/// (`EDGEPUSH_WORKER_FORMATS=""`): 231 KB before the Durable Object
/// aggregators, 243.9 KB with them (the merge rules, packed batches, the
/// alarm's flush), 246.0 KB with the refusal of an open Worker, sink URLs
/// checked at start and dead letters listed per tenant a page at a time,
/// 248.2 KB with wire v3 (its set table and the decoder's bounds on it).
/// This budget stops it from growing unnoticed; lower it whenever the
/// Worker shrinks.
const WIRE_ONLY_GZIP_BUDGET: usize = 249_000;

#[test]
fn the_wire_only_worker_is_smaller_and_refuses_the_other_formats_by_name() {
    use std::io::Write as _;
    let gzipped = |path| {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&std::fs::read(path).expect("wasm"))
            .expect("gzip");
        gz.finish().expect("gzip").len()
    };
    let lean = gzipped(edgepush_tests::wire_only_worker_wasm());
    let full = gzipped(edgepush_tests::worker_wasm());
    // The budget is the nightly build's; a stable build is measured only
    // against the full one.
    let budget = match edgepush_tests::worker_toolchain("build-wire-only").as_str() {
        "stable" => usize::MAX,
        _ => WIRE_ONLY_GZIP_BUDGET,
    };
    println!("Worker wasm gzip -9: {lean} bytes wire formats only, {full} with every format");
    assert!(
        lean <= budget && lean < full,
        "wire-only Worker {lean} bytes gzip'd (budget {budget}, full build {full})"
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let influx = Influx::start(dir.path());
    let worker = Workerd::start_wire_only(
        dir.path(),
        &json!({ "EDGEPUSH_INFLUXDB_URL": influx.url, "EDGEPUSH_INFLUXDB_DATABASE": influx.database }),
    );
    let body = batch("lean", r#"{"n":"kept","k":"g"}"#, r#"{"s":0,"x":5}"#);
    let url = format!("{}/v1/metrics", worker.url);
    let (status, answer) = post(&url, &[("content-type", V1)], body.as_bytes());
    assert_eq!(status, 202, "{answer}");
    for (path, content_type, body, status, feature) in [
        (
            "/v1/metrics",
            "application/json",
            &br#"{"resourceMetrics":[]}"#[..],
            415,
            "ingest-otlp",
        ),
        (
            "/write?db=x",
            "text/plain",
            b"m value=1",
            404,
            "ingest-line-protocol",
        ),
        (
            "/metrics/job/j",
            "text/plain",
            b"m 1\n",
            404,
            "ingest-prometheus",
        ),
    ] {
        let (got, answer) = post(
            &format!("{}{path}", worker.url),
            &[("content-type", content_type)],
            body,
        );
        assert_eq!(
            (got, answer["error"].as_str()),
            (status, Some("format_not_built")),
            "{path}: {answer}"
        );
        let message = answer["message"].as_str().unwrap_or_default();
        assert!(message.contains(feature), "{path}: {message}");
    }
    assert_only_kept_arrived(&influx);
}

#[test]
fn pushed_metrics_arrive_exactly_through_the_worker() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut moto = Moto::start(dir.path());
    let influx = Influx::start(dir.path());
    let settings = scenario::worker_settings(&moto, &influx);
    let worker = Workerd::start(dir.path(), &settings.into());
    scenario::push_and_read_back(&worker.url, &mut moto, &influx, Duration::ZERO);
    moto.stop();
}

#[test]
fn bad_input_gets_the_same_answers_as_natively() {
    let dir = tempfile::tempdir().expect("temp dir");
    let influx = Influx::start(dir.path());
    let worker = Workerd::start(
        dir.path(),
        &json!({
            "EDGEPUSH_MAX_BODY_BYTES": "262144",
            "EDGEPUSH_MAX_DECOMPRESSED_BYTES": "1048576",
            "EDGEPUSH_INFLUXDB_URL": influx.url,
            "EDGEPUSH_INFLUXDB_DATABASE": influx.database,
        }),
    );
    check_refusals(&format!("{}/v1/metrics", worker.url));

    assert_only_kept_arrived(&influx);
}

#[test]
fn keys_sinks_and_routes_are_checked_at_the_edge() {
    let dir = tempfile::tempdir().expect("temp dir");
    let influx = Influx::start(dir.path());
    let worker = Workerd::start(
        dir.path(),
        &json!({
            "EDGEPUSH_API_KEYS": "k1,k2",
            "EDGEPUSH_INFLUXDB_URL": influx.url,
            "EDGEPUSH_INFLUXDB_DATABASE": influx.database,
        }),
    );
    let url = format!("{}/v1/metrics", worker.url);
    let body = batch("edge-auth", r#"{"n":"m","k":"c"}"#, r#"{"s":0,"x":1}"#);
    let (status, answer) = post(&url, &[("content-type", V1)], body.as_bytes());
    assert_eq!(
        (status, answer["error"].as_str()),
        (401, Some("unauthorized")),
        "{answer}"
    );
    let (status, answer) = post(
        &url,
        &[("content-type", V1), ("authorization", "Bearer k2")],
        body.as_bytes(),
    );
    assert_eq!(status, 202, "{answer}");
    let (status, answer) = post(&format!("{}/elsewhere", worker.url), &[], b"");
    assert_eq!((status, answer["error"].as_str()), (404, Some("not_found")));

    // A Worker without sinks says so instead of dropping what it is sent.
    let bare = Workerd::start(dir.path(), &json!({}));
    let (status, answer) = post(
        &format!("{}/v1/metrics", bare.url),
        &[("content-type", V1)],
        body.as_bytes(),
    );
    assert_misconfigured(status, &answer, "no sink configured");
    assert_unhealthy(&bare.url, "no sink configured");
    assert_eq!(
        edgepush_tests::http_get(&format!("{}/healthz", worker.url)),
        Ok(200)
    );

    // Gzip is the runtime's own (`node:zlib`): a Worker deployed without
    // Node.js compatibility says so, with a 5xx the emitter retries, rather
    // than refusing the push as bad gzip.
    let no_node = Workerd::start_with(
        dir.path(),
        &json!({
            "EDGEPUSH_API_KEYS": "k1",
            "EDGEPUSH_INFLUXDB_URL": influx.url,
            "EDGEPUSH_INFLUXDB_DATABASE": influx.database,
        }),
        &json!({ "compatibilityFlags": [] }),
    );
    let (status, answer) = post(
        &format!("{}/v1/metrics", no_node.url),
        &[
            ("content-type", V1),
            ("content-encoding", "gzip"),
            ("authorization", "Bearer k1"),
        ],
        &gzip(body.as_bytes()),
    );
    assert_misconfigured(
        status,
        &answer,
        r#"compatibility_flags = ["nodejs_compat"]"#,
    );
    assert_unhealthy(&no_node.url, "nodejs_compat");

    // Asked to merge pushes with no aggregators bound.
    let unbound = Workerd::start(
        dir.path(),
        &json!({
            "EDGEPUSH_INFLUXDB_URL": influx.url,
            "EDGEPUSH_INFLUXDB_DATABASE": influx.database,
            "EDGEPUSH_AGGREGATION": "true",
        }),
    );
    assert_unhealthy(
        &unbound.url,
        "no Durable Object namespace is bound as EDGEPUSH_SHARDS",
    );

    // Sinks but no keys: open to anyone, so it takes no push until it has
    // a key or is told EDGEPUSH_ALLOW_UNAUTHENTICATED, and says so.
    let open = Workerd::start(
        dir.path(),
        &json!({
            "EDGEPUSH_INFLUXDB_URL": influx.url,
            "EDGEPUSH_INFLUXDB_DATABASE": influx.database,
            "EDGEPUSH_ALLOW_UNAUTHENTICATED": "false",
        }),
    );
    let (status, answer) = post(
        &format!("{}/v1/metrics", open.url),
        &[("content-type", V1)],
        body.as_bytes(),
    );
    assert_misconfigured(status, &answer, "EDGEPUSH_ALLOW_UNAUTHENTICATED");
    assert_unhealthy(&open.url, "no EDGEPUSH_API_KEYS and no EDGEPUSH_TENANTS");

    // A sink URL that cannot work is named at once, not at the first push.
    let bad_url = Workerd::start(
        dir.path(),
        &json!({ "EDGEPUSH_INFLUXDB_URL": "influx.local:8086", "EDGEPUSH_INFLUXDB_DATABASE": "d" }),
    );
    assert_unhealthy(&bad_url.url, "EDGEPUSH_INFLUXDB_URL is ");
}

/// `GET /healthz` answers `503` naming `words`: a deployment's health check
/// sees a Worker that cannot take pushes.
fn assert_unhealthy(url: &str, words: &str) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = agent
        .get(&format!("{url}/healthz"))
        .call()
        .expect("GET /healthz");
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().unwrap_or_default();
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("misconfigured") && body.contains(words),
        "{body}"
    );
}

/// A `500 misconfigured` answer (a 5xx: the emitter keeps the batch and
/// retries) whose message says `words`.
fn assert_misconfigured(status: u16, answer: &serde_json::Value, words: &str) {
    assert_eq!(
        (status, answer["error"].as_str()),
        (500, Some("misconfigured")),
        "{answer}"
    );
    let message = answer["message"].as_str().unwrap_or_default();
    assert!(message.contains(words), "{answer}");
}

#[test]
fn tenants_keys_signatures_and_rates_at_the_edge() {
    let dir = tempfile::tempdir().expect("temp dir");
    let influx = Influx::start(dir.path());
    let worker = Workerd::start(
        dir.path(),
        &json!({
            "EDGEPUSH_TENANTS": security::TENANTS_JSON,
            "EDGEPUSH_INFLUXDB_URL": influx.url,
            "EDGEPUSH_INFLUXDB_DATABASE": influx.database,
        }),
    );
    security::check_tenants(&worker.url);
    security::assert_arrivals(&influx);
}
