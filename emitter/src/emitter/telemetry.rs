//! What the emitter counts about itself: [`TelemetrySnapshot`], and the
//! self-metrics ([`Config::self_metrics`](crate::Config::self_metrics))
//! that push it.

use alloc::sync::Arc;
use core::sync::atomic::Ordering::Relaxed;

use portable_atomic::AtomicU64;

use super::Emitter;
use super::registry::Registry;
use super::series::{Cell, State};
use crate::config::Metric;
use edgepush_protocol::Unit;
use edgepush_protocol::wire::Kind;

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

/// The self-metric counters.
#[derive(Debug)]
pub(super) struct SelfMetrics {
    points: Arc<Cell>,
    batches: Arc<Cell>,
    failed: Arc<Cell>,
    retried: Arc<Cell>,
    invalid: Arc<Cell>,
    overflowed: Arc<Cell>,
}

impl Emitter {
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

    #[cfg(feature = "metrics")]
    pub(crate) fn shared_telemetry(&self) -> &Telemetry {
        &self.shared.telemetry
    }

    /// Records what a transport did with batches.
    #[cfg(feature = "std")]
    pub(super) fn count_sent(&self, sent: u64, retried: u64, failed: u64) {
        let t = &self.shared.telemetry;
        t.batches_sent.fetch_add(sent, Relaxed);
        t.batches_retried.fetch_add(retried, Relaxed);
        t.batches_failed.fetch_add(failed, Relaxed);
    }

    /// Registers the self-metric counters
    /// ([`Config::self_metrics`](crate::Config::self_metrics)).
    pub(super) fn register_self_metrics(&self) {
        let cell = |name: &str| {
            let metric = Metric::new(name).unit(Unit::Count);
            let handle = self.register(metric, Kind::Counter).ok()?;
            handle.target.cells.first().cloned()
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
        self.shared.registry.lock().self_metrics = metrics;
    }

    /// Adds the telemetry since the last report to the self-metric counters.
    pub(super) fn report_self_metrics(&self, registry: &mut Registry) {
        let Some(m) = &registry.self_metrics else {
            return;
        };
        let now = self.telemetry();
        let before = registry.reported;
        let add = |cell: &Cell, delta: u64| {
            if let (State::Counter(sum), true) = (&cell.state, delta > 0) {
                sum.add(delta as f64);
                self.shared.touched.mark_held(cell);
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
