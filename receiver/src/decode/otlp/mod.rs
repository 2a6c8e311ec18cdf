//! OTLP/HTTP metrics (`POST /v1/metrics`, protobuf or JSON).
//!
//! Mapping (see `docs/ingest-formats.md`):
//! - Gauge: gauges.
//! - Sum, delta: counters (monotonic or not). Sum, cumulative and not
//!   monotonic (an up-down counter's current value): gauges. Sum,
//!   cumulative and monotonic: refused per point, asking for delta
//!   temporality. The receiver keeps no state across requests, so that a
//!   restart or a second edge instance cannot turn a reset into a wrong
//!   delta.
//! - Histogram (delta): CloudWatch values and counts, each bucket's
//!   observations at its middle (the first bucket at the minimum or its
//!   bound, the overflow bucket at the maximum or the last bound), so a
//!   percentile is off by at most half its bucket's width; without
//!   buckets, a statistic set from count, sum, min and max.
//! - ExponentialHistogram (delta): values and counts the same way, each
//!   bucket `(base^i, base^(i+1)]` at its middle (relative error at most
//!   `(base - 1) / 2`), the zero bucket at 0.
//! - Summary: one gauge per quantile (dimension `quantile`), and gauges
//!   `<name>_sum` and `<name>_count`.
//!
//! Data point attributes are dimensions; resource and scope attributes are
//! dimensions only when listed in [`Mapping::attributes`], so that the
//! cardinality stays bounded.
//!
//! About 600 lines in one file: the walk over OTLP's nesting (resource,
//! scope, metric, data point) is one piece, shared by the protobuf and JSON
//! encodings; splitting it by metric type would repeat the walk.

pub mod proto;

use edgepush_protocol::Unit;
use edgepush_protocol::wire::Kind;
use prost::Message as _;
use serde::Deserialize;

use self::proto::{any_value, metric, number_data_point};
use super::Decoded;
use super::build::{self, Builder, Sample};
use crate::error::{Error, Result};
use crate::limits::Limits;
use crate::model::{StatisticSet, Value};

/// How an export is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// `application/x-protobuf`.
    Protobuf,
    /// `application/json`.
    Json,
}

impl Encoding {
    /// The OTLP encoding a `Content-Type` names, if any.
    pub fn of(content_type: &str) -> Option<Self> {
        let media = content_type.split(';').next().unwrap_or("").trim();
        if media.eq_ignore_ascii_case("application/x-protobuf")
            || media.eq_ignore_ascii_case("application/protobuf")
        {
            Some(Encoding::Protobuf)
        } else if media.eq_ignore_ascii_case("application/json") {
            Some(Encoding::Json)
        } else {
            None
        }
    }

    /// The media type answers are sent in.
    pub fn media_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

/// How OTLP maps to metrics (configurable, `[formats.otlp]`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Mapping {
    /// Resource and scope attributes that become dimensions (data point
    /// attributes always do). Default: `service.name`.
    pub attributes: Vec<String>,
}

impl Default for Mapping {
    fn default() -> Self {
        Mapping {
            attributes: vec!["service.name".into()],
        }
    }
}

/// The CloudWatch unit for an OTLP (UCUM) unit; `None` for units CloudWatch
/// has no name for (the unit is then dropped: CloudWatch's `None`).
pub fn unit(ucum: &str) -> Unit {
    let name = match ucum {
        "s" => "Seconds",
        "ms" => "Milliseconds",
        "us" => "Microseconds",
        "By" => "Bytes",
        "KBy" | "kBy" => "Kilobytes",
        "MBy" => "Megabytes",
        "GBy" => "Gigabytes",
        "TBy" => "Terabytes",
        "bit" => "Bits",
        "Kbit" | "kbit" => "Kilobits",
        "Mbit" => "Megabits",
        "Gbit" => "Gigabits",
        "Tbit" => "Terabits",
        "%" => "Percent",
        "By/s" => "Bytes/Second",
        "KBy/s" | "kBy/s" => "Kilobytes/Second",
        "MBy/s" => "Megabytes/Second",
        "GBy/s" => "Gigabytes/Second",
        "bit/s" => "Bits/Second",
        "Kbit/s" | "kbit/s" => "Kilobits/Second",
        "Mbit/s" => "Megabits/Second",
        "Gbit/s" => "Gigabits/Second",
        "1/s" => "Count/Second",
        "1" => "Count",
        u if u.starts_with('{') && u.ends_with('}') => "Count",
        _ => "None",
    };
    name.parse().unwrap_or(Unit::None)
}

