//! Packed batches: a validated batch in a compact binary form for the
//! receiver's own storage between its parts (the Worker's push handler to
//! its aggregators, and what they hold), read back without validating it
//! again, since nothing else writes it.
//!
//! Wire v1 JSON (the envelopes') costs a JSON parse and every check of a
//! push on the way back; numbers here are their IEEE 754 bits, strings
//! length-prefixed, so reading one back is about a copy. Reading is still
//! bounds-checked: a damaged record is an error, never a panic.
//!
//! Layout (version 1): the version byte; `id`, `namespace`; the series
//! (count, then each: name, kind, unit name, resolution in seconds,
//! dimension count and pairs); the points (count, then each: series index,
//! timestamp zigzag'd, a tag and the value). Counts, lengths and indices
//! are LEB128 varints; a string is its length and its UTF-8 bytes; a
//! number is 8 bytes little-endian.

use edgepush_protocol::wire::Kind;
use edgepush_protocol::wire::v2::{string, svarint, varint};
use edgepush_protocol::{Resolution, Unit};

use crate::error::{Error, Result};
use crate::model::{Batch, Point, Series, StatisticSet, Value};

const VERSION: u8 = 1;

/// The most bytes of one part that [`split`] makes (but for a single
/// point that alone is larger): under the 2 MB of a Durable Object's
/// SQLite row.
pub const MAX_PART_BYTES: usize = 1 << 20;

/// `batch` packed, whole.
pub fn encode(batch: &Batch) -> Vec<u8> {
    encode_points(batch, 0..batch.points.len())
}

/// `batch` packed in parts of at most `max_bytes` (but for a single point
/// that alone is larger), each a batch of its own with the same id and
/// namespace and the series its points use.
pub fn split(batch: &Batch, max_bytes: usize) -> Vec<Vec<u8>> {
    batch.encode_in_parts(max_bytes, &|range| encode_points(batch, range))
}

/// The points in `range` of `batch`, with the series they use.
fn encode_points(batch: &Batch, range: std::ops::Range<usize>) -> Vec<u8> {
    let points = &batch.points[range];
    // The series these points use, renumbered in order of first use.
    let mut index: Vec<Option<usize>> = vec![None; batch.series.len()];
    let mut used = Vec::new();
    for p in points {
        index[p.series].get_or_insert_with(|| {
            used.push(p.series);
            used.len() - 1
        });
    }
    let mut out = Vec::with_capacity(64 + used.len() * 48 + points.len() * 24);
    out.push(VERSION);
    string(&mut out, &batch.id);
    string(&mut out, &batch.namespace);
    varint(&mut out, used.len() as u64);
    for s in used.iter().map(|&i| &batch.series[i]) {
        string(&mut out, &s.name);
        out.push(kind_code(s.kind));
        string(&mut out, s.unit.as_str());
        varint(&mut out, u64::from(s.resolution.seconds()));
        varint(&mut out, s.dimensions.len() as u64);
        for (name, value) in &s.dimensions {
            string(&mut out, name);
            string(&mut out, value);
        }
    }
    varint(&mut out, points.len() as u64);
    let number = |out: &mut Vec<u8>, v: f64| out.extend_from_slice(&v.to_le_bytes());
    let set = |out: &mut Vec<u8>, s: &StatisticSet| {
        for v in [s.count, s.sum, s.min, s.max] {
            number(out, v);
        }
    };
    for p in points {
        varint(&mut out, index[p.series].unwrap_or_default() as u64);
        svarint(&mut out, p.timestamp_ms);
        match &p.value {
            Value::Counter(x) => {
                out.push(0);
                number(&mut out, *x);
            }
            Value::Gauge { last, stats: None } => {
                out.push(1);
                number(&mut out, *last);
            }
            Value::Gauge {
                last,
                stats: Some(stats),
            } => {
                out.push(2);
                number(&mut out, *last);
                set(&mut out, stats);
            }
            Value::Distribution { values, counts } => {
                out.push(3);
                varint(&mut out, values.len() as u64);
                for v in values.iter().chain(counts) {
                    number(&mut out, *v);
                }
            }
            Value::Statistics(stats) => {
                out.push(4);
                set(&mut out, stats);
            }
            Value::Text(text) => {
                out.push(5);
                string(&mut out, text);
            }
            Value::Boolean(b) => out.push(6 + u8::from(*b)),
        }
    }
    out
}

