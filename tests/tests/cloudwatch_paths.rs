//! Natively the receiver sends CloudWatch `PutMetricData` through the AWS
//! SDK (rpc-v2-cbor) or, with `protocol = "json"`, as signed AWS JSON (what
//! the Worker sends). Both paths into `fakecloud`, read back through the
//! SDK, must store exactly what was pushed, and the same; the JSON path
//! into `moto` checking signatures proves the signature, with credentials
//! found by the SDK's chain in the environment or in a profile file under a
//! temporary `HOME` (no network: the instance metadata probe is off); the
//! SDK path into `fakecloud` checking signatures proves its signature.

use std::time::Duration;

use edgepush::{Config, Emitter, HttpTransport, Metric, Unit};
use edgepush_receiver::limits::Limits;
use edgepush_receiver::sink::cloudwatch::{self, Protocol};
use edgepush_receiver_native::config::SinkConfig;
use edgepush_tests::aws::{Fakecloud, ReceiverProcess, native_sinks, sink_config};
use edgepush_tests::scenario::Shop;
use edgepush_tests::{Moto, Receiver};
use serde_json::{Value, json};

/// The distribution's first push: 200 distinct values (two CloudWatch
/// datums). The emitter keeps 150 distinct values exactly and rounds later
/// new ones to 7 significant bits: the last 50 are even numbers from 152 on,
/// which that rounding leaves as they are, so the sums read back exactly.
fn latency_values() -> Vec<f64> {
    (1..=150)
        .chain((152..=250).step_by(2))
        .map(f64::from)
        .collect()
}

/// Pushes the same metrics under `namespace` to the receiver at `url`: a
/// counter, a distribution of 200 distinct values,
/// a gauge set twice, a statistic set, and names with JSON's special
/// characters; in two pushes.
fn push(url: &str, namespace: &str) {
    let Shop {
        emitter,
        orders,
        latency,
        queue,
        payload,
    } = Shop::new(namespace);
    let odd = emitter
        .counter(
            Metric::new("odd \"name\" é")
                .unit(Unit::Count)
                .dimension("quote", "\"é\" \u{1F600}"),
        )
        .expect("odd counter");
    let transport = HttpTransport::new(url);

    orders.add(3.0);
    for v in latency_values() {
        latency.record(v);
    }
    latency.record(200.0);
    queue.set(7.0);
    queue.set(9.0);
    payload.record(2.0, 300.0, 100.0, 200.0);
    odd.add(2.0);
    let first = emitter.push(&transport).expect("first push");
    orders.add(4.0);
    latency.record(0.5);
    queue.set(4.0);
    let second = emitter.push(&transport).expect("second push");
    assert_eq!((first.rejected, second.rejected), (0, 0));
}

/// What `push` stores, read back.
fn want() -> Value {
    let latency_sum = latency_values().iter().sum::<f64>() + 200.0 + 0.5;
    json!([
        {"name": "latency", "dimensions": {"service": "checkout"}, "units": ["Milliseconds"],
         "sum": latency_sum, "count": 202.0, "min": 0.5, "max": 250.0},
        {"name": "odd \"name\" é", "dimensions": {"quote": "\"é\" \u{1F600}", "service": "checkout"},
         "units": ["Count"], "sum": 2.0, "count": 1.0, "min": 2.0, "max": 2.0},
        {"name": "orders", "dimensions": {"route": "/buy", "service": "checkout"}, "units": ["Count"],
         "sum": 7.0, "count": 2.0, "min": 3.0, "max": 4.0},
        {"name": "payload", "dimensions": {"service": "checkout"}, "units": ["Bytes"],
         "sum": 300.0, "count": 2.0, "min": 100.0, "max": 200.0},
        {"name": "queue depth", "dimensions": {"service": "checkout"}, "units": ["None"],
         "sum": 20.0, "count": 3.0, "min": 4.0, "max": 9.0},
    ])
}

#[test]
fn sdk_and_signed_json_paths_store_the_same_in_fakecloud() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut fakecloud = Fakecloud::start(dir.path());
    let receiver = |protocol| {
        Receiver::start(
            native_sinks(&[sink_config(&fakecloud.url, protocol)]),
            Limits::default(),
            vec![],
        )
    };
    let sdk = receiver(Protocol::Sdk);
    let signed_json = receiver(Protocol::Json);
    push(&sdk.url, "PathSdk");
    push(&signed_json.url, "PathJson");

    let through_sdk = Value::Array(fakecloud.metrics("PathSdk"));
    let through_json = Value::Array(fakecloud.metrics("PathJson"));
    assert_eq!(through_sdk, want(), "SDK path");
    assert_eq!(
        through_json, through_sdk,
        "signed JSON path against the SDK path"
    );
}