/// The message a cumulative monotonic sum or a cumulative histogram is
/// refused with.
pub const CUMULATIVE_REFUSED: &str = "cumulative temporality is not accepted (the receiver keeps no \
     state to turn it into deltas): configure the exporter for delta temporality, \
     e.g. OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=delta";

/// Decodes an export (already decompressed).
pub fn decode(
    body: &[u8],
    encoding: Encoding,
    namespace: &str,
    mapping: &Mapping,
    now_ms: i64,
    limits: &Limits,
) -> Result<Decoded> {
    build::check_namespace(namespace, "namespace")?;
    let request = match encoding {
        Encoding::Protobuf => proto::ExportMetricsServiceRequest::decode(body).map_err(|e| {
            Error::new(
                400,
                "invalid_protobuf",
                format!("body is not an OTLP ExportMetricsServiceRequest: {e}"),
            )
            .field("body")
        })?,
        Encoding::Json => {
            // Unknown fields are ignored below the top level (OTLP's
            // forward compatibility), but not at it: a JSON body that is
            // not an export (an edgepush batch sent as application/json)
            // must not pass as an empty one.
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Export {
                #[serde(rename = "resourceMetrics", alias = "resource_metrics", default)]
                resource_metrics: Vec<proto::ResourceMetrics>,
            }
            let export: Export = serde_json::from_slice(body).map_err(|e| {
                Error::new(
                    400,
                    "invalid_json",
                    format!(
                        "body is not an OTLP/JSON export: {e} (an edgepush batch is sent as {})",
                        edgepush_protocol::wire::v1::CONTENT_TYPE
                    ),
                )
                .field("body")
            })?;
            proto::ExportMetricsServiceRequest {
                resource_metrics: export.resource_metrics,
            }
        }
    };
    let mut b = Builder::new(limits, now_ms);
    let mut at = 0usize;
    for (r, resource) in request.resource_metrics.iter().enumerate() {
        let resource_attrs = resource
            .resource
            .as_ref()
            .map_or(&[][..], |res| &res.attributes[..]);
        for (s, scope) in resource.scope_metrics.iter().enumerate() {
            let scope_attrs = scope
                .scope
                .as_ref()
                .map_or(&[][..], |sc| &sc.attributes[..]);
            let mut common = Vec::new();
            for name in &mapping.attributes {
                let found = scope_attrs
                    .iter()
                    .chain(resource_attrs)
                    .find(|kv| kv.key == *name);
                if let Some(value) = found.and_then(scalar) {
                    common.push((name.clone(), value));
                }
            }
            for (m, metric) in scope.metrics.iter().enumerate() {
                let path = format!("resourceMetrics[{r}].scopeMetrics[{s}].metrics[{m}]");
                let mut cx = Context {
                    b: &mut b,
                    at: &mut at,
                    name: &metric.name,
                    unit: unit(&metric.unit),
                    common: &common,
                };
                cx.metric(&path, metric.data.as_ref())?;
            }
        }
    }
    let id = build::content_id("otlp", namespace, body, None);
    Ok(b.finish(id, namespace.to_string()))
}

/// A scalar attribute as a dimension value; `None` for arrays, maps and bytes.
fn scalar(kv: &proto::KeyValue) -> Option<String> {
    match kv.value.as_ref()?.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s.clone()),
        any_value::Value::BoolValue(b) => Some(b.to_string()),
        any_value::Value::IntValue(i) => Some(i.to_string()),
        any_value::Value::DoubleValue(d) => Some(d.to_string()),
        _ => None,
    }
}

/// A data point's dimensions and timestamp in milliseconds.
type Labelled = (Vec<(String, String)>, i64);

struct Context<'c, 'l> {
    b: &'c mut Builder<'l>,
    at: &'c mut usize,
    name: &'c str,
    unit: Unit,
    common: &'c [(String, String)],
}

