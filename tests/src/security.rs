//! The tenant and signature table, shared by every receiver under test
//! (the native binary and workerd): keys find their tenant, no tenant
//! writes another's namespace, signatures are checked for key, body, time
//! and reuse, and rates answer 429 with `Retry-After`.
//!
//! The receiver under test has the tenants of [`TENANTS_JSON`] (natively,
//! [`TENANTS_TOML`]) and a line-protocol sink; [`assert_arrivals`] then
//! checks that exactly the accepted points arrived.

use std::time::Duration;

use edgepush::{Config, Emitter, HttpTransport, Metric, Transport, Unit, sign};

use crate::bad_input::{V1, now_ms};
use crate::{Influx, post, post_retry_after};

/// Key of tenant `alpha` (namespaces `Alpha` and `Alpha/*`, bearer keys).
pub const ALPHA_KEY: &str = "alpha-key-0123456789";
/// Key of tenant `beta` (namespace `Beta`, signed requests only).
pub const BETA_KEY: &str = "beta-key-0123456789";
/// Key of tenant `gamma` (namespace `Gamma`, one request per second).
pub const GAMMA_KEY: &str = "gamma-key-0123456789";

/// The tenants, as `EDGEPUSH_TENANTS` (the Worker).
pub const TENANTS_JSON: &str = r#"[
  {"name":"alpha","keys":["alpha-key-0123456789"],"namespaces":["Alpha","Alpha/*"]},
  {"name":"beta","keys":["beta-key-0123456789"],"namespaces":["Beta"],"require_signature":true},
  {"name":"gamma","keys":["gamma-key-0123456789"],"namespaces":["Gamma"],"requests_per_second":1,"burst_seconds":1}
]"#;

/// The same tenants in the native receiver's TOML.
pub const TENANTS_TOML: &str = r#"
[[tenants]]
name = "alpha"
keys = ["alpha-key-0123456789"]
namespaces = ["Alpha", "Alpha/*"]

[[tenants]]
name = "beta"
keys = ["beta-key-0123456789"]
namespaces = ["Beta"]
require_signature = true

[[tenants]]
name = "gamma"
keys = ["gamma-key-0123456789"]
namespaces = ["Gamma"]
requests_per_second = 1
burst_seconds = 1
"#;

