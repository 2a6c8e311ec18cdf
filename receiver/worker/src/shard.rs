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
//! - `meta`: its name, the sinks what it holds is for (every sink that
//!   aggregated when a push came), and when it last emitted (each emission
//!   has a millisecond of its own, see `aggregate::emission_ms`).
//!
//! A push's writes, and a flush's, are one transaction each
//! (`transactionSync`): all or nothing. The runtime sends no answer before
//! they are on disk, so a push answered 202 is stored. A flush first sets
//! a watchdog alarm, so an alarm handler that does not finish is run
//! again; an object started after a restart finds its alarm, or sets one,
//! at its next push.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use edgepush_receiver::aggregate::{self, Aggregator};
use edgepush_receiver::envelope;
use edgepush_receiver::error::Error;
use edgepush_receiver::limits::Limits;
use edgepush_receiver::model::Batch;
use edgepush_receiver::packed;
use edgepush_receiver::sink::{Encoder, Retry, SinkTag, deliver};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
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
    /// The sinks what it holds goes to, a bit per sink tag: every sink
    /// that aggregated when one of its pushes came (kept in `meta`, so a
    /// sink switched off or removed meanwhile still gets what it was
    /// promised).
    sinks: u8,
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
            self.set_alarm(crate::now_ms() + MAX_RETRY_MS / 10).await;
        }
        Response::ok("")
    }
}

fn storage_error(e: impl std::fmt::Display) -> Error {
    let mut e = Error::new(503, "aggregator_unavailable", format!("storage: {e}"));
    e.retry_after = Some(1);
    e
}

/// Every sink tag, for the bits of a set of sinks.
const TAGS: [SinkTag; 2] = [SinkTag::CloudWatch, SinkTag::Influxdb];

/// The bit of `tag` in a set of sinks.
fn bit(tag: SinkTag) -> u8 {
    1 << (tag as u8 & 7)
}

/// The sinks that aggregate now, as bits.
fn aggregated_sinks(config: &Settings) -> u8 {
    config
        .sinks
        .iter()
        .zip(&config.aggregated)
        .filter(|(_, on)| **on)
        .fold(0, |bits, (sink, _)| bits | bit(sink.tag()))
}

