//! A small Lambda Runtime API and Extensions API, real HTTP on loopback, for
//! what the local emulator does not imitate: real deadlines, and a freeze
//! that waits for every extension. It also serves `/v1/metrics` as a
//! receiver that records when each batch arrived, and can be told to refuse
//! or to hang.
//!
//! Like Lambda, it hands the runtime the first invocation only once every
//! registered extension has finished its init (asked for its first event),
//! and each next one only once the environment is idle: the runtime and
//! every extension that received the last INVOKE have asked for their next
//! event (the "freeze").
//!
//! Its Telemetry API sends subscribers the platform's events as Lambda
//! does, buffered as the subscription asks, with real timings: `platform.initStart`, `initRuntimeDone` and
//! `initReport` before the first invocation, then per invocation
//! `platform.start`, `platform.runtimeDone` when the runtime posts its
//! response or error, and `platform.report` at the freeze (duration,
//! billed duration, memory size, the runtime's peak resident memory). Like
//! Lambda, it ends an invocation whose deadline passes (status `timeout`)
//! and one whose runtime grows past the memory size (killed; status
//! `error`, `Runtime.OutOfMemory`), and sends extensions SHUTDOWN then.

use std::collections::VecDeque;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::Process;

/// What `/v1/metrics` does with a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Capture {
    /// Records it and answers 200.
    Accept,
    /// Answers 503.
    Unavailable,
    /// Reads it and never answers.
    Hang,
}

/// One invocation as the API saw it.
#[derive(Clone, Debug)]
pub struct Invoked {
    /// Its request id.
    pub request_id: String,
    /// When the test asked for it.
    pub sent: Instant,
    /// Its deadline.
    pub deadline: Instant,
    /// When the runtime posted the response (or error), and what it was.
    pub response: Option<(Instant, Value)>,
    /// When the runtime and every extension were idle again.
    pub frozen: Option<Instant>,
    /// When every extension that got its INVOKE had asked for its next
    /// event (whether or not the runtime was done).
    pub extensions_idle: Option<Instant>,
    /// When the runtime took it.
    handed: Option<Instant>,
    /// How it ended: status and error type, as the platform reports them.
    outcome: Option<(&'static str, Option<String>)>,
}

#[derive(Debug)]
struct Extension {
    id: String,
    invoke: bool,
    shutdown: bool,
    /// Asked for its first event: its init is done.
    ready: bool,
    events: VecDeque<Value>,
}

#[derive(Debug, Default)]
struct Inner {
    queue: VecDeque<(String, Value, u64)>,
    invocations: Vec<Invoked>,
    extensions: Vec<Extension>,
    /// Who has not asked for the next event since the last INVOKE.
    busy: Vec<String>,
    current: Option<String>,
    capture: Option<Capture>,
    captured: Vec<(Instant, Value)>,
    /// Pushes `/v1/metrics` took and never answered.
    hung: usize,
    sequence: u64,
    /// Telemetry subscribers: each a queue its own thread delivers.
    subscribers: Vec<std::sync::mpsc::Sender<Value>>,
    /// Every platform event sent, in order.
    platform_events: Vec<Value>,
    initialized: bool,
    memory_size_mb: u64,
    runtime_pid: Option<u32>,
    /// The runtime was ended (timed out, out of memory): no more work.
    ended: bool,
    /// Telemetry API subscriptions are answered 404, as by an emulator
    /// without it.
    no_telemetry: bool,
}

struct Shared {
    inner: Mutex<Inner>,
    version: tokio::sync::watch::Sender<u64>,
    started: Instant,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn changed(&self) {
        self.version.send_modify(|v| *v += 1);
    }