impl Context<'_, '_> {
    fn metric(&mut self, path: &str, data: Option<&metric::Data>) -> Result<()> {
        match data {
            None => {
                let at = self.next();
                self.b
                    .refuse(at, Some(self.name), path.to_string(), "metric has no data")
            }
            Some(metric::Data::Gauge(g)) => {
                for (p, point) in g.data_points.iter().enumerate() {
                    let field = format!("{path}.gauge.dataPoints[{p}]");
                    self.number(&field, point, Kind::Gauge)?;
                }
                Ok(())
            }
            Some(metric::Data::Sum(sum)) => {
                for (p, point) in sum.data_points.iter().enumerate() {
                    let field = format!("{path}.sum.dataPoints[{p}]");
                    match (sum.aggregation_temporality, sum.is_monotonic) {
                        (proto::TEMPORALITY_DELTA, _) => {
                            self.number(&field, point, Kind::Counter)?;
                        }
                        (proto::TEMPORALITY_CUMULATIVE, false) => {
                            self.number(&field, point, Kind::Gauge)?;
                        }
                        (proto::TEMPORALITY_CUMULATIVE, true) => {
                            let at = self.next();
                            self.b
                                .refuse(at, Some(self.name), field, CUMULATIVE_REFUSED)?;
                        }
                        _ => {
                            let at = self.next();
                            self.b.refuse(
                                at,
                                Some(self.name),
                                format!("{path}.sum.aggregationTemporality"),
                                TEMPORALITY_UNSET,
                            )?;
                        }
                    }
                }
                Ok(())
            }
            Some(metric::Data::Histogram(h)) => {
                for (p, point) in h.data_points.iter().enumerate() {
                    let field = format!("{path}.histogram.dataPoints[{p}]");
                    let value = delta(h.aggregation_temporality).and_then(|()| explicit(point));
                    self.distribution(&field, &point.attributes, point.time_unix_nano, value)?;
                }
                Ok(())
            }
            Some(metric::Data::ExponentialHistogram(h)) => {
                for (p, point) in h.data_points.iter().enumerate() {
                    let field = format!("{path}.exponentialHistogram.dataPoints[{p}]");
                    let value = delta(h.aggregation_temporality).and_then(|()| exponential(point));
                    self.distribution(&field, &point.attributes, point.time_unix_nano, value)?;
                }
                Ok(())
            }
            Some(metric::Data::Summary(summary)) => {
                for (p, point) in summary.data_points.iter().enumerate() {
                    let field = format!("{path}.summary.dataPoints[{p}]");
                    let at = self.next();
                    let (dimensions, timestamp_ms) =
                        match self.labels(&point.attributes, point.time_unix_nano) {
                            Ok(found) => found,
                            Err((part, reason)) => {
                                self.b.refuse(
                                    at,
                                    Some(self.name),
                                    format!("{field}.{part}"),
                                    reason,
                                )?;
                                continue;
                            }
                        };
                    let gauge = |name: String, dimensions, last| Sample {
                        name,
                        kind: Kind::Gauge,
                        unit: self.unit,
                        dimensions,
                        timestamp_ms,
                        value: Value::Gauge { last, stats: None },
                    };
                    for q in &point.quantile_values {
                        let mut dims = dimensions.clone();
                        dims.push(("quantile".into(), q.quantile.to_string()));
                        self.b
                            .add(at, &field, gauge(self.name.to_string(), dims, q.value))?;
                    }
                    let sum = gauge(format!("{}_sum", self.name), dimensions.clone(), point.sum);
                    self.b.add(at, &field, sum)?;
                    let count = Sample {
                        unit: Unit::Count,
                        ..gauge(
                            format!("{}_count", self.name),
                            dimensions,
                            point.count as f64,
                        )
                    };
                    self.b.add(at, &field, count)?;
                }
                Ok(())
            }
        }
    }

    /// The request position of the next data point.
    fn next(&mut self) -> usize {
        *self.at += 1;
        *self.at - 1
    }

    /// A data point's dimensions (the common ones first) and timestamp, or
    /// the part at fault and why.
    fn labels(
        &self,
        attributes: &[proto::KeyValue],
        time_unix_nano: u64,
    ) -> std::result::Result<Labelled, (String, String)> {
        let mut dimensions = self.common.to_vec();
        for kv in attributes {
            let value = scalar(kv).ok_or_else(|| {
                (
                    format!("attributes.{}", kv.key),
                    "attribute value is not a string, number or boolean".to_string(),
                )
            })?;
            if let Some(d) = dimensions.iter_mut().find(|(n, _)| *n == kv.key) {
                // The data point's own attribute wins over the resource's.
                d.1 = value;
            } else {
                dimensions.push((kv.key.clone(), value));
            }
        }
        if time_unix_nano == 0 {
            return Err(("timeUnixNano".into(), "timeUnixNano is not set".into()));
        }
        Ok((dimensions, (time_unix_nano / 1_000_000) as i64))
    }

