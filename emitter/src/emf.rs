//! CloudWatch Embedded Metric Format (EMF): the way out when a batch cannot
//! be pushed. Written to stdout in AWS Lambda, the documents become metrics
//! through CloudWatch Logs, so a batch the receiver never took is not lost.
//!
//! One document holds the points of one timestamp and one set of dimension
//! values, at most [`MAX_METRICS`] metrics with at most [`MAX_VALUES`] values
//! each; more values continue in further documents. EMF has no counts and no
//! statistic sets, so values are written out:
//! - a counter: its sum, one value;
//! - a distribution: each value as often as it occurred;
//! - a statistic set, and a gauge (which carries one): `count` values whose
//!   sum, minimum and maximum are the set's (`[min, max, m, m, ...]` with `m`
//!   the mean of the rest), so CloudWatch's SampleCount, Sum, Average,
//!   Minimum and Maximum come out as pushed. A set of more than
//!   [`MAX_EXPANDED`] samples is written as [`MAX_EXPANDED`] values with the
//!   same average, minimum and maximum, and its true count and sum in the
//!   properties `<name>:SampleCount` and `<name>:Sum` (likewise a
//!   distribution with more samples: its first [`MAX_EXPANDED`] are written).
//!
//! The batch id is in each document as the property `edgepushBatch`, so the
//! log tells which batches went this way.

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use edgepush_protocol::wire::{Batch, Kind, Point, Series};

/// Metrics per document (the EMF limit).
pub const MAX_METRICS: usize = 100;
/// Values per metric per document (the EMF limit).
pub const MAX_VALUES: usize = 100;
/// Values a single point is expanded to at most.
pub const MAX_EXPANDED: usize = 100_000;

/// A metric of one document group: its series and values so far.
struct Entry<'b> {
    series: &'b Series<'b>,
    values: Vec<f64>,
    /// True count and sum, when fewer values were written.
    true_count: Option<(f64, f64)>,
}

/// Points sharing a timestamp and dimension values. `level` separates two
/// series of the same name (say, a counter and a gauge), which cannot share
/// a document.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct GroupKey {
    t: i64,
    dims: Vec<(String, String)>,
    level: usize,
}

