//! The InfluxDB sink: InfluxDB 1.x/2.x/3 and the stores that speak its write
//! API (VictoriaMetrics, QuestDB), in line protocol; a pure encoder and
//! request builders. (Line protocol *read* from pushes is
//! `crate::decode::line_protocol`.)
//!
//! Mapping: measurement = metric name; tags = the series' dimensions, plus
//! `namespace` (always the batch's: the tenant boundary; a dimension named
//! `namespace` is written as `_namespace`, a name no dimension can have)
//! and `unit` unless a dimension has that name (the dimension wins); fields, all floats so that each field name keeps one type:
//! `value` for counters and gauges, `count`, `sum`, `min`, `max` for
//! distributions and statistic sets (and for a counter merged from several
//! pushes, beside its `value`), and for distributions their quantiles
//! (`p50`, `p90`, `p99` by default: [`Quantiles`]), which line-protocol
//! stores cannot compute from the other fields.
//!
//! Timestamps are written in nanoseconds: the point's millisecond plus an
//! offset below one millisecond derived from the batch id. Line-protocol
//! stores keep one value per series and timestamp, so two emitters pushing
//! the same series in the same millisecond would otherwise overwrite each
//! other; a retry of the same batch, on the other hand, lands on the same
//! timestamps and overwrites itself instead of counting twice. A batch an
//! aggregator merged is stamped by when it was emitted instead
//! ([`crate::aggregate::emission_offset_ns`]), so that two emissions of
//! one period never collide.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;

use edgepush_protocol::wire::Kind;

use crate::model::{Batch, Value};
use crate::sink::{SinkRefusal, refusal, refuse_values};

/// Where a line-protocol sink writes.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(tag = "api", rename_all = "snake_case", deny_unknown_fields)]
pub enum Target {
    /// InfluxDB 1.x `/write?db=` (also VictoriaMetrics' `/write`).
    V1 {
        /// Base URL, such as `http://127.0.0.1:8086`.
        url: String,
        /// Database.
        database: String,
        /// Retention policy, if not the default.
        #[serde(default)]
        retention_policy: Option<String>,
        /// User name for basic authentication.
        #[serde(default)]
        username: Option<String>,
        /// Password for basic authentication.
        #[serde(default)]
        password: Option<String>,
        /// Whether string values are written (default). `false` for stores
        /// that cannot keep them (VictoriaMetrics 1.79 writes a string field
        /// as 0): this sink then refuses them per point, by name.
        #[serde(default = "yes")]
        store_strings: bool,
        /// The quantile fields written for distributions.
        #[serde(default)]
        quantiles: Quantiles,
    },
    /// InfluxDB 2.x `/api/v2/write?org=&bucket=` (also InfluxDB 3's v2 API).
    V2 {
        /// Base URL.
        url: String,
        /// Organization.
        org: String,
        /// Bucket.
        bucket: String,
        /// API token, sent as `Authorization: Token ...`.
        #[serde(default)]
        token: Option<String>,
        /// Whether string values are written (default). `false` for stores
        /// that cannot keep them (VictoriaMetrics 1.79 writes a string field
        /// as 0): this sink then refuses them per point, by name.
        #[serde(default = "yes")]
        store_strings: bool,
        /// The quantile fields written for distributions.
        #[serde(default)]
        quantiles: Quantiles,
    },
}

fn yes() -> bool {
    true
}

impl Target {
    /// Whether string values are written, or refused.
    pub fn stores_strings(&self) -> bool {
        match self {
            Target::V1 { store_strings, .. } | Target::V2 { store_strings, .. } => *store_strings,
        }
    }

    /// The quantile fields written for distributions.
    pub fn quantiles(&self) -> &Quantiles {
        match self {
            Target::V1 { quantiles, .. } | Target::V2 { quantiles, .. } => quantiles,
        }
    }
}

/// The quantiles of a distribution written as fields: `p50` for 0.5,
/// `p99.9` for 0.999 (nearest rank over the point's values and counts).
/// `[0.5, 0.9, 0.99]` by default; `[]` writes none. Configured as numbers
/// in (0, 1], kept in millionths.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quantiles(Vec<u32>);

impl Default for Quantiles {
    fn default() -> Self {
        Quantiles(vec![500_000, 900_000, 990_000])
    }
}

impl Quantiles {
    /// Quantiles from numbers in (0, 1]; an error names the first that is not.
    pub fn new(quantiles: &[f64]) -> Result<Self, String> {
        quantiles
            .iter()
            .map(|&q| {
                if q > 0.0 && q <= 1.0 {
                    Ok((q * 1e6).round() as u32)
                } else {
                    Err(format!("quantile {q} is not in (0, 1]"))
                }
            })
            .collect::<Result<Vec<u32>, String>>()
            .map(Quantiles)
    }

