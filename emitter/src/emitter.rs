//! The emitter: registration, recording handles and flushing.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::Ordering::Relaxed;

use portable_atomic::AtomicU64;

use crate::batch::Batch;
use crate::cell::{Double, Drained, GaugeBuffer, Stats, Sum, Table};
use crate::config::{Config, Metric, check_dimension};
use crate::encode::{self, Taken};
use crate::error::{Error, Field, Result, not_json};
#[cfg(feature = "std")]
use crate::staging::{self, Buffer};
use edgepush_protocol::limits::MAX_DIMENSIONS;
use edgepush_protocol::validate;
use edgepush_protocol::wire::{self, Kind};
use edgepush_protocol::{Resolution, Unit};

/// Name of the counter that records into series refused by the cardinality
/// guard ([`Config::max_series`]).
pub const OVERFLOW_METRIC: &str = "edgepush_series_overflow";

#[derive(Debug)]
enum State {
    Counter(Sum),
    Gauge(Double<GaugeBuffer>),
    Distribution(Double<Table>),
    Statistics(Double<Stats>),
    /// The cardinality guard's counter: every recording adds one.
    Overflow(Sum),
}

/// One series: identity, its wire encoding (made once) and its state.
#[derive(Debug)]
pub(crate) struct Cell {
    pub(crate) id: usize,
    pub(crate) kind: Kind,
    pub(crate) unit: Unit,
    pub(crate) resolution: Resolution,
    /// The series' definition in the configured wire format, encoded at
    /// registration.
    pub(crate) def: Vec<u8>,
    state: State,
}

/// Counts of what the emitter did.
#[derive(Debug, Default)]
pub(crate) struct Telemetry {
    pub(crate) invalid_values: AtomicU64,
    pub(crate) points_flushed: AtomicU64,
    pub(crate) batches_encoded: AtomicU64,
    pub(crate) batches_sent: AtomicU64,
    pub(crate) batches_retried: AtomicU64,
    pub(crate) batches_failed: AtomicU64,
    pub(crate) series_overflowed: AtomicU64,
    pub(crate) timestamped_refused: AtomicU64,
}

/// A copy of the emitter's own counters, since it was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TelemetrySnapshot {
    /// Recorded values refused because they were NaN, infinite, out of
    /// CloudWatch's range, or had a non-positive count.
    pub invalid_values: u64,
    /// Data points written into batches.
    pub points_flushed: u64,
    /// Batches encoded.
    pub batches_encoded: u64,
    /// Batches a receiver took.
    pub batches_sent: u64,
    /// Extra attempts transports made before a batch was taken or given up.
    pub batches_retried: u64,
    /// Batches handed back to the caller unsent.
    pub batches_failed: u64,
    /// Series registrations refused by the cardinality guard (their
    /// recordings count into `edgepush_series_overflow`).
    pub series_overflowed: u64,
    /// Explicitly timestamped values handed back because the buffer was full.
    pub timestamped_refused: u64,
}

/// What the registry and handles share.
#[derive(Debug)]
struct Shared {
    config: Config,
    telemetry: Telemetry,
    registry: spin::Mutex<Registry>,
    timestamped: spin::Mutex<BTreeMap<(usize, i64), Taken>>,
    sequence: AtomicU64,
    /// This emitter's id for the threads' staging buffers.
    #[cfg(feature = "std")]
    id: u64,
    /// Every thread's staging buffer for this emitter.
    #[cfg(feature = "std")]
    buffers: spin::Mutex<Vec<Arc<Buffer>>>,
}

#[cfg(feature = "std")]
impl Shared {
    /// A staging buffer for the calling thread, unless
    /// [`staging::MAX_BUFFERS`] threads have one already.
    #[cold]
    fn attach(&self) -> Option<Arc<Buffer>> {
        let mut buffers = self.buffers.lock();
        if buffers.len() >= staging::MAX_BUFFERS {
            // Buffers of threads that are gone count until applied.
            if let Some(registry) = self.registry.try_lock() {
                apply_staged(&registry, &mut buffers);
            }
            if buffers.len() >= staging::MAX_BUFFERS {
                return None;
            }
        }
        let buffer = Arc::new(Buffer::new());
        buffers.push(Arc::clone(&buffer));
        Some(buffer)
    }

    /// Applies the calling thread's full buffer, if no one holds the
    /// registry (never waits).
    #[cold]
    fn apply_own(&self, buffer: &Buffer) -> bool {
        let Some(registry) = self.registry.try_lock() else {
            return false;
        };
        let mut applier = Applier::new(&registry.cells);
        buffer.drain(|id, v| applier.apply(id, v));
        applier.finish();
        true
    }

    /// Gives the calling thread its buffer now, so that its first
    /// recording does not allocate.
    fn prepare(&self) {
        staging::prepare(self.id, || self.attach());
    }
}

/// Applies every thread's staged recordings and lets go of the buffers of
/// threads that are gone. The registry lock is what makes the caller the
/// buffers' only consumer.
#[cfg(feature = "std")]
fn apply_staged(registry: &Registry, buffers: &mut Vec<Arc<Buffer>>) {
    let mut applier = Applier::new(&registry.cells);
    buffers.retain(|buffer| {
        buffer.drain(|id, v| applier.apply(id, v));
        !Buffer::orphaned(buffer)
    });
    applier.finish();
}

/// Applies staged recordings to their series (counters and distributions:
/// nothing else is staged). A counter's recordings are added up first, so
/// that a counter costs one compare-and-swap per buffer rather than one
/// per recording. The caller holds the registry, so no flush takes a
/// distribution's buffer meanwhile.
#[cfg(feature = "std")]
struct Applier<'a> {
    cells: &'a [Arc<Cell>],
    /// Counter sums not yet applied: `(series id, sum)`.
    sums: [(usize, f64); 4],
    len: usize,
}