/// The EMF documents, one JSON text each, for every point of `batch`;
/// `properties` (say, the request id) are added to each document.
pub fn documents(batch: &Batch<'_>, properties: &[(&str, &str)]) -> Vec<String> {
    let mut groups: BTreeMap<GroupKey, Vec<(u32, Entry<'_>)>> = BTreeMap::new();
    for point in &batch.points {
        let Some(series) = batch.series.get(point.s as usize) else {
            continue;
        };
        let mut dims: Vec<(String, String)> = batch
            .dims
            .0
            .iter()
            .chain(series.d.0.iter())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        dims.sort();
        let t = batch.t.saturating_add(point.t);
        let (values, true_count) = values(series.k, point);
        let mut level = 0;
        loop {
            let key = GroupKey {
                t,
                dims: dims.clone(),
                level,
            };
            let entries = groups.entry(key).or_default();
            if let Some((_, entry)) = entries.iter_mut().find(|(s, _)| *s == point.s) {
                entry.values.extend_from_slice(&values);
                entry.true_count = match (entry.true_count, true_count) {
                    (None, None) => None,
                    (a, b) => {
                        let (c1, s1) = a.unwrap_or((0.0, 0.0));
                        let (c2, s2) = b.unwrap_or((0.0, 0.0));
                        Some((c1 + c2, s1 + s2))
                    }
                };
                break;
            }
            if entries.iter().any(|(_, e)| e.series.n == series.n) {
                level += 1;
                continue;
            }
            entries.push((
                point.s,
                Entry {
                    series,
                    values,
                    true_count,
                },
            ));
            break;
        }
    }

    let mut out = Vec::new();
    for (key, entries) in &groups {
        for metrics in entries.chunks(MAX_METRICS) {
            let rounds = metrics
                .iter()
                .map(|(_, e)| e.values.len().div_ceil(MAX_VALUES))
                .max()
                .unwrap_or(0);
            for round in 0..rounds {
                out.push(document(batch, key, metrics, round, properties));
            }
        }
    }
    out
}

fn document(
    batch: &Batch<'_>,
    key: &GroupKey,
    metrics: &[(u32, Entry<'_>)],
    round: usize,
    properties: &[(&str, &str)],
) -> String {
    // Member name -> JSON text. Written by hand, not through
    // `serde_json::Value`: this module is in the JavaScript package's wasm,
    // where a `Value` tree and its serializer cost 20 KB gzip'd. As a JSON
    // object would have it, a later member replaces an earlier one of the
    // same name, and members come out sorted by name.
    let mut doc: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in properties {
        doc.insert((*name).to_string(), string(value));
    }
    doc.insert("edgepushBatch".into(), string(&batch.id));
    for (name, value) in &key.dims {
        doc.insert(name.clone(), string(value));
    }
    let mut definitions = String::new();
    for (_, entry) in metrics {
        let start = round * MAX_VALUES;
        if start >= entry.values.len() {
            continue;
        }
        let end = (start + MAX_VALUES).min(entry.values.len());
        let name = entry.series.n.as_ref();
        definitions.push_str(if definitions.is_empty() { "{" } else { ",{" });
        definitions.push_str("\"Name\":");
        definitions.push_str(&string(name));
        if let Some(unit) = entry.series.u.as_deref().filter(|u| *u != "None") {
            definitions.push_str(",\"Unit\":");
            definitions.push_str(&string(unit));
        }
        if entry.series.r == Some(1) {
            definitions.push_str(",\"StorageResolution\":1");
        }
        definitions.push('}');
        let value = match &entry.values[start..end] {
            [one] => number(*one),
            many => {
                let texts: Vec<String> = many.iter().map(|v| number(*v)).collect();
                alloc::format!("[{}]", texts.join(","))
            }
        };
        doc.insert(name.to_string(), value);
        if round == 0
            && let Some((count, sum)) = entry.true_count
        {
            doc.insert(alloc::format!("{name}:SampleCount"), number(count));
            doc.insert(alloc::format!("{name}:Sum"), number(sum));
        }
    }
    let dimension_names: Vec<String> = key.dims.iter().map(|(k, _)| string(k)).collect();
    doc.insert(
        "_aws".into(),
        alloc::format!(
            "{{\"CloudWatchMetrics\":[{{\"Dimensions\":[[{}]],\"Metrics\":[{definitions}],\"Namespace\":{}}}],\"Timestamp\":{}}}",
            dimension_names.join(","),
            string(&batch.ns),
            key.t
        ),
    );
    let mut out = String::from("{");
    for (i, (name, value)) in doc.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&string(name));
        out.push(':');
        out.push_str(value);
    }
    out.push('}');
    out
}

/// `text` as a JSON string.
fn string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_default()
}

/// `v` as a JSON number, as edgepush writes numbers; `null` when it is not
/// finite (JSON has no such numbers).
fn number(v: f64) -> String {
    if v.is_finite() {
        edgepush_protocol::format_number(v, |text| text.to_string())
    } else {
        "null".into()
    }
}

/// The values a point is written as, and its true sample count when that
/// had to be capped.
fn values(kind: Kind, point: &Point) -> (Vec<f64>, Option<(f64, f64)>) {
    match (kind, point.st, point.x, &point.vs) {
        (Kind::Statistics | Kind::Gauge, Some(st), _, _) => statistic_values(st),
        (Kind::Counter | Kind::Gauge, _, Some(x), _) => (alloc::vec![x], None),
        (Kind::Distribution, _, _, Some(vs)) => {
            let count = |i: usize| point.cs.as_ref().and_then(|c| c.get(i)).copied();
            let mut out = Vec::new();
            let (mut capped, mut total, mut sum) = (false, 0.0, 0.0);
            for (i, v) in vs.iter().enumerate() {
                let n = round(count(i).unwrap_or(1.0)).max(1.0);
                let room = MAX_EXPANDED.saturating_sub(out.len());
                let take = if n > room as f64 { room } else { n as usize };
                capped |= take as f64 != n;
                total += n;
                sum += n * v;
                out.extend(core::iter::repeat_n(*v, take));
            }
            (out, capped.then_some((total, sum)))
        }
        _ => (Vec::new(), None),
    }
}

/// `x` rounded half away from zero, as `f64::round` (which `no_std` lacks).
fn round(x: f64) -> f64 {
    // From 2^52 on every f64 is whole; infinities and NaN stay as they are.
    if x.is_nan() || x.abs() >= 4_503_599_627_370_496.0 {
        return x;
    }
    let whole = x as i64 as f64;
    match x - whole {
        f if f >= 0.5 => whole + 1.0,
        f if f <= -0.5 => whole - 1.0,
        _ => whole,
    }
}

