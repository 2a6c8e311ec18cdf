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

use crate::aggregation::Aggregation;
use crate::forward::Forwarder;
use edgepush_receiver::decode::Format;
use edgepush_receiver::dedupe::{self, Seen};
use edgepush_receiver::error::Error;
use edgepush_receiver::ingest::{self, Headers, Ingest, Reply};
use edgepush_receiver::limits::Limits;
use edgepush_receiver::model::Batch;
use edgepush_receiver::pipeline::{self, Delivery, Dispatch, Event, Head, Host, SeenKey};
use edgepush_receiver::sink::{SinkFailure, SinkRefusal, SinkTag};
use edgepush_receiver::tenant::{Caller, RateLimiter, Replays};

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
    /// Merges pushes for the sinks that aggregate, if any do.
    pub aggregation: Option<Arc<Aggregation>>,
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
            aggregation: None,
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
                .replay(Limits::stored(), Duration::from_secs(30)),
        )
    });
    let (stop_flusher, stopped) = tokio::sync::watch::channel(false);
    let flusher = app.aggregation.clone().map(|aggregation| {
        let forwarder = app.forwarder.clone();
        tokio::spawn(async move {
            aggregation
                .run(forwarder, stopped, Duration::from_secs(30))
                .await;
        })
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
    // Everything merged goes out before the spools' replay stops.
    if let Some(flusher) = flusher {
        stop_flusher.send_replace(true);
        if let Err(e) = flusher.await {
            tracing::error!(error = %e, "aggregation: the flusher failed");
        }
    }
    if let Some(replay) = replay {
        replay.abort();
    }
    Ok(())
}

fn json(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
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

/// `GET /metrics`: the receiver's own metrics (see [`crate::telemetry`]).
/// The receiver's own metrics. They name tenants: when the receiver has
/// keys, only a key of a tenant that may write every namespace (`"*"`, as
/// the `api_keys` tenant) reads them.
async fn own_metrics(State(app): State<Arc<App>>, headers: header::HeaderMap) -> Response {
    let tenants = &app.ingest.tenants;
    if !tenants.is_open() {
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        // A bearer key, or a request signed with one (over an empty body).
        let request = edgepush_receiver::ingest::Headers {
            authorization: text(header::AUTHORIZATION.as_str()),
            signature: text(edgepush_protocol::sign::HEADER),
            ..Default::default()
        };
        let admin = match app.ingest.authenticate(request, b"", crate::now_ms()) {
            Ok(caller) => caller
                .tenant
                .and_then(|i| tenants.get(i))
                .is_some_and(|t| t.namespaces.iter().any(|n| n == "*")),
            Err(e) => {
                let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::UNAUTHORIZED);
                return json(status, e.to_json());
            }
        };
        if !admin {
            return json(
                StatusCode::FORBIDDEN,
                r#"{"error":"forbidden","message":"the receiver's own metrics name every tenant: they need a key of a tenant that may write every namespace"}"#.to_string(),
            );
        }
    }
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

/// Every other request: a push, through the one pipeline.
async fn push(
    State(app): State<Arc<App>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let head = Head {
        method: method.as_str(),
        path: uri.path(),
        query: uri.query(),
        content_length: text(header::CONTENT_LENGTH.as_str()).and_then(|v| v.parse().ok()),
        headers: Headers {
            content_type: text(header::CONTENT_TYPE.as_str()),
            content_encoding: text(header::CONTENT_ENCODING.as_str()),
            authorization: text(header::AUTHORIZATION.as_str()),
            signature: text(edgepush_protocol::sign::HEADER),
            namespace: text(ingest::NAMESPACE_HEADER),
        },
    };
    to_response(pipeline::handle(&head, body, &*app).await)
}

/// The native host: bodies read within the read timeout, replays and
/// dedupe in memory, delivery inline through the forwarder (and its
/// spools), telemetry for `GET /metrics`.
impl Host for App {
    type Body = Body;
    type Bytes = Bytes;

    fn ingest(&self) -> &Ingest {
        &self.ingest
    }

    fn rates(&self) -> &RateLimiter {
        &self.rates
    }

    fn now_ms(&self) -> i64 {
        crate::now_ms()
    }

    /// Reads at most `max` + 1 bytes, whatever the client declared, and no
    /// longer than the read timeout.
    async fn read_body(&self, body: Body, max: usize) -> Result<Bytes, Error> {
        match tokio::time::timeout(self.read_timeout, axum::body::to_bytes(body, max)).await {
            Ok(Ok(b)) => Ok(b),
            Ok(Err(e)) if is_length_limit(&e) => Err(ingest::body_too_large(max)),
            Ok(Err(e)) => {
                Err(
                    Error::new(400, "unreadable_body", format!("cannot read the body: {e}"))
                        .field("body"),
                )
            }
            Err(_) => Err(Error::new(
                408,
                "body_timeout",
                format!(
                    "the body did not arrive within {} s",
                    self.read_timeout.as_secs_f64()
                ),
            )
            .field("body")),
        }
    }

    async fn check_replay(&self, caller: &Caller, now_ms: i64) -> Result<(), Error> {
        self.replays.check(caller, now_ms)
    }

    async fn seen(&self, key: SeenKey<'_>) -> Option<usize> {
        self.seen.get(&seen_key(key), Instant::now())
    }

    async fn remember(&self, key: SeenKey<'_>, value: usize) {
        self.seen.insert_value(seen_key(key), value, Instant::now());
    }

    fn dispatch(&self) -> Dispatch {
        Dispatch::Inline
    }

    fn sinks(&self) -> usize {
        self.forwarder.sinks().len()
    }

    fn sink_name(&self, index: usize) -> &'static str {
        self.forwarder.sinks()[index].name()
    }

    fn sink_tag(&self, index: usize) -> Option<SinkTag> {
        self.forwarder.sinks()[index].tag()
    }

    async fn deliver(
        &self,
        index: usize,
        batch: &Batch,
        from: usize,
    ) -> Result<Delivery, SinkFailure> {
        self.forwarder.forward_one(index, batch, from).await
    }

    fn aggregated(&self, index: usize) -> bool {
        self.aggregation
            .as_ref()
            .is_some_and(|a| a.merges_for(index))
    }

    fn unstorable(&self, index: usize, batch: &Batch) -> Vec<SinkRefusal> {
        self.forwarder.sinks()[index].unstorable(batch)
    }

    async fn hold(&self, _key: SeenKey<'_>, batch: &Batch) -> Result<(), Error> {
        match &self.aggregation {
            Some(aggregation) => match aggregation.hold(&self.forwarder, batch)? {
                Some(ticket) => aggregation.durable(ticket).await,
                None => Ok(()),
            },
            None => Err(Error::new(
                503,
                "no_aggregator",
                "this receiver has no aggregator",
            )),
        }
    }

    async fn enqueue(&self, _message: Vec<u8>) -> Result<(), String> {
        Err("the native receiver delivers inline".into())
    }

    fn record(&self, format: &Format, event: Event<'_>) {
        let telemetry = self.forwarder.telemetry();
        let format = format.name();
        match event {
            Event::Refused { tenant, error } => {
                telemetry.request(format, tenant, error.status);
                telemetry.request_refused(format, tenant, error.error);
            }
            Event::Points {
                tenant,
                accepted,
                rejected,
            } => telemetry.points(
                format,
                tenant,
                accepted,
                rejected.iter().map(|r| r.reason.as_str()),
            ),
            Event::DedupeHit { tenant } => telemetry.dedupe_hit(format, tenant),
            Event::SinkRefused { tenant, points } => {
                telemetry.points_refused(format, tenant, "sink_refused", points as u64);
            }
            Event::Answered { tenant, status } => telemetry.request(format, tenant, status),
        }
    }
}

/// The in-memory dedupe store's key for `key` ([`dedupe::key`]).
fn seen_key(key: SeenKey<'_>) -> String {
    let batch = dedupe::key(key.tenant, key.namespace, key.id);
    match key.sink {
        Some(index) => dedupe::sink_key(&batch, index),
        None => batch,
    }
}
