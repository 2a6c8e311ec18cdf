//! The wire formats behind one trait.
//!
//! A [`BatchWriter`] writes what a batch is made of in its format (series
//! definitions, points, the frame around them), measures a batch before a
//! point goes in, and reads its batches back. [`Writer`] is the one place
//! that picks a format: the registry, the encoder and [`crate::Payload`] go
//! through it.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Debug;

use crate::config::Config;
use crate::error::Result;
use edgepush_protocol::wire::{self, Kind, Version};

mod v1;
mod v2;
mod v3;

/// The writer of a format: [`v1::V1`], [`v2::V2`] or [`v3::V3`], chosen in one `match`
/// that every method goes through.
///
/// Dispatched statically rather than through a `dyn BatchWriter`: each call
/// inlines the two formats' code as a branch, as one function would have
/// it, and what is never called (reading batches back, in the JavaScript
/// package) stays out of the build. A vtable keeps every method of both
/// formats out of the optimiser's reach: 1.1 KB more of gzip'd wasm, over
/// the package's size budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Writer(pub(crate) Version);

/// Calls `$call` on the writer of `$format`: the one place a format is
/// chosen.
macro_rules! with_writer {
    ($format:expr, |$w:ident| $call:expr) => {
        match $format {
            Version::V1 => {
                let $w = &v1::V1;
                $call
            }
            Version::V2 => {
                let $w = &v2::V2;
                $call
            }
            Version::V3 => {
                let $w = &v3::V3;
                $call
            }
        }
    };
}

impl BatchWriter for Writer {
    fn version(&self) -> Version {
        self.0
    }

    fn series(&self, series: &SeriesDef<'_>) -> Result<Vec<u8>> {
        with_writer!(self.0, |w| w.series(series))
    }

    fn head(&self, config: &Config, now_ms: i64, head: &mut Vec<u8>) -> Result<usize> {
        with_writer!(self.0, |w| w.head(config, now_ms, head))
    }

    fn fields(&self, fields: &Fields<'_>, out: &mut Vec<u8>) {
        with_writer!(self.0, |w| w.fields(fields, out))
    }

    fn size_with(
        &self,
        empty: usize,
        body: &Body,
        index: u32,
        new_series: Option<&[u8]>,
        fields: usize,
    ) -> usize {
        with_writer!(self.0, |w| w
            .size_with(empty, body, index, new_series, fields))
    }

    fn define(&self, body: &mut Body, def: &[u8]) {
        with_writer!(self.0, |w| w.define(body, def))
    }

    fn point(&self, body: &mut Body, index: u32, fields: &[u8]) {
        with_writer!(self.0, |w| w.point(body, index, fields))
    }

    fn close(&self, id: &str, head: &[u8], body: &Body, out: &mut Vec<u8>) {
        with_writer!(self.0, |w| w.close(id, head, body, out))
    }

    fn decode<'a>(&self, encoded: &'a [u8]) -> Result<wire::Batch<'a>> {
        with_writer!(self.0, |w| w.decode(encoded))
    }

    fn json(&self, encoded: Vec<u8>) -> Result<Vec<u8>> {
        with_writer!(self.0, |w| w.json(encoded))
    }
}

/// The most characters a batch id takes (`{:016x}-{:x}` of a u64).
pub(crate) const MAX_ID_LEN: usize = 16 + 1 + 16;

/// A series as it is defined, once, at registration.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SeriesDef<'a> {
    pub(crate) name: &'a str,
    pub(crate) kind: Kind,
    /// `None` for [`crate::Unit::None`].
    pub(crate) unit: Option<&'a str>,
    /// Seconds; `None` for standard resolution.
    pub(crate) resolution: Option<u32>,
    /// Sorted name/value pairs.
    pub(crate) dimensions: &'a [(String, String)],
}

/// The fields of one point, borrowed from what a flush took.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fields<'a> {
    /// Milliseconds after the batch's time.
    pub(crate) t: i64,
    pub(crate) x: Option<f64>,
    pub(crate) vs: Option<&'a [f64]>,
    pub(crate) cs: Option<&'a [f64]>,
    pub(crate) st: Option<&'a [f64; 4]>,
}

/// The series definitions and points of a batch being filled.
#[derive(Debug, Default)]
pub(crate) struct Body {
    /// Series definitions, as the format separates them.
    pub(crate) series: Vec<u8>,
    /// Points, as the format separates them.
    pub(crate) points: Vec<u8>,
    /// Series defined so far.
    pub(crate) defined: u32,
    /// Points written so far.
    pub(crate) count: usize,
    /// The series index of the last point written (v2 writes the next
    /// one's as a difference).
    pub(crate) previous: Option<u32>,
    /// v3: the batch's dimension sets, each written once.
    pub(crate) sets: Sets,
}

