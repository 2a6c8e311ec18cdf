//! The extension's life: register for INVOKE and SHUTDOWN, subscribe to the
//! platform's events, then per invocation wait until the runtime is done,
//! take in what the function sent, and push as the flush policy says
//! (what cannot be pushed is written as EMF); at SHUTDOWN, wait for the
//! last report and push everything.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use edgepush::{Config, Counter, Metric, Unit};
use edgepush_lambda::Flush;
use edgepush_lambda::LambdaMetrics;
use edgepush_lambda::policy::{FlushDecision, LONGEST_DEADLINE_MS, Moment};
use lambda_extension::{Extension, LambdaEvent, NextEvent, service_fn};
use tokio::net::UdpSocket;
use tokio::sync::{Notify, oneshot};

use crate::platform::{Platform, Seen};
use crate::recorder::Recorder;
use crate::settings::Settings;
use crate::{listeners, otlp};

/// Refusals logged one by one before only every thousandth is.
const REFUSALS_LOGGED: u64 = 10;

/// How long SHUTDOWN waits for the last invocation's report at most.
const LAST_REPORT: Duration = Duration::from_millis(500);

/// Events kept of each kind (ids of invocations done, reports).
const KEPT_EVENTS: usize = 64;

/// What the listeners feed and the invocations read.
pub struct State {
    metrics: LambdaMetrics,
    recorder: Mutex<Recorder>,
    platform: Mutex<Platform>,
    refused: Counter,
    statsd: Option<Arc<UdpSocket>>,
    done: Mutex<VecDeque<String>>,
    reports: Mutex<VecDeque<String>>,
    changed: Notify,
    refusals: AtomicU64,
    /// Subscribed to the Telemetry API: invocations' ends are known.
    telemetry: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl State {
    /// Records a StatsD datagram; says why lines were refused (the first
    /// few, then every thousandth) on stderr, and counts them in
    /// `StatsDRefused`.
    pub fn datagram(&self, datagram: &[u8]) {
        let refused = lock(&self.recorder).datagram(datagram);
        for why in refused {
            self.refused.increment();
            let n = self.refusals.fetch_add(1, Relaxed) + 1;
            if n <= REFUSALS_LOGGED || n.is_multiple_of(1000) {
                eprintln!("edgepush: StatsD line refused ({n} so far): {why}");
            }
        }
    }

    /// Records an OTLP export; the answer for the exporter.
    pub fn otlp(
        &self,
        body: &[u8],
        content_type: Option<&str>,
        content_encoding: Option<&str>,
    ) -> (u16, &'static str, Vec<u8>) {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as i64;
        let answer = otlp::export(
            self.metrics.emitter(),
            body,
            content_type,
            content_encoding,
            now_ms,
        );
        if answer.refused > 0 || answer.status != 200 {
            eprintln!(
                "edgepush: OTLP export answered {}: {} point(s) refused: {}",
                answer.status,
                answer.refused,
                String::from_utf8_lossy(&answer.body)
            );
        }
        (answer.status, answer.content_type, answer.body)
    }

    /// Reads a batch of the Telemetry API's events.
    pub fn telemetry(&self, events: Vec<serde_json::Value>) {
        let mut platform = lock(&self.platform);
        for event in events {
            let (list, id) = match platform.event(event) {
                Seen::RuntimeDone(id) => (&self.done, id),
                Seen::Report(id) => (&self.reports, id),
                Seen::Other => continue,
            };
            let mut list = lock(list);
            if list.len() >= KEPT_EVENTS {
                list.pop_front();
            }
            list.push_back(id);
        }
        drop(platform);
        self.changed.notify_waiters();
    }

    /// Waits until `list` holds `id`, at most `limit`; whether it came.
    async fn wait_for(&self, list: &Mutex<VecDeque<String>>, id: &str, limit: Duration) -> bool {
        let wait = async {
            loop {
                let changed = self.changed.notified();
                tokio::pin!(changed);
                changed.as_mut().enable();
                if lock(list).iter().any(|seen| seen == id) {
                    return;
                }
                changed.await;
            }
        };
        tokio::time::timeout(limit, wait).await.is_ok()
    }

    fn drain(&self) {
        if let Some(socket) = &self.statsd {
            listeners::drain_statsd(socket, self);
        }
    }

    /// An invocation. When the policy will push after it (a push after
    /// every invocation, the first ones, rare or bursty calls, a push
    /// due), the extension waits until the runtime is done with it, takes
    /// in what the function sent, and pushes before asking for its next
    /// event, so before the freeze, all by the deadline less the margin
    /// (what the push cannot finish by then is written as EMF). Otherwise
    /// it asks for the next event at once and adds no duration: the
    /// platform's word that the runtime is done comes batched, up to the
    /// subscription's 25 ms later, and waiting for it would be billed.
    async fn invoke(&self, request_id: &str, deadline_ms: u64) {
        self.metrics.cold_start();
        self.metrics.invocation_ended();
        let policy = &self.metrics.options().policy;
        let push = match policy.flush {
            Flush::EndOfInvocation | Flush::AfterResponse => true,
            _ => self.metrics.decision(Moment::ResponsePosted) != FlushDecision::Skip,
        };
        if !push {
            self.drain();
            return;
        }
        if !self.telemetry.load(Relaxed) {
            // No word will come of this invocation's end: push what the
            // earlier ones left, now, beside the function.
            self.push(request_id, deadline_ms).await;
            return;
        }
        let limit = until(deadline_ms).map_or(policy.default_budget, |left| {
            left.saturating_sub(policy.margin)
        });
        if !self.wait_for(&self.done, request_id, limit).await {
            // Still running near its deadline (timing out: SHUTDOWN comes
            // next) or done too late to push: what it sent waits for the
            // next push or SHUTDOWN, and the freeze is not held.
            eprintln!(
                "edgepush: {request_id} not done by its deadline less the margin; pushing later"
            );
            self.drain();
            return;
        }
        self.push(request_id, deadline_ms).await;
    }

    /// Takes in what was sent and pushes it within the invocation's
    /// budget. Sets count members afresh from here: those recorded until
    /// the flush are in it.
    async fn push(&self, request_id: &str, deadline_ms: u64) {
        self.drain();
        lock(&self.recorder).pushed();
        self.metrics
            .flush_within(self.metrics.budget(deadline_ms), request_id)
            .await;
    }

    /// The environment shuts down: the last report (if it is still to
    /// come), then everything pending, within the shutdown budget; what
    /// arrived during that push is written as EMF, as the process ends.
    async fn shutdown(&self, last: Option<&str>, deadline_ms: u64) {
        let budget = self.metrics.options().policy.shutdown_budget;
        let wait = until(deadline_ms)
            .map_or(LAST_REPORT, |left| left.saturating_sub(budget))
            .min(LAST_REPORT);
        if let Some(last) = last {
            self.wait_for(&self.reports, last, wait).await;
        }
        self.drain();
        self.metrics.on(Moment::Shutdown, "shutdown", 0).await;
        self.drain();
        if self.metrics.emitter().pending() > 0 {
            self.metrics.flush_within(Duration::ZERO, "shutdown").await;
        }
    }
}

/// Time left until `deadline_ms` (epoch milliseconds) if it is a real
/// deadline (ahead, and within Lambda's longest timeout).
fn until(deadline_ms: u64) -> Option<Duration> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64;
    let left = deadline_ms.checked_sub(now).filter(|&ms| ms > 0)?;
    (left <= LONGEST_DEADLINE_MS).then(|| Duration::from_millis(left))
}