#[cfg(feature = "std")]
impl<'a> Applier<'a> {
    fn new(cells: &'a [Arc<Cell>]) -> Self {
        Applier {
            cells,
            sums: [(0, 0.0); 4],
            len: 0,
        }
    }

    fn apply(&mut self, id: usize, v: f64) {
        match self.cells.get(id).map(|cell| &cell.state) {
            Some(State::Counter(_)) => {
                if let Some((_, sum)) = self.sums[..self.len].iter_mut().find(|(i, _)| *i == id) {
                    *sum += v;
                    return;
                }
                if self.len == self.sums.len() {
                    self.finish_sums();
                }
                self.sums[self.len] = (id, v);
                self.len += 1;
            }
            Some(State::Distribution(d)) => d.active(|t| t.record(v, 1)),
            _ => debug_assert!(false, "only counters and distributions are staged"),
        }
    }

    fn finish_sums(&mut self) {
        for (id, v) in &self.sums[..self.len] {
            if let Some(State::Counter(sum)) = self.cells.get(*id).map(|cell| &cell.state) {
                sum.add(*v);
            }
        }
        self.len = 0;
    }

    /// Applies the counter sums still held.
    fn finish(mut self) {
        self.finish_sums();
    }
}

/// Dimensions as sorted name/value pairs.
type Dimensions = Vec<(String, String)>;

#[derive(Debug, Default)]
struct Registry {
    by_key: BTreeMap<(String, Dimensions), Arc<Cell>>,
    cells: Vec<Arc<Cell>>,
    overflow: Option<Arc<Cell>>,
    /// Self-metric counters, when enabled.
    self_metrics: Option<SelfMetrics>,
    /// Telemetry already reported as self-metrics.
    reported: TelemetrySnapshot,
}

#[derive(Debug)]
struct SelfMetrics {
    points: Arc<Cell>,
    batches: Arc<Cell>,
    failed: Arc<Cell>,
    retried: Arc<Cell>,
    invalid: Arc<Cell>,
    overflowed: Arc<Cell>,
}

/// The handle all metric kinds share: the series a recording goes to.
#[derive(Clone, Debug)]
struct Handle {
    cells: Arc<[Arc<Cell>]>,
    shared: Arc<Shared>,
    /// The id of the handle's one series when recordings into it are
    /// staged (a counter or distribution without extra dimension sets);
    /// [`UNSTAGED`] otherwise.
    staged: usize,
}

/// [`Handle::staged`] of a handle whose recordings go to each cell.
const UNSTAGED: usize = usize::MAX;

impl Handle {
    /// Stages `v` for series `id` on the calling thread's buffer; false if
    /// it must be recorded directly.
    #[inline]
    fn stage(&self, id: usize, v: f64) -> bool {
        #[cfg(feature = "std")]
        {
            let shared = &*self.shared;
            id != UNSTAGED
                && staging::stage(
                    shared.id,
                    id,
                    v,
                    || shared.attach(),
                    |buffer| shared.apply_own(buffer),
                )
        }
        #[cfg(not(feature = "std"))]
        {
            let _ = (id, v);
            false
        }
    }

    #[inline]
    fn valid(&self, v: f64) -> bool {
        if validate::value(v).is_ok() {
            true
        } else {
            self.shared.telemetry.invalid_values.fetch_add(1, Relaxed);
            false
        }
    }

    /// Buffers an explicitly timestamped value, merged with others of the
    /// same series and millisecond; hands `v` back when the buffer is full.
    fn at(&self, ts_ms: i64, v: f64, merge: impl Fn(&mut Taken)) -> Result<(), f64> {
        let mut buffer = self.shared.timestamped.lock();
        let new = self
            .cells
            .iter()
            .filter(|c| !buffer.contains_key(&(c.id, ts_ms)))
            .count();
        if buffer.len() + new > self.shared.config.max_timestamped {
            self.shared
                .telemetry
                .timestamped_refused
                .fetch_add(1, Relaxed);
            return Err(v);
        }
        for cell in self.cells.iter() {
            let entry = buffer
                .entry((cell.id, ts_ms))
                .or_insert_with(|| Taken::empty(cell.kind));
            merge(entry);
        }
        Ok(())
    }
}

macro_rules! handle {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        ///
        /// Cheap to clone, `Send + Sync`; recording takes no lock and
        /// allocates nothing. (With `std`, a thread's first recording
        /// into an emitter's counters or distributions allocates the
        /// thread's staging buffer for that emitter, 4 KB, once.)
        #[derive(Clone, Debug)]
        pub struct $name(Handle);
    };
}

handle! {
    /// A counter: the sum of what was added since the last flush.
    Counter
}
handle! {
    /// A gauge: the last value set before the flush, with the count, sum,
    /// minimum and maximum of every value set in the interval.
    Gauge
}
handle! {
    /// A distribution: every value recorded, as CloudWatch `Values`/`Counts`.
    ///
    /// The first 150 distinct values of an interval are kept exactly; later
    /// new values are rounded to 7 significant bits (at most 0.8 % off).
    /// When the table ([`Config::distribution_slots`]) is full, further
    /// values are summarised as a statistic set of the same series. Counts
    /// are always exact, and sums, minima and maxima are exact but for the
    /// rounded values; nothing is dropped.
    Distribution
}
handle! {
    /// A statistic set: count, sum, minimum and maximum, merged until flush.
    Statistics
}

