//! The receiver's internal model: validated batches of series and points.
//!
//! Every ingest format decodes into this model and every sink reads from it,
//! so formats and sinks never see each other.

use std::borrow::Cow;

use edgepush_protocol::wire::Kind;
use edgepush_protocol::{Resolution, Unit};

/// A validated batch: every series and point in it obeys CloudWatch's and
/// line protocol's rules.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// The batch id the client chose (stable across its retries).
    pub id: String,
    /// CloudWatch namespace.
    pub namespace: String,
    /// Series referred to by the points.
    pub series: Vec<Series>,
    /// Data points.
    pub points: Vec<Point>,
}

impl Batch {
    /// The batch from point `first` on (what is left to deliver after a
    /// sink took the points before it); the series are kept as they are.
    /// Borrowed when `first` is 0: nothing is copied.
    pub fn from_point(&self, first: usize) -> Cow<'_, Batch> {
        if first == 0 {
            return Cow::Borrowed(self);
        }
        Cow::Owned(Batch {
            id: self.id.clone(),
            namespace: self.namespace.clone(),
            series: self.series.clone(),
            points: self.points.get(first..).unwrap_or_default().to_vec(),
        })
    }

    /// The batch's points encoded by `encode` (given a range of points) in
    /// parts of at most `max_bytes`, halving a range until it fits or holds
    /// a single point; in order.
    pub fn encode_in_parts(
        &self,
        max_bytes: usize,
        encode: &impl Fn(std::ops::Range<usize>) -> Vec<u8>,
    ) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        halves(0..self.points.len(), max_bytes, encode, &mut out);
        out
    }
}

fn halves(
    range: std::ops::Range<usize>,
    max_bytes: usize,
    encode: &impl Fn(std::ops::Range<usize>) -> Vec<u8>,
    out: &mut Vec<Vec<u8>>,
) {
    let part = encode(range.clone());
    if part.len() <= max_bytes || range.len() <= 1 {
        out.push(part);
        return;
    }
    let middle = range.start + range.len() / 2;
    halves(range.start..middle, max_bytes, encode, out);
    halves(middle..range.end, max_bytes, encode, out);
}

/// What a point measures.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Series {
    /// Metric name.
    pub name: String,
    /// Kind of aggregation.
    pub kind: Kind,
    /// CloudWatch unit.
    pub unit: Unit,
    /// All dimensions (the batch's common ones first), at most 30, names unique.
    pub dimensions: Vec<(String, String)>,
    /// Storage resolution.
    pub resolution: Resolution,
}

/// One data point.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// Index into [`Batch::series`].
    pub series: usize,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// The value.
    pub value: Value,
}

/// A point's value; its variant matches the series' kind, except that a
/// distribution may also carry a statistic set (values its emitter summarised)
/// and a gauge a string or boolean (a line-protocol field that only
/// line-protocol sinks store).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A counter's sum over the interval.
    Counter(f64),
    /// A gauge: the last value set, and the statistics of every value set in
    /// the interval when there was more than one.
    Gauge {
        /// The last value.
        last: f64,
        /// Count, sum, minimum and maximum of every value set.
        stats: Option<StatisticSet>,
    },
    /// Distinct values and how often each occurred (same lengths, non-empty).
    Distribution {
        /// The values.
        values: Vec<f64>,
        /// Their counts.
        counts: Vec<f64>,
    },
    /// A statistic set.
    Statistics(StatisticSet),
    /// A gauge's string value (at most 64 KB, no control characters but tab).
    Text(String),
    /// A gauge's boolean value.
    Boolean(bool),
}

/// CloudWatch `StatisticValues`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StatisticSet {
    /// Number of samples.
    pub count: f64,
    /// Sum of the samples.
    pub sum: f64,
    /// Smallest sample.
    pub min: f64,
    /// Largest sample.
    pub max: f64,
}

impl Value {
    /// The statistic set this value summarises; none for a string or boolean.
    pub fn statistics(&self) -> Option<StatisticSet> {
        Some(match self {
            Value::Counter(v)
            | Value::Gauge {
                last: v,
                stats: None,
            } => StatisticSet {
                count: 1.0,
                sum: *v,
                min: *v,
                max: *v,
            },
            Value::Gauge { stats: Some(s), .. } => *s,
            Value::Distribution { values, counts } => {
                let mut s = StatisticSet {
                    count: 0.0,
                    sum: 0.0,
                    min: f64::INFINITY,
                    max: f64::NEG_INFINITY,
                };
                for (v, c) in values.iter().zip(counts) {
                    s.count += c;
                    s.sum += v * c;
                    s.min = s.min.min(*v);
                    s.max = s.max.max(*v);
                }
                s
            }
            Value::Statistics(s) => *s,
            Value::Text(_) | Value::Boolean(_) => return None,
        })
    }

    /// What a string or boolean value is called in messages; `None` for a number.
    pub fn non_numeric(&self) -> Option<&'static str> {
        match self {
            Value::Text(_) => Some("string"),
            Value::Boolean(_) => Some("boolean"),
            _ => None,
        }
    }
}