    /// `who` asked for its next event: it is idle. When everyone is, the
    /// environment freezes and the invocation's report is sent.
    fn idle(&self, inner: &mut Inner, who: &str) {
        inner.busy.retain(|b| b != who);
        if who != "runtime"
            && inner.busy.iter().all(|b| b == "runtime")
            && let Some(current) = inner.current.clone()
            && let Some(inv) = inner
                .invocations
                .iter_mut()
                .find(|i| i.request_id == current)
        {
            inv.extensions_idle.get_or_insert_with(Instant::now);
        }
        if inner.busy.is_empty()
            && let Some(current) = inner.current.take()
            && let Some(inv) = inner
                .invocations
                .iter_mut()
                .find(|i| i.request_id == current)
        {
            inv.frozen = Some(Instant::now());
            let inv = inv.clone();
            let peak = inner
                .runtime_pid
                .and_then(|pid| crate::proc_status_kib(pid, "VmHWM"))
                .map_or(0, |kib| kib.div_ceil(1024));
            report(inner, &inv, peak);
        }
    }

    /// Ends invocation `id` as the platform does when the runtime cannot:
    /// `status` (`timeout`, or `error` with `error_type`), its report, and
    /// SHUTDOWN (`reason`) to the extensions; the runtime gets no more
    /// work.
    fn end(&self, id: &str, status: &'static str, error_type: Option<&str>, reason: &str) {
        let mut inner = self.lock();
        let memory = inner.memory_size_mb;
        let Some(inv) = inner.invocations.iter_mut().find(|i| i.request_id == id) else {
            return;
        };
        if inv.response.is_some() {
            return;
        }
        let error = json!({"errorType": error_type.unwrap_or("Sandbox.Timedout")});
        inv.response = Some((Instant::now(), error));
        inv.outcome = Some((status, error_type.map(str::to_string)));
        let inv = inv.clone();
        runtime_done(&mut inner, &inv);
        let peak = if error_type.is_some() { memory } else { 0 };
        report(&mut inner, &inv, peak);
        inner.current = None;
        inner.busy.clear();
        inner.ended = true;
        let deadline = epoch_ms() + 2000;
        for ext in inner.extensions.iter_mut().filter(|e| e.shutdown) {
            ext.events.push_back(json!({
                "eventType": "SHUTDOWN",
                "shutdownReason": reason,
                "deadlineMs": deadline,
            }));
        }
        drop(inner);
        self.changed();
    }
}

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
}

/// `at` as the Telemetry API writes times (RFC 3339, UTC, milliseconds).
fn rfc3339(at: SystemTime) -> String {
    let ms = at.duration_since(UNIX_EPOCH).expect("clock").as_millis() as i64;
    let (days, rest) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1000 % 60,
        rest % 1000
    )
}

/// Sends a platform event of `kind` to every subscriber.
fn emit(inner: &mut Inner, kind: &str, record: Value) {
    let event = json!({"time": rfc3339(SystemTime::now()), "type": kind, "record": record});
    inner.platform_events.push(event.clone());
    inner.subscribers.retain(|s| s.send(event.clone()).is_ok());
}

/// Milliseconds from when the runtime took `inv` to its response.
fn duration_ms(inv: &Invoked) -> f64 {
    match (inv.handed, &inv.response) {
        (Some(handed), Some((at, _))) => at.duration_since(handed).as_micros() as f64 / 1000.0,
        _ => 0.0,
    }
}

fn runtime_done(inner: &mut Inner, inv: &Invoked) {
    let (status, error_type) = inv.outcome.clone().unwrap_or(("success", None));
    let mut record = json!({
        "requestId": inv.request_id,
        "status": status,
        "metrics": {"durationMs": duration_ms(inv), "producedBytes": 0},
    });
    if let Some(t) = error_type {
        record["errorType"] = json!(t);
    }
    emit(inner, "platform.runtimeDone", record);
}

fn report(inner: &mut Inner, inv: &Invoked, peak_mb: u64) {
    let (status, error_type) = inv.outcome.clone().unwrap_or(("success", None));
    let duration = duration_ms(inv);
    let mut record = json!({
        "requestId": inv.request_id,
        "status": status,
        "metrics": {
            "durationMs": duration,
            "billedDurationMs": duration.ceil() as u64,
            "memorySizeMB": inner.memory_size_mb,
            "maxMemoryUsedMB": peak_mb,
        },
    });
    if let Some(t) = error_type {
        record["errorType"] = json!(t);
    }
    emit(inner, "platform.report", record);
}

