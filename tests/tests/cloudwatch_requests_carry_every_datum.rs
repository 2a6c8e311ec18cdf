//! Everything sent to CloudWatch, read back datum by datum: a recording
//! relay in front of `fakecloud` keeps every `PutMetricData` request the
//! receiver sends, on the SDK path (rpc-v2-cbor, the native default) and
//! the signed-JSON path (what the Worker sends), and an independent decoder
//! (generic JSON and CBOR values from `serde_json` and `ciborium`, none of
//! the project's code) checks the datums against the pushes: `Value`,
//! `Values`/`Counts` (at most 150 a datum), `StatisticValues`,
//! `StorageResolution`, `Unit`, dimensions and timestamps to the
//! millisecond, nothing missing and nothing more. The emulator must take
//! every request.
//!
//! The pushes are generated across the valid space (proptest): every kind
//! in each of its forms (a counter's sum or merged statistics, a gauge's
//! value with or without the statistics of every value set, a
//! distribution's values and counts, fractional counts, past one datum's
//! 150 values, or its statistics; statistic sets), units, both
//! resolutions, common and series dimensions with any printable text,
//! several points of a series, timestamps across CloudWatch's window.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use edgepush_receiver::limits::Limits;
use edgepush_receiver::sink::cloudwatch::Protocol;
use edgepush_tests::aws::{Fakecloud, native_sinks, sink_config};
use edgepush_tests::{Receiver, Relay, post};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};

/// What identifies a datum: name, dimensions (sorted), unit, storage
/// resolution, timestamp in milliseconds.
type Key = (String, Vec<(String, String)>, String, i64, i64);

/// What a datum carries, comparable: a value or a statistic set (as bits,
/// -0 read as 0).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Measure {
    Value(u64),
    Statistics([u64; 4]),
}

/// The datums of some requests: distributions' values and counts merged
/// per key (a distribution is cut into datums of at most 150 values), the
/// rest as a sorted list.
#[derive(Debug, Default, PartialEq)]
struct Datums {
    values: BTreeMap<Key, BTreeMap<u64, f64>>,
    others: Vec<(Key, Measure)>,
}

fn bits(v: f64) -> u64 {
    (v + 0.0).to_bits()
}

impl Datums {
    fn add_values(&mut self, key: Key, values: &[f64], counts: &[f64]) {
        let table = self.values.entry(key).or_default();
        for (v, c) in values.iter().zip(counts) {
            *table.entry(bits(*v)).or_insert(0.0) += c;
        }
    }

    fn sorted(mut self) -> Self {
        self.others.sort();
        self
    }
}

/// One generated series: kind, unit, resolution, dimensions, and its
/// points (timestamp offset and content, in wire v1 terms).
#[derive(Clone, Debug)]
struct GenSeries {
    kind: &'static str,
    unit: Option<&'static str>,
    high: Option<bool>,
    dims: BTreeMap<String, String>,
    points: Vec<(i64, Value)>,
}

/// Distinct values, exact in binary, and positive counts (fractional or
/// whole).
fn values_and_counts() -> impl Strategy<Value = (Vec<f64>, Vec<f64>)> {
    proptest::collection::btree_set(-4_000_000i64..4_000_000, 1..400).prop_flat_map(|set| {
        let values: Vec<f64> = set.iter().map(|k| *k as f64 / 8.0).collect();
        let n = values.len();
        (
            Just(values),
            proptest::collection::vec(prop_oneof![1u32..6, 1u32..2000], n),
            any::<bool>(),
        )
            .prop_map(|(values, counts, halves)| {
                let counts = counts
                    .iter()
                    .map(|c| {
                        if halves {
                            f64::from(*c) / 2.0
                        } else {
                            f64::from(*c)
                        }
                    })
                    .collect();
                (values, counts)
            })
    })
}

