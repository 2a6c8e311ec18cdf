//! The in-memory aggregator: registration, recording and flushing.

use alloc::borrow::Cow;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use portable_atomic::AtomicU64;

use crate::batch::Batch;
use crate::error::{Error, Field, Result};
use crate::limits::{MAX_DIMENSIONS, MAX_VALUES_PER_DATUM};
use crate::unit::{Resolution, Unit};
use crate::validate;
use crate::wire::{self, Kind};

/// Emitter settings. [`Config::new`] validates the namespace; the other
/// setters validate what they are given.
#[derive(Clone, Debug)]
pub struct Config {
    namespace: String,
    dimensions: Vec<(String, String)>,
    max_points_per_batch: usize,
    max_batch_bytes: usize,
    instance_id: u64,
    #[cfg(feature = "std")]
    gzip_level: u32,
}

impl Config {
    /// Settings for a CloudWatch namespace (1-255 characters, not `AWS/...`).
    pub fn new(namespace: impl Into<String>) -> Result<Self> {
        let namespace = namespace.into();
        validate::namespace(&namespace)
            .map_err(|reason| Error::invalid(Field::Namespace, &namespace, reason))?;
        Ok(Config {
            namespace,
            dimensions: Vec::new(),
            max_points_per_batch: 1000,
            max_batch_bytes: 256 * 1024,
            instance_id: default_instance_id(),
            #[cfg(feature = "std")]
            gzip_level: 6,
        })
    }

    /// Adds a dimension to every metric of this emitter (written once per batch).
    pub fn dimension(mut self, name: impl Into<String>, value: impl Into<String>) -> Result<Self> {
        let (name, value) = check_dimension(name.into(), value.into())?;
        if self.dimensions.iter().any(|(n, _)| *n == name) {
            return Err(Error::DuplicateDimension { name });
        }
        if self.dimensions.len() == MAX_DIMENSIONS {
            return Err(Error::TooManyDimensions {
                name: "(common dimensions)".to_string(),
                count: MAX_DIMENSIONS + 1,
            });
        }
        self.dimensions.push((name, value));
        Ok(self)
    }

    /// Most points in one batch (at least 1; default 1000).
    pub fn max_points_per_batch(mut self, points: usize) -> Self {
        self.max_points_per_batch = points.max(1);
        self
    }

    /// Most bytes of JSON (before compression) in one batch (default 256 KiB).
    /// A batch over it is split in two; a single point is never split.
    pub fn max_batch_bytes(mut self, bytes: usize) -> Self {
        self.max_batch_bytes = bytes;
        self
    }

    /// A number unique to this emitter instance; batch ids are made of it and
    /// a sequence number. With `std` it is random by default; without `std`
    /// it is 0 and should be set.
    pub fn instance_id(mut self, id: u64) -> Self {
        self.instance_id = id;
        self
    }

    /// The gzip level, 0 (store) to 9 (smallest); default 6.
    #[cfg(feature = "std")]
    pub fn gzip_level(mut self, level: u32) -> Self {
        self.gzip_level = level.min(9);
        self
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    #[cfg(feature = "std")]
    pub(crate) fn gzip_level_value(&self) -> u32 {
        self.gzip_level
    }
}

#[cfg(feature = "std")]
fn default_instance_id() -> u64 {
    use std::hash::BuildHasher;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    // RandomState is seeded from the OS's random source.
    std::collections::hash_map::RandomState::new().hash_one((nanos, std::process::id()))
}

#[cfg(not(feature = "std"))]
fn default_instance_id() -> u64 {
    0
}

fn check_dimension(name: String, value: String) -> Result<(String, String)> {
    validate::dimension_name(&name)
        .map_err(|reason| Error::invalid(Field::DimensionName, &name, reason))?;
    validate::dimension_value(&value)
        .map_err(|reason| Error::invalid(Field::DimensionValue, &value, reason))?;
    Ok((name, value))
}

/// What to register: a metric name with its unit, dimensions and resolution.
#[derive(Clone, Debug)]
pub struct Metric {
    name: String,
    unit: Unit,
    dimensions: Vec<(String, String)>,
    resolution: Resolution,
}

impl Metric {
    /// A metric with unit `None`, no dimensions of its own, 60 s resolution.
    pub fn new(name: impl Into<String>) -> Self {
        Metric {
            name: name.into(),
            unit: Unit::None,
            dimensions: Vec::new(),
            resolution: Resolution::Standard,
        }
    }

