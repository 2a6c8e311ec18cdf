//! Bad input through the real native server: each gets a clear 4xx JSON
//! error naming the field and the reason, and nothing refused reaches the
//! sink. The table is shared with the workerd tests (`edgepush_tests::bad_input`).

use edgepush_receiver::limits::Limits;
use edgepush_receiver::sink::Sink;
use edgepush_tests::bad_input::{V1, assert_only_kept_arrived, batch, check_refusals};
use edgepush_tests::{Influx, Receiver, post};

#[test]
fn every_bad_request_gets_a_clear_4xx_and_nothing_is_forwarded() {
    let dir = tempfile::tempdir().expect("temp dir");
    let influx = Influx::start(dir.path());
    let limits = Limits {
        max_body_bytes: 256 * 1024,
        max_decompressed_bytes: 1 << 20,
        ..Limits::default()
    };
    let receiver = Receiver::start(vec![Sink::LineProtocol(influx.target())], limits, vec![]);
    check_refusals(&format!("{}/v1/metrics", receiver.url));

    assert_only_kept_arrived(&influx);
}

#[test]
fn wrong_or_missing_keys_are_401_and_other_routes_answer_json() {
    let receiver = Receiver::start(vec![], Limits::default(), vec!["k1".into(), "k2".into()]);
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