/// A consistent statistic set `[count, sum, min, max]` over some values.
fn statistics() -> impl Strategy<Value = (Vec<f64>, f64)> {
    (
        proptest::collection::vec(-1_000_000i64..1_000_000, 1..20),
        1u32..100,
    )
        .prop_map(|(vs, extra)| {
            (
                vs.iter().map(|v| *v as f64 / 4.0).collect(),
                f64::from(extra),
            )
        })
}

fn set_of(values: &[f64], extra: f64) -> [f64; 4] {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let count = values.len() as f64 * extra;
    [count, values.iter().sum::<f64>() * extra, min, max]
}

fn point(kind: &'static str) -> BoxedStrategy<Value> {
    let x = (-1_000_000_000_000i64..1_000_000_000_000).prop_map(|v| v as f64 / 1024.0);
    match kind {
        "c" => prop_oneof![
            x.prop_map(|x| json!({"x": x})),
            statistics().prop_map(|(vs, e)| json!({"st": set_of(&vs, e)})),
        ]
        .boxed(),
        "g" => prop_oneof![
            x.prop_map(|x| json!({"x": x})),
            statistics().prop_map(|(vs, _)| json!({"x": vs[vs.len() - 1], "st": set_of(&vs, 1.0)})),
        ]
        .boxed(),
        "d" => prop_oneof![
            3 => values_and_counts().prop_map(|(vs, cs)| json!({"vs": vs, "cs": cs})),
            1 => statistics().prop_map(|(vs, e)| json!({"st": set_of(&vs, e)})),
        ]
        .boxed(),
        _ => statistics()
            .prop_map(|(vs, e)| json!({"st": set_of(&vs, e)}))
            .boxed(),
    }
}

const UNITS: &[&str] = &[
    "Seconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes/Second",
    "Percent",
    "Count",
    "Count/Second",
    "None",
];

fn series() -> impl Strategy<Value = GenSeries> {
    (
        prop_oneof![Just("c"), Just("g"), Just("d"), Just("s")],
        proptest::option::of(proptest::sample::select(UNITS)),
        proptest::option::of(any::<bool>()),
        proptest::collection::btree_map(
            "s[a-z0-9 .:/-]{0,8}",
            "[A-Za-z0-9 .,:=/é東\"#-]{1,12}",
            0..4,
        ),
    )
        .prop_flat_map(|(kind, unit, high, dims)| {
            (
                Just((kind, unit, high, dims)),
                proptest::collection::vec((-7_200_000i64..3_600_000, point(kind)), 1..4),
            )
        })
        .prop_map(|((kind, unit, high, dims), points)| GenSeries {
            kind,
            unit,
            high,
            dims,
            points,
        })
}

/// A batch: common dimensions, series with names of any printable text.
fn batch() -> impl Strategy<Value = (BTreeMap<String, String>, Vec<(String, GenSeries)>)> {
    (
        proptest::collection::btree_map("c[a-z0-9 ]{0,6}", "[A-Za-z0-9 ./é-]{1,10}", 0..3),
        proptest::collection::vec(("[A-Za-z][A-Za-z0-9 ._/:#é東\"-]{0,15}", series()), 1..6),
    )
}

