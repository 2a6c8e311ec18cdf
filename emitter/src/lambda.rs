//! AWS Lambda integration (feature `lambda`): one call runs a handler under
//! `lambda_runtime`, with metrics flushed the way [`Flush`] says and nothing
//! lost when the receiver cannot take them.
//!
//! ```no_run
//! use edgepush::lambda::{self, Invocation, LambdaMetrics};
//! use edgepush::{Config, Metric, Unit};
//! use lambda_runtime::{Error, LambdaEvent};
//! use serde_json::Value;
//!
//! async fn handler(event: LambdaEvent<Value>, metrics: Invocation) -> Result<Value, Error> {
//!     metrics.counter(Metric::new("orders").unit(Unit::Count))?.increment();
//!     Ok(event.payload)
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Error> {
//!     // EDGEPUSH_URL, EDGEPUSH_API_KEY, EDGEPUSH_FLUSH, ... (see `Options::from_env`)
//!     let metrics = LambdaMetrics::from_env(Config::new("Shop")?)?;
//!     lambda::run(metrics, handler).await
//! }
//! ```
//!
//! What it adds:
//! - the dimensions `FunctionName` and `FunctionVersion` on every metric
//!   (from the Lambda environment; [`Options::function_dimensions`]);
//! - `ColdStart` (Count), 1 on the first invocation of the process only;
//! - the request id, as the property `requestId` of EMF documents (wire v1
//!   and CloudWatch's PutMetricData have no place for it: a dimension per
//!   request would make a series per request).
//!
//! # Flush strategies
//! - [`Flush::EndOfInvocation`] (default): the handler's metrics are pushed
//!   before its response is returned, within the invocation's deadline less
//!   [`Options::margin`]. Costs the push's latency on every response; needs
//!   nothing else.
//! - [`Flush::AfterResponse`]: an internal extension (same process,
//!   registered for INVOKE) pushes once the response has been posted. Lambda
//!   freezes the environment only after every extension has asked for its
//!   next event, so the push happens before the freeze and adds no latency
//!   to the response (it is billed as duration). Each wake pushes everything
//!   pending, so an INVOKE event the extension did not see loses nothing.
//! - [`Flush::Periodic`]: metrics aggregate across warm invocations and are
//!   pushed after a response once `interval` has passed or `points` series
//!   are waiting; fewest requests, one push per many invocations. Because an
//!   extension is registered, Lambda sends SIGTERM before shutting the
//!   environment down: what is still buffered is pushed then (Lambda leaves
//!   300-500 ms).
//!
//! # Nothing lost
//! A batch that cannot be pushed in time (receiver down, refusing, slow, or
//! no time left) is written to stdout as CloudWatch EMF documents instead
//! ([`crate::emf`]), which CloudWatch Logs turns into the same metrics. Each
//! batch goes out one way: pushed, or written as EMF. The one overlap left is
//! a push whose answer does not arrive before the deadline although the
//! receiver took it: that batch is written as EMF too (at least once,
//! never lost).

use std::collections::VecDeque;
use std::fmt::Debug;
use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lambda_runtime::tower::{Layer, Service};
use lambda_runtime::{Context, Diagnostic, LambdaEvent, LambdaInvocation};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{
    Batch, Config, Counter, Distribution, Emitter, Gauge, HttpTransport, Metric, Statistics, Unit,
};

/// When metrics are pushed. See the [module docs](self) for the trade-offs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Flush {
    /// Before each response is returned.
    EndOfInvocation,
    /// After each response, by an internal extension, before the freeze.
    AfterResponse,
    /// After a response once `interval` has passed since the last push or
    /// `points` series wait, and at shutdown.
    Periodic {
        /// The longest time between pushes (while invocations arrive).
        interval: Duration,
        /// Series waiting that trigger a push.
        points: usize,
    },
}

impl FromStr for Flush {
    type Err = String;