    fn number(&mut self, field: &str, point: &proto::NumberDataPoint, kind: Kind) -> Result<()> {
        let name = self.name;
        let at = self.next();
        let (dimensions, timestamp_ms) = match self.labels(&point.attributes, point.time_unix_nano)
        {
            Ok(found) => found,
            Err((part, reason)) => {
                return self
                    .b
                    .refuse(at, Some(name), format!("{field}.{part}"), reason);
            }
        };
        let v = match point.value {
            Some(number_data_point::Value::AsDouble(v)) => v,
            Some(number_data_point::Value::AsInt(i)) => i as f64,
            None => {
                return self
                    .b
                    .refuse(at, Some(name), field.to_string(), "data point has no value");
            }
        };
        let value = match kind {
            Kind::Counter => Value::Counter(v),
            _ => Value::Gauge {
                last: v,
                stats: None,
            },
        };
        self.b.add(
            at,
            field,
            Sample {
                name: name.to_string(),
                kind,
                unit: self.unit,
                dimensions,
                timestamp_ms,
                value,
            },
        )
    }

    fn distribution(
        &mut self,
        field: &str,
        attributes: &[proto::KeyValue],
        time_unix_nano: u64,
        value: std::result::Result<Option<Value>, String>,
    ) -> Result<()> {
        let at = self.next();
        let (dimensions, timestamp_ms) = match self.labels(attributes, time_unix_nano) {
            Ok(found) => found,
            Err((part, reason)) => {
                return self
                    .b
                    .refuse(at, Some(self.name), format!("{field}.{part}"), reason);
            }
        };
        let value = match value {
            Ok(Some(value)) => value,
            // No observations in the interval: nothing to forward.
            Ok(None) => return Ok(()),
            Err(reason) => {
                return self
                    .b
                    .refuse(at, Some(self.name), field.to_string(), reason);
            }
        };
        let kind = match value {
            Value::Statistics(_) => Kind::Statistics,
            _ => Kind::Distribution,
        };
        self.b.add(
            at,
            field,
            Sample {
                name: self.name.to_string(),
                kind,
                unit: self.unit,
                dimensions,
                timestamp_ms,
                value,
            },
        )
    }
}

/// Why a point without an aggregation temporality is refused.
const TEMPORALITY_UNSET: &str = "aggregation temporality is not set";

/// Whether `temporality` is delta, or why a histogram point is refused.
fn delta(temporality: i32) -> std::result::Result<(), String> {
    match temporality {
        proto::TEMPORALITY_DELTA => Ok(()),
        proto::TEMPORALITY_CUMULATIVE => Err(CUMULATIVE_REFUSED.into()),
        _ => Err(TEMPORALITY_UNSET.into()),
    }
}

/// Puts `value` within the observed minimum and maximum, when known.
fn clamp(value: f64, min: Option<f64>, max: Option<f64>) -> f64 {
    let v = min.map_or(value, |m| value.max(m));
    max.map_or(v, |m| v.min(m))
}

