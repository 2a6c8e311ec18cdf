//! Merging at the edge: one Durable Object per namespace and shard
//! (`MergeShard`, bound as `EDGEPUSH_SHARDS`) holds the points pushed for
//! its series, merged per series and period by the receiver's core
//! (`edgepush_receiver::aggregate`), and sends each period out once it is
//! over, from its alarm.
//!
//! What it keeps in its SQLite storage:
//! - `held`: every push it took, as [`packed`] parts, written
//!   before the push is answered; after a flush, the open state instead
//!   ([`Aggregator::snapshot`]). An object that starts (after eviction or a
//!   restart) merges them again.
//! - `seen`: the pushes it took, by tenant, namespace, batch id and part,
//!   for the dedupe window: a push retried after a lost answer is not
//!   merged twice.
//! - `outbox`: the merged batches of a flush, one envelope per sink
//!   ([`envelope::encode`]), written in the same transaction that replaces
//!   `held` with the open state, and deleted once the sink (or the queue)
//!   has them. A sink that fails is tried again at the next alarm.
//! - `meta`: its name, and when it last emitted (each emission has a
//!   millisecond of its own, see `aggregate`).
//!
//! Writes made without an `await` between them commit together, and the
//! runtime sends no answer before they are on disk: a push answered 202
//! is stored.

use std::cell::RefCell;
use std::time::{Duration, UNIX_EPOCH};

use edgepush_receiver::aggregate::{self, Aggregator};
use edgepush_receiver::envelope;
use edgepush_receiver::error::Error;
use edgepush_receiver::limits::Limits;
use edgepush_receiver::model::Batch;
use edgepush_receiver::packed;
use edgepush_receiver::sink::{Encoder, Retry, SinkTag, deliver};
use worker::{
    DurableObject, Env, QueueContentType, RawMessageBuilder, Request, Response, Result,
    ScheduledTime, SqlStorage, SqlStorageValue, State, durable_object, js_sys,
};

use crate::fetch::FetchClient;
use crate::{QUEUE_BINDING, Settings, settings};

/// The Durable Object namespace binding of the aggregators.
pub(crate) const BINDING: &str = "EDGEPUSH_SHARDS";
/// The header naming the object, form-urlencoded (the runtime does not
/// tell an object woken by its alarm its name).
pub(crate) const SHARD_HEADER: &str = "x-edgepush-shard";
/// The header carrying a push part's dedupe key (tenant, batch id and
/// part, each form-urlencoded).
pub(crate) const KEY_HEADER: &str = "x-edgepush-key";
/// The longest wait before a failed sink is tried again.
const MAX_RETRY_MS: i64 = 300_000;

/// One aggregator: a namespace's series, or the share of them that hash
/// to its shard.
#[durable_object]
pub struct MergeShard {
    state: State,
    env: Env,
    held: RefCell<Option<Held>>,
}

/// What an object keeps in memory between events.
#[derive(Default)]
struct Held {
    merger: Aggregator,
    /// The alarm as set by this object (`None`: none, or not known yet).
    alarm_ms: Option<i64>,
    /// Pushes taken since the last flush.
    pushes: u64,
    /// Their points.
    points: u64,
    /// Points that came after their period had gone out.
    late: u64,
}

