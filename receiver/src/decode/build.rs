//! A validated batch built one sample at a time: how the decoders of other
//! formats (line protocol, OTLP, Prometheus text) apply wire v1's rules.
//!
//! A sample that breaks a rule is refused with its reason while the rest of
//! the request goes on; bounds on the request as a whole (points, series)
//! refuse all of it, before the work they bound.

use std::collections::HashMap;

use edgepush_protocol::limits::{MAX_FUTURE_MS, MAX_PAST_MS};
use edgepush_protocol::validate;
use edgepush_protocol::wire::Kind;
use edgepush_protocol::{Resolution, Unit};
use sha2::{Digest as _, Sha256};

use super::{Decoded, Rejection};
use crate::error::{Error, Result};
use crate::limits::Limits;
use crate::model::{Batch, Point, Series, Value};

/// One sample as a format states it, before validation.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Metric name.
    pub name: String,
    /// Kind of aggregation.
    pub kind: Kind,
    /// CloudWatch unit.
    pub unit: Unit,
    /// Dimensions, in order.
    pub dimensions: Vec<(String, String)>,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// The value; its variant matches `kind`.
    pub value: Value,
}

/// Collects validated samples into a [`Decoded`] batch.
#[derive(Debug)]
pub struct Builder<'a> {
    limits: &'a Limits,
    now_ms: i64,
    /// Each series and its index in the batch: kept once, put in order at
    /// the end.
    series: HashMap<Series, usize>,
    points: Vec<Point>,
    indices: Vec<usize>,
    rejected: Vec<Rejection>,
}

impl<'a> Builder<'a> {
    /// A builder checking against `limits`, with `now_ms` the receiver's clock.
    pub fn new(limits: &'a Limits, now_ms: i64) -> Self {
        Builder {
            limits,
            now_ms,
            series: HashMap::new(),
            points: Vec::new(),
            indices: Vec::new(),
            rejected: Vec::new(),
        }
    }

    /// Refuses the sample at request position `at` (a line, a data point),
    /// naming `field` (a path into the request) and the reason.
    pub fn refuse(
        &mut self,
        at: usize,
        metric: Option<&str>,
        field: String,
        reason: impl Into<String>,
    ) -> Result<()> {
        self.rejected.push(Rejection {
            point: at,
            metric: metric.map(str::to_string),
            field,
            reason: reason.into(),
        });
        self.check_count()
    }

    /// Adds `sample`, from request position `at`, or refuses it with the
    /// rule it breaks (`field` names it in the request). An error refuses
    /// the whole request (too many points or series).
    pub fn add(&mut self, at: usize, field: &str, sample: Sample) -> Result<()> {
        match self.check(&sample) {
            Ok(()) => {
                let series = Series {
                    name: sample.name,
                    kind: sample.kind,
                    unit: sample.unit,
                    dimensions: sample.dimensions,
                    resolution: Resolution::Standard,
                };
                let next = self.series.len();
                let index = match self.series.get(&series) {
                    Some(&i) => i,
                    None => {
                        if next >= self.limits.max_series {
                            return Err(Error::new(
                                413,
                                "too_many_series",
                                format!("more than the limit of {} series", self.limits.max_series),
                            )
                            .field("body"));
                        }
                        self.series.insert(series, next);
                        next
                    }
                };
                self.points.push(Point {
                    series: index,
                    timestamp_ms: sample.timestamp_ms,
                    value: sample.value,
                });
                self.indices.push(at);
                self.check_count()
            }
            Err((part, reason)) => {
                let field = if part.is_empty() {
                    field.to_string()
                } else {
                    format!("{field}.{part}")
                };
                self.refuse(at, Some(&sample.name), field, reason)
            }
        }
    }

    fn check_count(&self) -> Result<()> {
        let count = self.points.len() + self.rejected.len();
        if count > self.limits.max_points {
            return Err(Error::new(
                413,
                "too_many_points",
                format!("more than the limit of {} points", self.limits.max_points),
            )
            .field("body"));
        }
        Ok(())
    }

