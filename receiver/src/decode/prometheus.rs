//! Prometheus text format pushed the Pushgateway way:
//! `PUT`/`POST /metrics/job/<job>{/<label>/<value>}`.
//!
//! Mapping (see `docs/ingest-formats.md`): the grouping labels of the path
//! (`job` first) and each sample's labels are dimensions; counters become
//! counters, gauges and untyped samples gauges, a histogram one
//! distribution point (each bucket's observations at the bucket's middle,
//! so percentiles are within half a bucket of the truth) and its `_sum`
//! and `_count` as counters (the exact sum), a summary's
//! quantiles gauges with a `quantile` dimension and its `_sum` and `_count`
//! gauges. A sample without a timestamp takes the receiver's clock. Each
//! push is forwarded once: the receiver keeps nothing, unlike a Pushgateway.
//!
//! About 550 lines in one file: the text format's parser, its grouping
//! path and the mapping to the model are one format's decoder, as the
//! other formats' are.

use std::collections::HashMap;

use edgepush_protocol::Unit;
use edgepush_protocol::wire::Kind;

use super::Decoded;
use super::build::{self, Builder, Sample};
use crate::error::{Error, Result};
use crate::limits::Limits;
use crate::model::Value;

/// The grouping key of a push: the path's labels, `job` first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grouping {
    /// Label names and values.
    pub labels: Vec<(String, String)>,
}

impl Grouping {
    /// Reads the path after `/metrics`: `/job/<job>{/<label>/<value>}`,
    /// values percent-encoded or, with `@base64` after the label name,
    /// base64url-encoded (how clients send values holding `/`).
    pub fn from_path(rest: &str) -> Result<Self> {
        let bad = |message: String| Error::new(400, "invalid_grouping_key", message).field("path");
        let mut segments = rest.trim_start_matches('/').split('/');
        let mut labels = Vec::new();
        while let Some(name) = segments.next() {
            if name.is_empty() && labels.is_empty() {
                break;
            }
            let value = segments
                .next()
                .ok_or_else(|| bad(format!("label {name:?} has no value in the path")))?;
            let name = percent(name).map_err(&bad)?;
            let (name, value) = match name.strip_suffix("@base64") {
                Some(name) => (name.to_string(), base64url(value).map_err(&bad)?),
                None => (name, percent(value).map_err(&bad)?),
            };
            if labels.is_empty() && name != "job" {
                return Err(bad("the path must start with /metrics/job/<job>".into()));
            }
            if !is_label_name(&name) {
                return Err(bad(format!("{name:?} is not a label name")));
            }
            if labels.iter().any(|(n, _)| *n == name) {
                return Err(bad(format!("label {name:?} is given twice")));
            }
            if name == "job" && value.is_empty() {
                return Err(bad("job must not be empty".into()));
            }
            labels.push((name, value));
        }
        if labels.is_empty() {
            return Err(bad("the path must start with /metrics/job/<job>".into()));
        }
        Ok(Grouping { labels })
    }
}

