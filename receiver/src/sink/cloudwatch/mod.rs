//! CloudWatch `PutMetricData` over the AWS JSON 1.0 protocol: datums, request
//! splitting, gzip and SigV4 signing. Pure: no clock, no network, no
//! filesystem, so the same code runs natively and inside a Worker. One file
//! per role: settings ([`Config`]), datums ([`datums`]), JSON bodies
//! ([`bodies`]), the split into requests ([`split`]), CBOR bounds for the
//! native SDK path ([`sdk_requests`]), signing ([`request`]) and errors.

mod cbor;
mod config;
mod datum;
mod errors;
mod json;
mod request;
mod split;

pub use cbor::{cbor_datum_bound, cbor_envelope_bound, sdk_requests};
pub use config::{BuildError, Config, Keys, Protocol, RetryMode};
pub use datum::{Datum, Measure, datums};
pub use errors::{error_type, is_throttling};
pub use json::{bodies, body_parts};
pub use request::{SERVICE, TARGET, request};
pub use split::split;

use crate::model::Batch;
use crate::sink::{SinkRefusal, refuse_values};

/// The points of `batch` CloudWatch cannot store (strings and booleans,
/// which line-protocol sinks store), refused by kind; they have no datums.
pub fn unstorable(batch: &Batch) -> Vec<SinkRefusal> {
    refuse_values(
        "cloudwatch",
        batch,
        |_| true,
        "CloudWatch stores numbers only (line-protocol sinks store it)",
    )
}

#[cfg(test)]
mod tests;
