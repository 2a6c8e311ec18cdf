//! `wrangler dev` at the repository root serves the receiver, as the deploy
//! doc says: wrangler runs `wrangler.toml`'s build command (`.ci/build-worker`)
//! and serves the Worker in workerd, which forwards a push to InfluxDB (set
//! by the settings' old names, which it still reads, saying so).

use edgepush_tests::bad_input::{V1, assert_only_kept_arrived, batch};
use edgepush_tests::{Influx, WranglerDev, http_get_body, post, repo_root};

#[test]
fn wrangler_dev_serves_the_receiver() {
    let dir = tempfile::tempdir().expect("temp dir");
    let influx = Influx::start(dir.path());
    let wrangler = WranglerDev::start(
        dir.path(),
        &repo_root(),
        &[
            "EDGEPUSH_ALLOW_UNAUTHENTICATED:true".into(),
            // The names the sink settings had before their EDGEPUSH_
            // prefix: still read, and /healthz says what to rename.
            format!("INFLUXDB_URL:{}", influx.url),
            format!("INFLUXDB_DATABASE:{}", influx.database),
        ],
    );
    let url = &wrangler.url;
    let body = batch("dev", r#"{"n":"kept","k":"g"}"#, r#"{"s":0,"x":5}"#);
    let (status, answer) = post(
        &format!("{url}/v1/metrics"),
        &[("content-type", V1)],
        body.as_bytes(),
    );
    assert_eq!(status, 202, "{answer}\n{}", wrangler.log_text());
    assert_only_kept_arrived(&influx);
    // What to rename is in /healthz's answer (and in the Worker's log,
    // which wrangler may print late or, before its inspector attaches, not
    // at all: not what a test can wait for).
    let health = http_get_body(&format!("{url}/healthz")).expect("/healthz");
    let health: serde_json::Value = serde_json::from_str(&health).expect("JSON");
    assert_eq!(
        health,
        serde_json::json!({
            "status": "ok",
            "warnings": [
                "INFLUXDB_URL is read as EDGEPUSH_INFLUXDB_URL: rename it",
                "INFLUXDB_DATABASE is read as EDGEPUSH_INFLUXDB_DATABASE: rename it",
            ],
        })
    );
}
