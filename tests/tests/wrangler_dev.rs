//! `wrangler dev` at the repository root serves the receiver, as the deploy
//! doc says: wrangler runs `wrangler.toml`'s build command (`.ci/build-worker`)
//! and serves the Worker in workerd, which forwards a push to InfluxDB (set
//! by the settings' old names, which it still reads, saying so).

use std::os::unix::process::CommandExt as _;
use std::process::Command;
use std::time::Duration;

use edgepush_tests::bad_input::{V1, assert_only_kept_arrived, batch};
use edgepush_tests::{Influx, Process, free_port, http_get, post, repo_root, wait_for};

/// wrangler and the workerd it starts, stopped together: wrangler runs in a
/// process group of its own, and the whole group is sent SIGTERM, then
/// SIGKILL.
struct Wrangler(Process);

impl Drop for Wrangler {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.child_id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        std::thread::sleep(Duration::from_millis(500));
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
    }
}

#[test]
fn wrangler_dev_serves_the_receiver() {
    let dir = tempfile::tempdir().expect("temp dir");
    let influx = Influx::start(dir.path());
    let port = free_port();
    let mut command = Command::new(repo_root().join("tests/workerd/node_modules/.bin/wrangler"));
    command
        .current_dir(repo_root())
        .env("WRANGLER_SEND_METRICS", "false")
        .args(["dev", "--ip", "127.0.0.1", "--port", &port.to_string()])
        .arg("--persist-to")
        .arg(dir.path().join("wrangler-state"))
        .args(["--var", "EDGEPUSH_ALLOW_UNAUTHENTICATED:true"])
        // The names the sink settings had before their EDGEPUSH_ prefix:
        // still read, with a line saying what to rename.
        .args(["--var", &format!("INFLUXDB_URL:{}", influx.url)])
        .args(["--var", &format!("INFLUXDB_DATABASE:{}", influx.database)])
        .process_group(0);
    let mut wrangler = Wrangler(Process::spawn(
        "wrangler dev",
        command,
        dir.path().join("wrangler.log"),
    ));
    let url = format!("http://127.0.0.1:{port}");
    // The build command runs first (cached: seconds; cold: minutes).
    wait_for("wrangler dev", Duration::from_secs(600), || {
        wrangler.0.assert_running();
        http_get(&format!("{url}/healthz")) == Ok(200)
    });
    let body = batch("dev", r#"{"n":"kept","k":"g"}"#, r#"{"s":0,"x":5}"#);
    let (status, answer) = post(
        &format!("{url}/v1/metrics"),
        &[("content-type", V1)],
        body.as_bytes(),
    );
    assert_eq!(status, 202, "{answer}\n{}", wrangler.0.log_text());
    assert_only_kept_arrived(&influx);
    let log = wrangler.0.log_text();
    for old in ["INFLUXDB_URL", "INFLUXDB_DATABASE"] {
        assert!(
            log.contains(&format!("{old} is read as EDGEPUSH_{old}: rename it")),
            "{log}"
        );
    }
}
