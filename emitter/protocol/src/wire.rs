//! The wire formats: the batch an emitter pushes to a receiver.
//!
//! A batch names its series (name, kind, unit, dimensions, storage
//! resolution) once, and points refer to them by index, so names are never
//! repeated per point. The types here are the batch both encodings carry:
//! [`v1`] is them as JSON (through serde), [`v2`] a compact binary
//! encoding. The full specification, with examples, is
//! `docs/wire-format.md`.
//!
//! The types borrow from the input where they can, so decoding does not
//! copy names.

use alloc::borrow::Cow;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::number::whole;

pub mod v1;
pub mod v2;
pub mod v3;

/// The path a receiver accepts batches on, in either encoding.
pub const PATH: &str = "/v1/metrics";

/// The URL batches are pushed to, from a receiver's base URL (such as
/// `https://metrics.example.com`): [`PATH`] appended, unless the URL
/// already ends with it. Every emitter takes its URL this way.
///
/// ```
/// use edgepush_protocol::wire::push_url;
/// assert_eq!(push_url("https://m.example.com/"), "https://m.example.com/v1/metrics");
/// assert_eq!(push_url("https://m.example.com/v1/metrics"), "https://m.example.com/v1/metrics");
/// assert_eq!(push_url("http://h:8787/edge"), "http://h:8787/edge/v1/metrics");
/// ```
pub fn push_url(base_url: &str) -> String {
    if base_url.ends_with(PATH) {
        base_url.into()
    } else {
        alloc::format!("{}{PATH}", base_url.trim_end_matches('/'))
    }
}
/// The header that carries the batch id, so proxies and logs can see it
/// without decompressing the body. It must equal the body's `id`.
pub const BATCH_ID_HEADER: &str = "x-edgepush-batch";

/// The wire versions a batch can be encoded in; the receiver tells them apart by
/// media type. A closed set: both sides must know a version to use it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Version {
    /// JSON ([`v1::CONTENT_TYPE`]).
    V1,
    /// Binary ([`v2::CONTENT_TYPE`]): about half the bytes of v1 before
    /// compression, and faster to write and read.
    V2,
    /// Binary with shared dimension sets ([`v3::CONTENT_TYPE`]): v2 with
    /// each of a batch's dimension sets written once.
    #[default]
    V3,
}

impl Version {
    /// The media type of a batch in this version.
    pub fn content_type(self) -> &'static str {
        match self {
            Version::V1 => v1::CONTENT_TYPE,
            Version::V2 => v2::CONTENT_TYPE,
            Version::V3 => v3::CONTENT_TYPE,
        }
    }
}

/// One pushed batch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch<'a> {
    /// Wire version: [`v1::VERSION`], [`v2::VERSION`] or [`v3::VERSION`],
    /// the encoding that carried the batch.
    pub v: u32,
    /// Unique per flush and stable across retries of the same batch, so a
    /// receiver can recognise a retry. 1-64 characters of `[0-9A-Za-z_-]`.
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    /// CloudWatch namespace of every series in the batch.
    #[serde(borrow)]
    pub ns: Cow<'a, str>,
    /// Base timestamp, milliseconds since the Unix epoch; points add an offset.
    pub t: i64,
    /// Dimensions common to every series, written once.
    #[serde(default, borrow, skip_serializing_if = "Dimensions::is_empty")]
    pub dims: Dimensions<'a>,
    /// The series the points refer to, by index.
    #[serde(borrow)]
    pub series: Vec<Series<'a>>,
    /// The data points.
    pub points: Vec<Point>,
}

/// What a series aggregates, and so which point fields it uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Kind {
    /// A sum over the interval; point field `x`.
    #[serde(rename = "c")]
    Counter,
    /// The last value seen; point field `x`.
    #[serde(rename = "g")]
    Gauge,
    /// Distinct values with their counts (CloudWatch `Values`/`Counts`);
    /// point fields `vs` and optional `cs`.
    #[serde(rename = "d")]
    Distribution,
    /// A statistic set; point field `st`.
    #[serde(rename = "s")]
    Statistics,
}

/// A series: what a point measures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Series<'a> {
    /// Metric name.
    #[serde(borrow)]
    pub n: Cow<'a, str>,
    /// Kind of aggregation.
    pub k: Kind,
    /// CloudWatch unit name; absent means `None`.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub u: Option<Cow<'a, str>>,
    /// Dimensions of this series, added to the batch's common ones.
    #[serde(default, borrow, skip_serializing_if = "Dimensions::is_empty")]
    pub d: Dimensions<'a>,
    /// Storage resolution in seconds, 1 or 60; absent means 60.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r: Option<u32>,
}

/// A data point. Exactly the fields of its series' kind are present.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Point {
    /// Index into the batch's `series`.
    pub s: u32,
    /// Milliseconds after the batch's `t`; absent means 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub t: i64,
    /// Counter sum or gauge value.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "number"
    )]
    pub x: Option<f64>,
    /// Distribution: distinct values.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "numbers"
    )]
    pub vs: Option<Vec<f64>>,
    /// Distribution: how often each value in `vs` occurred; absent means 1 each.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "numbers"
    )]
    pub cs: Option<Vec<f64>>,
    /// Statistic set: `[count, sum, min, max]`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "statistics"
    )]
    pub st: Option<[f64; 4]>,
    /// Gauge: a string value instead of `x` (a line-protocol string field,
    /// stored by line-protocol sinks only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sv: Option<String>,
    /// Gauge: a boolean value instead of `x` (a line-protocol boolean
    /// field, stored by line-protocol sinks only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub b: Option<bool>,
}

