//! Wire format v1 (see `docs/wire-format.md`): gzip'd JSON from the emitter.

use edgepush::limits::{MAX_DIMENSIONS, MAX_FUTURE_MS, MAX_PAST_MS};
use edgepush::validate::{self, Invalid};
use edgepush::wire::{self, Kind};
use edgepush::{Resolution, Unit};

use super::{Decoded, Rejection};
use crate::error::{Error, Result};
use crate::limits::Limits;
use crate::model::{Batch, Point, Series, StatisticSet, Value};

/// Is this `Content-Type` wire v1? `Ok(false)` for other media types,
/// an error for another edgepush wire version.
pub fn accepts(content_type: &str) -> Result<bool> {
    let media = content_type.split(';').next().unwrap_or("").trim();
    if media.eq_ignore_ascii_case(wire::CONTENT_TYPE) {
        return Ok(true);
    }
    let lower = media.to_ascii_lowercase();
    if let Some(version) = lower
        .strip_prefix("application/vnd.edgepush.v")
        .and_then(|rest| rest.strip_suffix("+json"))
    {
        return Err(Error::new(
            415,
            "unsupported_version",
            format!(
                "wire version {version} is not supported; this receiver speaks {}",
                wire::CONTENT_TYPE
            ),
        )
        .field("content-type"));
    }
    Ok(false)
}

/// Decodes and validates a wire v1 batch (already decompressed).
///
/// Problems with the batch as a whole (malformed JSON, version, id,
/// namespace, common dimensions, limits) refuse it all. Problems with one
/// series or point refuse just those points, each named in the result.
pub fn decode(json: &[u8], now_ms: i64, limits: &Limits) -> Result<Decoded> {
    let de = &mut serde_json::Deserializer::from_slice(json);
    let raw: wire::Batch<'_> = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let err = Error::new(400, "invalid_json", e.inner().to_string());
        if path == "." { err } else { err.field(path) }
    })?;

    if raw.v != wire::VERSION {
        return Err(Error::new(
            400,
            "unsupported_version",
            format!(
                "version {} is not supported; this receiver speaks {}",
                raw.v,
                wire::VERSION
            ),
        )
        .field("v"));
    }
    check_id(&raw.id)?;
    validate::namespace(&raw.ns).map_err(|r| invalid("ns", "namespace", r))?;
    if raw.points.len() > limits.max_points {
        return Err(Error::new(
            413,
            "too_many_points",
            format!(
                "{} points, more than the limit of {}",
                raw.points.len(),
                limits.max_points
            ),
        )
        .field("points"));
    }
    if raw.series.len() > limits.max_series {
        return Err(Error::new(
            413,
            "too_many_series",
            format!(
                "{} series, more than the limit of {}",
                raw.series.len(),
                limits.max_series
            ),
        )
        .field("series"));
    }
    if raw.dims.0.len() > MAX_DIMENSIONS {
        return Err(Error::new(
            400,
            "too_many_dimensions",
            format!(
                "{} common dimensions, more than the {MAX_DIMENSIONS} allowed",
                raw.dims.0.len()
            ),
        )
        .field("dims"));
    }
    for (name, value) in &raw.dims.0 {
        validate::dimension_name(name)
            .map_err(|r| invalid(format!("dims.{name}"), "dimension name", r))?;
        validate::dimension_value(value)
            .map_err(|r| invalid(format!("dims.{name}"), "dimension value", r))?;
    }

    // Validate each series once; points of a bad series are refused with its reason.
    let mut series = Vec::with_capacity(raw.series.len());
    let mut index: Vec<std::result::Result<usize, (String, String)>> =
        Vec::with_capacity(raw.series.len());
    for (i, s) in raw.series.iter().enumerate() {
        match check_series(i, s, &raw.dims) {
            Ok(valid) => {
                index.push(Ok(series.len()));
                series.push(valid);
            }
            Err(problem) => index.push(Err(problem)),
        }
    }

    let mut points = Vec::with_capacity(raw.points.len());
    let mut rejected = Vec::new();
    for (i, p) in raw.points.into_iter().enumerate() {
        let target = usize::try_from(p.s)
            .ok()
            .and_then(|s| index.get(s).map(|r| (s, r)));
        let result = match target {
            None => Err((
                format!("points[{i}].s"),
                format!(
                    "refers to series {}, but the batch has {}",
                    p.s,
                    index.len()
                ),
            )),
            Some((_, Err((field, reason)))) => Err((field.clone(), reason.clone())),
            Some((_, Ok(s))) => check_point(i, p, *s, &series[*s], raw.t, now_ms, limits),
        };
        match result {
            Ok(point) => points.push(point),
            Err((field, reason)) => rejected.push(Rejection {
                point: i,
                metric: target.map(|(s, _)| raw.series[s].n.to_string()),
                field,
                reason,
            }),
        }
    }

    Ok(Decoded {
        batch: Batch {
            id: raw.id.into_owned(),
            namespace: raw.ns.into_owned(),
            series,
            points,
        },
        rejected,
    })
}

fn invalid(field: impl Into<String>, what: &str, reason: Invalid) -> Error {
    Error::new(400, "invalid_field", format!("{what} {reason}")).field(field)
}

fn check_id(id: &str) -> Result<()> {
    let ok = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            400,
            "invalid_field",
            "batch id must be 1-64 characters of [0-9A-Za-z_-]",
        )
        .field("id"))
    }
}

