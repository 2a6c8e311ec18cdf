//! The HTTP surface: pushes (`POST /v1/metrics` in wire v1 or v2 or OTLP,
//! `POST /write` and `/api/v2/write` in line protocol, `PUT`/`POST
//! /metrics/job/...` in Prometheus text), `GET /healthz`.
//!
//! Served by hyper's HTTP/1 server with a header read timeout and a bound
//! on open connections, so slow or idle clients cannot hold the receiver.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use std::time::{Duration, Instant};

use super::forward::Forwarder;
use crate::decode::Format;
use crate::dedupe::{self, Seen};
use crate::error::Error;
use crate::ingest::{self, Headers, Ingest, Reply};
use crate::tenant::{RateLimiter, Replays};

/// What the handlers share.
#[derive(Debug)]
pub struct App {
    /// Checks and decodes pushes.
    pub ingest: Ingest,
    /// Delivers accepted batches.
    pub forwarder: Forwarder,
    /// Batches delivered recently, so a retry is not forwarded twice.
    pub seen: Seen,
    /// Signatures seen recently, so a captured request cannot be replayed.
    pub replays: Replays,
    /// Per-tenant request and point rates.
    pub rates: RateLimiter,
    /// How long a client may take to send its headers, then its body.
    pub read_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
}

impl App {
    /// An app with the default replay capacity (200,000 signatures), read
    /// timeout (10 s) and connection bound (4,096).
    pub fn new(ingest: Ingest, forwarder: Forwarder, seen: Seen) -> Self {
        App {
            ingest,
            forwarder,
            seen,
            replays: Replays::new(200_000),
            rates: RateLimiter::default(),
            read_timeout: Duration::from_secs(10),
            max_connections: 4096,
        }
    }
}

/// The receiver's routes.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { json(StatusCode::OK, r#"{"status":"ok"}"#.to_string()) }),
        )
        .route("/metrics", get(own_metrics))
        // InfluxDB clients and Telegraf ping before they write.
        .route(
            "/ping",
            get(|| async { (StatusCode::NO_CONTENT, [("x-influxdb-version", "edgepush")]) }),
        )
        .fallback(push)
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
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(app.read_timeout);
    let connections = Arc::new(Semaphore::new(app.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let service = router(app.clone());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => permit,
            () = &mut shutdown => break,
        };
        let Ok(permit) = permit else { break };
        let stream = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let stream = match stream {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, or a connection reset before it
                // was accepted: wait a little rather than spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let connection = http.serve_connection(
            TokioIo::new(stream),
            TowerToHyperService::new(service.clone()),
        );
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended");
            }
            drop(permit);
        });
    }
    drop(listener);
    // Requests in flight finish (each is bounded by the read timeout and
    // the sinks' retry budget).
    if tokio::time::timeout(Duration::from_secs(60), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after 60 s: closing them");
    }
    if let Some(replay) = replay {
        replay.abort();
    }
    Ok(())
}

fn json(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn error(e: &Error) -> Response {
    let mut response = json(
        StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
        e.to_json(),
    );
    if let Some(seconds) = e.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
    }
    response
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(e) = source {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = e.source();
    }
    false
}

fn not_found() -> Response {
    error(&Error::new(
        404,
        "not_found",
        format!(
            "no such path; push to POST {} (edgepush or OTLP), POST /write or /api/v2/write \
             (line protocol), or PUT/POST /metrics/job/<job> (Prometheus text)",
            edgepush_protocol::wire::PATH
        ),
    ))
}

/// `GET /metrics`: the receiver's own metrics (see [`super::telemetry`]).
async fn own_metrics(State(app): State<Arc<App>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.forwarder.telemetry().encode(),
    )
        .into_response()
}

fn to_response(reply: Reply) -> Response {
    let mut response = Response::new(Body::from(reply.body));
    *response.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::BAD_REQUEST);
    if let Some(content_type) = reply.content_type {
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static(content_type),
        );
    }
    if let Some(seconds) = reply.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
    }
    response
}

