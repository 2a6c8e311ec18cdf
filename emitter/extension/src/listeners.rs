//! The extension's two inbound edges: StatsD datagrams on UDP, and the
//! Telemetry API's platform events over HTTP. Each hands what it reads to
//! [`State`]; neither decides anything.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
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

/// Binds the Telemetry API's destination: every address (Lambda sends to
/// `sandbox.localdomain`), `port` or any free one when 0.
pub async fn bind_telemetry(port: u16) -> std::io::Result<TcpListener> {
    TcpListener::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))).await
}

/// Serves the Telemetry API's POSTs of event batches (JSON arrays) into
/// `state`.
pub async fn serve_telemetry(listener: TcpListener, state: Arc<State>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                eprintln!("edgepush: telemetry listener: {e}");
                continue;
            }
        };
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let state = Arc::clone(&state);
                async move { Ok::<_, Infallible>(telemetry(request, &state).await) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                eprintln!("edgepush: telemetry connection: {e}");
            }
        });
    }
}

async fn telemetry(request: Request<Incoming>, state: &State) -> Response<Full<Bytes>> {
    let answer = |status, text: &'static str| {
        let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
        *response.status_mut() = status;
        response
    };
    let body = match request.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return answer(StatusCode::BAD_REQUEST, "unreadable body"),
    };
    match serde_json::from_slice::<Vec<Value>>(&body) {
        Ok(events) => {
            state.telemetry(events);
            answer(StatusCode::OK, "")
        }
        Err(_) => answer(StatusCode::BAD_REQUEST, "not a JSON array of events"),
    }
}