fn check_series(
    i: usize,
    s: &wire::Series<'_>,
    common: &wire::Dimensions<'_>,
) -> std::result::Result<Series, (String, String)> {
    let at = |field: &str| format!("series[{i}].{field}");
    validate::metric_name(&s.n).map_err(|r| (at("n"), format!("metric name {r}")))?;
    let unit = match &s.u {
        None => Unit::None,
        Some(u) => u
            .parse::<Unit>()
            .map_err(|_| (at("u"), format!("{u:?} is not a CloudWatch unit")))?,
    };
    let resolution = match s.r {
        None => Resolution::Standard,
        Some(r) => Resolution::from_seconds(r)
            .ok_or_else(|| (at("r"), format!("storage resolution {r} is not 1 or 60")))?,
    };
    let total = common.0.len() + s.d.0.len();
    if total > MAX_DIMENSIONS {
        return Err((
            at("d"),
            format!(
                "{total} dimensions with the common ones, more than the {MAX_DIMENSIONS} allowed"
            ),
        ));
    }
    let mut dimensions = Vec::with_capacity(total);
    for (name, value) in &common.0 {
        dimensions.push((name.to_string(), value.to_string()));
    }
    for (name, value) in &s.d.0 {
        let field = || at(&format!("d.{name}"));
        validate::dimension_name(name).map_err(|r| (field(), format!("dimension name {r}")))?;
        validate::dimension_value(value).map_err(|r| (field(), format!("dimension value {r}")))?;
        if common.0.iter().any(|(n, _)| n == name) {
            return Err((
                field(),
                "dimension is also a common dimension of the batch".into(),
            ));
        }
        dimensions.push((name.to_string(), value.to_string()));
    }
    Ok(Series {
        name: s.n.to_string(),
        kind: s.k,
        unit,
        dimensions,
        resolution,
    })
}

fn check_point(
    i: usize,
    p: wire::Point,
    series: usize,
    s: &Series,
    base_ms: i64,
    now_ms: i64,
    limits: &Limits,
) -> std::result::Result<Point, (String, String)> {
    let at = |field: &str| format!("points[{i}].{field}");
    let value_ok =
        |field: String, v: f64| validate::value(v).map_err(|r| (field, format!("value {r}")));
    let timestamp_ms = base_ms
        .checked_add(p.t)
        .ok_or_else(|| (at("t"), "timestamp overflows".to_string()))?;
    if timestamp_ms < now_ms - MAX_PAST_MS {
        return Err((at("t"), "timestamp is more than 14 days old".into()));
    }
    if timestamp_ms > now_ms + MAX_FUTURE_MS {
        return Err((
            at("t"),
            "timestamp is more than 2 hours in the future".into(),
        ));
    }
    let expected = match s.kind {
        Kind::Counter | Kind::Gauge => "x",
        Kind::Distribution => "vs",
        Kind::Statistics => "st",
    };
    let present: Vec<&str> = [
        ("x", p.x.is_some()),
        ("vs", p.vs.is_some()),
        ("cs", p.cs.is_some()),
        ("st", p.st.is_some()),
    ]
    .into_iter()
    .filter_map(|(f, here)| here.then_some(f))
    .collect();
    if let Some(extra) = present
        .iter()
        .find(|f| **f != expected && !(expected == "vs" && **f == "cs"))
    {
        return Err((
            at(extra),
            format!("field does not belong to a {:?} series", s.kind),
        ));
    }
    let value = match s.kind {
        Kind::Counter | Kind::Gauge => {
            let x = p.x.ok_or_else(|| (at("x"), "missing".to_string()))?;
            value_ok(at("x"), x)?;
            Value::Scalar(x)
        }
        Kind::Distribution => {
            let values = p.vs.ok_or_else(|| (at("vs"), "missing".to_string()))?;
            if values.is_empty() {
                return Err((at("vs"), "has no values".into()));
            }
            if values.len() > limits.max_values_per_point {
                return Err((
                    at("vs"),
                    format!(
                        "{} values, more than the limit of {}",
                        values.len(),
                        limits.max_values_per_point
                    ),
                ));
            }
            for (j, v) in values.iter().enumerate() {
                value_ok(at(&format!("vs[{j}]")), *v)?;
            }
            let counts = match p.cs {
                None => vec![1.0; values.len()],
                Some(cs) if cs.len() != values.len() => {
                    return Err((
                        at("cs"),
                        format!("has {} counts for {} values", cs.len(), values.len()),
                    ));
                }
                Some(cs) => cs,
            };
            for (j, c) in counts.iter().enumerate() {
                validate::count(*c).map_err(|r| (at(&format!("cs[{j}]")), format!("count {r}")))?;
            }
            Value::Distribution { values, counts }
        }
        Kind::Statistics => {
            let [count, sum, min, max] = p.st.ok_or_else(|| (at("st"), "missing".to_string()))?;
            validate::count(count).map_err(|r| (at("st[0]"), format!("count {r}")))?;
            value_ok(at("st[1]"), sum)?;
            value_ok(at("st[2]"), min)?;
            value_ok(at("st[3]"), max)?;
            if min > max {
                return Err((at("st"), "minimum is larger than maximum".into()));
            }
            Value::Statistics(StatisticSet {
                count,
                sum,
                min,
                max,
            })
        }
    };
    Ok(Point {
        series,
        timestamp_ms,
        value,
    })
}