    /// The rule `sample` breaks: the part at fault (relative to the
    /// sample's field) and the reason.
    fn check(&self, sample: &Sample) -> std::result::Result<(), (String, String)> {
        validate::metric_name(&sample.name)
            .map_err(|r| ("name".to_string(), format!("metric name {r}")))?;
        let dims = &sample.dimensions;
        if dims.len() > self.limits.max_dimensions {
            return Err((
                "dimensions".into(),
                format!(
                    "{} dimensions, more than the {} allowed (limits.max_dimensions)",
                    dims.len(),
                    self.limits.max_dimensions
                ),
            ));
        }
        for (i, (name, value)) in dims.iter().enumerate() {
            let at = || format!("dimensions.{name}");
            dimension(name, value, self.limits).map_err(|reason| (at(), reason))?;
            if dims[..i].iter().any(|(n, _)| n == name) {
                return Err((at(), "dimension is given twice".into()));
            }
        }
        timestamp(sample.timestamp_ms, self.now_ms)
            .map_err(|reason| ("timestamp".to_string(), reason.to_string()))?;
        let value =
            |v: f64| validate::value(v).map_err(|r| ("value".to_string(), format!("value {r}")));
        let count =
            |c: f64| validate::count(c).map_err(|r| ("count".to_string(), format!("count {r}")));
        match &sample.value {
            Value::Counter(v) => value(*v),
            Value::Gauge { last, stats } => {
                value(*last)?;
                stats.as_ref().map_or(Ok(()), |s| {
                    count(s.count)?;
                    [s.sum, s.min, s.max].into_iter().try_for_each(value)
                })
            }
            Value::Distribution { values, counts } => {
                if values.is_empty() || values.len() != counts.len() {
                    return Err(("value".into(), "a distribution has no values".into()));
                }
                if values.len() > self.limits.max_values_per_point {
                    return Err((
                        "value".into(),
                        format!(
                            "{} distinct values, more than the limit of {} (limits.max_values_per_point)",
                            values.len(),
                            self.limits.max_values_per_point
                        ),
                    ));
                }
                values.iter().copied().try_for_each(value)?;
                counts.iter().copied().try_for_each(count)
            }
            Value::Text(_) | Value::Boolean(_) if sample.kind != Kind::Gauge => Err((
                "value".into(),
                "a string or boolean value belongs to a gauge".into(),
            )),
            Value::Text(text) => validate::string_field(text)
                .map_err(|r| ("value".to_string(), format!("string value {r}"))),
            Value::Boolean(_) => Ok(()),
            Value::Statistics(s) => validate::statistic_set([s.count, s.sum, s.min, s.max])
                .map_err(|(part, r)| match part {
                    Some(0) => ("count".to_string(), format!("count {r}")),
                    Some(_) => ("value".to_string(), format!("value {r}")),
                    None => ("value".to_string(), r.to_string()),
                }),
        }
    }

    /// The batch of every sample added, with `id` and `namespace` (the
    /// caller validated the namespace).
    pub fn finish(self, id: String, namespace: String) -> Decoded {
        let mut series: Vec<(Series, usize)> = self.series.into_iter().collect();
        series.sort_unstable_by_key(|(_, i)| *i);
        Decoded {
            batch: Batch {
                id,
                namespace,
                series: series.into_iter().map(|(s, _)| s).collect(),
                points: self.points,
            },
            rejected: self.rejected,
            indices: self.indices,
        }
    }
}

/// Refuses a dimension CloudWatch or line protocol would not take: its
/// name, its value, the value's length within `limits`. The reason, for
/// the caller to name the field.
pub fn dimension(name: &str, value: &str, limits: &Limits) -> std::result::Result<(), String> {
    validate::dimension_name(name).map_err(|r| format!("dimension name {r}"))?;
    validate::dimension_value(value).map_err(|r| format!("dimension value {r}"))?;
    value_length(value, limits)
}

/// Refuses a dimension value longer than `limits.max_dimension_value_bytes`.
pub fn value_length(value: &str, limits: &Limits) -> std::result::Result<(), String> {
    if value.len() <= limits.max_dimension_value_bytes {
        return Ok(());
    }
    Err(format!(
        "dimension value is {} bytes, more than the {} allowed (limits.max_dimension_value_bytes)",
        value.len(),
        limits.max_dimension_value_bytes
    ))
}

/// Refuses a timestamp CloudWatch would not take (14 days back, 2 hours
/// ahead of `now_ms`).
pub fn timestamp(t: i64, now_ms: i64) -> std::result::Result<(), &'static str> {
    if t < now_ms - MAX_PAST_MS {
        return Err("timestamp is more than 14 days old");
    }
    if t > now_ms + MAX_FUTURE_MS {
        return Err("timestamp is more than 2 hours in the future");
    }
    Ok(())
}

/// A text body (line protocol, Prometheus text) as UTF-8.
pub fn text(body: &[u8]) -> Result<&str> {
    std::str::from_utf8(body).map_err(|e| {
        Error::new(
            400,
            "invalid_utf8",
            format!(
                "body is not UTF-8 (invalid byte at offset {})",
                e.valid_up_to()
            ),
        )
        .field("body")
    })
}

/// A batch id for a request in a format without one: a hash of what makes
/// the request itself (format, namespace, body), so that a client's retry of
/// the same request is recognised, as wire v1's ids are. `received_ms` is
/// mixed in when some sample took the receiver's clock as its timestamp: the
/// same body sent again later then means new samples, not a retry.
pub fn content_id(format: &str, namespace: &str, body: &[u8], received_ms: Option<i64>) -> String {
    let mut hash = Sha256::new();
    hash.update(format.as_bytes());
    hash.update([0x1f]);
    hash.update(namespace.as_bytes());
    hash.update([0x1f]);
    hash.update(body);
    if let Some(ms) = received_ms {
        hash.update([0x1f]);
        hash.update(ms.to_le_bytes());
        hash.update(UNIQUE.with(|n| {
            let next = n.get().wrapping_add(1);
            n.set(next);
            next.to_le_bytes()
        }));
    }
    let digest = hash.finalize();
    format!("{format}-{}", hex::encode(&digest[..16]))
}

