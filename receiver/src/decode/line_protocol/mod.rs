//! InfluxDB line protocol (`POST /write`, `POST /api/v2/write`), read as
//! InfluxData's reference decoder reads it (`syntax`).
//!
//! Mapping (see `docs/ingest-formats.md`): each numeric field of a line is
//! one point of the metric `<measurement><separator><field key>` (a field
//! named `value_field` is named by its measurement alone), tags are its
//! dimensions, and numeric fields become gauges (or counters, as
//! configured). Integers become floats (exact up to 2^53). String and
//! boolean fields become gauges with a string or boolean value, which
//! line-protocol sinks store and CloudWatch sinks refuse per point. The
//! namespace is the database (v1 `db`) or bucket (v2 `bucket`) unless one is
//! configured.

use edgepush_protocol::Unit;
use edgepush_protocol::wire::Kind;
use serde::Deserialize;

use super::Decoded;
use super::build::{self, Builder, Sample};
use crate::error::{Error, Result};
use crate::limits::Limits;
use crate::model::Value;

pub mod syntax;

use syntax::Field;

/// How lines become metrics (configurable, `[formats.line_protocol]`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Mapping {
    /// Joins the measurement and the field key into the metric name.
    /// Default `_` (`cpu,host=a usage_idle=5` is `cpu_usage_idle`).
    pub separator: String,
    /// A field with this key is named by its measurement alone (`value`,
    /// Telegraf's and many clients' single field); empty for none.
    pub value_field: String,
    /// What numeric fields become: `gauge` (default) or `counter`.
    pub kind: NumericKind,
    /// The namespace of every write; by default the write's database
    /// (`db`) or bucket (`bucket`).
    pub namespace: Option<String>,
}

impl Default for Mapping {
    fn default() -> Self {
        Mapping {
            separator: "_".into(),
            value_field: "value".into(),
            kind: NumericKind::Gauge,
            namespace: None,
        }
    }
}

/// What a numeric field becomes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NumericKind {
    /// A gauge: the value at the line's time.
    #[default]
    Gauge,
    /// A counter: a sum over the interval, as in StatsD-style writers.
    Counter,
}

/// Timestamp precision of a write (`precision=`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    /// Nanoseconds, the default.
    #[default]
    Nanoseconds,
    /// Microseconds.
    Microseconds,
    /// Milliseconds.
    Milliseconds,
    /// Seconds.
    Seconds,
    /// Minutes (v1 only).
    Minutes,
    /// Hours (v1 only).
    Hours,
}

impl Precision {
    /// Parses `precision=` as v1 (`n`, `u`, `ms`, `s`, `m`, `h`) or v2
    /// (`ns`, `us`, `ms`, `s`) spells it.
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "" | "n" | "ns" => Precision::Nanoseconds,
            "u" | "us" | "µ" | "µs" => Precision::Microseconds,
            "ms" => Precision::Milliseconds,
            "s" => Precision::Seconds,
            "m" => Precision::Minutes,
            "h" => Precision::Hours,
            other => {
                return Err(Error::new(
                    400,
                    "invalid_precision",
                    format!("precision {other:?} is not one of ns, us, ms, s, m, h"),
                )
                .field("precision"));
            }
        })
    }

    /// Nanoseconds in one unit of this precision.
    fn nanos(self) -> i64 {
        match self {
            Precision::Nanoseconds => 1,
            Precision::Microseconds => 1_000,
            Precision::Milliseconds => 1_000_000,
            Precision::Seconds => 1_000_000_000,
            Precision::Minutes => 60_000_000_000,
            Precision::Hours => 3_600_000_000_000,
        }
    }

    /// A timestamp in this precision as milliseconds (floored), or `None`
    /// when it is not a time in nanoseconds within 64 bits (as InfluxDB
    /// reads it).
    pub fn to_ms(self, t: i64) -> Option<i64> {
        t.checked_mul(self.nanos())
            .map(|ns| ns.div_euclid(1_000_000))
    }

    /// `now_ms` truncated to this precision: the time of a line written
    /// without one.
    pub fn truncate_ms(self, now_ms: i64) -> i64 {
        let unit = (self.nanos() / 1_000_000).max(1);
        now_ms - now_ms.rem_euclid(unit)
    }
}

/// What the write's URL says: API version, namespace and precision.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params {
    /// `/api/v2/write` rather than `/write`.
    pub v2: bool,
    /// The database (v1 `db`) or bucket (v2 `bucket`).
    pub database: Option<String>,
    /// Timestamp precision.
    pub precision: Precision,
    /// The v1 password (`p=`), taken as the key when no `Authorization`
    /// header is sent.
    pub password: Option<String>,
}

