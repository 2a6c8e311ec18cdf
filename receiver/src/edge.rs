//! The receiver as a Cloudflare Worker: the same ingest, validation and sinks
//! as the native server. Only the HTTP client (`fetch`), the clock (JS
//! `Date`) and the configuration (vars and secrets, see
//! [`crate::env_config`]) differ.
//!
//! Each push is forwarded before it is answered (inline mode): `202` when
//! every sink took it, `503` when a sink was down or throttling after
//! retries, so the emitter keeps the batch and sends it again, same id.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use worker::{
    Context, Date, Delay, Env, Fetch, Headers, Method, Request, RequestInit, Response, event,
    js_sys,
};

use crate::env_config;
use crate::error::Error;
use crate::ingest::{self, Answer};
use crate::sink::{Client, Reply, Retry, deliver};

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
        let body = response.bytes().await.map_err(|e| e.to_string())?;
        Ok((response.status_code(), body))
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

fn error(e: &Error) -> worker::Result<Response> {
    json(e.status, e.to_json())
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    let path = req.path();
    if path == "/healthz" && req.method() == Method::Get {
        return json(200, r#"{"status":"ok"}"#.to_string());
    }
    if path != edgepush::wire::PATH {
        return error(&Error::new(
            404,
            "not_found",
            format!("no such path; push to POST {}", edgepush::wire::PATH),
        ));
    }
    if req.method() != Method::Post {
        return error(&Error::new(405, "method_not_allowed", "use POST"));
    }
    push(req, &env).await
}

async fn push(mut req: Request, env: &Env) -> worker::Result<Response> {
    let setting = |name: &str| {
        env.secret(name)
            .map(|s| s.to_string())
            .or_else(|_| env.var(name).map(|v| v.to_string()))
            .ok()
    };
    let (ingest, sinks) = match env_config::from_settings(setting) {
        Ok(config) => config,
        Err(message) => return error(&Error::new(500, "misconfigured", message)),
    };
    let max = ingest.limits.max_body_bytes;
    let declared = req
        .headers()
        .get("content-length")?
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > max) {
        return error(&ingest::body_too_large(max));
    }
    let body = req.bytes().await?;
    let header = |name: &str| req.headers().get(name).ok().flatten();
    let (content_type, content_encoding, authorization) = (
        header("content-type"),
        header("content-encoding"),
        header("authorization"),
    );
    let headers = ingest::Headers {
        content_type: content_type.as_deref(),
        content_encoding: content_encoding.as_deref(),
        authorization: authorization.as_deref(),
    };
    let now = now();
    let now_ms = Date::now().as_millis() as i64;
    let decoded = match ingest.decode(headers, &body, now_ms) {
        Ok(d) => d,
        Err(e) => return error(&e),
    };
    let answer = Answer::new(&decoded);
    if !answer.all_refused() && !decoded.batch.points.is_empty() {
        let mut failures = Vec::new();
        for sink in &sinks {
            if let Err(f) = deliver(&FetchClient, sink, &decoded.batch, now, Retry::default()).await
            {
                failures.push(f);
            }
        }
        if let Some(e) = ingest::sink_failure(&failures) {
            return error(&e);
        }
    }
    let (status, body) = answer.to_response();
    json(status, body)
}