fn batch(id: &str, namespace: &str, metric: &str, value: f64) -> Vec<u8> {
    format!(
        r#"{{"v":1,"id":"{id}","ns":"{namespace}","t":{},"series":[{{"n":"{metric}","k":"c","d":{{"namespace":"Alpha"}}}}],"points":[{{"s":0,"x":{value}}}]}}"#,
        now_ms()
    )
    .into_bytes()
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

fn signed(key: &str, seconds: u64, nonce: &str, body: &[u8]) -> String {
    sign::header(key, seconds, nonce, body)
}

fn check(what: &str, answer: (u16, serde_json::Value), status: u16, error: &str, field: &str) {
    let (got, body) = answer;
    assert_eq!(got, status, "{what}: {body}");
    assert_eq!(body["error"], error, "{what}: {body}");
    assert_eq!(body["field"], field, "{what}: {body}");
}

/// Sends the table to the receiver at `base` (its base URL).
pub fn check_tenants(base: &str) {
    let url = format!("{base}/v1/metrics");
    let now = (now_ms() / 1000) as u64;

    // alpha with its key: its own namespaces only.
    let auth = bearer(ALPHA_KEY);
    let headers = [("content-type", V1), ("authorization", auth.as_str())];
    let (status, answer) = post(&url, &headers, &batch("a1", "Alpha/api", "alpha_ok", 1.0));
    assert_eq!(status, 202, "{answer}");
    check(
        "alpha into beta's namespace",
        post(&url, &headers, &batch("a2", "Beta", "alpha_in_beta", 1.0)),
        403,
        "namespace_forbidden",
        "ns",
    );
    check(
        "alpha into a look-alike namespace",
        post(
            &url,
            &headers,
            &batch("a3", "AlphaX", "alpha_in_alphax", 1.0),
        ),
        403,
        "namespace_forbidden",
        "ns",
    );
    check(
        "a key that is no one's",
        post(
            &url,
            &[("content-type", V1), ("authorization", "Bearer alpha-key")],
            &batch("a4", "Alpha", "nobody", 1.0),
        ),
        401,
        "unauthorized",
        "authorization",
    );
    check(
        "no key",
        post(
            &url,
            &[("content-type", V1)],
            &batch("a5", "Alpha", "nobody", 1.0),
        ),
        401,
        "unauthorized",
        "authorization",
    );

    // beta signs: a bearer key is refused, a good signature accepted once.
    let body = batch("b1", "Beta", "beta_ok", 2.0);
    let auth = bearer(BETA_KEY);
    check(
        "beta with a bearer key",
        post(
            &url,
            &[("content-type", V1), ("authorization", &auth)],
            &body,
        ),
        401,
        "unauthorized",
        "authorization",
    );
    let good = signed(BETA_KEY, now, "first", &body);
    let sig = |value: &str| {
        [("content-type", V1), (sign::HEADER, value)].map(|(k, v)| (k, v.to_string()))
    };
    let send = |headers: [(&str, String); 2], body: &[u8]| {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        post(&url, &headers, body)
    };
    let (status, answer) = send(sig(&good), &body);
    assert_eq!(status, 202, "signed: {answer}");
    check(
        "the same signed request again",
        send(sig(&good), &body),
        401,
        "replayed_signature",
        sign::HEADER,
    );
    check(
        "a signature over another body",
        send(sig(&good), &batch("b2", "Beta", "beta_tampered", 9.0)),
        401,
        "unauthorized",
        sign::HEADER,
    );
    check(
        "a signature with a key that is no one's",
        send(sig(&signed("not-a-key", now, "n", &body)), &body),
        401,
        "unauthorized",
        sign::HEADER,
    );
    check(
        "a signature ten minutes old",
        send(sig(&signed(BETA_KEY, now - 600, "old", &body)), &body),
        401,
        "stale_signature",
        sign::HEADER,
    );
    check(
        "a malformed signature",
        send(sig("t=1,k=x"), &body),
        401,
        "unauthorized",
        sign::HEADER,
    );
    // The emitter signs (afresh on every attempt).
    let config = Config::new("Beta").expect("namespace");
    let emitter = Emitter::new(config);
    let counter = emitter
        .counter(Metric::new("beta_emitted").unit(Unit::Count))
        .expect("metric");
    counter.add(7.0);
    let transport = HttpTransport::new(base)
        .signing_key(BETA_KEY)
        .timeout(Duration::from_secs(10));
    for batch in emitter.flush().expect("batches") {
        let ack = transport.send(&batch).expect("a signed push is accepted");
        assert_eq!(ack.accepted, 1);
    }

    // gamma: one request per second, then 429 with Retry-After.
    let auth = bearer(GAMMA_KEY);
    let headers = [("content-type", V1), ("authorization", auth.as_str())];
    let (status, answer) = post(&url, &headers, &batch("g1", "Gamma", "gamma_ok", 3.0));
    assert_eq!(status, 202, "{answer}");
    // The push above forwarded before it was answered, which may take
    // longer than the second the limit counts on a loaded machine. So the
    // second request that counts is one refused before any sink (a body
    // that is not JSON: the rate is checked before decoding), sent until
    // it takes the second's request; the limited push follows at once.
    let taken = (0..10).any(|_| {
        let (status, retry_after, answer) = post_retry_after(&url, &headers, b"not json");
        match status {
            400 => true,
            429 => {
                let wait = retry_after.and_then(|s| s.parse().ok()).unwrap_or(1);
                std::thread::sleep(Duration::from_secs(wait));
                false
            }
            other => panic!("{other}: {answer}"),
        }
    });
    assert!(taken, "the limit never let a request through");
    let (status, retry_after, answer) =
        post_retry_after(&url, &headers, &batch("g2", "Gamma", "gamma_limited", 3.0));
    assert_eq!(status, 429, "{answer}");
    assert_eq!(answer["error"], "rate_limited");
    assert_eq!(answer["field"], "tenants.gamma.requests_per_second");
    assert_eq!(retry_after.as_deref(), Some("1"), "{answer}");
}

/// After [`check_tenants`]: exactly the accepted points arrived, each under
/// its own tenant's namespace (the `namespace` dimension could not
/// override it: it arrives as `_namespace`).
pub fn assert_arrivals(influx: &Influx) {
    let mut measurements: Vec<String> = influx
        .rows("SHOW MEASUREMENTS")
        .into_iter()
        .filter_map(|r| r["name"].as_str().map(String::from))
        .collect();
    measurements.sort();
    assert_eq!(
        measurements,
        ["alpha_ok", "beta_emitted", "beta_ok", "gamma_ok"]
    );
    for (metric, namespace, value) in [
        ("alpha_ok", "Alpha/api", 1.0),
        ("beta_ok", "Beta", 2.0),
        ("beta_emitted", "Beta", 7.0),
        ("gamma_ok", "Gamma", 3.0),
    ] {
        let rows = influx.rows(&format!(r#"SELECT * FROM "{metric}""#));
        assert_eq!(rows.len(), 1, "{metric}: {rows:?}");
        assert_eq!(rows[0]["namespace"], namespace, "{metric}");
        assert_eq!(rows[0]["value"].as_f64(), Some(value), "{metric}");
    }
    let rows = influx.rows(r#"SELECT * FROM "alpha_ok""#);
    assert_eq!(rows[0]["_namespace"], "Alpha");
}