/// The receiver binary forwarding to `moto` over signed JSON, with
/// credentials from wherever `env` says.
fn signed_json_receiver(
    dir: &std::path::Path,
    moto: &Moto,
    env: &[(&str, &str)],
) -> Result<ReceiverProcess, String> {
    std::fs::create_dir_all(dir).expect("dir");
    let config = dir.join("receiver.toml");
    // No region here: it comes from the SDK's chain too. Uncompressed:
    // moto checks signatures over the body after inflating it, AWS before.
    std::fs::write(
        &config,
        format!(
            "[[sinks]]\ntype = \"cloudwatch\"\nendpoint = \"{}/\"\nprotocol = \"json\"\ncompress = false\n",
            moto.url
        ),
    )
    .expect("config");
    let home = dir.join("home");
    std::fs::create_dir_all(&home).expect("home");
    let mut env = env.to_vec();
    env.push(("HOME", home.to_str().expect("utf-8")));
    ReceiverProcess::start(dir, &["--config", config.to_str().expect("utf-8")], &env)
}

fn write_profile(dir: &std::path::Path, id: &str, secret: &str) {
    let aws = dir.join("home/.aws");
    std::fs::create_dir_all(&aws).expect(".aws");
    std::fs::write(
        aws.join("credentials"),
        format!("[edgepush]\naws_access_key_id = {id}\naws_secret_access_key = {secret}\n"),
    )
    .expect("credentials");
    std::fs::write(
        aws.join("config"),
        "[profile edgepush]\nregion = us-east-1\n",
    )
    .expect("config");
}

#[test]
fn credentials_come_from_the_environment_or_a_profile_and_moto_checks_the_signature() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut moto = Moto::start_verifying_signatures(dir.path());
    let (id, secret) = moto.keys.clone();

    // From the environment.
    let from_env = dir.path().join("env");
    let receiver = signed_json_receiver(
        &from_env,
        &moto,
        &[
            ("AWS_ACCESS_KEY_ID", &id),
            ("AWS_SECRET_ACCESS_KEY", &secret),
            ("AWS_REGION", "us-east-1"),
        ],
    )
    .expect("receiver with keys in its environment");
    push(&receiver.url, "FromEnv");
    assert_eq!(Value::Array(moto.metrics("FromEnv")), want());

    // From a profile file in HOME, region included.
    let from_profile = dir.path().join("profile");
    write_profile(&from_profile, &id, &secret);
    let receiver = signed_json_receiver(&from_profile, &moto, &[("AWS_PROFILE", "edgepush")])
        .expect("receiver with a profile");
    push(&receiver.url, "FromProfile");
    assert_eq!(Value::Array(moto.metrics("FromProfile")), want());

    // A profile with the wrong secret: moto refuses the signature, and the
    // receiver says so to the emitter (which keeps its batch).
    let wrong = dir.path().join("wrong");
    write_profile(&wrong, &id, "not-the-secret");
    let receiver = signed_json_receiver(&wrong, &moto, &[("AWS_PROFILE", "edgepush")])
        .expect("receiver with a wrong profile");
    let emitter = Emitter::new(Config::new("Wrong").expect("namespace"));
    emitter.counter(Metric::new("c")).expect("counter").add(1.0);
    let err = emitter
        .push(&HttpTransport::new(&receiver.url).timeout(Duration::from_secs(30)))
        .expect_err("refused signature");
    assert!(err.to_string().contains("SignatureDoesNotMatch"), "{err}");
    assert_eq!(err.unsent.len(), 1, "the batch is handed back for a retry");

    // No credentials anywhere: the receiver does not start, and says why.
    let none = dir.path().join("none");
    let err = signed_json_receiver(&none, &moto, &[("AWS_REGION", "us-east-1")])
        .err()
        .expect("no credentials, no receiver");
    assert!(err.contains("no AWS credentials"), "{err}");
    assert!(err.contains("AWS_ACCESS_KEY_ID"), "{err}");
    moto.stop();
}

/// The SDK path's signature, checked by `fakecloud --verify-sigv4`: with an
/// IAM user's key the pushes are stored; with a wrong secret fakecloud
/// refuses the signature, and the receiver says so to the emitter, which
/// keeps its batch.
#[test]
fn fakecloud_checks_the_sdk_paths_signature() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut fakecloud = Fakecloud::start_verifying_signatures(dir.path());
    let (id, secret) = fakecloud.keys.clone();
    let url = fakecloud.url.clone();
    let receiver = |secret: &str| {
        let config = SinkConfig::Cloudwatch(cloudwatch::Config {
            endpoint: Some(url.clone()),
            access_key_id: Some(id.clone()),
            secret_access_key: Some(secret.to_string()),
            protocol: Protocol::Sdk,
            ..cloudwatch::Config::new("us-east-1")
        });
        Receiver::start(native_sinks(&[config]), Limits::default(), vec![])
    };
    let right = receiver(&secret);
    push(&right.url, "Verified");
    assert_eq!(Value::Array(fakecloud.metrics("Verified")), want());

    let wrong = receiver("not-the-secret");
    let emitter = Emitter::new(Config::new("Wrong").expect("namespace"));
    emitter.counter(Metric::new("c")).expect("counter").add(1.0);
    let err = emitter
        .push(&HttpTransport::new(&wrong.url).timeout(Duration::from_secs(30)))
        .expect_err("refused signature");
    assert!(err.to_string().contains("SignatureDoesNotMatch"), "{err}");
    assert_eq!(err.unsent.len(), 1, "the batch is handed back for a retry");
    assert_eq!(fakecloud.metrics("Wrong"), Vec::<Value>::new());
}
