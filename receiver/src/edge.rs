//! The receiver as a Cloudflare Worker: the same ingest, validation and sinks
//! as the native server. Only the HTTP client (`fetch`), the clock (JS
//! `Date`) and the configuration (vars and secrets, see
//! [`crate::env_config`]) differ.
//!
//! Two delivery modes:
//! - **inline** (no queue bound): each push is forwarded before it is
//!   answered: `202` when every sink took it, `503` when a sink was down or
//!   throttling after retries, so the emitter keeps the batch and sends it
//!   again, same id.
//! - **queued** (a Queue bound as `EDGEPUSH_QUEUE`): each push is validated,
//!   enqueued as one message per sink ([`crate::queue_message`]) and answered
//!   `202` at once; the queue consumer forwards, acks what a sink took and
//!   retries the rest with exponential backoff: after as long as the message
//!   has waited so far, at least `EDGEPUSH_RETRY_DELAY_SECONDS` (default 30),
//!   at most an hour.
//!   After the queue's `max_retries` a message goes to its dead-letter queue,
//!   whose consumer keeps it in the KV namespace `EDGEPUSH_DEAD_LETTERS`,
//!   listed by `GET /v1/dead-letters`.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use worker::{
    Cache, Context, Date, Delay, Env, Fetch, Headers, MessageBatch, MessageExt, Method,
    QueueContentType, QueueRetryOptionsBuilder, RawMessageBuilder, Request, RequestInit, Response,
    event, js_sys,
};

use crate::decode::Format;
use crate::env_config;
use crate::error::Error;
use crate::ingest;
use crate::queue_message::{self, SinkTag};
use crate::sink::{Client, Encoder, Reply, Retry, SinkAnswer, deliver, parse_retry_after, skipped};
use crate::tenant::{self, RateLimiter};

/// `fetch` as the sinks' [`Client`], JS timers between retries.
struct FetchClient;

impl Client for FetchClient {
    async fn send(&self, request: &http::Request<Vec<u8>>) -> Reply {
        let headers = Headers::new();
        for (name, value) in request.headers() {
            let value = value.to_str().map_err(|e| e.to_string())?;
            headers
                .set(name.as_str(), value)
                .map_err(|e| e.to_string())?;
        }
        let mut init = RequestInit::new();
        init.with_method(Method::from(request.method().as_str().to_string()))
            .with_headers(headers)
            .with_body(Some(
                js_sys::Uint8Array::from(request.body().as_slice()).into(),
            ));
        let outgoing =
            Request::new_with_init(&request.uri().to_string(), &init).map_err(|e| e.to_string())?;
        let mut response = Fetch::Request(outgoing)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let retry_after = response
            .headers()
            .get("retry-after")
            .ok()
            .flatten()
            .and_then(|v| parse_retry_after(&v));
        let body = response.bytes().await.map_err(|e| e.to_string())?;
        Ok(SinkAnswer {
            status: response.status_code(),
            retry_after,
            body,
        })
    }

    async fn sleep(&self, duration: Duration) {
        Delay::from(duration).await;
    }
}

/// The Worker's clock: JS `Date` (`SystemTime::now` is not available in wasm).
fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(Date::now().as_millis())
}

fn json(status: u16, body: String) -> worker::Result<Response> {
    let response = Response::from_bytes(body.into_bytes())?.with_status(status);
    response.headers().set("content-type", "application/json")?;
    Ok(response)
}

fn reply(reply: ingest::Reply) -> worker::Result<Response> {
    let response = Response::from_bytes(reply.body)?.with_status(reply.status);
    if let Some(content_type) = reply.content_type {
        response.headers().set("content-type", content_type)?;
    }
    if let Some(seconds) = reply.retry_after {
        response
            .headers()
            .set("retry-after", &seconds.to_string())?;
    }
    Ok(response)
}

