//! Names line protocol treats specially, pushed with the real emitter
//! through the native receiver into InfluxDB 1.x and VictoriaMetrics (both
//! through `/write`): each metric is read back from both stores exactly,
//! with its hostile dimension, or the push's answer names it as refused by
//! the sink; nothing is answered `202` and then missing.

use std::collections::BTreeMap;
use std::time::Duration;

use edgepush::{Config, Emitter, Metric, Unit};
use edgepush_receiver::limits::Limits;
use edgepush_receiver::sink::Sink;
use edgepush_tests::{Influx, Receiver, Victoria, eventually, http_get_body, post};
use serde_json::Value;

/// Metric names every emitter accepts, each special somewhere in line
/// protocol (or in the stores' query languages).
const NAMES: &[&str] = &[
    "#comment",
    "a#b",
    "a b c",
    "a,b",
    "a=b",
    "back\\slash",
    "quote\"d",
    "'single'",
    " leading",
    "trailing ",
    "time",
    "-1",
    "{braces}",
    "x/y:z",
    "ünïcödé ✓",
    "📈 emoji",
];
/// The metric names the line-protocol sink refuses, and why.
const REFUSED: &[(&str, &str)] = &[("#comment", "cannot start with '#'")];
/// A dimension on every metric, special too.
const DIMENSION: (&str, &str) = ("k=ey, x", "va\"l,ue = #y");

#[test]
fn hostile_names_are_stored_exactly_or_refused_by_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    let influx = Influx::start(dir.path());
    let vm = Victoria::start(dir.path());
    let receiver = Receiver::start(
        vec![
            Sink::Influxdb(influx.target()),
            Sink::Influxdb(vm.target(true)),
        ],
        Limits::default(),
        Vec::new(),
    );
    // Wire v1, so the test reads the points' order from the JSON it sent.
    let emitter = Emitter::new(
        Config::new("Hostile")
            .expect("namespace")
            .wire_version(edgepush::wire::Version::V1),
    );
    for (i, name) in NAMES.iter().enumerate() {
        emitter
            .counter(
                Metric::new(*name)
                    .unit(Unit::Count)
                    .dimension(DIMENSION.0, DIMENSION.1),
            )
            .unwrap_or_else(|e| panic!("{name:?}: {e}"))
            .add((i + 1) as f64);
    }
    let payloads = emitter.flush().expect("flush");
    assert_eq!(payloads.len(), 1);
    let (status, answer) = post(
        &format!("{}/v1/metrics", receiver.url),
        &[
            ("content-type", payloads[0].content_type()),
            (
                "content-encoding",
                payloads[0].content_encoding().unwrap_or("identity"),
            ),
        ],
        payloads[0].body(),
    );
    assert_eq!(status, 202, "{answer}");
    // Every refusal the answer gives, by metric: once per store.
    let refused = refusals(&answer, &payloads[0].encoded().expect("the batch"));
    assert_eq!(
        refused.keys().map(String::as_str).collect::<Vec<_>>(),
        REFUSED.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        "{answer}"
    );
    for (name, why) in REFUSED {
        assert!(
            refused[*name].iter().all(|m| m.contains(why)),
            "{name}: {refused:?}"
        );
        assert_eq!(refused[*name].len(), 2, "{name}: once per store");
    }
    let stored: BTreeMap<&str, f64> = NAMES
        .iter()
        .enumerate()
        .filter(|(_, n)| !refused.contains_key(**n))
        .map(|(i, n)| (*n, (i + 1) as f64))
        .collect();

    // InfluxDB: one row per metric stored, with its value and dimension.
    eventually(Duration::from_secs(20), || {
        let mut got = BTreeMap::new();
        for row in influx.rows("SELECT * FROM /.*/") {
            let name = row["_measurement"].as_str().expect("name").to_string();
            assert_eq!(row[DIMENSION.0], DIMENSION.1, "{name}: {row:?}");
            assert_eq!(row["namespace"], "Hostile", "{name}");
            got.insert(name, row["value"].as_f64().expect("value"));
        }
        let want: BTreeMap<String, f64> = stored.iter().map(|(n, v)| (n.to_string(), *v)).collect();
        assert_eq!(got, want);
    });

    // VictoriaMetrics: `<measurement>_value`, with the dimension as a label.
    eventually(Duration::from_secs(20), || {
        let _ = http_get_body(&format!("{}/internal/force_flush", vm.url));
        let text = http_get_body(&format!(
            "{}/api/v1/export?match[]=%7Bnamespace%3D%22Hostile%22%7D",
            vm.url
        ))
        .expect("export");
        let mut got = BTreeMap::new();
        for line in text.lines() {
            let series: Value = serde_json::from_str(line).expect("export line");
            let metric = &series["metric"];
            let name = metric["__name__"].as_str().expect("name");
            let name = name.strip_suffix("_value").expect("a _value metric");
            assert_eq!(metric[DIMENSION.0], DIMENSION.1, "{name}: {metric}");
            let values = series["values"].as_array().expect("values");
            assert_eq!(values.len(), 1, "{name}: {series}");
            got.insert(name.to_string(), values[0].as_f64().expect("value"));
        }
        let want: BTreeMap<String, f64> = stored.iter().map(|(n, v)| (n.to_string(), *v)).collect();
        assert_eq!(got, want);
    });
}

/// The sinks' refusals an answer names, by metric name: their messages.
/// `json` is the pushed batch (wire v1), whose points the answer indexes.
fn refusals(answer: &Value, json: &[u8]) -> BTreeMap<String, Vec<String>> {
    let batch: Value = serde_json::from_slice(json).expect("wire v1");
    let name_of = |point: u64| {
        let s = batch["points"][point as usize]["s"]
            .as_u64()
            .expect("series");
        batch["series"][s as usize]["n"]
            .as_str()
            .expect("name")
            .to_string()
    };
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in answer["sink_rejected"].as_array().into_iter().flatten() {
        for point in r["points"].as_array().into_iter().flatten() {
            out.entry(name_of(point.as_u64().expect("index")))
                .or_default()
                .push(r["message"].as_str().unwrap_or_default().to_string());
        }
    }
    out
}