impl Counter {
    /// Adds `v`. Non-finite or out-of-range values are refused and counted
    /// in [`TelemetrySnapshot::invalid_values`].
    #[inline]
    pub fn add(&self, v: f64) {
        if !self.0.valid(v) || self.0.stage(self.0.staged, v) {
            return;
        }
        for cell in self.0.cells.iter() {
            match &cell.state {
                State::Counter(sum) => sum.add(v),
                State::Overflow(sum) => sum.add(1.0),
                _ => {}
            }
        }
    }

    /// Adds one.
    #[inline]
    pub fn increment(&self) {
        self.add(1.0);
    }

    /// Adds `v` at an explicit time (milliseconds since the Unix epoch), kept
    /// apart from the interval's sum. Hands `v` back if the buffer of
    /// timestamped points ([`Config::max_timestamped`]) is full.
    pub fn add_at(&self, v: f64, ts_ms: i64) -> Result<(), f64> {
        if !self.0.valid(v) {
            return Ok(());
        }
        self.0.at(ts_ms, v, |t| t.add(v))
    }
}

impl Gauge {
    /// Sets the value. Non-finite or out-of-range values are refused and
    /// counted in [`TelemetrySnapshot::invalid_values`].
    #[inline]
    pub fn set(&self, v: f64) {
        if !self.0.valid(v) {
            return;
        }
        let v = v + 0.0;
        for cell in self.0.cells.iter() {
            match &cell.state {
                State::Gauge(g) => g.write(|b| b.set(v)),
                State::Overflow(sum) => sum.add(1.0),
                _ => {}
            }
        }
    }

    /// Sets the value at an explicit time; see [`Counter::add_at`].
    pub fn set_at(&self, v: f64, ts_ms: i64) -> Result<(), f64> {
        if !self.0.valid(v) {
            return Ok(());
        }
        self.0.at(ts_ms, v, |t| t.set(v))
    }
}

impl Distribution {
    /// Records one occurrence of `v`.
    #[inline]
    pub fn record(&self, v: f64) {
        self.record_many(v, 1);
    }

    /// Records `count` occurrences of `v`; a count of 0 is refused.
    #[inline]
    pub fn record_many(&self, v: f64, count: u32) {
        if count == 0 {
            self.0.shared.telemetry.invalid_values.fetch_add(1, Relaxed);
            return;
        }
        if !self.0.valid(v) || (count == 1 && self.0.stage(self.0.staged, v)) {
            return;
        }
        for cell in self.0.cells.iter() {
            match &cell.state {
                State::Distribution(d) => d.write(|t| t.record(v, count)),
                State::Overflow(sum) => sum.add(f64::from(count)),
                _ => {}
            }
        }
    }

    /// Records `v` at an explicit time; see [`Counter::add_at`].
    pub fn record_at(&self, v: f64, ts_ms: i64) -> Result<(), f64> {
        if !self.0.valid(v) {
            return Ok(());
        }
        self.0.at(ts_ms, v, |t| t.record(v))
    }
}

impl Statistics {
    /// Merges a statistic set of `count` samples with the given sum, minimum
    /// and maximum. Invalid sets (non-positive count, non-finite values,
    /// `min > max`) are refused and counted.
    #[inline]
    pub fn record(&self, count: f64, sum: f64, min: f64, max: f64) {
        if !valid_set(count, sum, min, max) {
            self.0.shared.telemetry.invalid_values.fetch_add(1, Relaxed);
            return;
        }
        for cell in self.0.cells.iter() {
            match &cell.state {
                State::Statistics(s) => s.write(|b| b.record(count, sum, min, max)),
                State::Overflow(total) => total.add(1.0),
                _ => {}
            }
        }
    }

    /// Merges a statistic set at an explicit time; see [`Counter::add_at`].
    /// The count is handed back when the buffer is full.
    pub fn record_at(
        &self,
        count: f64,
        sum: f64,
        min: f64,
        max: f64,
        ts_ms: i64,
    ) -> Result<(), f64> {
        if !valid_set(count, sum, min, max) {
            self.0.shared.telemetry.invalid_values.fetch_add(1, Relaxed);
            return Ok(());
        }
        self.0
            .at(ts_ms, count, |t| t.merge_stats([count, sum, min, max]))
    }
}

fn valid_set(count: f64, sum: f64, min: f64, max: f64) -> bool {
    validate::statistic_set([count, sum, min, max]).is_ok()
}

/// Aggregates metrics in memory and turns them into wire batches on flush.
///
/// Cheap to clone: clones share one registry. Registering allocates; recording
/// through a handle does not, and takes no lock.
#[derive(Clone, Debug)]
pub struct Emitter {
    shared: Arc<Shared>,
}