    /// `end-of-invocation`, `after-response`, `periodic` (60 s or 1,000
    /// series) or `periodic:<seconds>[:<series>]`.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut parts = s.split(':');
        match parts.next().unwrap_or_default() {
            "end-of-invocation" | "end" => Ok(Flush::EndOfInvocation),
            "after-response" | "after" => Ok(Flush::AfterResponse),
            "periodic" => {
                let seconds: f64 = match parts.next() {
                    Some(p) => p
                        .parse()
                        .map_err(|_| format!("periodic: `{p}` is not seconds"))?,
                    None => 60.0,
                };
                let points: usize = match parts.next() {
                    Some(p) => p
                        .parse()
                        .map_err(|_| format!("periodic: `{p}` is not a count"))?,
                    None => 1000,
                };
                let interval = Duration::try_from_secs_f64(seconds)
                    .map_err(|_| format!("periodic: `{seconds}` is not a duration"))?;
                Ok(Flush::Periodic { interval, points })
            }
            other => Err(format!(
                "unknown flush strategy `{other}` (end-of-invocation, after-response, periodic[:seconds[:series]])"
            )),
        }
    }
}

/// How the integration pushes.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Options {
    /// When to push.
    pub flush: Flush,
    /// The receiver's base URL; `None` writes every batch as EMF.
    pub endpoint: Option<String>,
    /// Sent as `Authorization: Bearer <key>`, or used to sign each push
    /// when `sign` is set.
    pub api_key: Option<String>,
    /// Sign pushes with `api_key` (an `Edgepush-Signature` header) instead
    /// of sending it.
    pub sign: bool,
    /// Time kept free before an invocation's deadline: a push is cut short
    /// this long before it, leaving time to write EMF.
    pub margin: Duration,
    /// The budget of a push when the deadline is unknown (the local
    /// emulators send an impossible one).
    pub default_budget: Duration,
    /// The budget of the last push when the process is told to stop.
    pub shutdown_budget: Duration,
    /// Add `FunctionName` and `FunctionVersion` dimensions.
    pub function_dimensions: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            flush: Flush::EndOfInvocation,
            endpoint: None,
            api_key: None,
            sign: false,
            margin: Duration::from_millis(100),
            default_budget: Duration::from_secs(2),
            shutdown_budget: Duration::from_millis(250),
            function_dimensions: true,
        }
    }
}

impl Options {
    /// Options from the environment: `EDGEPUSH_URL`, `EDGEPUSH_API_KEY`,
    /// `EDGEPUSH_SIGN` (`1` or `true`), `EDGEPUSH_FLUSH` (see [`Flush::from_str`]) and
    /// `EDGEPUSH_DEADLINE_MARGIN_MS`.
    pub fn from_env() -> crate::Result<Self> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let mut options = Options {
            endpoint: var("EDGEPUSH_URL"),
            api_key: var("EDGEPUSH_API_KEY"),
            sign: var("EDGEPUSH_SIGN").is_some_and(|v| v == "1" || v == "true"),
            ..Options::default()
        };
        if let Some(flush) = var("EDGEPUSH_FLUSH") {
            options.flush = flush.parse().map_err(crate::Error::Config)?;
        }
        if let Some(ms) = var("EDGEPUSH_DEADLINE_MARGIN_MS") {
            let ms = ms.parse().map_err(|_| {
                crate::Error::Config(format!(
                    "EDGEPUSH_DEADLINE_MARGIN_MS: `{ms}` is not milliseconds"
                ))
            })?;
            options.margin = Duration::from_millis(ms);
        }
        Ok(options)
    }
}

type EmfOut = dyn Fn(&[String]) + Send + Sync;

struct Shared {
    emitter: Emitter,
    options: Options,
    transport: Option<HttpTransport>,
    cold: AtomicBool,
    cold_start: Counter,
    out: Box<EmfOut>,
    /// Serialises pushes, so batches leave in order and one push at a time.
    pushing: tokio::sync::Mutex<Instant>,
    /// Request ids whose responses have been posted (the latest few).
    answered: Mutex<VecDeque<String>>,
    answered_changed: tokio::sync::Notify,
}

