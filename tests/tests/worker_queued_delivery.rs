//! The Worker with a Queue bound (Miniflare's local Queues in workerd):
//! pushes are validated, enqueued one message per sink and answered at once;
//! the consumer forwards, retries what a sink did not take, and gives up to
//! the dead-letter queue, whose consumer keeps the message in KV.

use std::time::{Duration, Instant};

use edgepush::{Config, Emitter, HttpTransport, Metric, Unit};
use edgepush_tests::{
    Influx, Moto, Workerd, eventually, free_port, get_with_key, http_get, scenario, wait_for,
};
use serde_json::{Value, json};

/// Local Queues and the dead-letter KV namespace, as wrangler.toml's
/// commented queue section declares them.
fn queues(max_retries: u32) -> Value {
    json!({
        "queueProducers": { "EDGEPUSH_QUEUE": "edgepush" },
        "queueConsumers": {
            "edgepush": {
                "maxBatchSize": 10,
                "maxBatchTimeout": 1,
                "maxRetries": max_retries,
                "deadLetterQueue": "edgepush-dead-letters"
            },
            "edgepush-dead-letters": { "maxBatchTimeout": 1 }
        },
        "kvNamespaces": ["EDGEPUSH_DEAD_LETTERS"]
    })
}

#[test]
fn queued_pushes_arrive_exactly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut moto = Moto::start(dir.path());
    let influx = Influx::start(dir.path());
    let mut settings = scenario::worker_settings(&moto, &influx);
    settings.insert("EDGEPUSH_RETRY_DELAY_SECONDS".into(), json!("1"));
    let worker = Workerd::start_with(dir.path(), &settings.into(), &queues(3));
    scenario::push_and_read_back(&worker.url, &mut moto, &influx, Duration::from_secs(30));
    moto.stop();
}

#[test]
fn a_batch_queued_while_cloudwatch_is_down_arrives_when_it_is_back() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let worker = Workerd::start_with(
        dir.path(),
        &json!({
            "EDGEPUSH_RETRY_DELAY_SECONDS": "1",
            "EDGEPUSH_CLOUDWATCH_REGION": "us-east-1",
            "EDGEPUSH_CLOUDWATCH_ENDPOINT": format!("http://127.0.0.1:{port}/"),
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        }),
        &queues(20),
    );
    let emitter = Emitter::new(Config::new("Outage").expect("ns"));
    let counter = emitter
        .counter(Metric::new("kept").unit(Unit::Count))
        .expect("counter");
    counter.add(42.0);
    // The emulator is down, yet the push is accepted: it is queued.
    let report = emitter
        .push(&HttpTransport::new(&worker.url))
        .expect("queued");
    assert_eq!(report.accepted, 1);
    // The consumer fails (the emulator is not there yet), twice.
    wait_for("two failed deliveries", Duration::from_secs(60), || {
        worker.log_text().matches("not delivered").count() >= 2
    });

    let mut moto = Moto::start_on(dir.path(), port);
    let metrics = eventually(Duration::from_secs(30), || {
        let m = moto.metrics("Outage");
        assert_eq!(m.len(), 1, "not delivered yet");
        m
    });
    assert_eq!(metrics[0]["sum"], json!(42.0));
    assert_eq!(metrics[0]["count"], json!(1.0), "delivered once");
    moto.stop();
}

/// `GET /v1/dead-letters` with `key` and `query`: the names listed and the
/// next page's cursor.
fn dead_letters(url: &str, key: &str, query: &str) -> (Vec<String>, Value) {
    let (status, body) = get_with_key(&format!("{url}/v1/dead-letters{query}"), key);
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).expect("JSON");
    let names = body["dead_letters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n.as_str().map(str::to_string))
        .collect();
    (names, body["cursor"].clone())
}

/// A doomed push of one gauge in `namespace` with `key`: its batch id.
fn doomed(url: &str, namespace: &str, key: &str) -> String {
    let emitter = Emitter::new(Config::new(namespace).expect("ns"));
    emitter
        .gauge(Metric::new("doomed"))
        .expect("gauge")
        .set(1.0);
    let batches = emitter.flush().expect("flush");
    let id = batches[0].id().to_string();
    edgepush::send_all(&HttpTransport::new(url).api_key(key), batches).expect("queued");
    id
}

#[test]
fn a_batch_that_keeps_failing_lands_in_the_dead_letter_queue() {
    let dir = tempfile::tempdir().expect("temp dir");
    let closed = free_port();
    let worker = Workerd::start_with(
        dir.path(),
        &json!({
            "EDGEPUSH_API_KEYS": "ops-key",
            "EDGEPUSH_TENANTS": r#"[{"name":"shop","keys":["shop-key"],"namespaces":["Shop"]}]"#,
            "EDGEPUSH_RETRY_DELAY_SECONDS": "0",
            "EDGEPUSH_INFLUXDB_URL": format!("http://127.0.0.1:{closed}"),
            "EDGEPUSH_INFLUXDB_DATABASE": "nowhere",
        }),
        &queues(1),
    );
    let dead = doomed(&worker.url, "Dead", "ops-key");
    let shop = doomed(&worker.url, "Shop", "shop-key");

    let list_url = format!("{}/v1/dead-letters", worker.url);
    assert_eq!(http_get(&list_url), Ok(401), "the list needs a key");
    let start = Instant::now();
    let listed = eventually(Duration::from_secs(40), || {
        let (names, cursor) = dead_letters(&worker.url, "ops-key", "");
        assert_eq!(
            names.len(),
            2,
            "dead letters so far after {:?}: {names:?}",
            start.elapsed()
        );
        assert_eq!(cursor, Value::Null, "one page");
        names
    });
    // The tenant that may write every namespace sees both; each other
    // tenant its own.
    assert!(
        listed
            .iter()
            .any(|n| n.contains(&dead) && n.ends_with("Influxdb")),
        "{listed:?}"
    );
    assert!(listed.iter().any(|n| n.contains(&shop)), "{listed:?}");
    let (own, _) = dead_letters(&worker.url, "shop-key", "");
    assert_eq!(own.len(), 1, "{own:?}");
    assert!(own[0].contains(&shop), "{own:?}");

    // Page by page.
    let (first, cursor) = dead_letters(&worker.url, "ops-key", "?limit=1");
    assert_eq!(first.len(), 1, "{first:?}");
    let cursor = cursor
        .as_str()
        .expect("a cursor to the next page")
        .to_string();
    let (second, last) = dead_letters(&worker.url, "ops-key", &format!("?limit=1&cursor={cursor}"));
    assert_eq!(second.len(), 1, "{second:?}");
    assert_ne!(first, second);
    let (after, _) = match last.as_str() {
        Some(c) => dead_letters(&worker.url, "ops-key", &format!("?limit=1&cursor={c}")),
        None => (Vec::new(), Value::Null),
    };
    assert!(after.is_empty(), "{after:?}");
    let (status, body) = get_with_key(&format!("{list_url}?limit=0"), "ops-key");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("\"field\":\"limit\""), "{body}");
}