/// The batch `bytes` hold, as [`encode`] wrote it.
pub fn decode(bytes: &[u8]) -> Result<Batch> {
    let mut r = Reader { bytes, at: 0 };
    let version = r.byte()?;
    if version != VERSION {
        return Err(r.fail(&format!("version {version}, not {VERSION}")));
    }
    let id = r.string()?;
    let namespace = r.string()?;
    // Capacities from counts a damaged record could inflate are bounded by
    // the bytes left: a series takes five at least, a point three.
    let count = r.count()?;
    let mut series = Vec::with_capacity(count.min(r.left() / 5));
    for _ in 0..count {
        let name = r.string()?;
        let kind = match r.byte()? {
            0 => Kind::Counter,
            1 => Kind::Gauge,
            2 => Kind::Distribution,
            3 => Kind::Statistics,
            other => return Err(r.fail(&format!("kind {other}"))),
        };
        let unit_name = r.string()?;
        let unit: Unit = unit_name
            .parse()
            .map_err(|_| r.fail(&format!("unit {unit_name:?}")))?;
        let seconds = r.varint()?;
        let resolution = u32::try_from(seconds)
            .ok()
            .and_then(Resolution::from_seconds)
            .ok_or_else(|| r.fail(&format!("resolution {seconds}")))?;
        let pairs = r.count()?;
        let mut dimensions = Vec::with_capacity(pairs.min(r.left() / 2));
        for _ in 0..pairs {
            dimensions.push((r.string()?, r.string()?));
        }
        series.push(Series {
            name,
            kind,
            unit,
            dimensions,
            resolution,
        });
    }
    let count = r.count()?;
    let mut points = Vec::with_capacity(count.min(r.left() / 3));
    for _ in 0..count {
        let index = r.varint()?;
        let index = usize::try_from(index)
            .ok()
            .filter(|&i| i < series.len())
            .ok_or_else(|| r.fail(&format!("series {index} of {}", series.len())))?;
        let timestamp_ms = r.svarint()?;
        let value = match r.byte()? {
            0 => Value::Counter(r.number()?),
            1 => Value::Gauge {
                last: r.number()?,
                stats: None,
            },
            2 => Value::Gauge {
                last: r.number()?,
                stats: Some(r.set()?),
            },
            3 => {
                let n = r.count()?;
                let values = r.numbers(n)?;
                let counts = r.numbers(n)?;
                Value::Distribution { values, counts }
            }
            4 => Value::Statistics(r.set()?),
            5 => Value::Text(r.string()?),
            tag @ (6 | 7) => Value::Boolean(tag == 7),
            other => return Err(r.fail(&format!("value tag {other}"))),
        };
        points.push(Point {
            series: index,
            timestamp_ms,
            value,
        });
    }
    if r.at != bytes.len() {
        return Err(r.fail("bytes after the last point"));
    }
    Ok(Batch {
        id,
        namespace,
        series,
        points,
    })
}