/// v3's table of a batch's dimension sets: their bytes, where each starts,
/// and an index from a set's bytes to its number.
#[derive(Debug, Default)]
pub(crate) struct Sets {
    pub(crate) bytes: Vec<u8>,
    pub(crate) starts: Vec<usize>,
    pub(crate) index: hashbrown::HashTable<u32>,
    /// The set of the last series defined (v3 writes the next one's as a
    /// difference).
    pub(crate) previous: u32,
}

impl Sets {
    fn hash(set: &[u8]) -> u64 {
        use core::hash::BuildHasher;
        foldhash::fast::FixedState::default().hash_one(set)
    }

    /// The bytes of set `i` of `bytes` whose sets start at `starts`.
    fn set<'b>(bytes: &'b [u8], starts: &[usize], i: u32) -> &'b [u8] {
        let i = i as usize;
        let end = starts.get(i + 1).copied().unwrap_or(bytes.len());
        &bytes[starts[i]..end]
    }

    /// The number of the set written as `set`, if the batch has it.
    pub(crate) fn find(&self, set: &[u8]) -> Option<u32> {
        self.index
            .find(Self::hash(set), |&i| {
                Self::set(&self.bytes, &self.starts, i) == set
            })
            .copied()
    }

    /// The number of the set written as `set`, added if new.
    pub(crate) fn add(&mut self, set: &[u8]) -> u32 {
        if let Some(i) = self.find(set) {
            return i;
        }
        let i = self.starts.len() as u32;
        self.starts.push(self.bytes.len());
        self.bytes.extend_from_slice(set);
        let Sets {
            bytes,
            starts,
            index,
            ..
        } = self;
        index.insert_unique(Self::hash(set), i, |&j| {
            Self::hash(Self::set(bytes, starts, j))
        });
        i
    }

    pub(crate) fn len(&self) -> u32 {
        self.starts.len() as u32
    }
}

/// Writes, measures and reads batches in one wire format.
///
/// The encoder fills a [`Body`] point by point: it writes a point's
/// [`fields`](BatchWriter::fields) apart, asks for the batch's
/// [`size_with`](BatchWriter::size_with) them, and closes the batch first if
/// they would not fit; then it [`define`](BatchWriter::define)s the point's
/// series if the batch has not yet and adds the [`point`](BatchWriter::point).
pub(crate) trait BatchWriter: Debug {
    /// The format written.
    fn version(&self) -> Version;

