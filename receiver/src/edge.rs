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
    Cache, Context, Date, Delay, Env, Fetch, Headers, MessageBatch, MessageExt, Method, Queue,
    QueueContentType, QueueRetryOptionsBuilder, RawMessageBuilder, Request, RequestInit, Response,
    event, js_sys,
};

use crate::env_config;
use crate::error::Error;
use crate::ingest;
use crate::model::Batch;
use crate::pipeline::{self, Dispatch, Head, Host, SeenKey, Taken};
use crate::queue_message::{self, SinkTag};
use crate::sink::{
    Client, Encoder, Reply, Retry, SinkAnswer, SinkFailure, deliver, parse_retry_after, skipped,
};
use crate::tenant::{self, Caller, RateLimiter};

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
    let method = req.method();
    let header = |name: &str| req.headers().get(name).ok().flatten();
    let (content_type, content_encoding, authorization, signature, namespace, length) = (
        header("content-type"),
        header("content-encoding"),
        header("authorization"),
        header(edgepush_protocol::sign::HEADER),
        header(ingest::NAMESPACE_HEADER),
        header("content-length"),
    );
    let head = Head {
        method: method.as_ref(),
        path: &path,
        query: crate::decode::url_query(&url),
        content_length: length.and_then(|v| v.parse().ok()),
        headers: ingest::Headers {
            content_type: content_type.as_deref(),
            content_encoding: content_encoding.as_deref(),
            authorization: authorization.as_deref(),
            signature: signature.as_deref(),
            namespace: namespace.as_deref(),
        },
    };
    let format = match pipeline::route(&head) {
        Ok(format) => format,
        Err(refused) => return reply(refused),
    };
    let settings = match settings(&env) {
        Ok(settings) => settings,
        Err(message) => {
            let e = Error::new(500, "misconfigured", message);
            return reply(ingest::refusal(Some(&format), &e));
        }
    };
    let host = EdgeHost {
        settings,
        queue: env.queue(QUEUE_BINDING).ok(),
        dedupe_seconds: setting(&env, "EDGEPUSH_DEDUPE_SECONDS")
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(900),
        now: now(),
    };
    reply(pipeline::push(&format, &head, req, &host).await)
}

/// The Worker as the pipeline's host: the body read by the runtime, the
/// JS clock, replays and dedupe in this data centre's Cache API, delivery
/// inline through `fetch` or, with a queue bound, queued.
struct EdgeHost {
    settings: Rc<Settings>,
    queue: Option<Queue>,
    dedupe_seconds: u64,
    /// When the push arrived: requests to the sinks are signed at this time.
    now: SystemTime,
}

impl Host for EdgeHost {
    type Body = Request;
    type Bytes = Vec<u8>;

    fn ingest(&self) -> &ingest::Ingest {
        &self.settings.ingest
    }

    fn rates(&self) -> &RateLimiter {
        &self.settings.rates
    }

    fn now_ms(&self) -> i64 {
        Date::now().as_millis() as i64
    }

    async fn read_body(&self, mut body: Request, _max: usize) -> Result<Vec<u8>, Error> {
        body.bytes().await.map_err(|e| {
            Error::new(400, "unreadable_body", format!("cannot read the body: {e}")).field("body")
        })
    }

    /// A signature is remembered in the Cache API of this data centre until
    /// it would be stale anyway.
    async fn check_replay(&self, caller: &Caller, now_ms: i64) -> Result<(), Error> {
        if let Some((mac, until_ms)) = caller.signature {
            let key = format!("https://edgepush.invalid/signature/{}", hex::encode(mac));
            if seen_value(&key).await.is_some() {
                return Err(tenant::replayed());
            }
            remember(&key, 1, ((until_ms - now_ms) / 1000).max(1) as u64).await;
        }
        Ok(())
    }

    async fn seen(&self, key: SeenKey<'_>) -> Option<usize> {
        if self.dedupe_seconds == 0 {
            return None;
        }
        seen_value(&seen_url(key)).await
    }

    async fn remember(&self, key: SeenKey<'_>, value: usize) {
        remember(&seen_url(key), value, self.dedupe_seconds).await;
    }

    fn dispatch(&self) -> Dispatch {
        if self.queue.is_some() {
            Dispatch::Queued
        } else {
            Dispatch::Inline
        }
    }

    fn sinks(&self) -> usize {
        self.settings.sinks.len()
    }

    fn sink_name(&self, index: usize) -> &'static str {
        self.settings.sinks[index].name()
    }

    fn sink_tag(&self, index: usize) -> Option<SinkTag> {
        Some(self.settings.sinks[index].tag())
    }

    async fn deliver(
        &self,
        index: usize,
        batch: &Batch,
        from: usize,
    ) -> Result<Taken, SinkFailure> {
        let sink = &self.settings.sinks[index];
        let rest = batch.from_point(from);
        let delivered = deliver(&FetchClient, sink, &rest, self.now, Retry::default()).await;
        skipped(delivered, from).map(|refusals| Taken {
            refusals,
            spooled: false,
        })
    }

    async fn enqueue(&self, message: Vec<u8>) -> Result<(), String> {
        let Some(queue) = &self.queue else {
            return Err(format!("no queue bound as {QUEUE_BINDING}"));
        };
        let raw = RawMessageBuilder::new(js_sys::Uint8Array::from(message.as_slice()).into())
            .build_with_content_type(QueueContentType::V8);
        queue.send_raw(raw).await.map_err(|e| e.to_string())
    }
}

/// The Cache API key that marks a batch as delivered, or one sink's
/// progress through it (see [`crate::dedupe`]: per data centre, and a
/// no-op on `*.workers.dev`).
fn seen_url(key: SeenKey<'_>) -> String {
    let tenant: String = form_urlencoded::byte_serialize(key.tenant.as_bytes()).collect();
    let namespace: String = form_urlencoded::byte_serialize(key.namespace.as_bytes()).collect();
    let id = key.id;
    match key.sink {
        Some(index) => format!("https://edgepush.invalid/seen/{tenant}/{namespace}/{id}/{index}"),
        None => format!("https://edgepush.invalid/seen/{tenant}/{namespace}/{id}"),
    }
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

/// What an isolate keeps between requests.
struct Settings {
    /// The ingest settings.
    ingest: ingest::Ingest,
    /// The sinks.
    sinks: Vec<crate::sink::Sink>,
    /// Per-tenant rates, per isolate: a best effort, since Cloudflare runs
    /// many isolates (see docs/security.md).
    rates: RateLimiter,
}

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
    let (ingest, sinks) = env_config::from_settings(|n| setting(env, n))?;
    let settings = Rc::new(Settings {
        ingest,
        sinks,
        rates: RateLimiter::default(),
    });
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
    let ingest = &config.ingest;
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
    let (ingest, sinks) = (&config.ingest, &config.sinks);
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
