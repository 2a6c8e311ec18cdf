//! Upper bounds on the CBOR the AWS SDK writes (rpc-v2-cbor), so that the
//! native SDK path splits its requests by the same rules as JSON.

use std::ops::Range;

use super::datum::{Datum, Measure, indexed_datums};
use super::split::split;
use crate::model::Batch;

/// CBOR bytes of a text string of `len` bytes, or of a map key.
fn cbor_text(len: usize) -> usize {
    len + match len {
        0..24 => 1,
        24..256 => 2,
        256..65_536 => 3,
        _ => 5,
    }
}

/// The most a container's head and end take in CBOR.
const CBOR_CONTAINER: usize = 3;
/// A double in CBOR.
const CBOR_DOUBLE: usize = 9;

/// An upper bound on the CBOR (rpc-v2-cbor, the SDK's protocol) of a
/// `PutMetricData` input without its datums.
pub fn cbor_envelope_bound(namespace: &str) -> usize {
    CBOR_CONTAINER
        + cbor_text("Namespace".len())
        + cbor_text(namespace.len())
        + cbor_text("MetricData".len())
        + CBOR_CONTAINER
}

/// An upper bound on the CBOR of one datum: every double taken as 9 bytes,
/// every container as 3, every text with its longest head. Checked against
/// the SDK's own bodies in the tests.
pub fn cbor_datum_bound(datum: &Datum<'_>) -> usize {
    let series = datum.series;
    let mut size = CBOR_CONTAINER
        + cbor_text("MetricName".len())
        + cbor_text(series.name.len())
        + cbor_text("Timestamp".len())
        + 1
        + CBOR_DOUBLE
        + cbor_text("Unit".len())
        + cbor_text(series.unit.as_str().len())
        + cbor_text("StorageResolution".len())
        + 5;
    if !series.dimensions.is_empty() {
        size += cbor_text("Dimensions".len()) + CBOR_CONTAINER;
        for (name, value) in &series.dimensions {
            size += CBOR_CONTAINER
                + cbor_text("Name".len())
                + cbor_text(name.len())
                + cbor_text("Value".len())
                + cbor_text(value.len());
        }
    }
    size + match datum.measure {
        Measure::Value(_) => cbor_text("Value".len()) + CBOR_DOUBLE,
        Measure::Statistics(_) => {
            cbor_text("StatisticValues".len())
                + CBOR_CONTAINER
                + ["SampleCount", "Sum", "Minimum", "Maximum"]
                    .iter()
                    .map(|k| cbor_text(k.len()) + CBOR_DOUBLE)
                    .sum::<usize>()
        }
        Measure::Values { values, counts } => {
            cbor_text("Values".len())
                + cbor_text("Counts".len())
                + 2 * CBOR_CONTAINER
                + CBOR_DOUBLE * (values.len() + counts.len())
        }
    }
}

/// The datums of `batch` grouped into the requests the SDK sends: the same
/// datums and limits as [`bodies`](super::bodies), measured on the CBOR the SDK writes,
/// each with the range of points it carries.
pub fn sdk_requests(batch: &Batch) -> Vec<(Range<usize>, Vec<Datum<'_>>)> {
    split(
        indexed_datums(batch).map(|(_, point, d)| {
            let size = cbor_datum_bound(&d);
            (point, d, size)
        }),
        cbor_envelope_bound(&batch.namespace),
    )
}
