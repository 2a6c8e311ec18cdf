//! Merging pushes per series and period, before any sink (sans-IO).
//!
//! Points of one namespace and series (name, kind, unit, dimensions and
//! storage resolution) whose timestamps fall in the same period (floored to
//! the storage resolution: 60 s or 1 s) become one point, stamped with the
//! period's start:
//! - **counters**: the count, sum, minimum and maximum of the
//!   contributions, a statistic set, so that CloudWatch's SampleCount, Sum,
//!   Average, Minimum and Maximum equal what delivering each push would have
//!   given;
//! - **gauges**: the statistics of every value set, and the last value by
//!   timestamp;
//! - **statistic sets**: merged;
//! - **distributions**: values and counts merged exactly up to
//!   [`Aggregator::MAX_EXACT_VALUES`] distinct values per series and period,
//!   then compacted by the rule the emitter uses
//!   ([`edgepush_protocol::compact`]: each value sent is the exact mean of
//!   those it stands for, the extremes are values of their own, so count,
//!   sum, minimum and maximum stay exact; a percentile is off by at most
//!   2^-7 of the value while the values fit [`Aggregator::MAX_BUCKETS`]
//!   buckets, coarser past them, memory bounded either way); what an emitter already
//!   summarised (a statistic set on a distribution) is merged beside them;
//! - **strings and booleans**: the last by timestamp.
//!
//! Points are merged per namespace, whichever tenant pushed them: tenants
//! decide who may write a namespace, and the sinks store a namespace's
//! series as one (CloudWatch's namespace, line protocol's `namespace` tag),
//! so merging across tenants gives the stores what per-push delivery
//! would have, and one series and period never leaves in two batches of
//! one flush.
//!
//! **When merged points go out** ([`Settings`]): a period is taken once it
//! has been over for a flush interval (points a little late still merge
//! into it), at shutdown everything open is, and early when the
//! aggregator holds [`Settings::max_bytes`]. A point later than that opens
//! its period again and goes out at a later flush.
//!
//! **Timestamps that cannot collide**: CloudWatch merges every datum of a
//! period, but line-protocol stores keep one value per series and
//! timestamp, so a period emitted twice (late points, an early flush)
//! must not land on the same timestamp. A merged batch's id says when it
//! was emitted ([`emission_id`]), and the line-protocol sink stamps each
//! point at its period's start plus that many nanoseconds as milliseconds
//! passed from the period's start to the emission
//! ([`emission_offset_ns`]): emissions at different milliseconds never
//! collide, and every point stays inside its period (for up to 11 days
//! after a 1 s period, 1.9 years after a 60 s one; later ones take the
//! period's last nanosecond).

/// The aggregator's maps, hashed with foldhash: a series key is hashed at
/// every point merged, and SipHash (std's default) was a third of a merge.
/// Seeded at random per map, as std's.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

use std::borrow::Cow;

use edgepush_protocol::Resolution;
use edgepush_protocol::compact::{self, Bucket, quantize};
use edgepush_protocol::wire::Kind;
use serde::Deserialize;

use crate::model::{Batch, Point, Series, StatisticSet, Value};

/// Whether and how the receiver merges pushes (`[aggregation]`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Merge before the sinks (each sink may say otherwise). Default off.
    pub enabled: bool,
    /// How often closed periods go out, and how long after its end a
    /// period waits for late points. Default 10 s.
    pub flush_interval_seconds: u64,
    /// The most the aggregator holds, estimated ([`Aggregator::bytes`]):
    /// past it, everything open goes out early and pushes are answered
    /// 503 until it has. Default 256 MiB.
    pub max_bytes: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            enabled: false,
            flush_interval_seconds: 10,
            max_bytes: 256 << 20,
        }
    }
}

impl Settings {
    /// Refuses a zero interval or bound, and an interval over an hour.
    pub fn check(&self) -> Result<(), String> {
        if !(1..=3600).contains(&self.flush_interval_seconds) {
            return Err(format!(
                "aggregation.flush_interval_seconds must be between 1 and 3600, not {}",
                self.flush_interval_seconds
            ));
        }
        if self.max_bytes < 1 << 20 {
            return Err(format!(
                "aggregation.max_bytes must be at least 1 MiB (1048576), not {}",
                self.max_bytes
            ));
        }
        Ok(())
    }

    /// The flush interval in milliseconds.
    pub fn interval_ms(&self) -> i64 {
        i64::try_from(self.flush_interval_seconds.saturating_mul(1000)).unwrap_or(i64::MAX)
    }

    /// How many points of `batch` come late at `now_ms`: their period is
    /// over ([`Settings::closed`]), so they open it again.
    pub fn late(&self, batch: &Batch, now_ms: i64) -> usize {
        let closed = self.closed(now_ms);
        batch
            .points
            .iter()
            .filter(|p| {
                let (start, length) = period(p.timestamp_ms, batch.series[p.series].resolution);
                closed(start, length)
            })
            .count()
    }

    /// Whether a period (its start and length, in milliseconds) is over at
    /// `now_ms`: it ended a flush interval ago or more.
    pub fn closed(&self, now_ms: i64) -> impl Fn(i64, i64) -> bool + use<> {
        let interval = self.interval_ms();
        move |start, length| start.saturating_add(length).saturating_add(interval) <= now_ms
    }
}