    /// Sets the unit.
    pub fn unit(mut self, unit: Unit) -> Self {
        self.unit = unit;
        self
    }

    /// Adds a dimension (checked at registration).
    pub fn dimension(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.dimensions.push((name.into(), value.into()));
        self
    }

    /// Stores the metric at one-second resolution.
    pub fn high_resolution(mut self) -> Self {
        self.resolution = Resolution::High;
        self
    }
}

/// Bit pattern of an f64 slot that holds no value yet. It is a NaN, and NaN
/// can never be recorded (non-finite input is refused), so it is unambiguous.
const EMPTY: u64 = u64::MAX;

#[derive(Debug)]
enum State {
    /// Counter sum or gauge value, as f64 bits; [`EMPTY`] when untouched.
    Scalar(AtomicU64),
    Distribution(spin::Mutex<Values>),
    Statistics(spin::Mutex<Option<[f64; 4]>>),
}

#[derive(Debug, Default)]
struct Values {
    /// Value (as an order-preserving key) to count.
    values: BTreeMap<u64, f64>,
}

/// Maps an f64 to a u64 whose order is the f64's order.
fn order_key(v: f64) -> u64 {
    let bits = (v + 0.0).to_bits(); // folds -0.0 into 0.0
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | 1 << 63
    }
}

fn from_order_key(k: u64) -> f64 {
    f64::from_bits(if k >> 63 == 1 { k & !(1 << 63) } else { !k })
}

/// Rounds to 8 significant bits (relative error at most 2^-8, about 0.4 %),
/// so at most 128 distinct values remain per power of two.
fn quantize(v: f64) -> f64 {
    const SHIFT: u32 = 52 - 7;
    let bits = v.to_bits();
    let rounded = (bits + (1 << (SHIFT - 1))) & !((1u64 << SHIFT) - 1);
    let q = f64::from_bits(rounded);
    if q.is_finite() { q } else { v }
}

#[derive(Debug)]
struct Cell {
    name: String,
    kind: Kind,
    unit: Unit,
    dimensions: Vec<(String, String)>,
    resolution: Resolution,
    state: State,
    telemetry: Arc<Telemetry>,
}

/// Counts of what the emitter did, for the user to read or push.
#[derive(Debug, Default)]
pub struct Telemetry {
    invalid_values: AtomicU64,
    points_flushed: AtomicU64,
    batches_encoded: AtomicU64,
}

/// A copy of the emitter's [`Telemetry`] counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TelemetrySnapshot {
    /// Recorded values refused because they were NaN, infinite or out of range.
    pub invalid_values: u64,
    /// Points written into batches.
    pub points_flushed: u64,
    /// Batches encoded.
    pub batches_encoded: u64,
}

macro_rules! handle {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug)]
        pub struct $name(Arc<Cell>);
    };
}

handle! {
    /// A counter: the sum of what was added since the last flush.
    Counter
}
handle! {
    /// A gauge: the last value set before the flush.
    Gauge
}
handle! {
    /// A distribution: every value recorded, as CloudWatch `Values`/`Counts`.
    ///
    /// The first 150 distinct values of an interval are kept exactly; later
    /// new values are rounded to 8 significant bits (at most 0.4 % off), which
    /// bounds memory to 128 entries per power of two. Counts are always exact.
    Distribution
}
handle! {
    /// A statistic set: count, sum, minimum and maximum, merged until flush.
    Statistics
}