/// The wire v1 body of a generated batch, and the datums CloudWatch must
/// receive for it (`docs/wire-format.md`, `docs/cloudwatch.md`): worked
/// out here from the generated values, not by the receiver's code.
fn body_and_datums(
    namespace: &str,
    base: i64,
    common: &BTreeMap<String, String>,
    all: &[(String, GenSeries)],
) -> (Vec<u8>, Datums) {
    let mut series = Vec::new();
    let mut points = Vec::new();
    let mut want = Datums::default();
    for (i, (name, s)) in all.iter().enumerate() {
        // One name per series: a number keeps generated names apart.
        let name = format!("{name} {i}");
        let mut entry = json!({"n": name, "k": s.kind, "d": s.dims});
        if let Some(u) = s.unit {
            entry["u"] = json!(u);
        }
        let resolution = match s.high {
            Some(true) => {
                entry["r"] = json!(1);
                1
            }
            Some(false) => {
                entry["r"] = json!(60);
                60
            }
            None => 60,
        };
        series.push(entry);
        let mut dims: Vec<(String, String)> = common
            .iter()
            .chain(&s.dims)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        dims.sort();
        for (offset, content) in &s.points {
            let mut p = content.clone();
            p["s"] = json!(i);
            p["t"] = json!(offset);
            points.push(p);
            let key: Key = (
                name.clone(),
                dims.clone(),
                s.unit.unwrap_or("None").to_string(),
                resolution,
                base + offset,
            );
            let f = |v: &Value| v.as_f64().expect("a number");
            if let Some(st) = content.get("st") {
                let st: Vec<f64> = st.as_array().expect("st").iter().map(f).collect();
                want.others.push((
                    key,
                    Measure::Statistics([bits(st[0]), bits(st[1]), bits(st[2]), bits(st[3])]),
                ));
            } else if let Some(vs) = content.get("vs") {
                let vs: Vec<f64> = vs.as_array().expect("vs").iter().map(f).collect();
                let cs: Vec<f64> = content["cs"]
                    .as_array()
                    .expect("cs")
                    .iter()
                    .map(f)
                    .collect();
                want.add_values(key, &vs, &cs);
            } else {
                want.others
                    .push((key, Measure::Value(bits(f(&content["x"])))));
            }
        }
    }
    let body = json!({
        "v": 1, "id": namespace.replace('/', "-"), "ns": namespace, "t": base,
        "dims": common, "series": series, "points": points,
    });
    (body.to_string().into_bytes(), want.sorted())
}

/// A CBOR value as the JSON value it stands for; an epoch-time tag (1) is
/// its number of seconds.
fn cbor_to_json(v: ciborium::Value) -> Value {
    use ciborium::Value as C;
    match v {
        C::Integer(i) => json!(i64::try_from(i128::from(i)).expect("a 64-bit integer")),
        C::Float(f) => json!(f),
        C::Text(s) => json!(s),
        C::Bool(b) => json!(b),
        C::Null => Value::Null,
        C::Array(items) => Value::Array(items.into_iter().map(cbor_to_json).collect()),
        C::Map(pairs) => Value::Object(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into_text().expect("text keys"), cbor_to_json(v)))
                .collect(),
        ),
        C::Tag(1, inner) => cbor_to_json(*inner),
        other => panic!("unexpected CBOR item {other:?}"),
    }
}