/// The period a point at `timestamp_ms` falls in, for a series of
/// `resolution`: its start and its length, in milliseconds.
pub fn period(timestamp_ms: i64, resolution: Resolution) -> (i64, i64) {
    let length = i64::from(resolution.seconds()) * 1000;
    (timestamp_ms.div_euclid(length) * length, length)
}

const EMISSION_PREFIX: &str = "merged-";

/// The id of the `n`th batch an aggregator emits at `emitted_ms`:
/// `merged-<emitted_ms>-<n>`, a valid batch id, so merged batches travel in
/// envelopes like any other.
pub fn emission_id(emitted_ms: i64, n: usize) -> String {
    format!("{EMISSION_PREFIX}{emitted_ms}-{n}")
}

/// The most aggregators one namespace may be spread over (the Worker's
/// shards).
pub const MAX_SHARDS: u32 = 256;

/// The millisecond aggregator `shard` of a namespace emits at, at `now_ms`
/// after emitting last at `last_ms`: the first after both that is `shard`
/// modulo [`MAX_SHARDS`]. So one aggregator's emissions each have a
/// millisecond of their own, and two aggregators never share one, even
/// when a change of shard count left a series' period in both: their
/// line-protocol points cannot land on the same timestamp
/// ([`emission_offset_ns`]). An emission is stamped at most 255 ms late.
pub fn emission_ms(now_ms: i64, last_ms: i64, shard: u32) -> i64 {
    let base = now_ms.max(last_ms.saturating_add(1));
    let modulus = i64::from(MAX_SHARDS);
    let shard = i64::from(shard % MAX_SHARDS);
    base + (shard - base.rem_euclid(modulus)).rem_euclid(modulus)
}

/// When the batch with this id was emitted, if an aggregator named it
/// ([`emission_id`]).
pub fn emitted_at(id: &str) -> Option<i64> {
    let rest = id.strip_prefix(EMISSION_PREFIX)?;
    let (ms, n) = rest.split_once('-')?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    ms.parse().ok().filter(|ms: &i64| *ms >= 0)
}

/// The nanoseconds a line-protocol store adds to the start of a merged
/// point's period (`period_start_ms`, `period_ms` long) emitted at
/// `emitted_ms`: as many as milliseconds passed in between, so that two
/// emissions of one period never share a timestamp, at most the period's
/// last nanosecond.
pub fn emission_offset_ns(emitted_ms: i64, period_start_ms: i64, period_ms: i64) -> i64 {
    let last = period_ms.saturating_mul(1_000_000).saturating_sub(1);
    emitted_ms
        .saturating_sub(period_start_ms)
        .clamp(0, last.max(0))
}

/// Where a point is merged: its namespace, series and period.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key {
    namespace: String,
    series: SeriesKey,
    /// The period's start, milliseconds since the Unix epoch.
    period_ms: i64,
    /// Numbers, strings and booleans of one series are merged apart.
    class: Class,
}

/// A series as a key (the model's series, ordered for a stable output).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct SeriesKey {
    name: String,
    kind: u8,
    unit: &'static str,
    dimensions: Vec<(String, String)>,
    resolution: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Class {
    Number,
    Text,
    Boolean,
}

/// What one series and period holds so far.
#[derive(Clone, Debug)]
enum Merged {
    /// Counters and statistic sets: the statistics of the contributions.
    Statistics(StatisticSet),
    /// A gauge: every value set, and the last one with its time.
    Gauge {
        stats: StatisticSet,
        last: (i64, f64),
    },
    Distribution(Distribution),
    /// A string or boolean, with its time.
    Last(i64, Value),
}

/// A distribution's values: exact while few, then in buckets.
#[derive(Clone, Debug, Default)]
struct Distribution {
    /// Distinct values (as their bits) and their counts, while there are at
    /// most [`Aggregator::MAX_EXACT_VALUES`].
    exact: HashMap<u64, f64>,
    /// Past that: buckets by [`quantize`]d key (as its bits).
    buckets: Option<HashMap<u64, (f64, f64)>>,
    low: f64,
    high: f64,
    /// What emitters summarised as statistic sets.
    summarised: Option<StatisticSet>,
}

/// Points merged per namespace, series and period.
#[derive(Debug, Default)]
pub struct Aggregator {
    open: HashMap<Key, (Series, Merged)>,
    /// Points merged since the last [`Aggregator::take`].
    merged: u64,
    /// What [`Aggregator::bytes`] estimates, kept as points are added.
    bytes: usize,
}

/// What one series and period costs beside its strings, estimated: the
/// key, the series, the merged state and the map's own slot.
const ENTRY_BYTES: usize = 256;
/// What one distinct value of a distribution costs in its map.
const VALUE_BYTES: usize = 32;

fn series_bytes(series: &Series, namespace: &str) -> usize {
    let strings = series.name.len()
        + series
            .dimensions
            .iter()
            .map(|(n, v)| n.len() + v.len() + 48)
            .sum::<usize>();
    // The key and the series each hold the strings.
    ENTRY_BYTES + 2 * strings + namespace.len()
}

/// What [`Aggregator::add`] did with a batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Added {
    /// Points merged into a series and period already open.
    pub merged: usize,
    /// Series and periods opened.
    pub opened: usize,
}

