//! SigV4 signing checked two independent ways: botocore (the official Python
//! SDK's signer) computes the same Authorization for a gzip'd request, and
//! moto with signature checking on accepts the receiver's requests, natively
//! and from wasm inside workerd, and refuses a wrong secret.
//!
//! moto 5.2 checks a signature against the *decompressed* body, so it
//! refuses every gzip'd signed request, the official SDKs' included; against
//! moto the receiver therefore sends uncompressed bodies (`compress = false`,
//! `EDGEPUSH_CLOUDWATCH_COMPRESS=false`), and the gzip'd form is checked against
//! botocore instead.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use edgepush::{Config, Emitter, HttpTransport, Metric, Unit};
use edgepush_receiver::limits::Limits;
use edgepush_receiver::sink::{Sink, cloudwatch};
use edgepush_tests::{Moto, Receiver, Workerd, cloudwatch_sink, repo_root};
use serde_json::json;

/// Pushes `value` to `url` as counter `signed` in `namespace`.
fn push(
    url: &str,
    namespace: &str,
    value: f64,
) -> Result<edgepush::PushReport, edgepush::PushError> {
    let emitter = Emitter::new(Config::new(namespace).expect("ns"));
    emitter
        .counter(Metric::new("signed").unit(Unit::Count))
        .expect("counter")
        .add(value);
    emitter.push(&HttpTransport::new(url))
}

fn sum_of(moto: &mut Moto, namespace: &str) -> f64 {
    let metrics = moto.metrics(namespace);
    assert_eq!(metrics.len(), 1, "{metrics:?}");
    metrics[0]["sum"].as_f64().expect("a sum")
}

/// The CloudWatch sink to `moto`, uncompressed (see the module docs).
fn plain_sink(moto: &Moto) -> (cloudwatch::Config, cloudwatch::Keys) {
    let Sink::CloudWatch(mut config, keys) = cloudwatch_sink(moto) else {
        unreachable!("cloudwatch_sink makes a CloudWatch sink")
    };
    config.compress = false;
    (config, keys)
}

#[test]
fn gzip_signing_matches_botocore() {
    let config = cloudwatch::Config {
        endpoint: Some("http://127.0.0.1:4566/".into()),
        protocol: cloudwatch::Protocol::Json,
        ..cloudwatch::Config::new("eu-west-1")
    };
    let body = br#"{"Namespace":"N","MetricData":[{"MetricName":"m","Value":1.0}]}"#;
    for token in [None, Some("session-token".to_string())] {
        let keys = cloudwatch::Keys {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: token.clone(),
        };
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_000_000);
        let request = cloudwatch::request(&config, &keys, body, time).expect("signed");
        let header = |name: &str| request.headers()[name].to_str().expect("ascii").to_string();
        let input = json!({
            "method": "POST",
            "url": request.uri().to_string(),
            "headers": {
                "content-type": header("content-type"),
                "content-encoding": header("content-encoding"),
                "x-amz-target": header("x-amz-target"),
            },
            "body_hex": request.body().iter().map(|b| format!("{b:02x}")).collect::<String>(),
            "region": "eu-west-1",
            "service": "monitoring",
            "access_key_id": keys.access_key_id,
            "secret_access_key": keys.secret_access_key,
            "session_token": token,
            "amz_date": header("x-amz-date"),
        });
        let python = repo_root().join(".venv/bin/python");
        let mut child = Command::new(if python.exists() {
            python
        } else {
            "python3".into()
        })
        .arg(repo_root().join("tests/readback/sigv4_reference.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run sigv4_reference.py");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.to_string().as_bytes())
            .expect("write");
        let out = child.wait_with_output().expect("output");
        assert!(out.status.success());
        let reference = String::from_utf8(out.stdout).expect("utf-8");
        assert_eq!(
            header("authorization"),
            reference.trim(),
            "token: {token:?}"
        );
    }
}

#[test]
fn moto_checking_signatures_accepts_native_and_wasm_signing_and_refuses_a_wrong_secret() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut moto = Moto::start_verifying_signatures(dir.path());

    // Native signing.
    let (config, keys) = plain_sink(&moto);
    let native = Receiver::start(
        vec![Sink::CloudWatch(config.clone(), keys.clone())],
        Limits::default(),
        vec![],
    );
    push(&native.url, "SignedNative", 7.0).expect("accepted");
    assert_eq!(sum_of(&mut moto, "SignedNative"), 7.0);

    // A wrong secret: moto answers 403 SignatureDoesNotMatch, which is not
    // worth retrying, so the receiver answers 502 naming the sink, and the
    // emitter gets its batch back.
    let mut wrong_keys = keys;
    wrong_keys.secret_access_key.push('x');
    let wrong = Receiver::start(
        vec![Sink::CloudWatch(config, wrong_keys)],
        Limits::default(),
        vec![],
    );
    let err = push(&wrong.url, "SignedWrong", 1.0).expect_err("refused");
    let text = err.to_string();
    assert!(
        text.contains("502")
            && text.contains("sinks.cloudwatch")
            && text.contains("SignatureDoesNotMatch"),
        "{text}"
    );
    assert_eq!(err.unsent.len(), 1, "the batch came back");
    assert!(moto.metrics("SignedWrong").is_empty());

    // Signing inside wasm, in workerd.
    let mut settings = moto.worker_settings();
    settings.insert("EDGEPUSH_CLOUDWATCH_COMPRESS".into(), "false".into());
    let worker = Workerd::start(dir.path(), &settings.into());
    push(&worker.url, "SignedEdge", 11.0).expect("accepted");
    assert_eq!(sum_of(&mut moto, "SignedEdge"), 11.0);
}
