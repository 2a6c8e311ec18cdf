//! Wire format v1: a batch ([`super::Batch`]) as one JSON object, written
//! and read by serde (`serde_json`), gzip-compressed on the wire.

/// The version a batch carries in its `v` field.
pub const VERSION: u32 = 1;
/// The media type of a wire v1 batch (the JSON before compression).
pub const CONTENT_TYPE: &str = "application/vnd.edgepush.v1+json";