impl Aggregator {
    /// Distinct values a distribution keeps exactly per series and period;
    /// past them its values are compacted (see the module's documentation).
    pub const MAX_EXACT_VALUES: usize = 1024;

    /// Buckets a distribution holds at most per series and period, once
    /// compacted: 2,048 hold values over 32 powers of two at full
    /// precision. Past them, neighbouring buckets merge in pairs (their
    /// exact mean kept), so memory stays bounded whatever the values'
    /// range, and percentiles coarsen; count, sum and extremes stay exact.
    pub const MAX_BUCKETS: usize = 2048;

    /// An empty aggregator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Series and periods open.
    pub fn open(&self) -> usize {
        self.open.len()
    }

    /// When the first open period ends, in milliseconds since the epoch
    /// (it goes out a flush interval later): `None` when nothing is open.
    pub fn earliest_end(&self) -> Option<i64> {
        self.open
            .keys()
            .map(|key| key.period_ms + i64::from(key.series.resolution) * 1000)
            .min()
    }

    /// Points merged into an open series and period since the last take.
    pub fn merged(&self) -> u64 {
        self.merged
    }

    /// The memory it holds, estimated from the series and periods open,
    /// their strings and the distinct values of their distributions.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Merges every point of `batch`.
    pub fn add(&mut self, batch: &Batch) -> Added {
        let mut added = Added::default();
        // Each series' key is built once per batch; a point only sets its
        // period and class, and a key is copied only for a new entry.
        let mut keys: Vec<Option<Key>> = vec![None; batch.series.len()];
        for point in &batch.points {
            let series = &batch.series[point.series];
            let key = keys[point.series].get_or_insert_with(|| Key {
                namespace: batch.namespace.clone(),
                series: SeriesKey {
                    name: series.name.clone(),
                    kind: series.kind as u8,
                    unit: series.unit.as_str(),
                    dimensions: series.dimensions.clone(),
                    resolution: series.resolution.seconds(),
                },
                period_ms: 0,
                class: Class::Number,
            });
            key.period_ms = period(point.timestamp_ms, series.resolution).0;
            key.class = match point.value {
                Value::Text(_) => Class::Text,
                Value::Boolean(_) => Class::Boolean,
                _ => Class::Number,
            };
            if let Some((_, merged)) = self.open.get_mut(key) {
                let before = merged.values_held();
                merged.merge(point);
                self.bytes = (self.bytes + merged.values_held() * VALUE_BYTES)
                    .saturating_sub(before * VALUE_BYTES);
                added.merged += 1;
            } else {
                self.bytes += series_bytes(series, &batch.namespace);
                let merged = Merged::new(series.kind, point);
                self.bytes += merged.values_held() * VALUE_BYTES;
                self.open.insert(key.clone(), (series.clone(), merged));
                added.opened += 1;
            }
        }
        self.merged += added.merged as u64;
        added
    }

    /// Takes every series and period that `closed` says is over (it is
    /// given each period's start and length, in milliseconds), as batches
    /// emitted at `emitted_ms`: one per namespace, in a stable order, named
    /// by [`emission_id`]. An aggregator's emissions must each have a
    /// millisecond of their own (see the module's documentation).
    pub fn take(&mut self, emitted_ms: i64, closed: impl Fn(i64, i64) -> bool) -> Vec<Batch> {
        let over: Vec<Key> = self
            .open
            .keys()
            .filter(|key| closed(key.period_ms, i64::from(key.series.resolution) * 1000))
            .cloned()
            .collect();
        let taken: Vec<(Key, (Series, Merged))> = over
            .into_iter()
            .filter_map(|key| self.open.remove_entry(&key))
            .collect();
        self.merged = 0;
        if self.open.is_empty() {
            self.bytes = 0;
        } else {
            for (key, (series, merged)) in &taken {
                let held =
                    series_bytes(series, &key.namespace) + merged.values_held() * VALUE_BYTES;
                self.bytes = self.bytes.saturating_sub(held);
            }
        }
        emit(taken, emitted_ms)
    }

    /// Everything open, as [`Aggregator::take_all`] would give it, left
    /// open (what a journal keeps across a flush).
    pub fn snapshot(&self, emitted_ms: i64) -> Vec<Batch> {
        let open = self
            .open
            .iter()
            .map(|(key, entry)| (key.clone(), entry.clone()))
            .collect();
        emit(open, emitted_ms)
    }

    /// Takes everything open (at shutdown, or when full).
    pub fn take_all(&mut self, emitted_ms: i64) -> Vec<Batch> {
        self.take(emitted_ms, |_, _| true)
    }
}