impl Params {
    /// Reads a write's query string.
    pub fn from_query(v2: bool, query: Option<&str>) -> Result<Self> {
        let mut params = Params {
            v2,
            ..Params::default()
        };
        let database_key = if v2 { "bucket" } else { "db" };
        for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match &*key {
                "precision" => params.precision = Precision::parse(&value)?,
                "p" if !v2 => params.password = Some(value.into_owned()),
                k if k == database_key && !value.is_empty() => {
                    params.database = Some(value.into_owned());
                }
                _ => {}
            }
        }
        if v2 && matches!(params.precision, Precision::Minutes | Precision::Hours) {
            return Err(Error::new(
                400,
                "invalid_precision",
                "precision must be one of ns, us, ms, s",
            )
            .field("precision"));
        }
        Ok(params)
    }
}

/// Decodes a line-protocol body (already decompressed); `named` is the
/// namespace the request named (`Edgepush-Namespace`), which comes before
/// the mapping's and the database. Each line is checked on its own: a bad
/// line is refused (named by its index, counted from 0) while the others go
/// on.
pub fn decode(
    body: &[u8],
    params: &Params,
    mapping: &Mapping,
    named: Option<&str>,
    now_ms: i64,
    limits: &Limits,
) -> Result<Decoded> {
    let database_key = if params.v2 { "bucket" } else { "db" };
    let namespace = named
        .or(mapping.namespace.as_deref())
        .or(params.database.as_deref())
        .map(str::to_string)
        .ok_or_else(|| {
            Error::new(
                400,
                "missing_namespace",
                format!("{database_key} is required: it names the CloudWatch namespace"),
            )
            .field(database_key)
        })?;
    build::check_namespace(&namespace, database_key)?;
    let text = build::text(body)?;
    let kind = match mapping.kind {
        NumericKind::Gauge => Kind::Gauge,
        NumericKind::Counter => Kind::Counter,
    };
    let mut b = Builder::new(limits, now_ms);
    let mut stamped = false;
    for entry in syntax::entries(text) {
        let parsed = match entry {
            Ok(parsed) => parsed,
            Err(e) => {
                let at = format!("lines[{}]", e.line);
                b.refuse(e.line, None, at, format!("invalid line protocol {e}"))?;
                continue;
            }
        };
        let i = parsed.line;
        let at = format!("lines[{i}]");
        let measurement = &*parsed.measurement;
        let timestamp_ms = match parsed.timestamp {
            None => {
                stamped = true;
                Some(params.precision.truncate_ms(now_ms))
            }
            Some(t) => params.precision.to_ms(t),
        };
        let Some(timestamp_ms) = timestamp_ms else {
            b.refuse(
                i,
                Some(measurement),
                format!("{at}.timestamp"),
                "timestamp is out of range for its precision",
            )?;
            continue;
        };
        let dimensions: Vec<(String, String)> = parsed
            .tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for (key, value) in &parsed.fields {
            let key = &**key;
            let name = if !mapping.value_field.is_empty() && key == mapping.value_field {
                measurement.to_string()
            } else {
                format!("{measurement}{}{key}", mapping.separator)
            };
            let field = format!("{at}.fields.{key}");
            let (kind, value) = match value {
                Field::Float(v) => (kind, number(kind, *v)),
                Field::Int(v) => (kind, number(kind, *v as f64)),
                Field::UInt(v) => (kind, number(kind, *v as f64)),
                Field::String(text) => (Kind::Gauge, Value::Text(text.to_string())),
                Field::Bool(b) => (Kind::Gauge, Value::Boolean(*b)),
            };
            b.add(
                i,
                &field,
                Sample {
                    name,
                    kind,
                    unit: Unit::None,
                    dimensions: dimensions.clone(),
                    timestamp_ms,
                    value,
                },
            )?;
        }
    }
    let id = build::content_id("lp", &namespace, body, stamped.then_some(now_ms));
    Ok(b.finish(id, namespace))
}