impl Emitter {
    /// An emitter with these settings.
    pub fn new(config: Config) -> Self {
        let self_metrics = config.self_metrics;
        let emitter = Emitter {
            shared: Arc::new(Shared {
                config,
                telemetry: Telemetry::default(),
                registry: spin::Mutex::new(Registry::default()),
                timestamped: spin::Mutex::new(BTreeMap::new()),
                sequence: AtomicU64::new(0),
                #[cfg(feature = "std")]
                id: staging::next_owner(),
                #[cfg(feature = "std")]
                buffers: spin::Mutex::new(Vec::new()),
            }),
        };
        if self_metrics {
            let cell = |name: &str| {
                let metric = Metric::new(name).unit(Unit::Count);
                let handle = emitter.register(metric, Kind::Counter).ok()?;
                handle.cells.first().cloned()
            };
            let metrics = (|| {
                Some(SelfMetrics {
                    points: cell("edgepush_points")?,
                    batches: cell("edgepush_batches")?,
                    failed: cell("edgepush_batches_failed")?,
                    retried: cell("edgepush_batches_retried")?,
                    invalid: cell("edgepush_invalid_values")?,
                    overflowed: cell("edgepush_series_overflowed")?,
                })
            })();
            emitter.shared.registry.lock().self_metrics = metrics;
        }
        emitter
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.shared.config
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

    fn register(&self, metric: Metric, kind: Kind) -> Result<Handle> {
        let Metric {
            name,
            unit,
            dimensions,
            dimension_sets,
            resolution,
        } = metric;
        validate::metric_name(&name)
            .map_err(|reason| Error::invalid(Field::MetricName, &name, reason))?;
        let mut dims = Vec::with_capacity(dimensions.len());
        for (n, v) in dimensions {
            dims.push(check_dimension(n, v)?);
        }
        dims.sort();
        if let Some(pair) = dims.windows(2).find(|p| p[0].0 == p[1].0) {
            return Err(Error::DuplicateDimension {
                name: pair[0].0.clone(),
            });
        }
        let common = &self.shared.config.dimensions;
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
        // The full set, then each extra set, without repeats.
        let mut sets: Vec<Dimensions> = vec![dims.clone()];
        for set in dimension_sets {
            if let Some(unknown) = set.iter().find(|n| !dims.iter().any(|(d, _)| d == *n)) {
                return Err(Error::UnknownDimension {
                    name: unknown.clone(),
                });
            }
            let subset: Dimensions = dims
                .iter()
                .filter(|(d, _)| set.contains(d))
                .cloned()
                .collect();
            if !sets.contains(&subset) {
                sets.push(subset);
            }
        }

        let mut registry = self.shared.registry.lock();
        let mut cells = Vec::with_capacity(sets.len());
        for set in sets {
            let key = (name.clone(), set);
            if let Some(cell) = registry.by_key.get(&key) {
                if cell.kind != kind || cell.unit != unit || cell.resolution != resolution {
                    return Err(Error::Conflict { name });
                }
                cells.push(Arc::clone(cell));
                continue;
            }
            if registry.cells.len() >= self.shared.config.max_series {
                self.shared
                    .telemetry
                    .series_overflowed
                    .fetch_add(1, Relaxed);
                cells.push(self.overflow_cell(&mut registry)?);
                continue;
            }
            let state = match kind {
                Kind::Counter => State::Counter(Sum::new()),
                Kind::Gauge => {
                    State::Gauge(Double::new(GaugeBuffer::default(), GaugeBuffer::default()))
                }
                Kind::Distribution => {
                    let slots = self.shared.config.distribution_slots;
                    State::Distribution(Double::new(Table::new(slots), Table::new(slots)))
                }
                Kind::Statistics => {
                    State::Statistics(Double::new(Stats::default(), Stats::default()))
                }
            };
            let cell = Arc::new(Cell {
                id: registry.cells.len(),
                kind,
                unit,
                resolution,
                def: series_def(
                    self.shared.config.wire,
                    &key.0,
                    kind,
                    unit,
                    &key.1,
                    resolution,
                )?,
                state,
            });
            registry.cells.push(Arc::clone(&cell));
            registry.by_key.insert(key, Arc::clone(&cell));
            cells.push(cell);
        }
        drop(registry);
        let staged = match &cells[..] {
            [cell] if matches!(cell.state, State::Counter(_) | State::Distribution(_)) => cell.id,
            _ => UNSTAGED,
        };
        #[cfg(feature = "std")]
        if staged != UNSTAGED {
            self.shared.prepare();
        }
        Ok(Handle {
            cells: cells.into(),
            shared: Arc::clone(&self.shared),
            staged,
        })
    }

    fn overflow_cell(&self, registry: &mut Registry) -> Result<Arc<Cell>> {
        if let Some(cell) = &registry.overflow {
            return Ok(Arc::clone(cell));
        }
        let cell = Arc::new(Cell {
            id: usize::MAX,
            kind: Kind::Counter,
            unit: Unit::Count,
            resolution: Resolution::Standard,
            def: series_def(
                self.shared.config.wire,
                OVERFLOW_METRIC,
                Kind::Counter,
                Unit::Count,
                &[],
                Resolution::Standard,
            )?,
            state: State::Overflow(Sum::new()),
        });
        registry.overflow = Some(Arc::clone(&cell));
        Ok(cell)
    }

    #[cfg(feature = "metrics")]
    pub(crate) fn shared_telemetry(&self) -> &Telemetry {
        &self.shared.telemetry
    }

    /// A copy of the telemetry counters.
    pub fn telemetry(&self) -> TelemetrySnapshot {
        let t = &self.shared.telemetry;
        TelemetrySnapshot {
            invalid_values: t.invalid_values.load(Relaxed),
            points_flushed: t.points_flushed.load(Relaxed),
            batches_encoded: t.batches_encoded.load(Relaxed),
            batches_sent: t.batches_sent.load(Relaxed),
            batches_retried: t.batches_retried.load(Relaxed),
            batches_failed: t.batches_failed.load(Relaxed),
            series_overflowed: t.series_overflowed.load(Relaxed),
            timestamped_refused: t.timestamped_refused.load(Relaxed),
        }
    }

    /// Records what a transport did with batches (used by `push`).
    #[cfg(feature = "std")]
    pub(crate) fn count_sent(&self, sent: u64, retried: u64, failed: u64) {
        let t = &self.shared.telemetry;
        t.batches_sent.fetch_add(sent, Relaxed);
        t.batches_retried.fetch_add(retried, Relaxed);
        t.batches_failed.fetch_add(failed, Relaxed);
    }

    /// Takes everything recorded since the last flush and encodes it as
    /// batches stamped with `now_ms` (milliseconds since the Unix epoch).
    /// Each batch holds at most [`Config::max_points_per_batch`] CloudWatch
    /// datums and [`Config::max_batch_bytes`] of JSON. Series with nothing
    /// recorded are left out; no batch is made when nothing was recorded.
    pub fn flush_at(&self, now_ms: i64) -> Result<Vec<Batch>> {
        let mut taken: Vec<(Arc<Cell>, i64, Taken)> = Vec::new();
        {
            let mut registry = self.shared.registry.lock();
            #[cfg(feature = "std")]
            apply_staged(&registry, &mut self.shared.buffers.lock());
            self.report_self_metrics(&mut registry);
            for cell in registry.cells.iter().chain(registry.overflow.iter()) {
                if let Some(t) = take(cell) {
                    taken.push((Arc::clone(cell), now_ms, t));
                }
            }
            let timestamped = core::mem::take(&mut *self.shared.timestamped.lock());
            for ((id, ts), t) in timestamped {
                if let Some(cell) = registry.cells.get(id) {
                    taken.push((Arc::clone(cell), ts, t));
                }
            }
        }
        // Series with like names and dimensions side by side compress best.
        taken.sort_by(|a, b| a.0.def.cmp(&b.0.def).then(a.1.cmp(&b.1)));
        let batches = encode::batches(&self.shared.config, &self.shared.sequence, now_ms, &taken)?;
        let t = &self.shared.telemetry;
        let points: usize = batches.iter().map(Batch::points).sum();
        t.points_flushed.fetch_add(points as u64, Relaxed);
        t.batches_encoded.fetch_add(batches.len() as u64, Relaxed);
        Ok(batches)
    }

    /// How many series hold data not yet flushed (each becomes at least one
    /// data point at the next flush), plus explicitly timestamped values
    /// waiting. Looks at every series: for deciding when to flush, not for
    /// a hot path.
    pub fn pending(&self) -> usize {
        let registry = self.shared.registry.lock();
        #[cfg(feature = "std")]
        apply_staged(&registry, &mut self.shared.buffers.lock());
        let series = registry
            .cells
            .iter()
            .chain(registry.overflow.iter())
            .filter(|cell| match &cell.state {
                State::Counter(sum) | State::Overflow(sum) => sum.has_data(),
                State::Gauge(double) => double.active(GaugeBuffer::has_data),
                State::Distribution(double) => double.active(Table::has_data),
                State::Statistics(double) => double.active(Stats::has_data),
            })
            .count();
        series + self.shared.timestamped.lock().len()
    }

    /// [`Emitter::flush_at`] with the system clock.
    #[cfg(feature = "std")]
    pub fn flush(&self) -> Result<Vec<Batch>> {
        self.flush_at(crate::now_ms())
    }

    /// Adds the telemetry since the last report to the self-metric counters.
    fn report_self_metrics(&self, registry: &mut Registry) {
        let Some(m) = &registry.self_metrics else {
            return;
        };
        let now = self.telemetry();
        let before = registry.reported;
        let add = |cell: &Cell, delta: u64| {
            if let (State::Counter(sum), true) = (&cell.state, delta > 0) {
                sum.add(delta as f64);
            }
        };
        add(&m.points, now.points_flushed - before.points_flushed);
        add(&m.batches, now.batches_sent - before.batches_sent);
        add(&m.failed, now.batches_failed - before.batches_failed);
        add(&m.retried, now.batches_retried - before.batches_retried);
        add(&m.invalid, now.invalid_values - before.invalid_values);
        add(
            &m.overflowed,
            now.series_overflowed - before.series_overflowed,
        );
        registry.reported = now;
    }
}

fn series_def(
    format: wire::Format,
    name: &str,
    kind: Kind,
    unit: Unit,
    dims: &[(String, String)],
    resolution: Resolution,
) -> Result<Vec<u8>> {
    use alloc::borrow::Cow;
    let unit = (unit != Unit::None).then(|| unit.as_str());
    let r = (resolution != Resolution::Standard).then_some(resolution.seconds());
    match format {
        wire::Format::V1 => {
            let series = wire::Series {
                n: Cow::Borrowed(name),
                k: kind,
                u: unit.map(Cow::Borrowed),
                d: wire::Dimensions(
                    dims.iter()
                        .map(|(n, v)| (Cow::Borrowed(n.as_str()), Cow::Borrowed(v.as_str())))
                        .collect(),
                ),
                r,
            };
            serde_json::to_vec(&series).map_err(|_| not_json())
        }
        wire::Format::V2 => {
            let mut out = Vec::new();
            wire::v2::series(
                &mut out,
                name,
                kind,
                unit,
                r,
                dims.iter().map(|(n, v)| (n.as_str(), v.as_str())),
            );
            Ok(out)
        }
    }
}

/// Takes the cell's aggregate, leaving it empty; `None` if nothing was recorded.
fn take(cell: &Cell) -> Option<Taken> {
    match &cell.state {
        State::Counter(sum) | State::Overflow(sum) => sum.take().map(Taken::Sum),
        State::Gauge(g) => g
            .take(GaugeBuffer::take)
            .map(|(last, stats)| Taken::Gauge { last, stats }),
        State::Distribution(d) => {
            let Drained {
                values,
                counts,
                overflow,
            } = d.take(Table::drain);
            if values.is_empty() && overflow.is_none() {
                return None;
            }
            Some(Taken::Distribution {
                values,
                counts,
                overflow,
            })
        }
        State::Statistics(s) => s.take(Stats::take).map(Taken::Statistics),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    fn decode(batch: &Batch) -> wire::Batch<'static> {
        let json = batch.json().expect("decodes");
        let text = String::from_utf8(json).expect("utf-8");
        // Leaked so the borrowed decode can outlive this function (tests only).
        serde_json::from_str::<wire::Batch<'_>>(alloc::boxed::Box::leak(text.into_boxed_str()))
            .expect("valid wire JSON")
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
    fn pending_counts_series_with_data_until_a_flush() {
        let e = emitter();
        let c = e.counter(Metric::new("c")).expect("c");
        let g = e.gauge(Metric::new("g")).expect("g");
        let d = e.distribution(Metric::new("d")).expect("d");
        let s = e.statistics(Metric::new("s")).expect("s");
        assert_eq!(e.pending(), 0);
        c.increment();
        d.record(1.0);
        d.record(2.0);
        assert_eq!(e.pending(), 2);
        g.set(3.0);
        s.record(1.0, 1.0, 1.0, 1.0);
        assert_eq!(c.add_at(1.0, 1_000), Ok(()));
        assert_eq!(e.pending(), 5);
        e.flush_at(2_000).expect("flush");
        assert_eq!(e.pending(), 0);
        d.record(4.0);
        assert_eq!(e.pending(), 1);
    }

    /// Every point of `batches` as (series name, dimensions, point).
    fn points(batches: &[Batch]) -> Vec<(String, Dimensions, wire::Point)> {
        let mut out = Vec::new();
        for b in batches {
            let b = decode(b);
            for p in b.points {
                let s = &b.series[p.s as usize];
                let dims =
                    s.d.0
                        .iter()
                        .map(|(n, v)| (n.to_string(), v.to_string()))
                        .collect();
                out.push((s.n.to_string(), dims, p));
            }
        }
        out
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
        let once = e.gauge(Metric::new("once")).expect("gauge");
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
        temp.set(1.0);
        once.set(5.0);
        for v in [5.0, 1.0, 5.0, 2.0] {
            latency.record(v);
        }
        latency.record_many(2.0, 3);
        sizes.record(2.0, 10.0, 4.0, 6.0);
        sizes.record(1.0, 1.0, 1.0, 1.0);

        let batches = e.flush_at(1_000).expect("flush");
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].id(), "0000000000000007-0");
        let b = decode(&batches[0]);
        assert_eq!((b.ns.as_ref(), b.t), ("Shop", 1_000));
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
        assert_eq!((s.k, s.u.as_deref(), p.x), (Kind::Gauge, None, Some(1.0)));
        assert_eq!(
            p.st,
            Some([3.0, 0.0, -4.0, 3.0]),
            "count, sum, min, max of every set"
        );
        let (_, p) = by_name("once");
        assert_eq!(
            (p.x, p.st),
            (Some(5.0), None),
            "one set: no statistics needed"
        );
        let (s, p) = by_name("latency");
        assert_eq!((s.k, s.r), (Kind::Distribution, Some(1)));
        assert_eq!(p.vs.as_deref(), Some(&[1.0, 2.0, 5.0][..]));
        assert_eq!(p.cs.as_deref(), Some(&[1.0, 4.0, 2.0][..]));
        let (_, p) = by_name("size");
        assert_eq!(p.st, Some([3.0, 11.0, 1.0, 6.0]));

        // Everything was taken: the next flush has nothing.
        assert!(e.flush_at(2_000).expect("flush").is_empty());
        orders.increment();
        let b = decode(&e.flush_at(3_000).expect("flush")[0]);
        assert_eq!(b.points.len(), 1);
        assert_eq!(b.points[0].x, Some(1.0));
        assert_eq!(e.telemetry().points_flushed, 6);
        assert_eq!(e.telemetry().batches_encoded, 2);
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

        let conflict = e.gauge(Metric::new("n").dimension("a", "2").dimension("b", "1"));
        assert!(matches!(conflict, Err(Error::Conflict { .. })));
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
        let err = e
            .counter(Metric::new("x").dimension("d", "v").dimension("d", "w"))
            .expect_err("dup");
        assert!(matches!(err, Error::DuplicateDimension { .. }));
        let err = e
            .counter(Metric::new("x").dimension("d", "v").dimension_set(["e"]))
            .expect_err("set");
        assert_eq!(err, Error::UnknownDimension { name: "e".into() });
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
        let s = e.statistics(Metric::new("s")).expect("stats");
        c.add(f64::NAN);
        c.add(f64::INFINITY);
        d.record(1e300);
        d.record_many(1.0, 0);
        s.record(1.0, 1.0, 2.0, 1.0);
        assert_eq!(e.telemetry().invalid_values, 5);
        assert!(e.flush_at(0).expect("flush").is_empty());
    }

