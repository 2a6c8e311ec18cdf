//! Wire format v3: wire v2 with the batch's dimension sets written once, in
//! a table after the common dimensions, and each series pointing into it.
//! Specified in `docs/wire-format.md`.
//!
//! ```text
//! batch  = str id, str ns, svarint t, dims, varint m, dims*m,
//!          varint n, series*n, varint n, point*n
//! series = str name, u8 head, [str unit], [varint r], svarint ds
//!          the series' set = ds + the previous series' set (ds alone for
//!          the first series)
//! ```
//!
//! Everything else (`dims`, `head`, `point`, numbers) is v2's. Many series
//! over few sets (ten metrics per host, say) write each set once, and
//! series of one name over many sets become runs of like bytes: one-value
//! counters over 1,000 series take about half of v2's gzip'd bytes.

use alloc::vec::Vec;

use super::Batch;
use super::v2::{self, DecodeError, Layout};

/// The wire format version of this encoding.
pub const VERSION: u32 = 3;
/// The media type of a wire v3 batch (before compression).
pub const CONTENT_TYPE: &str = "application/vnd.edgepush.v3";

/// Encodes a whole batch.
pub fn encode(batch: &Batch<'_>) -> Vec<u8> {
    v2::encode_as(batch, Layout::Sets)
}

/// Decodes a wire v3 body (decompressed) into the batch it carries, with
/// `v` set to [`VERSION`]; checks as [`v2::decode`] does, and that every
/// series points at a set the batch has.
///
/// Each series gets a copy of its set, so a body can ask for far more
/// memory than its size: decode untrusted bodies with [`decode_within`].
pub fn decode(bytes: &[u8]) -> Result<Batch<'_>, DecodeError> {
    decode_within(bytes, usize::MAX, usize::MAX)
}

/// [`decode`], refusing a body of more than `max_series` series or sets,
/// or `max_points` points, before reading them (the error's `over_limit`
/// is then set, its field `series`, `sets` or `points`). With sets of at
/// most [`crate::limits::MAX_DIMENSIONS`] pairs (more are refused), the
/// copies come to at most `max_series` times that many pairs.
pub fn decode_within(
    bytes: &[u8],
    max_series: usize,
    max_points: usize,
) -> Result<Batch<'_>, DecodeError> {
    v2::decode_as(bytes, Layout::Sets, max_series, max_points)
}