fn accept(cell: &Cell, v: f64) -> bool {
    if validate::value(v).is_ok() {
        true
    } else {
        cell.telemetry
            .invalid_values
            .fetch_add(1, Ordering::Relaxed);
        false
    }
}

impl Counter {
    /// Adds `v`. Non-finite or out-of-range values are refused and counted in
    /// [`TelemetrySnapshot::invalid_values`].
    pub fn add(&self, v: f64) {
        if !accept(&self.0, v) {
            return;
        }
        let State::Scalar(slot) = &self.0.state else {
            return;
        };
        let _ = slot.fetch_update(Ordering::AcqRel, Ordering::Acquire, |bits| {
            let sum = if bits == EMPTY {
                v
            } else {
                f64::from_bits(bits) + v
            };
            Some(sum.to_bits())
        });
    }

    /// Adds one.
    pub fn increment(&self) {
        self.add(1.0);
    }
}

impl Gauge {
    /// Sets the value. Non-finite or out-of-range values are refused and
    /// counted in [`TelemetrySnapshot::invalid_values`].
    pub fn set(&self, v: f64) {
        if !accept(&self.0, v) {
            return;
        }
        if let State::Scalar(slot) = &self.0.state {
            slot.store((v + 0.0).to_bits(), Ordering::Release);
        }
    }
}

impl Distribution {
    /// Records one occurrence of `v`.
    pub fn record(&self, v: f64) {
        self.record_many(v, 1.0);
    }

