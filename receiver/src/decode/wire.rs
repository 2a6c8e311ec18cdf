//! edgepush's wire formats (see `docs/wire-format.md`): v1, JSON, v2,
//! binary, and v3, binary with shared dimension sets, each decoded and
//! validated into the model.

use edgepush_protocol::validate::{self, Invalid};
use edgepush_protocol::wire::{self, Kind};
use edgepush_protocol::{Resolution, Unit};

use super::{Decoded, Rejection, build, json_path};
use crate::error::{Error, Result};
use crate::limits::Limits;
use crate::model::{Batch, Point, Series, StatisticSet, Value};

/// Which edgepush wire format a `Content-Type` names: `Ok(None)` for other
/// media types, an error for an edgepush wire version this receiver does
/// not speak.
pub fn accepts(content_type: &str) -> Result<Option<wire::Version>> {
    let media = content_type.split(';').next().unwrap_or("").trim();
    for format in [wire::Version::V1, wire::Version::V2, wire::Version::V3] {
        if media.eq_ignore_ascii_case(format.content_type()) {
            return Ok(Some(format));
        }
    }
    let lower = media.to_ascii_lowercase();
    if let Some(version) = lower.strip_prefix("application/vnd.edgepush.v") {
        let version = version.strip_suffix("+json").unwrap_or(version);
        return Err(Error::new(
            415,
            "unsupported_version",
            format!(
                "wire version {version} is not supported; this receiver speaks {}, {} and {}",
                wire::v1::CONTENT_TYPE,
                wire::v2::CONTENT_TYPE,
                wire::v3::CONTENT_TYPE
            ),
        )
        .field("content-type"));
    }
    Ok(None)
}

/// Decodes and validates a wire v2 batch (already decompressed): the same
/// batch as v1 in its binary encoding, so the same checks follow. A body
/// that is not v2 is refused whole, naming the field being read and the
/// byte where it went wrong.
pub fn decode_v2(bytes: &[u8], now_ms: i64, limits: &Limits) -> Result<Decoded> {
    let raw = wire::v2::decode_within(bytes, limits.max_series, limits.max_points)
        .map_err(|e| refused(2, e))?;
    validate(raw, now_ms, limits)
}

/// Decodes and validates a wire v3 batch (already decompressed): v2 with
/// shared dimension sets, checked as v2 is; its series and sets are
/// counted against `limits.max_series` before they are made.
pub fn decode_v3(bytes: &[u8], now_ms: i64, limits: &Limits) -> Result<Decoded> {
    let raw = wire::v3::decode_within(bytes, limits.max_series, limits.max_points)
        .map_err(|e| refused(3, e))?;
    validate(raw, now_ms, limits)
}

/// The answer to a binary body of wire `version` that did not decode: 413
/// past a limit (points, or series and sets), else 400 naming the field and
/// byte.
fn refused(version: u32, e: wire::v2::DecodeError) -> Error {
    if e.over_limit {
        let error = if e.field == "points" {
            "too_many_points"
        } else {
            "too_many_series"
        };
        return Error::new(413, error, e.reason).field(e.field);
    }
    Error::new(
        400,
        "invalid_body",
        format!(
            "not a wire v{version} batch: {} at byte {}",
            e.reason, e.offset
        ),
    )
    .field(e.field)
}

/// Decodes and validates a wire v1 batch (already decompressed).
///
/// Problems with the batch as a whole (malformed JSON, version, id,
/// namespace, common dimensions, limits) refuse it all. Problems with one
/// series or point refuse just those points, each named in the result.
pub fn decode_v1(json: &[u8], now_ms: i64, limits: &Limits) -> Result<Decoded> {
    // One parse, without tracking where it is; a failure is located
    // afterwards from the error's line and column.
    let raw: wire::Batch<'_> = serde_json::from_slice(json).map_err(|e| {
        let at = if e.is_eof() {
            json.len()
        } else {
            json_path::offset(json, e.line(), e.column())
        };
        let path = json_path::at(json, at);
        let err = Error::new(400, "invalid_json", e.to_string());
        if path.is_empty() {
            err
        } else {
            err.field(path)
        }
    })?;

    if raw.v != wire::v1::VERSION {
        return Err(Error::new(
            400,
            "unsupported_version",
            format!(
                "version {} is not supported; this receiver speaks {}",
                raw.v,
                wire::v1::VERSION
            ),
        )
        .field("v"));
    }
    validate(raw, now_ms, limits)
}

