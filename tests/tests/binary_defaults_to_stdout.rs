//! The `edgepush-receiver` binary itself: with no configuration it listens
//! where it is told and writes line protocol to stdout; a TOML file and
//! environment variables configure it. Its logs are plain text when they
//! do not go to a terminal (no colour codes in journald or a container's
//! log), or JSON lines when asked.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use edgepush::{Config, Emitter, HttpTransport, Metric, Unit};
use edgepush_tests::aws::ReceiverProcess;
use edgepush_tests::free_port;

/// The receiver binary, built if it is not yet.
fn binary() -> std::path::PathBuf {
    edgepush_tests::debug_binary("edgepush-receiver-native", "edgepush-receiver")
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

#[test]
fn logs_are_plain_text_off_a_terminal_or_json_lines_when_asked() {
    let dir = tempfile::tempdir().expect("temp dir");
    let listening = "edgepush receiver listening";

    let text = ReceiverProcess::start(dir.path(), &[], &[]).expect("receiver");
    let log = text.log_text();
    assert!(log.contains(listening), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "no colour codes in a file: {log:?}"
    );

    let json = ReceiverProcess::start(dir.path(), &[], &[("EDGEPUSH_LOG_FORMAT", "json")])
        .expect("receiver");
    let log = json.log_text();
    let line = log
        .lines()
        .find(|l| l.contains(listening))
        .unwrap_or_else(|| panic!("{log}"));
    let record: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
    assert_eq!(record["level"], "INFO", "{record}");
    assert_eq!(record["fields"]["message"], listening, "{record}");
    assert!(record["fields"]["addr"].as_str().is_some(), "{record}");
    assert!(record["timestamp"].as_str().is_some(), "{record}");

    let wrong = ReceiverProcess::start(dir.path(), &[], &[("EDGEPUSH_LOG_FORMAT", "yaml")])
        .err()
        .expect("an unknown log format stops it");
    assert!(wrong.contains("EDGEPUSH_LOG_FORMAT"), "{wrong}");
}

/// With no keys and no tenants the receiver is open: it starts on loopback
/// only, and on an address other hosts can reach only when told
/// `--allow-unauthenticated` (then it warns).
#[test]
fn an_open_receiver_refuses_a_public_address_unless_allowed() {
    let port = free_port();
    let public = format!("0.0.0.0:{port}");
    let start = |allow: bool| {
        let mut command = Command::new(binary());
        command
            .args(["--listen", &public])
            .env_remove("EDGEPUSH_CONFIG")
            .env_remove("EDGEPUSH_API_KEYS")
            .env_remove("EDGEPUSH_ALLOW_UNAUTHENTICATED")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if allow {
            command.arg("--allow-unauthenticated");
        }
        Child(command.spawn().expect("start edgepush-receiver"))
    };

    let mut refused = start(false);
    let start_time = std::time::Instant::now();
    let status = loop {
        if let Some(status) = refused.0.try_wait().expect("wait") {
            break status;
        }
        assert!(
            start_time.elapsed() < Duration::from_secs(30),
            "an open receiver started on {public}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut refused.0.stderr.take().expect("stderr"), &mut stderr)
        .expect("stderr");
    assert!(stderr.contains("allow_unauthenticated"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line says why: {stderr}");

    let mut allowed = start(true);
    wait_until_listening(&format!("127.0.0.1:{port}"));
    let stderr = allowed.0.stderr.take().expect("stderr");
    let warning = BufReader::new(stderr)
        .lines()
        .map(|l| l.expect("utf-8"))
        .find(|l| l.contains("WARN"))
        .expect("a warning");
    assert!(warning.contains("anyone who can reach"), "{warning}");
}

/// A sink URL that cannot work stops the receiver when it starts, naming
/// the setting, rather than failing at the first push.
#[test]
fn a_bad_sink_url_stops_the_receiver_at_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("receiver.toml");
    std::fs::write(
        &config,
        "[[sinks]]\ntype = \"influxdb\"\napi = \"v1\"\nurl = \"influx.local:8086\"\ndatabase = \"d\"\n",
    )
    .expect("config");
    let err = ReceiverProcess::start(
        dir.path(),
        &["--config", config.to_str().expect("utf-8")],
        &[],
    )
    .err()
    .expect("no receiver with a bad sink URL");
    assert!(
        err.contains("sinks[0].url") && err.contains("http:// or https://"),
        "{err}"
    );
}

/// The Worker's setting names configure the binary from its environment
/// (`EDGEPUSH_INFLUXDB_URL`, ...), and secrets may sit in files named by
/// `<NAME>_FILE`; a file that cannot be read stops it, naming the variable.
#[test]
fn the_worker_s_setting_names_and_secret_files_configure_it() {
    use edgepush_tests::bad_input::{V1, assert_only_kept_arrived, batch};
    let dir = tempfile::tempdir().expect("temp dir");
    let influx = edgepush_tests::Influx::start(dir.path());
    let keys = dir.path().join("keys");
    std::fs::write(&keys, "first-key\nsecond-key\n").expect("keys file");
    let receiver = ReceiverProcess::start(
        dir.path(),
        &[],
        &[
            ("EDGEPUSH_INFLUXDB_URL", influx.url.as_str()),
            ("EDGEPUSH_INFLUXDB_DATABASE", influx.database.as_str()),
            ("EDGEPUSH_API_KEYS_FILE", keys.to_str().expect("utf-8")),
        ],
    )
    .expect("receiver starts");
    let push = |key: &str, id: &str, name: &str| {
        let body = batch(
            id,
            &format!(r#"{{"n":"{name}","k":"g"}}"#),
            r#"{"s":0,"x":5}"#,
        );
        edgepush_tests::post(
            &format!("{}/v1/metrics", receiver.url),
            &[
                ("content-type", V1),
                ("authorization", &format!("Bearer {key}")),
            ],
            body.as_bytes(),
        )
    };
    assert_eq!(push("wrong-key", "b1", "refused").0, 401);
    let (status, answer) = push("second-key", "b2", "kept");
    assert_eq!(status, 202, "{answer}");
    assert_only_kept_arrived(&influx);

    let missing = dir.path().join("no-such-token");
    let err = ReceiverProcess::start(
        dir.path(),
        &[],
        &[
            ("EDGEPUSH_INFLUXDB_URL", influx.url.as_str()),
            ("EDGEPUSH_INFLUXDB_ORG", "o"),
            ("EDGEPUSH_INFLUXDB_BUCKET", "b"),
            (
                "EDGEPUSH_INFLUXDB_TOKEN_FILE",
                missing.to_str().expect("utf-8"),
            ),
        ],
    )
    .err()
    .expect("no receiver with an unreadable token file");
    assert!(
        err.contains("EDGEPUSH_INFLUXDB_TOKEN_FILE") && err.contains("no-such-token"),
        "{err}"
    );
}