async fn push(
    State(app): State<Arc<App>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let format = match Format::route(
        method.as_str(),
        uri.path(),
        uri.query(),
        text(header::CONTENT_TYPE.as_str()),
    ) {
        Ok(Some(format)) => format,
        Ok(None) => return not_found(),
        Err(e) => return error(&e),
    };
    let telemetry = app.forwarder.telemetry();
    let refuse = |tenant: &str, e: &Error| {
        tracing::info!(tenant, format = format.name(), status = e.status, error = e.error, field = ?e.field, message = %e.message, "push refused");
        telemetry.request(format.name(), tenant, e.status);
        telemetry.request_refused(format.name(), tenant, e.error);
        to_response(ingest::refusal(Some(&format), e))
    };
    let max = app.ingest.limits.max_body_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > max) {
        return refuse("", &ingest::body_too_large(max));
    }
    // Reads at most max + 1 bytes, whatever the client declared, and no
    // longer than the read timeout.
    let body: Bytes =
        match tokio::time::timeout(app.read_timeout, axum::body::to_bytes(body, max)).await {
            Ok(Ok(b)) => b,
            Ok(Err(e)) if is_length_limit(&e) => return refuse("", &ingest::body_too_large(max)),
            Ok(Err(e)) => {
                return refuse(
                    "",
                    &Error::new(400, "unreadable_body", format!("cannot read the body: {e}"))
                        .field("body"),
                );
            }
            Err(_) => {
                return refuse(
                    "",
                    &Error::new(
                        408,
                        "body_timeout",
                        format!(
                            "the body did not arrive within {} s",
                            app.read_timeout.as_secs_f64()
                        ),
                    )
                    .field("body"),
                );
            }
        };
    let request_headers = Headers {
        content_type: text(header::CONTENT_TYPE.as_str()),
        content_encoding: text(header::CONTENT_ENCODING.as_str()),
        authorization: text(header::AUTHORIZATION.as_str()),
        signature: text(edgepush_protocol::sign::HEADER),
        namespace: text(ingest::NAMESPACE_HEADER),
    };
    let now = now_ms();
    let caller = match app
        .ingest
        .authenticate_push(&format, request_headers, &body, now)
    {
        Ok(caller) => caller,
        Err(e) => return refuse("", &e),
    };
    let tenant = app.ingest.tenants.name(&caller);
    let decoded = app.replays.check(&caller, now).and_then(|()| {
        app.ingest
            .decode_within(&app.rates, &caller, &format, request_headers, &body, now)
    });
    let decoded = match decoded {
        Ok(d) => d,
        Err(e) => return refuse(tenant, &e),
    };
    let mut answer = ingest::answer_for(&decoded);
    telemetry.points(
        format.name(),
        tenant,
        decoded.batch.points.len(),
        decoded.rejected.iter().map(|r| r.reason.as_str()),
    );
    let key = dedupe::key(tenant, &decoded.batch.namespace, &decoded.batch.id);
    if app.seen.contains(&key, Instant::now()) {
        answer.duplicate = true;
        telemetry.dedupe_hit(format.name(), tenant);
    } else if !answer.all_refused() {
        // A sink that took this batch, or part of it, on an earlier try is
        // sent only what it did not take.
        let forwarded = app
            .forwarder
            .forward(&decoded.batch, |sink| {
                app.seen
                    .get(&dedupe::sink_key(&key, sink), Instant::now())
                    .unwrap_or(0)
            })
            .await;
        answer.spooled = forwarded.spooled.into_iter().map(Into::into).collect();
        ingest::sink_refused(&mut answer, &decoded, forwarded.refused);
        for sink in forwarded.delivered {
            app.seen
                .insert(dedupe::sink_key(&key, sink), Instant::now());
        }
        for (sink, done) in forwarded.progress {
            app.seen
                .insert_value(dedupe::sink_key(&key, sink), done, Instant::now());
        }
        if let Some(e) = ingest::sink_failure(&forwarded.failures) {
            return refuse(tenant, &e);
        }
        app.seen.insert(key, Instant::now());
    }
    tracing::debug!(format = format.name(), batch = %decoded.batch.id, accepted = answer.accepted, rejected = answer.rejected_count, "push handled");
    let sink_refused = answer.refused_by_sinks();
    if sink_refused > 0 {
        telemetry.points_refused(format.name(), tenant, "sink_refused", sink_refused as u64);
    }
    let reply = ingest::reply(&format, &answer);
    telemetry.request(format.name(), tenant, reply.status);
    to_response(reply)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
