//! The read-back scenario every receiver under test must pass (native and
//! workerd): an emitter pushes three invocations' worth of every kind, plus
//! names with special characters, and CloudWatch (moto, through boto3) and
//! InfluxDB (through its query API) must hold exactly what was pushed.

use std::time::Duration;

use edgepush::{
    Config, Counter, Distribution, Emitter, Gauge, HttpTransport, Metric, Statistics, Unit,
};
use serde_json::{Value, json};

use crate::{Influx, Moto};

/// The namespace the scenario writes.
pub const NAMESPACE: &str = "EdgepushE2E";

/// The Worker settings for the scenario: key `secret-key`, both sinks.
pub fn worker_settings(moto: &Moto, influx: &Influx) -> serde_json::Map<String, Value> {
    let mut settings = moto.worker_settings();
    settings.insert("EDGEPUSH_API_KEYS".into(), "secret-key".into());
    settings.insert("EDGEPUSH_INFLUXDB_URL".into(), influx.url.clone().into());
    settings.insert(
        "EDGEPUSH_INFLUXDB_DATABASE".into(),
        influx.database.clone().into(),
    );
    settings
}

/// The scenario's metrics, in `namespace` with the common dimension
/// `service=checkout`: a counter `orders` (`route=/buy`), a high-resolution
/// distribution `latency`, a gauge `queue depth` and a statistic set
/// `payload`.
pub struct Shop {
    /// The emitter they record into.
    pub emitter: Emitter,
    /// `orders`, Count.
    pub orders: Counter,
    /// `latency`, Milliseconds, 1-second resolution.
    pub latency: Distribution,
    /// `queue depth`, no unit.
    pub queue: Gauge,
    /// `payload`, Bytes.
    pub payload: Statistics,
}

impl Shop {
    /// Registers the metrics in `namespace`.
    pub fn new(namespace: &str) -> Self {
        let emitter = Emitter::new(
            Config::new(namespace)
                .expect("namespace")
                .dimension("service", "checkout")
                .expect("dimension"),
        );
        let orders = emitter
            .counter(
                Metric::new("orders")
                    .unit(Unit::Count)
                    .dimension("route", "/buy"),
            )
            .expect("counter");
        let latency = emitter
            .distribution(
                Metric::new("latency")
                    .unit(Unit::Milliseconds)
                    .high_resolution(),
            )
            .expect("distribution");
        let queue = emitter.gauge(Metric::new("queue depth")).expect("gauge");
        let payload = emitter
            .statistics(Metric::new("payload").unit(Unit::Bytes))
            .expect("statistics");
        Shop {
            emitter,
            orders,
            latency,
            queue,
            payload,
        }
    }
}