    /// Records `count` occurrences of `v` (a positive count).
    pub fn record_many(&self, v: f64, count: f64) {
        if validate::count(count).is_err() {
            self.0
                .telemetry
                .invalid_values
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        if !accept(&self.0, v) {
            return;
        }
        let State::Distribution(dist) = &self.0.state else {
            return;
        };
        let mut dist = dist.lock();
        let key = order_key(v);
        let key = if dist.values.len() < MAX_VALUES_PER_DATUM || dist.values.contains_key(&key) {
            key
        } else {
            order_key(quantize(v))
        };
        *dist.values.entry(key).or_insert(0.0) += count;
    }
}

impl Statistics {
    /// Merges a statistic set of `count` samples with the given sum, minimum
    /// and maximum.
    pub fn record(&self, count: f64, sum: f64, min: f64, max: f64) {
        let ok = validate::count(count).is_ok()
            && [sum, min, max].iter().all(|v| validate::value(*v).is_ok())
            && min <= max;
        if !ok {
            self.0
                .telemetry
                .invalid_values
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        let State::Statistics(slot) = &self.0.state else {
            return;
        };
        let mut slot = slot.lock();
        *slot = Some(match *slot {
            None => [count, sum, min, max],
            Some([c, s, lo, hi]) => [c + count, s + sum, lo.min(min), hi.max(max)],
        });
    }
}

type Key = (String, Vec<(String, String)>);

/// Aggregates metrics in memory and turns them into wire batches on flush.
///
/// Cheap to clone: clones share the same registry.
#[derive(Clone, Debug)]
pub struct Emitter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: Config,
    registry: spin::Mutex<BTreeMap<Key, Arc<Cell>>>,
    sequence: AtomicU64,
    telemetry: Arc<Telemetry>,
}

impl Emitter {
    /// An emitter with these settings.
    pub fn new(config: Config) -> Self {
        Emitter {
            inner: Arc::new(Inner {
                config,
                registry: spin::Mutex::new(BTreeMap::new()),
                sequence: AtomicU64::new(0),
                telemetry: Arc::new(Telemetry::default()),
            }),
        }
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Registers (or finds) a counter.
    pub fn counter(&self, metric: Metric) -> Result<Counter> {
        self.register(metric, Kind::Counter).map(Counter)
    }

    /// Registers (or finds) a gauge.
    pub fn gauge(&self, metric: Metric) -> Result<Gauge> {
        self.register(metric, Kind::Gauge).map(Gauge)
    }

    /// Registers (or finds) a distribution.
    pub fn distribution(&self, metric: Metric) -> Result<Distribution> {
        self.register(metric, Kind::Distribution).map(Distribution)
    }

    /// Registers (or finds) a statistic set.
    pub fn statistics(&self, metric: Metric) -> Result<Statistics> {
        self.register(metric, Kind::Statistics).map(Statistics)
    }

    fn register(&self, metric: Metric, kind: Kind) -> Result<Arc<Cell>> {
        let Metric {
            name,
            unit,
            dimensions,
            resolution,
        } = metric;
        validate::metric_name(&name)
            .map_err(|reason| Error::invalid(Field::MetricName, &name, reason))?;
        let mut dims = Vec::with_capacity(dimensions.len());
        for (n, v) in dimensions {
            dims.push(check_dimension(n, v)?);
        }
        dims.sort();
        let common = &self.inner.config.dimensions;
        for pair in dims.windows(2) {
            if pair[0].0 == pair[1].0 {
                return Err(Error::DuplicateDimension {
                    name: pair[0].0.clone(),
                });
            }
        }
        if let Some((n, _)) = dims
            .iter()
            .find(|(n, _)| common.iter().any(|(c, _)| c == n))
        {
            return Err(Error::DuplicateDimension { name: n.clone() });
        }
        let count = dims.len() + common.len();
        if count > MAX_DIMENSIONS {
            return Err(Error::TooManyDimensions { name, count });
        }

        let key = (name, dims);
        let mut registry = self.inner.registry.lock();
        if let Some(cell) = registry.get(&key) {
            return if cell.kind == kind && cell.unit == unit && cell.resolution == resolution {
                Ok(Arc::clone(cell))
            } else {
                Err(Error::Conflict { name: key.0 })
            };
        }
        let state = match kind {
            Kind::Counter | Kind::Gauge => State::Scalar(AtomicU64::new(EMPTY)),
            Kind::Distribution => State::Distribution(spin::Mutex::new(Values::default())),
            Kind::Statistics => State::Statistics(spin::Mutex::new(None)),
        };
        let cell = Arc::new(Cell {
            name: key.0.clone(),
            kind,
            unit,
            dimensions: key.1.clone(),
            resolution,
            state,
            telemetry: Arc::clone(&self.inner.telemetry),
        });
        registry.insert(key, Arc::clone(&cell));
        Ok(cell)
    }

    /// A copy of the telemetry counters.
    pub fn telemetry(&self) -> TelemetrySnapshot {
        let t = &self.inner.telemetry;
        TelemetrySnapshot {
            invalid_values: t.invalid_values.load(Ordering::Relaxed),
            points_flushed: t.points_flushed.load(Ordering::Relaxed),
            batches_encoded: t.batches_encoded.load(Ordering::Relaxed),
        }
    }

    /// Takes everything recorded since the last flush and encodes it as
    /// batches stamped with `now_ms` (milliseconds since the Unix epoch).
    /// Series with nothing recorded are left out; no batch is made when
    /// nothing was recorded.
    pub fn flush_at(&self, now_ms: i64) -> Result<Vec<Batch>> {
        let cells: Vec<Arc<Cell>> = self.inner.registry.lock().values().cloned().collect();
        let mut taken: Vec<(Arc<Cell>, wire::Point)> = Vec::new();
        for cell in cells {
            if let Some(point) = take(&cell) {
                taken.push((cell, point));
            }
        }
        let mut batches = Vec::new();
        for chunk in taken.chunks(self.inner.config.max_points_per_batch) {
            self.encode(chunk, now_ms, &mut batches)?;
        }
        Ok(batches)
    }

    /// [`Emitter::flush_at`] with the system clock.
    #[cfg(feature = "std")]
    pub fn flush(&self) -> Result<Vec<Batch>> {
        self.flush_at(crate::now_ms())
    }

    fn encode(
        &self,
        points: &[(Arc<Cell>, wire::Point)],
        now_ms: i64,
        out: &mut Vec<Batch>,
    ) -> Result<()> {
        let config = &self.inner.config;
        let seq = self.inner.sequence.fetch_add(1, Ordering::Relaxed);
        let id = format!("{:016x}-{seq:x}", config.instance_id);
        let mut series: Vec<wire::Series<'_>> = Vec::new();
        let mut index: BTreeMap<*const Cell, u32> = BTreeMap::new();
        let mut wire_points = Vec::with_capacity(points.len());
        for (cell, point) in points {
            let next = series.len() as u32;
            let s = *index.entry(Arc::as_ptr(cell)).or_insert_with(|| {
                series.push(wire_series(cell));
                next
            });
            wire_points.push(wire::Point { s, ..point.clone() });
        }
        let batch = wire::Batch {
            v: wire::VERSION,
            id: Cow::Borrowed(&id),
            ns: Cow::Borrowed(&config.namespace),
            t: now_ms,
            dims: wire::Dimensions(
                config
                    .dimensions
                    .iter()
                    .map(|(n, v)| (Cow::Borrowed(n.as_str()), Cow::Borrowed(v.as_str())))
                    .collect(),
            ),
            series,
            points: wire_points,
        };
        let json = serde_json::to_vec(&batch).map_err(|e| Error::Encode(e.to_string()))?;
        if json.len() > config.max_batch_bytes && points.len() > 1 {
            // Give the sequence number back unused is not possible (others may
            // have taken later ones); ids need only be unique, not dense.
            let (a, b) = points.split_at(points.len() / 2);
            self.encode(a, now_ms, out)?;
            return self.encode(b, now_ms, out);
        }
        let telemetry = &self.inner.telemetry;
        telemetry
            .points_flushed
            .fetch_add(points.len() as u64, Ordering::Relaxed);
        telemetry.batches_encoded.fetch_add(1, Ordering::Relaxed);
        out.push(Batch::new(id, points.len(), json, config)?);
        Ok(())
    }
}

fn wire_series(cell: &Cell) -> wire::Series<'_> {
    wire::Series {
        n: Cow::Borrowed(&cell.name),
        k: cell.kind,
        u: (cell.unit != Unit::None).then(|| Cow::Borrowed(cell.unit.as_str())),
        d: wire::Dimensions(
            cell.dimensions
                .iter()
                .map(|(n, v)| (Cow::Borrowed(n.as_str()), Cow::Borrowed(v.as_str())))
                .collect(),
        ),
        r: (cell.resolution != Resolution::Standard).then_some(cell.resolution.seconds()),
    }
}

/// Takes the cell's aggregate, leaving it empty; `None` if nothing was recorded.
fn take(cell: &Cell) -> Option<wire::Point> {
    let mut point = wire::Point::default();
    match &cell.state {
        State::Scalar(slot) => {
            let bits = slot.swap(EMPTY, Ordering::AcqRel);
            if bits == EMPTY {
                return None;
            }
            let v = f64::from_bits(bits);
            if validate::value(v).is_err() {
                // A sum that overflowed CloudWatch's range cannot be sent.
                cell.telemetry
                    .invalid_values
                    .fetch_add(1, Ordering::Relaxed);
                return None;
            }
            point.x = Some(v);
        }
        State::Distribution(dist) => {
            let values = core::mem::take(&mut dist.lock().values);
            if values.is_empty() {
                return None;
            }
            let all_ones = values.values().all(|c| *c == 1.0);
            let (vs, cs): (Vec<f64>, Vec<f64>) = values
                .into_iter()
                .map(|(k, c)| (from_order_key(k), c))
                .unzip();
            point.vs = Some(vs);
            point.cs = (!all_ones).then_some(cs);
        }
        State::Statistics(slot) => {
            point.st = Some(slot.lock().take()?);
        }
    }
    Some(point)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(batch: &Batch) -> wire::Batch<'static> {
        let json = batch.json().expect("decodes");
        let parsed: wire::Batch<'_> = serde_json::from_slice(&json).expect("valid JSON");
        // Make it own its strings so it can outlive `json`.
        let text = serde_json::to_string(&parsed).expect("re-encodes");
        serde_json::from_str::<wire::Batch<'_>>(alloc::boxed::Box::leak(text.into_boxed_str()))
            .expect("decodes")
    }