    #[test]
    fn distributions_stay_bounded_and_keep_exact_counts() {
        let e = emitter();
        let d = e.distribution(Metric::new("d")).expect("dist");
        for i in 0..10_000 {
            d.record(1.0 + f64::from(i) / 10_000.0);
        }
        let all = points(&e.flush_at(0).expect("flush"));
        assert!(
            all.iter().all(|(_, _, p)| p.st.is_none()),
            "the table did not overflow"
        );
        let mut vs: Vec<f64> = Vec::new();
        let mut total = 0.0;
        for (_, _, p) in &all {
            let values = p.vs.as_ref().expect("values");
            assert!(values.len() <= 150, "one datum per point");
            vs.extend(values);
            total +=
                p.cs.as_ref()
                    .map_or(values.len() as f64, |c| c.iter().sum());
        }
        assert_eq!(total, 10_000.0);
        assert!(vs.len() <= 150 + 65, "{}", vs.len());
        assert!(vs.windows(2).all(|w| w[0] < w[1]), "sorted, distinct");

        // Values over many powers of two overflow the table into a statistic
        // set of the same series: counts, sum, min and max stay exact.
        let wide = e.distribution(Metric::new("wide")).expect("dist");
        let mut sum = 0.0;
        for i in 0..5_000 {
            let v = 1.001f64.powi(i * 7);
            wide.record(v);
            sum += v;
        }
        let all = points(&e.flush_at(0).expect("flush"));
        let count: f64 = all
            .iter()
            .map(|(_, _, p)| {
                p.cs.as_ref().map_or(0.0, |c| c.iter().sum::<f64>())
                    + p.vs
                        .as_ref()
                        .filter(|_| p.cs.is_none())
                        .map_or(0.0, |v| v.len() as f64)
                    + p.st.map_or(0.0, |s| s[0])
            })
            .sum();
        assert_eq!(count, 5_000.0);
        let st = all
            .iter()
            .find_map(|(_, _, p)| p.st)
            .expect("overflow statistics");
        assert!(st[3] >= 1.001f64.powi(4999 * 7) * 0.999);
        let recorded: f64 = all
            .iter()
            .map(|(_, _, p)| match (&p.vs, &p.cs, p.st) {
                (Some(v), Some(c), _) => v.iter().zip(c).map(|(v, c)| v * c).sum(),
                (Some(v), None, _) => v.iter().sum(),
                (_, _, Some(s)) => s[1],
                _ => 0.0,
            })
            .sum();
        assert!(
            ((recorded - sum) / sum).abs() < 0.008,
            "{recorded} vs {sum}"
        );
    }