/// Decodes the `PutMetricData` requests of `namespace` among `bodies`
/// (JSON or CBOR, told apart by their first byte) into datums.
fn read(bodies: &[Vec<u8>], namespace: &str) -> Result<Datums, String> {
    let mut got = Datums::default();
    for body in bodies {
        let request: Value = if body.first() == Some(&b'{') {
            serde_json::from_slice(body).map_err(|e| format!("JSON: {e}"))?
        } else {
            cbor_to_json(ciborium::from_reader(&body[..]).map_err(|e| format!("CBOR: {e}"))?)
        };
        if request["Namespace"] != namespace {
            continue;
        }
        for d in request["MetricData"].as_array().ok_or("no MetricData")? {
            let mut dims: Vec<(String, String)> = d["Dimensions"]
                .as_array()
                .map(|all| {
                    all.iter()
                        .map(|x| {
                            (
                                x["Name"].as_str().unwrap_or_default().to_string(),
                                x["Value"].as_str().unwrap_or_default().to_string(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            dims.sort();
            let seconds = d["Timestamp"].as_f64().ok_or("no Timestamp")?;
            let key: Key = (
                d["MetricName"].as_str().ok_or("no MetricName")?.to_string(),
                dims,
                d.get("Unit")
                    .and_then(Value::as_str)
                    .unwrap_or("None")
                    .to_string(),
                d.get("StorageResolution")
                    .and_then(Value::as_i64)
                    .unwrap_or(60),
                (seconds * 1000.0).round() as i64,
            );
            let numbers = |name: &str| -> Vec<f64> {
                d.get(name)
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_f64).collect())
                    .unwrap_or_default()
            };
            let carried = ["Value", "Values", "StatisticValues"]
                .iter()
                .filter(|k| d.get(**k).is_some())
                .count();
            if carried != 1 {
                return Err(format!(
                    "a datum carries {carried} of Value, Values, StatisticValues: {d}"
                ));
            }
            if let Some(st) = d.get("StatisticValues") {
                let f = |k: &str| st[k].as_f64().ok_or(format!("no {k}"));
                got.others.push((
                    key,
                    Measure::Statistics([
                        bits(f("SampleCount")?),
                        bits(f("Sum")?),
                        bits(f("Minimum")?),
                        bits(f("Maximum")?),
                    ]),
                ));
            } else if d.get("Values").is_some() {
                let (values, counts) = (numbers("Values"), numbers("Counts"));
                if values.len() != counts.len() || values.is_empty() || values.len() > 150 {
                    return Err(format!(
                        "{} values and {} counts in one datum",
                        values.len(),
                        counts.len()
                    ));
                }
                got.add_values(key, &values, &counts);
            } else {
                let v = d["Value"].as_f64().ok_or("Value is no number")?;
                got.others.push((key, Measure::Value(bits(v))));
            }
        }
    }
    Ok(got.sorted())
}

#[test]
fn every_datum_reaches_cloudwatch_as_pushed_on_both_paths() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fakecloud = Fakecloud::start(dir.path());
    let paths: Vec<(&str, Relay, Receiver)> = [("sdk", Protocol::Sdk), ("json", Protocol::Json)]
        .into_iter()
        .map(|(name, protocol)| {
            let relay = Relay::start(&fakecloud.url);
            let receiver = Receiver::start(
                native_sinks(&[sink_config(&relay.url, protocol)]),
                Limits::default(),
                vec![],
            );
            (name, relay, receiver)
        })
        .collect();
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    // Offsets reach 2 h back and 1 h ahead: the window CloudWatch takes is
    // 14 days back and 2 h ahead.
    let base = now_ms - 3_600_000;
    let case = std::cell::Cell::new(0);
    let (datums, requests) = (std::cell::Cell::new(0), std::cell::Cell::new(0));
    let mut runner = TestRunner::new(Config {
        cases: 64,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&batch(), |(common, all)| {
        case.set(case.get() + 1);
        for (path, relay, receiver) in &paths {
            let namespace = format!("Datums/{path}/{}", case.get());
            let (body, want) = body_and_datums(&namespace, base, &common, &all);
            let before = relay.bodies().len();
            let (status, answer) = post(
                &format!("{}/v1/metrics", receiver.url),
                &[("content-type", "application/vnd.edgepush.v1+json")],
                &body,
            );
            prop_assert_eq!(status, 202, "{}: {}", path, answer);
            let points: usize = all.iter().map(|(_, s)| s.points.len()).sum();
            prop_assert_eq!(&answer["accepted"], &json!(points), "{}: {}", path, answer);
            prop_assert!(
                answer["rejected"].as_array().is_none_or(Vec::is_empty),
                "{}: {}",
                path,
                answer
            );
            // The answer comes after the sink took the requests.
            let bodies = relay.bodies();
            let got = read(&bodies[before..], &namespace).map_err(TestCaseError::fail)?;
            prop_assert_eq!(&got, &want, "{} path", path);
            datums.set(datums.get() + want.others.len() + want.values.len());
            requests.set(requests.get() + bodies.len() - before);
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    eprintln!(
        "{} datums in {} requests checked",
        datums.get(),
        requests.get()
    );
    assert!(
        requests.get() >= 48,
        "every case sent requests on both paths"
    );
}