fn error(e: &Error) -> worker::Result<Response> {
    let response = json(e.status, e.to_json())?;
    if let Some(seconds) = e.retry_after {
        response
            .headers()
            .set("retry-after", &seconds.to_string())?;
    }
    Ok(response)
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    let path = req.path();
    if path == "/healthz" && req.method() == Method::Get {
        return json(200, r#"{"status":"ok"}"#.to_string());
    }
    if path == "/ping" && matches!(req.method(), Method::Get | Method::Head) {
        // InfluxDB clients and Telegraf ping before they write.
        let response = Response::empty()?.with_status(204);
        response.headers().set("x-influxdb-version", "edgepush")?;
        return Ok(response);
    }
    if path == DEAD_LETTERS_PATH && req.method() == Method::Get {
        return dead_letters(&req, &env).await;
    }
    // The query is read from the URL string as the runtime serialised it:
    // `worker::Request::url` would parse it again with the `url` crate,
    // whose parser and IDNA tables were 20 KB of the gzip'd Worker.
    let url = req.inner().url();
    let content_type = req.headers().get("content-type")?;
    let format = match Format::route(
        req.method().as_ref(),
        &path,
        crate::decode::url_query(&url),
        content_type.as_deref(),
    ) {
        Ok(Some(format)) => format,
        Ok(None) => {
            return error(&Error::new(
                404,
                "not_found",
                format!(
                    "no such path; push to POST {} (edgepush or OTLP), POST /write or \
                     /api/v2/write (line protocol), or PUT/POST /metrics/job/<job> (Prometheus text)",
                    edgepush_protocol::wire::PATH
                ),
            ));
        }
        Err(e) => return error(&e),
    };
    push(req, &env, format).await
}

async fn push(mut req: Request, env: &Env, format: Format) -> worker::Result<Response> {
    let refuse = |e: &Error| reply(ingest::refusal(Some(&format), e));
    let config = match settings(env) {
        Ok(config) => config,
        Err(message) => return refuse(&Error::new(500, "misconfigured", message)),
    };
    let (ingest, sinks) = &*config;
    let max = ingest.limits.max_body_bytes;
    let declared = req
        .headers()
        .get("content-length")?
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > max) {
        return refuse(&ingest::body_too_large(max));
    }
    let body = req.bytes().await?;
    let header = |name: &str| req.headers().get(name).ok().flatten();
    let (content_type, content_encoding, authorization, signature, namespace) = (
        header("content-type"),
        header("content-encoding"),
        header("authorization"),
        header(edgepush_protocol::sign::HEADER),
        header(ingest::NAMESPACE_HEADER),
    );
    let headers = ingest::Headers {
        content_type: content_type.as_deref(),
        content_encoding: content_encoding.as_deref(),
        authorization: authorization.as_deref(),
        signature: signature.as_deref(),
        namespace: namespace.as_deref(),
    };
    let now = now();
    let now_ms = Date::now().as_millis() as i64;
    let caller = match ingest.authenticate_push(&format, headers, &body, now_ms) {
        Ok(caller) => caller,
        Err(e) => return refuse(&e),
    };
    // A signature is remembered in the Cache API of this data centre until
    // it would be stale anyway.
    if let Some((mac, until_ms)) = caller.signature {
        let key = format!("https://edgepush.invalid/signature/{}", hex::encode(mac));
        if seen_value(&key).await.is_some() {
            return refuse(&tenant::replayed());
        }
        remember(&key, 1, ((until_ms - now_ms) / 1000).max(1) as u64).await;
    }
    let decoded =
        RATES.with(|rates| ingest.decode_within(rates, &caller, &format, headers, &body, now_ms));
    let decoded = match decoded {
        Ok(d) => d,
        Err(e) => return refuse(&e),
    };
    let mut answer = ingest::answer_for(&decoded);
    let dedupe_seconds = setting(env, "EDGEPUSH_DEDUPE_SECONDS")
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(900);
    let seen_key = seen_url(
        ingest.tenants.name(&caller),
        &decoded.batch.namespace,
        &decoded.batch.id,
    );
    if dedupe_seconds > 0 && seen_value(&seen_key).await.is_some() {
        answer.duplicate = true;
        return reply(ingest::reply(&format, &answer));
    }
    if let Ok(queue) = env.queue(QUEUE_BINDING) {
        if !answer.all_refused() && !decoded.batch.points.is_empty() {
            for sink in sinks {
                for message in queue_message::encode(&decoded.batch, sink.tag()) {
                    let raw =
                        RawMessageBuilder::new(js_sys::Uint8Array::from(message.as_slice()).into())
                            .build_with_content_type(QueueContentType::V8);
                    if let Err(e) = queue.send_raw(raw).await {
                        // Messages already sent are delivered; the client's
                        // retry of the whole batch may repeat them.
                        return refuse(&Error::new(
                            503,
                            "queue_unavailable",
                            format!("cannot enqueue the batch: {e}"),
                        ));
                    }
                }
            }
            remember(&seen_key, usize::MAX, dedupe_seconds).await;
        }
        return reply(ingest::reply(&format, &answer));
    }
    if !answer.all_refused() && !decoded.batch.points.is_empty() {
        let batch = &decoded.batch;
        let mut failures = Vec::new();
        for (index, sink) in sinks.iter().enumerate() {
            // A sink that took this batch, or part of it, on an earlier try
            // is sent only what it did not take.
            let sink_seen = format!("{seen_key}/{index}");
            let done = if dedupe_seconds > 0 {
                seen_value(&sink_seen).await.unwrap_or(0)
            } else {
                0
            };
            if done >= batch.points.len() {
                continue;
            }
            let rest = batch.from_point(done);
            let delivered = deliver(&FetchClient, sink, &rest, now, Retry::default()).await;
            match skipped(delivered, done) {
                Ok(refusals) => {
                    remember(&sink_seen, usize::MAX, dedupe_seconds).await;
                    ingest::sink_refused(&mut answer, &decoded, refusals);
                }
                Err(f) => {
                    if f.retryable && f.done > 0 {
                        remember(&sink_seen, f.done, dedupe_seconds).await;
                    }
                    failures.push(f);
                }
            }
        }
        if let Some(e) = ingest::sink_failure(&failures) {
            return refuse(&e);
        }
        remember(&seen_key, usize::MAX, dedupe_seconds).await;
    }
    reply(ingest::reply(&format, &answer))
}