/// The emitter of a Lambda function and how it pushes. Cheap to clone.
#[derive(Clone)]
pub struct LambdaMetrics(Arc<Shared>);

impl Debug for LambdaMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LambdaMetrics")
            .field("options", &self.0.options)
            .finish_non_exhaustive()
    }
}

/// What a push did with the batches it was given.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Flushed {
    /// Batches the receiver took.
    pub pushed: usize,
    /// Batches written to stdout as EMF instead.
    pub written: usize,
}

impl LambdaMetrics {
    /// An emitter for `config`, with the function's dimensions added when
    /// [`Options::function_dimensions`] is on and the Lambda environment
    /// names them.
    pub fn new(config: Config, options: Options) -> crate::Result<Self> {
        Self::with_output(config, options, write_stdout)
    }

    /// [`LambdaMetrics::new`], with EMF documents going to `out` (one call
    /// per batch, one JSON text per document) instead of stdout.
    pub fn with_output(
        mut config: Config,
        options: Options,
        out: impl Fn(&[String]) + Send + Sync + 'static,
    ) -> crate::Result<Self> {
        if options.function_dimensions {
            for (dimension, var) in [
                ("FunctionName", "AWS_LAMBDA_FUNCTION_NAME"),
                ("FunctionVersion", "AWS_LAMBDA_FUNCTION_VERSION"),
            ] {
                if let Some(value) = std::env::var(var).ok().filter(|v| !v.is_empty()) {
                    config = config.dimension(dimension, value)?;
                }
            }
        }
        let emitter = Emitter::new(config);
        let cold_start = emitter.counter(Metric::new("ColdStart").unit(Unit::Count))?;
        let transport = options.endpoint.as_deref().map(|url| {
            let t = HttpTransport::new(url).retries(1, Duration::from_millis(20));
            match &options.api_key {
                Some(key) if options.sign => t.signing_key(key),
                Some(key) => t.api_key(key),
                None => t,
            }
        });
        Ok(LambdaMetrics(Arc::new(Shared {
            emitter,
            options,
            transport,
            cold: AtomicBool::new(true),
            cold_start,
            out: Box::new(out),
            pushing: tokio::sync::Mutex::new(Instant::now()),
            answered: Mutex::new(VecDeque::new()),
            answered_changed: tokio::sync::Notify::new(),
        })))
    }

    /// [`LambdaMetrics::new`] with [`Options::from_env`].
    pub fn from_env(config: Config) -> crate::Result<Self> {
        Self::new(config, Options::from_env()?)
    }

    /// The emitter: register handles here once, at init, and record into
    /// them from any invocation.
    pub fn emitter(&self) -> &Emitter {
        &self.0.emitter
    }

    /// The options in use.
    pub fn options(&self) -> &Options {
        &self.0.options
    }

    /// Starts an invocation: counts a cold start on the first one. [`run`]
    /// calls this; tests call it to hand a handler its [`Invocation`].
    pub fn invocation(&self, context: &Context) -> Invocation {
        let cold = self.0.cold.swap(false, Relaxed);
        if cold {
            self.0.cold_start.increment();
        }
        Invocation {
            metrics: self.clone(),
            request_id: context.request_id.clone(),
            dimensions: Vec::new(),
            cold,
        }
    }

    /// Pushes everything recorded so far, within `budget`; what cannot be
    /// pushed is written as EMF with `request_id` as a property.
    pub async fn flush_within(&self, budget: Duration, request_id: &str) -> Flushed {
        let mut last = self.0.pushing.lock().await;
        *last = Instant::now();
        let batches = match self.0.emitter.flush() {
            Ok(batches) => batches,
            Err(e) => {
                eprintln!("edgepush: flush failed: {e}");
                return Flushed::default();
            }
        };
        if batches.is_empty() {
            return Flushed::default();
        }
        let this = self.clone();
        let request_id = request_id.to_string();
        let deadline = Instant::now() + budget;
        tokio::task::spawn_blocking(move || this.push_or_write(batches, deadline, &request_id))
            .await
            .unwrap_or_else(|e| {
                eprintln!("edgepush: push task failed: {e}");
                Flushed::default()
            })
    }