/// The API server, running on its own thread.
pub struct LambdaApi {
    /// `host:port`, as `AWS_LAMBDA_RUNTIME_API` wants it.
    pub address: String,
    shared: Arc<Shared>,
    _server: crate::Background,
}

impl LambdaApi {
    /// Starts the API on a free loopback port.
    pub fn start() -> Self {
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                capture: Some(Capture::Accept),
                memory_size_mb: 128,
                ..Inner::default()
            }),
            version: tokio::sync::watch::channel(0).0,
            started: Instant::now(),
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(runtime_next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(runtime_response),
            )
            .route(
                "/2018-06-01/runtime/invocation/{id}/error",
                post(runtime_response),
            )
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .route("/2020-01-01/extension/register", post(register))
            .route("/2020-01-01/extension/event/next", get(extension_next))
            .route("/2020-01-01/extension/init/error", post(init_error))
            .route("/2020-01-01/extension/exit/error", post(init_error))
            .route("/2022-07-01/telemetry", axum::routing::put(subscribe))
            .route("/v1/metrics", post(metrics))
            .with_state(Arc::clone(&shared));
        let server = crate::Background::start(move |listener, stop| async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stop.await;
                })
                .await;
        });
        LambdaApi {
            address: server.addr.to_string(),
            shared,
            _server: server,
        }
    }

    /// The base URL of its `/v1/metrics` receiver.
    pub fn receiver_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Starts `binary` as the function, against this API, with `env`; its
    /// stdout and stderr go to a log in `dir`.
    pub fn start_function(&self, dir: &Path, binary: &Path, env: &[(&str, &str)]) -> Process {
        self.spawn("lambda function", dir, Command::new(binary), env)
    }

    /// Starts `command` as `name` in this API's environment (the
    /// function's variables, then `env`); its output goes to a log in
    /// `dir`.
    pub fn spawn(
        &self,
        name: &'static str,
        dir: &Path,
        mut command: Command,
        env: &[(&str, &str)],
    ) -> Process {
        command
            .env("AWS_LAMBDA_RUNTIME_API", &self.address)
            .env("AWS_LAMBDA_FUNCTION_NAME", "orders")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env(
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                self.shared.lock().memory_size_mb.to_string(),
            )
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied());
        let log = dir.join(format!(
            "{}-{}.log",
            name.replace(' ', "-"),
            crate::free_port()
        ));
        Process::spawn(name, command, log)
    }

    /// Starts the extension `binary` (as Lambda starts extensions, before
    /// the runtime) with `env`, and waits until it is ready: registered,
    /// subscribed, asking for its first event.
    pub fn start_extension(&self, dir: &Path, binary: &Path, env: &[(&str, &str)]) -> Process {
        let mut extension = self.spawn("extension", dir, Command::new(binary), env);
        crate::wait_for("the extension's init", Duration::from_secs(30), || {
            extension.assert_running();
            self.extensions_ready() == 1
        });
        extension
    }

    /// The function's memory size (128 MB unless set): reported, and the
    /// most its runtime may take once [`LambdaApi::watch_runtime`] names
    /// it.
    pub fn set_memory_size(&self, mb: u64) {
        self.shared.lock().memory_size_mb = mb;
    }

    /// The runtime's process: its peak resident memory is reported, and it
    /// is killed (out of memory) when it grows past the memory size during
    /// an invocation.
    pub fn watch_runtime(&self, pid: u32) {
        self.shared.lock().runtime_pid = Some(pid);
    }

    /// Answers Telemetry API subscriptions 404 from now on, as an
    /// emulator without it does.
    pub fn without_telemetry(&self) {
        self.shared.lock().no_telemetry = true;
    }

    /// Every platform event sent to subscribers so far.
    pub fn platform_events(&self) -> Vec<Value> {
        self.shared.lock().platform_events.clone()
    }

    /// Sends SHUTDOWN (`spindown`, two seconds to go) to the extensions
    /// that registered for it.
    pub fn shutdown(&self) {
        let deadline = epoch_ms() + 2000;
        let mut inner = self.shared.lock();
        for ext in inner.extensions.iter_mut().filter(|e| e.shutdown) {
            ext.events.push_back(json!({
                "eventType": "SHUTDOWN",
                "shutdownReason": "spindown",
                "deadlineMs": deadline,
            }));
        }
        drop(inner);
        self.shared.changed();
    }

    /// What `/v1/metrics` does from now on.
    pub fn set_capture(&self, capture: Capture) {
        self.shared.lock().capture = Some(capture);
    }

    /// Per metric name, the sum and sample count of every batch
    /// `/v1/metrics` took ([`wire_totals`]).
    pub fn captured_totals(&self) -> std::collections::BTreeMap<String, (f64, usize)> {
        let batches: Vec<Value> = self.captured().into_iter().map(|(_, b)| b).collect();
        wire_totals(&batches)
    }

    /// How many pushes `/v1/metrics` took without answering
    /// ([`Capture::Hang`]).
    pub fn hung(&self) -> usize {
        self.shared.lock().hung
    }

    /// The batches `/v1/metrics` took (wire JSON), with their arrival times.
    pub fn captured(&self) -> Vec<(Instant, Value)> {
        self.shared.lock().captured.clone()
    }

    /// Invokes the function with `payload` and a deadline `timeout` from now,
    /// and waits (at most `timeout` plus two seconds) for its response.
    pub fn invoke(&self, payload: Value, timeout: Duration) -> Invoked {
        let sent = Instant::now();
        let deadline_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_millis() as u64
            + timeout.as_millis() as u64;
        let request_id = {
            let mut inner = self.shared.lock();
            inner.sequence += 1;
            let id = format!("req-{}", inner.sequence);
            inner.queue.push_back((id.clone(), payload, deadline_ms));
            inner.invocations.push(Invoked {
                request_id: id.clone(),
                sent,
                deadline: sent + timeout,
                response: None,
                frozen: None,
                extensions_idle: None,
                handed: None,
                outcome: None,
            });
            id
        };
        self.shared.changed();
        let limit = timeout + Duration::from_secs(2);
        loop {
            let invoked = self.invocation(&request_id);
            if invoked.response.is_some() || sent.elapsed() > limit {
                return invoked;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// The invocation `request_id` as seen now.
    pub fn invocation(&self, request_id: &str) -> Invoked {
        self.shared
            .lock()
            .invocations
            .iter()
            .find(|i| i.request_id == request_id)
            .cloned()
            .expect("an invocation this API made")
    }

    /// Waits (at most `limit`) for the environment to freeze after
    /// `request_id`; when it did.
    pub fn frozen(&self, request_id: &str, limit: Duration) -> Option<Instant> {
        let start = Instant::now();
        loop {
            if let Some(at) = self.invocation(request_id).frozen {
                return Some(at);
            }
            if start.elapsed() > limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// How many extensions registered.
    pub fn extensions(&self) -> usize {
        self.shared.lock().extensions.len()
    }

    /// How many extensions finished their init (asked for an event).
    pub fn extensions_ready(&self) -> usize {
        self.shared
            .lock()
            .extensions
            .iter()
            .filter(|e| e.ready)
            .count()
    }
}

type Api = State<Arc<Shared>>;

async fn runtime_next(State(shared): Api) -> Response {
    let mut version = shared.version.subscribe();
    {
        let mut inner = shared.lock();
        shared.idle(&mut inner, "runtime");
    }
    shared.changed();
    loop {
        {
            let mut inner = shared.lock();
            // Like Lambda, the first invocation waits for every extension's
            // init (its first request for an event).
            if inner.busy.is_empty()
                && !inner.ended
                && inner.extensions.iter().all(|e| e.ready)
                && let Some((id, payload, deadline_ms)) = inner.queue.pop_front()
            {
                if !inner.initialized {
                    inner.initialized = true;
                    let init_ms = shared.started.elapsed().as_secs_f64() * 1000.0;
                    let init = json!({"initializationType": "on-demand", "phase": "init"});
                    emit(&mut inner, "platform.initStart", init.clone());
                    let mut done = init.clone();
                    done["status"] = json!("success");
                    emit(&mut inner, "platform.initRuntimeDone", done);
                    let mut report = init;
                    report["metrics"] = json!({"durationMs": (init_ms * 1000.0).round() / 1000.0});
                    emit(&mut inner, "platform.initReport", report);
                }
                emit(
                    &mut inner,
                    "platform.start",
                    json!({"requestId": id, "version": "$LATEST"}),
                );
                if let Some(inv) = inner.invocations.iter_mut().find(|i| i.request_id == id) {
                    inv.handed = Some(Instant::now());
                }
                watch(
                    &shared,
                    &id,
                    deadline_ms,
                    inner.runtime_pid,
                    inner.memory_size_mb,
                );
                let event = json!({
                    "eventType": "INVOKE",
                    "deadlineMs": deadline_ms,
                    "requestId": id,
                    "invokedFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:orders",
                    "tracing": {"type": "X-Amzn-Trace-Id", "value": "Root=1-0-0"},
                });
                let mut busy = vec!["runtime".to_string()];
                for ext in inner.extensions.iter_mut().filter(|e| e.invoke) {
                    ext.events.push_back(event.clone());
                    busy.push(ext.id.clone());
                }
                inner.busy = busy;
                inner.current = Some(id.clone());
                drop(inner);
                shared.changed();
                let headers = [
                    ("lambda-runtime-aws-request-id", id),
                    ("lambda-runtime-deadline-ms", deadline_ms.to_string()),
                    (
                        "lambda-runtime-invoked-function-arn",
                        "arn:aws:lambda:us-east-1:123456789012:function:orders".to_string(),
                    ),
                    ("lambda-runtime-trace-id", "Root=1-0-0".to_string()),
                ];
                let mut response = payload.to_string().into_response();
                for (name, value) in headers {
                    if let Ok(v) = value.parse() {
                        response.headers_mut().insert(name, v);
                    }
                }
                return response;
            }
        }
        if version.changed().await.is_err() {
            return StatusCode::GONE.into_response();
        }
    }
}

async fn runtime_response(
    State(shared): Api,
    UrlPath(id): UrlPath<String>,
    uri: axum::http::Uri,
    body: Bytes,
) -> StatusCode {
    let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let error = uri.path().ends_with("/error");
    {
        let mut inner = shared.lock();
        if let Some(inv) = inner.invocations.iter_mut().find(|i| i.request_id == id)
            && inv.response.is_none()
        {
            if error {
                let error_type = value["errorType"].as_str().unwrap_or("Unhandled");
                inv.outcome = Some(("error", Some(error_type.to_string())));
            }
            inv.response = Some((Instant::now(), value));
            let inv = inv.clone();
            runtime_done(&mut inner, &inv);
        }
    }
    shared.changed();
    StatusCode::ACCEPTED
}

/// Watches invocation `id` on a thread of its own: ended at its deadline
/// if the runtime has not answered, or as soon as the runtime (when
/// known) holds more than `memory_mb` resident.
fn watch(shared: &Arc<Shared>, id: &str, deadline_ms: u64, pid: Option<u32>, memory_mb: u64) {
    let (shared, id) = (Arc::clone(shared), id.to_string());
    std::thread::spawn(move || {
        loop {
            if shared
                .lock()
                .invocations
                .iter()
                .any(|i| i.request_id == id && i.response.is_some())
            {
                return;
            }
            if epoch_ms() >= deadline_ms {
                shared.end(&id, "timeout", None, "timeout");
                return;
            }
            if let Some(pid) = pid
                && crate::proc_status_kib(pid, "VmRSS").is_some_and(|kib| kib > memory_mb * 1024)
            {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
                shared.end(&id, "error", Some("Runtime.OutOfMemory"), "failure");
                return;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    });
}

/// A Telemetry API subscription: the platform's events go to its
/// destination (`sandbox.localdomain` is this host), in order, from a
/// thread of its own.
async fn subscribe(State(shared): Api, body: Bytes) -> Response {
    if shared.lock().no_telemetry {
        return (StatusCode::NOT_FOUND, "no Telemetry API here").into_response();
    }
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some(uri) = request["destination"]["URI"].as_str() else {
        return (StatusCode::BAD_REQUEST, "no destination URI").into_response();
    };
    let url = uri.replace("sandbox.localdomain", "127.0.0.1");
    // Lambda buffers events as the subscription asks (its defaults: 1 s,
    // 10,000 events): a batch goes when it is full or when its first
    // event has waited `timeoutMs`.
    let buffering = &request["buffering"];
    let timeout = Duration::from_millis(buffering["timeoutMs"].as_u64().unwrap_or(1000));
    let max_items = buffering["maxItems"].as_u64().unwrap_or(10_000) as usize;
    let (send, receive) = std::sync::mpsc::channel::<Value>();
    std::thread::spawn(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        while let Ok(first) = receive.recv() {
            let due = Instant::now() + timeout;
            let mut batch = vec![first];
            while batch.len() < max_items {
                match receive.recv_timeout(due.saturating_duration_since(Instant::now())) {
                    Ok(event) => batch.push(event),
                    Err(_) => break,
                }
            }
            let body = Value::Array(batch).to_string();
            // The listener is up before it subscribes: a refusal is a bug
            // the extension's log shows, not something to wait out.
            if let Err(e) = agent
                .post(&url)
                .header("content-type", "application/json")
                .send(body.as_bytes())
            {
                eprintln!("telemetry delivery to {url} failed: {e}");
            }
        }
    });
    shared.lock().subscribers.push(send);
    "OK".into_response()
}

async fn init_error(body: Bytes) -> StatusCode {
    eprintln!("init/exit error: {}", String::from_utf8_lossy(&body));
    StatusCode::ACCEPTED
}

async fn register(State(shared): Api, headers: HeaderMap, body: Bytes) -> Response {
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let registered = |event: &str| {
        request["events"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e == event))
    };
    let (invoke, shutdown) = (registered("INVOKE"), registered("SHUTDOWN"));
    let name = headers
        .get("lambda-extension-name")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unnamed");
    let id = {
        let mut inner = shared.lock();
        let id = format!("{name}-{}", inner.extensions.len());
        inner.extensions.push(Extension {
            id: id.clone(),
            invoke,
            shutdown,
            ready: false,
            events: VecDeque::new(),
        });
        id
    };
    let mut response = json!({
        "functionName": "orders",
        "functionVersion": "$LATEST",
        "handler": "bootstrap",
    })
    .to_string()
    .into_response();
    if let Ok(v) = id.parse() {
        response
            .headers_mut()
            .insert("lambda-extension-identifier", v);
    }
    response
}

async fn extension_next(State(shared): Api, headers: HeaderMap) -> Response {
    let id = headers
        .get("lambda-extension-identifier")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let mut version = shared.version.subscribe();
    {
        let mut inner = shared.lock();
        if let Some(ext) = inner.extensions.iter_mut().find(|e| e.id == id) {
            ext.ready = true;
        }
        shared.idle(&mut inner, &id);
    }
    shared.changed();
    loop {
        {
            let mut inner = shared.lock();
            let Some(ext) = inner.extensions.iter_mut().find(|e| e.id == id) else {
                return StatusCode::FORBIDDEN.into_response();
            };
            if let Some(event) = ext.events.pop_front() {
                return event.to_string().into_response();
            }
        }
        if version.changed().await.is_err() {
            return StatusCode::GONE.into_response();
        }
    }
}

async fn metrics(State(shared): Api, headers: HeaderMap, body: Bytes) -> Response {
    let arrived = Instant::now();
    let capture = shared.lock().capture.unwrap_or(Capture::Accept);
    match capture {
        Capture::Unavailable => {
            return (StatusCode::SERVICE_UNAVAILABLE, "down for the test").into_response();
        }
        Capture::Hang => {
            shared.lock().hung += 1;
            std::future::pending::<()>().await;
        }
        Capture::Accept => {}
    }
    let gzip = headers
        .get("content-encoding")
        .is_some_and(|v| v.as_bytes() == b"gzip");
    let json = if gzip {
        let mut out = Vec::new();
        let _ = std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut out);
        out
    } else {
        body.to_vec()
    };
    // Captured in wire v1's JSON shape, whichever format came.
    let content_type = headers
        .get("content-type")
        .map_or(&b""[..], |v| v.as_bytes());
    let binary = if content_type == edgepush::wire::v2::CONTENT_TYPE.as_bytes() {
        Some(edgepush::wire::v2::decode(&json))
    } else if content_type == edgepush::wire::v3::CONTENT_TYPE.as_bytes() {
        Some(edgepush::wire::v3::decode(&json))
    } else {
        None
    };
    let value: Value = match binary {
        Some(batch) => batch
            .ok()
            .and_then(|batch| serde_json::to_value(batch).ok())
            .unwrap_or(Value::Null),
        None => serde_json::from_slice(&json).unwrap_or(Value::Null),
    };
    let points = value["points"].as_array().map_or(0, Vec::len);
    shared.lock().captured.push((arrived, value));
    axum::Json(json!({"accepted": points, "rejected": []})).into_response()
}

/// Starts the extension's example function in `language` (`python` or
/// `node`: `emitter/extension/examples/<language>/`) under its bootstrap
/// (what Lambda's managed runtime does) against `api`, with `env`. The
/// Node.js one runs from a copy in `dir` beside the tests' `node_modules`
/// (`tests/workerd`, which has the example's OpenTelemetry packages).
pub fn start_extension_example(
    api: &LambdaApi,
    dir: &Path,
    language: &str,
    env: &[(&str, &str)],
) -> Process {
    let example = crate::repo_root()
        .join("emitter/extension/examples")
        .join(language);
    let command = match language {
        "python" => {
            let mut python = Command::new(crate::tool("EDGEPUSH_PYTHON", "python", "python3"));
            python.arg("bootstrap.py").current_dir(&example);
            python
        }
        "node" => {
            let copy = dir.join("node-example");
            std::fs::create_dir_all(&copy).expect("example folder");
            for file in ["index.mjs", "bootstrap.mjs", "package.json"] {
                std::fs::copy(example.join(file), copy.join(file)).expect("copy the example");
            }
            let modules = copy.join("node_modules");
            if !modules.exists() {
                std::os::unix::fs::symlink(
                    crate::repo_root().join("tests/workerd/node_modules"),
                    &modules,
                )
                .expect("link node_modules");
            }
            let mut node = Command::new(crate::node());
            node.arg("bootstrap.mjs").current_dir(&copy);
            node
        }
        other => panic!("no example in {other}"),
    };
    let function = api.spawn("example function", dir, command, env);
    api.watch_runtime(function.child_id());
    function
}

/// Builds the `lambda-example` binary (debug) and returns its path.
pub fn lambda_example_binary() -> std::path::PathBuf {
    crate::debug_binary("lambda-example", "lambda-example")
}

/// The EMF documents among a function's output lines.
pub fn emf_documents(log: &str) -> Vec<Value> {
    log.lines()
        .filter(|l| l.starts_with('{') && l.contains("\"_aws\""))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Per metric name: the sum and number of values in EMF documents.
pub fn emf_totals(docs: &[Value]) -> std::collections::BTreeMap<String, (f64, usize)> {
    let mut totals = std::collections::BTreeMap::new();
    for doc in docs {
        for metric in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let name = metric["Name"].as_str().unwrap_or_default().to_string();
            let values: Vec<f64> = match &doc[&name] {
                Value::Array(a) => a.iter().filter_map(Value::as_f64).collect(),
                v => v.as_f64().into_iter().collect(),
            };
            let entry = totals.entry(name).or_insert((0.0, 0));
            entry.0 += values.iter().sum::<f64>();
            entry.1 += values.len();
        }
    }
    totals
}

/// Per metric name: the sum and sample count of the points in wire batches.
pub fn wire_totals<'a>(
    batches: impl IntoIterator<Item = &'a Value>,
) -> std::collections::BTreeMap<String, (f64, usize)> {
    let mut totals = std::collections::BTreeMap::new();
    for batch in batches {
        for point in batch["points"].as_array().into_iter().flatten() {
            let series = &batch["series"][point["s"].as_u64().unwrap_or(0) as usize];
            let name = series["n"].as_str().unwrap_or_default().to_string();
            // Gauges and statistic sets: [count, sum, min, max].
            let (sum, count) = if let Some(st) = point["st"].as_array() {
                let f = |i: usize| st.get(i).and_then(Value::as_f64).unwrap_or(0.0);
                (f(1), f(0) as usize)
            } else if let Some(vs) = point["vs"].as_array() {
                let cs: Vec<f64> = point["cs"]
                    .as_array()
                    .map(|c| c.iter().filter_map(Value::as_f64).collect())
                    .unwrap_or_else(|| vec![1.0; vs.len()]);
                let sum = vs
                    .iter()
                    .zip(&cs)
                    .map(|(v, c)| v.as_f64().unwrap_or(0.0) * c)
                    .sum();
                (sum, cs.iter().sum::<f64>() as usize)
            } else {
                (point["x"].as_f64().unwrap_or(0.0), 1)
            };
            let entry = totals.entry(name).or_insert((0.0, 0));
            entry.0 += sum;
            entry.1 += count;
        }
    }
    totals
}

/// `cargo lambda watch` serving the `lambda-example` function: the Lambda
/// emulator users run locally.
pub struct CargoLambdaWatch {
    /// Where invocations go.
    pub invoke_url: String,
    /// The emulator, with the function's output in its log.
    pub process: Process,
}

impl CargoLambdaWatch {
    /// Starts the emulator for `lambda-example` with `env` for the
    /// function, and waits until it listens.
    pub fn start(dir: &Path, env: &[(&str, &str)]) -> Self {
        Self::spawn(dir, "lambda-example", false, env)
    }

    /// The emulator serving binary `bin` of `lambda-example`, built in
    /// release mode (for benchmarks).
    pub fn start_release(dir: &Path, bin: &str, env: &[(&str, &str)]) -> Self {
        Self::spawn(dir, bin, true, env)
    }

    fn spawn(dir: &Path, bin: &str, release: bool, env: &[(&str, &str)]) -> Self {
        let port = crate::free_port();
        let mut command = Command::new(crate::tool(
            "EDGEPUSH_CARGO_LAMBDA",
            "cargo-lambda",
            "cargo-lambda",
        ));
        command
            .args([
                "lambda",
                "watch",
                "--ignore-changes",
                "--invoke-address",
                "127.0.0.1",
            ])
            .args(["--invoke-port", &port.to_string()])
            .args(release.then_some("--release"))
            .current_dir(crate::repo_root().join("lambda-example"));
        for (name, value) in env {
            command.arg("--env-var").arg(format!("{name}={value}"));
        }
        let mut process = Process::spawn(
            "cargo lambda watch",
            command,
            dir.join(format!("watch-{port}.log")),
        );
        // Any request to the port is an invocation: look for the listener instead.
        crate::wait_for("cargo lambda watch", Duration::from_secs(60), || {
            process.assert_running();
            Command::new("ss")
                .args(["-ltnH", &format!("sport = :{port}")])
                .output()
                .is_ok_and(|o| !o.stdout.is_empty())
        });
        CargoLambdaWatch {
            invoke_url: format!("http://127.0.0.1:{port}/2015-03-31/functions/{bin}/invocations"),
            process,
        }
    }

    /// Invokes the function with `payload`; its answer.
    pub fn invoke(&self, payload: &Value) -> Value {
        let (status, answer) = crate::post(&self.invoke_url, &[], payload.to_string().as_bytes());
        assert_eq!(
            status,
            200,
            "invocation failed: {answer}\n{}",
            self.process.log_text()
        );
        answer
    }
}