fn percent(s: &str) -> std::result::Result<String, String> {
    percent_decode(s).ok_or_else(|| format!("{s:?} is not valid percent-encoded UTF-8"))
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn base64url(s: &str) -> std::result::Result<String, String> {
    use base64::Engine as _;
    let trimmed = s.trim_end_matches('=');
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(trimmed)
        .map_err(|e| format!("{s:?} is not base64url: {e}"))?;
    String::from_utf8(bytes).map_err(|_| format!("{s:?} does not decode to UTF-8"))
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Is this `Content-Type` the Prometheus text format? `text/plain` (any
/// version) or none.
pub fn accepts(content_type: Option<&str>) -> bool {
    let media = content_type
        .and_then(|c| c.split(';').next())
        .unwrap_or("")
        .trim();
    media.is_empty() || media.eq_ignore_ascii_case("text/plain")
}

/// One sample line, parsed.
#[derive(Clone, Debug, PartialEq)]
struct Line {
    index: usize,
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
    timestamp_ms: Option<i64>,
}

/// Parses the sample line at `index`: `name{label="value",...} value [timestamp]`.
fn parse_sample(index: usize, line: &str) -> std::result::Result<Line, String> {
    let end = line
        .find(|c: char| c == '{' || c.is_ascii_whitespace())
        .unwrap_or(line.len());
    let name = &line[..end];
    if !is_metric_name(name) {
        return Err(format!("{name:?} is not a metric name"));
    }
    let mut rest = line[end..].trim_start_matches([' ', '\t']);
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        rest = after;
        loop {
            rest = rest.trim_start_matches([' ', '\t']);
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let eq = rest.find('=').ok_or("a label has no '='")?;
            let label = rest[..eq].trim_end_matches([' ', '\t']);
            if !is_label_name(label) {
                return Err(format!("{label:?} is not a label name"));
            }
            rest = rest[eq + 1..].trim_start_matches([' ', '\t']);
            rest = rest
                .strip_prefix('"')
                .ok_or_else(|| format!("the value of label {label:?} is not quoted"))?;
            let mut value = String::new();
            let mut chars = rest.char_indices();
            let close = loop {
                match chars.next() {
                    None => return Err(format!("the value of label {label:?} is not closed")),
                    Some((i, '"')) => break i,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, '\\')) => value.push('\\'),
                        Some((_, '"')) => value.push('"'),
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, c)) => {
                            return Err(format!(
                                "label {label:?} has the escape \\{c}; only \\\\, \\\" and \\n exist"
                            ));
                        }
                        None => return Err(format!("the value of label {label:?} is not closed")),
                    },
                    Some((_, c)) => value.push(c),
                }
            };
            if labels.iter().any(|(n, _): &(String, String)| n == label) {
                return Err(format!("label {label:?} is given twice"));
            }
            labels.push((label.to_string(), value));
            rest = rest[close + 1..].trim_start_matches([' ', '\t']);
            if let Some(after) = rest.strip_prefix(',') {
                rest = after;
            } else if !rest.starts_with('}') {
                return Err("labels must be separated by ','".into());
            }
        }
    }
    let mut parts = rest.split_ascii_whitespace();
    let value = parts.next().ok_or("the sample has no value")?;
    let value = parse_value(value).ok_or_else(|| format!("{value:?} is not a number"))?;
    let timestamp = match parts.next() {
        None => None,
        Some(t) => Some(
            t.parse::<i64>()
                .map_err(|_| format!("timestamp {t:?} is not whole milliseconds"))?,
        ),
    };
    if let Some(extra) = parts.next() {
        return Err(format!("unexpected {extra:?} after the timestamp"));
    }
    Ok(Line {
        index,
        name: name.to_string(),
        labels,
        value,
        timestamp_ms: timestamp,
    })
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        // Rust also reads "inf", "infinity" and "nan": Prometheus does not.
        _ if s
            .bytes()
            .any(|b| b.is_ascii_alphabetic() && b != b'e' && b != b'E') =>
        {
            None
        }
        _ => s.parse().ok(),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    Counter,
    Gauge,
    Histogram,
    Summary,
    Untyped,
}

