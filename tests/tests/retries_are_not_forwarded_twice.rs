//! A batch sent again (same namespace and id) after it was delivered is
//! acknowledged as a duplicate and not forwarded again, natively and at the
//! edge; a batch whose delivery failed is not remembered, so its retry goes
//! through once the sink is back. CloudWatch (moto) shows every value once.

use edgepush::{Config, Emitter, Metric, Payload, Unit};
use edgepush_receiver::limits::Limits;
use edgepush_receiver::sink::{Sink, cloudwatch, influxdb};
use edgepush_tests::{Influx, Moto, Receiver, Workerd, cloudwatch_sink, free_port, post};
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

fn sum(moto: &mut Moto, namespace: &str) -> Value {
    let metrics = moto.metrics(namespace);
    assert_eq!(metrics.len(), 1, "{metrics:?}");
    json!([metrics[0]["sum"], metrics[0]["count"]])
}

/// Delivers, repeats, and retries after an outage against the receiver at
/// `base`, which forwards to CloudWatch at `moto_port` (down at first).
fn check(base: &str, moto_port: u16, dir: &std::path::Path) {
    let base = base.to_string();

    // The sink is down: refused with 503, and not remembered.
    let late = one_batch("Late", 5.0);
    let (status, answer) = send(&base, &late);
    assert_eq!(status, 503, "{answer}");

    let mut moto = Moto::start_on(dir, moto_port);
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

    assert_eq!(sum(&mut moto, "Late"), json!([5.0, 1.0]));
    assert_eq!(sum(&mut moto, "Twice"), json!([3.0, 1.0]), "forwarded once");
    moto.stop();
}

#[test]
fn the_native_receiver_forwards_a_batch_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let sink = Sink::CloudWatch(
        cloudwatch::Config {
            endpoint: Some(format!("http://127.0.0.1:{port}/")),
            protocol: cloudwatch::Protocol::Json,
            ..cloudwatch::Config::new("us-east-1")
        },
        cloudwatch::Keys {
            access_key_id: "testing".into(),
            secret_access_key: "testing".into(),
            session_token: None,
        },
    );
    let receiver = Receiver::start(vec![sink], Limits::default(), vec![]);
    check(&receiver.url, port, dir.path());
}

#[test]
fn the_worker_forwards_a_batch_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let worker = Workerd::start(
        dir.path(),
        &json!({
            "CLOUDWATCH_REGION": "us-east-1",
            "CLOUDWATCH_ENDPOINT": format!("http://127.0.0.1:{port}/"),
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        }),
    );
    check(&worker.url, port, dir.path());
}

/// A retry after one sink failed goes only to that sink: CloudWatch, which
/// took the batch the first time, does not count it twice.
fn check_partial(base: &str, moto: &mut Moto, influx_port: u16, dir: &std::path::Path) {
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
        sum(moto, "Partial"),
        json!([4.0, 1.0]),
        "CloudWatch took it once"
    );
    let rows = influx.rows(r#"SELECT * FROM "once""#);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["value"].as_f64(), Some(4.0));
}

#[test]
fn after_one_sink_failed_the_retry_goes_only_to_that_sink() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut moto = Moto::start(dir.path());
    let influx_port = free_port();

    let native = Receiver::start(
        vec![
            cloudwatch_sink(&moto),
            Sink::Influxdb(influxdb::Target::V1 {
                url: format!("http://127.0.0.1:{influx_port}"),
                database: "edgepush".into(),
                retention_policy: None,
                username: None,
                password: None,
                store_strings: true,
                quantiles: Default::default(),
            }),
        ],
        Limits::default(),
        vec![],
    );
    check_partial(&native.url, &mut moto, influx_port, dir.path());
}

#[test]
fn after_one_sink_failed_the_worker_retries_only_that_sink() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut moto = Moto::start(dir.path());
    let influx_port = free_port();
    let mut settings = moto.worker_settings();
    settings.insert(
        "INFLUXDB_URL".into(),
        format!("http://127.0.0.1:{influx_port}").into(),
    );
    settings.insert("INFLUXDB_DATABASE".into(), "edgepush".into());
    let worker = Workerd::start(dir.path(), &settings.into());
    check_partial(&worker.url, &mut moto, influx_port, dir.path());
}
