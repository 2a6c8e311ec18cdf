//! Forwarding natively: reqwest as the sinks' [`Client`], tokio's timer
//! between retries, and the stdout sink.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::sink::{NativeSink, write_stdout};
use crate::spool::Spool;
use crate::telemetry::Telemetry;
use edgepush_receiver::limits::Limits;
use edgepush_receiver::model::Batch;
use edgepush_receiver::pipeline::Delivery;
use edgepush_receiver::sink::{
    Client, Retry, Sent, SinkAnswer, SinkFailure, SinkRefusal, deliver, parse_retry_after, skipped,
};

/// reqwest as a sink [`Client`].
#[derive(Clone, Debug, Default)]
pub struct Reqwest(reqwest::Client);

impl Client for Reqwest {
    async fn send(&self, request: &http::Request<Vec<u8>>) -> Sent {
        let response = self
            .0
            .request(request.method().clone(), request.uri().to_string())
            .headers(request.headers().clone())
            .body(request.body().clone())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let body = response.bytes().await.map_err(|e| e.to_string())?;
        Ok(SinkAnswer {
            status,
            retry_after,
            body: body.to_vec(),
        })
    }

    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// What a forward did: the sinks (by index) that took the batch, and the
/// failures of the others.
#[derive(Clone, Debug, Default)]
pub struct Forwarded {
    /// Indices of the sinks that took the batch (or whose spool did).
    pub delivered: Vec<usize>,
    /// Names of the sinks whose spool took the batch (or what was left of it).
    pub spooled: Vec<&'static str>,
    /// Points sinks refused for good while taking the rest (indices into
    /// the batch's points).
    pub refused: Vec<SinkRefusal>,
    /// Why the others did not.
    pub failures: Vec<SinkFailure>,
    /// For each sink that failed after taking part of the batch: its index
    /// and how many points (from the first) it took, so that the client's
    /// retry of the batch sends it only the rest.
    pub progress: Vec<(usize, usize)>,
}

/// Sends batches to every sink.
#[derive(Clone, Debug)]
pub struct Forwarder {
    client: Reqwest,
    sinks: Vec<NativeSink>,
    retry: Retry,
    /// Each sink's spool (none for stdout, or without a spool directory).
    spools: Vec<Option<Arc<Spool>>>,
    /// The receiver's own metrics.
    telemetry: Telemetry,
}

impl Forwarder {
    /// A forwarder to `sinks`, with a 10 s timeout per request and the
    /// default [`Retry`].
    pub fn new(sinks: impl IntoIterator<Item = impl Into<NativeSink>>) -> Self {
        let sinks: Vec<NativeSink> = sinks.into_iter().map(Into::into).collect();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Forwarder {
            client: Reqwest(client),
            spools: vec![None; sinks.len()],
            sinks,
            retry: Retry::default(),
            telemetry: Telemetry::default(),
        }
    }

    /// The receiver's own metrics, which this forwarder counts into.
    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    /// Publishes the bytes waiting in `index`'s spool.
    fn spool_gauge(&self, index: usize) {
        if let Some(spool) = &self.spools[index] {
            self.telemetry
                .spool_bytes(self.sinks[index].name(), spool.bytes());
        }
    }

    /// Spools what a sink cannot take under `dir` (one directory per sink,
    /// `<index>-<name>`), at most `max_bytes` per sink; see [`Spool`].
    pub fn spool(mut self, dir: &Path, max_bytes: u64) -> std::io::Result<Self> {
        for (index, sink) in self.sinks.iter().enumerate() {
            if let Some(tag) = sink.tag() {
                let path = dir.join(format!("{index}-{}", sink.name()));
                let spool = Spool::open(&path, tag, max_bytes)?;
                if spool.has_backlog() {
                    tracing::info!(sink = sink.name(), dir = %path.display(), bytes = spool.bytes(), "spool: batches wait from before; replaying");
                }
                self.telemetry.spool_bytes(sink.name(), spool.bytes());
                self.spools[index] = Some(Arc::new(spool));
            }
        }
        Ok(self)
    }