/// The Cache API key that marks a batch as delivered (see
/// [`crate::dedupe`]: per data centre, and a no-op on `*.workers.dev`).
fn seen_url(tenant: &str, namespace: &str, id: &str) -> String {
    let tenant: String = form_urlencoded::byte_serialize(tenant.as_bytes()).collect();
    let namespace: String = form_urlencoded::byte_serialize(namespace.as_bytes()).collect();
    format!("https://edgepush.invalid/seen/{tenant}/{namespace}/{id}")
}

thread_local! {
    /// Per-tenant rates, per isolate: a best effort, since Cloudflare runs
    /// many isolates (see docs/security.md).
    static RATES: RateLimiter = RateLimiter::default();
}

/// The value remembered under `key` (how many points a sink took; any
/// number for a batch or signature seen), if any.
async fn seen_value(key: &str) -> Option<usize> {
    let mut response = Cache::default().get(key, true).await.ok()??;
    let text = response.text().await.ok()?;
    Some(text.trim().parse().unwrap_or(usize::MAX))
}

/// Remembers `value` under `key` for `seconds`; a failure to do so only
/// loses the dedupe.
async fn remember(key: &str, value: usize, seconds: u64) {
    if seconds == 0 {
        return;
    }
    let Ok(response) = Response::ok(value.to_string()) else {
        return;
    };
    if response
        .headers()
        .set("cache-control", &format!("max-age={seconds}"))
        .is_ok()
    {
        let _ = Cache::default().put(key, response).await;
    }
}

/// The producer binding that switches on queued delivery.
const QUEUE_BINDING: &str = "EDGEPUSH_QUEUE";
/// The KV namespace the dead-letter consumer keeps messages in.
const DEAD_LETTERS_BINDING: &str = "EDGEPUSH_DEAD_LETTERS";
/// Where the dead letters are listed.
const DEAD_LETTERS_PATH: &str = "/v1/dead-letters";
/// The longest wait between two tries of a queued message.
const MAX_RETRY_DELAY_SECONDS: u64 = 3600;
/// How long a dead letter is kept (Queues keep messages 14 days at most too).
const DEAD_LETTER_TTL_SECONDS: u64 = 14 * 24 * 3600;

