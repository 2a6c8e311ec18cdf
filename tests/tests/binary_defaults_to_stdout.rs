//! The `edgepush-receiver` binary itself: with no configuration it listens
//! where it is told and writes line protocol to stdout; a TOML file and
//! environment variables configure it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use edgepush::{Config, Emitter, HttpTransport, Metric, Unit};

/// The receiver binary, built if it is not yet.
fn binary() -> std::path::PathBuf {
    edgepush_tests::debug_binary("edgepush-receiver-native", "edgepush-receiver")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn wait_until_listening(addr: &str) {
    let start = std::time::Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "receiver not listening on {addr}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn with_no_configuration_it_writes_line_protocol_to_stdout() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = Child(
        Command::new(binary())
            .env("EDGEPUSH_LISTEN", &addr)
            .env_remove("EDGEPUSH_CONFIG")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start edgepush-receiver"),
    );
    wait_until_listening(&addr);

    let emitter = Emitter::new(
        Config::new("Bin")
            .expect("ns")
            .dimension("stage", "test")
            .expect("dim"),
    );
    emitter
        .counter(Metric::new("hits").unit(Unit::Count))
        .expect("counter")
        .add(41.0);
    let report = emitter
        .push(&HttpTransport::new(&format!("http://{addr}")))
        .expect("pushed");
    assert_eq!(report.accepted, 1);

    let stdout = child.0.stdout.take().expect("stdout");
    let line = BufReader::new(stdout)
        .lines()
        .next()
        .expect("a line")
        .expect("utf-8");
    let (head, ts) = line.rsplit_once(' ').expect("timestamp");
    assert_eq!(head, "hits,namespace=Bin,stage=test,unit=Count value=41");
    let ns: i128 = ts.parse().expect("integer timestamp");
    let now_ns = i128::from(edgepush::now_ms()) * 1_000_000;
    assert!(
        (now_ns - ns).abs() < 60_000_000_000,
        "timestamp {ns} is now"
    );
}

#[test]
fn a_config_file_sets_keys_and_limits() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let path = dir.path().join("receiver.toml");
    std::fs::write(
        &path,
        format!("listen = \"{addr}\"\napi_keys = [\"from-file\"]\n[limits]\nmax_points = 1\n[[sinks]]\ntype = \"stdout\"\n"),
    )
    .expect("write config");
    let _child = Child(
        Command::new(binary())
            .arg("--config")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start edgepush-receiver"),
    );
    wait_until_listening(&addr);

    let emitter = Emitter::new(Config::new("Bin").expect("ns"));
    let push =
        |key: &str| emitter.push(&HttpTransport::new(&format!("http://{addr}")).api_key(key));
    emitter
        .counter(Metric::new("a"))
        .expect("counter")
        .increment();
    let err = push("wrong").expect_err("bad key");
    assert!(err.to_string().contains("401"), "{err}");
    // The batch came back: nothing was lost, and it goes through with the right key.
    let transport = HttpTransport::new(&format!("http://{addr}")).api_key("from-file");
    let report = edgepush::send_all(&transport, err.unsent).expect("resent");
    assert_eq!(report.accepted, 1);

    emitter
        .counter(Metric::new("a"))
        .expect("counter")
        .increment();
    emitter
        .counter(Metric::new("b"))
        .expect("counter")
        .increment();
    let err = push("from-file").expect_err("two points, limit one");
    assert!(
        err.to_string().contains("413") && err.to_string().contains("too_many_points"),
        "{err}"
    );
}