    /// Sets how many times a request is tried and the first wait between tries.
    pub fn retries(mut self, attempts: u32, backoff: Duration) -> Self {
        self.retry = Retry {
            attempts,
            backoff,
            ..Retry::default()
        };
        self
    }

    /// How many sinks there are.
    pub fn sinks(&self) -> &[NativeSink] {
        &self.sinks
    }

    /// Delivers `batch` to every sink, each from the point `done(index)`
    /// on: the points before it that sink took on an earlier try (0 for
    /// none; the batch's length or more skips the sink).
    pub async fn forward(&self, batch: &Batch, done: impl Fn(usize) -> usize) -> Forwarded {
        let mut forwarded = Forwarded::default();
        if batch.points.is_empty() {
            return forwarded;
        }
        for index in 0..self.sinks.len() {
            let skip = done(index);
            if skip >= batch.points.len() {
                continue;
            }
            match self.forward_one(index, batch, skip).await {
                Ok(taken) => {
                    forwarded.delivered.push(index);
                    if taken.spooled {
                        forwarded.spooled.push(self.sinks[index].name());
                    }
                    forwarded.refused.extend(taken.refusals);
                }
                Err(failure) => {
                    if failure.retryable && failure.done > 0 {
                        forwarded.progress.push((index, failure.done));
                    }
                    forwarded.failures.push(failure);
                }
            }
        }
        forwarded
    }

    /// Delivers the points of `batch` from `skip` on to sink `index`; what
    /// it cannot take now goes to its spool, when it has one. Point indices
    /// in the result are the whole batch's.
    pub async fn forward_one(
        &self,
        index: usize,
        batch: &Batch,
        skip: usize,
    ) -> Result<Delivery, SinkFailure> {
        let sink = &self.sinks[index];
        let todo = batch.from_point(skip);
        let spool = self.spools[index].as_deref();
        // While a sink's spool has a backlog, new batches queue behind it:
        // the sink is down, and trying it would only add latency.
        let result = match spool {
            Some(spool) if spool.has_backlog() => Err(SinkFailure {
                sink: sink.name(),
                retryable: true,
                message: "batches wait in its spool".into(),
                done: 0,
            }),
            _ => self.deliver(sink, &todo).await,
        };
        let mut spooled = false;
        let result = match (skipped(result, skip), spool) {
            (Err(failure), Some(spool)) if failure.retryable => {
                // Only what the sink did not take waits in the spool.
                match spool.append(&batch.from_point(failure.done)) {
                    Ok(()) => {
                        tracing::info!(sink = failure.sink, batch = %batch.id, from_point = failure.done, message = %failure.message, "sink did not take batch; spooled");
                        spooled = true;
                        Ok(Vec::new())
                    }
                    Err(e) => {
                        tracing::error!(sink = failure.sink, batch = %batch.id, error = %e, "SPOOL CANNOT TAKE BATCH: answering 503, the emitter keeps it");
                        Err(SinkFailure {
                            message: format!("{}; and {e}", failure.message),
                            ..failure
                        })
                    }
                }
            }
            (result, _) => result,
        };
        self.spool_gauge(index);
        match result {
            Ok(refusals) => Ok(Delivery { refusals, spooled }),
            Err(failure) => {
                tracing::warn!(sink = failure.sink, batch = %batch.id, retryable = failure.retryable, done = failure.done, message = %failure.message, "sink did not take batch");
                Err(failure)
            }
        }
    }
}

impl Forwarder {
    async fn deliver(
        &self,
        sink: &NativeSink,
        batch: &Batch,
    ) -> Result<Vec<SinkRefusal>, SinkFailure> {
        let client = self.telemetry.measure(&self.client, sink.name());
        match sink {
            NativeSink::Stdout => write_stdout(batch).map(|()| Vec::new()),
            NativeSink::Aws(aws) => aws.deliver(&client, batch, self.retry).await,
            NativeSink::Encoded(sink) => {
                deliver(&client, sink, batch, SystemTime::now(), self.retry).await
            }
        }
    }

