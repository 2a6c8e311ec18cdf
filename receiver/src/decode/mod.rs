//! Ingest formats: each decodes a request body into the internal model.

mod body;
mod json_path;
pub mod wire_v1;

pub use body::decode_content;

use serde::Serialize;

use crate::model::Batch;

/// A point refused while the rest of its batch was accepted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rejection {
    /// Index of the point in the request.
    pub point: usize,
    /// Metric name of the point's series, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// The field at fault, as a path into the request.
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

/// A decoded request: the accepted points as a validated batch, and every
/// refused point with its reason.
#[derive(Clone, Debug, PartialEq)]
pub struct Decoded {
    /// The accepted part.
    pub batch: Batch,
    /// The refused points, in request order.
    pub rejected: Vec<Rejection>,
    /// For each accepted point, its index in the request.
    pub indices: Vec<usize>,
}
