//! Assembling wire v1 batches: one pass, sizes measured exactly.
//!
//! Each series is serialised once, at registration; each point once, here.
//! A batch is closed before a point would take it past the configured
//! datums or bytes, so no batch is ever encoded twice.

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::Ordering::Relaxed;

use portable_atomic::AtomicU64;

use crate::batch::Batch;
use crate::config::Config;
use crate::emitter::Cell;
use crate::error::{Result, not_json};
use crate::limits::MAX_VALUES_PER_DATUM;
use crate::wire::{self, Kind};

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

    /// Calls `f` with each wire point's JSON after its series index (from
    /// the `,` after `"s":N` to the closing `}`), written into `scratch`.
    /// Distributions give one point per CloudWatch datum (150 values).
    fn for_each_point(
        &self,
        t: i64,
        scratch: &mut String,
        mut f: impl FnMut(&str) -> Result<()>,
    ) -> Result<()> {
        let mut emit = |scratch: &mut String, write: &dyn Fn(&mut String)| {
            scratch.clear();
            if t != 0 {
                scratch.push_str(",\"t\":");
                scratch.push_str(itoa::Buffer::new().format(t));
            }
            write(scratch);
            scratch.push('}');
            f(scratch)
        };
        match self {
            Taken::Sum(x) => emit(scratch, &|out| field(out, "x", *x)),
            Taken::Gauge { last, stats } => emit(scratch, &|out| {
                field(out, "x", *last);
                // One value set: the statistics say nothing more.
                if stats[0] != 1.0 {
                    list(out, "st", stats);
                }
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
                    emit(scratch, &|out| {
                        list(out, "vs", vs);
                        if !all_ones {
                            list(out, "cs", cs);
                        }
                    })?;
                }
                match overflow {
                    Some(st) => emit(scratch, &|out| list(out, "st", st)),
                    None => Ok(()),
                }
            }
            Taken::Statistics(st) => emit(scratch, &|out| list(out, "st", st)),
        }
    }
}

/// Writes `,"key":v`.
fn field(out: &mut String, key: &str, v: f64) {
    out.push_str(",\"");
    out.push_str(key);
    out.push_str("\":");
    number(out, v);
}

/// Writes `,"key":[v,...]`.
fn list(out: &mut String, key: &str, vs: &[f64]) {
    out.push_str(",\"");
    out.push_str(key);
    out.push_str("\":[");
    for (i, v) in vs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        number(out, *v);
    }
    out.push(']');
}

fn number(out: &mut String, v: f64) {
    wire::format_number(v, |text| out.push_str(text));
}

/// The batch being filled.
struct Open {
    series: String,
    points: String,
    /// Series defined in this batch so far.
    defined: u32,
    /// The cell whose series was defined last, and its index: the cells
    /// come sorted, so a cell's points follow each other and a series is
    /// defined once per batch.
    last: Option<(usize, u32)>,
    count: usize,
    datums: usize,
}

impl Open {
    fn new() -> Self {
        Open {
            series: String::new(),
            points: String::new(),
            defined: 0,
            last: None,
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
    let ns = serde_json::to_string(&config.namespace).map_err(|_| not_json())?;
    let dims = if config.dimensions.is_empty() {
        String::new()
    } else {
        let d = wire::Dimensions(
            config
                .dimensions
                .iter()
                .map(|(n, v)| (n.as_str().into(), v.as_str().into()))
                .collect(),
        );
        let json = serde_json::to_string(&d).map_err(|_| not_json())?;
        format!(",\"dims\":{json}")
    };
    // Everything but the series and points, with the longest id.
    let frame = format!(
        "{{\"v\":{},\"id\":\"\",\"ns\":{ns},\"t\":{now_ms}{dims},\"series\":[],\"points\":[]}}",
        wire::VERSION
    )
    .len()
        + MAX_ID_LEN;

    let mut out = Vec::new();
    let mut open = Open::new();
    let mut scratch = String::with_capacity(256);
    for (cell, ts, t) in taken {
        t.for_each_point(ts - now_ms, &mut scratch, |rest| {
            let known = open.series_index(cell.id);
            let series_cost = if known.is_some() {
                0
            } else {
                cell.json.len() + 1
            };
            let index = known.unwrap_or(open.defined);
            // `,{"s":N` and the rest.
            let size = frame
                + open.series.len()
                + open.points.len()
                + series_cost
                + 6
                + digits(index)
                + rest.len();
            let full = open.count > 0
                && (size > config.max_batch_bytes || open.datums + 1 > config.max_datums_per_batch);
            if full {
                let done = core::mem::replace(&mut open, Open::new());
                out.push(close(config, sequence, now_ms, &ns, &dims, done)?);
            }
            let s = match open.series_index(cell.id) {
                Some(s) => s,
                None => {
                    let s = open.defined;
                    if s > 0 {
                        open.series.push(',');
                    }
                    open.series.push_str(&cell.json);
                    open.defined += 1;
                    open.last = Some((cell.id, s));
                    s
                }
            };
            if open.count > 0 {
                open.points.push(',');
            }
            open.points.push_str("{\"s\":");
            open.points.push_str(itoa::Buffer::new().format(s));
            open.points.push_str(rest);
            open.count += 1;
            open.datums += 1;
            Ok(())
        })?;
    }
    if open.count > 0 {
        out.push(close(config, sequence, now_ms, &ns, &dims, open)?);
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

fn close(
    config: &Config,
    sequence: &AtomicU64,
    now_ms: i64,
    ns: &str,
    dims: &str,
    open: Open,
) -> Result<Batch> {
    let seq = sequence.fetch_add(1, Relaxed);
    let id = format!("{:016x}-{seq:x}", config.instance_id);
    let json = format!(
        "{{\"v\":{},\"id\":\"{id}\",\"ns\":{ns},\"t\":{now_ms}{dims},\"series\":[{}],\"points\":[{}]}}",
        wire::VERSION,
        open.series,
        open.points
    );
    Batch::new(id, open.count, json.into_bytes(), config)
}