/// SQL statements and their values, run in one transaction.
type Writes = Vec<(&'static str, Vec<SqlStorageValue>)>;

impl MergeShard {
    fn sql(&self) -> SqlStorage {
        self.state.storage().sql()
    }

    /// A value of `meta`.
    fn meta(&self, key: &str) -> Option<SqlStorageValue> {
        self.sql()
            .exec("SELECT value FROM meta WHERE key = ?", vec![key.into()])
            .ok()
            .and_then(|c| c.raw().next())
            .and_then(|row| row.ok()?.into_iter().next())
    }

    /// Its name, as the first push stored it.
    fn name(&self) -> String {
        match self.meta("shard") {
            Some(SqlStorageValue::String(s)) => s,
            _ => String::new(),
        }
    }

    /// Its index among its namespace's aggregators (`<namespace>#<index>`).
    fn index(&self) -> u32 {
        let name = self.name();
        name.rsplit_once('#')
            .and_then(|(_, n)| n.parse().ok())
            .unwrap_or(0)
    }

    /// Runs `writes` in one SQLite transaction (the runtime's
    /// `transactionSync`): all of them, or, when one fails, none.
    fn atomically(&self, writes: Writes) -> std::result::Result<(), Error> {
        let storage = self.state.storage();
        let raw: &JsValue = storage.as_raw().as_ref();
        let sql = storage.sql();
        let failure: Rc<RefCell<Option<String>>> = Rc::default();
        let failed = Rc::clone(&failure);
        let body = Closure::once_into_js(move || -> std::result::Result<JsValue, JsValue> {
            for (statement, values) in writes {
                if let Err(e) = sql.exec(statement, values) {
                    let e = e.to_string();
                    let thrown = JsValue::from_str(&e);
                    *failed.borrow_mut() = Some(e);
                    return Err(thrown);
                }
            }
            Ok(JsValue::UNDEFINED)
        });
        let transaction = js_sys::Reflect::get(raw, &JsValue::from_str("transactionSync"))
            .ok()
            .and_then(|f| f.dyn_into::<js_sys::Function>().ok())
            .ok_or_else(|| storage_error("no transactionSync: SQLite storage is needed"))?;
        transaction.call1(raw, &body).map_err(|e| {
            let why = failure.borrow_mut().take();
            storage_error(why.unwrap_or_else(|| format!("{e:?}")))
        })?;
        Ok(())
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
        if let Some(SqlStorageValue::Integer(bits)) = self.meta("sinks") {
            held.sinks = bits as u8;
        }
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
        if key.is_empty() {
            return Err(Error::new(400, "no_key", format!("no {KEY_HEADER} header")));
        }
        let shard: String = form_urlencoded::parse(format!("s={shard}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        let part = req
            .bytes()
            .await
            .map_err(|e| Error::new(400, "unreadable_body", e.to_string()))?;
        let seen = self
            .sql()
            .exec("SELECT 1 FROM seen WHERE key = ?", vec![key.clone().into()])
            .map_err(storage_error)?
            .raw()
            .next()
            .is_some();
        let aggregation = &config.aggregation;
        if seen {
            // Taken before; its alarm may not have been set then.
            self.arm(aggregation.interval_ms()).await?;
            return Ok(r#"{"duplicate":true}"#.into());
        }
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
        let sinks = self.with(|h| h.sinks | aggregated_sinks(&config));
        // The push, its key and the sinks it goes to: together or not at all.
        self.atomically(vec![
            (
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('shard', ?)",
                vec![shard.into()],
            ),
            ("INSERT INTO held (part) VALUES (?)", vec![part.into()]),
            (
                "INSERT INTO seen (key, until_ms) VALUES (?, ?)",
                vec![key.into(), until_ms.into()],
            ),
            (
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('sinks', ?)",
                vec![i64::from(sinks).into()],
            ),
        ])?;
        let late = aggregation.late(&batch, now_ms);
        self.with(|h| {
            h.merger.add(&batch);
            h.sinks = sinks;
            h.pushes += 1;
            h.points += batch.points.len() as u64;
            h.late += late as u64;
        });
        // Stored: a failure to set the alarm now makes the push fail, and
        // its retry (a duplicate) sets it.
        self.arm(aggregation.interval_ms()).await?;
        Ok(format!(
            r#"{{"held":{},"late":{late}}}"#,
            batch.points.len()
        ))
    }

    fn with<T>(&self, f: impl FnOnce(&mut Held) -> T) -> T {
        f(self.held.borrow_mut().get_or_insert_with(Held::default))
    }

    /// Makes sure an alarm comes by the time the first open period is due
    /// (its end and `interval_ms`), or soon when merged batches wait.
    async fn arm(&self, interval_ms: i64) -> std::result::Result<(), Error> {
        let due = self.with(|h| h.merger.earliest_end().map(|end| end + interval_ms));
        let waiting = self
            .sql()
            .exec("SELECT 1 FROM outbox LIMIT 1", None)
            .map_err(storage_error)?
            .raw()
            .next()
            .is_some();
        let due = match (due, waiting) {
            (due, true) => Some(due.unwrap_or(i64::MAX).min(crate::now_ms() + MAX_RETRY_MS)),
            (due, false) => due,
        };
        let Some(due) = due else {
            return Ok(());
        };
        let known = match self.with(|h| h.alarm_ms) {
            Some(at) => Some(at),
            // After a restart: the alarm the runtime kept, if any.
            None => self
                .state
                .storage()
                .get_alarm()
                .await
                .map_err(storage_error)?,
        };
        if known.is_none_or(|at| at > due) {
            if !self.set_alarm(due).await {
                return Err(storage_error("cannot set the alarm"));
            }
        } else {
            self.with(|h| h.alarm_ms = known);
        }
        Ok(())
    }

    /// Sets the alarm at `at_ms` (at least a millisecond from now); whether
    /// it was set (a failure is logged).
    async fn set_alarm(&self, at_ms: i64) -> bool {
        let at_ms = at_ms.max(crate::now_ms() + 1);
        let date = js_sys::Date::new(&js_sys::Number::from(at_ms as f64));
        match self
            .state
            .storage()
            .set_alarm(ScheduledTime::new(date))
            .await
        {
            Ok(()) => {
                self.with(|h| h.alarm_ms = Some(at_ms));
                true
            }
            Err(e) => {
                worker::console_error!("edgepush: cannot set the aggregator's alarm: {e}");
                false
            }
        }
    }

    /// The alarm: what is over goes to the outbox, the outbox to the sinks
    /// (or the queue), and the alarm is set for what is left.
    async fn flush(&self) -> std::result::Result<(), Error> {
        let started = crate::now_ms();
        let config = settings(&self.env).map_err(|m| Error::new(500, "misconfigured", m))?;
        self.load()?;
        // A watchdog: should this handler not finish (a limit, an
        // eviction), the runtime wakes the object again.
        let watchdog = started + MAX_RETRY_MS;
        self.set_alarm(watchdog).await;
        // Each emission has a millisecond of its own, and no other
        // aggregator's (aggregate::emission_ms).
        let last = match self.meta("emitted") {
            Some(SqlStorageValue::Integer(ms)) => ms,
            _ => 0,
        };
        let emitted_ms = aggregate::emission_ms(started, last, self.index());
        let aggregation = &config.aggregation;
        let (taken, snapshot, (pushes, points_in, late), sinks) = self.with(|h| {
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
            (taken, snapshot, counts, h.sinks)
        });
        let points: usize = taken.iter().map(|b| b.points.len()).sum();
        if !taken.is_empty() {
            // Every sink promised these points, whatever the settings say now.
            let targets = sinks | aggregated_sinks(&config);
            let mut writes: Writes = vec![("DELETE FROM held", Vec::new())];
            for part in snapshot
                .iter()
                .flat_map(|b| packed::split(b, packed::MAX_PART_BYTES))
            {
                writes.push(("INSERT INTO held (part) VALUES (?)", vec![part.into()]));
            }
            for tag in TAGS.into_iter().filter(|t| targets & bit(*t) != 0) {
                for message in taken.iter().flat_map(|b| envelope::encode(b, tag)) {
                    writes.push((
                        "INSERT INTO outbox (message) VALUES (?)",
                        vec![message.into()],
                    ));
                }
            }
            writes.push((
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('emitted', ?)",
                vec![emitted_ms.into()],
            ));
            // One transaction: the open state replaces what was held, and
            // what is over waits in the outbox.
            let written = self.atomically(writes);
            if let Err(e) = written {
                // Nothing was written: what memory took is read back from
                // storage, whole.
                *self.held.borrow_mut() = None;
                return Err(e);
            }
        }
        if let Err(e) = self
            .sql()
            .exec("DELETE FROM seen WHERE until_ms < ?", vec![started.into()])
        {
            worker::console_warn!("edgepush: cannot prune the aggregator's dedupe keys: {e}");
        }
        let sent = self.send_outbox(&config).await?;
        // Telemetry: one line per flush, in the Worker's logs.
        let open = self.with(|h| h.merger.open());
        let promised = u64::from(sinks.count_ones().max(1));
        worker::console_log!(
            r#"{{"edgepush":"aggregation","shard":{:?},"pushes":{pushes},"points_in":{points_in},"points_out":{points},"series_open":{open},"late_points":{late},"sink_requests":{},"sink_requests_saved":{},"waiting":{},"flush_ms":{}}}"#,
            self.name(),
            sent.requests,
            (pushes * promised).saturating_sub(sent.requests),
            sent.waiting,
            crate::now_ms() - started
        );
        let next = self.with(|h| {
            h.merger
                .earliest_end()
                .map(|e| e + aggregation.interval_ms())
        });
        let retry = (sent.waiting > 0).then(|| {
            let backoff = aggregation.interval_ms().max(1000) << sent.tries.min(8);
            crate::now_ms() + backoff.min(MAX_RETRY_MS)
        });
        let more = sent.more.then(|| crate::now_ms() + 1000);
        // A push that found the aggregator full asked for an early flush
        // while this one ran.
        let asked = self.with(|h| h.alarm_ms).filter(|at| *at < watchdog);
        match [next, retry, more, asked].into_iter().flatten().min() {
            Some(at) => {
                self.set_alarm(at).await;
            }
            None => {
                if let Err(e) = self.state.storage().delete_alarm().await {
                    worker::console_warn!("edgepush: cannot delete the watchdog alarm: {e}");
                }
                self.with(|h| h.alarm_ms = None);
            }
        }
        Ok(())
    }

    /// Sends outbox messages on, oldest first: to the queue when one is
    /// bound, else to their sinks; at most [`MAX_SENDS`] per alarm, and
    /// none more to a sink after one failed.
    async fn send_outbox(&self, config: &Settings) -> std::result::Result<Sent, Error> {
        let sql = self.sql();
        let rows: Vec<Vec<SqlStorageValue>> = sql
            .exec("SELECT seq, message, tries FROM outbox ORDER BY seq", None)
            .map_err(storage_error)?
            .raw()
            .collect::<Result<_>>()
            .map_err(storage_error)?;
        let queue = self.env.queue(QUEUE_BINDING).ok();
        let mut sent = Sent::default();
        // The sinks (their tags' bits) that failed in this flush.
        let mut failed = 0u8;
        for row in rows {
            let [
                SqlStorageValue::Integer(seq),
                SqlStorageValue::Blob(message),
                SqlStorageValue::Integer(tries),
            ] = row.as_slice()
            else {
                worker::console_error!(
                    "edgepush: aggregator {}: an outbox row of another shape",
                    self.name()
                );
                continue;
            };
            let tag = 1u8 << (message.first().copied().unwrap_or(0) & 7);
            if sent.requests >= MAX_SENDS || failed & tag != 0 {
                sent.waiting += 1;
                sent.more |= sent.requests >= MAX_SENDS;
                continue;
            }
            let outcome = match &queue {
                Some(queue) => {
                    let raw =
                        RawMessageBuilder::new(js_sys::Uint8Array::from(message.as_slice()).into())
                            .build_with_content_type(QueueContentType::V8);
                    queue.send_raw(raw).await.map_err(|e| e.to_string())
                }
                None => self.deliver(config, *seq, message).await,
            };
            sent.requests += 1;
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
                    failed |= tag;
                    sent.waiting += 1;
                    sent.tries = sent
                        .tries
                        .max(u32::try_from(*tries + 1).unwrap_or(u32::MAX));
                }
            }
        }
        Ok(sent)
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
        let (tag, batch) = match envelope::decode(message, now_ms, &Limits::stored()) {
            Ok(decoded) => decoded,
            Err(e) => {
                // Damaged, or past every sink's window: it can never go.
                worker::console_error!(
                    "edgepush: MERGED POINTS LOST: aggregator {} cannot read an outbox message: {}",
                    self.name(),
                    e.message
                );
                return Ok(());
            }
        };
        let Some(sink) = config.sinks.iter().find(|s| s.tag() == tag) else {
            // Kept until the sink is configured again.
            return Err(format!("no {tag:?} sink is configured"));
        };
        let now = UNIX_EPOCH + Duration::from_millis(now_ms as u64);
        match deliver(&FetchClient, sink, &batch, now, Retry::default()).await {
            Ok(refusals) => {
                report_refusals(sink, &batch, &refusals);
                Ok(())
            }
            Err(f) if f.retryable && f.done > 0 => {
                let mut writes: Writes = envelope::encode(&batch.from_point(f.done), tag)
                    .into_iter()
                    .map(|m| ("INSERT INTO outbox (message) VALUES (?)", vec![m.into()]))
                    .collect();
                writes.push(("DELETE FROM outbox WHERE seq = ?", vec![seq.into()]));
                self.atomically(writes).map_err(|e| e.message)?;
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

/// What one flush sent.
#[derive(Default)]
struct Sent {
    /// Requests made (to sinks or the queue).
    requests: u64,
    /// Messages still in the outbox.
    waiting: u64,
    /// The most tries of one that failed.
    tries: u32,
    /// Whether messages were left for want of time, not for a failure.
    more: bool,
}

/// The most outbox messages one alarm sends: the rest go at the next one,
/// a second later, so one alarm stays well within its limits.
const MAX_SENDS: u64 = 200;

/// Logs the points of a merged batch a sink refused, but for those it can
/// never store (the pushes' answers named them).
pub(crate) fn report_refusals(
    sink: &edgepush_receiver::sink::Sink,
    batch: &Batch,
    refusals: &[edgepush_receiver::sink::SinkRefusal],
) {
    let unstorable = sink.unstorable(batch);
    for (r, points) in edgepush_receiver::sink::beyond_unstorable(&unstorable, refusals) {
        worker::console_error!(
            "edgepush: MERGED POINTS REFUSED: {} refused {points} points of merged batch {}: {}",
            r.sink,
            batch.id,
            r.message
        );
    }
}