    #[test]
    fn batches_respect_datums_and_bytes_exactly() {
        // Limits where the bytes bind before the datums do.
        for (format, limit) in [(wire::Format::V1, 300), (wire::Format::V2, 120)] {
            let e = Emitter::new(
                Config::new("N")
                    .expect("ns")
                    .max_points_per_batch(10)
                    .max_batch_bytes(limit)
                    .distribution_slots(1024)
                    .wire_format(format),
            );
            for i in 0..35 {
                e.counter(Metric::new(format!("metric_{i}")))
                    .expect("counter")
                    .increment();
            }
            // 400 distinct values: several datums, each a point of at most 150.
            let d = e.distribution(Metric::new("big")).expect("dist");
            for i in 0..400 {
                d.record(f64::from(i) * 10.0);
            }
            let batches = e.flush_at(0).expect("flush");
            let mut ids: Vec<&str> = batches.iter().map(Batch::id).collect();
            ids.sort();
            ids.dedup();
            assert_eq!(ids.len(), batches.len(), "ids are unique");
            let (mut counters, mut values, mut largest) = (0, 0, 0);
            for b in &batches {
                assert_eq!(b.format(), format);
                let encoded = b.encoded().expect("encoded");
                assert!(
                    encoded.len() <= limit || b.points() == 1,
                    "{} bytes",
                    encoded.len()
                );
                if b.points() > 1 {
                    largest = largest.max(encoded.len());
                }
                assert!(b.points() <= 10, "one datum per point, at most 10");
                for p in decode(b).points {
                    match (&p.vs, &p.cs) {
                        (Some(vs), cs) => {
                            assert!(vs.len() <= 150, "{} values in a point", vs.len());
                            values += cs
                                .as_ref()
                                .map_or(vs.len(), |c| c.iter().sum::<f64>() as usize);
                        }
                        (None, _) => counters += 1,
                    }
                }
            }
            assert_eq!((counters, values), (35, 400), "{format:?}");
            assert!(batches.len() >= 5, "{} batches", batches.len());
            // Filled close to the limit: sizes are measured, not guessed.
            assert!(
                largest > limit * 5 / 6,
                "{format:?}: largest batch {largest} bytes"
            );
        }
    }