/// Which of `shards` aggregators of a namespace merges `series`: a hash of
/// everything that makes it a series (FNV-1a, the same in every process
/// and build), so a series always meets the same aggregator.
pub fn shard_of(series: &Series, shards: u32) -> u32 {
    if shards <= 1 {
        return 0;
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes.iter().chain([&0xff]) {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
    eat(series.name.as_bytes());
    eat(&[series.kind as u8]);
    eat(series.unit.as_str().as_bytes());
    eat(&series.resolution.seconds().to_le_bytes());
    for (name, value) in &series.dimensions {
        eat(name.as_bytes());
        eat(value.as_bytes());
    }
    (hash % u64::from(shards)) as u32
}

/// `batch` cut by [`shard_of`] into one batch per shard that has points,
/// each with the batch's id, namespace and series; the batch itself,
/// borrowed, when one shard has all its points (always, with one shard).
pub fn split(batch: &Batch, shards: u32) -> Vec<(u32, Cow<'_, Batch>)> {
    let of: Vec<u32> = batch.series.iter().map(|s| shard_of(s, shards)).collect();
    let first = batch.points.first().map_or(0, |p| of[p.series]);
    if batch.points.iter().all(|p| of[p.series] == first) {
        return vec![(first, Cow::Borrowed(batch))];
    }
    let mut parts: Vec<(u32, Batch)> = Vec::new();
    for point in &batch.points {
        let shard = of[point.series];
        let index = match parts.iter().position(|(s, _)| *s == shard) {
            Some(index) => index,
            None => {
                parts.push((
                    shard,
                    Batch {
                        id: batch.id.clone(),
                        namespace: batch.namespace.clone(),
                        series: batch.series.clone(),
                        points: Vec::new(),
                    },
                ));
                parts.len() - 1
            }
        };
        parts[index].1.points.push(point.clone());
    }
    parts
        .into_iter()
        .map(|(shard, part)| (shard, Cow::Owned(part)))
        .collect()
}

/// Merged entries as batches emitted at `emitted_ms`: one per namespace,
/// in key order, each series once, points at their period's start.
fn emit(mut taken: Vec<(Key, (Series, Merged))>, emitted_ms: i64) -> Vec<Batch> {
    taken.sort_by(|a, b| a.0.cmp(&b.0));
    let mut batches: Vec<Batch> = Vec::new();
    for (key, (series, merged)) in taken {
        let batch = match batches.last_mut() {
            Some(b) if b.namespace == key.namespace => b,
            _ => {
                batches.push(Batch {
                    id: emission_id(emitted_ms, batches.len()),
                    namespace: key.namespace.clone(),
                    series: Vec::new(),
                    points: Vec::new(),
                });
                batches.last_mut().expect("just pushed")
            }
        };
        let index = match batch.series.last() {
            Some(last) if *last == series => batch.series.len() - 1,
            _ => {
                batch.series.push(series);
                batch.series.len() - 1
            }
        };
        for value in merged.values() {
            batch.points.push(Point {
                series: index,
                timestamp_ms: key.period_ms,
                value,
            });
        }
    }
    batches
}

fn merge_stats(into: &mut StatisticSet, other: StatisticSet) {
    into.count += other.count;
    into.sum += other.sum;
    into.min = into.min.min(other.min);
    into.max = into.max.max(other.max);
}

impl Merged {
    /// The merged state of one point.
    fn new(kind: Kind, point: &Point) -> Self {
        let none = StatisticSet {
            count: 0.0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        };
        let mut merged = match (&point.value, kind) {
            (Value::Text(_) | Value::Boolean(_), _) => {
                return Merged::Last(point.timestamp_ms, point.value.clone());
            }
            (Value::Gauge { last, .. }, _) => Merged::Gauge {
                stats: none,
                last: (point.timestamp_ms, *last),
            },
            (_, Kind::Distribution) => Merged::Distribution(Distribution {
                low: f64::INFINITY,
                high: f64::NEG_INFINITY,
                ..Distribution::default()
            }),
            _ => Merged::Statistics(none),
        };
        merged.merge(point);
        merged
    }

    /// The distinct values a distribution holds (0 for the other kinds).
    fn values_held(&self) -> usize {
        match self {
            Merged::Distribution(d) => d.held(),
            _ => 0,
        }
    }

    fn merge(&mut self, point: &Point) {
        let t = point.timestamp_ms;
        match (self, &point.value) {
            (Merged::Last(at, value), new) => {
                // The later one; at the same time, the larger, so that the
                // order points arrive in does not matter.
                if t > *at || (t == *at && text_order(new) > text_order(value)) {
                    *at = t;
                    *value = new.clone();
                }
            }
            (Merged::Gauge { stats, last }, value) => {
                if let Some(s) = value.statistics() {
                    merge_stats(stats, s);
                }
                if let Value::Gauge { last: v, .. } = value
                    && (t > last.0 || (t == last.0 && v.total_cmp(&last.1).is_gt()))
                {
                    *last = (t, *v);
                }
            }
            (Merged::Distribution(d), Value::Distribution { values, counts }) => {
                for (v, c) in values.iter().zip(counts) {
                    d.record(*v, *c);
                }
            }
            (Merged::Distribution(d), value) => {
                if let Some(s) = value.statistics() {
                    match &mut d.summarised {
                        Some(into) => merge_stats(into, s),
                        None => d.summarised = Some(s),
                    }
                }
            }
            (Merged::Statistics(into), value) => {
                if let Some(s) = value.statistics() {
                    merge_stats(into, s);
                }
            }
        }
    }

    /// The merged point's values: one, or two for a distribution that has
    /// both values and a statistic set.
    fn values(self) -> Vec<Value> {
        match self {
            Merged::Last(_, value) => vec![value],
            Merged::Statistics(st) => vec![Value::Statistics(st)],
            Merged::Gauge { stats, last } => vec![Value::Gauge {
                last: last.1,
                stats: (stats.count > 1.0).then_some(stats),
            }],
            Merged::Distribution(d) => {
                let summarised = d.summarised;
                let (values, counts) = d.finish();
                let mut out = Vec::new();
                if !values.is_empty() {
                    out.push(Value::Distribution { values, counts });
                }
                out.extend(summarised.map(Value::Statistics));
                out
            }
        }
    }
}

/// Orders strings and booleans that share a timestamp.
fn text_order(value: &Value) -> (u8, &str) {
    match value {
        Value::Text(s) => (0, s.as_str()),
        Value::Boolean(b) => (u8::from(*b), ""),
        _ => (0, ""),
    }
}

/// Merges neighbouring buckets (by key) in pairs, each pair under the
/// smaller key, keeping their count and what their values add up to.
fn halve(buckets: &mut HashMap<u64, (f64, f64)>) {
    let mut sorted: Vec<(f64, f64, f64)> = buckets
        .drain()
        .map(|(bits, (count, deviation))| (f64::from_bits(bits), count, deviation))
        .collect();
    sorted.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    for pair in sorted.chunks(2) {
        let (key, mut count, mut deviation) = pair[0];
        if let Some(&(other, c, d)) = pair.get(1) {
            // Its values' sum is other × c + d: as deviation from `key`.
            deviation += d + (other - key) * c;
            count += c;
        }
        buckets.insert(key.to_bits(), (count, deviation));
    }
}

/// Adds `count` of `v` to the bucket of its [`quantize`]d key: the count,
/// and what `v` differs from the key by.
fn into_bucket(buckets: &mut HashMap<u64, (f64, f64)>, v: f64, count: f64) {
    let q = quantize(v);
    let bucket = buckets.entry(q.to_bits()).or_insert((0.0, 0.0));
    bucket.0 += count;
    bucket.1 += (v - q) * count;
}

impl Distribution {
    /// Distinct values (or buckets) held.
    fn held(&self) -> usize {
        self.buckets.as_ref().map_or(self.exact.len(), HashMap::len)
    }

    fn record(&mut self, v: f64, count: f64) {
        self.low = self.low.min(v);
        self.high = self.high.max(v);
        let v = v + 0.0; // -0 and 0 are one value
        if let Some(buckets) = &mut self.buckets {
            into_bucket(buckets, v, count);
            if buckets.len() > Aggregator::MAX_BUCKETS {
                halve(buckets);
            }
            return;
        }
        *self.exact.entry(v.to_bits()).or_insert(0.0) += count;
        if self.exact.len() > Aggregator::MAX_EXACT_VALUES {
            let mut buckets: HashMap<u64, (f64, f64)> = HashMap::default();
            for (bits, count) in self.exact.drain() {
                into_bucket(&mut buckets, f64::from_bits(bits), count);
            }
            self.buckets = Some(buckets);
        }
    }

    /// Values and counts, ascending.
    fn finish(self) -> (Vec<f64>, Vec<f64>) {
        let mut buckets: Vec<Bucket> = match self.buckets {
            Some(buckets) => buckets
                .into_iter()
                .map(|(bits, (count, deviation))| Bucket {
                    key: f64::from_bits(bits),
                    count,
                    deviation,
                })
                .collect(),
            None => self
                .exact
                .into_iter()
                .map(|(bits, count)| Bucket {
                    key: f64::from_bits(bits),
                    count,
                    deviation: 0.0,
                })
                .collect(),
        };
        buckets.sort_unstable_by(|a, b| a.key.total_cmp(&b.key));
        let (low, high) = (self.low, self.high);
        if buckets.is_empty() {
            return (Vec::new(), Vec::new());
        }
        compact::values(&mut buckets, Some(low), Some(high))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgepush_protocol::{Resolution, Unit};
    use proptest::prelude::*;

    fn series(name: &str, kind: Kind, resolution: Resolution) -> Series {
        Series {
            name: name.into(),
            kind,
            unit: Unit::None,
            dimensions: vec![("service".into(), "api".into())],
            resolution,
        }
    }

    /// The series the tests push: one of each kind, two resolutions.
    fn all_series() -> Vec<Series> {
        vec![
            series("orders", Kind::Counter, Resolution::Standard),
            series("queue", Kind::Gauge, Resolution::High),
            series("latency", Kind::Distribution, Resolution::Standard),
            series("size", Kind::Statistics, Resolution::Standard),
            series("state", Kind::Gauge, Resolution::Standard),
        ]
    }

    const T0: i64 = 1_764_000_000_000;

    /// A value of `series`' kind from `n`: quarters, so that every sum in
    /// the tests is exact and the merge's result cannot depend on order.
    fn value(series: usize, n: u32, many: bool) -> Value {
        let v = f64::from(n) / 4.0;
        match series {
            0 => Value::Counter(v),
            1 => Value::Gauge {
                last: v,
                stats: None,
            },
            2 if many => Value::Distribution {
                // Two of these hold more distinct values than are kept
                // exactly: the merge compacts them.
                values: (0..600).map(|i| v + f64::from(i) * 37.25).collect(),
                counts: (0..600).map(|i| f64::from(1 + i % 3)).collect(),
            },
            2 if n.is_multiple_of(5) => Value::Statistics(StatisticSet {
                count: 2.0,
                sum: 2.0 * v + 1.0,
                min: v,
                max: v + 1.0,
            }),
            2 => Value::Distribution {
                values: vec![v, v + 0.5],
                counts: vec![1.0, 3.0],
            },
            3 => Value::Statistics(StatisticSet {
                count: 3.0,
                sum: 3.0 * v,
                min: v - 1.0,
                max: v + 1.0,
            }),
            _ if n.is_multiple_of(2) => Value::Text(format!("s{n}")),
            _ => Value::Boolean(n.is_multiple_of(3)),
        }
    }

    /// Points as `(namespace, series, timestamp, value)`.
    type Raw = (usize, usize, i64, Value);

    fn batch(points: &[Raw], namespace: usize) -> Batch {
        Batch {
            id: "b".into(),
            namespace: format!("ns{namespace}"),
            series: all_series(),
            points: points
                .iter()
                .filter(|p| p.0 == namespace)
                .map(|(_, s, t, value)| Point {
                    series: *s,
                    timestamp_ms: *t,
                    value: value.clone(),
                })
                .collect(),
        }
    }

    fn raw() -> impl Strategy<Value = Vec<Raw>> {
        prop::collection::vec(
            (
                0usize..2,
                0usize..5,
                0i64..180_000,
                0u32..400,
                prop::bool::weighted(0.3),
            ),
            1..120,
        )
        .prop_map(|points| {
            points
                .into_iter()
                .map(|(ns, s, dt, n, many)| (ns, s, T0 + dt, value(s, n, many)))
                .collect()
        })
    }

    /// Every point, as batches of `size` points of one namespace, in
    /// `order`: one way to partition and order the same points.
    fn partitioned(points: &[Raw], size: usize, reverse: bool) -> Vec<Batch> {
        let mut batches = Vec::new();
        for namespace in 0..2 {
            let mine: Vec<Raw> = points
                .iter()
                .filter(|p| p.0 == namespace)
                .cloned()
                .collect();
            for chunk in mine.chunks(size.max(1)) {
                batches.push(batch(chunk, namespace));
            }
        }
        if reverse {
            batches.reverse();
            for b in &mut batches {
                b.points.reverse();
            }
        }
        batches
    }

    fn merge_all(batches: &[Batch]) -> Vec<Batch> {
        let mut aggregator = Aggregator::new();
        for b in batches {
            aggregator.add(b);
        }
        aggregator.take_all(T0)
    }

    /// Statistics per (namespace, series name, period) of what was pushed
    /// and of what the merge gives.
    fn statistics(batches: &[Batch]) -> Vec<(String, String, i64, [f64; 4])> {
        let mut out: HashMap<(String, String, i64), StatisticSet> = HashMap::default();
        for b in batches {
            for p in &b.points {
                let series = &b.series[p.series];
                let Some(s) = p.value.statistics() else {
                    continue;
                };
                let period = i64::from(series.resolution.seconds()) * 1000;
                let key = (
                    b.namespace.clone(),
                    series.name.clone(),
                    p.timestamp_ms.div_euclid(period) * period,
                );
                match out.get_mut(&key) {
                    Some(into) => merge_stats(into, s),
                    None => {
                        out.insert(key, s);
                    }
                }
            }
        }
        let mut out: Vec<_> = out
            .into_iter()
            .map(|((ns, n, t), s)| (ns, n, t, [s.count, s.sum, s.min, s.max]))
            .collect();
        out.sort_by(|a, b| (&a.0, &a.1, a.2).cmp(&(&b.0, &b.1, b.2)));
        out
    }

    proptest! {
        /// Merging any partition of the same points, in any order, gives
        /// the same result, and its statistics (count, sum, minimum and
        /// maximum per series and period) are those of the points taken
        /// together.
        #[test]
        fn any_partition_in_any_order_merges_alike(
            points in raw(),
            size in 1usize..20,
            reverse: bool,
        ) {
            let one_by_one = merge_all(&partitioned(&points, 1, false));
            let other = merge_all(&partitioned(&points, size, reverse));
            prop_assert_eq!(&one_by_one, &other);
            let pushed = statistics(&partitioned(&points, 1, false));
            let merged = statistics(&other);
            prop_assert_eq!(merged.len(), pushed.len());
            for (m, p) in merged.iter().zip(&pushed) {
                let (m_stats, p_stats) = (m.3, p.3);
                prop_assert_eq!((&m.0, &m.1, m.2), (&p.0, &p.1, p.2));
                // Count, minimum and maximum exactly; the sum too, but for
                // the rounding of a compacted value's mean.
                prop_assert_eq!([m_stats[0], m_stats[2], m_stats[3]], [p_stats[0], p_stats[2], p_stats[3]]);
                prop_assert!((m_stats[1] - p_stats[1]).abs() <= p_stats[1].abs().max(1.0) * 1e-12, "{:?} vs {:?}", m, p);
            }
            // Each series and period is one point (two for a distribution
            // with values and a statistic set), at the period's start.
            for b in &other {
                for p in &b.points {
                    let period = i64::from(b.series[p.series].resolution.seconds()) * 1000;
                    prop_assert_eq!(p.timestamp_ms % period, 0);
                }
            }
            // A merged batch travels in envelopes (a sink's spool, the
            // Worker's queue) unchanged.
            for b in &other {
                let messages = crate::envelope::encode(b, crate::sink::SinkTag::CloudWatch);
                prop_assert_eq!(messages.len(), 1);
                let (_, back) = crate::envelope::decode(&messages[0], T0, &crate::limits::Limits::default())
                    .map_err(|e| TestCaseError::fail(format!("{b:?}: {}", e.message)))?;
                prop_assert_eq!(&back, b);
            }
        }
    }

    #[test]
    fn a_counter_becomes_the_statistics_of_its_contributions() {
        let points: Vec<Raw> = [1, 8, 3]
            .into_iter()
            .map(|n| {
                (
                    0,
                    0,
                    T0 + 1_000 * i64::from(n),
                    Value::Counter(f64::from(n)),
                )
            })
            .collect();
        let merged = merge_all(&partitioned(&points, 1, false));
        assert_eq!(merged.len(), 1);
        assert_eq!(merged[0].points.len(), 1);
        assert_eq!(
            merged[0].points[0].value,
            Value::Statistics(StatisticSet {
                count: 3.0,
                sum: 12.0,
                min: 1.0,
                max: 8.0
            })
        );
        // T0 is a minute's start.
        assert_eq!(merged[0].points[0].timestamp_ms, T0);
    }

    #[test]
    fn a_gauge_keeps_the_last_value_by_time_and_every_value_s_statistics() {
        let gauge = |t: i64, v: f64| {
            (
                0,
                1,
                T0 + t,
                Value::Gauge {
                    last: v,
                    stats: None,
                },
            )
        };
        // Pushed out of order: the latest is 7.
        let points = vec![gauge(300, 7.0), gauge(100, 2.0), gauge(200, 9.0)];
        let merged = merge_all(&partitioned(&points, 1, false));
        assert_eq!(
            merged[0].points[0].value,
            Value::Gauge {
                last: 7.0,
                stats: Some(StatisticSet {
                    count: 3.0,
                    sum: 18.0,
                    min: 2.0,
                    max: 9.0
                })
            }
        );
    }

    #[test]
    fn a_distribution_past_its_exact_values_keeps_count_sum_and_extremes() {
        // 3,000 distinct values over 30 pushes: compacted, yet CloudWatch's
        // SampleCount, Sum, Minimum and Maximum from the values sent are
        // those pushed.
        let points: Vec<Raw> = (0..30)
            .map(|push| {
                let values: Vec<f64> = (0..100)
                    .map(|i| f64::from(push * 100 + i) * 0.125)
                    .collect();
                let counts = vec![2.0; 100];
                (0, 2, T0, Value::Distribution { values, counts })
            })
            .collect();
        let merged = merge_all(&partitioned(&points, 1, false));
        let Value::Distribution { values, counts } = &merged[0].points[0].value else {
            panic!("a distribution: {:?}", merged[0].points[0].value);
        };
        assert!(values.len() < 3_000, "compacted: {}", values.len());
        let count: f64 = counts.iter().sum();
        let sum: f64 = values.iter().zip(counts).map(|(v, c)| v * c).sum();
        let pushed_sum: f64 = (0..3_000).map(|i| f64::from(i) * 0.125 * 2.0).sum();
        assert_eq!(count, 6_000.0);
        assert!(
            (sum - pushed_sum).abs() <= pushed_sum * 1e-12,
            "{sum} vs {pushed_sum}"
        );
        assert_eq!(
            (values[0], values[values.len() - 1]),
            (0.0, 2_999.0 * 0.125)
        );
    }

    #[test]
    fn a_split_batch_gives_each_series_to_one_shard() {
        let points: Vec<Raw> = (0..40)
            .map(|n| {
                (
                    0,
                    n as usize % 5,
                    T0 + i64::from(n),
                    value(n as usize % 5, n, false),
                )
            })
            .collect();
        let whole = batch(&points, 0);
        let one = split(&whole, 1);
        assert_eq!(one.len(), 1);
        assert!(
            matches!(&one[0], (0, Cow::Borrowed(b)) if *b == &whole),
            "not borrowed"
        );
        let parts = split(&whole, 3);
        assert!(parts.len() > 1, "five series over three shards: {parts:?}");
        let mut points_seen = 0;
        for (shard, part) in &parts {
            assert_eq!((&part.id, &part.namespace), (&whole.id, &whole.namespace));
            for p in &part.points {
                assert_eq!(shard_of(&part.series[p.series], 3), *shard);
            }
            points_seen += part.points.len();
        }
        assert_eq!(points_seen, whole.points.len());
        // The hash is fixed: a series meets the same shard in every build.
        assert_eq!(
            (0..5)
                .map(|s| shard_of(&all_series()[s], 7))
                .collect::<Vec<_>>(),
            [1, 5, 4, 6, 6]
        );
    }

    #[test]
    fn aggregators_never_share_an_emission_millisecond() {
        let mut seen = std::collections::HashSet::new();
        for shard in [0, 1, 7, 255, 256 + 3] {
            let mut last = 0;
            for now in [T0, T0, T0 + 1, T0 + 300, T0 + 301] {
                let ms = emission_ms(now, last, shard);
                assert!(ms >= now && ms > last && ms - now.max(last + 1) < 256);
                assert_eq!(ms.rem_euclid(256), i64::from(shard % 256));
                // Shard 259 is shard 3 again: the same milliseconds.
                if shard < 256 {
                    assert!(seen.insert(ms), "{ms} twice");
                }
                last = ms;
            }
        }
    }

    #[test]
    fn the_earliest_end_is_that_of_the_first_open_period() {
        let mut aggregator = Aggregator::new();
        assert_eq!(aggregator.earliest_end(), None);
        // A 60 s series in minute 2, then a 1 s series at minute 1.
        aggregator.add(&batch(&[(0, 0, T0 + 120_500, value(0, 1, false))], 0));
        aggregator.add(&batch(&[(0, 1, T0 + 60_000, value(1, 1, false))], 0));
        assert_eq!(aggregator.earliest_end(), Some(T0 + 61_000));
        aggregator.take(T0 + 200_000, |start, _| start < T0 + 120_000);
        assert_eq!(aggregator.earliest_end(), Some(T0 + 180_000));
        aggregator.take_all(T0 + 200_000);
        assert_eq!(aggregator.earliest_end(), None);
    }

    /// What [`Aggregator::bytes`] keeps as points come and go equals its
    /// estimate made afresh from what is open, through compaction and
    /// partial takes; and it is 0 when nothing is open.
    #[test]
    fn the_memory_estimate_follows_what_is_open() {
        let fresh = |a: &Aggregator| -> usize {
            a.open
                .iter()
                .map(|(k, (s, m))| series_bytes(s, &k.namespace) + m.values_held() * VALUE_BYTES)
                .sum()
        };
        let mut aggregator = Aggregator::new();
        for minute in 0..3 {
            for n in 0..4 {
                let points: Vec<Raw> = (0..5)
                    .map(|s| (0, s, T0 + minute * 60_000, value(s, n, n == 3)))
                    .collect();
                aggregator.add(&batch(&points, 0));
                assert_eq!(aggregator.bytes(), fresh(&aggregator));
            }
        }
        assert!(aggregator.bytes() > 3 * 5 * ENTRY_BYTES);
        aggregator.take(T0 + 200_000, |start, _| start < T0 + 60_000);
        assert_eq!(aggregator.bytes(), fresh(&aggregator));
        aggregator.take_all(T0 + 200_001);
        assert_eq!(aggregator.bytes(), 0);
    }

    /// Values over a range no bucket width can cover in the bound (2^-300
    /// to 2^300): the buckets stay within it, and count, sum, minimum and
    /// maximum stay exact.
    #[test]
    fn a_distribution_over_any_range_stays_within_its_buckets() {
        let values: Vec<f64> = (0..20_000)
            .map(|i| 2f64.powi(i % 600 - 300) * (1.0 + f64::from(i % 97) / 97.0))
            .collect();
        let mut aggregator = Aggregator::new();
        for chunk in values.chunks(500) {
            let b = batch(
                &[(
                    0,
                    2,
                    T0,
                    Value::Distribution {
                        values: chunk.to_vec(),
                        counts: vec![1.0; chunk.len()],
                    },
                )],
                0,
            );
            aggregator.add(&b);
            let held: usize = aggregator.open.values().map(|(_, m)| m.values_held()).sum();
            assert!(held <= Aggregator::MAX_BUCKETS, "{held} buckets");
        }
        let merged = aggregator.take_all(T0 + 60_000);
        let Value::Distribution {
            values: sent,
            counts,
        } = &merged[0].points[0].value
        else {
            panic!("{:?}", merged[0].points[0]);
        };
        assert!(sent.len() <= Aggregator::MAX_BUCKETS + 2);
        let count: f64 = counts.iter().sum();
        let sum: f64 = sent.iter().zip(counts).map(|(v, c)| v * c).sum();
        let exact: f64 = values.iter().sum();
        assert_eq!(count, values.len() as f64);
        assert!((sum - exact).abs() <= exact * 1e-12, "{sum} vs {exact}");
        let low = values.iter().copied().fold(f64::INFINITY, f64::min);
        let high = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        assert_eq!((sent[0], sent[sent.len() - 1]), (low, high));
        assert!(sent.windows(2).all(|w| w[0] < w[1]), "ascending, distinct");
    }

    #[test]
    fn periods_follow_each_series_resolution_and_take_leaves_open_ones() {
        let points = vec![
            (0, 0, T0 + 59_999, Value::Counter(1.0)),
            (0, 0, T0 + 60_000, Value::Counter(1.0)),
            (
                0,
                1,
                T0,
                Value::Gauge {
                    last: 1.0,
                    stats: None,
                },
            ),
            (
                0,
                1,
                T0 + 1_000,
                Value::Gauge {
                    last: 2.0,
                    stats: None,
                },
            ),
        ];
        let mut aggregator = Aggregator::new();
        for b in partitioned(&points, 1, false) {
            aggregator.add(&b);
        }
        assert_eq!(
            aggregator.open(),
            4,
            "two minutes of the counter, two seconds of the gauge"
        );
        // What ended by T0 + 60 s: the first minute, both seconds.
        let taken = aggregator.take(T0 + 60_000, |start, length| start + length <= T0 + 60_000);
        let got: Vec<(i64, &str)> = taken[0]
            .points
            .iter()
            .map(|p| (p.timestamp_ms, taken[0].series[p.series].name.as_str()))
            .collect();
        assert_eq!(got, [(T0, "orders"), (T0, "queue"), (T0 + 1_000, "queue")]);
        assert_eq!(taken[0].series.len(), 2, "a series once per batch");
        assert_eq!(aggregator.open(), 1);
        assert_eq!(taken[0].id, "merged-1764000060000-0");
        assert_eq!(emitted_at(&taken[0].id), Some(T0 + 60_000));
    }
}