/// `count` values with the set's sum, minimum and maximum (above
/// [`MAX_EXPANDED`], its average, minimum and maximum).
fn statistic_values([count, sum, min, max]: [f64; 4]) -> (Vec<f64>, Option<(f64, f64)>) {
    let n = round(count).max(1.0);
    if n <= 1.0 {
        return (alloc::vec![sum], None);
    }
    let written = if n > MAX_EXPANDED as f64 {
        MAX_EXPANDED
    } else {
        n as usize
    };
    let mut out = Vec::with_capacity(written);
    out.push(min);
    out.push(max);
    if written > 2 {
        // The rest's value gives the written values the set's sum (or, capped,
        // its average).
        let k = written as f64;
        let rest = ((sum / n * k - min - max) / (k - 2.0)).clamp(min, max);
        out.extend(core::iter::repeat_n(rest, written - 2));
    }
    (out, (written as f64 != n).then_some((count, sum)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::borrow::Cow;
    use alloc::vec;
    use edgepush_protocol::wire::Dimensions;
    use serde_json::{Value, json};

    #[test]
    fn round_is_f64_round() {
        for x in [
            0.0,
            -0.0,
            -0.3,
            0.49999999999999994,
            0.5,
            1.5,
            2.5,
            -0.5,
            -1.5,
            2.4,
            1e15 + 0.5,
            4.6e18,
            1e300,
            f64::INFINITY,
            f64::MAX,
            f64::MIN_POSITIVE,
        ] {
            // Equal as numbers: a zero may lose its sign (counts are then
            // raised to at least 1).
            assert_eq!(super::round(x), x.round(), "{x}");
        }
        assert!(super::round(f64::NAN).is_nan());
    }

    fn series(n: &'static str, k: Kind, d: &[(&'static str, &'static str)]) -> Series<'static> {
        Series {
            n: Cow::Borrowed(n),
            k,
            u: Some(Cow::Borrowed("Milliseconds")),
            d: Dimensions(
                d.iter()
                    .map(|(a, b)| (Cow::Borrowed(*a), Cow::Borrowed(*b)))
                    .collect(),
            ),
            r: None,
        }
    }

    fn batch(series: Vec<Series<'static>>, points: Vec<Point>) -> Batch<'static> {
        Batch {
            v: 1,
            id: Cow::Borrowed("b-1"),
            ns: Cow::Borrowed("Shop"),
            t: 1_700_000_000_000,
            dims: Dimensions(vec![(Cow::Borrowed("service"), Cow::Borrowed("api"))]),
            series,
            points,
        }
    }

    fn parse(docs: &[String]) -> Vec<Value> {
        docs.iter()
            .map(|d| serde_json::from_str(d).expect("valid JSON"))
            .collect()
    }

    /// Sum, count, min and max of `name`'s values over all documents.
    fn stats(docs: &[Value], name: &str) -> (f64, usize, f64, f64) {
        let mut values = Vec::new();
        for doc in docs {
            match &doc[name] {
                Value::Array(a) => values.extend(a.iter().filter_map(Value::as_f64)),
                Value::Number(n) => values.extend(n.as_f64()),
                _ => {}
            }
        }
        let sum = values.iter().sum();
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (sum, values.len(), min, max)
    }

    #[test]
    fn a_document_follows_the_specification() {
        let b = batch(
            vec![series("orders", Kind::Counter, &[("route", "/buy")])],
            vec![Point {
                s: 0,
                x: Some(3.0),
                ..Point::default()
            }],
        );
        let docs = parse(&documents(&b, &[("requestId", "r-1")]));
        assert_eq!(
            docs,
            vec![json!({
                "_aws": {
                    "Timestamp": 1_700_000_000_000_i64,
                    "CloudWatchMetrics": [{
                        "Namespace": "Shop",
                        "Dimensions": [["route", "service"]],
                        "Metrics": [{"Name": "orders", "Unit": "Milliseconds"}],
                    }],
                },
                "route": "/buy",
                "service": "api",
                "orders": 3,
                "requestId": "r-1",
                "edgepushBatch": "b-1",
            })]
        );
    }

    #[test]
    fn text_is_escaped_and_a_dimension_replaces_a_property_of_its_name() {
        let b = batch(
            vec![series(
                "la\"tency\\",
                Kind::Counter,
                &[("route", "a\"b\n\u{1}✓")],
            )],
            vec![Point {
                s: 0,
                x: Some(0.1),
                ..Point::default()
            }],
        );
        let docs = parse(&documents(&b, &[("route", "from a property")]));
        assert_eq!(docs[0]["route"], "a\"b\n\u{1}✓");
        assert_eq!(docs[0]["la\"tency\\"], 0.1);
        assert_eq!(
            docs[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"],
            "la\"tency\\"
        );
    }

    #[test]
    fn distributions_repeat_values_and_split_at_100() {
        let b = batch(
            vec![series("latency", Kind::Distribution, &[])],
            vec![Point {
                s: 0,
                vs: Some(vec![1.0, 2.0, 3.0]),
                cs: Some(vec![100.0, 50.0, 1.0]),
                ..Point::default()
            }],
        );
        let docs = parse(&documents(&b, &[]));
        assert_eq!(docs.len(), 2);
        assert!(docs.iter().all(|d| {
            d["latency"]
                .as_array()
                .is_some_and(|a| a.len() <= MAX_VALUES)
        }));
        assert_eq!(stats(&docs, "latency"), (203.0, 151, 1.0, 3.0));
    }

    #[test]
    fn statistic_sets_keep_count_sum_min_and_max() {
        let b = batch(
            vec![
                series("size", Kind::Statistics, &[]),
                series("queue", Kind::Gauge, &[]),
            ],
            vec![
                Point {
                    s: 0,
                    st: Some([4.0, 10.0, 1.0, 4.0]),
                    ..Point::default()
                },
                Point {
                    s: 1,
                    x: Some(7.0),
                    st: Some([1.0, 7.0, 7.0, 7.0]),
                    ..Point::default()
                },
            ],
        );
        let docs = parse(&documents(&b, &[]));
        assert_eq!(docs.len(), 1);
        assert_eq!(stats(&docs, "size"), (10.0, 4, 1.0, 4.0));
        assert_eq!(stats(&docs, "queue"), (7.0, 1, 7.0, 7.0));
    }

    #[test]
    fn at_most_100_metrics_per_document_and_same_names_apart() {
        let mut all = Vec::new();
        let mut points = Vec::new();
        let names: Vec<&'static str> = (0..150)
            .map(|i| &*alloc::boxed::Box::leak(alloc::format!("m{i}").into_boxed_str()))
            .collect();
        for (i, name) in names.iter().enumerate() {
            all.push(series(name, Kind::Counter, &[]));
            points.push(Point {
                s: i as u32,
                x: Some(1.0),
                ..Point::default()
            });
        }
        // The same name as another kind, and at another time.
        all.push(series("m0", Kind::Gauge, &[]));
        points.push(Point {
            s: 150,
            x: Some(5.0),
            ..Point::default()
        });
        points.push(Point {
            s: 0,
            t: 1000,
            x: Some(2.0),
            ..Point::default()
        });
        let docs = parse(&documents(&batch(all, points), &[]));
        for doc in &docs {
            let metrics = doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                .as_array()
                .map_or(0, Vec::len);
            assert!((1..=MAX_METRICS).contains(&metrics));
        }
        assert_eq!(docs.len(), 4);
        assert_eq!(stats(&docs, "m0"), (8.0, 3, 1.0, 5.0));
        assert_eq!(stats(&docs, "m149"), (1.0, 1, 1.0, 1.0));
    }

    #[test]
    fn huge_sets_keep_average_min_max_and_say_count_and_sum() {
        let b = batch(
            vec![series("size", Kind::Statistics, &[])],
            vec![Point {
                s: 0,
                st: Some([1e9, 2e9, 0.0, 5.0]),
                ..Point::default()
            }],
        );
        let docs = parse(&documents(&b, &[]));
        let (sum, n, min, max) = stats(&docs, "size");
        assert!((sum / n as f64 - 2.0).abs() < 1e-6, "{sum}");
        assert_eq!((n, min, max), (MAX_EXPANDED, 0.0, 5.0));
        assert_eq!(docs[0]["size:SampleCount"].as_f64(), Some(1e9));
        assert_eq!(docs[0]["size:Sum"].as_f64(), Some(2e9));
    }
}