/// Pushes the scenario to the receiver at `receiver_url` (which must accept
/// the key `secret-key` and forward to `moto` and `influx`), then reads both
/// back and checks every value. `wait` is how long the sinks may take to
/// show it all (zero when the receiver forwards before it answers).
pub fn push_and_read_back(receiver_url: &str, moto: &mut Moto, influx: &Influx, wait: Duration) {
    let Shop {
        emitter,
        orders,
        latency,
        queue,
        payload,
    } = Shop::new(NAMESPACE);
    let transport = HttpTransport::new(receiver_url).api_key("secret-key");

    // Three invocations' worth, each flushed and pushed.
    let rounds: [&dyn Fn(); 3] = [
        &|| {
            orders.add(3.0);
            [10.0, 20.0, 20.0]
                .into_iter()
                .for_each(|v| latency.record(v));
            queue.set(7.0);
            queue.set(9.0);
            payload.record(2.0, 300.0, 100.0, 200.0);
        },
        &|| {
            orders.add(4.0);
            latency.record(30.0);
            queue.set(4.0);
        },
        &|| {
            orders.add(5.0);
            latency.record(10.0);
            payload.record(1.0, 50.0, 50.0, 50.0);
        },
    ];
    let mut accepted = 0;
    // When each round was flushed: its points' time.
    let mut flushed = Vec::new();
    for round in rounds {
        round();
        // Each round in a millisecond of its own.
        let t = crate::bad_input::now_ms().max(flushed.last().map_or(0, |t| t + 1));
        let payloads = emitter.flush_at(t).expect("flush");
        let report = emitter.send(&transport, payloads).expect("push accepted");
        assert_eq!(report.rejected, 0);
        accepted += report.accepted;
        flushed.push(t);
    }
    assert_eq!(accepted, 4 + 3 + 3);

    crate::eventually(wait, || {
        // CloudWatch, through boto3.
        let metrics = moto.metrics(NAMESPACE);
        let want = json!([
            {"name": "latency", "dimensions": {"service": "checkout"}, "units": ["Milliseconds"],
             "sum": 90.0, "count": 5.0, "min": 10.0, "max": 30.0},
            {"name": "orders", "dimensions": {"route": "/buy", "service": "checkout"}, "units": ["Count"],
             "sum": 12.0, "count": 3.0, "min": 3.0, "max": 5.0},
            {"name": "payload", "dimensions": {"service": "checkout"}, "units": ["Bytes"],
             "sum": 350.0, "count": 3.0, "min": 50.0, "max": 200.0},
            {"name": "queue depth", "dimensions": {"service": "checkout"}, "units": ["None"],
             "sum": 20.0, "count": 3.0, "min": 4.0, "max": 9.0},
        ]);
        assert_eq!(Value::Array(metrics), want);

        // InfluxDB, through its query API.
        let rows = influx.rows(r#"SELECT * FROM "orders""#);
        assert_eq!(rows.len(), 3, "{rows:?}");
        let values: Vec<f64> = rows
            .iter()
            .map(|r| r["value"].as_f64().expect("float"))
            .collect();
        assert_eq!(values, [3.0, 4.0, 5.0]);
        // Each at its flush's millisecond, plus the batch's sub-millisecond
        // offset (docs: line protocol timestamps).
        for (r, t) in rows.iter().zip(&flushed) {
            let ns = r["time"].as_i64().expect("time in ns");
            let ms = *t * 1_000_000;
            assert!(
                (ms..ms + 1_000_000).contains(&ns),
                "{ns} is not in the millisecond {t}"
            );
        }
        for r in &rows {
            assert_eq!(
                (&r["namespace"], &r["service"], &r["route"], &r["unit"]),
                (
                    &json!(NAMESPACE),
                    &json!("checkout"),
                    &json!("/buy"),
                    &json!("Count")
                )
            );
        }
        let stats = |measurement: &str| {
            let rows = influx.rows(&format!(
                r#"SELECT sum("count"), sum("sum"), min("min"), max("max") FROM "{measurement}""#
            ));
            assert_eq!(rows.len(), 1, "{rows:?}");
            let r = &rows[0];
            [&r["sum"], &r["sum_1"], &r["min"], &r["max"]].map(|v| v.as_f64().expect("number"))
        };
        assert_eq!(stats("latency"), [5.0, 90.0, 10.0, 30.0]);
        assert_eq!(stats("payload"), [3.0, 350.0, 50.0, 200.0]);
        // A gauge stores its last `value` per push (CloudWatch, which has no
        // "last", got the statistics of every value set: 7 and 9, then 4).
        let rows = influx.rows(
            r#"SELECT count("value"), sum("value"), min("value"), max("value") FROM "queue depth""#,
        );
        let r = &rows[0];
        let got =
            [&r["count"], &r["sum"], &r["min"], &r["max"]].map(|v| v.as_f64().expect("number"));
        assert_eq!(got, [2.0, 13.0, 4.0, 9.0]);
        let units = influx.rows(r#"SHOW TAG VALUES FROM "latency" WITH KEY = "unit""#);
        assert_eq!(units.len(), 1);
        assert_eq!(units[0]["value"], json!("Milliseconds"));
    });

    // Names and dimensions with line protocol's and JSON's special characters
    // arrive exactly as pushed, in both stores: no extra tags, fields or lines.
    let odd_name = "odd name,x=1 \"q\"";
    let odd_dims = [
        ("a b", "c,d=e\\f"),
        ("k=", "C:\\temp w"),
        ("quote", "\"é\" \u{1F600}"),
    ];
    let mut metric = Metric::new(odd_name).unit(Unit::Count);
    for (k, v) in odd_dims {
        metric = metric.dimension(k, v);
    }
    emitter.counter(metric).expect("odd counter").add(2.0);
    emitter.push(&transport).expect("odd push");

    crate::eventually(wait, || {
        let rows = influx.rows("SHOW MEASUREMENTS");
        let names: Vec<&str> = rows.iter().filter_map(|r| r["name"].as_str()).collect();
        assert_eq!(
            names,
            ["latency", odd_name, "orders", "payload", "queue depth"]
        );
        let rows = influx.rows(&format!("SELECT * FROM {}", quote_ident(odd_name)));
        assert_eq!(rows.len(), 1, "{rows:?}");
        let row = &rows[0];
        let mut want = serde_json::Map::new();
        want.insert("_measurement".into(), json!(odd_name));
        want.insert("time".into(), row["time"].clone());
        for (k, v) in odd_dims {
            want.insert(k.into(), json!(v));
        }
        want.insert("namespace".into(), json!(NAMESPACE));
        want.insert("service".into(), json!("checkout"));
        want.insert("unit".into(), json!("Count"));
        want.insert("value".into(), json!(2));
        assert_eq!(row, &want);

        let metrics = moto.metrics(NAMESPACE);
        let odd = metrics
            .iter()
            .find(|m| m["name"] == odd_name)
            .expect("odd metric in CloudWatch");
        let mut dims = serde_json::Map::new();
        for (k, v) in odd_dims {
            dims.insert(k.into(), json!(v));
        }
        dims.insert("service".into(), json!("checkout"));
        assert_eq!(odd["dimensions"], Value::Object(dims));
        assert_eq!(odd["sum"], json!(2.0));
    });
}

/// An InfluxQL identifier in double quotes.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
}
