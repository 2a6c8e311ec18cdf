//! Bad input through the real native server: each gets a clear 4xx JSON
//! error naming the field and the reason, and nothing refused reaches the
//! sink. The table is shared with the workerd tests (`edgepush_tests::bad_input`).

use edgepush_receiver::limits::Limits;
use edgepush_receiver::sink::Sink;
use edgepush_tests::aws::ReceiverProcess;
use edgepush_tests::bad_input::{V1, assert_only_kept_arrived, batch, check_refusals};
use edgepush_tests::{Influx, Receiver, post, security};

#[test]
fn every_bad_request_gets_a_clear_4xx_and_nothing_is_forwarded() {
    let dir = tempfile::tempdir().expect("temp dir");
    let influx = Influx::start(dir.path());
    let limits = Limits {
        max_body_bytes: 256 * 1024,
        max_decompressed_bytes: 1 << 20,
        ..Limits::default()
    };
    let receiver = Receiver::start(vec![Sink::Influxdb(influx.target())], limits, vec![]);
    check_refusals(&format!("{}/v1/metrics", receiver.url));

    assert_only_kept_arrived(&influx);
}

#[test]
fn wrong_or_missing_keys_are_401_and_other_routes_answer_json() {
    let receiver = Receiver::start(
        Vec::<Sink>::new(),
        Limits::default(),
        vec!["k1".into(), "k2".into()],
    );
    let url = format!("{}/v1/metrics", receiver.url);
    let body = batch("auth", r#"{"n":"m","k":"c"}"#, r#"{"s":0,"x":1}"#);
    let (status, answer) = post(&url, &[("content-type", V1)], body.as_bytes());
    assert_eq!(
        (status, answer["error"].as_str()),
        (401, Some("unauthorized")),
        "{answer}"
    );
    assert!(
        answer["message"]
            .as_str()
            .unwrap_or_default()
            .contains("missing")
    );
    let (status, _) = post(
        &url,
        &[("content-type", V1), ("authorization", "Bearer nope")],
        body.as_bytes(),
    );
    assert_eq!(status, 401);
    let (status, answer) = post(
        &url,
        &[("content-type", V1), ("authorization", "Bearer k2")],
        body.as_bytes(),
    );
    assert_eq!(status, 202, "{answer}");

    let (status, answer) = post(&format!("{}/nowhere", receiver.url), &[], b"");
    assert_eq!((status, answer["error"].as_str()), (404, Some("not_found")));
    assert_eq!(
        edgepush_tests::http_get(&format!("{}/healthz", receiver.url)),
        Ok(200)
    );
    assert_eq!(edgepush_tests::http_get(&url), Ok(405));
}

#[test]
fn tenants_keys_signatures_and_rates_through_the_binary() {
    let dir = tempfile::tempdir().expect("temp dir");
    let influx = Influx::start(dir.path());
    let config = dir.path().join("receiver.toml");
    let sink = format!(
        "[[sinks]]\ntype = \"influxdb\"\napi = \"v1\"\nurl = \"{}\"\ndatabase = \"{}\"\n",
        influx.url, influx.database
    );
    std::fs::write(&config, format!("{}\n{sink}", security::TENANTS_TOML)).expect("config");
    let receiver = ReceiverProcess::start(
        dir.path(),
        &["--config", config.to_str().expect("utf-8 path")],
        &[],
    )
    .expect("receiver starts");
    security::check_tenants(&receiver.url);
    security::assert_arrivals(&influx);
}

/// Slow clients (slow-loris): headers or a body that trickle in are cut off
/// after the read timeout, and the receiver keeps serving everyone else.
#[test]
fn slow_clients_are_cut_off_and_others_still_served() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("receiver.toml");
    std::fs::write(&config, "read_timeout_seconds = 1\n").expect("config");
    let receiver = ReceiverProcess::start(
        dir.path(),
        &["--config", config.to_str().expect("utf-8 path")],
        &[],
    )
    .expect("receiver starts");
    let host = receiver.url.trim_start_matches("http://").to_string();
    let connect = || {
        let stream = TcpStream::connect(&host).expect("connect");
        // Far longer than the receiver's timeout: a read that waits this
        // long means the receiver kept the connection.
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        stream
    };
    let answer_of = |mut stream: TcpStream| {
        let started = Instant::now();
        let mut answer = Vec::new();
        let read = stream.read_to_end(&mut answer);
        (
            read,
            String::from_utf8_lossy(&answer).into_owned(),
            started.elapsed(),
        )
    };

    // Headers that never finish.
    let mut slow_headers = connect();
    slow_headers
        .write_all(b"POST /v1/metrics HTTP/1.1\r\nhost: x\r\ncontent-type: ")
        .expect("write");
    // A body that stops after 10 of 1,000 bytes.
    let mut slow_body = connect();
    slow_body
        .write_all(
            b"POST /v1/metrics HTTP/1.1\r\nhost: x\r\ncontent-type: application/vnd.edgepush.v1+json\r\ncontent-length: 1000\r\n\r\n{\"v\":1,\"id",
        )
        .expect("write");

    // Meanwhile a normal push is served.
    let body = batch("while-slow", r#"{"n":"m","k":"c"}"#, r#"{"s":0,"x":1}"#);
    let (status, answer) = post(
        &format!("{}/v1/metrics", receiver.url),
        &[("content-type", V1)],
        body.as_bytes(),
    );
    assert_eq!(status, 202, "{answer}");

    let (read, _, waited) = answer_of(slow_headers);
    assert!(
        read.is_ok(),
        "headers: the receiver closes the connection: {read:?}"
    );
    assert!(
        waited < Duration::from_secs(15),
        "headers: closed after {waited:?}"
    );
    let (read, answer, waited) = answer_of(slow_body);
    assert!(read.is_ok(), "body: {read:?}");
    assert!(
        waited < Duration::from_secs(15),
        "body: answered after {waited:?}"
    );
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""error":"body_timeout""#), "{answer}");
}

/// A sink that refuses some points of a batch (InfluxDB's partial write: a
/// field type conflict) stores the rest; the answer names the refused
/// points and a retry of the batch sends nothing twice.
#[test]
fn a_partial_write_names_the_refused_points() {
    let dir = tempfile::tempdir().expect("temp dir");
    let influx = Influx::start(dir.path());
    // `value` of `conflict` is a string in the store already (in the shard
    // of this week: InfluxDB keeps field types per shard).
    let line = format!(
        "conflict,namespace=Bad value=\"text\" {}",
        edgepush_tests::bad_input::now_ms() * 1_000_000
    );
    let status = ureq::post(format!("{}/write", influx.url))
        .query("db", &influx.database)
        .send(line.as_bytes())
        .map(|r| r.status().as_u16());
    assert_eq!(status.ok(), Some(204));
    let receiver = Receiver::start(
        vec![Sink::Influxdb(influx.target())],
        Limits::default(),
        vec![],
    );
    let url = format!("{}/v1/metrics", receiver.url);
    let body = batch(
        "partial-1",
        r#"{"n":"fine","k":"c"},{"n":"conflict","k":"c"},{"n":"bad","k":"c","d":{"x":""}}"#,
        r#"{"s":0,"x":1},{"s":2,"x":1},{"s":1,"x":2},{"s":0,"t":1,"x":3}"#,
    );
    let (status, answer) = post(&url, &[("content-type", V1)], body.as_bytes());
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["partial"], true, "{answer}");
    assert_eq!(answer["accepted"], 3, "{answer}");
    assert_eq!(answer["rejected"][0]["point"], 1, "{answer}");
    let refused = &answer["sink_rejected"][0];
    assert_eq!(refused["sink"], "influxdb", "{answer}");
    // Request indices: point 2 is `conflict`.
    assert_eq!(refused["points"], serde_json::json!([2]), "{answer}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap_or_default()
            .contains("field type conflict"),
        "{answer}"
    );
    let fine = influx.rows(r#"SELECT * FROM "fine""#);
    assert_eq!(fine.len(), 2, "{fine:?}");

    // The emitter's retry of the same batch: acknowledged, not sent again.
    let (status, answer) = post(&url, &[("content-type", V1)], body.as_bytes());
    assert_eq!(
        (status, &answer["duplicate"]),
        (202, &serde_json::json!(true))
    );
}
