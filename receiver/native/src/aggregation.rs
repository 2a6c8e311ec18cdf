//! Merging pushes natively: the core's [`Aggregator`] behind a lock, and a
//! flusher that sends what it merged to the aggregated sinks through the
//! [`Forwarder`] (its retries and spools): every flush interval the periods
//! that are over, early when the aggregator is full, everything at
//! shutdown.
//!
//! A push is answered once its points are merged, so without a spool a
//! crash loses what is merged and not yet sent (at most a flush interval
//! and the period's length, see `docs/durability.md`); with one, every push
//! is in the aggregator's journal first ([`crate::journal`]) and a crash
//! loses nothing. A merged batch a sink does not take (down, throttling
//! past the retries) waits in memory, counted against
//! [`Settings::max_bytes`], and is tried again at every flush; with a
//! spool it waits there instead.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};

use crate::forward::Forwarder;
use crate::journal::{Journal, Syncer, Ticket, Took};
use crate::now_ms;
use edgepush_receiver::aggregate::{Aggregator, Settings};
use edgepush_receiver::error::Error;
use edgepush_receiver::model::{Batch, Value};

/// The native aggregator, for the sinks that merge.
#[derive(Debug)]
pub struct Aggregation {
    settings: Settings,
    /// Indices of the aggregated sinks.
    sinks: Vec<usize>,
    state: Mutex<State>,
    /// Wakes the flusher before its interval when the aggregator is full.
    full: Notify,
    /// Makes journal writes durable, outside the lock.
    syncer: Option<std::sync::Arc<Syncer>>,
}

#[derive(Debug, Default)]
struct State {
    aggregator: Aggregator,
    /// Merged batches a sink has not taken yet.
    waiting: Vec<Waiting>,
    /// The journal, with a spool directory.
    journal: Option<Journal>,
    /// Estimated bytes of the batches `waiting` holds.
    waiting_bytes: usize,
    /// Journal generations whose flush's batches are not all delivered.
    finishing: BTreeSet<u64>,
    /// Pushes merged since the last flush.
    pushes: u64,
    /// The last emission's time: each has a millisecond of its own.
    last_emitted_ms: i64,
}

/// A merged batch waiting for a sink.
#[derive(Debug)]
struct Waiting {
    /// The sink's index.
    index: usize,
    batch: Batch,
    /// The journal generation its flush took it from.
    generation: Option<u64>,
}

/// Why a flush runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reason {
    Interval,
    Full,
    Shutdown,
}

impl Reason {
    fn name(self) -> &'static str {
        match self {
            Reason::Interval => "interval",
            Reason::Full => "full",
            Reason::Shutdown => "shutdown",
        }
    }
}

/// A merged batch's bytes while it waits for a sink, estimated.
fn batch_bytes(batch: &Batch) -> usize {
    let values: usize = batch
        .points
        .iter()
        .map(|p| match &p.value {
            Value::Distribution { values, .. } => values.len() * 16,
            _ => 0,
        })
        .sum();
    batch.points.len() * 64 + batch.series.len() * 256 + values
}

impl Aggregation {
    /// An aggregator for the sinks at `sinks` (indices into the
    /// forwarder's sinks).
    pub fn new(settings: Settings, sinks: Vec<usize>) -> Self {
        Aggregation {
            settings,
            sinks,
            state: Mutex::new(State::default()),
            full: Notify::new(),
            syncer: None,
        }
    }

    /// With a journal in `dir` ([`crate::journal`], each generation at most
    /// `max_bytes`): what was merged before the receiver stopped is merged
    /// again, and what a flush took that not every sink had waits for
    /// them.
    pub fn with_journal(mut self, dir: &Path, max_bytes: u64) -> std::io::Result<Self> {
        let (journal, unfinished, live) = Journal::open(dir, max_bytes, &self.sinks, now_ms())?;
        let state = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        for batch in &live {
            state.aggregator.add(batch);
        }
        for u in unfinished {
            tracing::info!(
                generation = u.generation,
                batches = u.batches.len(),
                "aggregation: delivering what a flush took before the receiver stopped"
            );
            state.finishing.insert(u.generation);
            for (batch, sinks) in u.batches {
                for index in sinks {
                    state.waiting.push(Waiting {
                        index,
                        batch: batch.clone(),
                        generation: Some(u.generation),
                    });
                }
            }
        }
        state.waiting_bytes = state.waiting.iter().map(|w| batch_bytes(&w.batch)).sum();
        if !live.is_empty() {
            tracing::info!(
                pushes = live.len(),
                open = state.aggregator.open(),
                "aggregation: merged again what the journal held"
            );
        }
        self.syncer = Some(journal.syncer());
        state.journal = Some(journal);
        Ok(self)
    }