/// Values and counts for an explicit-bucket histogram point.
fn explicit(p: &proto::HistogramDataPoint) -> std::result::Result<Option<Value>, String> {
    if p.count == 0 {
        return Ok(None);
    }
    if p.bucket_counts.is_empty() {
        return match (p.sum, p.min, p.max) {
            (Some(sum), Some(min), Some(max)) => Ok(Some(Value::Statistics(StatisticSet {
                count: p.count as f64,
                sum,
                min,
                max,
            }))),
            _ => Err("a histogram point without buckets needs sum, min and max".into()),
        };
    }
    let bounds = &p.explicit_bounds;
    if p.bucket_counts.len() != bounds.len() + 1 {
        return Err(format!(
            "{} bucket counts for {} explicit bounds (there must be one more count than bounds)",
            p.bucket_counts.len(),
            bounds.len()
        ));
    }
    if bounds.iter().any(|b| !b.is_finite()) || bounds.windows(2).any(|w| w[0] >= w[1]) {
        return Err("explicit bounds must be finite and increasing".into());
    }
    let total: u128 = p.bucket_counts.iter().map(|c| u128::from(*c)).sum();
    if total != u128::from(p.count) {
        return Err(format!(
            "bucket counts add up to {total}, but count is {}",
            p.count
        ));
    }
    let mut values = Vec::new();
    let mut counts = Vec::new();
    for (i, &c) in p.bucket_counts.iter().enumerate() {
        if c == 0 {
            continue;
        }
        let middle = match (i.checked_sub(1).map(|j| bounds[j]), bounds.get(i)) {
            (None, Some(&upper)) => p.min.map_or(upper, |m| m.min(upper)),
            (Some(lower), None) => p.max.map_or(lower, |m| m.max(lower)),
            (Some(lower), Some(&upper)) => (lower + upper) / 2.0,
            (None, None) => p.sum.map_or(0.0, |s| s / p.count as f64),
        };
        values.push(clamp(middle, p.min, p.max));
        counts.push(c as f64);
    }
    Ok(Some(Value::Distribution { values, counts }))
}

/// Values and counts for an exponential histogram point.
fn exponential(
    p: &proto::ExponentialHistogramDataPoint,
) -> std::result::Result<Option<Value>, String> {
    if p.count == 0 {
        return Ok(None);
    }
    if !(-10..=20).contains(&p.scale) {
        return Err(format!("scale {} is outside -10..=20", p.scale));
    }
    let base = 2f64.powf(2f64.powi(-p.scale));
    let mut values = Vec::new();
    let mut counts = Vec::new();
    let mut total = u128::from(p.zero_count);
    if p.zero_count > 0 {
        values.push(clamp(0.0, p.min, p.max));
        counts.push(p.zero_count as f64);
    }
    for (buckets, sign) in [(&p.positive, 1.0), (&p.negative, -1.0)] {
        let Some(buckets) = buckets else { continue };
        for (k, &c) in buckets.bucket_counts.iter().enumerate() {
            total += u128::from(c);
            if c == 0 {
                continue;
            }
            let index = f64::from(buckets.offset) + k as f64;
            let lower = base.powf(index);
            let middle = sign * (lower + base.powf(index + 1.0)) / 2.0;
            values.push(clamp(middle, p.min, p.max));
            counts.push(c as f64);
        }
    }
    if total != u128::from(p.count) {
        return Err(format!(
            "bucket counts add up to {total}, but count is {}",
            p.count
        ));
    }
    Ok(Some(Value::Distribution { values, counts }))
}

/// The body of a 200 answer: OTLP's partial success when points were refused.
pub fn response(encoding: Encoding, rejected: usize, message: &str) -> Vec<u8> {
    let response = proto::ExportMetricsServiceResponse {
        partial_success: (rejected > 0).then(|| proto::ExportMetricsPartialSuccess {
            rejected_data_points: rejected as i64,
            error_message: message.to_string(),
        }),
    };
    match encoding {
        Encoding::Protobuf => response.encode_to_vec(),
        Encoding::Json => serde_json::to_vec(&response).unwrap_or_default(),
    }
}

/// The body of a refusal: a `google.rpc.Status` (in JSON, with the
/// receiver's own error fields beside `code` and `message`: `error`,
/// `field`).
pub fn status(encoding: Encoding, e: &Error) -> Vec<u8> {
    // gRPC codes: INVALID_ARGUMENT, UNAUTHENTICATED, PERMISSION_DENIED,
    // RESOURCE_EXHAUSTED, UNAVAILABLE, INTERNAL.
    let code = match e.status {
        401 => 16,
        403 => 7,
        413 | 429 => 8,
        502..=504 => 14,
        500..=599 => 13,
        _ => 3,
    };
    match encoding {
        Encoding::Protobuf => proto::Status {
            code,
            message: e.to_string(),
        }
        .encode_to_vec(),
        Encoding::Json => {
            let mut body = serde_json::to_value(e).unwrap_or_default();
            if let Some(map) = body.as_object_mut() {
                map.insert("code".into(), code.into());
            }
            body.to_string().into_bytes()
        }
    }
}

#[cfg(test)]
mod tests;