/// Checks a batch, v1 or v2, and builds the model from what is valid.
fn validate(raw: wire::Batch<'_>, now_ms: i64, limits: &Limits) -> Result<Decoded> {
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
    if raw.dims.0.len() > limits.max_dimensions {
        return Err(Error::new(
            400,
            "too_many_dimensions",
            format!(
                "{} common dimensions, more than the {} allowed (limits.max_dimensions)",
                raw.dims.0.len(),
                limits.max_dimensions
            ),
        )
        .field("dims"));
    }
    for (name, value) in &raw.dims.0 {
        validate::dimension_name(name)
            .map_err(|r| invalid(format!("dims.{name}"), "dimension name", r))?;
        validate::dimension_value(value)
            .map_err(|r| invalid(format!("dims.{name}"), "dimension value", r))?;
        build::value_length(value, limits).map_err(|reason| {
            Error::new(400, "invalid_dimension", reason).field(format!("dims.{name}"))
        })?;
    }

    // Each series is built with its own copy of the common dimensions and
    // of its set: common dimensions, and wire v3's sets shared by many
    // series, let a small body ask for far more than its size. The copies
    // are bounded as a decompressed body is.
    let pair_bytes =
        |d: &wire::Dimensions<'_>| -> usize { d.0.iter().map(|(n, v)| n.len() + v.len()).sum() };
    let common_bytes = pair_bytes(&raw.dims);
    let copied = raw.series.iter().fold(0usize, |total, s| {
        total
            .saturating_add(common_bytes)
            .saturating_add(pair_bytes(&s.d))
    });
    if copied > limits.max_decompressed_bytes {
        return Err(Error::new(
            413,
            "too_many_series",
            format!(
                "the series' dimensions come to {copied} bytes, each with the common ones, \
                 more than the {} a batch may decompress to",
                limits.max_decompressed_bytes
            ),
        )
        .field("series"));
    }

    // Validate each series once; points of a bad series are refused with its reason.
    let mut series = Vec::with_capacity(raw.series.len());
    let mut index: Vec<std::result::Result<usize, (String, String)>> =
        Vec::with_capacity(raw.series.len());
    for (i, s) in raw.series.iter().enumerate() {
        match check_series(i, s, &raw.dims, limits) {
            Ok(valid) => {
                index.push(Ok(series.len()));
                series.push(valid);
            }
            Err(problem) => index.push(Err(problem)),
        }
    }

    let mut points = Vec::with_capacity(raw.points.len());
    let mut indices = Vec::with_capacity(raw.points.len());
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
            Ok(point) => {
                points.push(point);
                indices.push(i);
            }
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
        indices,
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
    limits: &Limits,
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
    if total > limits.max_dimensions {
        return Err((
            at("d"),
            format!(
                "{total} dimensions with the common ones, more than the {} allowed (limits.max_dimensions)",
                limits.max_dimensions
            ),
        ));
    }
    let mut dimensions = Vec::with_capacity(total);
    for (name, value) in &common.0 {
        dimensions.push((name.to_string(), value.to_string()));
    }
    for (name, value) in &s.d.0 {
        let field = || at(&format!("d.{name}"));
        build::dimension(name, value, limits).map_err(|reason| (field(), reason))?;
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
    // The field name is only formatted when the value is refused.
    let value_ok = |field: &dyn Fn() -> String, v: f64| {
        validate::value(v).map_err(|r| (field(), format!("value {r}")))
    };
    let timestamp_ms = base_ms
        .checked_add(p.t)
        .ok_or_else(|| (at("t"), "timestamp overflows".to_string()))?;
    build::timestamp(timestamp_ms, now_ms).map_err(|reason| (at("t"), reason.to_string()))?;
    // Which value fields the kind allows; any other present field is refused.
    let allowed: &[&str] = match s.kind {
        Kind::Counter => &["x", "st"],
        Kind::Gauge => &["x", "st", "sv", "b"],
        Kind::Distribution => &["vs", "cs", "st"],
        Kind::Statistics => &["st"],
    };
    let fields = [
        ("x", p.x.is_some()),
        ("vs", p.vs.is_some()),
        ("cs", p.cs.is_some()),
        ("st", p.st.is_some()),
        ("sv", p.sv.is_some()),
        ("b", p.b.is_some()),
    ];
    if let Some((extra, _)) = fields
        .iter()
        .find(|(f, here)| *here && !allowed.contains(f))
    {
        return Err((
            at(extra),
            format!("field does not belong to a {:?} series", s.kind),
        ));
    }
    let stats =
        |st: Option<[f64; 4]>| -> std::result::Result<Option<StatisticSet>, (String, String)> {
            let Some([count, sum, min, max]) = st else {
                return Ok(None);
            };
            validate::statistic_set([count, sum, min, max]).map_err(|(part, r)| match part {
                Some(0) => (at("st[0]"), format!("count {r}")),
                Some(i) => (at(&format!("st[{i}]")), format!("value {r}")),
                None => (at("st"), r.to_string()),
            })?;
            Ok(Some(StatisticSet {
                count,
                sum,
                min,
                max,
            }))
        };
    let value = match s.kind {
        // A counter merged from several contributions (the receiver's
        // aggregator, in its envelopes): their statistics.
        Kind::Counter if p.st.is_some() => {
            if p.x.is_some() {
                return Err((at("x"), "a counter point has one value: x or st".into()));
            }
            Value::Statistics(stats(p.st)?.ok_or_else(|| (at("st"), "missing".to_string()))?)
        }
        Kind::Counter => {
            let x = p.x.ok_or_else(|| (at("x"), "missing".to_string()))?;
            value_ok(&|| at("x"), x)?;
            Value::Counter(x)
        }
        Kind::Gauge if p.sv.is_some() || p.b.is_some() => {
            // A line-protocol string or boolean field: the only value.
            let extra = [
                ("x", p.x.is_some()),
                ("st", p.st.is_some()),
                ("b", p.sv.is_some() && p.b.is_some()),
            ]
            .into_iter()
            .find_map(|(f, here)| here.then_some(f));
            if let Some(extra) = extra {
                return Err((at(extra), "a gauge point has one value: x, sv or b".into()));
            }
            match (p.sv, p.b) {
                (Some(text), _) => {
                    validate::string_field(&text)
                        .map_err(|r| (at("sv"), format!("string value {r}")))?;
                    Value::Text(text)
                }
                (None, b) => Value::Boolean(b == Some(true)),
            }
        }
        Kind::Gauge => {
            let last = p.x.ok_or_else(|| (at("x"), "missing".to_string()))?;
            value_ok(&|| at("x"), last)?;
            Value::Gauge {
                last,
                stats: stats(p.st)?,
            }
        }
        Kind::Distribution if p.vs.is_none() && p.st.is_some() => {
            // Values the emitter summarised when its table was full.
            if p.cs.is_some() {
                return Err((at("cs"), "counts without values".into()));
            }
            Value::Statistics(stats(p.st)?.ok_or_else(|| (at("st"), "missing".to_string()))?)
        }
        Kind::Distribution => {
            if p.st.is_some() {
                return Err((
                    at("st"),
                    "a distribution point has values or a statistic set, not both".into(),
                ));
            }
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
                value_ok(&|| at(&format!("vs[{j}]")), *v)?;
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
            Value::Statistics(stats(p.st)?.ok_or_else(|| (at("st"), "missing".to_string()))?)
        }
    };
    Ok(Point {
        series,
        timestamp_ms,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    fn decode_str(json: &str) -> Result<Decoded> {
        decode_v1(json.as_bytes(), NOW, &Limits::default())
    }

    fn batch_with(series: &str, points: &str) -> String {
        format!(
            r#"{{"v":1,"id":"b-1","ns":"Shop","t":{NOW},"dims":{{"service":"api"}},"series":[{series}],"points":[{points}]}}"#
        )
    }

    #[test]
    fn a_counter_carries_one_value_or_the_statistics_of_merged_contributions() {
        let d = decode_str(&batch_with(
            r#"{"n":"orders","k":"c"}"#,
            r#"{"s":0,"st":[3,12,3,5]},{"s":0,"x":2,"st":[1,2,2,2]},{"s":0}"#,
        ))
        .expect("partly valid");
        assert_eq!(
            d.batch.points[0].value,
            Value::Statistics(StatisticSet {
                count: 3.0,
                sum: 12.0,
                min: 3.0,
                max: 5.0
            })
        );
        let got: Vec<(&str, &str)> = d
            .rejected
            .iter()
            .map(|r| (r.field.as_str(), r.reason.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("points[1].x", "a counter point has one value: x or st"),
                ("points[2].x", "missing")
            ]
        );
    }

    #[test]
    fn a_valid_batch_decodes_into_the_model() {
        let d = decode_str(&batch_with(
            r#"{"n":"lat","k":"d","u":"Milliseconds","d":{"route":"/a"},"r":1},{"n":"n","k":"s"}"#,
            r#"{"s":0,"t":5,"vs":[1,2],"cs":[3,1]},{"s":1,"st":[2,3,1,2]}"#,
        ))
        .expect("valid");
        assert!(d.rejected.is_empty());
        let b = d.batch;
        assert_eq!((b.id.as_str(), b.namespace.as_str()), ("b-1", "Shop"));
        assert_eq!(
            b.series[0].dimensions,
            [
                ("service".to_string(), "api".to_string()),
                ("route".to_string(), "/a".to_string())
            ]
        );
        assert_eq!(b.series[0].unit, Unit::Milliseconds);
        assert_eq!(b.series[0].resolution, Resolution::High);
        assert_eq!(b.points[0].timestamp_ms, NOW + 5);
        assert_eq!(
            b.points[0].value,
            Value::Distribution {
                values: vec![1.0, 2.0],
                counts: vec![3.0, 1.0]
            }
        );
        assert_eq!(
            b.points[1].value,
            Value::Statistics(StatisticSet {
                count: 2.0,
                sum: 3.0,
                min: 1.0,
                max: 2.0
            })
        );
    }

    /// Whole-batch refusals: (body, status, field, words in the message).
    #[test]
    fn batch_level_refusals() {
        let too_many_common = {
            let dims: Vec<String> = (0..31).map(|i| format!(r#""d{i}":"v""#)).collect();
            format!(
                r#"{{"v":1,"id":"b","ns":"N","t":0,"dims":{{{}}},"series":[],"points":[]}}"#,
                dims.join(",")
            )
        };
        let cases: Vec<(String, u16, Option<&str>, &str)> = vec![
            ("{".into(), 400, None, "EOF"),
            (r#"{"v":1}"#.into(), 400, None, "missing field"),
            (
                r#"{"v":2,"id":"b","ns":"N","t":0,"series":[],"points":[]}"#.into(),
                400,
                Some("v"),
                "version 2",
            ),
            (
                r#"{"v":1,"id":"b c","ns":"N","t":0,"series":[],"points":[]}"#.into(),
                400,
                Some("id"),
                "batch id",
            ),
            (
                r#"{"v":1,"id":"b","ns":"AWS/EC2","t":0,"series":[],"points":[]}"#.into(),
                400,
                Some("ns"),
                "AWS/",
            ),
            (
                r#"{"v":1,"id":"b","ns":"N","t":0,"dims":{"d":""},"series":[],"points":[]}"#.into(),
                400,
                Some("dims.d"),
                "empty",
            ),
            (too_many_common, 400, Some("dims"), "31 common dimensions"),
            (
                batch_with(r#"{"n":"a","k":"c"}"#, r#"{"s":0,"x":NaN}"#),
                400,
                Some("points[0].x"),
                "expected value",
            ),
            (
                batch_with(r#"{"n":"a","k":"c"}"#, r#"{"s":0,"x":1e999}"#),
                400,
                Some("points[0].x"),
                "out of range",
            ),
            (
                batch_with(r#"{"n":"a","k":"q"}"#, ""),
                400,
                Some("series[0].k"),
                "unknown variant",
            ),
            (
                batch_with(r#"{"n":"a","k":"c"}"#, r#"{"s":0,"x":"1"}"#),
                400,
                Some("points[0].x"),
                "invalid type",
            ),
        ];
        for (body, status, field, words) in cases {
            let e = decode_str(&body).expect_err(&body);
            assert_eq!(e.status, status, "{body}: {e}");
            assert_eq!(e.field.as_deref(), field, "{body}: {e}");
            assert!(e.message.contains(words), "{body}: {e}");
        }
    }

    #[test]
    fn limits_refuse_the_batch_with_413() {
        let limits = Limits {
            max_points: 2,
            max_series: 1,
            ..Limits::default()
        };
        let body = batch_with(
            r#"{"n":"a","k":"c"}"#,
            r#"{"s":0,"x":1},{"s":0,"x":1},{"s":0,"x":1}"#,
        );
        let e = decode_v1(body.as_bytes(), NOW, &limits).expect_err("3 points");
        assert_eq!((e.status, e.field.as_deref()), (413, Some("points")));
        let body = batch_with(r#"{"n":"a","k":"c"},{"n":"b","k":"c"}"#, "");
        let e = decode_v1(body.as_bytes(), NOW, &limits).expect_err("2 series");
        assert_eq!((e.status, e.field.as_deref()), (413, Some("series")));
    }

    /// The same batch in v1, v2 and v3 decodes to the same model; v3's
    /// series count is bounded before its series are made.
    #[test]
    fn the_binary_versions_decode_as_v1_does() {
        let json = batch_with(
            r#"{"n":"lat","k":"d","u":"Milliseconds","d":{"route":"/a"},"r":1},{"n":"n","k":"s","d":{"route":"/a"}},{"n":"c","k":"c"}"#,
            r#"{"s":0,"t":5,"vs":[1,2],"cs":[3,1]},{"s":1,"st":[2,3,1,2]},{"s":2,"x":4}"#,
        );
        let batch: wire::Batch<'_> = serde_json::from_str(&json).expect("v1");
        let v1 = decode_str(&json).expect("v1");
        let v2 = decode_v2(&wire::v2::encode(&batch), NOW, &Limits::default()).expect("v2");
        let v3_body = wire::v3::encode(&batch);
        let v3 = decode_v3(&v3_body, NOW, &Limits::default()).expect("v3");
        assert_eq!(v1.batch, v2.batch);
        assert_eq!(v1.batch, v3.batch);
        let limits = Limits {
            max_series: 2,
            ..Limits::default()
        };
        let e = decode_v3(&v3_body, NOW, &limits).expect_err("3 series");
        assert_eq!(
            (e.status, e.error, e.field.as_deref()),
            (413, "too_many_series", Some("series"))
        );
        assert!(e.message.contains("3 series"), "{e}");
        let few_points = Limits {
            max_points: 2,
            ..Limits::default()
        };
        for e in [
            decode_v2(&wire::v2::encode(&batch), NOW, &few_points).expect_err("3 points"),
            decode_v3(&v3_body, NOW, &few_points).expect_err("3 points"),
        ] {
            assert_eq!(
                (e.status, e.error, e.field.as_deref()),
                (413, "too_many_points", Some("points"))
            );
        }
        // A series pointing past the sets: the body is refused, named.
        // The last series' set difference is the byte before the points'
        // count, whose place is known from the points' own encoding.
        let points = {
            let mut out = Vec::new();
            let mut previous = None;
            for p in &batch.points {
                wire::v2::svarint(&mut out, wire::v2::series_delta(p.s, previous));
                previous = Some(p.s);
                wire::v2::point(&mut out, p);
            }
            out
        };
        let at = v3_body.len() - points.len() - 2;
        assert_eq!(v3_body[at + 1], 3, "the points' count");
        let mut broken = v3_body.clone();
        broken[at] = 4;
        let e = decode_v3(&broken, NOW, &Limits::default()).expect_err("no such set");
        assert_eq!((e.status, e.error), (400, "invalid_body"));
        assert_eq!(e.field.as_deref(), Some("series[2].d"), "{e}");
    }

    /// A set shared by many series (or common dimensions, shared by all)
    /// would be copied into each: the copies are bounded as a decompressed
    /// body is, before any is made.
    #[test]
    fn dimensions_copied_into_every_series_are_bounded() {
        let value = "v".repeat(1000);
        let set: Vec<String> = (0..30).map(|i| format!(r#""d{i}":"{value}""#)).collect();
        let series: Vec<String> = (0..400)
            .map(|i| format!(r#"{{"n":"m{i}","k":"c","d":{{{}}}}}"#, set.join(",")))
            .collect();
        let json = batch_with(&series.join(","), r#"{"s":0,"x":1}"#);
        let batch: wire::Batch<'_> = serde_json::from_str(&json).expect("v1");
        let body = wire::v3::encode(&batch);
        // 400 series x 30 KB of dimensions: 12 MB of copies from a body
        // that holds the set once.
        assert!(body.len() < 40_000, "{}", body.len());
        let e = decode_v3(&body, NOW, &Limits::default()).expect_err("12 MB of copies");
        assert_eq!(
            (e.status, e.error, e.field.as_deref()),
            (413, "too_many_series", Some("series"))
        );
        assert!(e.message.contains("a batch may decompress to"), "{e}");
        // A tenth of the series fits.
        let fewer = batch_with(&series[..40].join(","), r#"{"s":0,"x":1}"#);
        let fewer: wire::Batch<'_> = serde_json::from_str(&fewer).expect("v1");
        assert!(decode_v3(&wire::v3::encode(&fewer), NOW, &Limits::default()).is_ok());
    }

    #[test]
    fn dimension_bounds_are_configurable() {
        let limits = Limits {
            max_dimensions: 2,
            max_dimension_value_bytes: 4,
            ..Limits::default()
        };
        // The batch has one common dimension (service=api).
        let body = batch_with(
            r#"{"n":"ok","k":"c","d":{"a":"1234"}},{"n":"wide","k":"c","d":{"a":"1","b":"2"}},{"n":"long","k":"c","d":{"a":"12345"}}"#,
            r#"{"s":0,"x":1},{"s":1,"x":1},{"s":2,"x":1}"#,
        );
        let d = decode_v1(body.as_bytes(), NOW, &limits).expect("partly accepted");
        assert_eq!(d.batch.points.len(), 1);
        let reasons: Vec<(&str, &str)> = d
            .rejected
            .iter()
            .map(|r| (r.field.as_str(), r.reason.as_str()))
            .collect();
        assert_eq!(
            reasons,
            [
                (
                    "series[1].d",
                    "3 dimensions with the common ones, more than the 2 allowed (limits.max_dimensions)"
                ),
                (
                    "series[2].d.a",
                    "dimension value is 5 bytes, more than the 4 allowed (limits.max_dimension_value_bytes)"
                ),
            ]
        );
        let one = Limits {
            max_dimensions: 0,
            ..limits
        };
        let e = decode_v1(body.as_bytes(), NOW, &one).expect_err("common ones too many");
        assert_eq!((e.status, e.field.as_deref()), (400, Some("dims")));
        // A common dimension's value too long refuses the batch.
        let short = Limits {
            max_dimension_value_bytes: 2,
            ..limits
        };
        let e = decode_v1(body.as_bytes(), NOW, &short).expect_err("service=api is 3 bytes");
        assert_eq!(
            (e.status, e.error, e.field.as_deref()),
            (400, "invalid_dimension", Some("dims.service"))
        );
        assert!(e.message.contains("3 bytes, more than the 2"), "{e}");
    }

    /// Point-level refusals: the other points of the batch are still accepted.
    #[test]
    fn point_level_refusals_name_point_field_and_reason() {
        let wide: Vec<String> = (0..30).map(|i| format!(r#""d{i}":"v""#)).collect();
        let series = format!(
            r#"{{"n":"ok","k":"c"}},{{"n":"wide","k":"c","d":{{{}}}}},{{"n":"bad unit","k":"g","u":"Parsecs"}},{{"n":"emptydim","k":"c","d":{{"x":""}}}},{{"n":"d","k":"d"}},{{"n":"st","k":"s"}},{{"n":"_x","k":"c"}},{{"n":"res","k":"c","r":5}}"#,
            wide.join(",")
        );
        let points = [
            r#"{"s":0,"x":1}"#,                 // 0 ok
            r#"{"s":1,"x":1}"#,                 // 1 31 dimensions with the common one
            r#"{"s":2,"x":1}"#,                 // 2 unknown unit
            r#"{"s":3,"x":1}"#,                 // 3 empty dimension value
            r#"{"s":0,"x":1e200}"#,             // 4 out of range
            r#"{"s":4,"vs":[1,2],"cs":[1]}"#,   // 5 counts length
            r#"{"s":4,"vs":[1],"cs":[0]}"#,     // 6 zero count
            r#"{"s":5,"st":[1,1,3,2]}"#,        // 7 min > max
            r#"{"s":0,"vs":[1]}"#,              // 8 wrong field for kind
            r#"{"s":9,"x":1}"#,                 // 9 no such series
            r#"{"s":0,"t":-1300000000,"x":1}"#, // 10 too old
            r#"{"s":0,"t":7300000,"x":1}"#,     // 11 too far ahead
            r#"{"s":6,"x":1}"#,                 // 12 leading underscore
            r#"{"s":7,"x":1}"#,                 // 13 resolution
            r#"{"s":4,"vs":[]}"#,               // 14 no values
            r#"{"s":0}"#,                       // 15 missing value
            r#"{"s":0,"x":2}"#,                 // 16 ok
        ]
        .join(",");
        let d = decode_str(&batch_with(&series, &points)).expect("partly valid");
        assert_eq!(d.batch.points.len(), 2);
        assert_eq!(d.batch.points[1].value, Value::Counter(2.0));
        let got: Vec<(usize, &str, &str)> = d
            .rejected
            .iter()
            .map(|r| (r.point, r.field.as_str(), r.reason.as_str()))
            .collect();
        let want: Vec<(usize, &str, &str)> = vec![
            (
                1,
                "series[1].d",
                "31 dimensions with the common ones, more than the 30 allowed (limits.max_dimensions)",
            ),
            (2, "series[2].u", "\"Parsecs\" is not a CloudWatch unit"),
            (3, "series[3].d.x", "dimension value is empty"),
            (4, "points[4].x", "value is outside -2^360..2^360"),
            (5, "points[5].cs", "has 1 counts for 2 values"),
            (6, "points[6].cs[0]", "count is not a positive count"),
            (7, "points[7].st", "minimum is larger than maximum"),
            (
                8,
                "points[8].vs",
                "field does not belong to a Counter series",
            ),
            (9, "points[9].s", "refers to series 9, but the batch has 8"),
            (10, "points[10].t", "timestamp is more than 14 days old"),
            (
                11,
                "points[11].t",
                "timestamp is more than 2 hours in the future",
            ),
            (
                12,
                "series[6].n",
                "metric name starts with '_', which is reserved",
            ),
            (13, "series[7].r", "storage resolution 5 is not 1 or 60"),
            (14, "points[14].vs", "has no values"),
            (15, "points[15].x", "missing"),
        ];
        assert_eq!(got, want);
        assert_eq!(d.rejected[1].metric.as_deref(), Some("bad unit"));
        assert_eq!(d.rejected[8].metric, None, "no such series");
    }

    /// Line-protocol string and boolean fields, as queue messages and the
    /// spool carry them: a gauge point with `sv` or `b` instead of `x`.
    #[test]
    fn gauges_may_carry_one_string_or_boolean_instead_of_a_number() {
        let long = "s".repeat(64 * 1024 + 1);
        let points = [
            r#"{"s":0,"sv":"v1 \"blue\""}"#,
            r#"{"s":0,"sv":""}"#,
            r#"{"s":0,"b":false}"#,
            r#"{"s":0,"x":1,"sv":"both"}"#,
            r#"{"s":0,"sv":"a","b":true}"#,
            r#"{"s":0,"b":true,"st":[1,1,1,1]}"#,
            r#"{"s":1,"sv":"counter"}"#,
            r#"{"s":0,"sv":"two\nlines"}"#,
            &format!(r#"{{"s":0,"sv":"{long}"}}"#),
        ]
        .join(",");
        let d = decode_str(&batch_with(
            r#"{"n":"g","k":"g"},{"n":"c","k":"c"}"#,
            &points,
        ))
        .expect("partly valid");
        let values: Vec<&Value> = d.batch.points.iter().map(|p| &p.value).collect();
        assert_eq!(
            values,
            [
                &Value::Text("v1 \"blue\"".into()),
                &Value::Text(String::new()),
                &Value::Boolean(false)
            ]
        );
        let got: Vec<(usize, &str, &str)> = d
            .rejected
            .iter()
            .map(|r| (r.point, r.field.as_str(), r.reason.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (3, "points[3].x", "a gauge point has one value: x, sv or b"),
                (4, "points[4].b", "a gauge point has one value: x, sv or b"),
                (5, "points[5].st", "a gauge point has one value: x, sv or b"),
                (
                    6,
                    "points[6].sv",
                    "field does not belong to a Counter series"
                ),
                (
                    7,
                    "points[7].sv",
                    "string value contains a control character"
                ),
                (8, "points[8].sv", "string value is longer than 65536 bytes"),
            ]
        );
    }

    #[test]
    fn gauges_may_carry_statistics_and_distributions_a_summary() {
        let d = decode_str(&batch_with(
            r#"{"n":"g","k":"g"},{"n":"d","k":"d"}"#,
            r#"{"s":0,"x":2,"st":[3,6,1,3]},{"s":0,"x":5},{"s":1,"st":[10,50,1,9]}"#,
        ))
        .expect("valid");
        assert!(d.rejected.is_empty(), "{:?}", d.rejected);
        let values: Vec<&Value> = d.batch.points.iter().map(|p| &p.value).collect();
        assert_eq!(
            values,
            [
                &Value::Gauge {
                    last: 2.0,
                    stats: Some(StatisticSet {
                        count: 3.0,
                        sum: 6.0,
                        min: 1.0,
                        max: 3.0
                    })
                },
                &Value::Gauge {
                    last: 5.0,
                    stats: None
                },
                &Value::Statistics(StatisticSet {
                    count: 10.0,
                    sum: 50.0,
                    min: 1.0,
                    max: 9.0
                }),
            ]
        );
        let d = decode_str(&batch_with(
            r#"{"n":"d","k":"d"}"#,
            r#"{"s":0,"vs":[1],"st":[1,1,1,1]},{"s":0,"cs":[1],"st":[1,1,1,1]}"#,
        ))
        .expect("decodes");
        let reasons: Vec<(&str, &str)> = d
            .rejected
            .iter()
            .map(|r| (r.field.as_str(), r.reason.as_str()))
            .collect();
        assert_eq!(
            reasons,
            [
                (
                    "points[0].st",
                    "a distribution point has values or a statistic set, not both"
                ),
                ("points[1].cs", "counts without values"),
            ]
        );
    }

    #[test]
    fn media_types() {
        let v1 = Some(Some(wire::Version::V1));
        assert_eq!(accepts("application/vnd.edgepush.v1+json").ok(), v1);
        assert_eq!(
            accepts("Application/VND.edgepush.v1+JSON; charset=utf-8").ok(),
            v1
        );
        assert_eq!(
            accepts("application/vnd.edgepush.v2").ok(),
            Some(Some(wire::Version::V2))
        );
        assert_eq!(
            accepts("application/vnd.edgepush.v3").ok(),
            Some(Some(wire::Version::V3))
        );
        assert_eq!(accepts("application/json").ok(), Some(None));
        for other in [
            "application/vnd.edgepush.v2+json",
            "application/vnd.edgepush.v4",
        ] {
            let e = accepts(other).expect_err(other);
            assert_eq!((e.status, e.error), (415, "unsupported_version"));
            assert!(e.message.contains(wire::v2::CONTENT_TYPE), "{}", e.message);
        }
    }
}