    /// From a comma-separated list such as `0.5,0.9,0.99` (empty: none).
    pub fn parse(list: &str) -> Result<Self, String> {
        let numbers = list
            .split(',')
            .map(str::trim)
            .filter(|q| !q.is_empty())
            .map(|q| {
                q.parse::<f64>()
                    .map_err(|_| format!("quantile {q:?} is not a number"))
            })
            .collect::<Result<Vec<f64>, String>>()?;
        Quantiles::new(&numbers)
    }
}

impl<'de> Deserialize<'de> for Quantiles {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let numbers = Vec::<f64>::deserialize(d)?;
        Quantiles::new(&numbers).map_err(serde::de::Error::custom)
    }
}

/// The points of `batch` line protocol cannot carry as sent: those of a
/// metric whose name starts with `#` (the line would be a comment, which
/// every line-protocol store skips without a word); and, for a sink
/// configured with `store_strings = false`, the string points.
pub fn unstorable(batch: &Batch, strings: bool) -> Vec<SinkRefusal> {
    let mut refusals = Vec::new();
    let comments: Vec<usize> = batch
        .points
        .iter()
        .enumerate()
        .filter(|(_, p)| is_comment(&batch.series[p.series].name))
        .map(|(i, _)| i)
        .collect();
    if !comments.is_empty() {
        refusals.push(refusal(
            "influxdb",
            batch,
            comments,
            "a line-protocol measurement cannot start with '#': the line would be a comment, \
             which the store skips"
                .into(),
        ));
    }
    if !strings {
        refusals.extend(refuse_values(
            "influxdb",
            batch,
            |v| matches!(v, Value::Text(_)),
            "this sink stores numbers only (store_strings = false)",
        ));
    }
    refusals
}

/// Whether a line for the measurement `name` would be a comment.
fn is_comment(name: &str) -> bool {
    name.starts_with('#')
}

/// Escapes a measurement: commas and spaces.
fn measurement(out: &mut String, s: &str) {
    escape(out, s, memchr::memchr2_iter(b',', b' ', s.as_bytes()));
}

/// Escapes a tag key, tag value or field key: commas, `=` and spaces.
fn tag(out: &mut String, s: &str) {
    escape(out, s, memchr::memchr3_iter(b',', b'=', b' ', s.as_bytes()));
}

/// Copies `s`, a backslash before each of the `special` positions (found
/// by `memchr`, a word at a time; the characters are ASCII, so each is a
/// whole character and the slices between fall on character boundaries).
/// Validation has refused backslashes that would escape one
/// (`edgepush_protocol::validate`), so every other backslash stands for itself.
/// Names and values seldom hold one: they are then copied whole.
fn escape(out: &mut String, s: &str, special: impl Iterator<Item = usize>) {
    let mut start = 0;
    for i in special {
        out.push_str(&s[start..i]);
        out.push('\\');
        start = i;
    }
    out.push_str(&s[start..]);
}

/// Writes a float field value: whole numbers come out without a fraction,
/// which line protocol still reads as a float (only an `i` suffix makes an
/// integer).
fn float(out: &mut String, v: f64) {
    edgepush_protocol::format_number(v, |text| out.push_str(text));
}

/// The batch's offset in nanoseconds, below one millisecond (FNV-1a of the id).
pub fn batch_offset_ns(id: &str) -> i64 {
    let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    (hash % 1_000_000) as i64
}

/// Appends one line per point of `batch` to `out` (the default
/// [`Quantiles`]).
pub fn encode(batch: &Batch, out: &mut String) {
    encode_for(batch, out, true, &Quantiles::default());
}