impl DurableObject for MergeShard {
    fn new(state: State, env: Env) -> Self {
        MergeShard {
            state,
            env,
            held: RefCell::new(None),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        match self.hold(req).await {
            Ok(body) => Response::ok(body),
            Err(e) => crate::error(&e),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        // Failures are logged and retried on a later alarm: an error here
        // would make the runtime retry on its own schedule.
        if let Err(e) = self.flush().await {
            worker::console_error!("edgepush: aggregator {}: {}", self.name(), e.message);
            let retry = crate::now_ms() + MAX_RETRY_MS / 10;
            self.set_alarm(retry).await;
        }
        Response::ok("")
    }
}

fn storage_error(e: impl std::fmt::Display) -> Error {
    Error::new(503, "aggregator_unavailable", format!("storage: {e}"))
}

impl MergeShard {
    fn sql(&self) -> SqlStorage {
        self.state.storage().sql()
    }

    /// Its name, as the first push stored it.
    fn name(&self) -> String {
        self.sql()
            .exec("SELECT value FROM meta WHERE key = 'shard'", None)
            .ok()
            .and_then(|c| c.raw().next())
            .and_then(|row| match row.ok()?.into_iter().next() {
                Some(SqlStorageValue::String(s)) => Some(s),
                _ => None,
            })
            .unwrap_or_default()
    }

    /// Its index among its namespace's aggregators (`<namespace>#<index>`).
    fn index(&self) -> u32 {
        let name = self.name();
        name.rsplit_once('#')
            .and_then(|(_, n)| n.parse().ok())
            .unwrap_or(0)
    }

    /// Creates the tables and merges what `held` keeps, once per object.
    fn load(&self) -> std::result::Result<(), Error> {
        if self.held.borrow().is_some() {
            return Ok(());
        }
        let sql = self.sql();
        for statement in [
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value)",
            "CREATE TABLE IF NOT EXISTS held (seq INTEGER PRIMARY KEY AUTOINCREMENT, part BLOB NOT NULL)",
            "CREATE TABLE IF NOT EXISTS seen (key TEXT PRIMARY KEY, until_ms INTEGER NOT NULL)",
            "CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, message BLOB NOT NULL, tries INTEGER NOT NULL DEFAULT 0)",
        ] {
            sql.exec(statement, None).map_err(storage_error)?;
        }
        let mut held = Held::default();
        for row in sql
            .exec("SELECT part FROM held ORDER BY seq", None)
            .map_err(storage_error)?
            .raw()
        {
            let Some(SqlStorageValue::Blob(part)) = row.map_err(storage_error)?.pop() else {
                continue;
            };
            match packed::decode(&part) {
                Ok(batch) => {
                    held.merger.add(&batch);
                }
                // Only a damaged record fails here.
                Err(e) => worker::console_error!(
                    "edgepush: MERGED POINTS LOST: aggregator {} cannot read back a held push: {}",
                    self.name(),
                    e.message
                ),
            }
        }
        *self.held.borrow_mut() = Some(held);
        Ok(())
    }

    /// Takes one part of a push: `POST` from the push handler, with the
    /// object's name and the part's dedupe key in headers.
    async fn hold(&self, mut req: Request) -> std::result::Result<String, Error> {
        let now_ms = crate::now_ms();
        let config = settings(&self.env).map_err(|m| Error::new(500, "misconfigured", m))?;
        self.load()?;
        let header = |name| req.headers().get(name).ok().flatten().unwrap_or_default();
        let (shard, key) = (header(SHARD_HEADER), header(KEY_HEADER));
        let shard: String = form_urlencoded::parse(format!("s={shard}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        let part = req
            .bytes()
            .await
            .map_err(|e| Error::new(400, "unreadable_body", e.to_string()))?;
        let sql = self.sql();
        let seen = sql
            .exec("SELECT 1 FROM seen WHERE key = ?", vec![key.clone().into()])
            .map_err(storage_error)?
            .raw()
            .next()
            .is_some();
        if seen {
            return Ok(r#"{"duplicate":true}"#.into());
        }
        let aggregation = &config.aggregation;
        if self.with(|h| h.merger.bytes()) >= aggregation.max_bytes {
            // Full: everything open goes out now.
            self.set_alarm(now_ms).await;
            let mut e = Error::new(
                503,
                "aggregator_full",
                format!(
                    "the aggregator of {shard} holds {} bytes, its bound; it is flushing",
                    aggregation.max_bytes
                ),
            );
            e.retry_after = Some(aggregation.flush_interval_seconds.max(1));
            return Err(e);
        }
        let batch = packed::decode(&part)?;
        let until_ms = now_ms + i64::from(config.dedupe_seconds.min(86_400) as u32) * 1000;
        // No await from here to the end of the writes: they commit together.
        sql.exec(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('shard', ?)",
            vec![shard.into()],
        )
        .map_err(storage_error)?;
        sql.exec("INSERT INTO held (part) VALUES (?)", vec![part.into()])
            .map_err(storage_error)?;
        sql.exec(
            "INSERT INTO seen (key, until_ms) VALUES (?, ?)",
            vec![key.into(), until_ms.into()],
        )
        .map_err(storage_error)?;
        let late = aggregation.late(&batch, now_ms);
        let (due, alarm) = self.with(|h| {
            h.merger.add(&batch);
            h.pushes += 1;
            h.points += batch.points.len() as u64;
            h.late += late as u64;
            let due = h
                .merger
                .earliest_end()
                .map(|end| end + aggregation.interval_ms());
            (due, h.alarm_ms)
        });
        if let Some(due) = due
            && alarm.is_none_or(|at| at > due)
        {
            self.set_alarm(due).await;
        }
        Ok(format!(
            r#"{{"held":{},"late":{late}}}"#,
            batch.points.len()
        ))
    }

    fn with<T>(&self, f: impl FnOnce(&mut Held) -> T) -> T {
        f(self.held.borrow_mut().get_or_insert_with(Held::default))
    }

    /// Sets the alarm at `at_ms` (at least a millisecond from now); a
    /// failure is logged: the next push or flush sets it again.
    async fn set_alarm(&self, at_ms: i64) {
        let at_ms = at_ms.max(crate::now_ms() + 1);
        let date = js_sys::Date::new(&js_sys::Number::from(at_ms as f64));
        match self
            .state
            .storage()
            .set_alarm(ScheduledTime::new(date))
            .await
        {
            Ok(()) => self.with(|h| h.alarm_ms = Some(at_ms)),
            Err(e) => worker::console_error!("edgepush: cannot set the aggregator's alarm: {e}"),
        }
    }

    /// The alarm: what is over goes to the outbox, the outbox to the sinks
    /// (or the queue), and the alarm is set for what is left.
    async fn flush(&self) -> std::result::Result<(), Error> {
        let started = crate::now_ms();
        let config = settings(&self.env).map_err(|m| Error::new(500, "misconfigured", m))?;
        self.load()?;
        self.with(|h| h.alarm_ms = None);
        let sql = self.sql();
        // Each emission has a millisecond of its own, and no other
        // aggregator's (aggregate::emission_ms).
        let last: i64 = sql
            .exec("SELECT value FROM meta WHERE key = 'emitted'", None)
            .map_err(storage_error)?
            .raw()
            .next()
            .and_then(|row| match row.ok()?.pop() {
                Some(SqlStorageValue::Integer(ms)) => Some(ms),
                _ => None,
            })
            .unwrap_or(0);
        let emitted_ms = aggregate::emission_ms(started, last, self.index());
        let aggregation = &config.aggregation;
        let (taken, snapshot, (pushes, points_in, late), open) = self.with(|h| {
            let full = h.merger.bytes() >= aggregation.max_bytes;
            let taken = if full {
                h.merger.take_all(emitted_ms)
            } else {
                h.merger.take(emitted_ms, aggregation.closed(started))
            };
            let snapshot = if taken.is_empty() {
                Vec::new()
            } else {
                h.merger.snapshot(emitted_ms)
            };
            let counts = (
                std::mem::take(&mut h.pushes),
                std::mem::take(&mut h.points),
                std::mem::take(&mut h.late),
            );
            (taken, snapshot, counts, h.merger.open())
        });
        let points: usize = taken.iter().map(|b| b.points.len()).sum();
        if !taken.is_empty() {
            // One transaction: the open state replaces what was held, and
            // what is over waits in the outbox.
            sql.exec("DELETE FROM held", None).map_err(storage_error)?;
            for part in snapshot
                .iter()
                .flat_map(|b| packed::split(b, packed::MAX_PART_BYTES))
            {
                sql.exec("INSERT INTO held (part) VALUES (?)", vec![part.into()])
                    .map_err(storage_error)?;
            }
            for (index, sink) in config.sinks.iter().enumerate() {
                if !config.aggregated[index] {
                    continue;
                }
                for message in taken.iter().flat_map(|b| envelope::encode(b, sink.tag())) {
                    sql.exec(
                        "INSERT INTO outbox (message) VALUES (?)",
                        vec![message.into()],
                    )
                    .map_err(storage_error)?;
                }
            }
            sql.exec(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('emitted', ?)",
                vec![emitted_ms.into()],
            )
            .map_err(storage_error)?;
        }
        sql.exec("DELETE FROM seen WHERE until_ms < ?", vec![started.into()])
            .map_err(storage_error)?;
        let (requests, waiting, tries) = self.send_outbox(&config).await?;
        // Telemetry: one line per flush, in the Worker's logs.
        let sinks = config.aggregated.iter().filter(|a| **a).count() as u64;
        worker::console_log!(
            r#"{{"edgepush":"aggregation","shard":{:?},"pushes":{pushes},"points_in":{points_in},"points_out":{points},"series_open":{open},"late_points":{late},"sink_requests":{requests},"sink_requests_saved":{},"waiting":{waiting},"flush_ms":{}}}"#,
            self.name(),
            (pushes * sinks).saturating_sub(requests),
            crate::now_ms() - started
        );
        let next = self.with(|h| {
            h.merger
                .earliest_end()
                .map(|e| e + aggregation.interval_ms())
        });
        let retry = (waiting > 0).then(|| {
            let backoff = aggregation.interval_ms().max(1000) << tries.min(8);
            crate::now_ms() + backoff.min(MAX_RETRY_MS)
        });
        if let Some(at) = [next, retry].into_iter().flatten().min() {
            self.set_alarm(at).await;
        }
        Ok(())
    }

    /// Sends every outbox message on: to the queue when one is bound, else
    /// to its sink. Returns the requests made, the messages still waiting
    /// and the most tries of one of them.
    async fn send_outbox(&self, config: &Settings) -> std::result::Result<(u64, u64, u32), Error> {
        let sql = self.sql();
        let rows: Vec<Vec<SqlStorageValue>> = sql
            .exec("SELECT seq, message, tries FROM outbox ORDER BY seq", None)
            .map_err(storage_error)?
            .raw()
            .collect::<Result<_>>()
            .map_err(storage_error)?;
        let queue = self.env.queue(QUEUE_BINDING).ok();
        let (mut requests, mut waiting, mut most_tries) = (0, 0, 0);
        for row in rows {
            let [
                SqlStorageValue::Integer(seq),
                SqlStorageValue::Blob(message),
                SqlStorageValue::Integer(tries),
            ] = row.as_slice()
            else {
                continue;
            };
            let outcome = match &queue {
                Some(queue) => {
                    let raw =
                        RawMessageBuilder::new(js_sys::Uint8Array::from(message.as_slice()).into())
                            .build_with_content_type(QueueContentType::V8);
                    queue.send_raw(raw).await.map_err(|e| e.to_string())
                }
                None => self.deliver(config, *seq, message).await,
            };
            requests += 1;
            match outcome {
                Ok(()) => {
                    sql.exec("DELETE FROM outbox WHERE seq = ?", vec![(*seq).into()])
                        .map_err(storage_error)?;
                }
                Err(reason) => {
                    worker::console_warn!(
                        "edgepush: aggregator {}: a merged batch waits: {reason}",
                        self.name()
                    );
                    sql.exec(
                        "UPDATE outbox SET tries = tries + 1 WHERE seq = ?",
                        vec![(*seq).into()],
                    )
                    .map_err(storage_error)?;
                    waiting += 1;
                    most_tries = most_tries.max(u32::try_from(*tries + 1).unwrap_or(u32::MAX));
                }
            }
        }
        Ok((requests, waiting, most_tries))
    }

    /// Delivers outbox message `seq` to its sink. When the sink took part
    /// of it, the rest replaces it in the outbox (and it still waits); what
    /// the sink refused for good is logged, but for what it can never store
    /// (the pushes' answers named that).
    async fn deliver(
        &self,
        config: &Settings,
        seq: i64,
        message: &[u8],
    ) -> std::result::Result<(), String> {
        let now_ms = crate::now_ms();
        let (tag, batch) =
            envelope::decode(message, now_ms, &Limits::stored()).map_err(|e| e.message)?;
        let Some(sink) = config.sinks.iter().find(|s| s.tag() == tag) else {
            return Err(format!("no {tag:?} sink is configured"));
        };
        let now = UNIX_EPOCH + Duration::from_millis(now_ms as u64);
        match deliver(&FetchClient, sink, &batch, now, Retry::default()).await {
            Ok(refusals) => {
                report_refusals(sink, &batch, &refusals);
                Ok(())
            }
            Err(f) if f.retryable && f.done > 0 => {
                let sql = self.sql();
                requeue_rest(&sql, &batch.from_point(f.done), tag)?;
                sql.exec("DELETE FROM outbox WHERE seq = ?", vec![seq.into()])
                    .map_err(|e| e.to_string())?;
                Err(format!(
                    "{} took {} points, then: {}; the rest waits",
                    f.sink, f.done, f.message
                ))
            }
            Err(f) if f.retryable => Err(format!("{}: {}", f.sink, f.message)),
            Err(f) => {
                worker::console_error!(
                    "edgepush: MERGED POINTS REFUSED: {} refused merged batch {} ({} points): {}",
                    f.sink,
                    batch.id,
                    batch.points.len(),
                    f.message
                );
                Ok(())
            }
        }
    }
}

/// Keeps the rest of a batch a sink took part of, as new outbox messages.
fn requeue_rest(sql: &SqlStorage, rest: &Batch, tag: SinkTag) -> std::result::Result<(), String> {
    for message in envelope::encode(rest, tag) {
        sql.exec(
            "INSERT INTO outbox (message) VALUES (?)",
            vec![message.into()],
        )
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Logs the points of a merged batch a sink refused, but for those it can
/// never store (the pushes' answers named them).
pub(crate) fn report_refusals(
    sink: &edgepush_receiver::sink::Sink,
    batch: &Batch,
    refusals: &[edgepush_receiver::sink::SinkRefusal],
) {
    let named: std::collections::HashSet<usize> = sink
        .unstorable(batch)
        .into_iter()
        .flat_map(|r| r.points)
        .collect();
    for r in refusals {
        let points = r.points.iter().filter(|p| !named.contains(p)).count();
        if points > 0 {
            worker::console_error!(
                "edgepush: MERGED POINTS REFUSED: {} refused {points} points of merged batch {}: {}",
                r.sink,
                batch.id,
                r.message
            );
        }
    }
}