/// Decodes a push body (already decompressed) under `grouping`.
pub fn decode(
    body: &[u8],
    grouping: &Grouping,
    namespace: &str,
    now_ms: i64,
    limits: &Limits,
) -> Result<Decoded> {
    build::check_namespace(namespace, "namespace")?;
    let text = build::text(body)?;
    let mut b = Builder::new(limits, now_ms);
    let mut types: HashMap<&str, Family> = HashMap::new();
    let mut lines = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.split_ascii_whitespace();
            if words.next() == Some("TYPE") {
                let (Some(name), Some(kind)) = (words.next(), words.next()) else {
                    b.refuse(
                        i,
                        None,
                        format!("lines[{i}]"),
                        "# TYPE needs a name and a type",
                    )?;
                    continue;
                };
                let family = match kind {
                    "counter" => Family::Counter,
                    "gauge" => Family::Gauge,
                    "histogram" => Family::Histogram,
                    "summary" => Family::Summary,
                    "untyped" => Family::Untyped,
                    other => {
                        b.refuse(
                            i,
                            Some(name),
                            format!("lines[{i}]"),
                            format!("unknown type {other:?}"),
                        )?;
                        continue;
                    }
                };
                types.insert(name, family);
            }
            continue;
        }
        match parse_sample(i, line) {
            Ok(sample) => lines.push(sample),
            Err(reason) => b.refuse(i, None, format!("lines[{i}]"), reason)?,
        }
    }
    let mut stamped = false;
    let mut histograms: Vec<Histogram> = Vec::new();
    let mut open: HashMap<(String, Vec<(String, String)>), usize> = HashMap::new();
    for line in lines {
        let at = format!("lines[{}]", line.index);
        // Which family the sample belongs to, and its role in it.
        let family_of = |suffix: &str| {
            line.name
                .strip_suffix(suffix)
                .and_then(|base| types.get(base).map(|f| (base.to_string(), *f)))
        };
        let (family, role) = match types.get(line.name.as_str()) {
            Some(f) => (*f, Role::Value),
            // A counter's samples may carry `_total` after the family's name.
            None if family_of("_total").is_some_and(|(_, f)| f == Family::Counter) => {
                (Family::Counter, Role::Value)
            }
            None => match family_of("_bucket") {
                Some((base, Family::Histogram)) => (Family::Histogram, Role::Bucket(base)),
                _ => match family_of("_sum").or_else(|| family_of("_count")) {
                    Some((base, f @ Family::Histogram)) => (
                        f,
                        if line.name.ends_with("_sum") {
                            Role::Sum(base)
                        } else {
                            Role::Count(base)
                        },
                    ),
                    _ => (Family::Untyped, Role::Value),
                },
            },
        };
        let mut dimensions = grouping.labels.clone();
        let mut conflict = None;
        let mut le = None;
        for (name, value) in line.labels {
            if matches!(role, Role::Bucket(_)) && name == "le" {
                le = Some(value);
                continue;
            }
            if let Some((_, given)) = grouping.labels.iter().find(|(n, _)| *n == name) {
                if *given != value {
                    conflict = Some(format!(
                        "label {name}={value:?} contradicts the grouping key's {name}={given:?}"
                    ));
                }
                continue;
            }
            // An empty value is an absent label in Prometheus.
            if !value.is_empty() {
                dimensions.push((name, value));
            }
        }
        if let Some(reason) = conflict {
            b.refuse(line.index, Some(&line.name), at, reason)?;
            continue;
        }
        let timestamp_ms = line.timestamp_ms.unwrap_or_else(|| {
            stamped = true;
            now_ms
        });
        let (kind, value) = match (family, &role) {
            (Family::Counter, _) => (Kind::Counter, Value::Counter(line.value)),
            (Family::Histogram, Role::Value) => {
                b.refuse(
                    line.index,
                    Some(&line.name),
                    at,
                    "a histogram's samples are <name>_bucket, <name>_sum and <name>_count",
                )?;
                continue;
            }
            (Family::Histogram, Role::Bucket(base) | Role::Sum(base) | Role::Count(base)) => {
                let key = (base.clone(), dimensions.clone());
                let h = *open.entry(key).or_insert_with(|| {
                    histograms.push(Histogram {
                        name: base.clone(),
                        dimensions: dimensions.clone(),
                        first_line: line.index,
                        timestamp_ms,
                        buckets: Vec::new(),
                        count: None,
                        problem: None,
                    });
                    histograms.len() - 1
                });
                let h = &mut histograms[h];
                match role {
                    Role::Bucket(_) => match le.as_deref().map(parse_value) {
                        Some(Some(bound)) if !bound.is_nan() => h.buckets.push((bound, line.value)),
                        _ => {
                            h.problem.get_or_insert(format!(
                                "{at}: a bucket without a numeric le label"
                            ));
                        }
                    },
                    Role::Count(_) => h.count = Some(line.value),
                    _ => {}
                }
                if matches!(role, Role::Bucket(_)) {
                    continue;
                }
                // `_sum` and `_count` are forwarded as counters too: the
                // distribution's sum is only as exact as its buckets.
                (Kind::Counter, Value::Counter(line.value))
            }
            (Family::Summary, _) => {
                if let Some((i, _)) = dimensions
                    .iter()
                    .enumerate()
                    .find(|(_, (n, _))| n == "quantile")
                {
                    // The quantile is a dimension of the summary's gauge.
                    let q = dimensions.remove(i);
                    dimensions.push(q);
                }
                (
                    Kind::Gauge,
                    Value::Gauge {
                        last: line.value,
                        stats: None,
                    },
                )
            }
            (Family::Gauge | Family::Untyped, _) => (
                Kind::Gauge,
                Value::Gauge {
                    last: line.value,
                    stats: None,
                },
            ),
        };
        b.add(
            line.index,
            &at,
            Sample {
                name: line.name,
                kind,
                unit: Unit::None,
                dimensions,
                timestamp_ms,
                value,
            },
        )?;
    }
    for mut h in histograms {
        let at = format!("lines[{}]", h.first_line);
        let (name, dimensions) = (
            std::mem::take(&mut h.name),
            std::mem::take(&mut h.dimensions),
        );
        let (line, timestamp_ms) = (h.first_line, h.timestamp_ms);
        match h.distribution() {
            Ok(Some(value)) => b.add(
                line,
                &at,
                Sample {
                    name,
                    kind: Kind::Distribution,
                    unit: Unit::None,
                    dimensions,
                    timestamp_ms,
                    value,
                },
            )?,
            // No observations: nothing to forward.
            Ok(None) => {}
            Err(reason) => b.refuse(line, Some(&name), at, reason)?,
        }
    }
    let id = build::content_id("prom", namespace, body, stamped.then_some(now_ms));
    Ok(b.finish(id, namespace.to_string()))
}