/// A number serialised as edgepush writes it ([`crate::format_number`]): whole
/// numbers without a fraction, so a batch serialised with serde reads the
/// same as one the emitter wrote.
struct Whole(f64);

impl Serialize for Whole {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match whole(self.0) {
            Some(i) => serializer.serialize_i64(i),
            None => serializer.serialize_f64(self.0),
        }
    }
}

struct Wholes<'a>(&'a [f64]);

impl Serialize for Wholes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|v| Whole(*v)))
    }
}

fn number<S: Serializer>(v: &Option<f64>, serializer: S) -> Result<S::Ok, S::Error> {
    v.map(Whole).serialize(serializer)
}

fn numbers<S: Serializer>(v: &Option<Vec<f64>>, serializer: S) -> Result<S::Ok, S::Error> {
    v.as_deref().map(Wholes).serialize(serializer)
}

fn statistics<S: Serializer>(v: &Option<[f64; 4]>, serializer: S) -> Result<S::Ok, S::Error> {
    v.as_ref().map(|st| Wholes(st)).serialize(serializer)
}

fn is_zero(t: &i64) -> bool {
    *t == 0
}

/// Dimensions as name/value pairs, written as a JSON object. Order is kept;
/// a repeated name is a decoding error.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dimensions<'a>(pub Vec<(Cow<'a, str>, Cow<'a, str>)>);

impl Dimensions<'_> {
    /// No dimensions.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Dimensions<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in &self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// A string that borrows from the input when it has no escapes.
#[derive(Deserialize)]
struct Str<'a>(#[serde(borrow)] Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Dimensions<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DimensionsVisitor<'a>(core::marker::PhantomData<Dimensions<'a>>);

        impl<'de: 'a, 'a> Visitor<'de> for DimensionsVisitor<'a> {
            type Value = Dimensions<'a>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of dimension names to string values")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut pairs: Vec<(Cow<'a, str>, Cow<'a, str>)> = Vec::new();
                while let Some((Str(name), Str(value))) = map.next_entry::<Str<'a>, Str<'a>>()? {
                    if pairs.iter().any(|(n, _)| *n == name) {
                        return Err(de::Error::custom(format_args!(
                            "dimension {name:?} appears twice"
                        )));
                    }
                    pairs.push((name, value));
                }
                Ok(Dimensions(pairs))
            }
        }

        deserializer.deserialize_map(DimensionsVisitor(core::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    pub(super) fn sample() -> Batch<'static> {
        Batch {
            v: v1::VERSION,
            id: "0123abcd".into(),
            ns: "Shop".into(),
            t: 1_700_000_000_000,
            dims: Dimensions(vec![("service".into(), "checkout".into())]),
            series: vec![
                Series {
                    n: "orders".into(),
                    k: Kind::Counter,
                    u: Some("Count".into()),
                    d: Dimensions(vec![("route".into(), "/buy".into())]),
                    r: None,
                },
                Series {
                    n: "latency".into(),
                    k: Kind::Distribution,
                    u: Some("Milliseconds".into()),
                    d: Dimensions::default(),
                    r: Some(1),
                },
            ],
            points: vec![
                Point {
                    s: 0,
                    x: Some(3.0),
                    ..Point::default()
                },
                Point {
                    s: 1,
                    t: 5,
                    vs: Some(vec![1.5, 2.5]),
                    cs: Some(vec![3.0, 1.0]),
                    ..Point::default()
                },
            ],
        }
    }

    #[test]
    fn encodes_compactly_and_decodes_back() {
        let json = serde_json::to_string(&sample()).expect("encodes");
        assert_eq!(
            json,
            r#"{"v":1,"id":"0123abcd","ns":"Shop","t":1700000000000,"dims":{"service":"checkout"},"series":[{"n":"orders","k":"c","u":"Count","d":{"route":"/buy"}},{"n":"latency","k":"d","u":"Milliseconds","r":1}],"points":[{"s":0,"x":3},{"s":1,"t":5,"vs":[1.5,2.5],"cs":[3,1]}]}"#
        );
        let back: Batch<'_> = serde_json::from_str(&json).expect("decodes");
        assert_eq!(back, sample());
        assert!(matches!(back.series[0].n, Cow::Borrowed(_)), "names borrow");
    }

    #[test]
    fn repeated_dimension_names_are_refused() {
        let json =
            r#"{"v":1,"id":"a","ns":"N","t":0,"dims":{"a":"1","a":"2"},"series":[],"points":[]}"#;
        let err = serde_json::from_str::<Batch<'_>>(json).expect_err("refused");
        assert!(err.to_string().contains("appears twice"), "{err}");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let json = r#"{"v":1,"id":"a","ns":"N","t":0,"series":[],"points":[{"s":0,"y":1}]}"#;
        let err = serde_json::from_str::<Batch<'_>>(json).expect_err("refused");
        assert!(err.to_string().contains("unknown field `y`"), "{err}");
    }
}
