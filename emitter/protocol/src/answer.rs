//! The receiver's answer to an accepted push (`202`, or `400` when every
//! point was refused): written by the receiver, read by the emitter.
//!
//! ```
//! use edgepush_protocol::answer::Answer;
//!
//! let body = r#"{"batch":"b1","accepted":2,"rejected_count":1,
//!   "rejected":[{"point":1,"field":"points[1].x","reason":"value is NaN or infinite"}],
//!   "partial":true}"#;
//! let answer: Answer<'_> = serde_json::from_str(body)?;
//! assert_eq!((answer.accepted, answer.refused()), (2, 1));
//! # Ok::<(), serde_json::Error>(())
//! ```

use alloc::borrow::Cow;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

/// How many refused points an answer lists (`rejected_count` counts all).
pub const MAX_LISTED_REJECTIONS: usize = 100;

/// The answer to a push the receiver decoded. Every field has a default
/// when read, so an answer without a field counts as nothing of it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Answer<'a> {
    /// The batch id.
    #[serde(default, borrow)]
    pub batch: Cow<'a, str>,
    /// Points accepted (and forwarded, in a 202).
    #[serde(default)]
    pub accepted: usize,
    /// Points refused.
    #[serde(default)]
    pub rejected_count: usize,
    /// The first refused points ([`MAX_LISTED_REJECTIONS`]) with their
    /// reasons.
    #[serde(default)]
    pub rejected: Cow<'a, [Rejection]>,
    /// Set when some points were refused and the rest accepted.
    #[serde(default, skip_serializing_if = "is_false")]
    pub partial: bool,
    /// Set when the batch was delivered before (same namespace and id) and
    /// was not forwarded again.
    #[serde(default, skip_serializing_if = "is_false")]
    pub duplicate: bool,
    /// Sinks that could not take the batch now: it is on the receiver's
    /// disk and will be delivered to them when they recover.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spooled: Vec<Cow<'a, str>>,
    /// Points a sink refused for good while it took the rest: not sent
    /// again (a retry would be refused too), named by request index.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sink_rejected: Vec<SinkRefusal>,
}

impl Answer<'_> {
    /// How many accepted points sinks refused for good.
    pub fn refused_by_sinks(&self) -> usize {
        self.sink_rejected.iter().map(|r| r.points.len()).sum()
    }

    /// Every point was refused: nothing was forwarded, and the receiver
    /// answers `400`.
    pub fn all_refused(&self) -> bool {
        self.accepted == 0 && self.rejected_count > 0
    }

    /// Points refused: `rejected_count`, or the listed ones when an answer
    /// gives no count.
    pub fn refused(&self) -> usize {
        if self.rejected_count == 0 {
            self.rejected.len()
        } else {
            self.rejected_count
        }
    }
}

/// A point refused at ingest.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    /// Index of the point in the request.
    #[serde(default)]
    pub point: usize,
    /// Metric name of the point's series, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<alloc::string::String>,
    /// The field at fault, as a path into the request.
    #[serde(default)]
    pub field: alloc::string::String,
    /// What is wrong.
    #[serde(default)]
    pub reason: alloc::string::String,
}

/// Points one sink refused for good while it took the rest.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinkRefusal {
    /// The sink's name.
    #[serde(default)]
    pub sink: Cow<'static, str>,
    /// Indices of the refused points in the request.
    #[serde(default)]
    pub points: Vec<usize>,
    /// The sink's reason.
    #[serde(default)]
    pub message: alloc::string::String,
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn an_answer_reads_back_as_written() {
        let rejected = [Rejection {
            point: 3,
            metric: Some("latency".into()),
            field: "points[3].x".into(),
            reason: "value is NaN or infinite".into(),
        }];
        let answer = Answer {
            batch: "b1".into(),
            accepted: 4,
            rejected_count: 1,
            rejected: Cow::Borrowed(&rejected),
            partial: true,
            duplicate: false,
            spooled: vec!["cloudwatch".into()],
            sink_rejected: vec![SinkRefusal {
                sink: "influxdb".into(),
                points: vec![0],
                message: "field type conflict".into(),
            }],
        };
        let json = serde_json::to_string(&answer).expect("writes");
        assert!(!json.contains("duplicate"), "{json}");
        let back: Answer<'_> = serde_json::from_str(&json).expect("reads");
        assert_eq!(back, answer);
        assert_eq!(back.refused(), 1);
    }

    #[test]
    fn missing_fields_count_as_nothing() {
        let answer: Answer<'_> = serde_json::from_str("{}").expect("reads");
        assert_eq!((answer.accepted, answer.refused()), (0, 0));
        let listed: Answer<'_> =
            serde_json::from_str(r#"{"accepted":3,"rejected":[{"point":1},{"point":2}]}"#)
                .expect("reads");
        assert_eq!((listed.accepted, listed.refused()), (3, 2));
    }
}