thread_local! {
    /// Tells apart requests with the same body received in the same millisecond.
    static UNIQUE: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Refuses a namespace CloudWatch would not take, naming where it came from.
pub fn check_namespace(namespace: &str, field: &str) -> Result<()> {
    validate::namespace(namespace).map_err(|r| {
        Error::new(400, "invalid_field", format!("namespace {namespace:?} {r}")).field(field)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    fn gauge(name: &str, dims: &[(&str, &str)], v: f64) -> Sample {
        Sample {
            name: name.into(),
            kind: Kind::Gauge,
            unit: Unit::None,
            dimensions: dims
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            timestamp_ms: NOW,
            value: Value::Gauge {
                last: v,
                stats: None,
            },
        }
    }

    #[test]
    fn samples_of_one_series_share_it_and_bad_ones_are_named() {
        let limits = Limits::default();
        let mut b = Builder::new(&limits, NOW);
        b.add(0, "lines[0]", gauge("cpu", &[("host", "a")], 1.0))
            .expect("ok");
        b.add(1, "lines[1]", gauge("cpu", &[("host", "a")], 2.0))
            .expect("ok");
        b.add(2, "lines[2]", gauge("cpu", &[("host", "a")], f64::NAN))
            .expect("ok");
        b.add(
            3,
            "lines[3]",
            gauge("cpu", &[("host", "a"), ("host", "b")], 1.0),
        )
        .expect("ok");
        let mut late = gauge("cpu", &[], 1.0);
        late.timestamp_ms = NOW - MAX_PAST_MS - 1;
        b.add(4, "lines[4]", late).expect("ok");
        // A string belongs to a gauge: a decoder that made it a counter
        // would have its point refused, not forwarded as a counter.
        let mut text_counter = gauge("state", &[], 0.0);
        text_counter.kind = Kind::Counter;
        text_counter.value = Value::Text("ok".into());
        b.add(5, "lines[5]", text_counter).expect("ok");
        let mut control = gauge("state", &[], 0.0);
        control.value = Value::Text("a\nb".into());
        b.add(6, "lines[6]", control).expect("ok");
        let d = b.finish("x".into(), "ns".into());
        assert_eq!(d.batch.series.len(), 1);
        assert_eq!(d.indices, vec![0, 1]);
        let refused: Vec<(usize, &str, &str)> = d
            .rejected
            .iter()
            .map(|r| (r.point, r.field.as_str(), r.reason.as_str()))
            .collect();
        assert_eq!(
            refused,
            vec![
                (2, "lines[2].value", "value is NaN or infinite"),
                (3, "lines[3].dimensions.host", "dimension is given twice"),
                (
                    4,
                    "lines[4].timestamp",
                    "timestamp is more than 14 days old"
                ),
                (
                    5,
                    "lines[5].value",
                    "a string or boolean value belongs to a gauge"
                ),
                (
                    6,
                    "lines[6].value",
                    "string value contains a control character"
                ),
            ]
        );
    }

    #[test]
    fn request_bounds_refuse_it_all() {
        let limits = Limits {
            max_points: 2,
            max_series: 1,
            ..Limits::default()
        };
        let mut b = Builder::new(&limits, NOW);
        b.add(0, "a", gauge("a", &[], 1.0)).expect("first");
        let e = b
            .add(1, "b", gauge("b", &[], 1.0))
            .expect_err("second series");
        assert_eq!((e.status, e.error), (413, "too_many_series"));
        let mut b = Builder::new(&limits, NOW);
        b.add(0, "a", gauge("a", &[], 1.0)).expect("1");
        b.refuse(1, None, "b".into(), "bad").expect("2");
        let e = b
            .add(2, "c", gauge("a", &[], 1.0))
            .expect_err("third point");
        assert_eq!((e.status, e.error), (413, "too_many_points"));
    }

    #[test]
    fn ids_repeat_for_the_same_request_only() {
        let a = content_id("lp", "ns", b"cpu v=1 1", None);
        assert_eq!(a, content_id("lp", "ns", b"cpu v=1 1", None));
        assert_ne!(a, content_id("lp", "ns2", b"cpu v=1 1", None));
        assert_ne!(
            content_id("lp", "ns", b"cpu v=1", Some(NOW)),
            content_id("lp", "ns", b"cpu v=1", Some(NOW))
        );
        assert!(a.len() <= 64 && a.starts_with("lp-"));
    }
}
