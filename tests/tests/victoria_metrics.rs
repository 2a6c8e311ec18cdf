//! VictoriaMetrics (Debian's `victoria-metrics`) as a line-protocol sink,
//! through its InfluxDB 1.x `/write` API: what the emitter pushes lands
//! with its exact values, and, since VictoriaMetrics would store a string
//! field as 0, a sink configured with `store_strings = false` refuses string
//! values by name while numbers and booleans (as 1 and 0) are stored.

use edgepush::HttpTransport;
use edgepush_receiver::limits::Limits;
use edgepush_receiver::sink::Sink;
use edgepush_tests::scenario::Shop;
use edgepush_tests::{Receiver, Victoria, eventually, post};
use serde_json::{Value, json};
use std::time::Duration;

/// The one value of the series `name` with `labels` (others may be there).
fn only_value(vm: &Victoria, name: &str) -> (Value, Value) {
    let series = vm.export(name);
    assert_eq!(series.len(), 1, "{name}: {series:?}");
    let (labels, values) = &series[0];
    assert_eq!(values.len(), 1, "{name}: {values:?}");
    (labels.clone(), values[0].clone())
}

#[test]
fn victoria_metrics_stores_what_is_pushed_and_no_string_becomes_zero() {
    let dir = tempfile::tempdir().expect("temp dir");
    let vm = Victoria::start(dir.path());
    let receiver = Receiver::start(
        vec![Sink::Influxdb(vm.target(false))],
        Limits::default(),
        Vec::new(),
    );

    // The emitter's kinds, through wire v1: the shop's counter and
    // distribution (its gauge and statistic set record nothing here).
    let Shop {
        emitter,
        orders,
        latency,
        ..
    } = Shop::new("Shop");
    orders.add(2.0);
    orders.add(4.0);
    for v in [10.0, 20.0, 20.0] {
        latency.record(v);
    }
    let pushed = emitter
        .push(&HttpTransport::new(&receiver.url))
        .expect("push");
    assert_eq!(pushed.rejected, 0);

    // Line protocol with a number, a boolean and a string field.
    let t = edgepush::now_ms();
    let (status, answer) = post(
        &format!("{}/write?db=Deploys&precision=ms", receiver.url),
        &[],
        format!("deploy,host=a replicas=3i,ok=true,version=\"v2 \\\"blue\\\"\" {t}").as_bytes(),
    );
    assert_eq!(status, 400, "{answer}");
    assert_eq!(
        answer["data"],
        json!([{
            "line": 1,
            "field": "sinks.influxdb",
            "error_message": "string value: this sink stores numbers only (store_strings = false)",
        }]),
        "{answer}"
    );

    eventually(Duration::from_secs(20), || {
        let (labels, value) = only_value(&vm, "orders_value");
        assert_eq!(value, json!(6), "{labels}");
        assert_eq!(
            (
                &labels["namespace"],
                &labels["route"],
                &labels["service"],
                &labels["unit"]
            ),
            (
                &json!("Shop"),
                &json!("/buy"),
                &json!("checkout"),
                &json!("Count")
            ),
            "{labels}"
        );
        // With the quantiles line protocol carries for a distribution.
        for (field, want) in [
            ("count", 3),
            ("sum", 50),
            ("min", 10),
            ("max", 20),
            ("p50", 20),
            ("p90", 20),
            ("p99", 20),
        ] {
            let (_, value) = only_value(&vm, &format!("latency_{field}"));
            assert_eq!(value, json!(want), "latency_{field}");
        }
        assert_eq!(only_value(&vm, "deploy_replicas_value").1, json!(3));
        assert_eq!(only_value(&vm, "deploy_ok_value").1, json!(1));
    });
    // The string was refused, not written as 0.
    assert_eq!(vm.export("deploy_version_value"), []);
}

/// The InfluxDB 2.x write API (`/api/v2/write`, token and all) against a
/// real server: VictoriaMetrics serves it. What the emitter pushes is read
/// back exactly, with its timestamp.
#[test]
fn the_v2_write_api_stores_what_is_pushed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let vm = Victoria::start(dir.path());
    let receiver = Receiver::start(
        vec![Sink::Influxdb(vm.target_v2())],
        Limits::default(),
        Vec::new(),
    );
    let Shop {
        emitter,
        orders,
        latency,
        ..
    } = Shop::new("ShopV2");
    orders.add(3.0);
    orders.add(4.5);
    for v in [1.5, 2.5, 2.5, 7.0] {
        latency.record(v);
    }
    let before = edgepush::now_ms();
    let pushed = emitter
        .push(&HttpTransport::new(&receiver.url))
        .expect("push");
    assert_eq!((pushed.accepted, pushed.rejected), (2, 0));
    let after = edgepush::now_ms();
    eventually(Duration::from_secs(20), || {
        let series = vm.export("orders_value");
        assert_eq!(series.len(), 1, "{series:?}");
        let (labels, values) = &series[0];
        assert_eq!(values, &[json!(7.5)], "{labels}");
        assert_eq!(labels["namespace"], "ShopV2", "{labels}");
        for (field, want) in [("count", 4.0), ("sum", 13.5), ("min", 1.5), ("max", 7.0)] {
            let (_, value) = only_value(&vm, &format!("latency_{field}"));
            assert_eq!(value.as_f64(), Some(want), "latency_{field}");
        }
    });
    // VictoriaMetrics keeps milliseconds: the point's own, within the push.
    let text =
        edgepush_tests::http_get_body(&format!("{}/api/v1/export?match[]=orders_value", vm.url))
            .expect("export");
    let line: Value = serde_json::from_str(text.lines().next().expect("a series")).expect("json");
    let t = line["timestamps"][0].as_i64().expect("timestamp");
    assert!(
        (before - 1000..=after).contains(&t),
        "{t} not in {before}..{after}"
    );
}
