//! The OTLP metrics messages the receiver reads (`opentelemetry/proto`
//! v1: `collector/metrics/v1`, `metrics/v1`, `common/v1`,
//! `resource/v1`), declared for both encodings: protobuf (prost) and
//! OTLP/JSON (serde: lowerCamelCase names, the proto names accepted too,
//! 64-bit integers as strings or numbers, enums as integers).
//!
//! Fields the receiver does not use (exemplars, descriptions, metadata,
//! schema URLs, flags) are left out: both decoders skip unknown fields.
//!
//! About 600 lines: the message declarations (prost derives) and the
//! OTLP/JSON readers for the same messages, which must be read together.

#![allow(missing_docs)]

use std::borrow::Cow;

use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ExportMetricsServiceRequest {
    #[prost(message, repeated, tag = "1")]
    #[serde(alias = "resource_metrics")]
    pub resource_metrics: Vec<ResourceMetrics>,
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ResourceMetrics {
    #[prost(message, optional, tag = "1")]
    pub resource: Option<Resource>,
    #[prost(message, repeated, tag = "2")]
    #[serde(alias = "scope_metrics")]
    pub scope_metrics: Vec<ScopeMetrics>,
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default)]
pub struct Resource {
    #[prost(message, repeated, tag = "1")]
    pub attributes: Vec<KeyValue>,
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default)]
pub struct ScopeMetrics {
    #[prost(message, optional, tag = "1")]
    pub scope: Option<InstrumentationScope>,
    #[prost(message, repeated, tag = "2")]
    pub metrics: Vec<Metric>,
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default)]
pub struct InstrumentationScope {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub version: String,
    #[prost(message, repeated, tag = "3")]
    pub attributes: Vec<KeyValue>,
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default)]
pub struct KeyValue {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<AnyValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct AnyValue {
    #[prost(oneof = "any_value::Value", tags = "1, 2, 3, 4, 5, 6, 7")]
    pub value: Option<any_value::Value>,
}

pub mod any_value {
    use super::*;

    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Value {
        #[prost(string, tag = "1")]
        StringValue(String),
        #[prost(bool, tag = "2")]
        BoolValue(bool),
        #[prost(int64, tag = "3")]
        IntValue(i64),
        #[prost(double, tag = "4")]
        DoubleValue(f64),
        #[prost(message, tag = "5")]
        ArrayValue(ArrayValue),
        #[prost(message, tag = "6")]
        KvlistValue(KeyValueList),
        #[prost(bytes, tag = "7")]
        BytesValue(Vec<u8>),
    }
}

impl<'de> Deserialize<'de> for AnyValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        read_object(d)
    }
}

impl<'de> Fields<'de> for AnyValue {
    const WHAT: &'static str = "an AnyValue object";

    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<bool, A::Error> {
        use any_value::Value;
        self.value = Some(match key {
            "stringValue" | "string_value" => Value::StringValue(map.next_value()?),
            "boolValue" | "bool_value" => Value::BoolValue(map.next_value()?),
            "intValue" | "int_value" => Value::IntValue(map.next_value::<Number<'_>>()?.int()?),
            "doubleValue" | "double_value" => {
                Value::DoubleValue(map.next_value::<Number<'_>>()?.float()?)
            }
            "arrayValue" | "array_value" => Value::ArrayValue(map.next_value()?),
            "kvlistValue" | "kvlist_value" => Value::KvlistValue(map.next_value()?),
            "bytesValue" | "bytes_value" => {
                Value::BytesValue(base64_bytes(&map.next_value::<Cow<'_, str>>()?)?)
            }
            _ => return Ok(false),
        });
        Ok(true)
    }
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default)]
pub struct ArrayValue {
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<AnyValue>,
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default)]
pub struct KeyValueList {
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<KeyValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Metric {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "3")]
    pub unit: String,
    #[prost(oneof = "metric::Data", tags = "5, 7, 9, 10, 11")]
    pub data: Option<metric::Data>,
}

pub mod metric {
    use super::*;

    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Data {
        #[prost(message, tag = "5")]
        Gauge(Gauge),
        #[prost(message, tag = "7")]
        Sum(Sum),
        #[prost(message, tag = "9")]
        Histogram(Histogram),
        #[prost(message, tag = "10")]
        ExponentialHistogram(ExponentialHistogram),
        #[prost(message, tag = "11")]
        Summary(Summary),
    }
}

impl<'de> Deserialize<'de> for Metric {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        read_object(d)
    }
}