/// The ingest settings and the sinks.
type Settings = (ingest::Ingest, Vec<crate::sink::Sink>);

thread_local! {
    /// The settings, read once per isolate: vars and secrets stay the same
    /// for an isolate's life (a deployment or a changed secret starts new
    /// isolates). Parsing them again on every request was 2% of a push.
    static SETTINGS: RefCell<Option<Rc<Settings>>> = const { RefCell::new(None) };
}

/// The Worker's configuration, or why it cannot run: its settings, and the
/// runtime's zlib that every gzip goes through (`crate::gzip`). Only a
/// configuration that works is kept: one that does not is read again, and
/// refused again, on every request.
fn settings(env: &Env) -> Result<Rc<Settings>, String> {
    if let Some(settings) = SETTINGS.with_borrow(Option::clone) {
        return Ok(settings);
    }
    if let Some(reason) = crate::gzip::unavailable() {
        return Err(reason);
    }
    let settings = Rc::new(env_config::from_settings(|n| setting(env, n))?);
    SETTINGS.set(Some(Rc::clone(&settings)));
    Ok(settings)
}

fn setting(env: &Env, name: &str) -> Option<String> {
    env.secret(name)
        .map(|s| s.to_string())
        .or_else(|_| env.var(name).map(|v| v.to_string()))
        .ok()
}

/// Lists the dead letters' keys (`<time>-<batch id>-<sink>`), newest last.
async fn dead_letters(req: &Request, env: &Env) -> worker::Result<Response> {
    let config = match settings(env) {
        Ok(config) => config,
        Err(message) => return error(&Error::new(500, "misconfigured", message)),
    };
    let (ingest, _) = &*config;
    let authorization = req.headers().get("authorization")?;
    let signature = req.headers().get(edgepush_protocol::sign::HEADER)?;
    let headers = ingest::Headers {
        authorization: authorization.as_deref(),
        signature: signature.as_deref(),
        ..ingest::Headers::default()
    };
    if let Err(e) = ingest.authenticate(headers, b"", Date::now().as_millis() as i64) {
        return error(&e);
    }
    let Ok(kv) = env.kv(DEAD_LETTERS_BINDING) else {
        return error(&Error::new(
            404,
            "not_found",
            format!("no KV namespace bound as {DEAD_LETTERS_BINDING}"),
        ));
    };
    let list = kv
        .list()
        .execute()
        .await
        .map_err(|e| worker::Error::RustError(e.to_string()))?;
    let names: Vec<String> = list.keys.into_iter().map(|k| k.name).collect();
    // Serialising strings cannot fail; `to_string` rather than `Value`'s
    // Display keeps the pretty printer out of the wasm.
    let body = serde_json::to_string(&serde_json::json!({ "dead_letters": names }));
    json(200, body.unwrap_or_default())
}

