//! A batch sent again (same namespace and id) after it was delivered is
//! acknowledged as a duplicate and not forwarded again, natively and at the
//! edge; a batch whose delivery failed is not remembered, so its retry goes
//! through once the sink is back. CloudWatch shows every value once (moto
//! over signed JSON, fakecloud through the AWS SDK, the native default).

use edgepush::{Config, Emitter, Metric, Payload, Unit};
use edgepush_receiver::limits::Limits;
use edgepush_receiver::sink::cloudwatch::Protocol;
use edgepush_receiver::sink::{Sink, influxdb};
use edgepush_receiver_native::NativeSink;
use edgepush_tests::aws::{Emulator, native_sink};
use edgepush_tests::{Influx, Moto, Receiver, Workerd, free_port, post};
use serde_json::{Value, json};

fn one_batch(namespace: &str, value: f64) -> Payload {
    let emitter = Emitter::new(Config::new(namespace).expect("ns"));
    emitter
        .counter(Metric::new("once").unit(Unit::Count))
        .expect("counter")
        .add(value);
    emitter.flush().expect("flush").remove(0)
}

fn send(base: &str, batch: &Payload) -> (u16, Value) {
    let headers = [
        ("content-type", batch.content_type()),
        (
            "content-encoding",
            batch.content_encoding().unwrap_or("identity"),
        ),
    ];
    post(&format!("{base}/v1/metrics"), &headers, batch.body())
}

fn sum(cloudwatch: &mut Emulator, namespace: &str) -> Value {
    let metrics = cloudwatch.metrics(namespace);
    assert_eq!(metrics.len(), 1, "{metrics:?}");
    json!([metrics[0]["sum"], metrics[0]["count"]])
}

/// Delivers, repeats, and retries after an outage against the receiver at
/// `base`, which forwards to CloudWatch at `port` over `protocol` (down at
/// first).
fn check(base: &str, protocol: Protocol, port: u16, dir: &std::path::Path) {
    let base = base.to_string();

    // The sink is down: refused with 503, and not remembered.
    let late = one_batch("Late", 5.0);
    let (status, answer) = send(&base, &late);
    assert_eq!(status, 503, "{answer}");

    let mut cloudwatch = Emulator::start_on(protocol, dir, port);
    let (status, answer) = send(&base, &late);
    assert_eq!(status, 202, "{answer}");
    assert_eq!(
        answer.get("duplicate"),
        None,
        "a failed batch is not a duplicate: {answer}"
    );

    // Delivered, then sent again: acknowledged, not forwarded.
    let batch = one_batch("Twice", 3.0);
    let (status, first) = send(&base, &batch);
    assert_eq!((status, first.get("duplicate")), (202, None), "{first}");
    let (status, again) = send(&base, &batch);
    assert_eq!(
        (status, &again["duplicate"]),
        (202, &json!(true)),
        "{again}"
    );
    assert_eq!(again["batch"], json!(batch.id()));

    assert_eq!(sum(&mut cloudwatch, "Late"), json!([5.0, 1.0]));
    assert_eq!(
        sum(&mut cloudwatch, "Twice"),
        json!([3.0, 1.0]),
        "forwarded once"
    );
    cloudwatch.stop();
}

fn native_forwards_once(protocol: Protocol) {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let sink = native_sink(&format!("http://127.0.0.1:{port}/"), protocol);
    let receiver = Receiver::start(vec![sink], Limits::default(), vec![]);
    check(&receiver.url, protocol, port, dir.path());
}

#[test]
fn the_native_receiver_forwards_a_batch_once_over_signed_json() {
    native_forwards_once(Protocol::Json);
}

#[test]
fn the_native_receiver_forwards_a_batch_once_through_the_sdk() {
    native_forwards_once(Protocol::Sdk);
}

#[test]
fn the_worker_forwards_a_batch_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let worker = Workerd::start(
        dir.path(),
        &json!({
            "EDGEPUSH_CLOUDWATCH_REGION": "us-east-1",
            "EDGEPUSH_CLOUDWATCH_ENDPOINT": format!("http://127.0.0.1:{port}/"),
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        }),
    );
    check(&worker.url, Protocol::Json, port, dir.path());
}

/// A retry after one sink failed goes only to that sink: CloudWatch, which
/// took the batch the first time, does not count it twice.
fn check_partial(base: &str, cloudwatch: &mut Emulator, influx_port: u16, dir: &std::path::Path) {
    let batch = one_batch("Partial", 4.0);
    let (status, answer) = send(base, &batch);
    assert_eq!(status, 503, "InfluxDB is down: {answer}");
    assert!(answer["field"] == json!("sinks.influxdb"), "{answer}");

    let influx = Influx::start_on(dir, influx_port);
    let (status, answer) = send(base, &batch);
    assert_eq!((status, answer.get("duplicate")), (202, None), "{answer}");
    let (status, answer) = send(base, &batch);
    assert_eq!(
        (status, &answer["duplicate"]),
        (202, &json!(true)),
        "{answer}"
    );

    assert_eq!(
        sum(cloudwatch, "Partial"),
        json!([4.0, 1.0]),
        "CloudWatch took it once"
    );
    let rows = influx.rows(r#"SELECT * FROM "once""#);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["value"].as_f64(), Some(4.0));
}

fn native_retries_only_the_failed_sink(protocol: Protocol) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cloudwatch = Emulator::start(protocol, dir.path());
    let influx_port = free_port();
    let native = Receiver::start(
        vec![
            native_sink(cloudwatch.url(), protocol),
            NativeSink::from(Sink::Influxdb(influxdb::Target::V1 {
                url: format!("http://127.0.0.1:{influx_port}"),
                database: "edgepush".into(),
                retention_policy: None,
                username: None,
                password: None,
                store_strings: true,
                quantiles: Default::default(),
            })),
        ],
        Limits::default(),
        vec![],
    );
    check_partial(&native.url, &mut cloudwatch, influx_port, dir.path());
}

#[test]
fn after_one_sink_failed_the_retry_goes_only_to_that_sink_over_signed_json() {
    native_retries_only_the_failed_sink(Protocol::Json);
}

#[test]
fn after_one_sink_failed_the_retry_goes_only_to_that_sink_through_the_sdk() {
    native_retries_only_the_failed_sink(Protocol::Sdk);
}

#[test]
fn after_one_sink_failed_the_worker_retries_only_that_sink() {
    let dir = tempfile::tempdir().expect("temp dir");
    let moto = Moto::start(dir.path());
    let influx_port = free_port();
    let mut settings = moto.worker_settings();
    settings.insert(
        "EDGEPUSH_INFLUXDB_URL".into(),
        format!("http://127.0.0.1:{influx_port}").into(),
    );
    settings.insert("EDGEPUSH_INFLUXDB_DATABASE".into(), "edgepush".into());
    let worker = Workerd::start(dir.path(), &settings.into());
    check_partial(
        &worker.url,
        &mut Emulator::Moto(moto),
        influx_port,
        dir.path(),
    );
}
