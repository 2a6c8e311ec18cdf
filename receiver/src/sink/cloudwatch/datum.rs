//! How points become CloudWatch datums: the one place that decides it,
//! whichever way they are sent.

use edgepush_protocol::limits::MAX_VALUES_PER_DATUM;

use crate::model::{Batch, Series, StatisticSet, Value};

/// What one CloudWatch datum carries.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Measure<'a> {
    /// `Value`.
    Value(f64),
    /// `StatisticValues`.
    Statistics(StatisticSet),
    /// `Values` and `Counts`, at most 150 of each.
    Values {
        /// The values.
        values: &'a [f64],
        /// How often each occurred.
        counts: &'a [f64],
    },
}

/// One CloudWatch datum, borrowed from a batch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Datum<'a> {
    /// Name, dimensions, unit and storage resolution.
    pub series: &'a Series,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// The numbers.
    pub measure: Measure<'a>,
}

/// Every CloudWatch datum of `batch`, in order. This is the one place that
/// decides how points become datums, whichever way they are sent (signed
/// AWS JSON here and in the Worker, the SDK natively): distributions are cut
/// into datums of at most 150 values, and a gauge set several times goes as
/// the statistics of every value set (CloudWatch has no "last" statistic),
/// so its Minimum, Maximum and Average are right.
pub fn datums(batch: &Batch) -> impl Iterator<Item = Datum<'_>> {
    indexed_datums(batch).map(|(_, _, datum)| datum)
}

/// [`datums`] with the index of each one's series and point.
pub(super) fn indexed_datums(batch: &Batch) -> impl Iterator<Item = (usize, usize, Datum<'_>)> {
    batch
        .points
        .iter()
        .enumerate()
        .flat_map(move |(index, point)| {
            let series = &batch.series[point.series];
            let datum = move |measure| {
                (
                    point.series,
                    index,
                    Datum {
                        series,
                        timestamp_ms: point.timestamp_ms,
                        measure,
                    },
                )
            };
            let (single, chunks) = match &point.value {
                Value::Counter(v)
                | Value::Gauge {
                    last: v,
                    stats: None,
                } => (Some(datum(Measure::Value(*v))), None),
                Value::Gauge {
                    stats: Some(st), ..
                }
                | Value::Statistics(st) => (Some(datum(Measure::Statistics(*st))), None),
                Value::Distribution { values, counts } => (
                    None,
                    Some(
                        values
                            .chunks(MAX_VALUES_PER_DATUM)
                            .zip(counts.chunks(MAX_VALUES_PER_DATUM))
                            .map(move |(values, counts)| datum(Measure::Values { values, counts })),
                    ),
                ),
                // CloudWatch stores numbers only: see [`unstorable`].
                Value::Text(_) | Value::Boolean(_) => (None, None),
            };
            single.into_iter().chain(chunks.into_iter().flatten())
        })
}
