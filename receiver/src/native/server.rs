//! The HTTP surface: `POST /v1/metrics`, `GET /healthz`.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::net::TcpListener;

use std::time::{Duration, Instant};

use super::forward::Forwarder;
use crate::dedupe::{self, Seen};
use crate::error::Error;
use crate::ingest::{self, Answer, Headers, Ingest};

/// What the handlers share.
#[derive(Debug)]
pub struct App {
    /// Checks and decodes pushes.
    pub ingest: Ingest,
    /// Delivers accepted batches.
    pub forwarder: Forwarder,
    /// Batches delivered recently, so a retry is not forwarded twice.
    pub seen: Seen,
}

/// The receiver's routes.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route(
            edgepush::wire::PATH,
            post(push).fallback(method_not_allowed),
        )
        .route(
            "/healthz",
            get(|| async { json(StatusCode::OK, r#"{"status":"ok"}"#.to_string()) }),
        )
        .fallback(not_found)
        .with_state(app)
}

/// Serves `app` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let replay = app.forwarder.spools().then(|| {
        tokio::spawn(
            app.forwarder
                .clone()
                .replay(app.ingest.limits.clone(), Duration::from_secs(30)),
        )
    });
    let served = axum::serve(listener, router(app))
        .with_graceful_shutdown(shutdown)
        .await;
    if let Some(replay) = replay {
        replay.abort();
    }
    served
}

fn json(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn error(e: &Error) -> Response {
    json(
        StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
        e.to_json(),
    )
}

async fn not_found() -> Response {
    error(&Error::new(
        404,
        "not_found",
        format!("no such path; push to POST {}", edgepush::wire::PATH),
    ))
}

async fn method_not_allowed() -> Response {
    error(&Error::new(405, "method_not_allowed", "use POST"))
}

async fn push(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    let max = app.ingest.limits.max_body_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > max) {
        return error(&ingest::body_too_large(max));
    }
    // Reads at most max + 1 bytes, whatever the client declared.
    let body: Bytes = match axum::body::to_bytes(body, max).await {
        Ok(b) => b,
        Err(_) => return error(&ingest::body_too_large(max)),
    };
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let request_headers = Headers {
        content_type: text(header::CONTENT_TYPE),
        content_encoding: text(header::CONTENT_ENCODING),
        authorization: text(header::AUTHORIZATION),
    };
    let decoded = match app.ingest.decode(request_headers, &body, now_ms()) {
        Ok(d) => d,
        Err(e) => {
            tracing::info!(status = e.status, error = e.error, field = ?e.field, message = %e.message, "push refused");
            return error(&e);
        }
    };
    let mut answer = Answer::new(&decoded);
    let key = dedupe::key(&decoded.batch.namespace, &decoded.batch.id);
    if app.seen.contains(&key, Instant::now()) {
        answer.duplicate = true;
    } else if !answer.all_refused() {
        // A sink that took this batch on an earlier try is not sent it again.
        let forwarded = app
            .forwarder
            .forward(&decoded.batch, |sink| {
                app.seen
                    .contains(&dedupe::sink_key(&key, sink), Instant::now())
            })
            .await;
        answer.spooled = forwarded.spooled;
        for sink in forwarded.delivered {
            app.seen
                .insert(dedupe::sink_key(&key, sink), Instant::now());
        }
        if let Some(e) = ingest::sink_failure(&forwarded.failures) {
            return error(&e);
        }
        app.seen.insert(key, Instant::now());
    }
    let (status, body) = answer.to_response();
    tracing::debug!(batch = %decoded.batch.id, accepted = answer.accepted, rejected = answer.rejected_count, "push handled");
    json(
        StatusCode::from_u16(status).unwrap_or(StatusCode::ACCEPTED),
        body,
    )
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