/// A numeric field's value as `kind`.
fn number(kind: Kind, v: f64) -> Value {
    match kind {
        Kind::Counter => Value::Counter(v),
        _ => Value::Gauge {
            last: v,
            stats: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Point;

    const NOW: i64 = 1_700_000_000_000;

    fn v1(db: &str) -> Params {
        Params::from_query(false, Some(&format!("db={db}&precision=ms"))).expect("params")
    }

    fn decode_str(body: &str) -> Result<Decoded> {
        decode(
            body.as_bytes(),
            &v1("Shop"),
            &Mapping::default(),
            None,
            NOW,
            &Limits::default(),
        )
    }

    #[test]
    fn fields_become_points_of_named_metrics() {
        let body = format!(
            "cpu,host=a,region=eu usage_idle=5.5,usage_user=3i {NOW}\n\
             # a comment\n\n\
             latency,route=/buy value=12u {}\n",
            NOW + 1
        );
        let d = decode_str(&body).expect("decoded");
        assert!(d.rejected.is_empty(), "{:?}", d.rejected);
        assert_eq!(d.batch.namespace, "Shop");
        let names: Vec<&str> = d.batch.series.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["cpu_usage_idle", "cpu_usage_user", "latency"]);
        assert_eq!(
            d.batch.series[0].dimensions,
            vec![("host".into(), "a".into()), ("region".into(), "eu".into())]
        );
        assert_eq!(
            d.batch.points[2],
            Point {
                series: 2,
                timestamp_ms: NOW + 1,
                value: Value::Gauge {
                    last: 12.0,
                    stats: None
                }
            }
        );
        assert_eq!(d.indices, vec![0, 0, 3]);
        assert!(d.batch.id.starts_with("lp-"));
        // The same request again has the same id: a retry is recognised.
        assert_eq!(decode_str(&body).expect("again").batch.id, d.batch.id);
    }

    #[test]
    fn precisions_and_missing_timestamps() {
        for (precision, t, ms) in [
            ("ns", NOW * 1_000_000 + 999_999, NOW),
            ("us", NOW * 1_000 + 999, NOW),
            ("ms", NOW, NOW),
            ("s", NOW / 1000, NOW),
        ] {
            let params =
                Params::from_query(true, Some(&format!("bucket=b&org=o&precision={precision}")))
                    .expect("params");
            let d = decode(
                format!("m v=1 {t}").as_bytes(),
                &params,
                &Mapping::default(),
                None,
                NOW,
                &Limits::default(),
            )
            .expect("decoded");
            assert_eq!(d.batch.points[0].timestamp_ms, ms, "{precision}");
            assert_eq!(d.batch.namespace, "b");
        }
        let a = decode_str("m value=1").expect("now");
        assert_eq!(a.batch.points[0].timestamp_ms, NOW);
        // Stamped by the receiver: the same body later is new data.
        assert_ne!(a.batch.id, decode_str("m value=1").expect("again").batch.id);
        let e = Params::from_query(true, Some("bucket=b&precision=h")).expect_err("v2 hours");
        assert_eq!(e.field.as_deref(), Some("precision"));
    }

    #[test]
    fn mapping_is_configurable() {
        let mapping = Mapping {
            separator: ".".into(),
            value_field: String::new(),
            kind: NumericKind::Counter,
            namespace: Some("Fixed".into()),
        };
        let d = decode(
            b"req,svc=a value=2 1",
            &v1("ignored"),
            &mapping,
            None,
            1,
            &Limits::default(),
        )
        .expect("decoded");
        assert_eq!(d.batch.namespace, "Fixed");
        assert_eq!(d.batch.series[0].name, "req.value");
        assert_eq!(d.batch.series[0].kind, Kind::Counter);
        assert_eq!(d.batch.points[0].value, Value::Counter(2.0));
        // The namespace the request names comes first.
        let d = decode(
            b"req value=2 1",
            &v1("ignored"),
            &mapping,
            Some("Header"),
            1,
            &Limits::default(),
        )
        .expect("decoded");
        assert_eq!(d.batch.namespace, "Header");
    }

    #[test]
    fn string_and_boolean_fields_become_gauges_with_their_value() {
        let body = format!(
            "deploy,host=a version=\"v1.2 \\\"blue\\\" C:\\\\x\",ok=true,n=3i,empty=\"\" {NOW}\n\
             deploy,host=a ok=F {NOW}\n"
        );
        let d = decode(
            body.as_bytes(),
            &v1("Shop"),
            &Mapping {
                kind: NumericKind::Counter,
                ..Mapping::default()
            },
            None,
            NOW,
            &Limits::default(),
        )
        .expect("decoded");
        assert!(d.rejected.is_empty(), "{:?}", d.rejected);
        let got: Vec<(&str, Kind, &Value)> = d
            .batch
            .points
            .iter()
            .map(|p| {
                let s = &d.batch.series[p.series];
                (s.name.as_str(), s.kind, &p.value)
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "deploy_version",
                    Kind::Gauge,
                    &Value::Text("v1.2 \"blue\" C:\\x".into())
                ),
                ("deploy_ok", Kind::Gauge, &Value::Boolean(true)),
                ("deploy_n", Kind::Counter, &Value::Counter(3.0)),
                ("deploy_empty", Kind::Gauge, &Value::Text(String::new())),
                ("deploy_ok", Kind::Gauge, &Value::Boolean(false)),
            ]
        );
    }

    /// Hostile and malformed lines: each is refused on its own, named by
    /// line and field, and the good line between them is kept.
    #[test]
    fn hostile_lines_are_refused_one_by_one() {
        let long = "x".repeat(1025);
        let cases: Vec<(String, &str, &str)> = vec![
            ("cpu,host=a".into(), "lines[0]", "invalid line protocol"),
            // InfluxDB's parser reads no NaN or infinity.
            ("cpu v=NaN".into(), "lines[0]", "invalid line protocol"),
            ("cpu v=inf".into(), "lines[0]", "invalid line protocol"),
            (
                "cpu v=1e400".into(),
                "lines[0].fields.v.value",
                "NaN or infinite",
            ),
            (
                format!("cpu v=\"{}\"", "s".repeat(64 * 1024 + 1)),
                "lines[0].fields.v.value",
                "longer than 65536 bytes",
            ),
            (
                "cpu v=\"two\nlines\"".into(),
                "lines[0].fields.v.value",
                "control character",
            ),
            ("cpu v=1i9".into(), "lines[0]", "invalid line protocol"),
            (
                "cpu,host=a\\ v=1".into(),
                "lines[0]",
                "invalid line protocol",
            ),
            (
                "cpu,a=1,a=2 v=1".into(),
                "lines[0].fields.v.dimensions.a",
                "given twice",
            ),
            (
                format!("cpu,h={long} v=1"),
                "lines[0].fields.v.dimensions.h",
                "1024",
            ),
            (
                "cpu,_h=1 v=1".into(),
                "lines[0].fields.v.dimensions._h",
                "reserved",
            ),
            ("_cpu v=1".into(), "lines[0].fields.v.name", "reserved"),
            (
                "cpu v=1 99999999999999999999".into(),
                "lines[0]",
                "invalid line protocol",
            ),
            (
                "cpu v=1 9223372036854775807".into(),
                "lines[0].timestamp",
                "out of range for its precision",
            ),
            (
                "cpu v=1 9000000000000".into(),
                "lines[0].fields.v.timestamp",
                "future",
            ),
            ("cpu v=1 0".into(), "lines[0].fields.v.timestamp", "14 days"),
        ];
        let mut wrong = Vec::new();
        for (line, field, reason) in cases {
            let body = format!("{line}\ngood v=1 {NOW}\n");
            let d = decode_str(&body).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(d.batch.points.len(), 1, "{line}: the good line stays");
            // Lines are counted as an editor counts them.
            let good = line.matches('\n').count() + 1;
            assert_eq!(d.indices, vec![good], "{line}");
            match d.rejected.first() {
                Some(r) if r.field == field && r.reason.contains(reason) => {}
                other => wrong.push(format!("{line}: {other:?}")),
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
        let huge_tags: String = (0..31).map(|i| format!(",t{i}=v")).collect();
        let d = decode_str(&format!("cpu{huge_tags} v=1 {NOW}")).expect("decoded");
        assert!(d.rejected[0].reason.contains("more than the 30 allowed"));
    }

    #[test]
    fn whole_request_refusals() {
        let e = decode(
            b"m v=1",
            &Params::default(),
            &Mapping::default(),
            None,
            NOW,
            &Limits::default(),
        )
        .expect_err("no db");
        assert_eq!((e.status, e.field.as_deref()), (400, Some("db")));
        let e = decode(
            b"m v=1",
            &v1("AWS/EC2"),
            &Mapping::default(),
            None,
            NOW,
            &Limits::default(),
        )
        .expect_err("reserved");
        assert!(e.message.contains("reserved"));
        let e = decode(
            b"m v=\xff",
            &v1("a"),
            &Mapping::default(),
            None,
            NOW,
            &Limits::default(),
        )
        .expect_err("utf-8");
        assert_eq!(e.error, "invalid_utf8");
        let e = Params::from_query(false, Some("db=a&precision=y")).expect_err("precision");
        assert_eq!(e.error, "invalid_precision");
        let limits = Limits {
            max_points: 3,
            ..Limits::default()
        };
        let e = decode(
            b"m a=1,b=2,c=3,d=4",
            &v1("a"),
            &Mapping::default(),
            None,
            NOW,
            &limits,
        )
        .expect_err("points");
        assert_eq!(e.status, 413);
    }
}
