//! Assembling wire v1 batches: one pass, sizes measured exactly.
//!
//! Each series is serialised once, at registration; each point once, here.
//! A batch is closed before a point would take it past the configured
//! datums or bytes, so no batch is ever encoded twice.

use alloc::format;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::Ordering::Relaxed;

use portable_atomic::AtomicU64;

use crate::batch::Batch;
use crate::config::Config;
use crate::emitter::Cell;
use crate::error::{Result, not_json};
use edgepush_protocol::limits::MAX_VALUES_PER_DATUM;
use edgepush_protocol::wire::{self, Format, Kind, v2};

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
    fn for_each_point(&self, t: i64, mut f: impl FnMut(Parts<'_>) -> Result<()>) -> Result<()> {
        let none = Parts {
            t,
            x: None,
            vs: None,
            cs: None,
            st: None,
        };
        match self {
            Taken::Sum(x) => f(Parts {
                x: Some(*x),
                ..none
            }),
            Taken::Gauge { last, stats } => f(Parts {
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
                    f(Parts {
                        vs: Some(vs),
                        cs: (!all_ones).then_some(cs),
                        ..none
                    })?;
                }
                match overflow {
                    Some(st) => f(Parts {
                        st: Some(st),
                        ..none
                    }),
                    None => Ok(()),
                }
            }
            Taken::Statistics(st) => f(Parts {
                st: Some(st),
                ..none
            }),
        }
    }
}

/// The fields of one wire point, borrowed from what was taken.
#[derive(Clone, Copy)]
struct Parts<'a> {
    t: i64,
    x: Option<f64>,
    vs: Option<&'a [f64]>,
    cs: Option<&'a [f64]>,
    st: Option<&'a [f64; 4]>,
}

impl Parts<'_> {
    /// Writes the point after its series index: in v1 from the `,` after
    /// `"s":N` to the closing `}`, in v2 its flags and fields.
    fn write(&self, format: Format, out: &mut Vec<u8>) {
        match format {
            Format::V1 => {
                if self.t != 0 {
                    out.extend_from_slice(b",\"t\":");
                    out.extend_from_slice(itoa::Buffer::new().format(self.t).as_bytes());
                }
                if let Some(x) = self.x {
                    field(out, "x", x);
                }
                if let Some(vs) = self.vs {
                    list(out, "vs", vs);
                }
                if let Some(cs) = self.cs {
                    list(out, "cs", cs);
                }
                if let Some(st) = self.st {
                    list(out, "st", st);
                }
                out.push(b'}');
            }
            Format::V2 => v2::fields(
                out,
                v2::flags(
                    self.t,
                    self.x.is_some(),
                    self.vs.is_some(),
                    self.cs.is_some(),
                    self.st.is_some(),
                ),
                self.t,
                self.x,
                self.vs,
                self.cs,
                self.st,
                None,
            ),
        }
    }
}

/// Writes `,"key":v`.
fn field(out: &mut Vec<u8>, key: &str, v: f64) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
    number(out, v);
}

/// Writes `,"key":[v,...]`.
fn list(out: &mut Vec<u8>, key: &str, vs: &[f64]) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":[");
    for (i, v) in vs.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        number(out, *v);
    }
    out.push(b']');
}

fn number(out: &mut Vec<u8>, v: f64) {
    edgepush_protocol::format_number(v, |text| out.extend_from_slice(text.as_bytes()));
}

/// The batch being filled.
struct Open {
    series: Vec<u8>,
    points: Vec<u8>,
    /// Series defined in this batch so far.
    defined: u32,
    /// The cell whose series was defined last, and its index: the cells
    /// come sorted, so a cell's points follow each other and a series is
    /// defined once per batch.
    last: Option<(usize, u32)>,
    /// The series index of the last point written (v2 writes the next
    /// one's as a difference).
    previous: Option<u32>,
    count: usize,
    datums: usize,
}

impl Open {
    fn new() -> Self {
        Open {
            series: Vec::new(),
            points: Vec::new(),
            defined: 0,
            last: None,
            previous: None,
            count: 0,
            datums: 0,
        }
    }

    fn series_index(&self, id: usize) -> Option<u32> {
        self.last.filter(|&(last, _)| last == id).map(|(_, s)| s)
    }
}

/// The most characters a batch id takes (`{:016x}-{:x}` of a u64).
const MAX_ID_LEN: usize = 16 + 1 + 16;

/// What every batch of one flush shares: the namespace and common
/// dimensions, encoded once.
struct Frame {
    format: Format,
    /// v1: `,"ns":..,"t":..,"dims":{..}`; v2: namespace, time and dimensions.
    head: Vec<u8>,
    /// Bytes of a batch with no series and no points, with the longest id.
    size: usize,
}