impl<'de> Fields<'de> for Metric {
    const WHAT: &'static str = "a Metric object";

    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<bool, A::Error> {
        use metric::Data;
        self.data = Some(match key {
            "name" => {
                self.name = map.next_value()?;
                return Ok(true);
            }
            "unit" => {
                self.unit = map.next_value()?;
                return Ok(true);
            }
            "gauge" => Data::Gauge(map.next_value()?),
            "sum" => Data::Sum(map.next_value()?),
            "histogram" => Data::Histogram(map.next_value()?),
            "exponentialHistogram" | "exponential_histogram" => {
                Data::ExponentialHistogram(map.next_value()?)
            }
            "summary" => Data::Summary(map.next_value()?),
            _ => return Ok(false),
        });
        Ok(true)
    }
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Gauge {
    #[prost(message, repeated, tag = "1")]
    #[serde(alias = "data_points")]
    pub data_points: Vec<NumberDataPoint>,
}

/// `AggregationTemporality`: unspecified.
pub const TEMPORALITY_UNSPECIFIED: i32 = 0;
/// `AggregationTemporality`: delta.
pub const TEMPORALITY_DELTA: i32 = 1;
/// `AggregationTemporality`: cumulative.
pub const TEMPORALITY_CUMULATIVE: i32 = 2;

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Sum {
    #[prost(message, repeated, tag = "1")]
    #[serde(alias = "data_points")]
    pub data_points: Vec<NumberDataPoint>,
    #[prost(int32, tag = "2")]
    #[serde(alias = "aggregation_temporality", deserialize_with = "temporality")]
    pub aggregation_temporality: i32,
    #[prost(bool, tag = "3")]
    #[serde(alias = "is_monotonic")]
    pub is_monotonic: bool,
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Histogram {
    #[prost(message, repeated, tag = "1")]
    #[serde(alias = "data_points")]
    pub data_points: Vec<HistogramDataPoint>,
    #[prost(int32, tag = "2")]
    #[serde(alias = "aggregation_temporality", deserialize_with = "temporality")]
    pub aggregation_temporality: i32,
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ExponentialHistogram {
    #[prost(message, repeated, tag = "1")]
    #[serde(alias = "data_points")]
    pub data_points: Vec<ExponentialHistogramDataPoint>,
    #[prost(int32, tag = "2")]
    #[serde(alias = "aggregation_temporality", deserialize_with = "temporality")]
    pub aggregation_temporality: i32,
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Summary {
    #[prost(message, repeated, tag = "1")]
    #[serde(alias = "data_points")]
    pub data_points: Vec<SummaryDataPoint>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct NumberDataPoint {
    #[prost(message, repeated, tag = "7")]
    pub attributes: Vec<KeyValue>,
    #[prost(fixed64, tag = "3")]
    pub time_unix_nano: u64,
    #[prost(oneof = "number_data_point::Value", tags = "4, 6")]
    pub value: Option<number_data_point::Value>,
}

pub mod number_data_point {
    #[derive(Clone, Copy, PartialEq, prost::Oneof)]
    pub enum Value {
        #[prost(double, tag = "4")]
        AsDouble(f64),
        #[prost(sfixed64, tag = "6")]
        AsInt(i64),
    }
}

impl<'de> Deserialize<'de> for NumberDataPoint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        read_object(d)
    }
}

impl<'de> Fields<'de> for NumberDataPoint {
    const WHAT: &'static str = "a NumberDataPoint object";

    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<bool, A::Error> {
        use number_data_point::Value;
        self.value = Some(match key {
            "attributes" => {
                self.attributes = map.next_value()?;
                return Ok(true);
            }
            "timeUnixNano" | "time_unix_nano" => {
                self.time_unix_nano = map.next_value::<Number<'_>>()?.int()?;
                return Ok(true);
            }
            "asDouble" | "as_double" => Value::AsDouble(map.next_value::<Number<'_>>()?.float()?),
            "asInt" | "as_int" => Value::AsInt(map.next_value::<Number<'_>>()?.int()?),
            _ => return Ok(false),
        });
        Ok(true)
    }
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HistogramDataPoint {
    #[prost(message, repeated, tag = "9")]
    pub attributes: Vec<KeyValue>,
    #[prost(fixed64, tag = "3")]
    #[serde(alias = "time_unix_nano", deserialize_with = "uint")]
    pub time_unix_nano: u64,
    #[prost(fixed64, tag = "4")]
    #[serde(deserialize_with = "uint")]
    pub count: u64,
    #[prost(double, optional, tag = "5")]
    #[serde(deserialize_with = "optional_float")]
    pub sum: Option<f64>,
    #[prost(fixed64, repeated, tag = "6")]
    #[serde(alias = "bucket_counts", deserialize_with = "uints")]
    pub bucket_counts: Vec<u64>,
    #[prost(double, repeated, tag = "7")]
    #[serde(alias = "explicit_bounds", deserialize_with = "floats")]
    pub explicit_bounds: Vec<f64>,
    #[prost(double, optional, tag = "11")]
    #[serde(deserialize_with = "optional_float")]
    pub min: Option<f64>,
    #[prost(double, optional, tag = "12")]
    #[serde(deserialize_with = "optional_float")]
    pub max: Option<f64>,
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ExponentialHistogramDataPoint {
    #[prost(message, repeated, tag = "1")]
    pub attributes: Vec<KeyValue>,
    #[prost(fixed64, tag = "3")]
    #[serde(alias = "time_unix_nano", deserialize_with = "uint")]
    pub time_unix_nano: u64,
    #[prost(fixed64, tag = "4")]
    #[serde(deserialize_with = "uint")]
    pub count: u64,
    #[prost(double, optional, tag = "5")]
    #[serde(deserialize_with = "optional_float")]
    pub sum: Option<f64>,
    #[prost(sint32, tag = "6")]
    pub scale: i32,
    #[prost(fixed64, tag = "7")]
    #[serde(alias = "zero_count", deserialize_with = "uint")]
    pub zero_count: u64,
    #[prost(message, optional, tag = "8")]
    pub positive: Option<Buckets>,
    #[prost(message, optional, tag = "9")]
    pub negative: Option<Buckets>,
    #[prost(double, optional, tag = "12")]
    #[serde(deserialize_with = "optional_float")]
    pub min: Option<f64>,
    #[prost(double, optional, tag = "13")]
    #[serde(deserialize_with = "optional_float")]
    pub max: Option<f64>,
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Buckets {
    #[prost(sint32, tag = "1")]
    pub offset: i32,
    #[prost(uint64, repeated, tag = "2")]
    #[serde(alias = "bucket_counts", deserialize_with = "uints")]
    pub bucket_counts: Vec<u64>,
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SummaryDataPoint {
    #[prost(message, repeated, tag = "7")]
    pub attributes: Vec<KeyValue>,
    #[prost(fixed64, tag = "3")]
    #[serde(alias = "time_unix_nano", deserialize_with = "uint")]
    pub time_unix_nano: u64,
    #[prost(fixed64, tag = "4")]
    #[serde(deserialize_with = "uint")]
    pub count: u64,
    #[prost(double, tag = "5")]
    #[serde(deserialize_with = "float")]
    pub sum: f64,
    #[prost(message, repeated, tag = "6")]
    #[serde(alias = "quantile_values")]
    pub quantile_values: Vec<ValueAtQuantile>,
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default)]
pub struct ValueAtQuantile {
    #[prost(double, tag = "1")]
    #[serde(deserialize_with = "float")]
    pub quantile: f64,
    #[prost(double, tag = "2")]
    #[serde(deserialize_with = "float")]
    pub value: f64,
}

/// The answer to an export.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportMetricsServiceResponse {
    #[prost(message, optional, tag = "1")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partial_success: Option<ExportMetricsPartialSuccess>,
}

#[derive(Clone, PartialEq, prost::Message, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportMetricsPartialSuccess {
    #[prost(int64, tag = "1")]
    pub rejected_data_points: i64,
    #[prost(string, tag = "2")]
    pub error_message: String,
}

/// `google.rpc.Status`: the body of a refused export.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize)]
pub struct Status {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

/// A JSON number, or a string holding one (proto3 JSON writes 64-bit
/// integers as strings, and NaN and the infinities as `"NaN"`,
/// `"Infinity"`, `"-Infinity"`).
enum Number<'a> {
    Unsigned(u64),
    Signed(i64),
    Float(f64),
    Text(Cow<'a, str>),
}

impl<'de> Deserialize<'de> for Number<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> Visitor<'de> for Visit {
            type Value = Number<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number, or a string holding one")
            }
            fn visit_u64<E>(self, v: u64) -> Result<Number<'de>, E> {
                Ok(Number::Unsigned(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Number<'de>, E> {
                Ok(Number::Signed(v))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Number<'de>, E> {
                Ok(Number::Float(v))
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Number<'de>, E> {
                Ok(Number::Text(v.into()))
            }
            fn visit_str<E>(self, v: &str) -> Result<Number<'de>, E> {
                Ok(Number::Text(v.to_string().into()))
            }
        }
        d.deserialize_any(Visit)
    }
}

impl Number<'_> {
    fn float<E: serde::de::Error>(&self) -> Result<f64, E> {
        Ok(match self {
            Number::Unsigned(u) => *u as f64,
            Number::Signed(i) => *i as f64,
            Number::Float(f) => *f,
            Number::Text(s) => match s.as_ref() {
                "NaN" => f64::NAN,
                "Infinity" => f64::INFINITY,
                "-Infinity" => f64::NEG_INFINITY,
                s => s
                    .parse()
                    .map_err(|_| E::custom(format!("{s:?} is not a number")))?,
            },
        })
    }

    fn int<E: serde::de::Error, T: TryFrom<u64> + TryFrom<i64> + std::str::FromStr>(
        &self,
    ) -> Result<T, E> {
        let out_of_range = || E::custom("integer out of range");
        match self {
            Number::Unsigned(u) => T::try_from(*u).map_err(|_| out_of_range()),
            Number::Signed(i) => T::try_from(*i).map_err(|_| out_of_range()),
            Number::Float(f) => Err(E::custom(format!("{f} is not an integer"))),
            Number::Text(s) => s
                .parse()
                .map_err(|_| E::custom(format!("{s:?} is not an integer"))),
        }
    }
}

fn float<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Number::deserialize(d)?.float()
}

fn optional_float<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Option::<Number<'_>>::deserialize(d)?
        .map(|n| n.float())
        .transpose()
}