enum Role {
    Value,
    Bucket(String),
    Sum(String),
    Count(String),
}

struct Histogram {
    name: String,
    dimensions: Vec<(String, String)>,
    first_line: usize,
    timestamp_ms: i64,
    /// Upper bounds and cumulative counts.
    buckets: Vec<(f64, f64)>,
    count: Option<f64>,
    problem: Option<String>,
}

impl Histogram {
    /// The observations as values (each bucket's middle) and counts;
    /// `None` when there were none.
    fn distribution(mut self) -> std::result::Result<Option<Value>, String> {
        if let Some(problem) = self.problem {
            return Err(problem);
        }
        self.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        if self.buckets.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err("two buckets have the same le".into());
        }
        let Some(&(last, total)) = self.buckets.last() else {
            return Err("a histogram without buckets".into());
        };
        if last != f64::INFINITY {
            return Err("a histogram needs an le=\"+Inf\" bucket".into());
        }
        if let Some(count) = self.count
            && count != total
        {
            return Err(format!(
                "_count is {count} but the +Inf bucket holds {total}"
            ));
        }
        let finite: Vec<f64> = self
            .buckets
            .iter()
            .map(|b| b.0)
            .filter(|b| b.is_finite())
            .collect();
        let mut values = Vec::new();
        let mut counts = Vec::new();
        let mut previous: Option<(f64, f64)> = None;
        for &(bound, cumulative) in &self.buckets {
            if !cumulative.is_finite() || cumulative < 0.0 {
                return Err(format!("bucket le={bound} holds {cumulative} observations"));
            }
            let below = previous.map_or(0.0, |p| p.1);
            if cumulative < below {
                return Err(format!(
                    "bucket counts are cumulative, but le={bound} holds fewer than the bucket below it"
                ));
            }
            let here = cumulative - below;
            if here > 0.0 {
                let middle = match previous {
                    _ if bound == f64::INFINITY => finite.last().copied().unwrap_or(0.0),
                    None => bound,
                    Some((lower, _)) => (lower + bound) / 2.0,
                };
                values.push(middle);
                counts.push(here);
            }
            previous = Some((bound, cumulative));
        }
        if values.is_empty() {
            return Ok(None);
        }
        Ok(Some(Value::Distribution { values, counts }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    fn job(labels: &[(&str, &str)]) -> Grouping {
        Grouping {
            labels: labels
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn decode_str(body: &str) -> Decoded {
        decode(
            body.as_bytes(),
            &job(&[("job", "nightly")]),
            "Batch",
            NOW,
            &Limits::default(),
        )
        .expect("decoded")
    }

    #[test]
    fn grouping_keys_from_paths() {
        assert_eq!(
            Grouping::from_path("/job/nightly").expect("job"),
            job(&[("job", "nightly")])
        );
        assert_eq!(
            Grouping::from_path("/job/a%20b/instance/x/path@base64/L3Zhci90bXA=").expect("more"),
            job(&[("job", "a b"), ("instance", "x"), ("path", "/var/tmp")])
        );
        for bad in [
            "",
            "/",
            "/instance/x",
            "/job",
            "/job/a/x",
            "/job/a/job/b",
            "/job/a/1x/v",
            "/job/%zz",
        ] {
            let e = Grouping::from_path(bad).expect_err(bad);
            assert_eq!((e.status, e.error), (400, "invalid_grouping_key"), "{bad}");
        }
    }

    #[test]
    fn families_map_to_kinds() {
        let body = "# HELP jobs Jobs done.\n\
            # TYPE jobs counter\n\
            jobs_total{queue=\"a\"} 3\n\
            # TYPE temperature gauge\n\
            temperature 21.5 1700000000500\n\
            raw_untyped{x=\"\"} 7\n\
            # TYPE latency histogram\n\
            latency_bucket{le=\"0.1\"} 2\n\
            latency_bucket{le=\"0.5\"} 5\n\
            latency_bucket{le=\"+Inf\"} 6\n\
            latency_sum 1.9\n\
            latency_count 6\n\
            # TYPE rpc summary\n\
            rpc{quantile=\"0.5\"} 0.2\n\
            rpc_sum 4\n\
            rpc_count 10\n";
        let d = decode_str(body);
        assert!(d.rejected.is_empty(), "{:?}", d.rejected);
        let got: Vec<(&str, Kind, Vec<&str>, &Value)> = d
            .batch
            .points
            .iter()
            .map(|p| {
                let s = &d.batch.series[p.series];
                (
                    s.name.as_str(),
                    s.kind,
                    s.dimensions
                        .iter()
                        .map(|(n, v)| if n == "job" { v.as_str() } else { n.as_str() })
                        .collect(),
                    &p.value,
                )
            })
            .collect();
        let g = |v: f64| Value::Gauge {
            last: v,
            stats: None,
        };
        assert_eq!(
            got[0],
            (
                "jobs_total",
                Kind::Counter,
                vec!["nightly", "queue"],
                &Value::Counter(3.0)
            )
        );
        assert_eq!(
            got[1],
            ("temperature", Kind::Gauge, vec!["nightly"], &g(21.5))
        );
        assert_eq!(d.batch.points[1].timestamp_ms, 1_700_000_000_500);
        assert_eq!(
            got[2],
            ("raw_untyped", Kind::Gauge, vec!["nightly"], &g(7.0))
        );
        // A histogram's _sum and _count are counters of their own.
        assert_eq!(
            got[3],
            (
                "latency_sum",
                Kind::Counter,
                vec!["nightly"],
                &Value::Counter(1.9)
            )
        );
        assert_eq!(
            got[4],
            (
                "latency_count",
                Kind::Counter,
                vec!["nightly"],
                &Value::Counter(6.0)
            )
        );
        assert_eq!(
            got[5],
            ("rpc", Kind::Gauge, vec!["nightly", "quantile"], &g(0.2))
        );
        assert_eq!(got[6].0, "rpc_sum");
        assert_eq!(got[7].0, "rpc_count");
        assert_eq!(
            got[8],
            (
                "latency",
                Kind::Distribution,
                vec!["nightly"],
                &Value::Distribution {
                    values: vec![0.1, 0.3, 0.5],
                    counts: vec![2.0, 3.0, 1.0]
                }
            )
        );
    }

    /// Hostile pushes: each bad sample is refused with its line and reason.
    #[test]
    fn hostile_samples_are_refused_one_by_one() {
        let labels: String = (0..40).map(|i| format!("l{i}=\"v\",")).collect();
        let cases = [
            ("m{a=\"x\\q\"} 1", "escape \\q"),
            ("m{a=\"x} 1", "not closed"),
            ("m{a=x} 1", "not quoted"),
            ("m{a=\"1\",a=\"2\"} 1", "given twice"),
            ("m{1a=\"x\"} 1", "not a label name"),
            ("m NaN", "NaN or infinite"),
            ("m +Inf", "NaN or infinite"),
            ("m nan", "not a number"),
            ("m 1 12.5", "whole milliseconds"),
            ("m 1 1 1", "unexpected"),
            ("1m 1", "not a metric name"),
            ("m{job=\"other\"} 1", "contradicts"),
            ("m 1 0", "14 days"),
            ("# TYPE m nonsense", "unknown type"),
            (
                "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1",
                "cumulative",
            ),
            ("# TYPE h histogram\nh_bucket{le=\"1\"} 2", "+Inf"),
            (
                "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_count 3",
                "_count is 3",
            ),
            ("# TYPE h histogram\nh_bucket{le=\"x\"} 2", "numeric le"),
            ("# TYPE h histogram\nh 2", "_bucket"),
        ];
        let mut all = cases
            .map(|(body, reason)| (body.to_string(), reason))
            .to_vec();
        all.push((format!("m{{{labels}}} 1"), "more than the 30 allowed"));
        for (body, reason) in all {
            let d = decode_str(&format!("{body}\ngood 1\n"));
            let good = d.batch.series.iter().filter(|s| s.name == "good").count();
            assert_eq!(good, 1, "{body}: the good sample stays");
            let r = d
                .rejected
                .first()
                .unwrap_or_else(|| panic!("{body}: not refused"));
            assert!(r.reason.contains(reason), "{body}: {r:?}");
            assert!(r.field.starts_with("lines["), "{body}: {r:?}");
        }
    }

    #[test]
    fn empty_histograms_and_media_types() {
        let d = decode_str(
            "# TYPE h histogram\nh_bucket{le=\"1\"} 0\nh_bucket{le=\"+Inf\"} 0\nh_count 0\n",
        );
        // No observations: no distribution, only the count of 0.
        assert!(d.rejected.is_empty());
        assert_eq!(d.batch.points.len(), 1);
        assert_eq!(d.batch.series[0].name, "h_count");
        assert!(accepts(Some("text/plain; version=0.0.4; charset=utf-8")));
        assert!(accepts(None));
        assert!(!accepts(Some("application/vnd.google.protobuf")));
        let e = decode(
            b"m 1",
            &job(&[("job", "j")]),
            "AWS/x",
            NOW,
            &Limits::default(),
        )
        .expect_err("ns");
        assert_eq!(e.status, 400);
    }
}