fn kind_code(kind: Kind) -> u8 {
    match kind {
        Kind::Counter => 0,
        Kind::Gauge => 1,
        Kind::Distribution => 2,
        Kind::Statistics => 3,
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn fail(&self, what: &str) -> Error {
        Error::new(
            400,
            "invalid_packed_batch",
            format!("not a packed batch: {what} at byte {}", self.at),
        )
    }

    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len());
        let Some(end) = end else {
            return Err(self.fail("cut short"));
        };
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn left(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn byte(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn varint(&mut self) -> Result<u64> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.fail("a varint over 64 bits"))
    }

    fn svarint(&mut self) -> Result<i64> {
        let v = self.varint()?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    /// A count or index, at most the bytes left (each item takes one at
    /// least), so a damaged count cannot make a huge allocation.
    fn count(&mut self) -> Result<usize> {
        let v = self.varint()?;
        usize::try_from(v)
            .ok()
            .filter(|&n| n <= self.bytes.len() - self.at)
            .ok_or_else(|| self.fail(&format!("count {v}")))
    }

    fn string(&mut self) -> Result<String> {
        let n = self.count()?;
        let bytes = self.take(n)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_string()),
            Err(_) => Err(self.fail("a string not UTF-8")),
        }
    }

    fn number(&mut self) -> Result<f64> {
        let bytes = self.take(8)?;
        let mut array = [0; 8];
        array.copy_from_slice(bytes);
        Ok(f64::from_le_bytes(array))
    }

    fn numbers(&mut self, n: usize) -> Result<Vec<f64>> {
        let bytes = self.take(n.checked_mul(8).ok_or_else(|| self.fail("count"))?)?;
        Ok(bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect())
    }

    fn set(&mut self) -> Result<StatisticSet> {
        Ok(StatisticSet {
            count: self.number()?,
            sum: self.number()?,
            min: self.number()?,
            max: self.number()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn value() -> impl Strategy<Value = Value> {
        let set = (any::<f64>(), any::<f64>(), any::<f64>(), any::<f64>()).prop_map(
            |(count, sum, min, max)| StatisticSet {
                count,
                sum,
                min,
                max,
            },
        );
        prop_oneof![
            any::<f64>().prop_map(Value::Counter),
            (any::<f64>(), prop::option::of(set.clone()))
                .prop_map(|(last, stats)| Value::Gauge { last, stats }),
            prop::collection::vec((any::<f64>(), any::<f64>()), 1..20).prop_map(|pairs| {
                let (values, counts) = pairs.into_iter().unzip();
                Value::Distribution { values, counts }
            }),
            set.prop_map(Value::Statistics),
            ".{0,40}".prop_map(Value::Text),
            any::<bool>().prop_map(Value::Boolean),
        ]
    }

    fn batch() -> impl Strategy<Value = Batch> {
        let series = (
            ".{0,30}",
            0u8..4,
            prop::sample::select(vec![Unit::None, Unit::Count, Unit::Milliseconds]),
            any::<bool>(),
            prop::collection::vec((".{0,10}", ".{0,10}"), 0..4),
        )
            .prop_map(|(name, kind, unit, high, dimensions)| Series {
                name,
                kind: [
                    Kind::Counter,
                    Kind::Gauge,
                    Kind::Distribution,
                    Kind::Statistics,
                ][kind as usize],
                unit,
                dimensions,
                resolution: if high {
                    Resolution::High
                } else {
                    Resolution::Standard
                },
            });
        (
            ".{1,20}",
            ".{1,20}",
            prop::collection::vec(series, 1..6),
            prop::collection::vec((any::<prop::sample::Index>(), any::<i64>(), value()), 0..30),
        )
            .prop_map(|(id, namespace, series, points)| {
                let points = points
                    .into_iter()
                    .map(|(index, timestamp_ms, value)| Point {
                        series: index.index(series.len()),
                        timestamp_ms,
                        value,
                    })
                    .collect();
                Batch {
                    id,
                    namespace,
                    series,
                    points,
                }
            })
    }

    /// Each point's series and value, as the batch has them.
    fn points_of(b: &Batch) -> Vec<(Series, i64, String)> {
        b.points
            .iter()
            .map(|p| {
                (
                    b.series[p.series].clone(),
                    p.timestamp_ms,
                    format!("{:?}", p.value),
                )
            })
            .collect()
    }

    /// Series indices past the bytes that are left (the last points of a
    /// batch of many series) read back.
    #[test]
    fn late_points_of_many_series_read_back() {
        let series: Vec<Series> = (0..300)
            .map(|i| Series {
                name: format!("s{i}"),
                kind: Kind::Counter,
                unit: Unit::Count,
                dimensions: vec![("route".into(), format!("/r{i}"))],
                resolution: Resolution::Standard,
            })
            .collect();
        let b = Batch {
            id: "b".into(),
            namespace: "N".into(),
            points: (0..300)
                .rev()
                .map(|i| Point {
                    series: i,
                    timestamp_ms: 1_764_000_000_000,
                    value: Value::Counter(i as f64),
                })
                .collect(),
            series,
        };
        let back = decode(&encode(&b)).expect("reads back");
        assert_eq!(points_of(&back), points_of(&b));
    }

    proptest! {
        #[test]
        fn every_batch_reads_back_as_it_was(b in batch()) {
            let back = decode(&encode(&b)).expect("reads back");
            prop_assert_eq!((&back.id, &back.namespace), (&b.id, &b.namespace));
            prop_assert_eq!(points_of(&back), points_of(&b));
            // Only the series its points use, each once.
            let used: std::collections::BTreeSet<usize> = b.points.iter().map(|p| p.series).collect();
            prop_assert_eq!(back.series.len(), used.len());
        }

        /// Parts under any bound hold every point once, in order.
        #[test]
        fn split_parts_hold_every_point_in_order(b in batch(), max in 1usize..2000) {
            let parts = split(&b, max);
            let mut points = Vec::new();
            for part in &parts {
                prop_assert!(part.len() <= max || decode(part).expect("a part").points.len() <= 1);
                let back = decode(part).expect("a part");
                prop_assert_eq!((&back.id, &back.namespace), (&b.id, &b.namespace));
                points.extend(points_of(&back));
            }
            prop_assert_eq!(points, points_of(&b));
        }

        /// A record cut anywhere, or with a byte changed, is an error or
        /// another batch: never a panic, never a huge allocation.
        #[test]
        fn damaged_records_never_panic(b in batch(), cut in any::<prop::sample::Index>(), flip in any::<u8>()) {
            let bytes = encode(&b);
            let at = cut.index(bytes.len());
            prop_assert!(decode(&bytes[..at]).is_err());
            let mut changed = bytes.clone();
            changed[at] ^= flip | 1;
            let _ = decode(&changed);
        }
    }
}