/// Queue consumer: forwards queued batches, or keeps dead letters.
#[event(queue)]
async fn consume(
    batch: MessageBatch<serde_json::Value>,
    env: Env,
    _ctx: Context,
) -> worker::Result<()> {
    let dead_letter_queue = setting(&env, "EDGEPUSH_DEAD_LETTER_QUEUE")
        .unwrap_or_else(|| "edgepush-dead-letters".into());
    if batch.queue() == dead_letter_queue {
        return keep_dead_letters(batch, &env).await;
    }
    let config = match settings(&env) {
        Ok(config) => config,
        Err(message) => {
            // Nothing can be delivered until the settings are fixed: keep
            // every message in the queue.
            worker::console_error!("edgepush: {message}");
            batch.retry_all();
            return Ok(());
        }
    };
    let (ingest, sinks) = &*config;
    let base_delay = setting(&env, "EDGEPUSH_RETRY_DELAY_SECONDS")
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(30);
    for message in batch.raw_iter() {
        let bytes = js_sys::Uint8Array::new(&message.body()).to_vec();
        let now_ms = Date::now().as_millis() as i64;
        let outcome = match queue_message::decode(&bytes, now_ms, &ingest.limits) {
            Err(e) => Err(e.to_string()),
            Ok((tag, points)) => match sinks.iter().find(|s| s.tag() == tag) {
                None => Err(format!("no {tag:?} sink is configured")),
                Some(sink) => {
                    let quick = Retry {
                        attempts: 2,
                        backoff: Duration::from_millis(200),
                        ..Retry::default()
                    };
                    match deliver(&FetchClient, sink, &points, now(), quick).await {
                        Ok(refusals) => {
                            for r in refusals {
                                worker::console_error!(
                                    "edgepush: {} refused {} points of batch {}: {}",
                                    r.sink,
                                    r.points.len(),
                                    points.id,
                                    r.message
                                );
                            }
                            Ok(())
                        }
                        // Part taken: the rest goes back to the queue as a
                        // new message, so the part is not sent again.
                        Err(f) if f.retryable && f.done > 0 => {
                            worker::console_warn!(
                                "edgepush: {} took {} points of batch {}, then: {}; requeueing the rest",
                                f.sink,
                                f.done,
                                points.id,
                                f.message
                            );
                            requeue(&env, &points.from_point(f.done), tag)
                                .await
                                .map_err(|e| {
                                    format!(
                                        "{}: {}; cannot requeue the rest: {e}",
                                        f.sink, f.message
                                    )
                                })
                        }
                        Err(f) => Err(format!("{}: {}", f.sink, f.message)),
                    }
                }
            },
        };
        match outcome {
            Ok(()) => message.ack(),
            Err(reason) => {
                worker::console_warn!("edgepush: message {} not delivered: {reason}", message.id());
                // Exponential backoff without an attempt counter (the
                // runtime does not expose it): wait as long as the message
                // has already waited, at least the base delay.
                let age = Date::now()
                    .as_millis()
                    .saturating_sub(message.timestamp().as_millis())
                    / 1000;
                let delay = age.clamp(base_delay, MAX_RETRY_DELAY_SECONDS.max(base_delay));
                let retry = QueueRetryOptionsBuilder::new()
                    .with_delay_seconds(u32::try_from(delay).unwrap_or(u32::MAX))
                    .build();
                message.retry_with_options(&retry);
            }
        }
    }
    Ok(())
}

/// Sends `batch` to the queue again, for the sink `tag` names.
async fn requeue(env: &Env, batch: &crate::model::Batch, tag: SinkTag) -> Result<(), String> {
    let queue = env.queue(QUEUE_BINDING).map_err(|e| e.to_string())?;
    for message in queue_message::encode(batch, tag) {
        let raw = RawMessageBuilder::new(js_sys::Uint8Array::from(message.as_slice()).into())
            .build_with_content_type(QueueContentType::V8);
        queue.send_raw(raw).await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

async fn keep_dead_letters(
    batch: MessageBatch<serde_json::Value>,
    env: &Env,
) -> worker::Result<()> {
    let Ok(kv) = env.kv(DEAD_LETTERS_BINDING) else {
        worker::console_error!(
            "edgepush: dead letters arrive but no KV namespace is bound as {DEAD_LETTERS_BINDING}"
        );
        batch.retry_all();
        return Ok(());
    };
    for message in batch.raw_iter() {
        let bytes = js_sys::Uint8Array::new(&message.body()).to_vec();
        let (id, sink) = match queue_message::peek(&bytes) {
            Some((tag, id)) => (id, format!("{tag:?}")),
            None => (message.id(), "undecodable".to_string()),
        };
        let key = format!("{}-{id}-{sink}", Date::now().as_millis());
        let stored = match kv.put_bytes(&key, &bytes) {
            Ok(put) => put
                .expiration_ttl(DEAD_LETTER_TTL_SECONDS)
                .execute()
                .await
                .is_ok(),
            Err(_) => false,
        };
        if stored {
            message.ack();
        } else {
            message.retry();
        }
    }
    Ok(())
}
