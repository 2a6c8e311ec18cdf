//! Assembling batches: one pass, sizes measured exactly.
//!
//! Each series is written once, at registration; each point once, here.
//! A batch is closed before a point would take it past the configured
//! datums or bytes, so no batch is ever encoded twice. What the bytes look
//! like is the [`BatchWriter`]'s business.

use alloc::format;
use alloc::vec::Vec;
use core::sync::atomic::Ordering::Relaxed;

use portable_atomic::AtomicU64;

use crate::config::Config;
use crate::error::Result;
use crate::format::{BatchWriter, Body, Fields};
use crate::gzip::Compressor;
use crate::payload::Payload;
use edgepush_protocol::limits::MAX_VALUES_PER_DATUM;
use edgepush_protocol::wire::Kind;

/// What one series (or one series at one explicit time) held at a flush.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Taken {
    /// A counter's sum.
    Sum(f64),
    /// A gauge's last value and `[count, sum, min, max]` of every value set.
    Gauge { last: f64, stats: [f64; 4] },
    /// Distinct values (ascending) with counts, and what overflowed the table.
    Distribution {
        values: Vec<f64>,
        counts: Vec<f64>,
        overflow: Option<[f64; 4]>,
    },
    /// A statistic set.
    Statistics([f64; 4]),
}

const NO_STATS: [f64; 4] = [0.0, 0.0, f64::INFINITY, f64::NEG_INFINITY];

fn merge(a: [f64; 4], b: [f64; 4]) -> [f64; 4] {
    [a[0] + b[0], a[1] + b[1], a[2].min(b[2]), a[3].max(b[3])]
}

impl Taken {
    /// Nothing yet, for a series of `kind` (explicitly timestamped values).
    pub(crate) fn empty(kind: Kind) -> Self {
        match kind {
            Kind::Counter => Taken::Sum(0.0),
            Kind::Gauge => Taken::Gauge {
                last: 0.0,
                stats: NO_STATS,
            },
            Kind::Distribution => Taken::Distribution {
                values: Vec::new(),
                counts: Vec::new(),
                overflow: None,
            },
            Kind::Statistics => Taken::Statistics(NO_STATS),
        }
    }

    pub(crate) fn add(&mut self, v: f64) {
        if let Taken::Sum(sum) = self {
            *sum += v;
        }
    }

    pub(crate) fn set(&mut self, v: f64) {
        if let Taken::Gauge { last, stats } = self {
            *last = v;
            *stats = merge(*stats, [1.0, v, v, v]);
        }
    }

    pub(crate) fn record(&mut self, v: f64) {
        if let Taken::Distribution { values, counts, .. } = self {
            let v = v + 0.0;
            match values.binary_search_by(|x| x.total_cmp(&v)) {
                Ok(i) => counts[i] += 1.0,
                Err(i) => {
                    values.insert(i, v);
                    counts.insert(i, 1.0);
                }
            }
        }
    }

    pub(crate) fn merge_stats(&mut self, set: [f64; 4]) {
        if let Taken::Statistics(stats) = self {
            *stats = merge(*stats, set);
        }
    }

    /// Calls `f` with each wire point's fields, `t` milliseconds after the
    /// batch's time. Distributions give one point per CloudWatch datum (150
    /// values).
    fn for_each_point(&self, t: i64, mut f: impl FnMut(Fields<'_>) -> Result<()>) -> Result<()> {
        let none = Fields {
            t,
            x: None,
            vs: None,
            cs: None,
            st: None,
        };
        match self {
            Taken::Sum(x) => f(Fields {
                x: Some(*x),
                ..none
            }),
            Taken::Gauge { last, stats } => f(Fields {
                x: Some(*last),
                // One value set: the statistics say nothing more.
                st: (stats[0] != 1.0).then_some(stats),
                ..none
            }),
            Taken::Distribution {
                values,
                counts,
                overflow,
            } => {
                let all_ones = counts.iter().all(|c| *c == 1.0);
                for (vs, cs) in values
                    .chunks(MAX_VALUES_PER_DATUM)
                    .zip(counts.chunks(MAX_VALUES_PER_DATUM))
                {
                    f(Fields {
                        vs: Some(vs),
                        cs: (!all_ones).then_some(cs),
                        ..none
                    })?;
                }
                match overflow {
                    Some(st) => f(Fields {
                        st: Some(st),
                        ..none
                    }),
                    None => Ok(()),
                }
            }
            Taken::Statistics(st) => f(Fields {
                st: Some(st),
                ..none
            }),
        }
    }
}

/// A registered series, as the encoder needs it (the emitter's series
/// implement this): its id and its definition.
pub(crate) trait Registered {
    /// The series id (the same id, the same series).
    fn id(&self) -> usize;
    /// The series' definition, as the writer wrote it at registration.
    fn def(&self) -> &[u8];
}

/// One series' points for [`batches`]: what `series` held at `ts`.
#[derive(Debug)]
pub(crate) struct Item<S> {
    /// The series.
    pub(crate) series: S,
    /// When (milliseconds since the Unix epoch).
    pub(crate) ts: i64,
    /// What it held.
    pub(crate) taken: Taken,
}

/// The batch being filled.
struct Open {
    body: Body,
    /// The series whose definition was written last, and its index: items
    /// come sorted, so a series' points follow each other and a series is
    /// defined once per batch.
    last: Option<(usize, u32)>,
    datums: usize,
}

impl Open {
    fn new() -> Self {
        Open {
            body: Body::default(),
            last: None,
            datums: 0,
        }
    }