    fn push_or_write(&self, batches: Vec<Batch>, deadline: Instant, request_id: &str) -> Flushed {
        let total = batches.len();
        let unsent = match &self.0.transport {
            None => batches,
            Some(transport) => {
                // `send_all`'s order and stops, each send cut at the deadline.
                let (report, unsent) = match crate::send_all(&Until(transport, deadline), batches) {
                    Ok(report) => (report, Vec::new()),
                    Err(e) => {
                        eprintln!(
                            "edgepush: {} batch(es) not pushed ({}); writing them as EMF",
                            e.unsent.len(),
                            e.error
                        );
                        (e.report, e.unsent)
                    }
                };
                self.0.emitter.count_sent(
                    report.batches as u64,
                    report.retries,
                    unsent.len() as u64,
                );
                unsent
            }
        };
        let written = unsent.len();
        for batch in unsent {
            match batch.emf(&[("requestId", request_id)]) {
                Ok(docs) => (self.0.out)(&docs),
                Err(e) => eprintln!(
                    "edgepush: batch {} could not be written as EMF: {e}",
                    batch.id()
                ),
            }
        }
        Flushed {
            pushed: total - written,
            written,
        }
    }

    /// The push budget for an invocation with `deadline_ms` (epoch
    /// milliseconds): what is left of it less the margin, or the default
    /// budget when the deadline is impossible.
    pub fn budget(&self, deadline_ms: u64) -> Duration {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        // Lambda's timeout is at most 15 minutes; the local emulators send a
        // deadline long past.
        if deadline_ms <= now || deadline_ms - now > 16 * 60 * 1000 {
            return self.0.options.default_budget;
        }
        Duration::from_millis(deadline_ms - now).saturating_sub(self.0.options.margin)
    }

    fn response_posted(&self, request_id: &str) {
        let mut answered = self
            .0
            .answered
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if answered.len() >= 64 {
            answered.pop_front();
        }
        answered.push_back(request_id.to_string());
        drop(answered);
        self.0.answered_changed.notify_waiters();
    }

    /// Waits until the response to `request_id` has been posted, at most
    /// `limit`.
    async fn response_of(&self, request_id: &str, limit: Duration) {
        let wait = async {
            loop {
                let changed = self.0.answered_changed.notified();
                tokio::pin!(changed);
                changed.as_mut().enable();
                let done = (self.0.answered.lock())
                    .unwrap_or_else(PoisonError::into_inner)
                    .iter()
                    .any(|id| id == request_id);
                if done {
                    return;
                }
                changed.await;
            }
        };
        let _ = tokio::time::timeout(limit, wait).await;
    }

    async fn after_response(&self, context: &Context) {
        match self.0.options.flush {
            Flush::EndOfInvocation => {}
            Flush::AfterResponse => self.response_posted(&context.request_id),
            Flush::Periodic { interval, points } => {
                let due = self.0.pushing.lock().await.elapsed() >= interval
                    || self.0.emitter.pending() >= points;
                if due {
                    let budget = self.budget(context.deadline);
                    self.flush_within(budget, &context.request_id).await;
                }
            }
        }
    }

    /// The last push, when the environment shuts down.
    async fn shutdown(&self) {
        self.flush_within(self.0.options.shutdown_budget, "shutdown")
            .await;
        let _ = std::io::stdout().flush();
    }

