//! [`LambdaMetrics`]: the function's emitter, and the pushing: everything
//! pending pushed within a budget, and what the receiver did not take
//! written to stdout as EMF. What to push when is [`crate::policy`]'s
//! decision; this file acts on it.

use std::collections::VecDeque;
use std::fmt::Debug;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use edgepush::{
    Ack, Config, Counter, Emitter, HttpTransport, Metric, Payload, SendError, Transport, Unit,
};
use lambda_runtime::Context;

use crate::error::Result;
use crate::invocation::Invocation;
use crate::options::Options;
use crate::policy::{self, Facts, FlushDecision, Moment};

type EmfOut = dyn Fn(&[String]) + Send + Sync;

struct Shared {
    emitter: Emitter,
    options: Options,
    transport: Option<HttpTransport>,
    cold: AtomicBool,
    cold_start: Counter,
    out: Box<EmfOut>,
    /// Serialises pushes, so batches leave in order and one push at a time.
    pushing: tokio::sync::Mutex<()>,
    /// When the last push began (or the metrics were made).
    last_push: Mutex<Instant>,
    /// How often invocations come (for [`crate::Flush::Adaptive`]).
    rate: Mutex<policy::Rate>,
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
    pub fn new(config: Config, options: Options) -> Result<Self> {
        Self::with_output(config, options, write_stdout)
    }