    /// Merged batches waiting for a sink that did not take them yet.
    pub fn waiting(&self) -> usize {
        self.state().waiting.len()
    }

    /// Whether sink `index` takes merged points.
    pub fn merges_for(&self, index: usize) -> bool {
        self.sinks.contains(&index)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves counts, never a torn batch:
        // go on with what is there.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Merges `batch`; refuses it with `503` while the aggregator holds
    /// [`Settings::max_bytes`] (and wakes the flusher to empty it). With a
    /// journal, the push is written to it first, and durable once
    /// [`Aggregation::durable`] of the ticket returned says so: answer
    /// only then.
    pub fn hold(&self, forwarder: &Forwarder, batch: &Batch) -> Result<Option<Ticket>, Error> {
        let now = now_ms();
        let encoded = self.syncer.is_some().then(|| Journal::encode(batch));
        let mut state = self.state();
        let held = state.aggregator.bytes() + state.waiting_bytes;
        if held >= self.settings.max_bytes {
            drop(state);
            self.full.notify_one();
            return Err(Error::new(
                503,
                "aggregator_full",
                format!(
                    "the aggregator holds its most ({} bytes) until its sinks take what it merged",
                    self.settings.max_bytes
                ),
            )
            .retry_after(1));
        }
        let late = self.settings.late(batch, now);
        let ticket = match state
            .journal
            .as_ref()
            .zip(encoded)
            .map(|(j, e)| j.write(&e))
        {
            Some(Err(e)) => {
                tracing::error!(error = %e, "JOURNAL CANNOT TAKE PUSH: answering 503, the emitter keeps it");
                return Err(Error::new(
                    503,
                    "journal_unavailable",
                    format!("the aggregator's journal cannot take the push: {e}"),
                )
                .retry_after(1));
            }
            Some(Ok(ticket)) => Some(ticket),
            None => None,
        };
        let added = state.aggregator.add(batch);
        state.pushes += 1;
        let (open, bytes) = (
            state.aggregator.open(),
            state.aggregator.bytes() + state.waiting_bytes,
        );
        drop(state);
        let telemetry = forwarder.telemetry();
        telemetry.aggregated(added.merged, late);
        telemetry.aggregator_holds(open, bytes);
        if bytes >= self.settings.max_bytes {
            self.full.notify_one();
        }
        Ok(ticket)
    }

    /// Returns once the push `ticket` stands for is on disk. The sync runs
    /// on a blocking thread, so pushes waiting together share one
    /// `fdatasync` (group commit) without holding the server's threads.
    pub async fn durable(&self, ticket: Ticket) -> Result<(), Error> {
        let Some(syncer) = self.syncer.clone() else {
            return Ok(());
        };
        let synced = tokio::task::spawn_blocking(move || syncer.sync(ticket))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        synced.map_err(|e| {
            tracing::error!(error = %e, "JOURNAL SYNC FAILED: the push is merged but may not be on disk; answering 503 (the emitter's retry may count it twice)");
            Error::new(
                503,
                "journal_unavailable",
                format!("the aggregator's journal cannot sync the push: {e}"),
            )
            .retry_after(1)
        })
    }

    /// Flushes every flush interval, and early when full, until `stop`
    /// turns true; then flushes everything open, and tries what waits for
    /// a sink for at most `drain` more.
    pub async fn run(
        &self,
        forwarder: Forwarder,
        mut stop: watch::Receiver<bool>,
        drain: Duration,
    ) {
        let interval = Duration::from_secs(self.settings.flush_interval_seconds);
        let mut next = tokio::time::Instant::now() + interval;
        loop {
            let reason = tokio::select! {
                () = tokio::time::sleep_until(next) => Reason::Interval,
                () = self.full.notified() => Reason::Full,
                _ = stop.wait_for(|stop| *stop) => break,
            };
            if reason == Reason::Interval {
                next += interval;
                // After a long stall, not a burst of catch-up flushes.
                next = next.max(tokio::time::Instant::now());
            }
            self.flush(&forwarder, reason).await;
        }
        let deadline = Instant::now() + drain;
        self.flush(&forwarder, Reason::Shutdown).await;
        loop {
            let waiting = self.state().waiting.len();
            if waiting == 0 {
                break;
            }
            if Instant::now() >= deadline {
                let points: usize = self
                    .state()
                    .waiting
                    .iter()
                    .map(|w| w.batch.points.len())
                    .sum();
                tracing::error!(
                    batches = waiting,
                    points,
                    "MERGED POINTS LOST AT SHUTDOWN: their sinks did not take them (set spool_dir to keep them across restarts)"
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            self.deliver_waiting(&forwarder).await;
        }
    }

    /// Takes what is over (everything, when full or at shutdown) and
    /// delivers it, with what waits from before.
    async fn flush(&self, forwarder: &Forwarder, reason: Reason) {
        let started = Instant::now();
        let (pushes, batches) = {
            let mut state = self.state();
            if reason == Reason::Full && state.aggregator.open() == 0 {
                // Full of batches waiting for a down sink: they are tried
                // at the interval, not at every refused push.
                return;
            }
            let emitted = now_ms().max(state.last_emitted_ms + 1);
            state.last_emitted_ms = emitted;
            let (batches, took) = match reason {
                Reason::Interval => (
                    state
                        .aggregator
                        .take(emitted, self.settings.closed(emitted)),
                    Took::Closed(self.settings.flush_interval_seconds),
                ),
                Reason::Full | Reason::Shutdown => (state.aggregator.take_all(emitted), Took::All),
            };
            let state = &mut *state;
            let mut generation = None;
            if let Some(journal) = &mut state.journal
                && !batches.is_empty()
            {
                // What stays open starts the next generation; the one
                // these batches come from goes once the sinks have them.
                let open = state.aggregator.snapshot(emitted);
                match journal.rotate(emitted, took, &open) {
                    Ok(taken_from) => {
                        state.finishing.insert(taken_from);
                        generation = Some(taken_from);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "aggregation: the journal cannot start a generation; flushing later");
                        for batch in &batches {
                            state.aggregator.add(batch);
                        }
                        return;
                    }
                }
            }
            for batch in &batches {
                for &index in &self.sinks {
                    state.waiting_bytes += batch_bytes(batch);
                    state.waiting.push(Waiting {
                        index,
                        batch: batch.clone(),
                        generation,
                    });
                }
            }
            (std::mem::take(&mut state.pushes), batches.len())
        };
        self.deliver_waiting(forwarder).await;
        let saved = pushes.saturating_sub(batches as u64) * self.sinks.len() as u64;
        forwarder
            .telemetry()
            .flushed(reason.name(), started.elapsed(), saved);
        if batches > 0 {
            tracing::debug!(reason = reason.name(), batches, pushes, took = ?started.elapsed(), "aggregation: flushed");
        }
    }

    /// Delivers every batch that waits for a sink; keeps those a sink did
    /// not take and may take later.
    async fn deliver_waiting(&self, forwarder: &Forwarder) {
        let waiting = std::mem::take(&mut self.state().waiting);
        let mut again = Vec::new();
        for w in waiting {
            let sink = forwarder.sinks()[w.index].name();
            match forwarder.forward_one(w.index, &w.batch, 0).await {
                Ok(delivery) => {
                    forwarder.telemetry().merged_batch(sink);
                    report_refusals(forwarder, w.index, &w.batch, &delivery.refusals);
                }
                Err(f) if f.retryable => {
                    // What the sink took stays taken.
                    let batch = w.batch.from_point(f.done).into_owned();
                    again.push(Waiting { batch, ..w });
                    continue;
                }
                Err(f) => {
                    let points = w.batch.points.len().saturating_sub(f.done);
                    tracing::error!(sink, batch = %w.batch.id, points, message = %f.message, "MERGED POINTS REFUSED: the sink refused a merged batch for good");
                    forwarder.telemetry().points_refused(
                        "merged",
                        "",
                        "refused_after_merge",
                        points as u64,
                    );
                }
            }
            // Taken (or refused for good): not sent again after a restart.
            if let Some(generation) = w.generation {
                let state = self.state();
                if let Some(journal) = &state.journal
                    && let Err(e) = journal.done(generation, w.index, &w.batch.id)
                {
                    tracing::warn!(error = %e, "aggregation: cannot mark a batch delivered in the journal (sent again after a restart)");
                }
            }
        }
        let mut state = self.state();
        // Batches taken while this ran wait behind those tried again.
        again.append(&mut state.waiting);
        state.waiting_bytes = again.iter().map(|w| batch_bytes(&w.batch)).sum();
        state.waiting = again;
        let state = &mut *state;
        let done: Vec<u64> = state
            .finishing
            .iter()
            .copied()
            .filter(|g| !state.waiting.iter().any(|w| w.generation == Some(*g)))
            .collect();
        for generation in done {
            let Some(journal) = &state.journal else {
                break;
            };
            match journal.finish(generation) {
                Ok(()) => {
                    state.finishing.remove(&generation);
                }
                Err(e) => {
                    tracing::warn!(error = %e, generation, "aggregation: cannot delete a delivered journal generation; trying at the next flush");
                }
            }
        }
        let (open, bytes) = (
            state.aggregator.open(),
            state.aggregator.bytes() + state.waiting_bytes,
        );
        forwarder.telemetry().aggregator_holds(open, bytes);
    }
}

/// Logs and counts the points a sink refused in a merged batch beyond what
/// it cannot store at all (those were named in the pushes' answers).
fn report_refusals(
    forwarder: &Forwarder,
    index: usize,
    batch: &Batch,
    refusals: &[edgepush_receiver::sink::SinkRefusal],
) {
    if refusals.is_empty() {
        return;
    }
    let unstorable = forwarder.sinks()[index].unstorable(batch);
    for (r, points) in edgepush_receiver::sink::beyond_unstorable(&unstorable, refusals) {
        tracing::error!(sink = %r.sink, batch = %batch.id, points, message = %r.message, "MERGED POINTS REFUSED: the sink refused points of a merged batch");
        forwarder
            .telemetry()
            .points_refused("merged", "", "refused_after_merge", points as u64);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use edgepush_protocol::wire::Kind;
    use edgepush_protocol::{Resolution, Unit};
    use edgepush_receiver::model::{Point, Series};

    use std::sync::Arc;

    use super::*;
    use crate::forward::tests::{influxdb, store};

    /// A batch of `series` counters (names `m0`, `m1`, ...), one point each,
    /// at `timestamp_ms`.
    pub(crate) fn counters(series: usize, timestamp_ms: i64) -> Batch {
        Batch {
            id: "b".into(),
            namespace: "N".into(),
            series: (0..series)
                .map(|i| Series {
                    name: format!("m{i}"),
                    kind: Kind::Counter,
                    unit: Unit::Count,
                    dimensions: vec![],
                    resolution: Resolution::Standard,
                })
                .collect(),
            points: (0..series)
                .map(|i| Point {
                    series: i,
                    timestamp_ms,
                    value: Value::Counter(1.0),
                })
                .collect(),
        }
    }

    fn forwarder(url: &str) -> Forwarder {
        Forwarder::new(vec![influxdb(url)]).retries(1, Duration::from_millis(1))
    }

    fn settings(max_bytes: usize) -> Settings {
        Settings {
            enabled: true,
            flush_interval_seconds: 3600,
            max_bytes,
        }
    }

    #[tokio::test]
    async fn a_full_aggregator_refuses_with_503_until_an_early_flush_empties_it() {
        let (url, writes) = store(vec![]).await;
        let forwarder = forwarder(&url);
        let aggregation = Arc::new(Aggregation::new(settings(1 << 20), vec![0]));
        // About 1.3 MB of series: taken (the bound is checked before a
        // push), and then full.
        aggregation
            .hold(&forwarder, &counters(5000, now_ms()))
            .expect("under the bound when it came");
        let full = aggregation
            .hold(&forwarder, &counters(1, now_ms()))
            .expect_err("full");
        assert_eq!((full.status, full.retry_after), (503, Some(1)), "{full:?}");
        assert!(full.message.contains("1048576 bytes"), "{}", full.message);
        // The flusher, woken early (the interval is an hour), empties it.
        let (stop, stopped) = watch::channel(false);
        let flusher = tokio::spawn({
            let (aggregation, forwarder) = (aggregation.clone(), forwarder.clone());
            async move { aggregation.run(forwarder, stopped, Duration::ZERO).await }
        });
        let mut waited = 0;
        while aggregation
            .hold(&forwarder, &counters(1, now_ms()))
            .is_err()
        {
            waited += 1;
            assert!(waited < 1000, "never emptied");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            *writes.lock().expect("lock"),
            1,
            "one write for 5,000 series"
        );
        stop.send_replace(true);
        flusher.await.expect("flusher");
        // At shutdown, the point held after the early flush went out too.
        assert_eq!(*writes.lock().expect("lock"), 2);
        assert_eq!(aggregation.state().aggregator.open(), 0);
    }

    #[tokio::test]
    async fn merged_batches_a_sink_does_not_take_wait_and_go_at_the_next_flush() {
        // Down for the first flush (one try, no retry).
        let (url, writes) = store(vec![503]).await;
        let forwarder = forwarder(&url);
        let aggregation = Aggregation::new(settings(1 << 30), vec![0]);
        // Over for longer than the flush interval: closed at the first flush.
        let old = now_ms() - 3 * 3_600_000;
        for _ in 0..3 {
            aggregation
                .hold(&forwarder, &counters(2, old))
                .expect("held");
        }
        aggregation.flush(&forwarder, Reason::Interval).await;
        assert_eq!(aggregation.waiting(), 1, "the merged batch waits");
        assert_eq!(aggregation.state().aggregator.open(), 0);
        assert!(aggregation.state().waiting_bytes > 0);
        aggregation.flush(&forwarder, Reason::Interval).await;
        assert_eq!(aggregation.waiting(), 0);
        assert_eq!(aggregation.state().waiting_bytes, 0);
        assert_eq!(*writes.lock().expect("lock"), 2);
    }

    #[tokio::test]
    async fn an_interval_flush_leaves_periods_still_open_and_counts_late_points() {
        let (url, writes) = store(vec![]).await;
        let forwarder = forwarder(&url);
        let aggregation = Aggregation::new(settings(1 << 30), vec![0]);
        aggregation
            .hold(&forwarder, &counters(1, now_ms()))
            .expect("held");
        aggregation.flush(&forwarder, Reason::Interval).await;
        assert_eq!(*writes.lock().expect("lock"), 0, "this minute is not over");
        assert_eq!(aggregation.state().aggregator.open(), 1);
        let late = now_ms() - 3 * 3_600_000;
        aggregation
            .hold(&forwarder, &counters(1, late))
            .expect("held");
        assert!(
            forwarder
                .telemetry()
                .encode()
                .contains("edgepush_aggregation_late_points_total 1"),
            "{}",
            forwarder.telemetry().encode()
        );
        aggregation.flush(&forwarder, Reason::Interval).await;
        assert_eq!(
            *writes.lock().expect("lock"),
            1,
            "the late point's period went out"
        );
        assert_eq!(aggregation.state().aggregator.open(), 1);
    }

    /// Two sinks on two stores; their write counters.
    async fn two_sinks() -> (Forwarder, [Arc<std::sync::Mutex<usize>>; 2]) {
        let (a, writes_a) = store(vec![]).await;
        let (b, writes_b) = store(vec![]).await;
        let forwarder =
            Forwarder::new(vec![influxdb(&a), influxdb(&b)]).retries(1, Duration::from_millis(1));
        (forwarder, [writes_a, writes_b])
    }

    fn writes(counters: &[Arc<std::sync::Mutex<usize>>; 2]) -> [usize; 2] {
        [0, 1].map(|i| *counters[i].lock().expect("lock"))
    }

    /// A push the journal cannot take (its generation full) is refused
    /// with 503 and not merged: the emitter keeps it, nothing is counted.
    #[tokio::test]
    async fn a_push_the_journal_cannot_take_is_refused_and_not_merged() {
        let dir = tempfile::tempdir().expect("dir");
        let (forwarder, _) = two_sinks().await;
        let aggregation = Aggregation::new(settings(1 << 30), vec![0, 1])
            .with_journal(dir.path(), 10)
            .expect("journal");
        let refused = aggregation
            .hold(&forwarder, &counters(1, now_ms()))
            .expect_err("the journal is full");
        assert_eq!(
            (refused.status, refused.error),
            (503, "journal_unavailable")
        );
        assert!(
            refused.message.contains("spool full (10 bytes)"),
            "{}",
            refused.message
        );
        assert_eq!(aggregation.state().aggregator.open(), 0);
    }

    /// A crash (the aggregation dropped without a flush) loses nothing the
    /// journal took: reopened, the same points are merged, and go out.
    #[tokio::test]
    async fn a_crash_before_a_flush_loses_nothing_the_journal_took() {
        let dir = tempfile::tempdir().expect("dir");
        let (forwarder, stores) = two_sinks().await;
        let now = now_ms();
        {
            let crashed = Aggregation::new(settings(1 << 30), vec![0, 1])
                .with_journal(dir.path(), 1 << 30)
                .expect("journal");
            for _ in 0..3 {
                crashed.hold(&forwarder, &counters(2, now)).expect("held");
            }
        }
        let again = Aggregation::new(settings(1 << 30), vec![0, 1])
            .with_journal(dir.path(), 1 << 30)
            .expect("journal");
        let open = again.state().aggregator.snapshot(now);
        assert_eq!(open[0].points.len(), 2);
        assert!(
            open[0]
                .points
                .iter()
                .all(|p| p.value.statistics().map(|s| s.count) == Some(3.0))
        );
        again.flush(&forwarder, Reason::Shutdown).await;
        assert_eq!(writes(&stores), [1, 1]);
        assert_eq!(again.waiting(), 0);
        // Delivered: the generation it came from is gone, nothing is merged
        // again at the next start.
        let later = Aggregation::new(settings(1 << 30), vec![0, 1])
            .with_journal(dir.path(), 1 << 30)
            .expect("journal");
        assert_eq!(later.state().aggregator.open(), 0);
        assert_eq!(later.waiting(), 0);
    }

    /// A crash after a flush took periods, when one sink had them and the
    /// other not: at the next start the same batch (same id) goes to the
    /// other sink only, and what stayed open is merged again.
    #[tokio::test]
    async fn a_crash_mid_flush_sends_the_rest_to_the_sinks_that_lacked_it() {
        let dir = tempfile::tempdir().expect("dir");
        let (forwarder, stores) = two_sinks().await;
        let old = now_ms() - 3 * 3_600_000;
        let now = now_ms();
        let taken_id;
        {
            let crashed = Aggregation::new(settings(1 << 30), vec![0, 1])
                .with_journal(dir.path(), 1 << 30)
                .expect("journal");
            crashed.hold(&forwarder, &counters(1, old)).expect("held");
            crashed.hold(&forwarder, &counters(1, now)).expect("held");
            // The flush, up to its first delivery: the old period is taken,
            // the new one stays open in the next generation.
            let mut state = crashed.state();
            let emitted = now_ms();
            let taken = state
                .aggregator
                .take(emitted, settings(1 << 30).closed(emitted));
            assert_eq!(taken.len(), 1);
            let open = state.aggregator.snapshot(emitted);
            let journal = state.journal.as_mut().expect("journal");
            let generation = journal
                .rotate(emitted, Took::Closed(3600), &open)
                .expect("rotate");
            journal.done(generation, 0, &taken[0].id).expect("done");
            taken_id = taken[0].id.clone();
        }
        let again = Aggregation::new(settings(1 << 30), vec![0, 1])
            .with_journal(dir.path(), 1 << 30)
            .expect("journal");
        {
            let state = again.state();
            let waiting: Vec<(usize, &str)> = state
                .waiting
                .iter()
                .map(|w| (w.index, w.batch.id.as_str()))
                .collect();
            assert_eq!(waiting, [(1, taken_id.as_str())]);
            assert_eq!(
                state.aggregator.open(),
                1,
                "the current minute, merged again"
            );
        }
        again.flush(&forwarder, Reason::Interval).await;
        assert_eq!(writes(&stores), [0, 1]);
        again.flush(&forwarder, Reason::Shutdown).await;
        assert_eq!(writes(&stores), [1, 2]);
        let later = Aggregation::new(settings(1 << 30), vec![0, 1])
            .with_journal(dir.path(), 1 << 30)
            .expect("journal");
        assert_eq!(later.waiting(), 0);
        assert_eq!(later.state().aggregator.open(), 0);
    }
}