    /// Registers what the strategy needs with Lambda: the extension, and
    /// the last push on SIGTERM. Must run before the runtime starts.
    async fn start(&self) -> Result<(), lambda_runtime::Error> {
        match self.0.options.flush {
            Flush::EndOfInvocation => return Ok(()),
            Flush::AfterResponse => {
                let metrics = self.clone();
                let events =
                    lambda_extension::service_fn(move |event: lambda_extension::LambdaEvent| {
                        let metrics = metrics.clone();
                        async move {
                            match event.next {
                                lambda_extension::NextEvent::Invoke(invoke) => {
                                    let budget = metrics.budget(invoke.deadline_ms);
                                    metrics.response_of(&invoke.request_id, budget).await;
                                    let budget = metrics.budget(invoke.deadline_ms);
                                    metrics.flush_within(budget, &invoke.request_id).await;
                                }
                                // Lambda sends internal extensions no
                                // SHUTDOWN; the local emulator does.
                                lambda_extension::NextEvent::Shutdown(_) => {
                                    metrics.shutdown().await
                                }
                            }
                            Ok::<(), lambda_extension::Error>(())
                        }
                    });
                let extension = lambda_extension::Extension::new()
                    .with_extension_name("edgepush")
                    .with_events(&["INVOKE"])
                    .with_events_processor(events)
                    .register()
                    .await?;
                tokio::spawn(async move {
                    if let Err(e) = extension.run().await {
                        eprintln!("edgepush: extension stopped: {e}");
                    }
                });
            }
            Flush::Periodic { .. } => {
                // An extension that takes no events: with one registered,
                // Lambda sends the runtime SIGTERM before shutdown.
                let metrics = self.clone();
                let ignore =
                    lambda_extension::service_fn(move |event: lambda_extension::LambdaEvent| {
                        let metrics = metrics.clone();
                        async move {
                            if !event.next.is_invoke() {
                                metrics.shutdown().await;
                            }
                            Ok::<(), lambda_extension::Error>(())
                        }
                    });
                let extension = lambda_extension::Extension::new()
                    .with_extension_name("edgepush")
                    .with_events(&[])
                    .with_events_processor(ignore)
                    .register()
                    .await?;
                tokio::spawn(async move {
                    if let Err(e) = extension.run().await {
                        eprintln!("edgepush: extension stopped: {e}");
                    }
                });
            }
        }
        let metrics = self.clone();
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            metrics.shutdown().await;
            std::process::exit(0);
        });
        Ok(())
    }
}

/// A transport whose sends end by a deadline.
struct Until<'a>(&'a HttpTransport, Instant);

impl crate::Transport for Until<'_> {
    fn send(&self, batch: &Batch) -> Result<crate::Ack, crate::SendError> {
        self.0
            .send_within(batch, self.1.saturating_duration_since(Instant::now()))
    }
}

fn write_stdout(docs: &[String]) {
    let mut out = std::io::stdout().lock();
    for doc in docs {
        let _ = writeln!(out, "{doc}");
    }
    let _ = out.flush();
}

/// One invocation's view of the metrics, handed to the handler. Metrics
/// registered through it carry its dimensions, which stay its own when
/// several invocations share the process.
#[derive(Clone, Debug)]
pub struct Invocation {
    metrics: LambdaMetrics,
    request_id: String,
    dimensions: Vec<(String, String)>,
    cold: bool,
}

impl Invocation {
    /// The request id.
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// Whether this is the process's first invocation.
    pub fn cold_start(&self) -> bool {
        self.cold
    }

    /// Adds a dimension to the metrics registered through this invocation
    /// from now on.
    pub fn dimension(&mut self, name: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.dimensions.push((name.into(), value.into()));
        self
    }

    /// The shared emitter.
    pub fn emitter(&self) -> &Emitter {
        self.metrics.emitter()
    }

    fn with_dimensions(&self, mut metric: Metric) -> Metric {
        for (name, value) in &self.dimensions {
            metric = metric.dimension(name.clone(), value.clone());
        }
        metric
    }

    /// A counter with this invocation's dimensions (registered on first
    /// use, then found again).
    pub fn counter(&self, metric: Metric) -> crate::Result<Counter> {
        self.emitter().counter(self.with_dimensions(metric))
    }

