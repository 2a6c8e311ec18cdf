//! The extension's inbound edges: StatsD datagrams on UDP, OTLP/HTTP
//! exports, and the Telemetry API's platform events over HTTP. Each hands
//! what it reads to [`State`]; none decides anything.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::Value;
use tokio::net::{TcpListener, UdpSocket};

use crate::lifecycle::State;

/// The largest datagram UDP carries over IPv4: nothing read is cut short.
pub const DATAGRAM: usize = 65_536;

/// Binds the StatsD port on 127.0.0.1, where functions' clients send.
pub async fn bind_statsd(port: u16) -> std::io::Result<UdpSocket> {
    UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).await
}

/// Reads datagrams from `socket` into `state`, for as long as the process
/// lives.
pub async fn serve_statsd(socket: Arc<UdpSocket>, state: Arc<State>) {
    let mut buf = vec![0; DATAGRAM];
    loop {
        match socket.recv(&mut buf).await {
            Ok(n) => state.datagram(&buf[..n]),
            // Errors of a connected peer (ICMP) and the like: the socket
            // stays usable.
            Err(e) => eprintln!("edgepush: StatsD socket: {e}"),
        }
    }
}

/// Reads what is already waiting on `socket` into `state` without
/// waiting for more: everything a function sent before it returned.
pub fn drain_statsd(socket: &UdpSocket, state: &State) {
    let mut buf = vec![0; DATAGRAM];
    while let Ok(n) = socket.try_recv(&mut buf) {
        state.datagram(&buf[..n]);
    }
}

/// Binds `127.0.0.1:port` (OTLP/HTTP) or, for the Telemetry API's
/// destination, every address on `port` (Lambda sends its events to
/// `sandbox.localdomain`; 0 is any free port).
pub async fn bind_http(port: u16, everywhere: bool) -> std::io::Result<TcpListener> {
    let ip = if everywhere {
        Ipv4Addr::UNSPECIFIED
    } else {
        Ipv4Addr::LOCALHOST
    };
    TcpListener::bind(SocketAddr::from((ip, port))).await
}

/// What an HTTP edge does with a request's method, path, headers and body:
/// status, content type and body of the answer.
type Handler = fn(&State, &hyper::http::request::Parts, &[u8]) -> (u16, &'static str, Vec<u8>);

/// The largest body an edge reads: the receiver's own bound for OTLP
/// exports, and four times the largest batch the Telemetry API sends
/// (256 KB).
pub const MAX_BODY: usize = 1 << 20;

/// How long a connection may take to send a request's head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves HTTP/1.1 on `listener`, each request answered by `handler`;
/// bodies over [`MAX_BODY`] are refused (413) unread.
pub async fn serve_http(listener: TcpListener, state: Arc<State>, handler: Handler) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                eprintln!("edgepush: listener: {e}");
                continue;
            }
        };
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let state = Arc::clone(&state);
                async move { Ok::<_, Infallible>(answer(request, &state, handler).await) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                eprintln!("edgepush: HTTP connection: {e}");
            }
        });
    }
}

async fn answer(
    request: Request<Incoming>,
    state: &State,
    handler: Handler,
) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let (status, content_type, body) = match Limited::new(body, MAX_BODY).collect().await {
        Ok(body) => handler(state, &parts, &body.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => (
            413,
            "text/plain",
            format!("body: larger than {MAX_BODY} bytes").into_bytes(),
        ),
        Err(_) => (400, "text/plain", b"body: unreadable".to_vec()),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, v);
    }
    response
}

/// The Telemetry API's POSTs of event batches (JSON arrays).
pub fn telemetry(
    state: &State,
    _: &hyper::http::request::Parts,
    body: &[u8],
) -> (u16, &'static str, Vec<u8>) {
    match serde_json::from_slice::<Vec<Value>>(body) {
        Ok(events) => {
            state.telemetry(events);
            (200, "text/plain", Vec::new())
        }
        Err(_) => (400, "text/plain", b"not a JSON array of events".to_vec()),
    }
}

/// OTLP/HTTP exports at `POST /v1/metrics`.
pub fn otlp(
    state: &State,
    parts: &hyper::http::request::Parts,
    body: &[u8],
) -> (u16, &'static str, Vec<u8>) {
    if parts.uri.path() != "/v1/metrics" {
        return (
            404,
            "text/plain",
            b"OTLP metrics go to /v1/metrics".to_vec(),
        );
    }
    if parts.method != hyper::Method::POST {
        return (405, "text/plain", b"POST an export".to_vec());
    }
    let header = |name| parts.headers.get(name).and_then(|v| v.to_str().ok());
    state.otlp(
        body,
        header(hyper::header::CONTENT_TYPE),
        header(hyper::header::CONTENT_ENCODING),
    )
}
