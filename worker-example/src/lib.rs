//! A Cloudflare Worker in Rust that records metrics with edgepush: one
//! emitter per isolate, a counter and a distribution per request, and the
//! batches pushed to an edgepush receiver after the response with
//! `ctx.wait_until`, so the visitor never waits for the metrics.
//!
//! Settings: `EDGEPUSH_URL` (the receiver's base URL) and the secret
//! `EDGEPUSH_API_KEY`.
#![cfg(target_arch = "wasm32")]

use std::cell::OnceCell;

use edgepush::{Config, Emitter, Metric, Payload, Unit, wire};
use worker::{Context, Env, Fetch, Headers, Method, Request, RequestInit, Response, event, js_sys};

thread_local! {
    /// The isolate's emitter: created at its first request, kept while it
    /// lives (a Worker isolate serves many requests).
    static METRICS: OnceCell<Emitter> = const { OnceCell::new() };
}

fn emitter() -> worker::Result<Emitter> {
    METRICS.with(|cell| {
        if let Some(emitter) = cell.get() {
            return Ok(emitter.clone());
        }
        let config = Config::new("EdgeExample")
            .and_then(|c| c.dimension("worker", "example"))
            .map_err(|e| worker::Error::RustError(e.to_string()))?;
        Ok(cell.get_or_init(|| Emitter::new(config)).clone())
    })
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> worker::Result<Response> {
    let metrics = emitter()?;
    let route = req.path();
    let size: f64 = req
        .url()?
        .query_pairs()
        .find(|(k, _)| k == "size")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0.0);
    let to_error = |e: edgepush::Error| worker::Error::RustError(e.to_string());
    metrics
        .counter(
            Metric::new("requests")
                .unit(Unit::Count)
                .dimension("route", &route),
        )
        .map_err(to_error)?
        .increment();
    metrics
        .distribution(Metric::new("body_size").unit(Unit::Bytes))
        .map_err(to_error)?
        .record(size);

    // After the response: everything recorded so far, one request a batch
    // (the settings read first, so a missing one loses nothing).
    let url = wire::push_url(&env.var("EDGEPUSH_URL")?.to_string());
    let key = env.secret("EDGEPUSH_API_KEY").ok().map(|k| k.to_string());
    let batches = metrics.flush().map_err(to_error)?;
    ctx.wait_until(async move {
        for batch in batches {
            if let Err(e) = push(&url, key.as_deref(), &batch).await {
                // A real Worker would keep it (a Queue, KV) or log it as
                // here; the receiver answers 202 once it has the batch.
                worker::console_error!("edgepush: batch {} not pushed: {e}", batch.id());
            }
        }
    });
    Response::ok("ok")
}

/// Posts one batch with `fetch`, as the receiver expects it.
async fn push(url: &str, key: Option<&str>, batch: &Payload) -> worker::Result<()> {
    let headers = Headers::new();
    headers.set("content-type", batch.content_type())?;
    headers.set(wire::BATCH_ID_HEADER, batch.id())?;
    if let Some(encoding) = batch.content_encoding() {
        headers.set("content-encoding", encoding)?;
    }
    if let Some(key) = key {
        headers.set("authorization", &format!("Bearer {key}"))?;
    }
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(js_sys::Uint8Array::from(batch.body()).into()));
    let mut response = Fetch::Request(Request::new_with_init(url, &init)?)
        .send()
        .await?;
    if (200..300).contains(&response.status_code()) {
        Ok(())
    } else {
        let answer = response.text().await.unwrap_or_default();
        Err(worker::Error::RustError(format!(
            "{}: {answer}",
            response.status_code()
        )))
    }
}