    /// [`LambdaMetrics::new`], with EMF documents going to `out` (one call
    /// per batch, one JSON text per document) instead of stdout.
    pub fn with_output(
        mut config: Config,
        options: Options,
        out: impl Fn(&[String]) + Send + Sync + 'static,
    ) -> Result<Self> {
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
            pushing: tokio::sync::Mutex::new(()),
            last_push: Mutex::new(Instant::now()),
            rate: Mutex::new(policy::Rate::default()),
            answered: Mutex::new(VecDeque::new()),
            answered_changed: tokio::sync::Notify::new(),
        })))
    }

    /// [`LambdaMetrics::new`] with [`Options::from_env`].
    pub fn from_env(config: Config) -> Result<Self> {
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

    /// Starts an invocation: counts a cold start on the first one.
    /// [`crate::MetricsLayer`] calls this; a test calls it to run a handler
    /// under [`Invocation::scope`].
    pub fn invocation(&self, context: &Context) -> Invocation {
        let cold = self.cold_start();
        Invocation::new(self.clone(), context.request_id.clone(), cold)
    }

    /// Whether this is the process's first invocation: true once, counted
    /// then in `ColdStart`. [`LambdaMetrics::invocation`] asks; a process
    /// that sees invocations otherwise (an external extension) asks itself.
    pub fn cold_start(&self) -> bool {
        let cold = self.0.cold.swap(false, Relaxed);
        if cold {
            self.0.cold_start.increment();
        }
        cold
    }

    /// The push budget for an invocation with `deadline_ms` (epoch
    /// milliseconds), by the system clock: see [`policy::budget`].
    pub fn budget(&self, deadline_ms: u64) -> Duration {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        policy::budget(&self.0.options.policy, deadline_ms, now)
    }

    /// What [`policy::decide`] is told now.
    fn facts(&self) -> Facts {
        let last = *self
            .0
            .last_push
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let rate = *self.0.rate.lock().unwrap_or_else(PoisonError::into_inner);
        Facts::new(last.elapsed(), self.0.emitter.pending()).with_rate(rate)
    }

    /// Counts an invocation's end now, for how often they come
    /// ([`crate::Flush::Adaptive`]). [`LambdaMetrics::on`] does at
    /// [`Moment::Returned`]; the extension, which acts apart, at each
    /// INVOKE.
    pub fn invocation_ended(&self) {
        self.0
            .rate
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .ended(Instant::now());
    }

    /// What the policy would decide at `moment` now, without acting on it:
    /// for a caller that must prepare for a push (the extension waits for
    /// the runtime's end only when a push will follow it).
    pub fn decision(&self, moment: Moment) -> FlushDecision {
        policy::decide(&self.0.options.policy, moment, &self.facts())
    }

    /// Does what the policy decides at `moment` of invocation `request_id`
    /// (deadline `deadline_ms`, epoch milliseconds); what a push did, if
    /// the policy pushed. The layers and the extension call it at each
    /// moment they see.
    pub async fn on(&self, moment: Moment, request_id: &str, deadline_ms: u64) -> Option<Flushed> {
        if moment == Moment::Returned {
            self.invocation_ended();
        }
        match policy::decide(&self.0.options.policy, moment, &self.facts()) {
            FlushDecision::Skip => None,
            FlushDecision::Push => Some(
                self.flush_within(self.budget(deadline_ms), request_id)
                    .await,
            ),
            FlushDecision::HandOff => {
                self.response_posted(request_id);
                None
            }
            FlushDecision::PushAfterResponse => {
                self.response_of(request_id, self.budget(deadline_ms)).await;
                Some(
                    self.flush_within(self.budget(deadline_ms), request_id)
                        .await,
                )
            }
            FlushDecision::PushLast => {
                let flushed = self
                    .flush_within(self.0.options.policy.shutdown_budget, "shutdown")
                    .await;
                let _ = std::io::stdout().flush();
                Some(flushed)
            }
        }
    }

    /// Pushes everything recorded so far, within `budget`; what cannot be
    /// pushed is written as EMF with `request_id` as a property.
    pub async fn flush_within(&self, budget: Duration, request_id: &str) -> Flushed {
        let _pushing = self.0.pushing.lock().await;
        *self
            .0
            .last_push
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Instant::now();
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

    /// Pushes `batches` until `deadline` and writes what was not taken as
    /// EMF (blocking).
    fn push_or_write(&self, batches: Vec<Payload>, deadline: Instant, request_id: &str) -> Flushed {
        let total = batches.len();
        let unsent = match &self.0.transport {
            None => batches,
            Some(transport) => {
                // `send_all`'s order and stops, each send cut at the
                // deadline, counted in the emitter's telemetry.
                match self.0.emitter.send(&Until(transport, deadline), batches) {
                    Ok(_) => Vec::new(),
                    Err(e) => {
                        eprintln!(
                            "edgepush: {} batch(es) not pushed ({}); writing them as EMF",
                            e.unsent.len(),
                            e.error
                        );
                        e.unsent
                    }
                }
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

    /// Notes that the response to `request_id` has been posted.
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
}

/// A transport whose sends end by a deadline.
struct Until<'a>(&'a HttpTransport, Instant);

impl Transport for Until<'_> {
    fn send(&self, batch: &Payload) -> std::result::Result<Ack, SendError> {
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::policy::{Flush, Policy};

    /// Metrics without a receiver, whose EMF documents land in the
    /// returned list.
    pub(crate) fn metrics_writing_to(flush: Flush) -> (LambdaMetrics, Arc<Mutex<Vec<String>>>) {
        metrics_with(Options {
            policy: Policy::new(flush),
            function_dimensions: false,
            ..Options::default()
        })
    }

    /// Metrics with `options`, whose EMF documents land in the returned
    /// list.
    fn metrics_with(options: Options) -> (LambdaMetrics, Arc<Mutex<Vec<String>>>) {
        let written = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&written);
        let m = LambdaMetrics::with_output(
            Config::new("Test").expect("namespace"),
            options,
            move |docs: &[String]| sink.lock().expect("lock").extend_from_slice(docs),
        )
        .expect("metrics");
        (m, written)
    }

    #[tokio::test]
    async fn without_a_receiver_every_batch_is_written_as_emf() {
        let (m, written) = metrics_writing_to(Flush::EndOfInvocation);
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

    #[tokio::test]
    async fn an_unreachable_receiver_hands_every_batch_to_emf_and_counts_it() {
        // A receiver that cannot be reached: a closed port.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
        let url = format!("http://{}", closed.local_addr().expect("address"));
        drop(closed);
        let (m, written) = metrics_with(Options {
            endpoint: Some(url),
            function_dimensions: false,
            ..Options::default()
        });
        m.emitter()
            .counter(Metric::new("orders"))
            .expect("counter")
            .increment();
        let flushed = m.flush_within(Duration::from_secs(2), "req-1").await;
        assert_eq!((flushed.pushed, flushed.written), (0, 1));
        assert_eq!(written.lock().expect("lock").len(), 1);
        assert_eq!(m.emitter().telemetry().batches_failed, 1);
    }

    #[test]
    fn an_impossible_deadline_gets_the_default_budget() {
        let (m, _) = metrics_writing_to(Flush::EndOfInvocation);
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

    #[tokio::test]
    async fn adaptive_pushes_each_response_until_invocations_are_known_to_be_frequent() {
        let (m, written) = metrics_writing_to(Flush::Adaptive {
            interval: Duration::from_secs(60),
            points: 1000,
            learn: 3,
        });
        let orders = m.emitter().counter(Metric::new("orders")).expect("counter");
        // Back to back: after three, they are known to come often.
        for (n, documents) in [(1, 1), (2, 2), (3, 2), (4, 2)] {
            orders.increment();
            let id = format!("req-{n}");
            m.on(Moment::Returned, &id, 0).await;
            m.on(Moment::ResponsePosted, &id, 0).await;
            assert_eq!(written.lock().expect("lock").len(), documents, "after {id}");
        }
        // The two waiting go at shutdown, as one sum.
        m.on(Moment::Shutdown, "shutdown", 0).await;
        let docs = written.lock().expect("lock").clone();
        let last: serde_json::Value = serde_json::from_str(&docs[2]).expect("JSON");
        assert_eq!((docs.len(), last["orders"].as_f64()), (3, Some(2.0)));
    }

    #[tokio::test]
    async fn the_last_push_writes_what_is_pending_as_shutdown() {
        let (m, written) = metrics_writing_to(Flush::AfterResponse);
        m.emitter()
            .counter(Metric::new("orders"))
            .expect("counter")
            .increment();
        m.on(Moment::Shutdown, "shutdown", 0).await;
        let docs = written.lock().expect("lock").clone();
        assert_eq!(docs.len(), 1);
        let doc: serde_json::Value = serde_json::from_str(&docs[0]).expect("JSON");
        assert_eq!(doc["requestId"], "shutdown");
    }

    #[tokio::test(start_paused = true)]
    async fn the_extension_pushes_once_the_response_is_posted_or_the_budget_is_spent() {
        let (m, written) = metrics_writing_to(Flush::AfterResponse);
        let orders = m.emitter().counter(Metric::new("orders")).expect("counter");
        orders.increment();
        // The extension hears of req-1 before its response is posted.
        let extension = tokio::spawn({
            let m = m.clone();
            async move { m.on(Moment::Invoke, "req-1", 0).await }
        });
        tokio::task::yield_now().await;
        tokio::time::advance(Duration::from_millis(500)).await;
        assert!(written.lock().expect("lock").is_empty(), "pushed early");
        m.on(Moment::ResponsePosted, "req-1", 0).await;
        extension.await.expect("extension");
        assert_eq!(written.lock().expect("lock").len(), 1);
        // A response it never hears of: pushed once the budget is spent
        // (2 s without a deadline).
        orders.increment();
        let extension = tokio::spawn({
            let m = m.clone();
            async move { m.on(Moment::Invoke, "req-2", 0).await }
        });
        tokio::time::advance(Duration::from_millis(2_001)).await;
        extension.await.expect("extension");
        assert_eq!(written.lock().expect("lock").len(), 2);
    }
}