impl Frame {
    fn new(config: &Config, now_ms: i64) -> Result<Self> {
        let format = config.wire;
        let mut head = Vec::new();
        let size = match format {
            Format::V1 => {
                let ns = serde_json::to_string(&config.namespace).map_err(|_| not_json())?;
                head.extend_from_slice(format!(",\"ns\":{ns},\"t\":{now_ms}").as_bytes());
                if !config.dimensions.is_empty() {
                    let d = wire::Dimensions(
                        config
                            .dimensions
                            .iter()
                            .map(|(n, v)| (n.as_str().into(), v.as_str().into()))
                            .collect(),
                    );
                    let json = serde_json::to_string(&d).map_err(|_| not_json())?;
                    head.extend_from_slice(format!(",\"dims\":{json}").as_bytes());
                }
                // `{"v":1,"id":""` HEAD `,"series":[],"points":[]}`
                format!("{{\"v\":{},\"id\":\"\"", wire::v1::VERSION).len()
                    + head.len()
                    + ",\"series\":[],\"points\":[]}".len()
                    + MAX_ID_LEN
            }
            Format::V2 => {
                v2::string(&mut head, &config.namespace);
                v2::svarint(&mut head, now_ms);
                v2::dimensions(
                    &mut head,
                    config
                        .dimensions
                        .iter()
                        .map(|(n, v)| (n.as_str(), v.as_str())),
                );
                1 + MAX_ID_LEN + head.len()
            }
        };
        Ok(Frame { format, head, size })
    }

    /// The batch's size once it holds `open`, and one more point of
    /// `rest` bytes in series `index` (defining it if `new_series` bytes).
    fn size_with(&self, open: &Open, index: u32, new_series: usize, rest: usize) -> usize {
        let body = open.series.len() + open.points.len() + new_series + rest;
        match self.format {
            // `,` before each series and point but the first; `{"s":N`.
            Format::V1 => self.size + body + usize::from(new_series > 0) + 1 + 5 + digits(index),
            Format::V2 => {
                let defined = open.defined + u32::from(new_series > 0);
                self.size
                    + body
                    + v2::varint_len(u64::from(defined))
                    + v2::varint_len(open.count as u64 + 1)
                    + v2::svarint_len(v2::series_delta(index, open.previous))
            }
        }
    }
}

/// Encodes `taken` as batches stamped `now_ms`. `taken` comes sorted by
/// series (as a flush takes it), so each series is defined once per batch;
/// in another order a series may be defined more than once, which is
/// still a valid batch.
pub(crate) fn batches(
    config: &Config,
    sequence: &AtomicU64,
    now_ms: i64,
    taken: &[(Arc<Cell>, i64, Taken)],
) -> Result<Vec<Batch>> {
    let frame = Frame::new(config, now_ms)?;
    let mut out = Vec::new();
    let mut open = Open::new();
    let mut rest: Vec<u8> = Vec::with_capacity(256);
    for (cell, ts, t) in taken {
        t.for_each_point(ts - now_ms, |parts| {
            rest.clear();
            parts.write(frame.format, &mut rest);
            let known = open.series_index(cell.id);
            let new_series = if known.is_some() { 0 } else { cell.def.len() };
            let index = known.unwrap_or(open.defined);
            let size = frame.size_with(&open, index, new_series, rest.len());
            let full = open.count > 0
                && (size > config.max_batch_bytes || open.datums + 1 > config.max_datums_per_batch);
            if full {
                let done = core::mem::replace(&mut open, Open::new());
                out.push(close(config, sequence, &frame, done)?);
            }
            let s = match open.series_index(cell.id) {
                Some(s) => s,
                None => {
                    let s = open.defined;
                    if s > 0 && frame.format == Format::V1 {
                        open.series.push(b',');
                    }
                    open.series.extend_from_slice(&cell.def);
                    open.defined += 1;
                    open.last = Some((cell.id, s));
                    s
                }
            };
            match frame.format {
                Format::V1 => {
                    if open.count > 0 {
                        open.points.push(b',');
                    }
                    open.points.extend_from_slice(b"{\"s\":");
                    open.points
                        .extend_from_slice(itoa::Buffer::new().format(s).as_bytes());
                }
                Format::V2 => {
                    v2::svarint(&mut open.points, v2::series_delta(s, open.previous));
                }
            }
            open.previous = Some(s);
            open.points.extend_from_slice(&rest);
            open.count += 1;
            open.datums += 1;
            Ok(())
        })?;
    }
    if open.count > 0 {
        out.push(close(config, sequence, &frame, open)?);
    }
    Ok(out)
}

fn digits(mut n: u32) -> usize {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

fn close(config: &Config, sequence: &AtomicU64, frame: &Frame, open: Open) -> Result<Batch> {
    let seq = sequence.fetch_add(1, Relaxed);
    let id = format!("{:016x}-{seq:x}", config.instance_id);
    let mut body = Vec::with_capacity(frame.size + open.series.len() + open.points.len());
    match frame.format {
        Format::V1 => {
            body.extend_from_slice(
                format!("{{\"v\":{},\"id\":\"{id}\"", wire::v1::VERSION).as_bytes(),
            );
            body.extend_from_slice(&frame.head);
            body.extend_from_slice(b",\"series\":[");
            body.extend_from_slice(&open.series);
            body.extend_from_slice(b"],\"points\":[");
            body.extend_from_slice(&open.points);
            body.extend_from_slice(b"]}");
        }
        Format::V2 => {
            v2::string(&mut body, &id);
            body.extend_from_slice(&frame.head);
            v2::varint(&mut body, u64::from(open.defined));
            body.extend_from_slice(&open.series);
            v2::varint(&mut body, open.count as u64);
            body.extend_from_slice(&open.points);
        }
    }
    Batch::new(id, open.count, body, frame.format, config)
}