/// An error that stops the extension.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Runs the extension until SHUTDOWN is handled.
pub async fn run(settings: Settings) -> Result<(), Error> {
    let config = Config::new(settings.namespace.as_str())?;
    let metrics = LambdaMetrics::new(config, settings.options.clone())?;
    let emitter = metrics.emitter().clone();
    let statsd = match settings.statsd_port {
        Some(port) => Some(Arc::new(listeners::bind_statsd(port).await.map_err(
            |e| format!("EDGEPUSH_STATSD_PORT: cannot listen on 127.0.0.1:{port}/udp: {e}"),
        )?)),
        None => None,
    };
    let otlp =
        match settings.otlp_port {
            Some(port) => Some(listeners::bind_http(port, false).await.map_err(|e| {
                format!("EDGEPUSH_OTLP_PORT: cannot listen on 127.0.0.1:{port}: {e}")
            })?),
            None => None,
        };
    let telemetry = listeners::bind_http(settings.telemetry_port, true)
        .await
        .map_err(|e| {
            format!(
                "EDGEPUSH_TELEMETRY_PORT: cannot listen on {}: {e}",
                settings.telemetry_port
            )
        })?;
    let telemetry_port = telemetry.local_addr()?.port();
    let state = Arc::new(State {
        recorder: Mutex::new(Recorder::new(emitter.clone(), settings.gauge_signs)),
        platform: Mutex::new(Platform::new(&emitter, settings.platform_metrics)?),
        refused: emitter.counter(Metric::new("StatsDRefused").unit(Unit::Count))?,
        metrics,
        statsd: statsd.clone(),
        done: Mutex::new(VecDeque::new()),
        reports: Mutex::new(VecDeque::new()),
        changed: Notify::new(),
        refusals: AtomicU64::new(0),
        telemetry: AtomicBool::new(false),
    });
    if let Some(socket) = statsd {
        tokio::spawn(listeners::serve_statsd(socket, Arc::clone(&state)));
    }
    if let Some(listener) = otlp {
        tokio::spawn(listeners::serve_http(
            listener,
            Arc::clone(&state),
            listeners::otlp,
        ));
    }
    tokio::spawn(listeners::serve_http(
        telemetry,
        Arc::clone(&state),
        listeners::telemetry,
    ));

    let subscribed = Arc::clone(&state);
    let (stop, stopped) = oneshot::channel();
    let stop = Arc::new(Mutex::new(Some(stop)));
    let last = Arc::new(Mutex::new(None::<String>));
    let processor = service_fn(move |event: LambdaEvent| {
        let (state, stop, last) = (Arc::clone(&state), Arc::clone(&stop), Arc::clone(&last));
        async move {
            match event.next {
                NextEvent::Invoke(invoke) => {
                    *lock(&last) = Some(invoke.request_id.clone());
                    state.invoke(&invoke.request_id, invoke.deadline_ms).await;
                }
                NextEvent::Shutdown(shutdown) => {
                    let last = lock(&last).clone();
                    state.shutdown(last.as_deref(), shutdown.deadline_ms).await;
                    if let Some(stop) = lock(&stop).take() {
                        let _ = stop.send(());
                    }
                }
            }
            Ok::<(), Error>(())
        }
    });
    let registered = Extension::new()
        .with_events(&["INVOKE", "SHUTDOWN"])
        .with_events_processor(processor)
        .register()
        .await?;
    // Without the Telemetry API (a local emulator that lacks it) the
    // extension still works: it never learns when an invocation ends, so
    // it pushes when an invocation begins, and at SHUTDOWN.
    match subscribe(&registered.extension_id, telemetry_port).await {
        Ok(()) => subscribed.telemetry.store(true, Relaxed),
        Err(e) => eprintln!(
            "edgepush: no platform events ({e}): no platform metrics, and pushes wait for the next invocation or SHUTDOWN"
        ),
    }
    tokio::select! {
        result = registered.run() => result,
        _ = stopped => Ok(()),
    }
}

/// Subscribes to the Telemetry API's platform events, sent to
/// `sandbox.localdomain:port` in small, quick batches.
async fn subscribe(extension_id: &str, port: u16) -> Result<(), Error> {
    use http_body_util::BodyExt;
    let body = serde_json::json!({
        "schemaVersion": "2022-12-13",
        "types": ["platform"],
        // The smallest batches and shortest wait Lambda allows.
        "buffering": {"maxItems": 25, "maxBytes": 262_144, "timeoutMs": 25},
        "destination": {"protocol": "HTTP", "URI": format!("http://sandbox.localdomain:{port}")},
    });
    let request = lambda_runtime_api_client::build_request()
        .method("PUT")
        .uri("/2022-07-01/telemetry")
        .header("Lambda-Extension-Identifier", extension_id)
        .header("Content-Type", "application/json")
        .body(lambda_runtime_api_client::body::Body::from(
            body.to_string(),
        ))?;
    let client = lambda_runtime_api_client::Client::builder().build()?;
    let response = client.call(request).await?;
    let status = response.status();
    if !status.is_success() {
        let text = response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        return Err(format!(
            "the Telemetry API refused the subscription ({status}): {}",
            String::from_utf8_lossy(&text)
        )
        .into());
    }
    Ok(())
}