    #[test]
    fn dimension_sets_record_into_each_series() {
        let e = emitter();
        let m = Metric::new("latency")
            .dimension("route", "/a")
            .dimension("method", "GET")
            .dimension_set(["route"])
            .dimension_set(Vec::<String>::new());
        let d = e.distribution(m).expect("dist");
        d.record(3.0);
        d.record(4.0);
        let mut got: Vec<(Dimensions, Option<Vec<f64>>)> = points(&e.flush_at(0).expect("flush"))
            .into_iter()
            .map(|(_, dims, p)| (dims, p.vs))
            .collect();
        got.sort_by(|a, b| a.0.cmp(&b.0));
        let s = |k: &str, v: &str| (k.to_string(), v.to_string());
        assert_eq!(
            got,
            [
                (vec![], Some(vec![3.0, 4.0])),
                (
                    vec![s("method", "GET"), s("route", "/a")],
                    Some(vec![3.0, 4.0])
                ),
                (vec![s("route", "/a")], Some(vec![3.0, 4.0])),
            ]
        );
    }

    #[test]
    fn the_cardinality_guard_counts_into_one_overflow_series() {
        let e = Emitter::new(Config::new("N").expect("ns").max_series(2));
        e.counter(Metric::new("a")).expect("a").increment();
        e.gauge(Metric::new("b")).expect("b").set(1.0);
        let c = e.counter(Metric::new("c")).expect("c is not refused");
        let d = e.distribution(Metric::new("d")).expect("d is not refused");
        c.add(5.0);
        d.record_many(1.0, 3);
        assert_eq!(e.telemetry().series_overflowed, 2);
        let all = points(&e.flush_at(0).expect("flush"));
        let overflow = all
            .iter()
            .find(|(n, _, _)| n == OVERFLOW_METRIC)
            .expect("overflow");
        assert_eq!(
            overflow.2.x,
            Some(4.0),
            "one per recording, three per record_many(3)"
        );
        assert!(!all.iter().any(|(n, _, _)| n == "c" || n == "d"));
    }