/// [`encode`], for a target: without what [`unstorable`] refuses (the
/// string points when it does not store strings), with its quantiles.
pub fn encode_for(batch: &Batch, out: &mut String, strings: bool, quantiles: &Quantiles) {
    let emitted = crate::aggregate::emitted_at(&batch.id);
    let batch_offset = batch_offset_ns(&batch.id);
    out.reserve(batch.points.len() * 100);
    // One list of tags, refilled for every point.
    let mut tags: Vec<(&str, &str)> = Vec::new();
    for point in &batch.points {
        if !strings && matches!(point.value, Value::Text(_)) {
            continue;
        }
        let series = &batch.series[point.series];
        if is_comment(&series.name) {
            continue;
        }
        measurement(out, &series.name);
        tags.clear();
        tags.extend(series.dimensions.iter().map(|(n, v)| match n.as_str() {
            "namespace" => ("_namespace", v.as_str()),
            n => (n, v.as_str()),
        }));
        tags.push(("namespace", batch.namespace.as_str()));
        if !tags.iter().any(|(n, _)| *n == "unit") {
            tags.push(("unit", series.unit.as_str()));
        }
        // Sorted tags are what InfluxDB indexes fastest.
        tags.sort_unstable();
        for &(key, value) in &tags {
            out.push(',');
            tag(out, key);
            out.push('=');
            tag(out, value);
        }
        out.push(' ');
        match &point.value {
            Value::Counter(v)
            | Value::Gauge {
                last: v,
                stats: None,
            } => {
                out.push_str("value=");
                float(out, *v);
            }
            Value::Gauge {
                last,
                stats: Some(_),
            } => {
                out.push_str("value=");
                float(out, *last);
                out.push(',');
                stats_fields(out, &point.value);
            }
            Value::Text(text) => {
                out.push_str("value=\"");
                string_value(out, text);
                out.push('"');
            }
            Value::Boolean(b) => out.push_str(if *b { "value=true" } else { "value=false" }),
            Value::Distribution { values, counts } => {
                stats_fields(out, &point.value);
                quantile_fields(out, values, counts, quantiles);
            }
            // A counter merged from several pushes (`crate::aggregate`):
            // its `value` is the sum, as for one push, with the statistics
            // of the contributions beside it.
            Value::Statistics(st) if series.kind == Kind::Counter => {
                out.push_str("value=");
                float(out, st.sum);
                out.push(',');
                stats_fields(out, &point.value);
            }
            other => stats_fields(out, other),
        }
        out.push(' ');
        let offset = match emitted {
            Some(emitted_ms) => crate::aggregate::emission_offset_ns(
                emitted_ms,
                point.timestamp_ms,
                i64::from(series.resolution.seconds()) * 1000,
            ),
            None => batch_offset,
        };
        // In i64 (to the year 2262) when it fits: 128-bit arithmetic and
        // formatting are slow in wasm.
        match point
            .timestamp_ms
            .checked_mul(1_000_000)
            .and_then(|ns| ns.checked_add(offset))
        {
            Some(ns) => out.push_str(itoa::Buffer::new().format(ns)),
            None => out.push_str(
                itoa::Buffer::new()
                    .format(i128::from(point.timestamp_ms) * 1_000_000 + i128::from(offset)),
            ),
        }
        out.push('\n');
    }
}

/// Writes a string field value's characters: `"` and `\` escaped.
fn string_value(out: &mut String, s: &str) {
    escape(out, s, memchr::memchr2_iter(b'"', b'\\', s.as_bytes()));
}

fn stats_fields(out: &mut String, value: &Value) {
    let Some(s) = value.statistics() else {
        return;
    };
    for (i, (key, v)) in [
        ("count", s.count),
        ("sum", s.sum),
        ("min", s.min),
        ("max", s.max),
    ]
    .into_iter()
    .enumerate()
    {
        if i > 0 {
            out.push(',');
        }
        out.push_str(key);
        out.push('=');
        float(out, v);
    }
}

/// The first value (of `pairs`, ascending, with counts) at which the
/// counts so far reach `reach`; the last if none does.
fn nearest_rank(pairs: impl Iterator<Item = (f64, f64)>, reach: f64) -> f64 {
    let (mut seen, mut last) = (0.0, 0.0);
    for (value, count) in pairs {
        seen += count;
        last = value;
        if seen >= reach {
            return value;
        }
    }
    last
}

/// Writes `,p50=...` and the like: for each quantile q, the first value
/// (ascending) at which the counts so far reach q of all counts.
fn quantile_fields(out: &mut String, values: &[f64], counts: &[f64], quantiles: &Quantiles) {
    if quantiles.0.is_empty() {
        return;
    }
    // Emitters send values ascending: copied and sorted only when not.
    let sorted: Option<Vec<(f64, f64)>> = (!values.is_sorted()).then(|| {
        let mut pairs: Vec<(f64, f64)> =
            values.iter().copied().zip(counts.iter().copied()).collect();
        pairs.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        pairs
    });
    let total: f64 = counts.iter().sum();
    for &millionths in &quantiles.0 {
        let reach = total * f64::from(millionths) / 1e6;
        let at = match &sorted {
            Some(pairs) => nearest_rank(pairs.iter().copied(), reach),
            None => nearest_rank(values.iter().copied().zip(counts.iter().copied()), reach),
        };
        out.push_str(",p");
        float(out, f64::from(millionths) / 10_000.0);
        out.push('=');
        float(out, at);
    }
}

