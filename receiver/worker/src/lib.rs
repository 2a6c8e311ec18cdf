//! # edgepush-receiver-worker
//!
//! The receiver as a Cloudflare Worker: the same push pipeline
//! (`edgepush_receiver::pipeline`), ingest, validation and sinks as the
//! native server. Only the host differs: the HTTP client (`fetch`), the
//! clock (JS `Date`), the Cache API for replays and dedupe, Queues, KV and
//! the configuration (vars and secrets, see
//! `edgepush_receiver::env_config`). Built for wasm32 only, by
//! `.ci/build-worker`; natively this crate is empty.
//!
//! Two delivery modes:
//! - **inline** (no queue bound): each push is forwarded before it is
//!   answered: `202` when every sink took it, `503` when a sink was down or
//!   throttling after retries, so the emitter keeps the batch and sends it
//!   again, same id.
//! - **queued** (a Queue bound as `EDGEPUSH_QUEUE`): each push is validated,
//!   enqueued as one message per sink
//!   (`edgepush_receiver::envelope`) and answered `202` at once; the queue consumer forwards, acks what a sink took and
//!   retries the rest with exponential backoff: after as long as the message
//!   has waited so far, at least `EDGEPUSH_RETRY_DELAY_SECONDS` (default 30),
//!   at most an hour.
//!   After the queue's `max_retries` a message goes to its dead-letter queue,
//!   whose consumer keeps it in the KV namespace `EDGEPUSH_DEAD_LETTERS`,
//!   listed by `GET /v1/dead-letters`.
#![cfg(target_arch = "wasm32")]

mod fetch;
mod host;
mod queue;
mod shard;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use worker::{Context, Date, Env, Method, Request, Response, event};

use edgepush_receiver::env_config;
use edgepush_receiver::error::Error;
use edgepush_receiver::ingest;
use edgepush_receiver::pipeline::{self, Head};
use edgepush_receiver::tenant::RateLimiter;

use host::EdgeHost;
use queue::dead_letters;

/// The Worker's clock: JS `Date` (`SystemTime::now` is not available in wasm).
fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(Date::now().as_millis())
}

/// [`now`] in milliseconds since the Unix epoch.
fn now_ms() -> i64 {
    Date::now().as_millis() as i64
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
        return health(&env);
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
        query: edgepush_receiver::decode::url_query(&url),
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
    let shards = env.durable_object(shard::BINDING).ok();
    if shards.is_none() && settings.aggregated.contains(&true) {
        let e = Error::new(500, "misconfigured", unbound_aggregators());
        return reply(ingest::refusal(Some(&format), &e));
    }
    let host = EdgeHost {
        settings,
        queue: env.queue(QUEUE_BINDING).ok(),
        shards,
        now: now(),
    };
    reply(pipeline::push(&format, &head, req, &host).await)
}

/// Why a Worker that merges pushes cannot: its aggregators are not bound.
fn unbound_aggregators() -> String {
    format!(
        "EDGEPUSH_AGGREGATION (or a sink's _AGGREGATE) is true, but no Durable Object \
         namespace is bound as {}: see docs/deploy-cloudflare.md",
        shard::BINDING
    )
}

/// `GET /healthz`: `200` when the Worker can take pushes, else `503`
/// naming what in its settings stops it (the same words a push gets).
fn health(env: &Env) -> worker::Result<Response> {
    let (problem, renamed) = match settings(env) {
        Err(message) => (Some(message), Vec::new()),
        Ok(s) if s.aggregated.contains(&true) && env.durable_object(shard::BINDING).is_err() => {
            (Some(unbound_aggregators()), Vec::new())
        }
        Ok(s) => (None, s.renamed.clone()),
    };
    match problem {
        None if renamed.is_empty() => json(200, r#"{"status":"ok"}"#.to_string()),
        // Works, with settings to rename: said where a deploy check looks.
        None => {
            let body = serde_json::to_string(&serde_json::json!({
                "status": "ok",
                "warnings": renamed,
            }));
            json(200, body.unwrap_or_default())
        }
        Some(message) => {
            let body = serde_json::to_string(&serde_json::json!({
                "status": "misconfigured",
                "message": message,
            }));
            json(503, body.unwrap_or_default())
        }
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
    sinks: Vec<edgepush_receiver::sink::Sink>,
    /// Whether and when pushes are merged.
    aggregation: edgepush_receiver::aggregate::Settings,
    /// Per sink: whether it takes merged points.
    aggregated: Vec<bool>,
    /// Aggregators per namespace.
    shards: u32,
    /// Settings found under an old name (`env_config::Config::renamed`).
    renamed: Vec<String>,
    /// How long a batch is remembered as delivered (`EDGEPUSH_DEDUPE_SECONDS`,
    /// default 900).
    dedupe_seconds: u64,
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
/// runtime's zlib that every gzip goes through (`edgepush_receiver::gzip`). Only a
/// configuration that works is kept: one that does not is read again, and
/// refused again, on every request.
fn settings(env: &Env) -> Result<Rc<Settings>, String> {
    if let Some(settings) = SETTINGS.with_borrow(Option::clone) {
        return Ok(settings);
    }
    if let Some(reason) = edgepush_receiver::gzip::unavailable() {
        return Err(reason);
    }
    let config = env_config::from_settings(|n| setting(env, n))?;
    for renamed in &config.renamed {
        worker::console_warn!("edgepush: {renamed}");
    }
    let dedupe_seconds = match setting(env, "EDGEPUSH_DEDUPE_SECONDS") {
        None => 900,
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| format!("EDGEPUSH_DEDUPE_SECONDS must be a whole number, not {v:?}"))?,
    };
    let settings = Rc::new(Settings {
        ingest: config.ingest,
        sinks: config.sinks,
        aggregation: config.aggregation,
        aggregated: config.aggregated,
        shards: config.shards,
        renamed: config.renamed,
        dedupe_seconds,
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