fn floats<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
    Vec::<Number<'_>>::deserialize(d)?
        .iter()
        .map(Number::float)
        .collect()
}

fn uint<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Number::deserialize(d)?.int()
}

fn uints<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
    Vec::<Number<'_>>::deserialize(d)?
        .iter()
        .map(Number::int)
        .collect()
}

/// A message with a oneof, read from a JSON object key by key by hand.
/// (`#[serde(flatten)]` would buffer every field of the object first:
/// slower, and most of the OTLP/JSON decoder's code in the Worker's wasm.)
trait Fields<'de>: Default {
    /// What the object is, for errors.
    const WHAT: &'static str;

    /// Reads the value of `key` into `self`; `false` for a key it does not
    /// know, whose value is then skipped (the last oneof member given wins).
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<bool, A::Error>;
}

/// Reads a [`Fields`] message from a JSON object.
fn read_object<'de, D: Deserializer<'de>, T: Fields<'de>>(d: D) -> Result<T, D::Error> {
    struct Visit<T>(std::marker::PhantomData<T>);
    impl<'de, T: Fields<'de>> Visitor<'de> for Visit<T> {
        type Value = T;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(T::WHAT)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
            let mut out = T::default();
            while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
                if !out.field(&key, &mut map)? {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(out)
        }
    }
    d.deserialize_map(Visit(std::marker::PhantomData))
}

/// An object's key, borrowed from the body unless it holds escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> Visitor<'de> for Visit {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(Visit)
    }
}

fn base64_bytes<E: serde::de::Error>(text: &str) -> Result<Vec<u8>, E> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text.as_bytes())
        .map_err(E::custom)
}

/// An `AggregationTemporality`: its number, or its name.
fn temporality<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    Ok(match Number::deserialize(d)? {
        Number::Text(name) => match name.as_ref() {
            "AGGREGATION_TEMPORALITY_DELTA" => TEMPORALITY_DELTA,
            "AGGREGATION_TEMPORALITY_CUMULATIVE" => TEMPORALITY_CUMULATIVE,
            _ => TEMPORALITY_UNSPECIFIED,
        },
        n => n.int()?,
    })
}