    /// A gauge with this invocation's dimensions.
    pub fn gauge(&self, metric: Metric) -> crate::Result<Gauge> {
        self.emitter().gauge(self.with_dimensions(metric))
    }

    /// A distribution with this invocation's dimensions.
    pub fn distribution(&self, metric: Metric) -> crate::Result<Distribution> {
        self.emitter().distribution(self.with_dimensions(metric))
    }

    /// A statistic set with this invocation's dimensions.
    pub fn statistics(&self, metric: Metric) -> crate::Result<Statistics> {
        self.emitter().statistics(self.with_dimensions(metric))
    }
}

/// Runs `handler` under `lambda_runtime` (concurrently where Lambda asks
/// for it, `AWS_LAMBDA_MAX_CONCURRENCY`), flushing as `metrics` says.
pub async fn run<A, F, Fut, R, E>(
    metrics: LambdaMetrics,
    handler: F,
) -> Result<(), lambda_runtime::Error>
where
    F: Fn(LambdaEvent<A>, Invocation) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<R, E>> + Send + 'static,
    A: DeserializeOwned + Send + 'static,
    R: Serialize + Send + 'static,
    E: Into<Diagnostic> + Debug + Send + 'static,
{
    metrics.start().await?;
    let for_handler = metrics.clone();
    let service = lambda_runtime::service_fn(move |event: LambdaEvent<A>| {
        let metrics = for_handler.clone();
        let handler = handler.clone();
        async move {
            let invocation = metrics.invocation(&event.context);
            let request_id = event.context.request_id.clone();
            let deadline = event.context.deadline;
            let result = handler(event, invocation).await;
            if metrics.0.options.flush == Flush::EndOfInvocation {
                metrics
                    .flush_within(metrics.budget(deadline), &request_id)
                    .await;
            }
            result
        }
    });
    lambda_runtime::Runtime::new(service)
        .layer(AfterResponseLayer(metrics))
        .run_concurrent()
        .await
}

/// Runs after the runtime has posted a response, before it asks for the
/// next event.
#[derive(Clone)]
struct AfterResponseLayer(LambdaMetrics);

impl<S> Layer<S> for AfterResponseLayer {
    type Service = AfterResponse<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AfterResponse {
            inner,
            metrics: self.0.clone(),
        }
    }
}

#[derive(Clone)]
struct AfterResponse<S> {
    inner: S,
    metrics: LambdaMetrics,
}

