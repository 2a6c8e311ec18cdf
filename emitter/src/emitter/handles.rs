//! The recording handles: [`Counter`], [`Gauge`], [`Distribution`] and
//! [`Statistics`], over the handle they share.

use alloc::sync::Arc;
use core::sync::atomic::Ordering::Relaxed;

use super::Shared;
use super::series::{Cell, State};
use crate::encode::Taken;
#[cfg(feature = "std")]
use crate::staging;
use edgepush_protocol::validate;

/// The handle all metric kinds share: the series a recording goes to, and
/// the emitter they belong to.
#[derive(Clone, Debug)]
pub(super) struct Handle {
    pub(super) target: Target,
    pub(super) shared: Arc<Shared>,
}

/// The series one recording goes to (every dimension set's), shared by a
/// handle and by the per-call index ([`super::per_call`]).
#[derive(Clone, Debug)]
pub(super) struct Target {
    pub(super) cells: Arc<[Arc<Cell>]>,
    /// The id of the one series when recordings into it are staged (a
    /// counter or distribution without extra dimension sets); [`UNSTAGED`]
    /// otherwise.
    pub(super) staged: usize,
}

/// [`Target::staged`] of a target whose recordings go to each cell.
pub(super) const UNSTAGED: usize = usize::MAX;

impl Target {
    /// Stages `v` on the calling thread's buffer; false if it must be
    /// recorded directly.
    #[inline]
    fn stage(&self, shared: &Shared, v: f64) -> bool {
        #[cfg(feature = "std")]
        {
            self.staged != UNSTAGED
                && staging::stage(
                    shared.id,
                    self.staged,
                    v,
                    || shared.attach(),
                    |buffer| shared.apply_own(buffer),
                )
        }
        #[cfg(not(feature = "std"))]
        {
            let _ = (shared, v, self.staged);
            false
        }
    }

    /// Adds `v` to a counter.
    #[inline]
    pub(super) fn add(&self, shared: &Shared, v: f64) {
        if !valid(shared, v) || self.stage(shared, v) {
            return;
        }
        for cell in self.cells.iter() {
            match &cell.state {
                State::Counter(sum) => sum.add(v),
                State::Overflow(sum) => sum.add(1.0),
                _ => continue,
            }
            shared.touched.mark(cell);
        }
    }

    /// Sets a gauge.
    #[inline]
    pub(super) fn set(&self, shared: &Shared, v: f64) {
        if !valid(shared, v) {
            return;
        }
        let v = v + 0.0;
        for cell in self.cells.iter() {
            match &cell.state {
                State::Gauge(g) => g.write(|b| b.set(v)),
                State::Overflow(sum) => sum.add(1.0),
                _ => continue,
            }
            shared.touched.mark(cell);
        }
    }

    /// Records `count` occurrences of `v` into a distribution.
    #[inline]
    pub(super) fn record(&self, shared: &Shared, v: f64, count: u32) {
        if count == 0 {
            shared.telemetry.invalid_values.fetch_add(1, Relaxed);
            return;
        }
        if !valid(shared, v) || (count == 1 && self.stage(shared, v)) {
            return;
        }
        for cell in self.cells.iter() {
            match &cell.state {
                State::Distribution(d) => d.write(|t| t.record(v, count)),
                State::Overflow(sum) => sum.add(f64::from(count)),
                _ => continue,
            }
            shared.touched.mark(cell);
        }
    }

    /// Merges a statistic set.
    #[inline]
    pub(super) fn merge(&self, shared: &Shared, count: f64, sum: f64, min: f64, max: f64) {
        if !valid_set(count, sum, min, max) {
            shared.telemetry.invalid_values.fetch_add(1, Relaxed);
            return;
        }
        for cell in self.cells.iter() {
            match &cell.state {
                State::Statistics(s) => s.write(|b| b.record(count, sum, min, max)),
                State::Overflow(total) => total.add(1.0),
                _ => continue,
            }
            shared.touched.mark(cell);
        }
    }
}

/// Whether `v` can be recorded; counts it in the telemetry if not.
#[inline]
fn valid(shared: &Shared, v: f64) -> bool {
    if validate::value(v).is_ok() {
        true
    } else {
        shared.telemetry.invalid_values.fetch_add(1, Relaxed);
        false
    }
}

impl Handle {
    /// Buffers an explicitly timestamped value, merged with others of the
    /// same series and millisecond; hands `v` back when the buffer is full.
    fn at(&self, ts_ms: i64, v: f64, merge: impl Fn(&mut Taken)) -> Result<(), f64> {
        let mut buffer = self.shared.timestamped.lock();
        let cells = &self.target.cells;
        let new = cells
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
        for cell in cells.iter() {
            let entry = buffer
                .entry((cell.id, ts_ms))
                .or_insert_with(|| Taken::empty(cell.kind));
            match cell.state {
                // The cardinality guard's counter: one per recording.
                State::Overflow(_) => entry.add(1.0),
                _ => merge(entry),
            }
        }
        Ok(())
    }

    #[inline]
    fn valid(&self, v: f64) -> bool {
        valid(&self.shared, v)
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
        pub struct $name(pub(super) Handle);
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
    /// When the table
    /// ([`Config::distribution_slots`](crate::Config::distribution_slots))
    /// is full, further values are summarised as a statistic set of the same
    /// series. Counts
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
    /// in [`TelemetrySnapshot::invalid_values`][invalid].
    ///
    /// [invalid]: crate::TelemetrySnapshot::invalid_values
    #[inline]
    pub fn add(&self, v: f64) {
        self.0.target.add(&self.0.shared, v);
    }

    /// Adds one.
    #[inline]
    pub fn increment(&self) {
        self.add(1.0);
    }

    /// Adds `v` at an explicit time (milliseconds since the Unix epoch), kept
    /// apart from the interval's sum. Hands `v` back if the buffer of
    /// timestamped points
    /// ([`Config::max_timestamped`](crate::Config::max_timestamped)) is full.
    pub fn add_at(&self, v: f64, ts_ms: i64) -> Result<(), f64> {
        if !self.0.valid(v) {
            return Ok(());
        }
        self.0.at(ts_ms, v, |t| t.add(v))
    }
}

impl Gauge {
    /// Sets the value. Non-finite or out-of-range values are refused and
    /// counted in [`TelemetrySnapshot::invalid_values`][invalid].
    ///
    /// [invalid]: crate::TelemetrySnapshot::invalid_values
    #[inline]
    pub fn set(&self, v: f64) {
        self.0.target.set(&self.0.shared, v);
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
        self.0.target.record(&self.0.shared, v, count);
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
        self.0.target.merge(&self.0.shared, count, sum, min, max);
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