    #[test]
    fn explicit_timestamps_make_their_own_points() {
        let e = Emitter::new(Config::new("N").expect("ns").max_timestamped(2));
        let c = e.counter(Metric::new("c")).expect("c");
        let d = e.distribution(Metric::new("d")).expect("d");
        c.increment();
        c.add_at(2.0, 500).expect("room");
        c.add_at(3.0, 500).expect("same point");
        d.record_at(7.0, 900).expect("room");
        assert_eq!(
            d.record_at(8.0, 901),
            Err(8.0),
            "full: the value comes back"
        );
        assert_eq!(e.telemetry().timestamped_refused, 1);
        let b = decode(&e.flush_at(1_000).expect("flush")[0]);
        assert_eq!(
            b.series.len(),
            2,
            "c's two points share one series definition"
        );
        let mut got: Vec<(i64, Option<f64>, Option<Vec<f64>>)> = b
            .points
            .iter()
            .map(|p| (b.t + p.t, p.x, p.vs.clone()))
            .collect();
        got.sort_by_key(|g| g.0);
        assert_eq!(
            got,
            [
                (500, Some(5.0), None),
                (900, None, Some(vec![7.0])),
                (1_000, Some(1.0), None)
            ]
        );
    }

    #[test]
    fn self_metrics_report_the_previous_interval() {
        let e = Emitter::new(Config::new("N").expect("ns").self_metrics(true));
        e.counter(Metric::new("c")).expect("c").increment();
        e.counter(Metric::new("c")).expect("c").add(f64::NAN);
        assert_eq!(
            points(&e.flush_at(0).expect("flush")).len(),
            2,
            "c and the invalid value"
        );
        let all = points(&e.flush_at(1).expect("flush"));
        let names: Vec<&str> = all.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(names, ["edgepush_points"]);
        assert_eq!(all[0].2.x, Some(2.0));
    }

    #[test]
    fn concurrent_recording_and_flushing_lose_nothing() {
        let e = emitter();
        let c = e.counter(Metric::new("c")).expect("c");
        let d = e.distribution(Metric::new("d")).expect("d");
        let g = e.gauge(Metric::new("g")).expect("g");
        let per_thread = 20_000u32;
        let mut counted = 0.0;
        let mut values = 0.0;
        let mut sets = 0.0;
        let mut collect = |batches: Vec<Batch>| {
            for (name, _, p) in points(&batches) {
                match name.as_str() {
                    "c" => counted += p.x.unwrap_or(0.0),
                    "d" => {
                        values += p.cs.map_or_else(
                            || p.vs.map_or(0.0, |v| v.len() as f64),
                            |c| c.iter().sum(),
                        ) + p.st.map_or(0.0, |s| s[0])
                    }
                    "g" => sets += p.st.map_or(1.0, |s| s[0]),
                    _ => {}
                }
            }
        };
        std::thread::scope(|s| {
            for t in 0..2 {
                let (c, d, g) = (c.clone(), d.clone(), g.clone());
                s.spawn(move || {
                    for i in 0..per_thread {
                        c.increment();
                        d.record(f64::from(i % 97 + t));
                        g.set(f64::from(i));
                    }
                });
            }
            for _ in 0..50 {
                collect(e.flush_at(0).expect("flush"));
            }
        });
        collect(e.flush_at(0).expect("flush"));
        let total = f64::from(2 * per_thread);
        assert_eq!((counted, values, sets), (total, total, total));
    }

    /// Sum of a counter's points and count of a distribution's values.
    fn totals(batches: &[Batch]) -> (f64, f64) {
        let (mut counted, mut values) = (0.0, 0.0);
        for (_, _, p) in points(batches) {
            counted += p.x.unwrap_or(0.0);
            values +=
                p.cs.map_or_else(|| p.vs.map_or(0.0, |v| v.len() as f64), |c| c.iter().sum())
                    + p.st.map_or(0.0, |s| s[0]);
        }
        (counted, values)
    }

    #[cfg(feature = "std")]
    #[test]
    fn recordings_staged_by_threads_that_are_gone_are_flushed() {
        let e = emitter();
        let c = e.counter(Metric::new("c")).expect("c");
        let d = e.distribution(Metric::new("d")).expect("d");
        // More threads than the emitter stages for, each recording less or
        // more than a buffer holds, all gone before the flush.
        let threads = staging::MAX_BUFFERS + 16;
        let per = |t: usize| t * 37 % (3 * staging::SLOTS);
        std::thread::scope(|s| {
            for t in 0..threads {
                let (c, d) = (&c, &d);
                s.spawn(move || {
                    for i in 0..per(t) {
                        c.increment();
                        d.record(i as f64);
                    }
                });
            }
        });
        let expected = (0..threads).map(per).sum::<usize>() as f64;
        assert_eq!(totals(&e.flush_at(0).expect("flush")), (expected, expected));
        // A thread lets go of its buffer in its exit hooks, which may run
        // after `scope` returns: a later flush drops what is left.
        let start = std::time::Instant::now();
        while e.shared.buffers.lock().len() > 1 && start.elapsed().as_secs() < 10 {
            std::thread::sleep(std::time::Duration::from_millis(1));
            assert_eq!(totals(&e.flush_at(0).expect("flush")), (0.0, 0.0));
        }
        assert_eq!(
            e.shared.buffers.lock().len(),
            1,
            "the buffers of threads that are gone are let go; this thread's stays"
        );
    }

    #[test]
    fn a_thread_recording_into_many_emitters_loses_nothing() {
        // More emitters than a thread keeps buffers for, in turns.
        let emitters: Vec<Emitter> = (0..12).map(|_| emitter()).collect();
        let handles: Vec<(Counter, Distribution)> = emitters
            .iter()
            .map(|e| {
                (
                    e.counter(Metric::new("c")).expect("c"),
                    e.distribution(Metric::new("d")).expect("d"),
                )
            })
            .collect();
        for i in 0..1000 {
            for (c, d) in &handles {
                c.increment();
                d.record(f64::from(i % 10));
            }
        }
        for e in &emitters {
            assert_eq!(totals(&e.flush_at(0).expect("flush")), (1000.0, 1000.0));
        }
    }
}