impl<S> Service<LambdaInvocation> for AfterResponse<S>
where
    S: Service<LambdaInvocation, Response = (), Error = lambda_runtime::Error>,
    S::Future: Send + 'static,
{
    type Response = ();
    type Error = lambda_runtime::Error;
    type Future = Pin<Box<dyn Future<Output = Result<(), lambda_runtime::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, invocation: LambdaInvocation) -> Self::Future {
        let context = invocation.context.clone();
        let posted = self.inner.call(invocation);
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let result = posted.await;
            metrics.after_response(&context).await;
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics() -> LambdaMetrics {
        let options = Options {
            function_dimensions: false,
            ..Options::default()
        };
        LambdaMetrics::new(Config::new("Test").expect("namespace"), options).expect("metrics")
    }

    #[tokio::test]
    async fn without_a_receiver_every_batch_is_written_as_emf() {
        let written = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&written);
        let m = LambdaMetrics::with_output(
            Config::new("Test").expect("namespace"),
            Options {
                function_dimensions: false,
                ..Options::default()
            },
            move |docs: &[String]| sink.lock().expect("lock").extend_from_slice(docs),
        )
        .expect("metrics");
        let inv = m.invocation(&Context::default());
        inv.counter(Metric::new("orders"))
            .expect("counter")
            .add(3.0);
        let flushed = m.flush_within(Duration::from_secs(1), "req-1").await;
        assert_eq!(
            flushed,
            Flushed {
                pushed: 0,
                written: 1
            }
        );
        let docs = written.lock().expect("lock").clone();
        assert_eq!(docs.len(), 1);
        let doc: serde_json::Value = serde_json::from_str(&docs[0]).expect("JSON");
        assert_eq!(
            (doc["orders"].as_f64(), doc["ColdStart"].as_f64()),
            (Some(3.0), Some(1.0))
        );
        assert_eq!(doc["requestId"], "req-1");
        // Nothing is left to write twice.
        assert_eq!(
            m.flush_within(Duration::from_secs(1), "req-2").await,
            Flushed::default()
        );
    }

    #[test]
    fn strategies_parse_and_bad_ones_are_named() {
        assert_eq!("end-of-invocation".parse(), Ok(Flush::EndOfInvocation));
        assert_eq!("after-response".parse(), Ok(Flush::AfterResponse));
        assert_eq!(
            "periodic:10:500".parse(),
            Ok(Flush::Periodic {
                interval: Duration::from_secs(10),
                points: 500
            })
        );
        assert_eq!(
            "periodic".parse(),
            Ok(Flush::Periodic {
                interval: Duration::from_secs(60),
                points: 1000
            })
        );
        let err = "sometimes".parse::<Flush>().expect_err("unknown");
        assert!(err.contains("sometimes"), "{err}");
        assert!("periodic:soon".parse::<Flush>().is_err());
    }

    #[test]
    fn an_impossible_deadline_gets_the_default_budget() {
        let m = metrics();
        assert_eq!(m.budget(600_000), Duration::from_secs(2));
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_millis() as u64;
        let budget = m.budget(now + 1000);
        assert!(
            budget <= Duration::from_millis(900) && budget > Duration::from_millis(700),
            "{budget:?}"
        );
        assert_eq!(
            m.budget(now + 50),
            Duration::ZERO,
            "less than the margin left"
        );
    }

    #[test]
    fn concurrent_invocations_keep_their_own_dimensions_and_one_cold_start() {
        let m = metrics();
        std::thread::scope(|s| {
            for tenant in ["a", "b", "c"] {
                let m = m.clone();
                s.spawn(move || {
                    for i in 0..200 {
                        let mut inv = m.invocation(&Context::default());
                        inv.dimension("tenant", tenant);
                        inv.counter(Metric::new("orders"))
                            .expect("counter")
                            .increment();
                        inv.distribution(Metric::new("latency"))
                            .expect("distribution")
                            .record(f64::from(i));
                    }
                });
            }
        });
        let batches = m.emitter().flush_at(1_764_000_000_000).expect("flush");
        let json: serde_json::Value =
            serde_json::from_slice(&batches[0].json().expect("json")).expect("wire");
        let mut seen = Vec::new();
        for p in json["points"].as_array().expect("points") {
            let series = &json["series"][p["s"].as_u64().expect("s") as usize];
            let tenant = series["d"]["tenant"].as_str().unwrap_or("-").to_string();
            // A counter's sum; a distribution's sample count.
            let total = match (p.get("x"), p.get("cs")) {
                (Some(x), _) => x.as_f64().expect("x"),
                (None, Some(cs)) => cs
                    .as_array()
                    .expect("cs")
                    .iter()
                    .filter_map(|c| c.as_f64())
                    .sum(),
                (None, None) => p["vs"].as_array().expect("vs").len() as f64,
            };
            let key = (series["n"].as_str().expect("n").to_string(), tenant);
            match seen.iter_mut().find(|(n, t, _)| (n, t) == (&key.0, &key.1)) {
                Some(entry) => entry.2 += total,
                None => seen.push((key.0, key.1, total)),
            }
        }
        seen.sort_by(|a, b| a.partial_cmp(b).expect("ordered"));
        let mut want = vec![("ColdStart".to_string(), "-".to_string(), 1.0)];
        for t in ["a", "b", "c"] {
            want.push(("latency".into(), t.into(), 200.0));
        }
        for t in ["a", "b", "c"] {
            want.push(("orders".into(), t.into(), 200.0));
        }
        assert_eq!(seen, want);
    }
}