    fn emitter() -> Emitter {
        Emitter::new(
            Config::new("Shop")
                .expect("namespace")
                .dimension("service", "checkout")
                .expect("dimension")
                .instance_id(7),
        )
    }

    #[test]
    fn aggregates_each_kind_until_flush() {
        let e = emitter();
        let orders = e
            .counter(
                Metric::new("orders")
                    .unit(Unit::Count)
                    .dimension("route", "/buy"),
            )
            .expect("counter");
        let temp = e.gauge(Metric::new("temperature")).expect("gauge");
        let latency = e
            .distribution(
                Metric::new("latency")
                    .unit(Unit::Milliseconds)
                    .high_resolution(),
            )
            .expect("distribution");
        let sizes = e
            .statistics(Metric::new("size").unit(Unit::Bytes))
            .expect("stats");
        orders.increment();
        orders.add(2.5);
        temp.set(3.0);
        temp.set(-4.0);
        for v in [5.0, 1.0, 5.0, 2.0] {
            latency.record(v);
        }
        sizes.record(2.0, 10.0, 4.0, 6.0);
        sizes.record(1.0, 1.0, 1.0, 1.0);

        let batches = e.flush_at(1_000).expect("flush");
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].id(), "0000000000000007-0");
        let b = decode(&batches[0]);
        assert_eq!(b.ns, "Shop");
        assert_eq!(b.t, 1_000);
        assert_eq!(b.dims.0, [("service".into(), "checkout".into())]);
        let by_name = |n: &str| {
            let i = b.series.iter().position(|s| s.n == n).expect("series") as u32;
            (
                &b.series[i as usize],
                b.points.iter().find(|p| p.s == i).expect("point"),
            )
        };
        let (s, p) = by_name("orders");
        assert_eq!(
            (s.k, s.u.as_deref(), p.x),
            (Kind::Counter, Some("Count"), Some(3.5))
        );
        assert_eq!(s.d.0, [("route".into(), "/buy".into())]);
        let (s, p) = by_name("temperature");
        assert_eq!((s.k, s.u.as_deref(), p.x), (Kind::Gauge, None, Some(-4.0)));
        let (s, p) = by_name("latency");
        assert_eq!((s.k, s.r), (Kind::Distribution, Some(1)));
        assert_eq!(p.vs.as_deref(), Some(&[1.0, 2.0, 5.0][..]));
        assert_eq!(p.cs.as_deref(), Some(&[1.0, 1.0, 2.0][..]));
        let (_, p) = by_name("size");
        assert_eq!(p.st, Some([3.0, 11.0, 1.0, 6.0]));

        // Everything was taken: the next flush has nothing.
        assert!(e.flush_at(2_000).expect("flush").is_empty());
        orders.increment();
        let b = decode(&e.flush_at(3_000).expect("flush")[0]);
        assert_eq!(b.points.len(), 1);
        assert_eq!(b.points[0].x, Some(1.0));
        assert_eq!(e.telemetry().points_flushed, 5);
    }

    #[test]
    fn registration_validates_and_deduplicates() {
        let e = emitter();
        let a = e.counter(Metric::new("n").dimension("b", "1").dimension("a", "2"));
        let b = e.counter(Metric::new("n").dimension("a", "2").dimension("b", "1"));
        a.expect("a").add(1.0);
        b.expect("b").add(1.0);
        let batch = decode(&e.flush_at(0).expect("flush")[0]);
        assert_eq!(batch.points[0].x, Some(2.0), "same series, one sum");

        assert!(matches!(
            e.gauge(Metric::new("n").dimension("a", "2").dimension("b", "1")),
            Err(Error::Conflict { .. })
        ));
        let err = e.counter(Metric::new("")).expect_err("empty");
        assert_eq!(err.to_string(), "metric name \"\" is empty");
        let err = e
            .counter(Metric::new("x").dimension("d", ""))
            .expect_err("empty value");
        assert_eq!(err.to_string(), "dimension value \"\" is empty");
        let err = e
            .counter(Metric::new("x").dimension("service", "v"))
            .expect_err("dup");
        assert!(matches!(err, Error::DuplicateDimension { .. }));
        let mut m = Metric::new("wide");
        for i in 0..30 {
            m = m.dimension(format!("d{i}"), "v");
        }
        let err = e.counter(m).expect_err("31 with the common one");
        assert_eq!(
            err,
            Error::TooManyDimensions {
                name: "wide".into(),
                count: 31
            }
        );
        assert!(matches!(
            Config::new("AWS/Lambda"),
            Err(Error::Invalid {
                field: Field::Namespace,
                ..
            })
        ));
    }

    #[test]
    fn invalid_values_are_counted_not_recorded() {
        let e = emitter();
        let c = e.counter(Metric::new("c")).expect("counter");
        let d = e.distribution(Metric::new("d")).expect("dist");
        c.add(f64::NAN);
        c.add(f64::INFINITY);
        d.record(1e300);
        d.record_many(1.0, 0.0);
        assert_eq!(e.telemetry().invalid_values, 4);
        assert!(e.flush_at(0).expect("flush").is_empty());
    }

    #[test]
    fn distributions_stay_bounded_and_keep_exact_counts() {
        let e = emitter();
        let d = e.distribution(Metric::new("d")).expect("dist");
        for i in 0..10_000 {
            d.record(1.0 + f64::from(i) / 10_000.0);
        }
        let b = decode(&e.flush_at(0).expect("flush")[0]);
        let p = &b.points[0];
        let vs = p.vs.as_ref().expect("values");
        let total: f64 = p.cs.as_ref().expect("counts").iter().sum();
        assert_eq!(total, 10_000.0);
        // 150 exact values plus at most 128 buckets in [1, 2].
        assert!(vs.len() <= 150 + 129, "{}", vs.len());
        assert!(vs.windows(2).all(|w| w[0] < w[1]), "sorted, distinct");
    }

    #[test]
    fn quantize_error_is_bounded() {
        for v in [1.0, 1.001, 3.7, -12345.678, 1e-9, 6.02e23] {
            let q = quantize(v);
            assert!(((q - v) / v).abs() <= 1.0 / 256.0, "{v} -> {q}");
        }
    }

    #[test]
    fn order_key_preserves_order() {
        let mut vs = [3.0, -1.0, 0.0, -0.0, 1e-300, -1e300, 2.5];
        vs.sort_by(f64::total_cmp);
        let keys: Vec<u64> = vs.iter().map(|v| order_key(*v)).collect();
        assert!(keys.windows(2).all(|w| w[0] <= w[1]));
        for v in vs {
            assert_eq!(from_order_key(order_key(v)), v + 0.0);
        }
    }

    #[test]
    fn batches_split_by_points_and_bytes() {
        let e = Emitter::new(
            Config::new("N")
                .expect("ns")
                .max_points_per_batch(10)
                .max_batch_bytes(400),
        );
        for i in 0..35 {
            e.counter(Metric::new(format!("metric_{i}")))
                .expect("counter")
                .increment();
        }
        let batches = e.flush_at(0).expect("flush");
        let ids: Vec<&str> = batches.iter().map(Batch::id).collect();
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), ids.len(), "ids are unique");
        let mut total = 0;
        for b in &batches {
            assert!(b.points() <= 10);
            assert!(b.json().expect("json").len() <= 400);
            total += decode(b).points.len();
        }
        assert_eq!(total, 35);
        assert!(
            batches.len() > 4,
            "byte limit split some chunks: {}",
            batches.len()
        );
    }
}