fn query(pairs: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.extend_pairs(pairs);
    format!("?{}", q.finish())
}

/// The write request for a gzip'd line-protocol `body` (nanosecond precision).
pub fn request(target: &Target, body: Vec<u8>) -> http::Result<http::Request<Vec<u8>>> {
    let builder = http::Request::post(match target {
        Target::V1 {
            url,
            database,
            retention_policy,
            ..
        } => {
            let mut pairs = vec![("db", database.as_str()), ("precision", "ns")];
            if let Some(rp) = retention_policy {
                pairs.push(("rp", rp));
            }
            format!("{}/write{}", url.trim_end_matches('/'), query(&pairs))
        }
        Target::V2 {
            url, org, bucket, ..
        } => format!(
            "{}/api/v2/write{}",
            url.trim_end_matches('/'),
            query(&[("org", org), ("bucket", bucket), ("precision", "ns")])
        ),
    })
    .header("content-type", "text/plain; charset=utf-8")
    .header("content-encoding", "gzip");
    let builder = match target {
        Target::V1 {
            username: Some(u),
            password,
            ..
        } => builder.header(
            "authorization",
            format!(
                "Basic {}",
                BASE64.encode(format!("{u}:{}", password.as_deref().unwrap_or("")))
            ),
        ),
        Target::V2 { token: Some(t), .. } => builder.header("authorization", format!("Token {t}")),
        _ => builder,
    };
    builder.body(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Point, Series, StatisticSet};
    use edgepush_protocol::{Resolution, Unit};

    fn batch(name: &str, dims: &[(&str, &str)], value: Value) -> Batch {
        Batch {
            id: "b".into(),
            namespace: "Shop".into(),
            series: vec![Series {
                name: name.into(),
                kind: match value {
                    Value::Counter(_) => Kind::Counter,
                    Value::Gauge { .. } => Kind::Gauge,
                    Value::Distribution { .. } => Kind::Distribution,
                    Value::Statistics(_) => Kind::Statistics,
                    Value::Text(_) | Value::Boolean(_) => Kind::Gauge,
                },
                unit: Unit::Count,
                dimensions: dims
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.to_string()))
                    .collect(),
                resolution: Resolution::Standard,
            }],
            points: vec![Point {
                series: 0,
                timestamp_ms: 1_700_000_000_123,
                value,
            }],
        }
    }

    fn line(b: &Batch) -> String {
        let mut out = String::new();
        encode(b, &mut out);
        out
    }

    #[test]
    fn encoding_table() {
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], Value, &'a str);
        let cases: &[Case<'_>] = &[
            (
                "orders",
                &[("route", "/buy")],
                Value::Counter(3.0),
                "orders,namespace=Shop,route=/buy,unit=Count value=3 1700000000123\n",
            ),
            (
                "my metric,x",
                &[("a b", "c,d=e")],
                Value::Counter(-0.5),
                "my\\ metric\\,x,a\\ b=c\\,d\\=e,namespace=Shop,unit=Count value=-0.5 1700000000123\n",
            ),
            (
                "m=1",
                &[("k", "v=\"q\"")],
                Value::Counter(1e-3),
                "m=1,k=v\\=\"q\",namespace=Shop,unit=Count value=0.001 1700000000123\n",
            ),
            (
                "café métrique, été",
                &[("région", "Zürich=ΣΩ 東京")],
                Value::Counter(2.0),
                "café\\ métrique\\,\\ été,namespace=Shop,région=Zürich\\=ΣΩ\\ 東京,unit=Count value=2 1700000000123\n",
            ),
            (
                "spoof",
                &[("namespace", "Other")],
                Value::Counter(1.0),
                "spoof,_namespace=Other,namespace=Shop,unit=Count value=1 1700000000123\n",
            ),
            (
                "back\\slash",
                &[("k", "C:\\temp")],
                Value::Counter(1.0),
                "back\\slash,k=C:\\temp,namespace=Shop,unit=Count value=1 1700000000123\n",
            ),
            (
                "lat",
                &[("unit", "mine")],
                Value::Distribution {
                    values: vec![1.0, 4.0],
                    counts: vec![2.0, 1.0],
                },
                "lat,namespace=Shop,unit=mine count=3,sum=6,min=1,max=4,p50=1,p90=4,p99=4 1700000000123\n",
            ),
            (
                "size",
                &[],
                Value::Statistics(StatisticSet {
                    count: 2.0,
                    sum: 5.5,
                    min: 2.0,
                    max: 3.5,
                }),
                "size,namespace=Shop,unit=Count count=2,sum=5.5,min=2,max=3.5 1700000000123\n",
            ),
            (
                "queue",
                &[],
                Value::Gauge {
                    last: 4.0,
                    stats: None,
                },
                "queue,namespace=Shop,unit=Count value=4 1700000000123\n",
            ),
            (
                "queue",
                &[],
                Value::Gauge {
                    last: 4.0,
                    stats: Some(StatisticSet {
                        count: 3.0,
                        sum: 9.0,
                        min: 1.0,
                        max: 4.0,
                    }),
                },
                "queue,namespace=Shop,unit=Count value=4,count=3,sum=9,min=1,max=4 1700000000123\n",
            ),
            (
                "version",
                &[],
                Value::Text("v1 \"blue\", C:\\x\\ =".into()),
                "version,namespace=Shop,unit=Count value=\"v1 \\\"blue\\\", C:\\\\x\\\\ =\" 1700000000123\n",
            ),
            (
                "ready",
                &[],
                Value::Boolean(true),
                "ready,namespace=Shop,unit=Count value=true 1700000000123\n",
            ),
            (
                "ready",
                &[],
                Value::Boolean(false),
                "ready,namespace=Shop,unit=Count value=false 1700000000123\n",
            ),
        ];
        for (name, dims, value, want) in cases {
            let ns = format!(
                " {}\n",
                1_700_000_000_123_i128 * 1_000_000 + i128::from(batch_offset_ns("b"))
            );
            let want = want.replace(" 1700000000123\n", &ns);
            assert_eq!(line(&batch(name, dims, value.clone())), want, "{name:?}");
        }
    }

    /// A metric named like a comment is refused by name, and never
    /// written (a store would skip its line without a word); the batch's
    /// other points are written.
    #[test]
    fn a_name_starting_with_a_hash_is_refused_not_written() {
        let mut b = batch("#orders", &[], Value::Counter(1.0));
        b.series.push(Series {
            name: "a#b".into(),
            ..b.series[0].clone()
        });
        b.points.push(Point {
            series: 1,
            ..b.points[0].clone()
        });
        for strings in [true, false] {
            let refused = unstorable(&b, strings);
            assert_eq!(refused.len(), 1, "{refused:?}");
            assert_eq!(refused[0].points, [0]);
            assert!(refused[0].message.contains("'#'"), "{refused:?}");
        }
        let text = line(&b);
        assert!(text.starts_with("a#b,"), "{text}");
        assert_eq!(text.lines().count(), 1, "{text}");
    }

    /// Nanoseconds past i64 (after the year 2262) are still written whole.
    #[test]
    fn timestamps_past_i64_nanoseconds_are_written_whole() {
        for ms in [i64::MAX / 1_000_000, i64::MAX / 1_000_000 + 1, i64::MAX] {
            let mut b = batch("far", &[], Value::Counter(1.0));
            b.points[0].timestamp_ms = ms;
            let want = i128::from(ms) * 1_000_000 + i128::from(batch_offset_ns("b"));
            assert!(line(&b).ends_with(&format!(" {want}\n")), "{ms}");
        }
    }

    /// InfluxDB's own parser reads back the string and boolean values written.
    #[test]
    fn string_and_boolean_values_read_back_with_influxdbs_parser() {
        use influxdb_line_protocol::FieldValue;
        for text in [
            "",
            "plain",
            "q\"uote",
            "back\\slash\\",
            "\\\"",
            "tab\there, =x",
            "東京 é",
        ] {
            let out = line(&batch("m", &[], Value::Text(text.into())));
            let parsed = influxdb_line_protocol::parse_lines(&out)
                .next()
                .expect("a line")
                .expect("parses");
            assert_eq!(
                parsed.field_set[0].1,
                FieldValue::String(text.into()),
                "{out:?}"
            );
        }
        let out = line(&batch("m", &[], Value::Boolean(true)));
        let parsed = influxdb_line_protocol::parse_lines(&out)
            .next()
            .expect("a line")
            .expect("parses");
        assert_eq!(parsed.field_set[0].1, FieldValue::Boolean(true));
    }

    /// The written quantile fields of one distribution point.
    fn quantiles_written(
        values: &[f64],
        counts: &[f64],
        quantiles: &Quantiles,
    ) -> Vec<(String, f64)> {
        let b = batch(
            "lat",
            &[],
            Value::Distribution {
                values: values.to_vec(),
                counts: counts.to_vec(),
            },
        );
        let mut out = String::new();
        encode_for(&b, &mut out, true, quantiles);
        let parsed = influxdb_line_protocol::parse_lines(&out)
            .next()
            .expect("a line")
            .expect("parses");
        parsed
            .field_set
            .iter()
            .filter(|(k, _)| k.starts_with('p'))
            .map(|(k, v)| match v {
                influxdb_line_protocol::FieldValue::F64(f) => (k.to_string(), *f),
                other => panic!("{k} is {other:?}"),
            })
            .collect()
    }

    /// A counter the receiver merged from three pushes keeps `value` (the
    /// sum, as one push would write it) and gains the contributions'
    /// statistics.
    #[test]
    fn a_merged_counter_writes_its_sum_as_value_and_its_statistics() {
        let mut aggregator = crate::aggregate::Aggregator::new();
        for v in [3.0, 4.0, 5.0] {
            aggregator.add(&batch("orders", &[], Value::Counter(v)));
        }
        let merged = aggregator.take_all(1_700_000_100_000);
        let line = line(&merged[0]);
        let fields = line.split(' ').nth(1).expect("fields");
        assert_eq!(fields, "value=12,count=3,sum=12,min=3,max=5", "{line}");
    }

    /// One period emitted twice (a late point after the first flush) lands
    /// on two timestamps, both inside the period: neither overwrites the
    /// other. Emissions a millisecond apart differ by a nanosecond.
    #[test]
    fn a_period_emitted_twice_never_lands_on_one_timestamp() {
        // The point's minute starts at 1_699_999_980_000.
        let start_ns: i128 = 1_699_999_980_000 * 1_000_000;
        let mut stamps = Vec::new();
        for emitted in [1_700_000_010_000, 1_700_000_010_001, 1_700_000_250_000] {
            let mut aggregator = crate::aggregate::Aggregator::new();
            aggregator.add(&batch("orders", &[], Value::Counter(1.0)));
            let merged = aggregator.take_all(emitted);
            let line = line(&merged[0]);
            let ns: i128 = line
                .trim_end()
                .rsplit(' ')
                .next()
                .expect("time")
                .parse()
                .expect("ns");
            assert!(
                (start_ns..start_ns + 60_000_000_000).contains(&ns),
                "{ns} outside its minute"
            );
            stamps.push(ns - start_ns);
        }
        assert_eq!(stamps, [30_000, 30_001, 270_000]);
        // Past what fits in the period: its last nanosecond.
        assert_eq!(
            crate::aggregate::emission_offset_ns(i64::MAX, 0, 1_000),
            999_999_999
        );
        assert_eq!(crate::aggregate::emission_offset_ns(5, 10, 1_000), 0);
    }

    #[test]
    fn distributions_carry_their_quantiles_by_nearest_rank() {
        // Unsorted, as wire v1 allows: 10 x1, 20 x2, 30 x6, 40 x1 (10 values).
        let (values, counts) = ([30.0, 10.0, 40.0, 20.0], [6.0, 1.0, 1.0, 2.0]);
        let named = |pairs: &[(&str, f64)]| -> Vec<(String, f64)> {
            pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
        };
        assert_eq!(
            quantiles_written(&values, &counts, &Quantiles::default()),
            named(&[("p50", 30.0), ("p90", 30.0), ("p99", 40.0)])
        );
        let custom = Quantiles::new(&[0.1, 0.3, 0.999, 1.0]).expect("valid");
        assert_eq!(
            quantiles_written(&values, &counts, &custom),
            named(&[
                ("p10", 10.0),
                ("p30", 20.0),
                ("p99.9", 40.0),
                ("p100", 40.0)
            ])
        );
        assert_eq!(
            quantiles_written(&values, &counts, &Quantiles::new(&[]).expect("none")),
            []
        );
        assert_eq!(
            Quantiles::parse(" 0.5, 0.99 "),
            Quantiles::new(&[0.5, 0.99])
        );
        assert_eq!(Quantiles::parse(""), Quantiles::new(&[]));
        assert!(
            Quantiles::new(&[0.0])
                .expect_err("refused")
                .contains("quantile 0 is not in (0, 1]")
        );
        assert!(Quantiles::new(&[1.5]).is_err());
        assert!(
            Quantiles::parse("0.5,x")
                .expect_err("refused")
                .contains("\"x\"")
        );
        let target: Target = serde_json::from_str(
            r#"{"api":"v1","url":"u","database":"d","quantiles":[0.25,0.75]}"#,
        )
        .expect("target");
        assert_eq!(
            target.quantiles(),
            &Quantiles::new(&[0.25, 0.75]).expect("valid")
        );
        let e = serde_json::from_str::<Target>(
            r#"{"api":"v1","url":"u","database":"d","quantiles":[2]}"#,
        )
        .expect_err("out of range");
        assert!(e.to_string().contains("quantile 2 is not in (0, 1]"), "{e}");
    }

    proptest::proptest! {
        /// Each quantile written is the value a sorted list of every value,
        /// each repeated by its count, holds at rank ceil(q x n).
        #[test]
        fn quantiles_are_those_of_the_values_repeated_by_their_counts(
            pairs in proptest::collection::btree_map(-1000i32..1000, 1u8..5, 1..40),
            q in 1u32..=1000,
        ) {
            let values: Vec<f64> = pairs.keys().map(|v| f64::from(*v)).collect();
            let counts: Vec<f64> = pairs.values().map(|c| f64::from(*c)).collect();
            let mut all: Vec<f64> = Vec::new();
            for (v, c) in values.iter().zip(&counts) {
                all.extend(std::iter::repeat_n(*v, *c as usize));
            }
            let quantile = f64::from(q) / 1000.0;
            // ceil(q x n), in integers.
            let rank = (q as usize * all.len()).div_ceil(1000);
            let written = quantiles_written(&values, &counts, &Quantiles::new(&[quantile]).expect("valid"));
            proptest::prop_assert_eq!(written.len(), 1);
            proptest::prop_assert_eq!(written[0].1, all[rank - 1], "q {} of {:?}", quantile, all);
        }
    }

    #[test]
    fn offsets_stay_below_a_millisecond_and_differ_by_batch() {
        let offsets: std::collections::BTreeSet<i64> = (0..1000)
            .map(|i| batch_offset_ns(&format!("{i:016x}-0")))
            .collect();
        assert!(offsets.iter().all(|o| (0..1_000_000).contains(o)));
        assert!(offsets.len() > 990, "{}", offsets.len());
        assert_eq!(batch_offset_ns("same"), batch_offset_ns("same"));
    }

    #[test]
    fn request_targets() {
        let v1 = Target::V1 {
            url: "http://h:8086/".into(),
            database: "my db".into(),
            retention_policy: None,
            username: Some("u".into()),
            password: Some("p".into()),
            store_strings: true,
            quantiles: Default::default(),
        };
        let r = request(&v1, vec![]).expect("request");
        assert_eq!(r.uri(), "http://h:8086/write?db=my+db&precision=ns");
        assert_eq!(r.headers()["authorization"], "Basic dTpw");
        let v2 = Target::V2 {
            url: "http://h:8086".into(),
            org: "o".into(),
            bucket: "b".into(),
            token: Some("t".into()),
            store_strings: true,
            quantiles: Default::default(),
        };
        let r = request(&v2, vec![]).expect("request");
        assert_eq!(
            r.uri(),
            "http://h:8086/api/v2/write?org=o&bucket=b&precision=ns"
        );
        assert_eq!(r.headers()["authorization"], "Token t");
        assert_eq!(r.headers()["content-encoding"], "gzip");
    }

    /// Reads one line the way InfluxDB does (a backslash escapes the
    /// following comma, space or `=`; any other backslash is literal):
    /// measurement, tags, fields and timestamp. Written apart from the
    /// encoder, to check it.
    type Pairs = Vec<(String, String)>;

    fn parse_line(line: &str) -> (String, Pairs, Pairs, String) {
        // Splits at the first unescaped character of `stops`.
        fn token<'a>(s: &'a str, stops: &[char]) -> (String, Option<char>, &'a str) {
            let mut out = String::new();
            let mut chars = s.char_indices().peekable();
            while let Some((i, c)) = chars.next() {
                if c == '\\' {
                    if let Some(&(_, next @ (',' | ' ' | '='))) = chars.peek() {
                        out.push(next);
                        chars.next();
                        continue;
                    }
                    out.push(c);
                } else if stops.contains(&c) {
                    return (out, Some(c), &s[i + c.len_utf8()..]);
                } else {
                    out.push(c);
                }
            }
            (out, None, "")
        }
        let (measurement, mut stop, mut rest) = token(line, &[',', ' ']);
        let mut tags = Vec::new();
        while stop == Some(',') {
            let (key, eq, after) = token(rest, &['=', ',', ' ']);
            assert_eq!(eq, Some('='), "tag without '=' in {line:?}");
            let (value, next, after) = token(after, &[',', ' ', '=']);
            assert_ne!(next, Some('='), "unescaped '=' in a tag value of {line:?}");
            tags.push((key, value));
            stop = next;
            rest = after;
        }
        assert_eq!(stop, Some(' '), "no field set in {line:?}");
        let (field_set, stop, timestamp) = token(rest, &[' ']);
        assert_eq!(stop, Some(' '), "no timestamp in {line:?}");
        assert!(!timestamp.contains(' '), "{line:?}");
        let fields = field_set
            .split(',')
            .map(|f| {
                let (k, v) = f.split_once('=').expect("field");
                (k.to_string(), v.to_string())
            })
            .collect();
        (measurement, tags, fields, timestamp.to_string())
    }

    proptest::proptest! {
        /// Names and dimensions with every character line protocol treats
        /// specially, through the real decoder then the encoder: whatever
        /// is accepted comes out as exactly one line with exactly the
        /// measurement, tags and field it was given.
        #[test]
        fn special_characters_never_make_extra_lines_tags_or_fields(
            // Line protocol's special characters at every position, among
            // any character of any Unicode class (controls are refused by
            // validation, so they test the early return).
            name in "[a-z ,=\"\\\\\n\r\t#é東]{1,12}|[\\PC ,=\"\\\\#]{1,12}",
            dims in proptest::collection::btree_map(
                "[a-z ,=\"\\\\\n#é]{1,8}|[\\PC ,=\"\\\\#]{1,8}",
                "[a-z ,=\"\\\\\n\t#é東]{1,8}|[\\PC ,=\"\\\\#]{1,8}",
                0..4,
            ),
            value in -1e6f64..1e6,
        ) {
            let body = serde_json::json!({
                "v": 1, "id": "b", "ns": "Shop", "t": 1_700_000_000_000i64,
                "series": [{"n": name, "k": "c", "u": "Count", "d": dims}],
                "points": [{"s": 0, "x": value}],
            });
            let decoded = crate::decode::wire::decode_v1(
                body.to_string().as_bytes(),
                1_700_000_000_000,
                &crate::limits::Limits::default(),
            );
            let Ok(decoded) = decoded else { return Ok(()) };
            if decoded.batch.points.is_empty() {
                return Ok(());
            }
            let text = line(&decoded.batch);
            if name.starts_with('#') {
                // A comment line: refused by name, never written.
                proptest::prop_assert_eq!(&text, "");
                proptest::prop_assert_eq!(unstorable(&decoded.batch, true).len(), 1);
                return Ok(());
            }
            proptest::prop_assert!(unstorable(&decoded.batch, true).is_empty());
            proptest::prop_assert_eq!(text.matches('\n').count(), 1, "{:?}", text);
            // InfluxDB's own parser reads one line of that measurement.
            let parsed = influxdb_line_protocol::parse_lines(&text)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| proptest::test_runner::TestCaseError::fail(format!("{e}: {text:?}")))?;
            proptest::prop_assert_eq!(parsed.len(), 1, "{:?}", text);
            proptest::prop_assert_eq!(parsed[0].series.measurement.to_string(), name.clone());
            let (measurement, tags, fields, _) = parse_line(text.trim_end_matches('\n'));
            proptest::prop_assert_eq!(&measurement, &name);
            let mut expected: Vec<(String, String)> = dims
                .iter()
                .map(|(k, v)| {
                    let k = if k == "namespace" { "_namespace".to_string() } else { k.clone() };
                    (k, v.clone())
                })
                .collect();
            expected.push(("namespace".into(), "Shop".into()));
            if !dims.contains_key("unit") {
                expected.push(("unit".into(), "Count".into()));
            }
            expected.sort();
            let mut tags = tags;
            tags.sort();
            proptest::prop_assert_eq!(tags, expected.clone());
            proptest::prop_assert_eq!(fields.len(), 1);
            proptest::prop_assert_eq!(fields[0].0.as_str(), "value");
            proptest::prop_assert_eq!(fields[0].1.parse::<f64>().ok(), Some(value));
            // And so does the receiver's own reader, the reference grammar.
            let entry = crate::decode::line_protocol::syntax::entries(&text)
                .next()
                .and_then(Result::ok)
                .ok_or_else(|| proptest::test_runner::TestCaseError::fail(format!("{text:?}")))?;
            proptest::prop_assert_eq!(&*entry.measurement, name.as_str());
            let mut read: Pairs = entry
                .tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            read.sort();
            proptest::prop_assert_eq!(read, expected);
            proptest::prop_assert_eq!(
                &entry.fields[..],
                &[("value".into(), crate::decode::line_protocol::syntax::Field::Float(value))]
            );
        }
    }
}