    /// A series definition, written once at registration and copied into
    /// each batch that has points of the series.
    fn series(&self, series: &SeriesDef<'_>) -> Result<Vec<u8>>;

    /// Writes into `head` what every batch of one flush shares (namespace,
    /// time and common dimensions); returns the size of a batch with that
    /// head, no series, no points and the longest id.
    fn head(&self, config: &Config, now_ms: i64, head: &mut Vec<u8>) -> Result<usize>;

    /// Appends a point's fields: everything after its series index.
    fn fields(&self, fields: &Fields<'_>, out: &mut Vec<u8>);

    /// The size of a batch of `empty` bytes once it holds `body` and one
    /// more point in series `index` with `fields` bytes of fields (defining
    /// the series if `new_series` is its definition).
    fn size_with(
        &self,
        empty: usize,
        body: &Body,
        index: u32,
        new_series: Option<&[u8]>,
        fields: usize,
    ) -> usize;

    /// Adds a series definition to `body`, as its next index.
    fn define(&self, body: &mut Body, def: &[u8]);

    /// Adds a point of series `index` with `fields` (from
    /// [`BatchWriter::fields`]) to `body`.
    fn point(&self, body: &mut Body, index: u32, fields: &[u8]);

    /// Appends the whole batch: id, `head`, then `body`.
    fn close(&self, id: &str, head: &[u8], body: &Body, out: &mut Vec<u8>);

    /// Reads a batch this writer wrote.
    fn decode<'a>(&self, encoded: &'a [u8]) -> Result<wire::Batch<'a>>;

    /// A batch this writer wrote, as wire v1 JSON.
    fn json(&self, encoded: Vec<u8>) -> Result<Vec<u8>> {
        serde_json::to_vec(&self.decode(&encoded)?).map_err(|_| crate::error::not_json())
    }
}

/// A decoding error as [`crate::Error::Encode`].
fn fault(e: &dyn core::fmt::Display) -> crate::Error {
    crate::Error::Encode(alloc::format!("{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, Unit};

    /// The longest id a batch can have.
    const LONGEST_ID: &str = "ffffffffffffffff-ffffffffffffffff";

    #[test]
    fn each_writer_measures_what_it_closes_and_reads_it_back() {
        let config = Config::new("Shop")
            .expect("namespace")
            .dimension("service", "checkout")
            .expect("dimension");
        let route = [("route".into(), "/buy".into())];
        let series = [
            SeriesDef {
                name: "orders",
                kind: Kind::Counter,
                unit: Some(Unit::Count.as_str()),
                resolution: None,
                dimensions: &route,
            },
            SeriesDef {
                name: "latency",
                kind: Kind::Distribution,
                unit: None,
                resolution: Some(1),
                dimensions: &[],
            },
            SeriesDef {
                name: "size",
                kind: Kind::Statistics,
                unit: None,
                resolution: None,
                dimensions: &[],
            },
        ];
        let none = Fields {
            t: 0,
            x: None,
            vs: None,
            cs: None,
            st: None,
        };
        // (series, fields): a series' points follow each other, as a flush
        // sorts them.
        let points = [
            (
                0,
                Fields {
                    x: Some(1.0),
                    ..none
                },
            ),
            (
                0,
                Fields {
                    t: -250,
                    x: Some(2.5),
                    ..none
                },
            ),
            (
                1,
                Fields {
                    vs: Some(&[1.0, 2.0, 5.0]),
                    cs: Some(&[1.0, 4.0, 2.0]),
                    ..none
                },
            ),
            (
                1,
                Fields {
                    vs: Some(&[7.0]),
                    ..none
                },
            ),
            (
                2,
                Fields {
                    st: Some(&[3.0, 11.0, 1.0, 6.0]),
                    ..none
                },
            ),
        ];
        for format in [Version::V1, Version::V2, Version::V3] {
            let writer = Writer(format);
            assert_eq!(writer.version(), format);
            let defs: Vec<Vec<u8>> = series
                .iter()
                .map(|s| writer.series(s).expect("definition"))
                .collect();
            let mut head = Vec::new();
            let empty = writer
                .head(&config, 1_764_000_000_000, &mut head)
                .expect("head");
            let mut body = Body::default();
            let mut defined: Option<usize> = None;
            for (s, fields) in &points {
                let mut bytes = Vec::new();
                writer.fields(fields, &mut bytes);
                let new = defined != Some(*s);
                let index = body.defined - u32::from(!new);
                let new_series = new.then(|| &defs[*s][..]);
                let measured = writer.size_with(empty, &body, index, new_series, bytes.len());
                let first = body.count == 0;
                if new {
                    writer.define(&mut body, &defs[*s]);
                    defined = Some(*s);
                }
                writer.point(&mut body, index, &bytes);
                let mut closed = Vec::new();
                writer.close(LONGEST_ID, &head, &body, &mut closed);
                // v1 counts a separator before the first series and point too.
                let slack = if first && format == Version::V1 { 2 } else { 0 };
                assert_eq!(
                    measured,
                    closed.len() + slack,
                    "{format:?}, point {}",
                    body.count
                );
            }
            let mut closed = Vec::new();
            writer.close("b-1", &head, &body, &mut closed);
            let batch = writer.decode(&closed).expect("decodes");
            assert_eq!((batch.id.as_ref(), batch.ns.as_ref()), ("b-1", "Shop"));
            assert_eq!(batch.dims.0, [("service".into(), "checkout".into())]);
            let names: Vec<&str> = batch.series.iter().map(|s| s.n.as_ref()).collect();
            assert_eq!(names, ["orders", "latency", "size"], "{format:?}");
            assert_eq!(
                (batch.series[0].u.as_deref(), batch.series[1].r),
                (Some("Count"), Some(1))
            );
            let got: Vec<(u32, i64, Option<f64>)> =
                batch.points.iter().map(|p| (p.s, p.t, p.x)).collect();
            assert_eq!(
                got,
                [
                    (0, 0, Some(1.0)),
                    (0, -250, Some(2.5)),
                    (1, 0, None),
                    (1, 0, None),
                    (2, 0, None)
                ]
            );
            assert_eq!(batch.points[2].cs.as_deref(), Some(&[1.0, 4.0, 2.0][..]));
            assert_eq!(batch.points[3].vs.as_deref(), Some(&[7.0][..]));
            assert_eq!(batch.points[4].st, Some([3.0, 11.0, 1.0, 6.0]));
            // Whatever the format, the JSON is wire v1's.
            let json = writer.json(closed.clone()).expect("json");
            let again: wire::Batch<'_> = serde_json::from_slice(&json).expect("wire v1");
            assert_eq!(again, batch);
        }
    }
}