    fn series_index(&self, id: usize) -> Option<u32> {
        self.last.filter(|&(last, _)| last == id).map(|(_, s)| s)
    }
}

/// What every batch of one flush shares: the namespace, time and common
/// dimensions, written once.
struct Frame {
    head: Vec<u8>,
    /// Bytes of a batch with no series and no points, with the longest id.
    size: usize,
}

/// Encodes `items` with `writer` as batches stamped `now_ms`. `items`
/// come sorted by series (as a flush takes them), so each series is
/// defined once per batch; in another order a series may be defined more
/// than once, which is still a valid batch.
pub(crate) fn batches(
    config: &Config,
    writer: &impl BatchWriter,
    sequence: &AtomicU64,
    now_ms: i64,
    items: &[Item<impl Registered>],
    compressor: &spin::Mutex<Compressor>,
) -> Result<Vec<Payload>> {
    let mut head = Vec::new();
    let size = writer.head(config, now_ms, &mut head)?;
    let frame = Frame { head, size };
    let mut out = Vec::new();
    let mut open = Open::new();
    // A deflate state of this flush's own, made only if another flush holds
    // the emitter's when a batch is compressed.
    let mut own: Option<Compressor> = None;
    let mut fields: Vec<u8> = Vec::with_capacity(256);
    for item in items {
        let (id, def) = (item.series.id(), item.series.def());
        item.taken.for_each_point(item.ts - now_ms, |point| {
            fields.clear();
            writer.fields(&point, &mut fields);
            let known = open.series_index(id);
            let new_series = known.is_none().then_some(def);
            let index = known.unwrap_or(open.body.defined);
            let size = writer.size_with(frame.size, &open.body, index, new_series, fields.len());
            let full = open.body.count > 0
                && (size > config.max_batch_bytes || open.datums + 1 > config.max_datums_per_batch);
            if full {
                let done = core::mem::replace(&mut open, Open::new());
                out.push(close(
                    config, compressor, &mut own, writer, sequence, &frame, done,
                )?);
            }
            let s = match open.series_index(id) {
                Some(s) => s,
                None => {
                    let s = open.body.defined;
                    writer.define(&mut open.body, def);
                    open.last = Some((id, s));
                    s
                }
            };
            writer.point(&mut open.body, s, &fields);
            open.datums += 1;
            Ok(())
        })?;
    }
    if open.body.count > 0 {
        out.push(close(
            config, compressor, &mut own, writer, sequence, &frame, open,
        )?);
    }
    Ok(out)
}

fn close(
    config: &Config,
    compressor: &spin::Mutex<Compressor>,
    own: &mut Option<Compressor>,
    writer: &impl BatchWriter,
    sequence: &AtomicU64,
    frame: &Frame,
    open: Open,
) -> Result<Payload> {
    let seq = sequence.fetch_add(1, Relaxed);
    let id = format!("{:016x}-{seq:x}", config.instance_id);
    let body = &open.body;
    let mut out = Vec::with_capacity(frame.size + body.series.len() + body.points.len());
    writer.close(&id, &frame.head, body, &mut out);
    // Never wait for another flush's compression: without the emitter's
    // state, a state of this flush's own.
    let (out, gzip) = match compressor.try_lock() {
        Some(mut shared) => shared.body(out)?,
        None => own
            .get_or_insert_with(|| Compressor::new(config))
            .body(out)?,
    };
    Ok(Payload::new(id, body.count, out, gzip, writer.version()))
}