    /// Whether any sink has a spool (else [`Forwarder::replay`] has nothing
    /// to do).
    pub fn spools(&self) -> bool {
        self.spools.iter().any(Option::is_some)
    }

    /// Replays every spool to its sink, oldest batch first, for as long as
    /// it runs: a sink that still fails is tried again after a wait that
    /// doubles from one second to `max_wait`; a batch a sink refuses (not
    /// retryable) is set aside in the spool's `corrupt/` with the reason.
    pub async fn replay(self, limits: Limits, max_wait: Duration) {
        let mut waits = vec![Duration::ZERO; self.sinks.len()];
        let mut next_try = vec![tokio::time::Instant::now(); self.sinks.len()];
        loop {
            let mut busy = false;
            for (index, sink) in self.sinks.iter().enumerate() {
                let Some(spool) = self.spools[index].as_deref() else {
                    continue;
                };
                if !spool.has_backlog() || tokio::time::Instant::now() < next_try[index] {
                    continue;
                }
                let entry = match spool.next(crate::now_ms(), &limits) {
                    Ok(Some(entry)) => entry,
                    Ok(None) => continue,
                    Err(e) => {
                        tracing::error!(sink = sink.name(), error = %e, "spool: cannot read");
                        next_try[index] = tokio::time::Instant::now() + max_wait;
                        continue;
                    }
                };
                // Delivered, or refused for good (set aside): either way the
                // spool moves past it.
                let outcome = match self.deliver(sink, &entry.batch).await {
                    // Part taken: the rest goes to the end of the spool, so
                    // the part is not sent again.
                    Err(f) if f.retryable && f.done > 0 => spool
                        .append(&entry.batch.from_point(f.done))
                        .map_err(|e| SinkFailure {
                            message: format!("{}; and spool: {e}", f.message),
                            done: 0,
                            ..f
                        }),
                    Err(f) if f.retryable => Err(f),
                    Ok(refusals) => {
                        for r in refusals {
                            tracing::error!(sink = sink.name(), batch = %entry.batch.id, points = r.points.len(), message = %r.message, "spool: sink refused points of a spooled batch");
                        }
                        Ok(())
                    }
                    Err(f) => {
                        tracing::error!(sink = sink.name(), batch = %entry.batch.id, message = %f.message, "spool: sink refused a spooled batch; set aside");
                        spool
                            .set_aside(&entry, &f.message)
                            .map_err(|e| SinkFailure {
                                retryable: true,
                                message: format!("spool: cannot set a refused batch aside: {e}"),
                                done: 0,
                                ..f
                            })
                    }
                };
                let acked = outcome.and_then(|()| {
                    spool.ack(&entry).map_err(|e| SinkFailure {
                        sink: sink.name(),
                        retryable: true,
                        message: format!("spool: cannot record the delivery: {e}"),
                        done: 0,
                    })
                });
                self.spool_gauge(index);
                match acked {
                    Ok(()) => {
                        busy = true;
                        if !waits[index].is_zero() {
                            tracing::info!(sink = sink.name(), "spool: sink takes batches again");
                        }
                        waits[index] = Duration::ZERO;
                    }
                    Err(f) => {
                        waits[index] = (waits[index] * 2).clamp(Duration::from_secs(1), max_wait);
                        next_try[index] = tokio::time::Instant::now() + waits[index];
                        tracing::warn!(sink = sink.name(), wait = ?waits[index], message = %f.message, "spool: sink still failing");
                    }
                }
            }
            if !busy {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Mutex;

    use edgepush_protocol::wire::Kind;
    use edgepush_protocol::{Resolution, Unit};

    use super::*;
    use edgepush_receiver::model::{Point, Series, Value};
    use edgepush_receiver::sink::Sink;
    use edgepush_receiver::sink::influxdb::Target;

    /// A line-protocol store answering each write from a script (204 once
    /// it is used up), recording the bodies it took.
    pub(crate) async fn store(script: Vec<u16>) -> (String, Arc<Mutex<usize>>) {
        let script = Arc::new(Mutex::new(script));
        let writes = Arc::new(Mutex::new(0));
        let seen = writes.clone();
        let app = axum::Router::new().fallback(move || {
            let (script, seen) = (script.clone(), seen.clone());
            async move {
                *seen.lock().expect("lock") += 1;
                let mut script = script.lock().expect("lock");
                let status = if script.is_empty() {
                    204
                } else {
                    script.remove(0)
                };
                axum::http::StatusCode::from_u16(status).expect("status")
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, writes)
    }

    fn batch(id: &str) -> Batch {
        Batch {
            id: id.into(),
            namespace: "N".into(),
            series: vec![Series {
                name: "m".into(),
                kind: Kind::Counter,
                unit: Unit::Count,
                dimensions: vec![],
                resolution: Resolution::Standard,
            }],
            points: vec![Point {
                series: 0,
                timestamp_ms: crate::now_ms(),
                value: Value::Counter(1.0),
            }],
        }
    }

    /// An InfluxDB 2.x sink writing to `url` (a [`store`]).
    pub(crate) fn influxdb(url: &str) -> Sink {
        Sink::Influxdb(Target::V2 {
            url: url.into(),
            org: "o".into(),
            bucket: "b".into(),
            token: None,
            store_strings: true,
            quantiles: Default::default(),
        })
    }

    fn spooling(url: &str, spool: &Path, max_bytes: u64) -> Forwarder {
        Forwarder::new(vec![influxdb(url)])
            .retries(1, Duration::from_millis(1))
            .spool(spool, max_bytes)
            .expect("spool")
    }

    #[tokio::test]
    async fn a_down_sink_spools_queues_behind_its_backlog_and_replays() {
        let dir = tempfile::tempdir().expect("dir");
        // Down for the first write; then the first replayed batch is refused
        // outright (400), the second taken.
        let (url, writes) = store(vec![503, 400]).await;
        let forwarder = spooling(&url, dir.path(), 1 << 20);

        let first = forwarder.forward(&batch("a"), |_| 0).await;
        assert_eq!(
            (first.delivered, first.spooled),
            (vec![0], vec!["influxdb"])
        );
        assert!(first.failures.is_empty());
        // With a backlog, the next batch queues behind it without a try.
        let second = forwarder.forward(&batch("b"), |_| 0).await;
        assert_eq!(second.spooled, ["influxdb"]);
        assert_eq!(*writes.lock().expect("lock"), 1);

        // A spool too small for a batch: the push fails, retryable, and says so.
        let tiny = tempfile::tempdir().expect("dir");
        let (down, _) = store(vec![503]).await;
        let full = spooling(&down, tiny.path(), 10)
            .forward(&batch("c"), |_| 0)
            .await;
        assert!(full.delivered.is_empty());
        let failure = &full.failures[0];
        assert!(failure.retryable, "{failure:?}");
        assert!(
            failure.message.contains("spool full (10 bytes)"),
            "{failure:?}"
        );

        // Replay: "a" is refused and set aside, "b" delivered; then the spool
        // is empty.
        let replay = tokio::spawn(
            forwarder
                .clone()
                .replay(Limits::default(), Duration::from_secs(1)),
        );
        let spool = forwarder.spools[0].clone().expect("spool");
        for _ in 0..200 {
            if !spool.has_backlog() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        replay.abort();
        assert!(!spool.has_backlog());
        assert_eq!(*writes.lock().expect("lock"), 3);
        let aside: Vec<String> = std::fs::read_dir(dir.path().join("0-influxdb/corrupt"))
            .expect("corrupt/")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        assert_eq!(
            aside.len(),
            2,
            "the refused batch and its reason: {aside:?}"
        );
        let reason = aside
            .iter()
            .find(|n| n.ends_with(".txt"))
            .map(|n| std::fs::read_to_string(dir.path().join("0-influxdb/corrupt").join(n)))
            .expect("reason")
            .expect("read");
        assert!(reason.starts_with("400"), "{reason}");
    }
}
